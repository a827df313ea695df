"""Hostile submissions against the grader, graded locally and in Gradescope's layout as the user nobody.

Each attack class of issue 7 has a test here, which asserts that the submission scores what its work
deserves and that nothing it started is left running: forging the results (now, and later from a
detached process that left the worker's session), tampering with the grader's files, importing the
package instead of implementing it, harvesting expected values from feedback, resource abuse (memory,
a fork bomb, huge output, a huge file, a slow or crashing load), shell escapes, malformed notebooks
and notebooks that would keep the grader itself busy, replies the submission writes on the worker's
channel itself, interpreter internals that start programs without an audit event, and doing nothing
(steps that return their inputs, bounds that are absurdly loose or ignore q, answers learned from an
earlier run's feedback).

Issue 20's classes, each in Gradescope's layout: emptying the guard to import torch or the package
(the operating system refuses them), a pytest configuration planted in a world-writable folder above the
submission, a detached process that stops or kills every process of its user, output bombs and a forged
load reply; and issue 15's: several hostile and honest gradings at once, and a grader that its sandbox
user cannot reach (one clear refusal). The submissions' attack code is in ``hostile/``.

The Gradescope tests run ``run_autograder`` from the zip as root with the submission as a sandbox user
(a uid of ``pca_to_vae_grader.sandbox.UID_RANGE``, one per grading); they are skipped (with the reason) when the
tests do not run as root. Their layouts lie in a temporary folder that every user may enter.
"""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from pca_to_vae_grader.compare import GradingFailure, check_array
from pca_to_vae_grader.student import Student, StudentFailure

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
HOSTILE = HERE / "hostile"
HONEST = HERE / "answer_keys" / "gaussians.py"
"""An honest student's gaussians page (numpy and scipy only, full marks); each hostile submission adds one
attack to it."""
MARKER = b"autograder-hostile-marker"
SANDBOX_USER = "nobody"


def _marked_processes():
    """Processes left by the attacks (their command line carries MARKER)."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/cmdline", "rb") as stream:
                    if MARKER in stream.read():
                        found.append(int(name))
            except OSError:
                pass
    return found


def _sandbox_processes():
    """Processes of the sandbox users that the Gradescope script hands out (none once its grading ended)."""
    from pca_to_vae_grader.sandbox import UID_RANGE

    first, last = map(int, UID_RANGE.split("-"))
    return _processes_of(range(first, last + 1))


def _processes_of(uids):
    """The live processes of ``uids``. A zombie is dead already: an orphan's waits for init to collect it,
    which some inits (a container's) do only seconds later."""
    uids = {uids} if isinstance(uids, int) else set(uids)
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/status", "rb") as stream:
                    fields = dict(line.split(b":", 1) for line in stream.read().splitlines() if b":" in line)
                if fields[b"State"].split()[0] not in (b"Z", b"X") and uids & {int(u) for u in fields[b"Uid"].split()[:3]}:
                    found.append(int(name))
            except (OSError, KeyError, IndexError, ValueError):
                pass
    return found


def _workdirs_left(target):
    """Worker folders left in the temporary folder that lead to ``target`` (the folder-swap attack)."""
    temporary = Path(tempfile.gettempdir())
    return [p for p in temporary.glob("autograder-work-*") if p.is_symlink() and str(target) in os.readlink(p)
            or p.name.endswith(".moved")]


def _digest(folder, suffixes=(".py",)):
    """A hash of every file's content under ``folder`` (to prove nothing was changed)."""
    h = hashlib.sha256()
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file() and path.suffix in suffixes and "__pycache__" not in path.parts:
            h.update(str(path.relative_to(folder)).encode() + path.read_bytes())
    return h.hexdigest()


_FORK_BOMB = """
def gaussian_mle(X):
    fork_bomb()
"""
_TAMPER = """
def gaussian_mle(X):  # append to the grader's files, found from the grader's working folder
    grader = os.readlink(f"/proc/{os.getppid()}/cwd")
    with open(os.path.join(grader, "pca_to_vae_grader", "compare.py"), "a") as stream:
        stream.write("# tampered")
"""


def _hostile_gaussians(grader_files=(), *, sandbox_user=True):
    """The honest submission plus attacks.py, each graded function doing one attack. Without a sandbox
    user nothing bounds a fork bomb, so gaussian_mle tampers with the grader's files instead."""
    return HONEST.read_text() + (HOSTILE / "attacks.py").read_text() + f'''
_honest = {{"logpdf": gaussian_logpdf, "solve": lowrank_solve_logdet}}
_escaped = []


def gaussian_logpdf(X, mu, Sigma):
    if not _escaped:  # once per worker: detach a forger, swap the working folder for a link
        _escaped.append(1)
        try:
            escape_and_forge({[str(f) for f in grader_files]!r})
        except Exception as error:
            print(error)
    return _honest["logpdf"](X, mu, Sigma)

{_FORK_BOMB if sandbox_user else _TAMPER}


def condition_gaussian(mu, Sigma, obs_idx, x_obs):
    return allocate_too_much()


def kl_gauss(m0, S0, m1, S1):
    huge_file()
    return 0.0


def lowrank_solve_logdet(A, D, B):
    huge_output()
    return _honest["solve"](A, D, B)
'''


def _by_function(results, functions):
    grouped = {f: [] for f in functions}
    for test in results["tests"]:
        grouped[next(f for f in functions if test["extra_data"]["test"].startswith(f"test_{f}"))].append(test)
    return grouped


def _full(tests):
    return all(t["score"] == t["max_score"] > 0 for t in tests) and tests


def _zero(tests, text):
    return all(t["score"] == 0 and text in t["output"] for t in tests) and tests


# -- local grading (no sandbox user) ------------------------------------------------------------------


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A copy of the grader, the package and the page tests: what a hostile submission may try to change."""
    copy = tmp_path_factory.mktemp("repo")
    for name in ("pca_to_vae_grader", "lgm", "nlgm"):  # the grader ships the pages' tests
        shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def grade_local(repo, tmp, submission_text, page, *args, name="submission.py", timeout=120):
    """Grade ``submission_text`` with the copy of the grader; return (results, seconds, results path).

    With ``submission_text`` a dict {page: text}, ``page`` is a list of pages, graded in one run."""
    if isinstance(submission_text, dict):
        submission = Path(tmp) / "submissions"
        submission.mkdir()
        for each, text in submission_text.items():
            (submission / f"{each}.py").write_text(text)
    else:
        submission = Path(tmp) / name
        submission.write_text(submission_text)
    pages = page if isinstance(page, list) else [page]
    results = Path(tmp) / "results.json"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    command = [sys.executable, "-m", "pytest", *(f"pca_to_vae_grader/tests/test_{p}.py" for p in pages), "-q", "-p", "no:cacheprovider",
               "-p", "no:randomly", "--submission", str(submission), "--results", str(results),
               "--time-limit", "5", "--load-time-limit", "60", *args]
    start = time.monotonic()
    process = subprocess.run(command, capture_output=True, text=True, cwd=repo, env=env, timeout=timeout)
    elapsed = time.monotonic() - start
    assert results.exists(), f"no results file:\n{process.stdout[-3000:]}\n{process.stderr[-3000:]}"
    return json.loads(results.read_text()), elapsed, results


@pytest.mark.slow
def test_local_escape_forgery_and_resource_abuse_fail(repo, tmp_path):
    # Without a sandbox user the grader cannot stop C-level writes to files the grading user owns (see
    # instructors.md), so the detached forger here targets only the results file, which the grader writes
    # last, after every process of the sandbox is gone, by renaming a new file over it.
    before = _digest(repo)
    results, elapsed, path = grade_local(repo, tmp_path, _hostile_gaussians(sandbox_user=False), "gaussians")
    functions = ("gaussian_logpdf", "gaussian_mle", "condition_gaussian", "kl_gauss", "lowrank_solve_logdet")
    tests = _by_function(results, functions)
    assert _full(tests["gaussian_logpdf"]), tests["gaussian_logpdf"]
    assert _full(tests["lowrank_solve_logdet"]), tests["lowrank_solve_logdet"]  # 64 MiB printed: dropped
    assert _zero(tests["condition_gaussian"], "MemoryError"), tests["condition_gaussian"]
    assert _zero(tests["kl_gauss"], "File too large"), tests["kl_gauss"]
    assert _zero(tests["gaussian_mle"], "PermissionError"), tests["gaussian_mle"]
    assert results["score"] == sum(t["max_score"] for f in ("gaussian_logpdf", "lowrank_solve_logdet") for t in tests[f])
    assert "killed" in results["output"] and "left running" in results["output"], results["output"]
    time.sleep(2.0)  # the forger would have written by now
    assert json.loads(path.read_text()) == results
    assert not _marked_processes()
    assert _digest(repo) == before
    assert not _workdirs_left(path.parent)
    assert elapsed < 60, elapsed


def test_local_python_level_attacks_are_refused(tmp_path):
    # The worker's guard: importing the package in any way, running other programs, writing the grader's
    # files. Each function returns what happened, as text.
    target = ROOT / "pca_to_vae_grader" / "compare.py"
    before = target.read_bytes()
    submission = tmp_path / "tricks.py"
    submission.write_text(f'''
import importlib, os, subprocess, sys
x = !echo shell
%system echo shell
y = os.system("echo loaded > {tmp_path / 'system.txt'}")
z = get_ipython().system("echo loaded > {tmp_path / 'ipython.txt'}")
get_ipython().system("echo loaded > {tmp_path / 'ipython.txt'}")

def environment():
    return {{"keys": sorted(os.environ), "path": sys.path, "home": os.environ.get("HOME"), "cwd": os.getcwd()}}

def _try(action):
    try:
        action()
        return "allowed"
    except BaseException as error:
        return f"{{type(error).__name__}}: {{error}}"

def import_inside():
    import lgm
    return lgm.__file__

def tricks():
    out = [_try(lambda: importlib.import_module("nlgm"))]
    out.append(_try(lambda: __import__("lgm.gaussian")))
    sys.meta_path[:] = [f for f in sys.meta_path if "Finder" not in type(f).__name__ or "Path" in type(f).__name__]
    sys.modules.pop("lgm", None)
    out.append(_try(lambda: importlib.import_module("lgm")))
    out.append(_try(lambda: exec(open({str(ROOT / "lgm" / "__init__.py")!r}).read(), {{}})))
    out.append(_try(lambda: importlib.import_module("solutions")))
    out.append(_try(lambda: os.system("true")))
    out.append(_try(lambda: subprocess.run(["true"])))
    out.append(_try(lambda: os.fork()))
    out.append(_try(lambda: open({str(target)!r}, "a").write("# tampered")))
    out.append(_try(lambda: os.rename({str(target)!r}, "/tmp/x")))
    out.append(_try(lambda: os.kill(os.getppid(), 9)))
    return " | ".join(out)
''')
    os.environ["AUTOGRADER_TEST_SECRET"] = "the grader's own environment"
    student = Student(submission, time_limit=20)
    try:
        seen = student.environment()
        with pytest.raises(StudentFailure, match="your own implementation") as failure:
            student.import_inside()
        assert "ImportError" in str(failure.value)
        outcome = student.tricks().split(" | ")
    finally:
        student.close()
        del os.environ["AUTOGRADER_TEST_SECRET"]
    # A minimal environment of its own, a fresh folder, and neither the repository nor the grader on its path.
    assert "AUTOGRADER_TEST_SECRET" not in seen["keys"] and seen["home"] == seen["cwd"], seen
    assert str(ROOT) not in seen["path"] and not any(p.startswith((str(ROOT / "tests"), str(ROOT / "pca_to_vae_grader")))
                                                     for p in seen["path"]), seen["path"]
    assert not (tmp_path / "ipython.txt").exists()
    assert "allowed" not in outcome, outcome
    assert all("own implementation" in o for o in outcome[:4]) and "Error" in outcome[4], outcome
    assert all("PermissionError" in o for o in outcome[5:]), outcome
    assert target.read_bytes() == before
    assert not (tmp_path / "system.txt").exists()
    assert any("raised PermissionError" in p for p in student.problems), student.problems
    assert {"lgm", "nlgm"} <= set(student.imports), student.imports


@pytest.mark.slow
def test_doing_nothing_earns_nothing(repo, tmp_path):
    # An EM step that returns its inputs, a GMM step that returns its inputs, an ELBO of -1e300: they
    # never decrease the likelihood and are below it, and still earn no points.
    cases = {
        "lgm": ("def em_step(X, A, D):\n    return A, D\n", "test_em_step_never_decreases_loglik"),
        "em": ("def gmm_em_step(x, pi, mu, var):\n    return pi, mu, var\n", "test_gmm_em_step_never_lowers_the_likelihood"),
        "vae": ("import numpy as np\ndef elbo_lgm(X, A, D, means, cov):\n    return np.full(len(X), -1e300)\n",
                "test_elbo_lgm_below_loglik"),
    }
    results, _, _ = grade_local(repo, tmp_path, {page: source for page, (source, _) in cases.items()}, list(cases),
                                "-k", " or ".join(test_name for _, test_name in cases.values()))
    for page, (_, test_name) in cases.items():
        (test,) = [t for t in results["tests"] if t["extra_data"]["test"] == test_name]
        assert test["score"] == 0 and ("must move" in test["output"] or "not any small number" in test["output"]), test



@pytest.mark.slow
def test_answers_that_ignore_their_inputs_earn_nothing(repo, tmp_path):
    # An ELBO that returns log p(x) whatever q is, and log-likelihood-free bounds, are "below log p(x)";
    # a covariance of 1e6 I is beaten only by smaller ones; the exact gradients of the pathwise test's
    # old fixed inputs (a table learned from its feedback) answer a test whose inputs now change per run.
    cases = {
        "em": ("import numpy as np\nfrom scipy.special import logsumexp\n\n\ndef elbo_discrete(log_joint, q):\n"
               "    return logsumexp(log_joint, axis=1)\n", ["test_elbo_discrete_equals_log_evidence_at_the_posterior"]),
        "vae": ("import numpy as np\n\n\ndef elbo_lgm(X, A, D, means, cov):\n    C = A @ A.T + np.diag(D)\n"
                "    return -0.5 * (X.shape[1] * np.log(2 * np.pi) + np.linalg.slogdet(C)[1]\n"
                "                   + np.sum(X * np.linalg.solve(C, X.T).T, axis=1))\n\n\n"
                "def pathwise_grad(logvar, eps, grad_z):\n    mu, s = np.array([[0.3, -1.2, 2.0]]), np.exp(logvar / 2)\n"
                "    return np.cos(mu) * np.exp(-s**2 / 2), -0.5 * s**2 * np.sin(mu) * np.exp(-s**2 / 2)\n",
                ["test_elbo_lgm_below_loglik", "test_pathwise_grad_unbiased_for_sine"]),
        "gaussians": ("import numpy as np\n\n\ndef gaussian_mle(X):\n    return X.mean(axis=0), 1e6 * np.eye(X.shape[1])\n",
                      ["test_gaussian_mle_maximises_likelihood"]),
    }
    names = [name for _, tests in cases.values() for name in tests]
    results, _, _ = grade_local(repo, tmp_path, {page: source for page, (source, _) in cases.items()}, list(cases),
                                "-k", " or ".join(names))
    assert sorted(t["extra_data"]["test"] for t in results["tests"]) == sorted(names), results["tests"]
    assert results["score"] == 0, [(t["extra_data"]["test"], t["output"][:300]) for t in results["tests"] if t["score"]]


def test_interpreter_internals_and_oversized_notebooks_are_refused(tmp_path):
    # Routes past the guard's audit events without ctypes: the subprocess module's own C helper (also a
    # fresh copy of it), and sqlite, which opens its file in C. And notebooks that would keep the grader
    # itself busy while it reads them: YAML aliases that expand to 9^9 items, JSON nested 1e5 deep.
    outside = tmp_path / "outside"
    submission = tmp_path / "internals.py"
    submission.write_text(f'''
import importlib.util, os, sys

def _try(action):
    try:
        action()
        return "allowed"
    except BaseException as error:
        return f"{{type(error).__name__}}: {{error}}"

def _fork_exec(module):
    argv, (read, write) = [b"/bin/sh", b"-c", b"touch {outside}-shell"], os.pipe()
    pid = module.fork_exec(argv, [argv[0]], True, (), None, [b"PATH=/bin"], -1, -1, -1, -1, -1, -1, read, write,
                           True, False, 0, None, None, None, -1, None, False)  # Python 3.11's arguments
    os.waitpid(pid, 0)

def _fresh_copy():
    return importlib.util.module_from_spec(importlib.util.find_spec("_posixsubprocess"))

def internals():
    import _posixsubprocess
    out = [_try(lambda: _fork_exec(_posixsubprocess))]
    sys.modules.pop("_posixsubprocess", None)
    out.append(_try(lambda: __import__("_posixsubprocess")))
    out.append(_try(lambda: _fork_exec(_fresh_copy())))
    out.append(_try(lambda: __import__("sqlite3").connect("{outside}-db").execute("create table t (x)")))
    return " | ".join(out)
''')
    student = Student(submission, time_limit=20)
    try:
        outcome = student.internals().split(" | ")
    finally:
        student.close()
    # A fresh copy of a module compiled into the interpreter is made without an audit event (instructors.md).
    import importlib.util

    if importlib.util.find_spec("_posixsubprocess").origin == "built-in":
        outcome.pop(2)
    assert all(o.startswith("PermissionError") for o in outcome), outcome
    assert not list(tmp_path.glob("outside*"))
    bomb = ["---", "kernelspec:", "  name: python3", "bomb:", "  a: &a [x, x, x, x, x, x, x, x, x]"]
    bomb += [f"  {chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]" for i in range(8)]
    bomb += ["---", "", "```{code-cell} ipython3", "def f():", "    return 1.0", "```", ""]
    (tmp_path / "bomb.md").write_text("\n".join(bomb))
    (tmp_path / "deep.ipynb").write_text('{"cells": ' + "[" * 100_000 + "]" * 100_000 + "}")
    (tmp_path / "long.md").write_text("\n".join(bomb[:3] + ["---"]) + "\n```{code-cell} ipython3\nx = 1\n```\n" * 70_000)
    for name, words in (("bomb.md", "YAML aliases"), ("deep.ipynb", "not valid JSON"), ("long.md", "larger than 2 MiB")):
        start = time.monotonic()
        student = Student(tmp_path / name, time_limit=5)
        try:
            with pytest.raises(StudentFailure, match="could not read your submission") as failure:
                student.f()
        finally:
            student.close()
        assert words in str(failure.value) and time.monotonic() - start < 5, (name, str(failure.value))


def test_paths_cannot_reach_past_the_guard(tmp_path):
    # The audit event of os.open(path, dir_fd=fd) does not carry fd: with a descriptor of "/" (or of the
    # working folder, and a working directory below it) a relative path that looks harmless reaches the
    # package's files and the grader's. Opening folders outside the working folder and leaving it are refused.
    # A str subclass whose methods lie makes os.path.realpath check another path than the system call opens.
    # And another process's files in /proc (the grader's memory) are none of the submission's business.
    target = ROOT / "pca_to_vae_grader" / "compare.py"
    before = target.read_bytes()
    lgm_file = os.path.relpath(ROOT / "lgm" / "__init__.py", "/")
    (tmp_path / "folders.py").write_text(f'''
import os

def _try(action):
    try:
        action()
        return "allowed"
    except BaseException as error:
        return f"{{type(error).__name__}}: {{error}}"

def folders():
    here = os.open(".", os.O_RDONLY)  # the working folder itself: allowed
    levels = os.getcwd().count("/") + 1  # as deep below the working folder as it is below "/"
    deep = "/".join(["d"] * levels)
    os.makedirs(deep)
    up = "../" * levels + {os.path.relpath(target, "/")!r}
    out = [_try(lambda: os.read(os.open({lgm_file!r}, os.O_RDONLY, dir_fd=os.open("/", os.O_RDONLY)), 10))]
    out.append(_try(lambda: os.open("/proc/self/root", os.O_RDONLY)))
    # From deep, up looks like a file inside the working folder; from the folder it is the grader's file.
    out.append(_try(lambda: (os.chdir(deep), os.open(up, os.O_WRONLY | os.O_APPEND, dir_fd=here))))
    out.append(_try(lambda: os.fchdir(os.open("d", os.O_RDONLY))))
    liar = type("Liar", (str,), {{"startswith": lambda self, *a: False, "partition": lambda self, sep: ("x", "", "")}})
    out.append(_try(lambda: open(liar("/" + {lgm_file!r})).read(10)))
    out.append(_try(lambda: open(liar({str(target)!r}), "a")))
    out.append(_try(lambda: open(f"/proc/{{os.getppid()}}/mem", "rb")))  # the grader's memory: its inputs
    return " | ".join(out)
''')
    student = Student(tmp_path / "folders.py", time_limit=20)
    try:
        outcome = student.folders().split(" | ")
    finally:
        student.close()
    assert all(o.startswith("PermissionError") for o in outcome), outcome
    assert target.read_bytes() == before


def test_replies_written_by_the_submission_fail_only_its_own_call(tmp_path):
    # The submission finds the worker's reply channel and the request's id and token in its frames and
    # writes replies of its own: an array whose shape overflows int64 to match no data, JSON nested 1e5
    # deep. Each is the student's failure (or is ignored), never "the test itself failed".
    (tmp_path / "forge.py").write_text('''
import json, sys

def forge(kind):
    frame = sys._getframe()
    while "replies" not in frame.f_locals:
        frame = frame.f_back
    request, replies = frame.f_locals["request"], frame.f_locals["replies"]
    reply = {"status": "ok", "id": request["id"], "token": request["token"], "imports": [],
             "value": {"__ndarray__": {"dtype": "<f8", "shape": [2**62, 4], "data": ""}}}
    line = json.dumps(reply)
    if kind == "deep":
        line = line.replace('"value": {', '"value": ' + "[" * 100_000 + "{", 1)[:-1] + "]" * 100_000 + "}"
    replies.write(line + "\\n")
    replies.flush()
    return 1.0

class Tensor:  # passes for a torch tensor, and fails when the worker reads it
    __module__ = "torch"

    def detach(self):
        raise RuntimeError("not a tensor after all")

def fake():
    return Tensor()
''')
    student = Student(tmp_path / "forge.py", time_limit=10)
    try:
        with pytest.raises(StudentFailure, match="cannot read"):
            student.forge("shape")
        assert student.forge("deep") == 1.0  # not a reply: skipped, and the function's own value comes next
        with pytest.raises(StudentFailure, match="(?s)cannot compare.*not a tensor after all"):
            student.fake()
    finally:
        student.close()


def test_nan_never_matches_an_infinite_reference():
    for got in ([np.nan, 1.0], [np.inf, 1.0], [0.0, 1.0]):
        with pytest.raises(GradingFailure, match="entry\\[0\\]"):
            check_array(np.array(got), np.array([-np.inf, 1.0]), "f(x)")
    check_array(np.array([-np.inf, 1.0]), np.array([-np.inf, 1.0]), "f(x)")


@pytest.mark.slow
def test_harvested_expected_values_do_not_carry_over(repo, tmp_path):
    # Run 1 returns 0 and reads the expected values off its feedback; run 2 returns them. The feedback
    # shows each at most to 2 significant digits, and the inputs change with every run: run 2 scores 0.
    first, _, _ = grade_local(repo, tmp_path, "def kl_gauss(m0, S0, m1, S1):\n    return 0.0\n", "gaussians",
                              "-k", "kl_gauss_matches")
    learned = []
    for test in first["tests"]:
        found = re.findall(r"expected about (\S+) \(", test["output"])
        assert found, test["output"]
        assert all(len(re.sub(r"[^0-9]", "", v.split("e")[0]).lstrip("0")) <= 2 for v in found), found
        learned += [float(v) for v in found]
    table = tmp_path / "second"
    table.mkdir()
    second, _, _ = grade_local(repo, table, f"_table = {learned!r}\n_calls = []\n\n\ndef kl_gauss(m0, S0, m1, S1):\n"
                               "    _calls.append(1)\n    return _table[(len(_calls) - 1) % len(_table)]\n", "gaussians",
                               "-k", "kl_gauss_matches")
    assert second["tests"] and second["score"] == 0, second


def test_inputs_change_with_every_run_and_a_seed_reproduces_them():
    from pca_to_vae_grader import inputs

    saved = inputs.run_seed()
    try:
        inputs.set_run_seed(7)
        first = inputs.rng(3).normal(size=4)
        assert np.array_equal(first, inputs.rng(3).normal(size=4))  # --seed 7 reproduces a run
        assert not np.array_equal(first, inputs.rng(4).normal(size=4))  # each test case has its own stream
        inputs.set_run_seed(8)
        assert not np.array_equal(first, inputs.rng(3).normal(size=4))  # another run, other inputs
    finally:
        inputs.set_run_seed(saved)


@pytest.mark.slow
def test_slow_crashing_load_is_charged_once(repo, tmp_path):
    # Loading takes 1 s and every function ends the process: the grader reloads after each crash until
    # the loading budget (3 s) is spent, then fails the remaining tests at once.
    source = "import os, time\n_ = time.sleep(1.0)\n" + "".join(
        f"\ndef {f}(*args):\n    os._exit(3)\n" for f in ("gaussian_logpdf", "gaussian_mle", "condition_gaussian",
                                                         "kl_gauss", "lowrank_solve_logdet"))
    results, elapsed, _ = grade_local(repo, tmp_path, source, "gaussians", "--load-time-limit", "3")
    assert results["score"] == 0 and len(results["tests"]) == 15
    outputs = [t["output"] for t in results["tests"]]
    # The budget runs out either between loads or during the last one (which then hits what is left of it).
    assert any("loading budget" in o or "restarts included" in o for o in outputs), outputs
    assert re.search(r"\((2|3|4) loads, budget 3 s\)", results["output"]), results["output"]
    assert elapsed < 30, elapsed


def test_one_broken_cell_costs_only_itself(tmp_path):
    submission = tmp_path / "cells.py"
    submission.write_text("import numpy as np\n\n# %%\ndef broken(:\n    pass\n\n\ndef double(x):\n    return 2 * x\n"
                          "\n# %%\ndef triple(x):\n    return 3 * x\n")
    student = Student(submission, time_limit=20)
    try:
        assert student.double(2) == 4 and student.triple(2) == 6
        with pytest.raises(StudentFailure, match="does not define a function named broken"):
            student.broken()
    finally:
        student.close()
    assert any("syntax error" in p and "line 4" in p for p in student.problems), student.problems


@pytest.mark.parametrize("text, message", [
    ('{"cells": {"a": 1}}', "no list of cells"),
    ('{"cells": [{"cell_type": "code"}]}', "cell 1 has no source"),
    ('{"cells": [3]}', "cell 1 is not a JSON object"),
    ('{"cells": [', "not valid JSON"),
    ('[1, 2]', "no list of cells"),
])
def test_malformed_notebooks_get_a_message_about_the_notebook(tmp_path, text, message):
    (tmp_path / "bad.ipynb").write_text(text)
    student = Student(tmp_path / "bad.ipynb", time_limit=5)
    try:
        with pytest.raises(StudentFailure, match="could not read your submission") as failure:
            student.f()
    finally:
        student.close()
    assert message in str(failure.value) and "notebook" in str(failure.value)


def test_feedback_shows_the_size_of_the_error_not_the_expected_value():
    expected = np.array([1.234567891234, -9.87654321])
    with pytest.raises(GradingFailure) as failure:
        check_array(np.zeros(2), expected, "f(x)", rtol=1e-8, atol=1e-10)
    text = str(failure.value)
    assert "1.2 " in text and "-9.9 " in text and "1.23" not in text and "9.87" not in text, text
    for bad, words in ((np.array([1 + 1e-3j, 2.0]), "complex"), (np.array(["a", "b"]), "not an array of numbers"),
                       (np.array([np.nan, 1.0]), "NaN"), ("text", "not an array of numbers")):
        with pytest.raises(GradingFailure, match=words):
            check_array(bad, expected, "f(x)")


def test_complex_returns_are_refused_not_truncated(tmp_path):
    # A property test that converts with np.asarray(value, dtype=float) would drop an imaginary part
    # silently; the grader refuses complex values as they come back.
    (tmp_path / "complex.py").write_text("import numpy as np\n\ndef f():\n    return np.ones(2), [np.sqrt(-np.ones(1) + 0j)]\n")
    student = Student(tmp_path / "complex.py", time_limit=20)
    try:
        with pytest.raises(StudentFailure, match="complex numbers"):
            student.f()
    finally:
        student.close()


def test_autograder_is_a_regular_package(tmp_path):
    # A module named pca_to_vae_grader.py later on the path no longer wins over the package.
    (tmp_path / "pca_to_vae_grader.py").write_text("raise SystemExit('the wrong grader')\n")
    code = (f"import sys; sys.path.append({str(tmp_path)!r}); import pca_to_vae_grader.compare; "
            "print(pca_to_vae_grader.__file__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.returncode == 0 and out.stdout.strip().endswith(os.path.join("pca_to_vae_grader", "__init__.py")), out


# -- Gradescope's layout, the submission as nobody -----------------------------------------------------


def _open_temp():
    """A temporary folder that every user may enter (the sandbox user must reach the layouts and the
    grader's working folders): the usual one, unless it lies under a folder of mode 700 (a TMPDIR made by
    mktemp -d), then /tmp or /var/tmp."""
    for folder in (tempfile.gettempdir(), "/tmp", "/var/tmp"):
        real = Path(os.path.realpath(folder))
        if real.is_dir() and all(p.stat().st_mode & 0o001 for p in [real, *real.parents]):
            return str(real)
    pytest.skip("no temporary folder that every user may enter (for the sandbox user)")


def _nobody_can(test, path):
    return subprocess.run(["runuser", "-u", SANDBOX_USER, "--", "test", test, str(path)]).returncode == 0


def _hard_link_tree(source, target, skip=()):
    for folder, dirs, files in os.walk(source):
        dirs[:] = [d for d in dirs if os.path.join(folder, d) not in skip]
        relative = os.path.relpath(folder, source)
        os.makedirs(os.path.join(target, relative), exist_ok=True)
        for name in files:
            src = os.path.join(folder, name)
            if not os.path.islink(src):
                os.link(src, os.path.join(target, relative, name))
            else:
                os.symlink(os.readlink(src), os.path.join(target, relative, name))
        for name in dirs:
            if os.path.islink(os.path.join(folder, name)):
                os.symlink(os.readlink(os.path.join(folder, name)), os.path.join(target, relative, name))


def _world_python(folder):
    """A Python that nobody can run, with this environment's packages, and the extra environment it needs.

    Gradescope's setup.sh makes /autograder/venv readable by everyone. Here the interpreter may live
    where nobody cannot reach it (a pyenv build under /root): it is then hard-linked (no copy of the
    data) into ``folder`` with its standard library, and a virtual environment there uses this
    environment's site-packages (linked too when nobody cannot read them).
    """
    executable = Path(os.path.realpath(sys.executable))
    site = Path(next(p for p in sys.path if p.endswith("site-packages") and p.startswith(sys.prefix)))
    if _nobody_can("-x", executable) and _nobody_can("-r", site / "numpy" / "__init__.py"):
        return sys.executable, {}
    base = Path(sys.base_prefix)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    try:
        _hard_link_tree(base / "lib", folder / "base" / "lib", skip={str(base / "lib" / version / "site-packages")})
        (folder / "base" / "bin").mkdir(parents=True)
        os.link(executable, folder / "base" / "bin" / executable.name)
        venv = folder / "venv"
        (venv / "bin").mkdir(parents=True)
        os.link(executable, venv / "bin" / "python")
        (venv / "lib" / version).mkdir(parents=True)
        if _nobody_can("-r", site / "numpy" / "__init__.py"):
            os.symlink(site, venv / "lib" / version / "site-packages")
        else:
            _hard_link_tree(site, venv / "lib" / version / "site-packages")
    except OSError as error:
        pytest.skip(f"cannot make a Python that {SANDBOX_USER} can run (hard links across file systems?): {error}")
    (venv / "pyvenv.cfg").write_text(f"home = {folder / 'base' / 'bin'}\ninclude-system-site-packages = false\n"
                                     f"version = {'.'.join(map(str, sys.version_info[:3]))}\n")
    return str(venv / "bin" / "python"), {"LD_LIBRARY_PATH": str(folder / "base" / "lib")}


_PEAK = ("import resource, subprocess, sys\n"
         "code = subprocess.call(sys.argv[1:])\n"
         "print('grading peak KiB:', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
         "sys.exit(code)\n")


class GradescopeLayout:
    """/autograder as Gradescope makes it, under a temporary folder, graded by run_autograder as root."""

    def __init__(self, folder, page="gaussians"):
        from pca_to_vae_grader.gradescope import build_zip

        self.home = folder / "autograder"
        self.python, self.env = _world_python(folder)
        # 4 s per test: the honest calls take milliseconds, and the fork bomb's two tests end sooner.
        with zipfile.ZipFile(build_zip(page, folder / "dist", time_limit=4)) as archive:
            archive.extractall(self.home / "source")
        script = (self.home / "source" / "run_autograder").read_text().replace("/autograder", str(self.home))
        (self.home / "run_autograder").write_text(script)
        (self.home / "venv" / "bin").mkdir(parents=True)
        self.venv_python = self.home / "venv" / "bin" / "python"  # setup.sh's venv, played by the world Python
        self.venv_python.write_text(f'#!/bin/sh\nexec "{self.python}" "$@"\n')
        self.venv_python.chmod(0o755)

    def start(self, text, name="notebook.py", env=()):
        """Start run_autograder on ``text`` (as Gradescope would, as root) and return the process."""
        submission = self.home / "submission"
        shutil.rmtree(submission, ignore_errors=True)
        submission.mkdir()
        (submission / name).write_text(text)
        environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        environment.update(self.env, TMPDIR=_open_temp())
        environment.update(env)
        # run_autograder under a Python parent that reports the largest process of this grading alone
        # (RUSAGE_CHILDREN of the test's own process would count every grading the test run made before)
        return subprocess.Popen([sys.executable, "-c", _PEAK, "bash", str(self.home / "run_autograder")],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment,
                                start_new_session=True)

    def finish(self, process, start, timeout=300):
        """Wait for a grading (at most ``timeout`` s: past it the whole grading is killed and the test fails)."""
        try:
            stdout, stderr = process.communicate(timeout=max(timeout - (time.monotonic() - start), 1))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.communicate()
            pytest.fail(f"the grading did not end within {timeout} s")
        process.stdout, process.stderr = stdout, stderr
        peaks = re.findall(r"^grading peak KiB: (\d+)$", stderr, re.M)
        process.peak_mib = int(peaks[-1]) / 1024 if peaks else None
        path = self.home / "results" / "results.json"
        assert path.exists(), stderr[-3000:]
        return json.loads(path.read_text()), time.monotonic() - start, path, process

    def grade(self, text, name="notebook.py", timeout=300, env=()):
        start = time.monotonic()
        return self.finish(self.start(text, name, env), start, timeout)


@pytest.fixture(scope="module")
def gradescope():
    if os.geteuid() != 0:
        pytest.skip("the sandbox-user tests need root (CI runs as root): the grader drops to the user nobody")
    if shutil.which("runuser") is None:
        pytest.skip("runuser (util-linux) is needed to run as nobody")
    folder = Path(tempfile.mkdtemp(prefix="autograder-layout-", dir=_open_temp()))
    folder.chmod(0o755)  # nobody must reach the venv; /autograder/source and results are closed by run_autograder
    try:
        yield GradescopeLayout(folder, "gaussians")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_gradescope_honest_submission_full_marks_as_nobody(gradescope):
    results, _, _, process = gradescope.grade(HONEST.read_text())
    assert results["score"] == results["max_score"] > 0, (results["output"], process.stderr[-2000:])
    assert "refused" not in results["output"]
    assert not _sandbox_processes()


@pytest.mark.slow
def test_gradescope_hostile_submission_scores_only_its_work_as_nobody(gradescope):
    source = gradescope.home / "source"
    grader_files = [source / "pca_to_vae_grader" / "compare.py", source / "pca_to_vae_grader" / "plugin.py"]
    before = _digest(source)
    results, elapsed, path, process = gradescope.grade(_hostile_gaussians(grader_files))
    functions = ("gaussian_logpdf", "gaussian_mle", "condition_gaussian", "kl_gauss", "lowrank_solve_logdet")
    tests = _by_function(results, functions)
    detail = (results["output"], process.stderr[-2000:])
    assert _full(tests["gaussian_logpdf"]), (tests["gaussian_logpdf"], detail)
    assert _full(tests["lowrank_solve_logdet"]), tests["lowrank_solve_logdet"]
    assert _zero(tests["gaussian_mle"], "Time limit"), tests["gaussian_mle"]  # the fork bomb
    assert _zero(tests["condition_gaussian"], "MemoryError"), tests["condition_gaussian"]
    assert _zero(tests["kl_gauss"], "File too large"), tests["kl_gauss"]
    assert results["score"] == sum(t["max_score"] for f in ("gaussian_logpdf", "lowrank_solve_logdet") for t in tests[f])
    time.sleep(2.0)  # the detached forger would have written by now
    assert json.loads(path.read_text()) == results
    assert _digest(source) == before
    assert not _sandbox_processes() and not _marked_processes()
    assert not _workdirs_left(path.parent)
    assert (path.parent.stat().st_mode & 0o777) == 0o700 and path.stat().st_uid == 0
    assert elapsed < 120, elapsed


def test_gradescope_refuses_to_grade_where_the_sandbox_user_cannot_reach_the_grader(gradescope, tmp_path):
    # The grader's working folders under a folder of mode 700 (a TMPDIR made by mktemp -d; a checkout or a
    # virtual environment under root's home is the same case): the sandbox user cannot run the worker.
    # The grader checks before grading and refuses with one message that names the folder and the fix,
    # never "0 / 24 points" without a reason, and never runs the submission as root.
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    results, _, _, process = gradescope.grade("import os\n_ = os.system('touch /tmp/ran-as-root')\n",
                                              env={"TMPDIR": str(closed)})
    assert results["score"] == 0 and not results.get("tests"), results
    output = results["output"]
    assert output.count("refused") == 1 and str(closed) in output and "mode 700" in output and "chmod" in output, output
    assert not Path("/tmp/ran-as-root").exists()


# -- issue 20 and issue 15 (5): the operating system's side of the sandbox ------------------------------


def _layout(parent, page, mode=0o755):
    """A Gradescope layout for ``page`` under ``parent`` (made with ``mode``); skips unless root."""
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        pytest.skip("the sandbox-user tests need root and runuser (CI runs as root)")
    parent.mkdir(mode=0o755, exist_ok=True)
    parent.chmod(mode)
    folder = parent / f"layout-{page}"
    folder.mkdir(mode=0o755)
    return GradescopeLayout(folder, page)


@pytest.fixture
def open_folder():
    """A folder that every user may enter (not pytest's tmp_path, under a folder of mode 700), for layouts."""
    folder = Path(tempfile.mkdtemp(prefix="autograder-open-", dir=_open_temp()))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _source(*names):
    """The named files, "honest" standing for the honest page (HONEST), the others in hostile/."""
    return "".join((HONEST if name == "honest" else HOSTILE / name).read_text() + "\n\n" for name in names)


_STUB = "".join(f"\ndef {f}(*args):\n    raise NotImplementedError\n" for f in (
    "gaussian_logpdf", "gaussian_mle", "condition_gaussian", "kl_gauss", "lowrank_solve_logdet"))


@pytest.mark.slow
def test_gradescope_banned_modules_are_refused_by_the_system(gradescope, open_folder):
    # The submission empties the guard's rules through sys.modules and drops its finder: only the
    # operating system stands between it and torch (derivation pages) or the package (every page).
    # torch is imported while the submission loads (a class body runs then), within the loading budget.
    torch_attack = _source("unban.py") + """
class _Unbanned:
    unban()
    import torch


def kl_diag_gaussians(mu0, logvar0, mu1, logvar1):
    torch = _Unbanned.torch
    t = lambda a: torch.as_tensor(a, dtype=torch.float64)
    p = torch.distributions.Normal(t(mu0), torch.exp(t(logvar0) / 2))
    q = torch.distributions.Normal(t(mu1), torch.exp(t(logvar1) / 2))
    return torch.distributions.kl_divergence(p, q).sum(-1).numpy()


def iwae_logw_grads(log_w):
    torch = _Unbanned.torch
    w = torch.tensor(log_w, dtype=torch.float64, requires_grad=True)
    torch.logsumexp(w, 0).sum().backward()
    return w.grad.numpy()
"""
    derive = _layout(open_folder / "derive", "derive_nonlinear")
    results, _, _, process = derive.grade(torch_attack)
    used = [t for t in results["tests"] if t["extra_data"]["function"] in ("kl_diag_gaussians", "iwae_logw_grads")]
    assert len(used) >= 4 and results["score"] == 0, [(t["name"], t["score"], t["output"][:300]) for t in used]
    assert all("Passed" not in t["output"] for t in used), used
    package_attack = _source("honest", "unban.py") + """
def gaussian_logpdf(X, mu, Sigma):
    unban()
    import lgm
    return lgm.gaussian_logpdf(X, mu, Sigma)
"""
    results, _, _, _ = gradescope.grade(package_attack)
    tests = [t for t in results["tests"] if t["extra_data"]["function"] == "gaussian_logpdf"]
    assert tests and all(t["score"] == 0 for t in tests), [(t["name"], t["output"][:300]) for t in tests]
    assert results["score"] == results["max_score"] - sum(t["max_score"] for t in tests)
    assert not _sandbox_processes()


@pytest.mark.slow
def test_gradescope_pytest_configuration_planted_above_the_submission_is_ignored(open_folder):
    # The layout lies in a world-writable folder. The first submission writes pytest.ini and a conftest.py
    # that would give every test full marks into the first folder above it that it may write; the next
    # grading (an untouched stub) must not load them: the grader's configuration is pinned.
    layout = _layout(open_folder / "open", "gaussians", mode=0o1777)
    planting = (_source("honest", "planter.py") + "\n_kl = kl_gauss\n\n\n"
                "def kl_gauss(m0, S0, m1, S1):\n    plant()\n    return _kl(m0, S0, m1, S1)\n")
    first, _, _, _ = layout.grade(planting)
    assert (open_folder / "open" / "conftest.py").exists(), "the attack did not plant its configuration"
    second, _, _, process = layout.grade(_STUB)
    assert second["score"] == 0 and second["max_score"] > 0, (second["output"], process.stderr[-2000:])
    assert not (open_folder / "open" / "planted-ran").exists(), "the grader imported the planted conftest.py"
    assert first["score"] == first["max_score"]


@pytest.mark.slow
def test_gradescope_a_detached_process_cannot_stop_the_grader(gradescope):
    # A process of the sandbox user leaves the worker's session and sends SIGSTOP to every process it may
    # (kill(-1)), again and again: the helpers and workers of that user. Grading still ends within its time
    # limits with results.json written, and the next grading of an honest submission scores full marks.
    import signal

    stopper = (_source("honest", "detached.py") + "\n_mle = gaussian_mle\n\n\n"
               f"def gaussian_mle(X):\n    detach({int(signal.SIGSTOP)}, 40)\n    return _mle(X)\n")
    results, elapsed, _, process = gradescope.grade(stopper, timeout=150)
    tests = _by_function(results, ("gaussian_logpdf", "gaussian_mle", "condition_gaussian", "kl_gauss",
                                   "lowrank_solve_logdet"))
    assert _full(tests["gaussian_logpdf"]), (tests["gaussian_logpdf"], process.stderr[-2000:])
    assert _full(tests["lowrank_solve_logdet"]), tests["lowrank_solve_logdet"]  # after the stopper is gone
    assert elapsed < 120, elapsed
    assert not _sandbox_processes() and not _marked_processes()
    honest, _, _, process = gradescope.grade(HONEST.read_text(), timeout=150)
    assert honest["score"] == honest["max_score"] > 0, (honest["output"], process.stderr[-2000:])


@pytest.mark.slow
def test_gradescope_output_bombs_and_forged_load_replies_stay_small_and_quoted(gradescope):
    # 30,000 top-level statements each raising a 2 KB error (every graded function missing), then a load
    # reply forged from a class body with 20,000 problems of 2 KB and a line that pretends to be the
    # grader's total. The results stay small, say once what was cut, quote the submission's text, and the
    # grader's memory stays modest.
    bomb = 'import numpy as np\n' + '_ = int("x" * 2000)\n' * 30_000
    results, _, path, first = gradescope.grade(bomb, timeout=200)
    size = path.stat().st_size
    assert size < 300_000 and results["score"] == 0 and len(results["tests"]) == 15, (size, first.stderr[-2000:])
    assert all(len(t["output"]) <= 9_000 for t in results["tests"])
    assert "more statements raised errors" in results["output"], results["output"][-2000:]
    forged, _, path, process = gradescope.grade(_source("forged_load.py"), timeout=200)
    assert path.stat().st_size < 300_000 and forged["score"] == 0, process.stderr[-2000:]
    texts = [forged["output"]] + [t["output"] for t in forged["tests"]]
    lines = [line for text in texts for line in text.split("\n") if "regraded by the instructor" in line]
    assert lines and all(line.startswith("> ") for line in lines), lines
    assert forged["output"].rstrip().endswith("Total: 0 / 24 points."), forged["output"][-500:]
    peaks = [first.peak_mib, process.peak_mib]  # MiB, the largest process of each grading
    assert None not in peaks and max(peaks) < 600, peaks


@pytest.mark.slow
def test_gradescope_gradings_at_once_never_touch_each_other(open_folder):
    # Four gradings at once on one machine: two honest, one whose detached process (started while it
    # loads) kills every process it may (kill(-1, SIGKILL)) for a minute, one fork bomb. Each honest one
    # scores full marks, and the fork bomb loses only the tests of the function that forks.
    import signal

    layouts = [_layout(open_folder / f"grading-{i}", "gaussians") for i in range(4)]
    killer = _source("honest", "detached.py") + f"class _Killer:\n    detach({int(signal.SIGKILL)}, 60)\n"
    bomb = _source("honest", "attacks.py") + "\n\ndef gaussian_mle(X):\n    fork_bomb()\n"
    honest = HONEST.read_text()
    start = time.monotonic()
    processes = [layout.start(text) for layout, text in zip(layouts, (killer, honest, bomb, honest))]
    graded = [layout.finish(process, start, timeout=240) for layout, process in zip(layouts, processes)]
    for results, _, _, process in (graded[1], graded[3]):
        assert results["score"] == results["max_score"] > 0, (results["output"], process.stderr[-2000:])
    mle = [t for t in graded[2][0]["tests"] if t["extra_data"]["function"] == "gaussian_mle"]
    assert graded[2][0]["score"] == graded[2][0]["max_score"] - sum(t["max_score"] for t in mle)
    assert not _sandbox_processes() and not _marked_processes()
