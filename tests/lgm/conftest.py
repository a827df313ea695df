"""Fixtures shared by the tests of ``lgm``."""
import pytest

from tests.lgm.calls import count_calls


@pytest.fixture
def checker_calls():
    """A function ``counts(fit)``: how often each checker of the package ran during ``fit()``
    (:func:`count_calls`).

    The checkers are every function of lgm.checks, ``check_params``, the mixture's parameter
    checks, the missing-entry model check and the grouping of missing entries.
    """
    import inspect

    import lgm.checks
    import lgm.linear_gaussian
    import lgm.missing
    import lgm.mixture_fa

    checkers = [f for _, f in inspect.getmembers(lgm.checks, inspect.isfunction)
                if f.__module__ == "lgm.checks"]
    checkers += [lgm.linear_gaussian.check_params, lgm.mixture_fa.check_components,
                 lgm.mixture_fa.check_mixture_params, lgm.missing._check_model,
                 lgm.missing.MissingData.__init__]
    return lambda fit: count_calls(fit, checkers)
