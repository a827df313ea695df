"""Empty the worker's guard from inside (issue 20, class 1): a submission adds this and calls ``unban()``.

The guard's rules are an object in the worker module (reached through ``sys.modules``); emptying its
banned and blocked sets and dropping its import finder leaves only what the operating system refuses.
"""
import sys


def unban():
    for module in list(sys.modules.values()):
        rules = getattr(module, "_RULES", None)
        if rules is not None and hasattr(rules, "banned"):
            rules.banned, rules.names, rules.blocked = frozenset(), frozenset(), ()
    sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "_Finder"]
    for name in [n for n in sys.modules if n.split(".")[0] in ("torch", "lgm")]:
        del sys.modules[name]
