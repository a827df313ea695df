"""Tests of the autograder itself, over every exercise page in book/exercises/.

For each page: the untouched stubs (the page itself, graded as a MyST notebook) score 0 with a clear
message; the reference solutions score full marks; the "mistakes" submission (one classic mistake
per exercise, tests/exercises/mistakes/<page>.py) loses points on a test named after each function,
with the hint it declares. Then the machinery: an infinite loop, sys.exit(), a segfault, an
exception, a crash while loading, and a submission that prints and writes a forged results file
all finish within the time limits with a valid results file and lose only their own points.

Each grading is a real ``pytest tests/exercises/test_<page>.py --submission ... --results ...``
subprocess; the three gradings of all pages run in parallel, once per session.
"""
import ast
import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pca_to_vae_grader.sandboxed import codec
from pca_to_vae_grader.student import Student, StudentFailure
from pca_to_vae_grader.sandboxed.submission import definitions, read_cells

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
BOOK = ROOT / "book" / "exercises"
TESTS = ROOT / "pca_to_vae_grader" / "tests"  # the pages' tests ship with the grader
SOLUTIONS = HERE / "solutions"  # the reference solutions do not
NOT_EXERCISES = {"index", "instructors"}
PAGES = sorted(p.stem for p in BOOK.glob("*.md") if p.stem not in NOT_EXERCISES)


def grade(tmp, *args, submission=None, files=None, timeout=240):
    """Run the grader in a subprocess; return (results dict, completed process, seconds)."""
    results = Path(tmp) / "results.json"
    files = files or [str(TESTS / f"test_{page}.py") for page in PAGES if (TESTS / f"test_{page}.py").exists()]
    # Generous limits for a busy CI machine; a test's own "--time-limit" comes later and wins.
    command = [sys.executable, "-m", "pytest", *files, "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
               "--results", str(results), "--time-limit", "30", "--load-time-limit", "180", *args]
    command += ["--submission", str(submission)] if submission is not None else ["--solutions", str(SOLUTIONS)]
    start = time.monotonic()
    process = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=timeout)
    elapsed = time.monotonic() - start
    assert results.exists(), f"no results file:\n{process.stdout[-3000:]}\n{process.stderr[-3000:]}"
    return json.loads(results.read_text()), process, elapsed


@pytest.fixture(scope="session")
def gradings(tmp_path_factory):
    """The stubs, the solutions and the mistakes of all pages, graded in parallel."""
    # The reference solutions must score full marks under every draw of the inputs: each run of the
    # suite tries three consecutive seeds from a fresh one (make sweep tries 100).
    # The answer keys (numpy/scipy, graded as a student's submission: the package refused) likewise.
    runs = {"stubs": (BOOK, ()), "solutions": (None, ("--sweep", "3")), "mistakes": (HERE / "mistakes", ()),
            "answer_keys": (HERE / "answer_keys", ("--sweep", "3"))}
    with ThreadPoolExecutor(len(runs)) as pool:
        # Every page, four gradings at once: minutes on a busy 2-core machine (each alone takes about 20 s of CPU).
        futures = {kind: pool.submit(grade, tmp_path_factory.mktemp(kind), *args, submission=path, timeout=900)
                   for kind, (path, args) in runs.items()}
        return {kind: future.result()[0] for kind, future in futures.items()}


def _tests(results, page):
    return [t for t in results["tests"] if t.get("tags") == [page]]


def _exercises(page):
    """The functions a page asks for: the stubs whose body raises NotImplementedError."""
    names = []
    for source in read_cells(BOOK / f"{page}.md"):
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and any(
                isinstance(n, ast.Raise) and "NotImplementedError" in ast.unparse(n) for n in ast.walk(node)
            ):
                names.append(node.name)
    return names


def test_every_page_has_tests_solutions_and_mistakes():
    assert PAGES, "no exercise pages found"
    for page in PAGES:
        for path in (TESTS / f"test_{page}.py", SOLUTIONS / f"{page}.py", HERE / "mistakes" / f"{page}.py",
                     HERE / "answer_keys" / f"{page}.py"):
            assert path.exists(), f"exercise page {page}.md needs {path.relative_to(ROOT)}"
        assert len(_exercises(page)) >= 2, f"{page}.md should have at least two exercises (stubs)"


def test_the_index_lists_every_page_and_exercise():
    index = (BOOK / "index.md").read_text()
    for page in PAGES:
        assert f"{{doc}}`{page}`" in index, f"exercises/index.md does not link {page}"
        missing = [name for name in _exercises(page) if f"`{name}`" not in index]
        assert not missing, f"exercises/index.md does not list {missing} of {page}"


@pytest.mark.parametrize("page", PAGES)
def test_every_test_is_named_after_an_exercise(gradings, page):
    exercises = _exercises(page)
    tests = _tests(gradings["solutions"], page)
    assert tests, f"no graded tests for {page}"
    for test in tests:
        assert any(test["extra_data"]["test"].startswith(f"test_{name}") for name in exercises), (
            f"{test['name']} does not start with test_<function> for a function of {page}.md: {exercises}")
    for name in exercises:
        assert any(t["extra_data"]["test"].startswith(f"test_{name}") for t in tests), f"{page}: no test for {name}"


@pytest.mark.parametrize("page", PAGES)
def test_stubs_score_zero(gradings, page):
    tests = _tests(gradings["stubs"], page)
    assert tests
    for test in tests:
        assert test["score"] == 0, test
        assert "NotImplementedError" in test["output"], test


@pytest.mark.parametrize("page", PAGES)
def test_solutions_score_full_marks(gradings, page):
    tests = _tests(gradings["solutions"], page)
    assert tests
    failed = [f"{t['name']}: {t['output']}" for t in tests if t["score"] != t["max_score"]]
    assert not failed, "\n".join(failed)
    assert all(t["max_score"] > 0 for t in tests)


@pytest.mark.parametrize("page", PAGES)
def test_answer_keys_score_full_marks_through_the_sandbox_without_the_package(gradings, page):
    # What an instructor uploads to check a Gradescope assignment end to end: a full-mark submission that
    # a student could have written (numpy, scipy, torch where the page allows; never lgm or nlgm).
    key = HERE / "answer_keys" / f"{page}.py"
    imported = {alias.name.split(".")[0] for node in ast.walk(ast.parse(key.read_text()))
                if isinstance(node, (ast.Import, ast.ImportFrom))
                for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])}
    assert not imported & {"lgm", "nlgm"}, f"{key.name} imports {imported & {'lgm', 'nlgm'}}"
    tests = _tests(gradings["answer_keys"], page)
    assert tests and all(t["max_score"] > 0 for t in tests)
    failed = [f"{t['name']}: {t['output']}" for t in tests if t["score"] != t["max_score"]]
    assert not failed, "\n".join(failed)
    assert f"{page}: graded {page}.py" in gradings["answer_keys"]["output"]
    assert "tried to import" not in gradings["answer_keys"]["output"]


@pytest.mark.parametrize("page", PAGES)
def test_each_classic_mistake_loses_points_with_its_hint(gradings, page):
    source = (HERE / "mistakes" / f"{page}.py").read_text()
    hints = next(ast.literal_eval(node.value) for node in ast.parse(source).body
                 if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "HINTS")
    assert set(hints) == set(_exercises(page)), "mistakes/<page>.py needs one hint per exercise of the page"
    tests = _tests(gradings["mistakes"], page)
    for name, hint in hints.items():
        failed = [t for t in tests if t["extra_data"]["test"].startswith(f"test_{name}") and t["score"] < t["max_score"]]
        assert failed, f"the mistake in {name} costs no points"
        assert any(hint in t["output"] for t in failed), (
            f"no failing test of {name} names the mistake {hint!r}; outputs:\n" + "\n".join(t["output"] for t in failed))


def test_the_lectures_d_update_fails_the_test_of_ems_guarantee(gradings):
    # mistakes/lgm.py's em_step uses the old A^k in the D-update (the lecture's bug). Comparing with the
    # reference catches it; EM's guarantee (the likelihood never decreases, every psi_i stays positive)
    # must catch it too, from the test's own starts, since that is the property the bug breaks.
    test = next(t for t in _tests(gradings["mistakes"], "lgm") if t["extra_data"]["test"] == "test_em_step_never_decreases_loglik")
    assert test["score"] == 0, test
    assert "use the old A^k instead of the new A^{k+1} in the D-update" in test["output"], test


HOSTILE = '''
import os, sys

import numpy as np

print("score: 100")  # printing cannot change a score
_ = sys.exit(3)  # an assignment that exits while loading: skipped with a note
broken = 1 / 0  # an error while loading: skipped with a note


def gaussian_logpdf(X, mu, Sigma):
    sys.exit(0)  # inside a function: reported as SystemExit, the process goes on


def gaussian_mle(X):
    while True:  # an infinite loop
        pass


def condition_gaussian(mu, Sigma, obs_idx, x_obs):
    import ctypes
    ctypes.string_at(0)  # a segfault


def kl_gauss(m0, S0, m1, S1):
    raise RuntimeError("an ordinary error")


def lowrank_solve_logdet(A, D, B):
    try:
        with open({forged!r}, "w") as stream:  # a forged results file: refused (and overwritten by the grader)
            stream.write('{{"score": 1000, "tests": []}}')
    except PermissionError as error:
        print(error)
    print('{{"status": "ok", "value": 1}}')  # a forged reply on standard output
    C = A @ A.T + np.diag(D)
    return np.linalg.solve(C, B), np.linalg.slogdet(C)[1]
'''


def test_hostile_submission_finishes_and_loses_only_its_own_points(tmp_path):
    submission = tmp_path / "hostile.py"
    submission.write_text(HOSTILE.format(forged=str(tmp_path / "results.json")))
    results, process, elapsed = grade(tmp_path, "--time-limit", "2", submission=submission,
                                      files=[str(TESTS / "test_gaussians.py")])
    by_function = {}
    for test in results["tests"]:
        function = next(f for f in ("gaussian_logpdf", "gaussian_mle", "condition_gaussian", "kl_gauss",
                                    "lowrank_solve_logdet") if test["extra_data"]["test"].startswith(f"test_{f}"))
        by_function.setdefault(function, []).append(test)
    assert all(t["score"] == 0 and "SystemExit" in t["output"] for t in by_function["gaussian_logpdf"])
    assert all(t["score"] == 0 and "Time limit" in t["output"] for t in by_function["gaussian_mle"])
    assert all(t["score"] == 0 and "SIGSEGV" in t["output"] for t in by_function["condition_gaussian"])
    assert all(t["score"] == 0 and "RuntimeError" in t["output"] for t in by_function["kl_gauss"])
    assert all(t["score"] == t["max_score"] for t in by_function["lowrank_solve_logdet"])
    assert results["score"] == sum(t["max_score"] for t in by_function["lowrank_solve_logdet"])
    assert "ZeroDivisionError" in results["output"] and "SystemExit" in results["output"]
    n_timeouts = len(by_function["gaussian_mle"])
    assert elapsed < 2 * n_timeouts + 60, f"grading took {elapsed:.0f} s"


def test_a_sweep_finds_a_bug_that_only_some_draws_reach_and_names_a_seed_that_reproduces_it(tmp_path):
    # An honest gaussian_logpdf, wrong by 1 nat whenever the first entry of mu exceeds 1 (about one
    # draw in six): a single run may miss it; ten consecutive seeds (the chance that every case of
    # every seed misses is below 1e-3, and fixed by --seed) find it, and the seed the report names
    # reproduces the failure alone.
    honest = (HERE / "answer_keys" / "gaussians.py").read_text().replace("def gaussian_logpdf(", "def _right(")
    submission = tmp_path / "gaussians.py"
    submission.write_text(honest + (
        "\n\ndef gaussian_logpdf(X, mu, Sigma):\n"
        "    value = _right(X, mu, Sigma)\n"
        "    return value + 1.0 if np.ravel(mu)[0] > 1.0 else value\n"))
    files = [str(TESTS / "test_gaussians.py")]
    swept, _, _ = grade(tmp_path, "-k", "gaussian_logpdf", "--seed", "5", "--sweep", "10", submission=submission,
                        files=files)
    failed = [t for t in swept["tests"] if t["score"] < t["max_score"]]
    assert failed and swept["score"] < swept["max_score"]
    assert all(t["output"].startswith("With --seed ") for t in failed)
    seed = failed[0]["output"].split()[2].rstrip(":")
    assert 5 <= int(seed) < 15
    alone, _, _ = grade(tmp_path, "-k", failed[0]["extra_data"]["test"], "--seed", seed, submission=submission, files=files)
    assert [t["score"] for t in alone["tests"]] == [0]
    assert "With --seed" not in alone["tests"][0]["output"]  # a plain run's report, the same failure


def test_crash_while_loading_fails_every_test_quickly(tmp_path):
    submission = tmp_path / "crash.py"
    submission.write_text("import os\n_ = os._exit(7)\n\ndef gaussian_logpdf(X, mu, Sigma):\n    return 0\n")
    results, process, elapsed = grade(tmp_path, "--time-limit", "2", "-k", "gaussian_logpdf", submission=submission,
                                      files=[str(TESTS / "test_gaussians.py")])
    assert results["score"] == 0 and results["tests"]
    assert all("exit code 7" in t["output"] for t in results["tests"])
    assert elapsed < 60


def test_missing_submission_gives_a_valid_results_file(tmp_path):
    results, _, _ = grade(tmp_path, "-k", "gaussian_mle", submission=tmp_path / "missing.ipynb",
                          files=[str(TESTS / "test_gaussians.py")])
    assert results["score"] == 0 and results["tests"]
    assert all(t["status"] == "failed" and "could not read" in t["output"] for t in results["tests"])


def test_unreadable_submissions_fail_with_a_message(tmp_path):
    cases = {"bad.ipynb": ("not json", "not a readable Jupyter notebook"),
             "bad.txt": ("x = 1", "must be one of"),
             "syntax.py": ("def f(:\n", "syntax error")}
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        student = Student(tmp_path / name, time_limit=5)
        try:
            with pytest.raises(StudentFailure, match="could not read|does not define") as failure:
                student.f()
        finally:
            student.close()
        assert message in str(failure.value), str(failure.value)


def test_a_page_can_ban_a_module_with_a_message_that_says_why(tmp_path):
    # The derivation pages set BANNED_MODULES = ("torch", ...): autograd would do the derivation. The
    # grader's audit of the source (pca_to_vae_grader.audit) refuses the functions that reach it (also through
    # importlib) before they run, with a message that says why; the worker's guard refuses the import at
    # load time, the rest of the submission still loads, and the grader notes the import.
    (tmp_path / "sub.py").write_text(
        "import numpy as np\nimport torch\n\n\ndef f():\n    return torch.ones(2)\n\n\n"
        "def g():\n    import importlib\n    return importlib.import_module('torch.nn').__name__\n\n\n"
        "def h():\n    return np.ones(2)\n")
    student = Student(tmp_path / "sub.py", time_limit=20, banned=("torch",))
    try:
        with pytest.raises(StudentFailure, match="refuses import torch") as failure:
            student.f()
        assert "automatic differentiation would do the derivation" in str(failure.value)
        with pytest.raises(StudentFailure, match="refuses import importlib"):
            student.g()
        assert list(student.h()) == [1.0, 1.0]
        assert student.imports == ["torch"]
    finally:
        student.close()
    # Without the ban (every other page) the same submission may use torch.
    student = Student(tmp_path / "sub.py", time_limit=20)
    try:
        assert list(student.f()) == [1.0, 1.0]
    finally:
        student.close()


def test_values_cross_as_json_never_as_pickle():
    import numpy as np

    value = (np.arange(6.0).reshape(2, 3), {"k": [1, 2.5, None]}, np.float32(1.5), "text")
    back = codec.from_jsonable(json.loads(json.dumps(codec.to_jsonable(value))))
    assert np.array_equal(back[0], value[0]) and back[1] == value[1] and back[2] == value[2] and back[3] == "text"
    with pytest.raises(codec.CodecError, match="object"):
        codec.to_jsonable(np.array([object()]))
    with pytest.raises(codec.CodecError, match="generator"):
        codec.to_jsonable(x for x in [])
    with pytest.raises(codec.CodecError):
        codec.from_jsonable({"__ndarray__": {"dtype": "|O", "shape": [1], "data": ""}})


def test_only_definitions_of_a_notebook_run():
    cells = ["import numpy as np\nrng = np.random.default_rng(0)",
             "def f(x):\n    return 2 * x",
             "y = f(3)\nz = y + 1\nprint(z)\nassert False\nw = np.ones(2)\ng = f\nh = list(map(f, [1]))",
             "%timeit f(1)\nC = 4"]
    statements, problems = definitions(cells)
    kept = [ast.unparse(module) for _, module in statements]
    assert kept == ["import numpy as np", "rng = np.random.default_rng(0)", "def f(x):\n    return 2 * x",
                    "w = np.ones(2)", "g = f", "C = 4"]
    assert not problems
    assert definitions(["def g(:"])[1] and "syntax error" in definitions(["def g(:"])[1][0]


def test_gradescope_zip_holds_what_run_autograder_needs(tmp_path):
    import zipfile

    from pca_to_vae_grader.gradescope import build_zip

    archive = build_zip("gaussians", tmp_path / "dist")
    with zipfile.ZipFile(archive) as z:
        names = set(z.namelist())
        assert {"setup.sh", "run_autograder", "pca_to_vae_grader/tests/test_gaussians.py",
                "pca_to_vae_grader/tests/conftest.py", "pca_to_vae_grader/plugin.py",
                "pca_to_vae_grader/sandboxed/worker.py", "lgm/__init__.py", "pyproject.toml"} <= names
        assert not any("solutions" in n or "mistakes" in n or "test_autograder" in n for n in names)
        assert z.getinfo("run_autograder").external_attr >> 16 & 0o111
        # Gradescope's layout, under tmp_path instead of /autograder.
        home = tmp_path / "autograder"
        z.extractall(home / "source")
    for name in ("setup.sh", "run_autograder"):
        assert subprocess.run(["bash", "-n", str(home / "source" / name)]).returncode == 0, name
    # Ubuntu 24.04's system Python refuses pip installs (PEP 668): every install goes into the venv.
    setup = (home / "source" / "setup.sh").read_text()
    installs = [line for line in setup.splitlines() if "pip install" in line and not line.startswith("#")]
    assert installs and all(line.startswith("/autograder/venv/bin/python -m pip") for line in installs), setup
    assert "chmod -R a+rX /autograder/venv" in setup  # the sandbox user must be able to run the venv's Python
    run = (home / "source" / "run_autograder").read_text()
    assert "--sandbox-user" in run and "refuse" in run
    # Grading in this layout, as the user nobody, is tested in test_sandbox.py.


def test_a_notebook_submission_is_graded(tmp_path):
    # The page as students download it (jupytext, as book/_ext/notebooks.py writes it), with a
    # last cell holding a student's working functions (numpy and scipy, not the package): later definitions replace the stubs, so it scores full marks.
    import jupytext
    from nbformat.v4 import new_code_cell

    notebook = jupytext.read(BOOK / "gaussians.md")
    notebook.cells.append(new_code_cell((HERE / "answer_keys" / "gaussians.py").read_text()))
    jupytext.write(notebook, tmp_path / "gaussians.ipynb", fmt="ipynb")
    results, _, _ = grade(tmp_path, submission=tmp_path / "gaussians.ipynb", files=[str(TESTS / "test_gaussians.py")])
    assert results["score"] == results["max_score"] > 0, results["output"]


HONEST_GMM_EM_STEP = """
import numpy as np
from scipy.special import logsumexp


def gmm_em_step(x, pi, mu, var):
    x = np.asarray(x, dtype=float)[:, None]
    log_joint = np.log(pi) - 0.5 * np.log(2 * np.pi * var) - 0.5 * (x - mu) ** 2 / var
    R = np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))
    Nk = R.sum(axis=0)
    mu_new = (R * x).sum(axis=0) / Nk
    return Nk / len(x), mu_new, (R * (x - mu_new) ** 2).sum(axis=0) / Nk
"""


def test_the_time_limit_is_per_test_not_per_call(tmp_path):
    # 0.2 s per call: the one-call tests pass, the 25 calls of the monotonicity test exceed 2 s together.
    submission = tmp_path / "slow.py"
    submission.write_text(HONEST_GMM_EM_STEP + (
        "\n\nimport time\n_fast_step = gmm_em_step\n\n\ndef gmm_em_step(x, pi, mu, var):\n"
        "    time.sleep(0.2)\n    return _fast_step(x, pi, mu, var)\n"))
    results, _, _ = grade(tmp_path, "--time-limit", "2", "-k", "gmm_em_step", submission=submission,
                          files=[str(TESTS / "test_em.py")])
    outcome = {t["extra_data"]["test"]: t for t in results["tests"]}
    assert outcome["test_gmm_em_step_matches_reference[0]"]["status"] == "passed"
    assert "Time limit" in outcome["test_gmm_em_step_never_lowers_the_likelihood"]["output"]


# ---------------------------------------------------------------------------------------------
# The registry of pages, the check in the student's kernel, the terminal command


def test_the_registry_lists_every_page_and_exercise_of_the_book_with_its_number():
    from pca_to_vae_grader import pages

    assert list(pages.PAGES) and set(pages.PAGES) == set(PAGES)
    for name, page in pages.PAGES.items():
        assert list(page.exercises) == _exercises(name), name
        text = (BOOK / f"{name}.md").read_text()
        for function, number in page.exercises.items():
            heading = text.rfind(f"## Exercise {number}:", 0, text.index(f"def {function}("))
            assert heading >= 0 and "## " not in text[heading + 3:text.index(f"def {function}(")].replace(
                f"## Exercise {number}:", ""), f"{function} is not under Exercise {number} in {name}.md"
        assert page.tests.is_file()


@pytest.mark.parametrize("page", PAGES)
def test_every_page_checks_each_exercise_in_the_notebook_and_says_it_is_feedback(page):
    cells = read_cells(BOOK / f"{page}.md")
    assert f'check = Checker("{page}")' in "\n".join(cells[:3]) and "from pca_to_vae_grader import Checker" in cells[1]
    for function in _exercises(page):
        defined = next(i for i, c in enumerate(cells) if f"def {function}(" in c)
        checked = [i for i, c in enumerate(cells) if c.strip() == f'check("{function}")']
        assert len(checked) == 1 and checked[0] > defined, f"{page}: no check(\"{function}\") cell after its stub"
    assert cells[-1].strip() == "check()", f"{page}: the last cell must grade the page"
    text = (BOOK / f"{page}.md").read_text()
    assert "own kernel" in text and "sandbox" in text  # the page says the check is feedback, not the grade


def _namespace(source):
    namespace = {"__name__": "__main__"}
    exec(compile(source, "<notebook>", "exec"), namespace)
    return namespace


def test_the_check_in_the_kernel_runs_the_same_tests_points_and_hints():
    from pca_to_vae_grader.notebook import Checker

    honest = (HERE / "answer_keys" / "gaussians.py").read_text()
    check = Checker("gaussians", _namespace(honest))
    page = check.run()
    assert page.score == page.max_score == 24 and len(page.tests) == 15
    assert all(t.label.startswith("Exercise ") for t in page.tests)
    wrong = Checker("gaussians", _namespace(honest + "\n\ndef gaussian_mle(X):\n    return X.mean(0), np.cov(X.T)\n"))
    one = wrong.run("gaussian_mle")
    assert {t.label.split(":")[0] for t in one.tests} == {"Exercise 1.2 (gaussian_mle)"}
    # The N - 1 covariance fails both of its tests (its maximum is checked along Sigma's own scale), each with a hint.
    assert one.score == 0 and one.max_score == 3 and len(one.tests) == 2
    assert all("N - 1" in t.output for t in one.tests) and any("divide by N - 1" in t.output for t in one.tests)
    whole = wrong.run()
    lines = wrong.report(whole)
    assert whole.score <= 22 and lines[-1] == f"Score: {whole.score:g} / 24" and any("own kernel" in ln for ln in lines)
    with pytest.raises(ValueError, match="not an exercise of gaussians"):
        wrong.run("kl_gaussians")


def test_the_check_in_the_kernel_says_what_a_failing_function_did(capsys):
    from pca_to_vae_grader.notebook import Checker

    namespace = _namespace("import numpy as np\n\ndef kl_gauss(m0, S0, m1, S1):\n    while True:\n        pass\n\n\n"
                           "def gaussian_mle(X):\n    raise NotImplementedError\n\n\n"
                           "def condition_gaussian(mu, Sigma, obs_idx, x_obs):\n    return np.linalg.inv(Sigma)[9]\n")
    check = Checker("gaussians", namespace, time_limit=0.3)
    check("kl_gauss")
    out = capsys.readouterr().out
    assert "Time limit" in out and out.count("FAILED") == 3 and "kl_gauss: 0 / 5 points" in out
    report = check.run()
    outputs = {t.name.split("[")[0]: t.output for t in report.tests}
    assert "still raises NotImplementedError" in outputs["test_gaussian_mle_matches_formula"]
    assert "IndexError" in outputs["test_condition_gaussian_matches_reference"]
    assert "<notebook>, line" in outputs["test_condition_gaussian_matches_reference"]  # where, in the notebook
    assert "does not define a function named gaussian_logpdf" in outputs["test_gaussian_logpdf_matches_scipy"]
    assert report.score == 0


def test_the_graded_run_skips_the_notebooks_own_check():
    cells = ["import numpy as np\nfrom pca_to_vae_grader import Checker\ncheck = Checker('gaussians')",
             "def f(x):\n    return x", "check('f')\ncheck()\nimport pca_to_vae_grader.notebook as nb\ny = nb.Checker"]
    kept = [ast.unparse(module) for _, module in definitions(cells)[0]]
    assert kept == ["import numpy as np", "def f(x):\n    return x"]


def test_the_rollup_grades_with_its_own_pytest_settings_whatever_the_environment_holds(tmp_path, monkeypatch):
    from pca_to_vae_grader.rollup import grade_one

    (tmp_path / "kind.py").write_text("def pytest_collection_modifyitems(items):\n    del items[1:]\n")
    monkeypatch.setenv("PYTHONPATH", f"{ROOT}:{tmp_path}")
    monkeypatch.setenv("PYTEST_ADDOPTS", "-k kl_gauss -p kind")
    monkeypatch.setenv("PYTEST_PLUGINS", "kind")
    grade = grade_one("alice", "gaussians", HERE / "answer_keys" / "gaussians.py", timeout=240)
    assert not grade.problem and grade.total == grade.max_score == 24, grade


def test_a_saved_notebook_is_graded_from_a_terminal_in_any_folder(tmp_path):
    # ... whatever pytest settings the environment holds: options added to every run (a -k would drop tests
    # from the grade, -p loads a module of the current folder as a plugin) and plugins installed there.
    (tmp_path / "my notebook.py").write_text((HERE / "answer_keys" / "gaussians.py").read_text())
    (tmp_path / "kind.py").write_text("def pytest_collection_modifyitems(items):\n    del items[1:]\n")
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -k kl_gauss\n")
    env = {**__import__("os").environ, "PYTHONPATH": f"{ROOT}:{tmp_path}", "PYTEST_ADDOPTS": "-k kl_gauss -p kind",
           "PYTEST_PLUGINS": "kind"}
    process = subprocess.run([sys.executable, "-m", "pca_to_vae_grader", "grade", "gaussians", "my notebook.py",
                              "--results", "r.json"], capture_output=True, text=True, cwd=tmp_path, timeout=240,
                             env=env)
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    assert process.stdout.rstrip().splitlines()[-2] == "Score: 24 / 24"
    results = json.loads((tmp_path / "r.json").read_text())
    assert results["score"] == 24 and len(results["tests"]) == 15
    assert results["tests"][0]["name"].startswith("Exercise 1.1 (gaussian_logpdf): ")


# ---------------------------------------------------------------------------------------------
# Instructors: the course file, the roll-up of a class, Gradescope's uploads


def _notebook(path, *sources):
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(notebook, path)


@pytest.mark.slow  # 33 gradings: about a minute on an idle 2-core machine
def test_rollup_grades_a_class_of_mixed_submissions_into_the_right_csv(tmp_path):
    import csv

    from pca_to_vae_grader import pages
    from pca_to_vae_grader.notebook import Checker
    from pca_to_vae_grader.rollup import rollup

    key = (HERE / "answer_keys" / "gaussians.py").read_text()
    functions = list(pages.PAGES["gaussians"].exercises)
    # Each exercise's points, from the in-kernel check of the answer key (another path than the roll-up's).
    checked = Checker("gaussians", _namespace(key)).run()
    best = {f: sum(t.max_score for t in checked.tests if t.function == f) for f in functions}
    assert checked.score == checked.max_score == sum(best.values()) == 24
    folder, expected = tmp_path / "class", {}
    folder.mkdir()
    stub = "\n\ndef {}(*args):\n    raise NotImplementedError\n"
    loop = "\n\ndef {}(*args):\n    while True:\n        pass\n"
    for i in range(6):  # honest, as .py, .ipynb and MyST .md, under any name
        (folder / f"honest {i}.py").write_text(key)
        expected[f"honest {i}"] = dict(best)
    for i in range(3):
        _notebook(folder / f"nb-{i}.ipynb", "import numpy as np", key, "print(gaussian_mle(np.ones((3, 2))))")
        expected[f"nb-{i}"] = dict(best)
    import jupytext

    myst = jupytext.reads(key, fmt="py:percent")
    jupytext.write(myst, folder / "myst.md", fmt="md:myst")
    expected["myst"] = dict(best)
    for i in range(3):  # a folder per student, with a notebook of any name (and a data file beside it)
        (folder / f"team{i}").mkdir()
        _notebook(folder / f"team{i}" / "Untitled (3).ipynb", key)
        (folder / f"team{i}" / "notes.txt").write_text("not a submission")
        expected[f"team{i}"] = dict(best)
    for f in functions:  # one exercise left as the stub, one that never ends
        (folder / f"stub-{f}.py").write_text(key + stub.format(f))
        expected[f"stub-{f}"] = {**best, f: 0}
    for f in functions[:2]:
        (folder / f"loop-{f}.py").write_text(key + loop.format(f))
        expected[f"loop-{f}"] = {**best, f: 0}
    mistakes = (HERE / "mistakes" / "gaussians.py").read_text()
    for i in range(3):  # the classic mistakes: fewer points on every exercise
        (folder / f"mistakes{i}.py").write_text(mistakes)
    broken = {"bad-json.ipynb": "{not json", "empty.py": "", "blank.ipynb": "", "syntax.py": "def f(:\n    pass\n",
              "exits.py": "import os\n_ = os._exit(3)\n" + key, "stubs.md": (BOOK / "gaussians.md").read_text()}
    for name, text in broken.items():
        (folder / name).write_text(text)
        expected[Path(name).stem] = {f: 0 for f in functions}
    (folder / "nothing").mkdir()  # an empty folder
    expected["nothing"] = {f: 0 for f in functions}
    (folder / "two").mkdir()  # two notebooks, neither named gaussians.ipynb: none graded, and the report says so
    _notebook(folder / "two" / "a.ipynb", key)
    _notebook(folder / "two" / "b.ipynb", key)
    expected["two"] = {f: 0 for f in functions}
    students = len(expected) + 3
    assert students >= 30

    grades, report = rollup(folder, ["gaussians"], tmp_path / "grades.csv", jobs=2, time_limit=2)
    rows = list(csv.DictReader((tmp_path / "grades.csv").open()))
    assert len(rows) == students and {r["page"] for r in rows} == {"gaussians"}
    by_student = {r["student"]: r for r in rows}
    for student, points in expected.items():
        row = by_student[student]
        got = {f: float(row[f]) for f in functions}
        assert got == points, (student, got, points)
        assert float(row["total"]) == sum(points.values()) and float(row["max_score"]) == 24, row
    for i in range(3):
        row = by_student[f"mistakes{i}"]
        assert all(float(row[f]) < best[f] for f in functions), row
    text = (tmp_path / "grades-report.txt").read_text()
    assert text.splitlines() == report
    for student in ("bad-json", "blank", "two", "nothing"):
        assert any(line.lstrip().startswith(f"{student} (") for line in report), (student, report)
    assert "a.ipynb, b.ipynb" in text and "honest 0" not in text


def test_course_file_sets_points_visibility_and_pages_and_the_zip_uses_it(tmp_path):
    import zipfile

    from pca_to_vae_grader.course import Course
    from pca_to_vae_grader.gradescope import build_zip

    course = tmp_path / "course.toml"
    course.write_text('visibility = "after_due_date"\n[pages.gaussians.exercises.kl_gauss]\npoints = 10\n'
                      'visibility = "hidden"\n[pages.gaussians.exercises.gaussian_mle]\npoints = 0\n')
    results, _, _ = grade(tmp_path, "--course", str(course), submission=HERE / "answer_keys",
                          files=[str(TESTS / "test_gaussians.py"), str(TESTS / "test_em.py")])
    tests = results["tests"]
    assert {t["tags"][0] for t in tests} == {"gaussians"}  # em is not in the course
    kl = [t for t in tests if t["extra_data"]["function"] == "kl_gauss"]
    # The course's 10 points, shared in the proportions of the markers (2, 2, 1).
    assert [t["max_score"] for t in kl] == [4, 4, 2] and all(t["visibility"] == "hidden" for t in kl)
    assert all(t["max_score"] == 0 for t in tests if t["extra_data"]["function"] == "gaussian_mle")
    others = [t for t in tests if t["extra_data"]["function"] not in ("kl_gauss", "gaussian_mle")]
    assert others and all(t["visibility"] == "after_due_date" for t in others)
    assert results["score"] == results["max_score"] == 24 - 5 - 3 + 10
    assert all(t["name"].startswith("Exercise ") for t in tests)
    with zipfile.ZipFile(build_zip("gaussians", tmp_path / "dist", course=course)) as z:
        assert z.read("course.toml") == course.read_bytes()
        assert "--course course.toml" in z.read("run_autograder").decode()
    with pytest.raises(ValueError, match="does not list page 'em'"):
        build_zip("em", tmp_path / "dist", course=course)
    for text, message in [('[pages.gaussian]\n', "no exercise page 'gaussian'"),
                          ('[pages.gaussians.exercises.kl]\npoints = 1\n', "has no exercise 'kl'"),
                          ('[pages.gaussians]\nvisibility = "later"\n', "not a Gradescope visibility"),
                          ('[pages.gaussians.exercises.kl_gauss]\npoints = -1\n', "a number >= 0"),
                          ('pages = 3\n', r"\[pages.<page>\] tables"), ("[pages.gaussians\n", "cannot read")]:
        course.write_text(text)
        with pytest.raises(ValueError, match=message):
            Course.read(course)


def test_an_upload_is_its_only_notebook_whatever_its_name_and_several_candidates_are_named_not_graded(tmp_path):
    key = (HERE / "answer_keys" / "gaussians.py").read_text()
    one, two, out = tmp_path / "one", tmp_path / "two", tmp_path / "out"
    one.mkdir(), two.mkdir(), out.mkdir()
    _notebook(one / "Untitled (3).ipynb", key)
    (one / "helper.py").write_text("x = 1\n")  # a notebook beside other files: the notebook is graded
    results, _, _ = grade(out, "-k", "kl_gauss", submission=one, files=[str(TESTS / "test_gaussians.py")])
    assert results["score"] == results["max_score"] > 0 and "graded Untitled (3).ipynb" in results["output"]
    _notebook(two / "a.ipynb", key)
    _notebook(two / "b.ipynb", key)
    results, _, _ = grade(out, "-k", "kl_gauss", submission=two, files=[str(TESTS / "test_gaussians.py")])
    assert results["score"] == 0 and "graded" not in results["output"].replace("nothing was graded", "")
    assert "a.ipynb, b.ipynb" in results["output"]
    assert all("a.ipynb, b.ipynb" in t["output"] and "name the one to grade gaussians.ipynb" in t["output"]
               for t in results["tests"])
