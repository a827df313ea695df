"""Grading in the student's own kernel: ``check("kl_gauss")`` under an exercise, ``check()`` for the page.

An exercise notebook starts with ::

    from pca_to_vae_grader import Checker
    check = Checker("gaussians")

and each exercise ends with a cell ``check("kl_gauss")``, which runs that function's tests — the same
tests, points and hints as the graded run (Gradescope, the roll-up) — on the function defined in the
notebook, and prints what passed, what failed and why. ``check()`` grades the whole page and prints the
points table, ending with the line ``Score: X / Y``.

The tests run in-process (pytest, with the grader's plugin, :mod:`pca_to_vae_grader.plugin`), on the kernel's own
functions: no file is saved or read, so it works wherever the notebook runs (Colab, Binder, JupyterLab, VS
Code), from any folder. Values cross between the tests and the student's functions as they do in the
sandbox (:mod:`pca_to_vae_grader.sandboxed.codec`: arrays, tensors, numbers, containers; copies both ways), and a reply
becomes a value or a failure through the same code (:func:`pca_to_vae_grader.student.outcome`), so a message
reads the same here and on Gradescope. Each test may run the student's code for ``time_limit`` seconds
(on the kernel's main thread; elsewhere without a limit).

On a page that bans modules (the derivation pages), the check also reads the cells the kernel ran
(IPython's ``In``) and refuses what the graded run's audit of the source refuses
(:mod:`pca_to_vae_grader.audit`): a function that reaches a numerical stand-in for the derivation scores
nothing here too, with the same message, rather than full marks here and none in the grade. A statement
that a later cell replaced (an old version of a function) is not read, as the saved notebook no longer
has it.

This is feedback, not a grade: the student's kernel is theirs, and code that sets out to fool it can
(import the package, change the tests' modules). Grades come from the sandboxed run
(:class:`pca_to_vae_grader.student.Student`), which reads the saved notebook and runs it as another user.
"""
import ast
import contextlib
import io
import signal
import sys
import threading
import time
import traceback
import types

from pca_to_vae_grader import audit, pages
from pca_to_vae_grader.sandboxed import codec
from pca_to_vae_grader.sandboxed.submission import bound_names, without_magics
from pca_to_vae_grader.student import Functions, StudentFailure, outcome

FEEDBACK_NOTE = ("(This check runs your functions in your own kernel, for feedback; your grade comes from the "
                 "grader, which runs your saved notebook in a sandbox.)")


class _TimeLimit(BaseException):
    """Raised in the student's code when its test's time is up (a BaseException: `except Exception` passes it on)."""


class KernelStudent(Functions):
    """The functions of a namespace (a notebook's), called as the sandboxed grader calls a submission's.

    Parameters
    ----------
    namespace : dict
        Where the student's functions are defined (the notebook's globals).
    time_limit : float
        Seconds the student's code may run in one test (all its calls together).
    refused : tuple of str
        Modules the graded run refuses on this page (the package, ``BANNED_MODULES``): a function that uses
        one gets a note saying the graded run will not let it.
    audit_source : bool
        Refuse what the graded run's audit of the source refuses (a page that bans modules), reading the
        cells the kernel ran (:func:`kernel_cells`).
    """

    def __init__(self, namespace, *, time_limit=10.0, refused=(), audit_source=False):
        self.namespace = namespace
        self.time_limit = float(time_limit)
        self._budget = self.time_limit
        self.refused = tuple(refused)
        cells = kernel_cells(namespace) if audit_source else []
        self._refusals = audit.refusals(cells) if cells else {}
        self.problems = []
        self.defined = sorted(k for k, v in namespace.items() if isinstance(v, types.FunctionType)
                              and not k.startswith("_"))
        self.imports = sorted({getattr(v, "__name__", k).split(".")[0] for k, v in namespace.items()
                               if isinstance(v, types.ModuleType)} & set(self.refused))

    def new_test(self):
        """Start the time budget of a new test."""
        self._budget = self.time_limit

    def close(self):
        pass

    def call(self, name, *args, **kwargs):
        """Call the namespace's ``name`` on copies of the arguments; return a copy of its value (as decoded
        by the sandboxed grader) or raise the same :class:`StudentFailure` the graded run would."""
        from pca_to_vae_grader.sandboxed.worker import call  # the sandbox's own call: the same statuses, the same checks

        if name in self._refusals or "*" in self._refusals:
            raise StudentFailure(self._refusals.get(name) or self._refusals["*"])
        function = self.namespace.get(name)
        caught = []

        def recorded(*a, **k):
            try:
                return function(*a, **k)
            except BaseException as error:  # noqa: B036 - kept to show where it happened
                caught.append(error)
                raise

        namespace = {name: recorded} if callable(function) else {}
        request = codec.loads(codec.dumps({"args": codec.to_jsonable(list(args)), "kwargs": codec.to_jsonable(kwargs)}))
        start = time.monotonic()
        with self._limit():
            reply = call(namespace, name, request["args"], request["kwargs"])
        self._budget = max(self._budget - (time.monotonic() - start), 0.0)
        if caught and isinstance(caught[0], _TimeLimit):
            raise StudentFailure(
                f"Time limit: the check stopped the call of {name} after {self.time_limit:g} s (each test may run "
                "your code for that long in all). Look for a loop that never ends, or for work that grows much "
                "faster than it should (a d x d inverse inside a loop).")
        if caught and isinstance(caught[0], KeyboardInterrupt):
            raise KeyboardInterrupt
        if caught and reply.get("status") == "error":
            reply["traceback"] = _traceback(caught[0])
            if self.imports:
                self.problems = [f"your notebook imports {', '.join(self.imports)}, which the graded run refuses "
                                 "on this page"]
        return outcome(name, codec.loads(codec.dumps(reply)), problems=self.problems, defined=self.defined)

    @contextlib.contextmanager
    def _limit(self):
        """SIGALRM after what is left of the test's budget (only the main thread may set it)."""
        if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
            yield
            return

        def stop(signum, frame):
            raise _TimeLimit()

        previous = signal.signal(signal.SIGALRM, stop)
        signal.setitimer(signal.ITIMER_REAL, max(self._budget, 1e-3))
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


def kernel_cells(namespace):
    """The cells a kernel ran (IPython's ``In``, numbered as Jupyter numbers them), as the saved notebook has them.

    A top-level statement is dropped (its lines left blank, so line numbers hold) where a later cell binds
    all of its names again: an old version of a function that the student has since replaced is not in the
    saved notebook, and must not be audited. Without IPython's history (plain Python), no cells.

    Returns
    -------
    list of str
        Cell n is ``In[n]``; empty strings where nothing is left.
    """
    history = namespace.get("In")
    if not isinstance(history, list) or len(history) < 2:
        return []
    cells = [without_magics(str(source)) for source in history[1:]]
    statements = []  # (cell, first line, last line, names bound)
    for number, source in enumerate(cells):
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for statement in tree.body:
            first = min([statement.lineno] + [d.lineno for d in getattr(statement, "decorator_list", [])])
            statements.append((number, first, statement.end_lineno, bound_names(statement)))
    rebound = set()  # the names a later statement binds
    lines = [source.split("\n") for source in cells]
    for number, first, last, names in reversed(statements):
        if names and names <= rebound:
            lines[number][first - 1:last] = [""] * (last - first + 1)
        rebound |= names
    return ["\n".join(cell) for cell in lines]


def _traceback(error):
    """The frames of the student's code (not the grader's, not numpy's) where ``error`` happened."""
    frames = [f for f in traceback.extract_tb(error.__traceback__)
              if "site-packages" not in f.filename and "/pca_to_vae_grader/" not in f.filename.replace("\\", "/")
              and f.name != "recorded"]
    return "\n".join(f"  {f.filename}, line {f.lineno}, in {f.name}" for f in frames[-6:])


class _InKernel:
    """The pytest plugin of one check: the namespace to grade, the exercise to keep, the results."""

    def __init__(self, namespace, page, exercise, time_limit):
        self.namespace, self.page, self.exercise, self.time_limit = namespace, page, exercise, time_limit
        self.results = None
        self.uncollected = []

    def pytest_configure(self, config):
        config._autograder_kernel = self

    def pytest_collection_modifyitems(self, config, items):
        if self.exercise is None:
            return
        info = pages.page(self.page)
        kept = [item for item in items if info.exercise_of(item.name) == self.exercise]
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept

    def pytest_sessionfinish(self, session):
        self.results = getattr(session.config, "_autograder_results", None)
        self.uncollected = getattr(session.config, "_autograder_uncollected", [])


class Checker:
    """``check = Checker("gaussians")``; then ``check("kl_gauss")`` for one exercise, ``check()`` for the page.

    Parameters
    ----------
    page : str
        The exercise page (``gaussians`` for ``gaussians.ipynb``).
    namespace : dict, optional
        Where the functions are defined; default: the globals of the code that made the checker
        (the notebook's).
    time_limit : float
        Seconds the student's code may run in one test.
    """

    def __init__(self, page, namespace=None, *, time_limit=10.0):
        self.page = pages.page(page).name
        self.namespace = namespace if namespace is not None else sys._getframe(1).f_globals
        self.time_limit = float(time_limit)

    def __repr__(self):
        return f"Checker({self.page!r}): check('<function>') for one exercise, check() for the page"

    def __call__(self, exercise=None):
        """Run the tests of ``exercise`` (a function's name; all of the page's without one) and print the report.

        Returns
        -------
        pca_to_vae_grader.results.Results
            The tests' outcomes (also printed); None where the tests could not run.
        """
        results = self.run(exercise)
        print("\n".join(self.report(results, exercise)))

    def run(self, exercise=None):
        """The outcomes, as :class:`pca_to_vae_grader.results.Results`, of the tests of ``exercise`` (or the page)."""
        import pytest

        info = pages.page(self.page)
        if exercise is not None and exercise not in info.exercises:
            raise ValueError(f"{exercise!r} is not an exercise of {self.page}; its exercises are "
                             f"{', '.join(info.exercises)}")
        plugin = _InKernel(self.namespace, self.page, exercise, self.time_limit)
        args = [str(info.tests), "-q", "-p", "no:cacheprovider", "--rootdir", str(info.tests.parent),
                "-o", "addopts=", "--capture=sys", "--time-limit", str(self.time_limit), "-W", "ignore"]
        output = io.StringIO()
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            pytest.main(args, plugins=[plugin])
        if plugin.results is None or (not plugin.results.tests and plugin.uncollected):
            raise RuntimeError(f"the tests of {self.page} did not run:\n" + "\n".join(plugin.uncollected)
                               + output.getvalue()[-3000:])
        return plugin.results

    def report(self, results, exercise=None):
        """The lines printed: each test with its points and, when it failed, why; then the total."""
        lines = []
        for test in results.tests:
            mark = "ok    " if test.passed else "FAILED"
            if exercise is not None or not test.passed:  # the page's table below lists the others
                lines.append(f"{mark} {test.score:g} / {test.max_score:g}  {test.label}")
            if not test.passed:
                lines += ["         " + line for line in test.output.splitlines()]
        if exercise is not None:
            lines.append(f"{exercise}: {results.score:g} / {results.max_score:g} points")
            lines.append(FEEDBACK_NOTE)
        else:
            lines.append("")
            lines += results.table()
            lines.append(FEEDBACK_NOTE)
            lines.append(f"Score: {results.score:g} / {results.max_score:g}")
        return lines
