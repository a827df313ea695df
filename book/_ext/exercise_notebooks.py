"""Sphinx extension: publish every exercise page as a Jupyter notebook students can download.

The exercise pages are MyST markdown notebooks (``book/exercises/*.md``). After a successful
build, each is converted with jupytext to ``<outdir>/exercises/<name>.ipynb`` (no outputs), next to
its HTML page, so the page can link to ``<name>.ipynb``.
"""
from pathlib import Path

import jupytext


def write_notebooks(app, exception):
    if exception is not None:
        return
    source = Path(app.srcdir) / "exercises"
    target = Path(app.outdir) / "exercises"
    target.mkdir(parents=True, exist_ok=True)
    for page in sorted(source.glob("*.md")):
        if page.stem == "index":
            continue
        notebook = jupytext.read(page)
        jupytext.write(notebook, target / f"{page.stem}.ipynb", fmt="ipynb")


def setup(app):
    app.connect("build-finished", write_notebooks)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
