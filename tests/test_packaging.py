"""The conda/Binder route (environment.yml) stays true to pyproject.toml.

conda cannot run on the CI machine, so this test is how the two files are kept in step: every
dependency that pyproject.toml installs for the book and the tests is named in environment.yml,
and environment.yml names nothing pyproject.toml does not know.
"""
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# conda spells a few packages differently; pip-only extras of the environment are listed here.
CONDA_ONLY = {"python", "pip"}


def _name(requirement):
    return re.split(r"[<>=!~ \[;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject_names():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {_name(r) for r in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        names |= {_name(r) for r in extra}
    return names


def _environment_names():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    names = set()
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            names |= {_name(r) for r in dep["pip"] if not r.startswith("-e")}
        else:
            names.add(_name(dep))
    return names - CONDA_ONLY


def test_environment_and_pyproject_name_the_same_dependencies():
    py, env = _pyproject_names(), _environment_names()
    assert env - py == set(), f"environment.yml names packages pyproject.toml does not: {sorted(env - py)}"
    assert py - env == set(), f"pyproject.toml names packages environment.yml lacks: {sorted(py - env)}"


def test_torch_is_pinned_in_both_install_routes():
    assert 'torch==2.13.0' in (ROOT / "Makefile").read_text()
    assert "torch==2.13.0" in (ROOT / "environment.yml").read_text()


def test_lgm_never_imports_torch():
    """DESIGN.md property 1: the linear half of the book runs without torch."""
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "lgm").rglob("*.py")
        if re.search(r"^\s*(import|from)\s+(torch|nlgm)\b", p.read_text(), re.M)
    ]
    assert offenders == []
