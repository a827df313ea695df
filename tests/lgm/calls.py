"""Counting the calls of functions while some code runs (the spies of the lgm tests)."""
import sys
from collections import Counter


def count_calls(fit, functions):
    """How often each of ``functions`` ran during ``fit()``, by name: counted by the code objects
    the interpreter enters (sys.setprofile), so a function is seen under whatever name a module
    imported it."""
    codes, calls = {f.__code__ for f in functions}, Counter()

    def profile(frame, event, arg):
        if event == "call" and frame.f_code in codes:
            calls[frame.f_code.co_name] += 1

    sys.setprofile(profile)
    try:
        fit()
    finally:
        sys.setprofile(None)
    return calls
