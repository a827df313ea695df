"""Fixtures shared by the tests of ``lgm``."""
import pytest


@pytest.fixture
def checker_calls():
    """A function ``counts(fit)``: how often each checker of the package ran during ``fit()``.

    The checkers are every function of lgm.checks, ``check_params``, the mixture's parameter
    checks, the missing-entry model check and the grouping of missing entries. They are counted
    by the code objects the interpreter enters (sys.setprofile), so a checker is seen under
    whatever name a module imported it.
    """
    import inspect
    import sys
    from collections import Counter

    import lgm.checks
    import lgm.linear_gaussian
    import lgm.missing
    import lgm.mixture_fa

    checkers = {f.__code__ for _, f in inspect.getmembers(lgm.checks, inspect.isfunction)
                if f.__module__ == "lgm.checks"}
    checkers |= {f.__code__ for f in (
        lgm.linear_gaussian.check_params, lgm.mixture_fa.check_components,
        lgm.mixture_fa.check_mixture_params, lgm.missing._check_model,
        lgm.missing.MissingData.__init__)}

    def counts(fit):
        calls = Counter()

        def profile(frame, event, arg):
            if event == "call" and frame.f_code in checkers:
                calls[frame.f_code.co_name] += 1

        sys.setprofile(profile)
        try:
            fit()
        finally:
            sys.setprofile(None)
        return calls

    return counts
