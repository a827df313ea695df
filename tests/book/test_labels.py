"""Math and code point at each other (DESIGN.md property 4).

Every equation label a docstring of ``lgm`` or ``nlgm`` cites ("Implements eq-lgm-posterior")
is defined in the book, as a labelled display equation ``$$ ... $$ (eq-...)`` or a ``{math}``
block with ``:label: eq-...``; and every literalinclude of the package names an object that exists.
"""
import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BOOK = ROOT / "book"
CITED = re.compile(r"\beq-[a-z0-9]+(?:-[a-z0-9]+)*")


def _book_labels():
    labels = set()
    for page in BOOK.rglob("*.md"):
        if "_build" in page.parts:
            continue
        text = page.read_text()
        labels |= set(re.findall(r"\$\$\s*\((eq-[a-z0-9-]+)\)", text))
        labels |= set(re.findall(r":label:\s*(eq-[a-z0-9-]+)", text))
    return labels


def _docstring_citations():
    cited = {}
    for package in ("lgm", "nlgm"):
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
                    doc = ast.get_docstring(node) or ""
                    for label in CITED.findall(doc):
                        cited.setdefault(label, []).append(f"{path.relative_to(ROOT)}:{getattr(node, 'name', '<module>')}")
    return cited


def test_every_cited_equation_label_is_defined_in_the_book():
    labels = _book_labels()
    missing = {k: v for k, v in _docstring_citations().items() if k not in labels}
    assert not missing, f"docstrings cite labels the book does not define: {missing}"


def test_the_package_cites_equations():
    assert len(_docstring_citations()) >= 10


def test_every_literalinclude_names_an_existing_object():
    bad = []
    for page in BOOK.rglob("*.md"):
        if "_build" in page.parts:
            continue
        for path, obj in re.findall(r"```\{literalinclude\}\s+(\S+)\n(?::[a-z-]+:.*\n)*?:pyobject:\s*(\S+)", page.read_text()):
            source = (page.parent / path).resolve()
            if not source.exists():
                bad.append(f"{page.name}: {path} does not exist")
                continue
            names = set()
            for node in ast.walk(ast.parse(source.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                    names.add(node.name)
                    if isinstance(node, ast.ClassDef):
                        names |= {f"{node.name}.{m.name}" for m in node.body if isinstance(m, ast.FunctionDef)}
            if obj not in names:
                bad.append(f"{page.name}: {path} has no {obj}")
    assert not bad, bad
