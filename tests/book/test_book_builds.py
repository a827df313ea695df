"""The whole book builds with every cell executed, warnings as errors (-W -n --keep-going).

A broken cell, a missing reference or an undefined label fails this test, and so CI. The build
goes to a temporary folder so the test never disturbs ``book/_build`` of ``make book``.
"""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_book_builds_without_warnings(tmp_path):
    book = tmp_path / "book"
    shutil.copytree(ROOT / "book", book, ignore=shutil.ignore_patterns("_build"))
    exe = Path(sys.executable).with_name("jupyter-book")
    result = subprocess.run(
        [str(exe), "build", str(book), "-W", "-n", "--keep-going"],
        capture_output=True, text=True, cwd=ROOT,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, "book build failed:\n" + log[-6000:]
    assert (book / "_build" / "html" / "index.html").exists()
    assert (book / "_build" / "html" / "_static" / "mathjax" / "tex-chtml.js").exists(), "MathJax is not served locally"
