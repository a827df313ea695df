"""Sphinx extension: publish every exercise page as a Jupyter notebook students can download.

The exercise pages are MyST markdown notebooks (``book/exercises/*.md``). After a successful
build, each is converted with jupytext to ``<outdir>/exercises/<name>.ipynb`` (no outputs), next to
its HTML page, so the page can link to ``<name>.ipynb``.

Jupyter and Colab render plain Markdown, not MyST, so the notebook's text cells are rewritten:
equation references become "equation (n) of *chapter*", document links become the chapter's
title, citations become their keys, admonition boxes become block quotes, and dropdowns become
collapsed ``<details>`` blocks.
"""
import posixpath
import re
from pathlib import Path

import jupytext

#: Pages of book/exercises/ that are not exercise sheets.
NOT_EXERCISES = {"index", "instructors"}

ROLE = re.compile(r"\{(?P<role>[a-z:]+)\}`(?P<text>[^`]*)`")
ADMONITION = re.compile(r"^:::\{(?P<kind>[a-z-]+)\}[ \t]*(?P<title>.*)\n(?P<body>(?:(?!^:::).*\n?)*?)^:::[ \t]*$", re.M)


def _plain_markdown(text, app):
    """Rewrite MyST roles and admonitions of one Markdown cell as plain Markdown."""
    equations = app.env.get_domain("math").data.get("objects", {})

    def title(docname):
        node = app.env.titles.get(docname)
        return node.astext() if node is not None else docname

    def role(match):
        kind, body = match["role"], match["text"]
        explicit = re.fullmatch(r"(?P<label>.*?)\s*<(?P<target>[^>]+)>", body)
        target = explicit["target"] if explicit else body
        if kind == "eq" and target in equations:
            docname, number = equations[target]
            return f"equation ({number}) of *{title(docname)}*"
        if kind == "doc":
            docname = target[1:] if target.startswith("/") else posixpath.normpath(f"exercises/{target}")
            return f"*{explicit['label'] if explicit else title(docname)}*"
        if kind == "math":
            return f"${body}$"
        if kind == "cite":
            return "(" + "; ".join(k.strip() for k in body.split(",")) + ")"
        return explicit["label"] if explicit else body

    def admonition(match):
        lines = [ln for ln in match["body"].splitlines() if not re.match(r":[a-z-]+:", ln)]
        heading = match["title"].strip() or match["kind"].capitalize()
        if match["kind"] == "dropdown":  # stays collapsed until the student opens it
            return "\n".join([f"<details><summary>{heading}</summary>", ""] + lines + ["", "</details>"])
        return "\n".join([f"> **{heading}**", ">"] + [f"> {ln}" if ln else ">" for ln in lines])

    return ROLE.sub(role, ADMONITION.sub(admonition, text))


def write_notebooks(app, exception):
    if exception is not None:
        return
    source = Path(app.srcdir) / "exercises"
    target = Path(app.outdir) / "exercises"
    target.mkdir(parents=True, exist_ok=True)
    for page in sorted(source.glob("*.md")):
        if page.stem in NOT_EXERCISES:
            continue
        notebook = jupytext.read(page)
        for cell in notebook.cells:
            if cell.cell_type == "markdown":
                cell.source = _plain_markdown(cell.source, app)
        jupytext.write(notebook, target / f"{page.stem}.ipynb", fmt="ipynb")


def setup(app):
    app.connect("build-finished", write_notebooks)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
