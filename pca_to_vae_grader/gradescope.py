"""Build the Gradescope autograder zip for an exercise page: ``python -m pca_to_vae_grader build-zip PAGE``.

Gradescope unpacks the zip into ``/autograder/source``, runs ``setup.sh`` once to build the image,
and ``run_autograder`` for every submission, which must leave ``/autograder/results/results.json``.
The zip holds the package (``lgm``, ``nlgm``, installed by ``setup.sh`` in the virtual environment
``/autograder/venv``, which ``run_autograder`` uses), the grader ``pca_to_vae_grader`` with the pages' tests,
and the course file when one is given — not the reference solutions or the answer keys.
``run_autograder`` grades only inside the sandbox (the submission as a sandbox user of its own, the
grader's files and the results root's alone); when it cannot set that up it writes a results file
that says why, with score 0, instead of grading unsandboxed.
"""
import zipfile
from pathlib import Path

from pca_to_vae_grader import pages as registry
from pca_to_vae_grader.sandbox import UID_RANGE

PACKAGE = Path(__file__).resolve().parent
ROOT = PACKAGE.parent

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
# The submission runs as an unprivileged uid: it must be able to run this Python and import numpy, scipy, torch.
chmod -R a+rX /autograder/venv
"""

TORCH = '/autograder/venv/bin/python -m pip install "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu\n'

RUN = """#!/usr/bin/env bash
# Gradescope runs this for every submission; it must write /autograder/results/results.json.
# The submission runs as an unprivileged user (--sandbox-user: a uid of SANDBOX_USERS that no other
# grading on this machine holds): it cannot read the grader, the tests or the package, nor write the
# results. If that sandbox cannot be set up, this script (or the grader, which checks before grading)
# refuses to grade and says why in results.json, rather than run the submission unsandboxed.
set -u
PYTHON=/autograder/venv/bin/python  # made by setup.sh
SANDBOX_USERS={users}
RESULTS=/autograder/results
mkdir -p "$RESULTS"
chown 0:0 "$RESULTS" 2>/dev/null
chmod 700 "$RESULTS"  # only root can enter: the sandbox user cannot write, swap or read the results
rm -f "$RESULTS/results.json"
refuse() {{
    printf '{{"score": 0, "output": "The autograder refused to grade this submission: %s. Please tell your instructor."}}\\n' "$1" \\
        > "$RESULTS/results.json"
    echo "autograder: refused to grade: $1" >&2
    exit 0
}}
[ "$(id -u)" = 0 ] || refuse "it must run as root to run the submission as an unprivileged user"
# The grader, the tests and the package (also where the venv installed it) are root's alone.
chmod -R go-rwx /autograder/source
for package in lgm nlgm; do
    folder=$(cd / && "$PYTHON" -c "import importlib.util, os; s = importlib.util.find_spec('$package'); print(os.path.dirname(s.origin) if s and s.origin else '')" 2>/dev/null)
    case "$folder" in /autograder/venv/*) chmod -R go-rwx "$folder" ;; esac
done
cd /autograder/source
# pytest's configuration is the grader's own: its ini file, its root folder, its plugin named (no plugin
# loaded by entry point), no conftest.py above it and no cache, whatever a submission left in a folder
# above the submission or the results.
PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 "$PYTHON" -m pytest {package}/tests/test_{page}.py -q \\
    -c /autograder/source/pyproject.toml --rootdir /autograder/source --confcutdir /autograder/source \\
    -p {package}.plugin -p no:cacheprovider --submission /autograder/submission --results "$RESULTS/results.json" \\
    --time-limit {time_limit:g} --sandbox-user "$SANDBOX_USERS"{course_option}
[ -s "$RESULTS/results.json" ] || refuse "the grader stopped before writing its results"
"""


def pages():
    """The exercise pages, by name (the registry, :mod:`pca_to_vae_grader.pages`)."""
    return list(registry.PAGES)


def _needs_torch(page):
    text = registry.page(page).tests.read_text()
    return "torch" in text or "nlgm" in text


def _sources():
    """The files of the repository the grader needs, as (path on disk, path in the zip)."""
    files = [ROOT / name for name in ("pyproject.toml", "README.md", "LICENSE", "LICENSE-BOOK.md")]
    for package in ("lgm", "nlgm", PACKAGE.name):  # the grader with every page's tests
        files += sorted(p for p in (ROOT / package).rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    return [(f, f.relative_to(ROOT).as_posix()) for f in files if f.exists()]


def build_zip(page, out_dir, *, time_limit=10.0, course=None):
    """Write ``<out_dir>/autograder-<page>.zip`` and return its path.

    Parameters
    ----------
    page : str
        The exercise page, e.g. ``"gaussians"`` for ``book/exercises/gaussians.md``.
    out_dir : str or Path
    time_limit : float
        Seconds the submission's code may run in one test (all its calls together).
    course : str or Path, optional
        A course file (:mod:`pca_to_vae_grader.course`): the zip grades with its points and visibility.
    """
    if page not in pages():
        raise ValueError(f"no autograder tests for page {page!r}; pages with tests: {', '.join(pages())}")
    if course is not None:
        from pca_to_vae_grader.course import Course

        if not Course.read(course).includes(page):
            raise ValueError(f"the course file {Path(course).name} does not list page {page!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"autograder-{page}.zip"
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, text in (
            ("setup.sh", SETUP.format(torch=TORCH if _needs_torch(page) else "")),
            ("run_autograder", RUN.format(page=page, time_limit=time_limit, package=PACKAGE.name, users=UID_RANGE,
                                          course_option=" --course course.toml" if course else "")),
        ):
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o755 << 16
            archive.writestr(info, text)
        for path, name in _sources() + ([(Path(course), "course.toml")] if course else []):
            archive.write(path, name)
    return target
