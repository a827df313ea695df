"""The whole book builds with every cell executed, warnings as errors (-W -n --keep-going).

A broken cell, a missing reference, an undefined label or a literalinclude of a package object
that moved fails this test, and so CI. The book is built once per session by ``make book`` into a
temporary folder (tests/conftest.py), so the test never disturbs the ``book/_build`` of ``make
book``, and with ``BOOK_REPOSITORY_URL`` set to another repository than ``_config.yml``'s, so the
launch buttons can be seen to follow that one setting.
"""
import json
import re
from pathlib import Path

import jupytext
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
FORK = "a-fork/pca-to-vae-copy"  # tests/conftest.py FORK_URL
#: MyST that Jupyter and Colab would show as raw text.
#: Code that works only inside a clone of the repository.
LAYOUT = re.compile(r"\.\./|sys\.path|os\.chdir|__file__|\bopen\(|read_(csv|text)|np\.load\(|Path\(")
MYST = re.compile(r"\{[a-z:-]+\}`|^(```|:::)\{|\$\$[ \t]*\(|^\([\w:.-]+\)=[ \t]*$", re.M)


def _toc_files(node):
    if isinstance(node, dict):
        yield from (node[key] for key in ("root", "file") if key in node)
        for value in node.values():
            yield from _toc_files(value)
    elif isinstance(node, list):
        for item in node:
            yield from _toc_files(item)


def _pages():
    """Every page of the book that is a notebook (all but the bibliography): docname -> source."""
    toc = yaml.safe_load((ROOT / "book" / "_toc.yml").read_text())
    sources = {name: ROOT / "book" / f"{name}.md" for name in _toc_files(toc)}
    return {name: md for name, md in sources.items() if "kernelspec" in jupytext.read(md).metadata}


@pytest.mark.slow
def test_book_builds_without_warnings(built_book):
    html = built_book.html
    assert (html / "index.html").exists()
    assert (html / "_static" / "mathjax" / "tex-chtml.js").exists(), "MathJax is not served locally"
    # The worked solutions (book/solutions/, built only by `make solutions`) stay out of the student book
    # and out of the notebooks the launch buttons open.
    marker = "This page belongs to the solutions edition"  # tests/book/test_solutions_edition.py
    assert not (html / "solutions").exists()
    published = [*html.rglob("*.html"), *html.rglob("*.ipynb"), *built_book.notebooks.rglob("*.ipynb")]
    leaked = [p.name for p in published if marker in p.read_text()]
    assert not leaked, f"solutions text in the student book: {leaked}"


@pytest.mark.slow
def test_every_page_is_a_plain_notebook_beside_its_html_page(built_book):
    pages = _pages()
    assert {"intro", "04_pca", "11_vae", "faq", "errata", "exercises/pca"} <= set(pages)
    for page in pages:
        notebook = built_book.html / f"{page}.ipynb"
        assert notebook.exists(), f"{page} has no notebook"
        assert (built_book.html / f"{page}.html").exists()
        # The branch the launch buttons open holds the same notebook.
        assert (built_book.notebooks / f"{page}.ipynb").read_bytes() == notebook.read_bytes()
        cells = json.loads(notebook.read_text())["cells"]
        for cell in cells:
            assert cell.get("outputs", []) == [], f"{page}: a notebook without outputs"
            if cell["cell_type"] == "markdown":
                text = "".join(cell["source"])
                assert not MYST.search(text), f"{page}: MyST left in a Markdown cell: {MYST.search(text)[0]!r}"
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        # A notebook opened anywhere (Colab, a download folder) has no repository around it.
        layout = LAYOUT.search(code)
        assert layout is None, f"{page}: a cell relies on the repository's folders: {layout and layout[0]!r}"
        for cell in cells:  # hidden in the book: collapsed in JupyterLab; raises-exception kept for Jupyter
            tags = cell["metadata"].get("tags", [])
            if "hide-input" in tags:
                assert cell["metadata"]["jupyter"]["source_hidden"] is True
        if re.search(r"^\s*(from|import) (lgm|nlgm)\b", code, re.M):
            assert "setup" in cells[0]["metadata"].get("tags", []), f"{page}: no setup cell first"
            assert f"git+https://github.com/{FORK}@main" in "".join(cells[0]["source"])
    em = json.loads((built_book.html / "exercises" / "em.ipynb").read_text())["cells"]
    assert any("raises-exception" in c["metadata"].get("tags", []) for c in em), "stubs must keep raises-exception"
    requirements = (built_book.notebooks / "requirements.txt").read_text()
    assert f"git+https://github.com/{FORK}@main" in requirements and "torch==2.13.0" in requirements


@pytest.mark.slow
def test_every_notebook_page_has_a_download_link_and_launch_buttons(built_book):
    pages = _pages()
    for page in pages:
        text = (built_book.html / f"{page}.html").read_text()
        name = page.rsplit("/", 1)[-1]
        assert f'href="{name}.ipynb"' in text, f"{page}: no .ipynb download link"
        colab = f"https://colab.research.google.com/github/{FORK}/blob/notebooks/{page}.ipynb"
        binder = f"https://mybinder.org/v2/gh/{FORK}/notebooks?urlpath=lab/tree/{page}.ipynb"
        assert f'href="{colab}"' in text, f"{page}: no Colab button"
        assert f'href="{binder}"' in text, f"{page}: no Binder button"
        # Every launch URL names the repository of the setting, none the default of _config.yml.
        launch = re.findall(r'href="(https://(?:colab\.research\.google\.com|mybinder\.org)[^"]*)"', text)
        assert len(launch) == 2 and all(FORK in url for url in launch), launch
    # The theme's own buttons (which point at <page>.md) are not there.
    assert "/blob/main/book/" not in (built_book.html / "04_pca.html").read_text()
    assert not (built_book.html / "references.ipynb").exists()


@pytest.mark.slow
def test_equations_are_numbered_per_chapter_alike_in_page_and_notebook(built_book):
    """(7.3) beside the equation, in every reference to it, and as \\tag{7.3} in the notebook (book/_ext)."""
    web = f"https://{FORK.replace('/', '.github.io/', 1)}/"
    for page, chapter in [("02_gaussian_toolkit", 2), ("07_em_lgm", 7), ("12_evaluating", 12)]:
        html = (built_book.html / f"{page}.html").read_text()
        shown = re.findall(r'class="eqno">\(([\d.]+)\)', html)
        assert shown == [f"{chapter}.{n}" for n in range(1, len(shown) + 1)], (page, shown)
        cells = json.loads((built_book.html / f"{page}.ipynb").read_text())["cells"]
        text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
        assert re.findall(r"\\tag\{([\d.]+)\}", text) == shown, page
        # a reference in the notebook is a link to the same equation of the web book
        for number, target, label in re.findall(r"\[\(([\d.]+)\)[^\]]*\]\(([^)#]+)#equation-([\w-]+)\)", text):
            assert target.startswith(web), target
            linked = (built_book.html / target.removeprefix(web)).read_text()
            assert f'id="equation-{label}"' in linked and f'({number})' in linked, (page, label, number)
    html = (built_book.html / "07_em_lgm.html").read_text()
    assert re.search(r'href="06_lgm\.html#equation-eq-lgm-posterior">\(6\.\d+\)</a>', html)
    # The code shown cites labels; the line under it gives their numbers, as links.
    lgm_page = (built_book.html / "06_lgm.html").read_text()
    assert re.search(r'cited-equations.*?<code[^>]*><span class="pre">eq-lgm-profile</span></code> is '
                     r'<a class="reference internal" href="#equation-eq-lgm-profile">\(6\.\d+\)</a>', lgm_page, re.S)


@pytest.mark.slow
def test_pages_have_one_copy_of_each_script_a_favicon_and_quiet_stubs(built_book):
    html = built_book.html
    assert (html / "favicon.ico").read_bytes()[:4] == b"\x00\x00\x01\x00", "no favicon.ico at the site's root"
    for page in html.rglob("*.html"):
        text = page.read_text()
        assert text.count("const THEBE_JS_URL") <= 1, f"{page.name}: the thebe configuration twice"
    stubs = 0
    for page in (html / "exercises").glob("*.html"):
        text = page.read_text()
        assert "Traceback (most recent call last)" not in text or "NotImplementedError</span>: " not in text, \
            f"{page.name}: a stub's traceback on the page"
        stubs += text.count("Not implemented yet: this cell runs once")
    assert stubs >= 10, f"only {stubs} quiet stub outputs on the exercise pages"
