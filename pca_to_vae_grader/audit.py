"""What a derivation page refuses in a submission's source: numerical stand-ins for a derivation.

The derivation pages (``book/exercises/derive_*.md``) ask for a quantity derived on paper. A function
can instead compute it numerically: a gradient by complex-step differentiation, an expectation by
quadrature, a maximiser by an optimiser, the PCA error by scikit-learn. The tests tell most of these
apart by size, precision and conditioning; this audit refuses the tools themselves, by reading the
submission's source in the grader (root on Gradescope) before its worker starts, so nothing the
submission does at run time can switch it off.

:func:`refusals` parses the statements the worker would run (:func:`pca_to_vae_grader.sandboxed.submission.definitions`)
and, for every top-level function, follows the top-level names it uses (its helpers, their helpers,
the imports and assignments they read). A function is refused, with a message for the student, when
what it reaches

- imports or names a refused module (``scipy.optimize``, ``scipy.integrate``, ``numpy.polynomial``,
  ``sklearn``, ``torch``, ...) or a refused function (``hermgauss``, ``roots_hermite``, ``johnsonsu``,
  ``np.gradient``, ...);
- uses complex numbers (a ``1j`` literal, ``complex``, a complex dtype by name or by string, ``cmath``,
  ``np.emath``, ``np.fft``);
- reaches code or names dynamically (``eval``, ``exec``, ``getattr`` with a computed name, ``globals``,
  ``__import__``, dunder attributes, ``sys``, ``importlib``, ``inspect``), which would hide the above.

A top-level statement that reaches names dynamically refuses every function, since it could bind any
of them. This is an audit of the source, not a proof: a determined student can still write a numerical
method by hand (central differences, a Newton iteration), which the tests answer with sizes at which
it runs out of time and tolerances it cannot meet.
"""
import ast
import re

import numpy as np

from pca_to_vae_grader.sandboxed.submission import definitions

REFUSED_MODULES = {
    "scipy.optimize": "an optimiser would find the maximiser you are asked to derive",
    "scipy.integrate": "numerical integration would compute the expectation you are asked to derive",
    "scipy.differentiate": "numerical differentiation would compute the derivative you are asked to derive",
    "scipy.misc": "numerical differentiation would compute the derivative you are asked to derive",
    "numpy.polynomial": "Gauss-Hermite quadrature would compute the expectation you are asked to derive",
    "sklearn": "scikit-learn would compute the quantity you are asked to derive",
    "torch": "automatic differentiation would do the derivation",
    "jax": "automatic differentiation would do the derivation",
    "autograd": "automatic differentiation would do the derivation",
    "sympy": "symbolic differentiation would do the derivation",
    "numdifftools": "numerical differentiation would compute the derivative you are asked to derive",
    "mpmath": "numerical differentiation and quadrature would do the derivation",
    "cmath": "complex arithmetic (the complex-step trick) would compute the derivative numerically",
    "importlib": "importing modules by a computed name would hide what the function uses",
    "sys": "reaching modules through sys would hide what the function uses",
    "builtins": "reaching the builtins by name would hide what the function uses",
    "inspect": "reaching frames and namespaces would hide what the function uses",
    "gc": "reaching objects through the garbage collector would hide what the function uses",
    "ctypes": "calling the C library would hide what the function uses",
    "operator": "attrgetter and methodcaller reach attributes by a computed name",
}
_COMPLEX = "complex numbers (the complex-step trick) would compute the derivative numerically"
_DYNAMIC = "code or names reached dynamically would hide what the function uses"
REFUSED_NAMES = {
    # numerical stand-ins for the derivation, wherever they are found (scipy.special, numpy, scipy.stats)
    "optimize": REFUSED_MODULES["scipy.optimize"], "integrate": REFUSED_MODULES["scipy.integrate"],
    "differentiate": REFUSED_MODULES["scipy.differentiate"], "polynomial": REFUSED_MODULES["numpy.polynomial"],
    "hermgauss": REFUSED_MODULES["numpy.polynomial"], "hermegauss": REFUSED_MODULES["numpy.polynomial"],
    "roots_hermite": REFUSED_MODULES["numpy.polynomial"], "roots_hermitenorm": REFUSED_MODULES["numpy.polynomial"],
    "h_roots": REFUSED_MODULES["numpy.polynomial"], "he_roots": REFUSED_MODULES["numpy.polynomial"],
    "expect": REFUSED_MODULES["scipy.integrate"], "quad": REFUSED_MODULES["scipy.integrate"],
    "gradient": REFUSED_MODULES["scipy.differentiate"], "derivative": REFUSED_MODULES["scipy.differentiate"],
    "approx_fprime": REFUSED_MODULES["scipy.optimize"], "minimize": REFUSED_MODULES["scipy.optimize"],
    "johnsonsu": "scipy.stats.johnsonsu is the law of x = s sinh(z): the density you are asked to derive",
    "decomposition": REFUSED_MODULES["sklearn"],
    # complex numbers
    "complex": _COMPLEX, "complex64": _COMPLEX, "complex128": _COMPLEX, "complex256": _COMPLEX,
    "complexfloating": _COMPLEX, "cdouble": _COMPLEX, "csingle": _COMPLEX, "clongdouble": _COMPLEX,
    "cfloat": _COMPLEX, "clongfloat": _COMPLEX, "longcomplex": _COMPLEX, "singlecomplex": _COMPLEX,
    "emath": _COMPLEX, "scimath": _COMPLEX, "fft": _COMPLEX,
    # dynamic access
    "eval": _DYNAMIC, "exec": _DYNAMIC, "compile": _DYNAMIC, "__import__": _DYNAMIC, "globals": _DYNAMIC,
    "locals": _DYNAMIC, "vars": _DYNAMIC, "breakpoint": _DYNAMIC, "attrgetter": _DYNAMIC, "methodcaller": _DYNAMIC,
}
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
MESSAGE = ("On this page the grader refuses {thing} in {function} (cell {cell}, line {line}{via}): {reason}. The "
           "exercise asks for the formula you derive on paper; write it with numpy.")


def _is_complex_dtype(text):
    try:
        return len(text) <= 16 and np.dtype(text).kind == "c"
    except (TypeError, ValueError, SyntaxError):
        return False


def _name_reason(name):
    """Why a name (of a function, attribute or module part) is refused, or None."""
    if name in REFUSED_NAMES:
        return REFUSED_NAMES[name]
    if name.startswith("roots_") or name.endswith(("_roots", "gauss")):  # Gaussian quadrature's nodes
        return REFUSED_MODULES["numpy.polynomial"]
    if name in ("trapz", "trapezoid", "simpson", "romb"):
        return REFUSED_MODULES["scipy.integrate"]
    return None


def _module_reason(module):
    for name, reason in REFUSED_MODULES.items():
        if module == name or module.startswith(name + "."):
            return reason
    return next((reason for part in module.split(".") if (reason := _name_reason(part))), None)


def _findings(node, bound=frozenset()):
    """(thing, line, reason) for each refused construct in ``node`` (a statement).

    A name is refused by itself only where it is not the submission's own (``bound``: its top-level
    names, whose bindings are audited where they are made) nor local to ``node``.
    """
    found = []
    own = set(bound) | _locals(node)
    for child in ast.walk(node):
        line = getattr(child, "lineno", getattr(node, "lineno", 0))
        if isinstance(child, ast.Constant):
            if isinstance(child.value, complex):
                found.append((f"the complex literal {child.value!r}", line, _COMPLEX))
            elif isinstance(child.value, str) and _IDENTIFIER.match(child.value.strip()):  # not prose (docstrings)
                text = child.value.strip()
                if _is_complex_dtype(text):
                    found.append((f"the complex dtype {text!r}", line, _COMPLEX))
                elif _name_reason(text) or _module_reason(text):
                    found.append((f"the name {text!r} in a string", line, _name_reason(text) or _module_reason(text)))
        elif isinstance(child, ast.Name) and child.id not in own:
            if _name_reason(child.id):
                found.append((f"{child.id!r}", line, _name_reason(child.id)))
            elif child.id.startswith("__") and child.id != "__name__":
                found.append((f"{child.id!r}", line, _DYNAMIC))
        elif isinstance(child, ast.Attribute):
            if _name_reason(child.attr):
                found.append((f"'.{child.attr}'", line, _name_reason(child.attr)))
            elif child.attr.startswith("__"):
                found.append((f"'.{child.attr}'", line, _DYNAMIC))
        elif isinstance(child, ast.Call) and isinstance(child.func, ast.Name) and child.func.id in ("getattr", "setattr",
                                                                                                     "hasattr", "delattr"):
            name = child.args[1] if len(child.args) > 1 else None
            if not (isinstance(name, ast.Constant) and isinstance(name.value, str)):
                found.append((f"{child.func.id} with a computed name", line, _DYNAMIC))
        elif isinstance(child, ast.Import):
            for alias in child.names:
                reason = _module_reason(alias.name)
                if reason:
                    found.append((f"import {alias.name}", line, reason))
        elif isinstance(child, ast.ImportFrom):
            module = child.module or ""
            for alias in child.names:
                reason = _module_reason(module) or _module_reason(f"{module}.{alias.name}")
                reason = reason or _name_reason(alias.name)
                if alias.name == "*":
                    reason = reason or _DYNAMIC
                if reason:
                    found.append((f"from {module} import {alias.name}", line, reason))
    return found


def _binds(statement):
    """The top-level names a statement binds, per name: a ``from scipy import linalg, optimize`` binds
    ``linalg`` harmlessly and ``optimize`` to a refused module, so each alias is its own binding."""
    if isinstance(statement, (ast.Import, ast.ImportFrom)):
        out = []
        for alias in statement.names:
            name = (alias.asname or alias.name).split(".")[0]
            if isinstance(statement, ast.Import) and alias.asname is None:
                single = ast.Import(names=[ast.alias(name=name)])  # `import scipy.optimize` binds scipy
            else:
                single = type(statement)(**{**{f: getattr(statement, f) for f in statement._fields}, "names": [alias]})
            ast.copy_location(single, statement)
            out.append((name, single))
        return out
    names = set()
    if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        names.add(statement.name)
    else:
        names |= {n.id for n in ast.walk(statement) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    # `global f` inside a function rebinds the top-level f when it runs
    names |= {name for n in ast.walk(statement) if isinstance(n, ast.Global) for name in n.names}
    return [(name, statement) for name in names]


_LOADING = (ast.FunctionDef, ast.AsyncFunctionDef)
_HIDING = {_DYNAMIC} | {REFUSED_MODULES[m] for m in ("importlib", "sys", "builtins", "inspect", "gc", "ctypes", "operator")}


def _locals(node):
    """The names a statement binds for itself: parameters and assignments inside it, less ``global`` ones."""
    declared = {name for n in ast.walk(node) if isinstance(n, ast.Global) for name in n.names}
    local = {n.arg for n in ast.walk(node) if isinstance(n, ast.arg)}
    local |= {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    return local - declared


def _reads(node):
    """The names ``node`` reads from the top level: those it loads, less its own parameters and locals."""
    loaded = {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        return loaded
    return loaded - _locals(node)


def refusals(cells):
    """The names a derivation page refuses to call, each with the message for the student.

    Parameters
    ----------
    cells : list of str
        The submission's code cells (:func:`pca_to_vae_grader.sandboxed.submission.read_cells`).

    Returns
    -------
    dict
        ``{name: message}`` for every top-level name (function, alias, lambda) that reaches a refused
        construct; names not in it pass the audit.
    """
    statements, _ = definitions(cells)
    bindings, run_at_load = {}, []
    for number, module in statements:
        statement = module.body[0]
        for name, part in _binds(statement):
            bindings.setdefault(name, []).append((number, part))
        if isinstance(statement, _LOADING):  # what runs when the def itself runs: decorators, defaults
            loading = statement.decorator_list + statement.args.defaults + [d for d in statement.args.kw_defaults if d]
            run_at_load += [(number, ast.Expr(value=node, lineno=node.lineno)) for node in loading]
        elif not isinstance(statement, (ast.Import, ast.ImportFrom)):
            run_at_load.append((number, statement))

    def first_finding(number, part, seen):
        """The first refused construct in ``part`` or in what it reaches: (thing, cell, line, reason, where)."""
        todo = [(number, part, None)]
        while todo:
            number, part, where = todo.pop()
            found = _findings(part, bindings.keys())
            if found:
                thing, line, reason = found[0]
                return thing, number, line, reason, where
            for name in _reads(part) - seen:
                seen.add(name)
                todo += [(n, p, where or name) for n, p in bindings.get(name, [])]
        return None

    # A statement run at load that hides what it does (globals(), sys.modules, setattr on a module...)
    # could bind any name: then every name is refused.
    for number, statement in run_at_load:
        found = first_finding(number, statement, set())
        if found and found[3] in _HIDING:
            thing, cell, line, reason, _ = found
            message = MESSAGE.format(thing=thing, function="a statement run at load", cell=cell, line=line,
                                     via="", reason=reason)
            return {name: message for name in bindings} | {"*": message}
    out = {}
    for name, parts in bindings.items():
        for number, part in parts:
            found = first_finding(number, part, {name})
            if found:
                thing, cell, line, reason, where = found
                out[name] = MESSAGE.format(thing=thing, function=name, cell=cell, line=line,
                                           via=f", in {where}, which it uses" if where else "", reason=reason)
                break
    return out
