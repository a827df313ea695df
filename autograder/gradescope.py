"""Build the Gradescope autograder zip for an exercise page: ``python -m autograder build-zip PAGE``.

Gradescope unpacks the zip into ``/autograder/source``, runs ``setup.sh`` once to build the image,
and ``run_autograder`` for every submission, which must leave ``/autograder/results/results.json``.
The zip holds the package (``lgm``, ``nlgm``, installed by ``setup.sh`` in the virtual environment
``/autograder/venv``, which ``run_autograder`` uses), the ``autograder`` folder
and the page's tests — not the reference solutions, which the grader does not need.
"""
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXERCISES = ROOT / "tests" / "exercises"

SETUP = """#!/usr/bin/env bash
# Gradescope runs this once, as root, to build the autograder image. Everything is installed in a
# virtual environment, /autograder/venv: the system Python of Ubuntu 24.04 refuses pip installs
# (PEP 668, "externally-managed-environment"), and a venv works the same on 22.04 and 24.04.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends python3 python3-venv
python3 -m venv /autograder/venv
cd /autograder/source
/autograder/venv/bin/python -m pip install --upgrade pip
{torch}/autograder/venv/bin/python -m pip install . "pytest>=7.4" "jupytext>=1.16"
"""

TORCH = '/autograder/venv/bin/python -m pip install "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu\n'

RUN = """#!/usr/bin/env bash
# Gradescope runs this for every submission; it must write /autograder/results/results.json.
# The submission runs as the unprivileged user "nobody", so it cannot touch the results or the grader
# (if "nobody" cannot run Python and read the package here, it runs as the grader's user instead).
PYTHON=/autograder/venv/bin/python  # made by setup.sh
cd /autograder/source
mkdir -p /autograder/results
rm -f /autograder/results/results.json
SANDBOX=""
if runuser -u nobody -- "$PYTHON" -c "import autograder.worker, numpy" 2>/dev/null; then
    SANDBOX="--sandbox-user nobody"
fi
"$PYTHON" -m pytest tests/exercises/test_{page}.py -p no:cacheprovider -q \\
    --submission /autograder/submission --results /autograder/results/results.json \\
    --time-limit {time_limit:g} $SANDBOX
if [ ! -s /autograder/results/results.json ]; then
    echo '{{"score": 0, "output": "The autograder could not run. Please tell your instructor."}}' \\
        > /autograder/results/results.json
fi
"""


def pages():
    """The exercise pages that have autograder tests, by name (``gaussians`` for test_gaussians.py)."""
    return sorted(p.stem[len("test_"):] for p in EXERCISES.glob("test_*.py") if p.stem != "test_autograder")


def _needs_torch(page):
    text = (EXERCISES / f"test_{page}.py").read_text()
    return "torch" in text or "nlgm" in text


def _sources():
    """The files of the repository the grader needs, as (path on disk, path in the zip)."""
    files = [ROOT / name for name in ("pyproject.toml", "README.md", "LICENSE", "LICENSE-BOOK.md")]
    for package in ("lgm", "nlgm", "autograder"):
        files += sorted(p for p in (ROOT / package).rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    files += [EXERCISES / "__init__.py", EXERCISES / "conftest.py"]
    return [(f, f.relative_to(ROOT).as_posix()) for f in files if f.exists()]


def build_zip(page, out_dir, *, time_limit=10.0):
    """Write ``<out_dir>/autograder-<page>.zip`` and return its path.

    Parameters
    ----------
    page : str
        The exercise page, e.g. ``"gaussians"`` for ``book/exercises/gaussians.md``.
    out_dir : str or Path
    time_limit : float
        Seconds the submission's code may run in one test (all its calls together).
    """
    if page not in pages():
        raise ValueError(f"no autograder tests for page {page!r}; pages with tests: {', '.join(pages())}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"autograder-{page}.zip"
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, text in (
            ("setup.sh", SETUP.format(torch=TORCH if _needs_torch(page) else "")),
            ("run_autograder", RUN.format(page=page, time_limit=time_limit)),
        ):
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o755 << 16
            archive.writestr(info, text)
        for path, name in _sources() + [(EXERCISES / f"test_{page}.py", f"tests/exercises/test_{page}.py")]:
            archive.write(path, name)
    return target
