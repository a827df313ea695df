"""Packaging: environment.yml stays true to pyproject.toml, and the release builds and installs.

conda cannot run on the CI machine, so this test is how the two files are kept in step: every
dependency that pyproject.toml installs for the book and the tests is named in environment.yml,
and environment.yml names nothing pyproject.toml does not know.
"""
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
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


# --------------------------------------------------------------------------------------------
# The release: wheel and sdist, PyPI metadata, the publishing workflow (tests/conftest.py builds
# the files once per session through the Makefile targets the workflow runs).

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def _project():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


@pytest.mark.slow
def test_make_dist_builds_a_wheel_and_an_sdist_with_both_packages(dist):
    import tarfile
    import zipfile

    (wheel,), (sdist,) = list(dist.glob("*.whl")), list(dist.glob("*.tar.gz"))
    in_wheel = set(zipfile.ZipFile(wheel).namelist())
    with tarfile.open(sdist) as archive:
        in_sdist = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for module in [p.relative_to(ROOT).as_posix() for pkg in ("lgm", "nlgm") for p in (ROOT / pkg).glob("*.py")]:
        assert module in in_wheel, f"{module} missing from the wheel"
        assert module in in_sdist, f"{module} missing from the sdist"
    assert {"README.md", "LICENSE", "pyproject.toml"} <= in_sdist
    # setuptools would add tests/test_packaging.py alone, which cannot run without the repository
    assert not any(n.startswith("tests/") for n in in_sdist), sorted(in_sdist)
    assert not any(n.startswith(("tests/", "book/", "autograder/")) for n in in_wheel)
    # The grader ships with every page's tests (pip install "pca-to-vae[grader]"); the reference solutions,
    # the classic mistakes and the hostile submissions do not (students install the wheel).
    from pca_to_vae_grader import pages

    shipped = {"pca_to_vae_grader/plugin.py", "pca_to_vae_grader/sandboxed/worker.py", "pca_to_vae_grader/README.md"}
    assert shipped | {f"pca_to_vae_grader/tests/test_{page}.py" for page in pages.PAGES} <= in_wheel
    assert not any(word in n for n in in_wheel for word in ("solutions", "mistakes", "hostile", "answer_keys"))


@pytest.mark.slow
def test_the_wheel_alone_brings_everything_lgm_needs(fresh_venv):
    """Right after ``pip install <wheel>`` in an empty venv: lgm imports, from the venv, without torch."""
    alone = fresh_venv.alone
    assert alone.returncode == 0, alone.stderr
    assert Path(alone.stdout.splitlines()[0]).is_relative_to(fresh_venv.path), alone.stdout
    assert alone.stdout.splitlines()[1] == "no torch", "lgm must not need torch (DESIGN.md property 1)"


@pytest.mark.slow
def test_nlgm_runs_from_the_wheel_once_torch_is_there(fresh_venv, clean_env, tmp_path):
    code = ("import nlgm, torch; m = nlgm.NLGM(4, 2); print(nlgm.__file__); "
            "print(float(m.elbo(torch.randn(5, 4))))")
    result = subprocess.run([str(fresh_venv.python), "-c", code], capture_output=True, text=True,
                            cwd=tmp_path, env=clean_env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert Path(result.stdout.splitlines()[0]).is_relative_to(fresh_venv.path)


def test_requires_python_is_true_for_the_code_and_the_environments():
    from packaging.specifiers import SpecifierSet

    requires = SpecifierSet(_project()["requires-python"])
    uses_tomllib = [p for p in ROOT.rglob("*.py") if ".venv" not in p.parts and "_build" not in p.parts
                    and re.search(r"^\s*import tomllib", p.read_text(), re.M)]
    if uses_tomllib:  # tomllib is in the standard library from 3.11 on
        assert "3.10" not in requires, f"{uses_tomllib[0]} imports tomllib"
    env_python = re.search(r"python=(\d+\.\d+)", (ROOT / "environment.yml").read_text())[1]
    assert env_python in requires
    assert "3.11" in requires and f"{sys.version_info[0]}.{sys.version_info[1]}" in requires
    listed = {c.rsplit(":: ", 1)[1] for c in _project()["classifiers"]
              if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)}
    assert listed and all(v in requires for v in listed), listed


def test_metadata_is_fit_for_pypi():
    project = _project()
    assert {"Homepage", "Documentation", "Source"} <= set(project["urls"])
    assert all(u.startswith("https://") for u in project["urls"].values())
    readme = (ROOT / project["readme"]).read_text()
    # PyPI shows the README without the repository around it: a relative link or image breaks there.
    relative = re.findall(r"\]\((?!https?://|#|mailto:)([^)]+)\)|<img[^>]+src=\"(?!https?://)([^\"]+)", readme)
    assert relative == [], f"relative links in README.md break on PyPI: {relative}"
    # The package's URLs name the same repository as the book's launch buttons.
    config = yaml.safe_load((ROOT / "book" / "_config.yml").read_text())
    assert project["urls"]["Source"].rstrip("/") == config["repository"]["url"].rstrip("/")


def test_workflows_are_valid_github_actions_files(tmp_path):
    exe = Path(sys.executable).with_name("check-jsonschema")
    assert WORKFLOWS, "no workflow in .github/workflows"
    check = [str(exe), "--builtin-schema", "vendor.github-workflows"]
    result = subprocess.run([*check, *map(str, WORKFLOWS)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    # The linter does fail: the same file with a misspelt key is rejected.
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOWS[0].read_text().replace("runs-on:", "run-on:"))
    assert subprocess.run([*check, str(broken)], capture_output=True).returncode != 0


#: The make targets the workflows may run: each is run by this test suite (tests/conftest.py).
TESTED_TARGETS = {"book", "dist", "autograder"}


def test_workflows_run_only_make_targets_that_the_tests_run():
    for workflow in WORKFLOWS:
        steps = [s for job in yaml.safe_load(workflow.read_text())["jobs"].values() for s in job["steps"]]
        commands = [s["run"].strip() for s in steps if "run" in s]
        assert commands, workflow
        for command in commands:
            assert re.fullmatch(r"make [a-z]+", command), f"{workflow.name}: {command!r} is not a make target"
            assert command.split()[1] in TESTED_TARGETS, f"{workflow.name}: {command!r} is not tested"


def test_make_autograder_writes_one_zip_per_exercise_sheet(make, tmp_path):
    make("autograder", f"DIST={tmp_path}")
    sheets = {p.stem for p in (ROOT / "book" / "exercises").glob("*.md")} - {"index", "instructors"}
    assert {p.name for p in (tmp_path / "autograder").glob("*.zip")} == {f"autograder-{s}.zip" for s in sheets}
