"""The grader's pytest plugin: options, the ``student`` fixture, points, results.json, the table.

The pages' tests (``pca_to_vae_grader/tests/test_<page>.py``) load it from their ``conftest.py``. Grade a
submission::

    pytest .../pca_to_vae_grader/tests/test_gaussians.py --submission gaussians.ipynb --results results.json

(``python -m pca_to_vae_grader grade gaussians gaussians.ipynb`` finds the tests for you.) ``--submission``
may also name a folder holding ``<page>.ipynb`` (or ``.md``, ``.py``) for each page. ``--solutions DIR``
grades the reference solutions ``DIR/<page>.py`` instead, which may import the package (the repository's
``tests/exercises/solutions``; they do not ship). Each test is worth the points of its
``@pytest.mark.points(n)`` marker (1 without one), or what ``--course`` sets. See the package's README.md.
"""
import os
import zlib
from pathlib import Path

import pytest

from pca_to_vae_grader import inputs, pages
from pca_to_vae_grader.compare import GradingFailure
from pca_to_vae_grader.course import Course
from pca_to_vae_grader.notebook import KernelStudent
from pca_to_vae_grader.results import Results, TestResult
from pca_to_vae_grader.sandbox import Limits, become_subreaper, check
from pca_to_vae_grader.sandboxed.submission import SUFFIXES
from pca_to_vae_grader.student import Student


def pytest_addoption(parser):
    group = parser.getgroup("autograder")
    group.addoption("--submission", default=None,
                    help="the submission to grade: a .ipynb, MyST .md or .py file, or a folder of <page>.* files "
                         "(or --solutions)")
    group.addoption("--solutions", default=None,
                    help="grade the reference solutions DIR/<page>.py instead of a submission (they may import the "
                         "package; the repository's tests/exercises/solutions)")
    group.addoption("--course", default=None,
                    help="a course file (TOML, see pca_to_vae_grader.course): which pages count, and per exercise "
                         "its points and its visibility on Gradescope")
    group.addoption("--results", default=None, help="write the scores to this file in Gradescope's results.json format")
    group.addoption("--time-limit", type=float, default=10.0, help="seconds the submission's code may run in one test (all its calls together)")
    group.addoption("--load-time-limit", type=float, default=60.0,
                    help="seconds loading the submission (imports and definitions) may take")
    group.addoption("--sandbox-user", default=None,
                    help="run the submission as this user (needs root; used on Gradescope). Without one the "
                         "grader protects against accidents, not against a submission that attacks it")
    group.addoption("--memory-limit", type=int, default=Limits.memory_mb,
                    help="address space of the submission's process, in MiB")
    group.addoption("--seed", type=int, default=None,
                    help="the seed of this run's random test inputs (default: a fresh one per run, "
                         "which the submission cannot see); give the one printed to reproduce a run")
    group.addoption("--sweep", type=int, default=1,
                    help="run each test under this many consecutive seeds, from this run's seed on; a "
                         "failure names the seed that reproduces it (checks that the tests and the reference "
                         "solutions hold for every draw of the inputs, e.g. --sweep 100 after writing a test)")


def pytest_configure(config):
    global _UNCOLLECTED
    config._autograder_uncollected = _UNCOLLECTED = []  # a new list per run (a kernel checks many times)
    config.addinivalue_line("markers", "points(n): points an exercise test is worth in the autograder")
    config._autograder_course = Course()
    if _option(config, "course"):
        try:
            config._autograder_course = Course.read(_option(config, "course"))
        except ValueError as error:
            raise pytest.UsageError(str(error)) from None
    seed = _option(config, "seed")
    inputs.set_run_seed(seed if seed is not None else int.from_bytes(os.urandom(8), "little"))
    user = _option(config, "sandbox_user")
    problem = check(user) if user is not None and _option(config, "submission") is not None else None
    if problem:  # one message, before anything is graded (never "0 points" without a reason)
        Results.refuse(_option(config, "results"), problem)
        raise pytest.UsageError(f"autograder: refused to grade: {problem}")
    if _option(config, "submission") is not None and _option(config, "sandbox_user") is None:
        # Grading untrusted code without a sandbox user: orphans the submission leaves stay this
        # process's children, so the grader finds and kills them (pca_to_vae_grader.sandbox).
        become_subreaper()


def _option(config, name):
    return config.getoption(name, default=None)


def _page(module):
    name = Path(module.__file__).stem
    return name[len("test_"):] if name.startswith("test_") else name


def _submission_path(config, page):
    """The file to grade for ``page``, and None; or (None, why) when a folder holds several candidates.

    In a folder: ``<page>.ipynb`` (``.md``, ``.py``); otherwise its only notebook, whatever its name; otherwise
    its only ``.md`` or ``.py`` file.
    """

    given = _option(config, "submission")
    if given is None:
        solutions = _option(config, "solutions")
        if solutions is None:
            raise pytest.UsageError("give the submission to grade (--submission FILE or FOLDER), or --solutions DIR")
        return Path(solutions) / f"{page}.py", None
    path = Path(given)
    if not path.is_dir():
        return path, None
    named = [path / f"{page}{suffix}" for suffix in SUFFIXES if (path / f"{page}{suffix}").is_file()]
    if named:
        return named[0], None
    candidates = [p for p in sorted(path.iterdir()) if p.suffix in SUFFIXES and p.is_file()
                  and not p.name.startswith(".")]
    for group in ([p for p in candidates if p.suffix == ".ipynb"], candidates):
        if len(group) == 1:
            return group[0], None
    if not candidates:
        return path / f"{page}.ipynb", None  # "no submission file at ..."
    return None, (f"the upload holds {len(candidates)} files the grader could grade "
                  f"({', '.join(p.name for p in candidates)}) and none is named {page}.ipynb (or {page}.md, "
                  f"{page}.py): upload only your notebook, or name the one to grade {page}.ipynb")


def _results(config):
    if not hasattr(config, "_autograder_results"):
        config._autograder_results = Results()
    return config._autograder_results


@pytest.fixture(scope="module")
def student(request):
    """The submission for this test module's page, running in its own process (see pca_to_vae_grader.student);
    in a check from a notebook (pca_to_vae_grader.notebook), the functions of the notebook's own kernel."""
    config = request.config
    page = _page(request.module)
    kernel = getattr(config, "_autograder_kernel", None)
    if kernel is not None:
        banned = getattr(request.module, "BANNED_MODULES", ())
        yield KernelStudent(kernel.namespace, time_limit=kernel.time_limit, refused=("lgm", "nlgm", *banned),
                            audit_source=bool(banned))
        return
    path, unclear = _submission_path(config, page)
    submission = Student(
        path or Path(_option(config, "submission")),
        time_limit=_option(config, "time_limit") or 10.0,
        load_time_limit=_option(config, "load_time_limit") or 60.0,
        user=_option(config, "sandbox_user"),
        limits=Limits(memory_mb=_option(config, "memory_limit") or Limits.memory_mb),
        trusted=_option(config, "submission") is None,  # --solutions: the reference solutions call the package
        banned=getattr(request.module, "BANNED_MODULES", ()),  # e.g. torch on the derivation pages
    )
    if unclear:  # several candidates: grade none of them, and say why in every test and at the top
        submission.problems[:] = [unclear]
    yield submission
    submission.close()
    if unclear or not path.is_file():
        _results(config).notes.append(f"{page}: nothing was graded: {unclear or f'no submission file {path.name}'}.")
        return
    notes = [f"{page}: graded {path.name}; loading it took {submission.load_seconds:.2g} s "
             f"({submission.loads} load{'s' if submission.loads != 1 else ''}, budget {submission.load_time_limit:g} s)."]
    notes += [f"{page}: {problem}" for problem in submission.problems]
    if submission.imports:
        notes.append(f"{page}: the submission tried to import {', '.join(submission.imports)}, which the grader "
                     "refuses: the exercises ask for the student's own implementation.")
    if submission.left_behind:
        notes.append(f"{page}: the grader killed {submission.left_behind} process(es) the submission left running.")
    _results(config).notes.extend(notes)


def _test_rng(item):
    return inputs.rng(zlib.crc32(item.name.encode()))


@pytest.fixture
def rng(request):
    """This test's generator: from the grading run's seed (new every run, ``--seed`` reproduces one) and its name."""
    return _test_rng(request.node)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    """With ``--sweep N``: the test's body under N consecutive run seeds; stop at the first that fails."""
    sweep = _option(pyfuncitem.config, "sweep") or 1
    if sweep <= 1:
        return None
    args = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    first = inputs.run_seed()
    try:
        for seed in range(first, first + sweep):
            inputs.set_run_seed(seed)
            if "rng" in args:
                args["rng"] = _test_rng(pyfuncitem)
            if "student" in args:
                args["student"].new_test()
            try:
                pyfuncitem.obj(**args)
            except GradingFailure as failure:  # its message is the report: name the seed there
                failure.args = (f"With --seed {inputs.run_seed()}: {failure.args[0] if failure.args else ''}",)
                raise
            except Exception as error:
                error.add_note(f"With --seed {inputs.run_seed()}.")
                raise
    finally:
        inputs.set_run_seed(first)
    return True


@pytest.fixture(autouse=True)
def _time_limit_per_test(request):
    """Each test's calls of the submission share one time limit (--time-limit seconds)."""
    if "student" in request.fixturenames:
        request.getfixturevalue("student").new_test()


def _points(item):
    marker = item.get_closest_marker("points")
    return float(marker.args[0]) if marker is not None and marker.args else 1.0


def _graded(item):
    return item.get_closest_marker("points") is not None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not _graded(item):
        return
    if call.excinfo is not None and isinstance(call.excinfo.value, GradingFailure):
        report.longrepr = str(call.excinfo.value)  # the teaching message, without the grader's traceback
    done = report.when == "call" or (report.when == "setup" and not report.passed)
    if not done:
        return
    if report.passed:
        output = "Passed."
    elif report.skipped:
        output = f"Skipped: {report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr}"
    elif isinstance(report.longrepr, str):
        output = report.longrepr
    else:
        error = call.excinfo.value if call.excinfo is not None else None
        output = (f"The test itself failed, not your code (please tell the instructor): {error!r}\n"
                  + report.longreprtext[-1500:])
    page, function = _exercise(item)
    label = pages.describe(page, item.name, getattr(item, "function", None).__doc__ if hasattr(item, "function") else None)
    config = item.config
    points = _points(item) * getattr(config, "_autograder_scale", {}).get((page, function), 1.0)
    _results(config).tests.append(TestResult(
        name=item.name, page=page, max_score=points, passed=report.passed, output=output, label=label,
        function=function or "", visibility=config._autograder_course.visibility(page, function)))


_UNCOLLECTED = []  # notes about test files that could not be collected (this grading run)


def pytest_collectreport(report):
    if report.failed and Path(str(report.fspath)).name.startswith("test_"):
        # A test file that cannot be collected still leaves a valid results file that says so.
        _UNCOLLECTED.append(f"The grader could not collect {Path(str(report.fspath)).name}:\n{report.longreprtext[-2000:]}")


def pytest_collection_modifyitems(config, items):
    course = config._autograder_course
    left_out = [item for item in items if _graded(item) and not course.includes(_page(item.module))]
    if left_out:  # pages the course does not grade
        config.hook.pytest_deselected(items=left_out)
        items[:] = [item for item in items if item not in left_out]
    # The course's points of an exercise are shared among its tests in the proportions of their markers.
    markers = {}
    for item in items:
        if _graded(item):
            key = _exercise(item)
            markers[key] = markers.get(key, 0.0) + _points(item)
    config._autograder_scale = {key: (course.points(*key) / total if course.points(*key) is not None and total else 1.0)
                                for key, total in markers.items()}
    config._autograder_only = bool(items) and all(_graded(item) for item in items)


def _exercise(item):
    """(page, function) of a test: the function its name starts with (pca_to_vae_grader.pages)."""
    page = _page(item.module)
    info = pages.PAGES.get(page)
    return page, info.exercise_of(item.name) if info else None


def pytest_sessionfinish(session):
    results = _results(session.config)
    results.notes.extend(_UNCOLLECTED)
    path = _option(session.config, "results")
    if path:
        results.write(path)  # last: every worker and every process of the sandbox is gone by now


def pytest_terminal_summary(terminalreporter, config):
    results = _results(config)
    if not results.tests:
        return
    graded_run = _option(config, "submission") or _option(config, "results")
    if not (graded_run or getattr(config, "_autograder_only", False)):
        return  # a run of the whole test suite: the table would be noise among the other tests
    terminalreporter.section("autograder points")
    terminalreporter.write_line(f"random inputs of this run: --seed {inputs.run_seed()}")
    if _option(config, "submission") is not None and _option(config, "sandbox_user") is None:
        terminalreporter.write_line(
            "Graded without --sandbox-user: the submission ran as you. This protects against accidents "
            "(crashes, endless loops, stray prints and files), not against a submission written to attack the "
            "grader (see book/exercises/instructors.md).")
    for line in results.notes:
        terminalreporter.write_line(line)
    for line in results.table():
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"Score: {results.score:g} / {results.max_score:g}")
