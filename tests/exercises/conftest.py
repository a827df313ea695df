"""The autograder's pytest plugin: options, the ``student`` fixture, points, results.json, the table.

Grade a submission::

    pytest tests/exercises/test_gaussians.py --submission gaussians.ipynb --results results.json

Without ``--submission`` the tests run against the reference solutions in ``solutions/<page>.py``.
``--submission`` may also name a folder holding ``<page>.ipynb`` (or ``.md``, ``.py``) for each page.
Each test is worth the points of its ``@pytest.mark.points(n)`` marker (1 without one). See
``autograder/README.md``.
"""
import os
import sys
import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from autograder import inputs  # noqa: E402
from autograder.compare import GradingFailure  # noqa: E402
from autograder.results import Results, TestResult  # noqa: E402
from autograder.sandbox import Limits, become_subreaper, check  # noqa: E402
from autograder.student import Student  # noqa: E402
from autograder.submission import SUFFIXES  # noqa: E402

SOLUTIONS = Path(__file__).parent / "solutions"


def pytest_addoption(parser):
    group = parser.getgroup("autograder")
    group.addoption("--submission", default=None,
                    help="the submission to grade: a .ipynb, MyST .md or .py file, or a folder of <page>.* files "
                         "(default: the reference solutions)")
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
    seed = _option(config, "seed")
    inputs.set_run_seed(seed if seed is not None else int.from_bytes(os.urandom(8), "little"))
    user = _option(config, "sandbox_user")
    problem = check(user) if user is not None and _option(config, "submission") is not None else None
    if problem:  # one message, before anything is graded (never "0 points" without a reason)
        Results.refuse(_option(config, "results"), problem)
        raise pytest.UsageError(f"autograder: refused to grade: {problem}")
    if _option(config, "submission") is not None and _option(config, "sandbox_user") is None:
        # Grading untrusted code without a sandbox user: orphans the submission leaves stay this
        # process's children, so the grader finds and kills them (autograder.sandbox).
        become_subreaper()


def _option(config, name):
    return config.getoption(name, default=None)


def _page(module):
    name = Path(module.__file__).stem
    return name[len("test_"):] if name.startswith("test_") else name


def _submission_path(config, page):
    given = _option(config, "submission")
    if given is None:
        return SOLUTIONS / f"{page}.py"
    path = Path(given)
    if not path.is_dir():
        return path
    named = [path / f"{page}{suffix}" for suffix in SUFFIXES if (path / f"{page}{suffix}").is_file()]
    if named:
        return named[0]
    candidates = [p for p in sorted(path.iterdir()) if p.suffix in SUFFIXES and p.is_file()]
    return candidates[0] if len(candidates) == 1 else path / f"{page}.ipynb"


def _results(config):
    if not hasattr(config, "_autograder_results"):
        config._autograder_results = Results()
    return config._autograder_results


@pytest.fixture(scope="module")
def student(request):
    """The submission for this test module's page, running in its own process (see autograder.student)."""
    config = request.config
    page = _page(request.module)
    path = _submission_path(config, page)
    submission = Student(
        path,
        time_limit=_option(config, "time_limit") or 10.0,
        load_time_limit=_option(config, "load_time_limit") or 60.0,
        user=_option(config, "sandbox_user"),
        limits=Limits(memory_mb=_option(config, "memory_limit") or Limits.memory_mb),
        trusted=_option(config, "submission") is None,  # the reference solutions call the package
        banned=getattr(request.module, "BANNED_MODULES", ()),  # e.g. torch on the derivation pages
    )
    yield submission
    submission.close()
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
    _results(item.config).tests.append(
        TestResult(name=item.name, page=_page(item.module), max_score=_points(item), passed=report.passed, output=output)
    )


_UNCOLLECTED = []  # notes about test files that could not be collected (one grading process)


def pytest_collectreport(report):
    if report.failed and "exercises" in str(report.fspath):
        # A test file that cannot be collected still leaves a valid results file that says so.
        _UNCOLLECTED.append(f"The grader could not collect {Path(str(report.fspath)).name}:\n{report.longreprtext[-2000:]}")


def pytest_collection_modifyitems(config, items):
    config._autograder_only = bool(items) and all(_graded(item) for item in items)


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
