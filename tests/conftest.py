"""Session fixtures shared by the release checks: the built book, the built package, a fresh venv.

Each is made once per test session, through the Makefile targets that the publishing workflow
runs (``make book``, ``make dist``), with the test's own virtual environment and the stamp of
its install step marked as up to date (``make -o``), so nothing is installed into it.
"""
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: The repository URL the test build publishes under: not the default of book/_config.yml, so
#: the launch buttons can be seen to follow the setting.
FORK_URL = "https://github.com/a-fork/pca-to-vae-copy"
#: What Colab ships that the notebooks need, and what executes a notebook. torch is always pinned.
COLAB_PACKAGES = ["numpy", "scipy", "matplotlib", "scikit-learn", "tqdm", "torch==2.13.0",
                  "nbclient", "ipykernel"]


#: Fixtures that take minutes: a test that uses one is marked slow (``make quick`` skips it), so
#: no test can bring one into the quick run by forgetting its mark.
SLOW_FIXTURES = {"built_book", "dist", "fresh_venv", "gradings"}


@pytest.hookimpl(tryfirst=True)  # before -m "not slow" deselects
def pytest_collection_modifyitems(items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def _make(*args, env=None):
    """Run ``make ARGS`` with this interpreter's venv; its install step counts as done."""
    venv = Path(sys.prefix)
    command = ["make", "-C", str(ROOT), *args, f"VENV={venv}", "-o", str(venv / ".installed")]
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    assert result.returncode == 0, f"make {' '.join(args)} failed:\n{(result.stdout + result.stderr)[-6000:]}"


@pytest.fixture(scope="session")
def built_book(tmp_path_factory):
    """``make book`` into a temporary folder, published as the repository FORK_URL."""
    out = tmp_path_factory.mktemp("book")
    _make("book", f"BOOK_OUT={out}", env={**os.environ, "BOOK_REPOSITORY_URL": FORK_URL})
    return SimpleNamespace(html=out / "_build" / "html", notebooks=out / "_build" / "notebooks")


@pytest.fixture(scope="session")
def dist(tmp_path_factory):
    """``make dist``: the wheel and the sdist (twine-checked) in a temporary folder."""
    out = tmp_path_factory.mktemp("dist")
    _make("dist", f"DIST={out}")
    return out


def _clean_env():
    """The environment of a new user: no PYTHONPATH pointing into this repository."""
    return {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}}


@pytest.fixture(scope="session")
def fresh_venv(dist, tmp_path_factory):
    """A new virtual environment with the wheel alone, then with Colab's packages added.

    ``alone`` records what imported right after ``pip install <wheel>`` (before torch and the
    notebook runner were added): the wheel must bring every dependency of ``lgm`` itself.
    """
    venv = tmp_path_factory.mktemp("venv")
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--no-compile"]
    wheel = next(dist.glob("*.whl"))
    subprocess.run([*pip, str(wheel)], check=True, env=_clean_env())
    probe = ("import importlib.util as u, lgm; print(lgm.__file__); "
             "print('torch' if u.find_spec('torch') else 'no torch')")
    alone = subprocess.run([str(python), "-c", probe], capture_output=True, text=True,
                           cwd=tmp_path_factory.mktemp("empty"), env=_clean_env())
    subprocess.run([*pip, *COLAB_PACKAGES], check=True, env=_clean_env())
    # the grader of the exercises, as the exercise notebooks' set-up cell installs it on Colab
    subprocess.run([*pip, f"{wheel}[grader]"], check=True, env=_clean_env())
    return SimpleNamespace(path=venv, python=python, alone=alone)


@pytest.fixture(scope="session")
def make():
    """``make(target, VAR=value...)`` with this interpreter's venv, install step skipped."""
    return _make


@pytest.fixture(scope="session")
def clean_env():
    """The environment of a new user: no PYTHONPATH pointing into this repository."""
    return _clean_env()


@pytest.fixture
def ctrl_c_on_call(monkeypatch):
    """``ctrl_c_on_call(owner, name, n)``: the n-th call of ``owner.name`` (a module's function or a
    class's method) raises KeyboardInterrupt, as if the user pressed Ctrl-C inside it; the other calls
    run it. Undone after the test."""

    def patch(owner, name, n):
        original, calls = getattr(owner, name), []

        def pressed(*args, **kwargs):
            calls.append(1)
            if len(calls) == n:
                raise KeyboardInterrupt
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, pressed)

    return patch
