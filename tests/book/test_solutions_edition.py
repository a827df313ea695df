"""The worked solutions stay out of the student book and cover every derivation exercise.

The solutions pages (book/solutions/*.md) are built only by ``make solutions``, which appends
book/solutions/toc-part.yml to book/_toc.yml; the student book's toc never lists them, and
``only_build_toc_files`` keeps them out of its build. tests/book/test_book_builds.py checks the
built student HTML and notebooks for the marker sentence below.
"""
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
BOOK = ROOT / "book"
#: A sentence that every solutions page carries and no student page may contain.
MARKER = "This page belongs to the solutions edition"
#: Each derivation page and its worked solutions.
PAIRS = {"exercises/derive_linear": "solutions/derive_linear", "exercises/derive_nonlinear": "solutions/derive_nonlinear"}


def _files(toc):
    found = []

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                found.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    return found


def test_the_student_toc_has_no_solutions_and_the_config_builds_only_toc_files():
    student = _files(yaml.safe_load((BOOK / "_toc.yml").read_text()))
    assert not [f for f in student if f.startswith("solutions/")]
    assert yaml.safe_load((BOOK / "_config.yml").read_text())["only_build_toc_files"] is True


def test_the_solutions_toc_is_the_student_toc_plus_every_solutions_page():
    # What `make solutions` builds: the concatenation parses, keeps the student book, adds the solutions.
    student_toc = (BOOK / "_toc.yml").read_text()
    student = _files(yaml.safe_load(student_toc))
    files = _files(yaml.safe_load(student_toc + (BOOK / "solutions" / "toc-part.yml").read_text()))
    assert files[: len(student)] == student
    pages = {f"solutions/{p.stem}" for p in (BOOK / "solutions").glob("*.md")}
    assert pages and pages <= set(files)


def test_every_solutions_page_carries_the_marker_and_no_student_page_does():
    for page in (BOOK / "solutions").glob("*.md"):
        assert MARKER in page.read_text(), page.name
    for name in _files(yaml.safe_load((BOOK / "_toc.yml").read_text())):
        assert MARKER not in (BOOK / f"{name}.md").read_text(), name


def test_every_derivation_and_proof_has_a_worked_solution():
    for exercises, solutions in PAIRS.items():
        asked = re.findall(r"^## (?:Exercise (D[0-9.]+)|Proof (D[0-9.]+))", (BOOK / f"{exercises}.md").read_text(), re.M)
        answered = (BOOK / f"{solutions}.md").read_text()
        assert len(asked) >= 4, exercises
        for exercise, proof in asked:
            heading = f"## {exercise}:" if exercise else f"## Proof {proof}:"
            assert heading in answered, f"{solutions}.md has no worked solution headed {heading!r}"
