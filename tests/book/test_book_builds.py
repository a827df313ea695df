"""The whole book builds with every cell executed, warnings as errors (-W -n --keep-going).

A broken cell, a missing reference, an undefined label or a literalinclude of a package object
that moved fails this test, and so CI. The sources are read where they are (the pages include
``../lgm/*.py``), and the output goes to a temporary folder, so the test never disturbs the
``book/_build`` of ``make book``.
"""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_book_builds_without_warnings(tmp_path):
    exe = Path(sys.executable).with_name("jupyter-book")
    result = subprocess.run(
        [str(exe), "build", str(ROOT / "book"), "--path-output", str(tmp_path), "-W", "-n", "--keep-going"],
        capture_output=True, text=True, cwd=ROOT,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, "book build failed:\n" + log[-6000:]
    html = tmp_path / "_build" / "html"
    assert (html / "index.html").exists()
    assert (html / "_static" / "mathjax" / "tex-chtml.js").exists(), "MathJax is not served locally"
    notebooks = {p.stem for p in (html / "exercises").glob("*.ipynb")}
    sheets = {p.stem for p in (ROOT / "book" / "exercises").glob("*.md")} - {"index", "instructors"}
    assert notebooks == sheets, "every exercise page must be downloadable as a notebook"
    # The worked solutions (book/solutions/, built only by `make solutions`) stay out of the student book.
    marker = "This page belongs to the solutions edition"  # tests/book/test_solutions_edition.py
    assert not (html / "solutions").exists()
    leaked = [p.name for p in list(html.rglob("*.html")) + list(html.rglob("*.ipynb")) if marker in p.read_text()]
    assert not leaked, f"solutions text in the student book: {leaked}"
