"""Sphinx extension: every page of the book is also a Jupyter notebook, with launch buttons.

After a successful build, each page written as a MyST markdown notebook (every page with a
``kernelspec``; the bibliography page is not one) is converted with jupytext to
``<outdir>/<page>.ipynb``, next to its HTML page and without outputs, and a second copy goes to
``<outdir>/../notebooks/``: the tree that the publishing workflow pushes to the repository's
``notebooks`` branch, with a ``requirements.txt`` for Binder. Each HTML page gets an ``.ipynb``
entry in its download menu and a launch menu (Colab, Binder, and a JupyterHub when one is set)
that opens that page's notebook on the ``notebooks`` branch.

One setting drives every URL: the repository's URL, ``repository.url`` in ``_config.yml``,
overridden at build time by the environment variable ``BOOK_REPOSITORY_URL`` (the workflow sets
it to the repository it runs in, so a fork publishes buttons that point at the fork). The
services come from ``launch_buttons`` in ``_config.yml`` (``BOOK_JUPYTERHUB_URL`` overrides the
hub). jupyter-book's own launch buttons would point at ``<page>.md`` in the repository, which
Colab cannot open, so this extension takes ``launch_buttons`` away from the theme and builds the
menu itself.

Jupyter and Colab render plain Markdown, not MyST, so text cells are rewritten: a
``literalinclude`` becomes a fenced code block holding the included source (read by Sphinx's own
reader, so it is exactly what the HTML page shows, followed by the numbers of the equations its
docstrings cite), equation references become "(7.3)" or "(7.3) in *chapter*" with the numbers of
the HTML book (``book/_ext/equations.py``), labelled display equations get ``\\tag{7.3}``,
document links become the page's title, and both are links to the page of the web book (the
repository's GitHub Pages site, derived from the same repository URL), citations become "Author (year)", list tables become Markdown tables, admonitions become block
quotes and dropdowns collapsed ``<details>`` blocks. Cell tags stay (``raises-exception`` keeps
its meaning for Jupyter), and the ``hide-*``/``remove-*`` tags also collapse the cell's input or
output in JupyterLab. A page whose code imports ``lgm``, ``nlgm``, ``torch``, ``dask`` or the grader
starts with a setup cell that does nothing where every module the page needs imports and otherwise
``%pip install``s the package with the page's extras from the repository (and stops the notebook
with one clear message if that fails), so a notebook runs wherever it is opened.
"""
import os
import posixpath
import re
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlencode

import jupytext
import nbformat
from sphinx.directives.code import LiteralIncludeReader

from equations import LABEL, equation_number

REPOSITORY_ENV = "BOOK_REPOSITORY_URL"
JUPYTERHUB_ENV = "BOOK_JUPYTERHUB_URL"
GITHUB = re.compile(r"https://github\.com/(?P<owner>[^/]+)/(?P<repo>[^/]+?)(?:\.git)?/?")

# --------------------------------------------------------------------------------------------
# Launch buttons


@dataclass(frozen=True)
class Launch:
    """Where the notebooks are published, and the services that open them."""

    repository_url: str  # https://github.com/OWNER/REPO
    branch: str  # the branch the setup cell installs the package from
    notebooks_branch: str  # the branch the workflow pushes the notebooks to
    colab_url: str = ""
    binderhub_url: str = ""
    jupyterhub_url: str = ""
    interface: str = "jupyterlab"  # or "classic"
    web_url: str = ""  # where the HTML book is published, with a final "/"; "" if unknown

    @classmethod
    def from_config(cls, theme_options, launch_buttons, notebooks_branch, environ=os.environ):
        """The settings of one build: ``_config.yml``'s, with the environment's overrides."""
        url = environ.get(REPOSITORY_ENV) or theme_options.get("repository_url", "")
        return cls(
            repository_url=url.strip().rstrip("/").removesuffix(".git"),
            branch=theme_options.get("repository_branch") or "main",
            notebooks_branch=notebooks_branch,
            colab_url=(launch_buttons.get("colab_url") or "").rstrip("/"),
            binderhub_url=(launch_buttons.get("binderhub_url") or "").rstrip("/"),
            jupyterhub_url=(environ.get(JUPYTERHUB_ENV) or launch_buttons.get("jupyterhub_url") or "").rstrip("/"),
            interface=launch_buttons.get("notebook_interface") or "jupyterlab",
            web_url=web_book_url(url.strip().rstrip("/").removesuffix(".git")),
        )

    def urls(self, pagename):
        """``{service: URL}`` that opens ``<pagename>.ipynb`` from the notebooks branch."""
        notebook = f"{pagename}.ipynb"
        ui = {"classic": "tree", "jupyterlab": "lab/tree"}[self.interface]
        github = GITHUB.fullmatch(self.repository_url)
        urls = {}
        if self.colab_url and github:  # Colab opens notebooks from GitHub only
            urls["Colab"] = f"{self.colab_url}/github/{github['owner']}/{github['repo']}/blob/{self.notebooks_branch}/{notebook}"
        if self.binderhub_url:
            where = (f"gh/{github['owner']}/{github['repo']}" if github
                     else f"git/{quote(self.repository_url, safe='')}")
            urls["Binder"] = f"{self.binderhub_url}/v2/{where}/{self.notebooks_branch}?urlpath={ui}/{notebook}"
        if self.jupyterhub_url:  # nbgitpuller clones the branch into a folder named after the repository
            folder = self.repository_url.rsplit("/", 1)[-1]
            query = urlencode({"repo": self.repository_url, "branch": self.notebooks_branch,
                               "urlpath": f"{ui}/{folder}/{notebook}"}, safe="/")
            urls["JupyterHub"] = f"{self.jupyterhub_url}/hub/user-redirect/git-pull?{query}"
        return urls


def web_book_url(repository_url):
    """Where the publishing workflow puts the HTML book: the repository's GitHub Pages site."""
    github = GITHUB.fullmatch(repository_url)
    return f"https://{github['owner']}.github.io/{github['repo']}/" if github else ""


ICONS = {"Colab": "_static/images/logo_colab.png", "Binder": "_static/images/logo_binder.svg",
         "JupyterHub": "_static/images/logo_jupyterhub.svg"}


def take_launch_buttons(app, config):
    """Resolve the settings once (``config-inited``) and keep the theme from adding its buttons."""
    options = config.html_theme_options
    app.notebooks_launch = Launch.from_config(options, options.get("launch_buttons") or {},
                                              config.notebooks_branch)
    options["repository_url"] = app.notebooks_launch.repository_url
    options["launch_buttons"] = {}


def add_buttons(app, pagename, templatename, context, doctree):
    """Add ``.ipynb`` to the page's download menu and a launch menu (``html-page-context``)."""
    if not is_notebook(app, pagename) or "header_buttons" not in context:
        return
    buttons = context["header_buttons"]
    for group in buttons:
        if group.get("label") == "download-buttons":
            group["buttons"].insert(0, {
                "type": "link", "url": context["pathto"](f"{pagename}.ipynb", 1), "text": ".ipynb",
                "icon": "fas fa-code", "tooltip": "Download this page as a notebook",
                "label": "download-notebook-button",
            })
    launch = [{"type": "link", "text": name, "tooltip": f"Open this page as a notebook on {name}",
               "icon": ICONS[name], "url": url}
              for name, url in app.notebooks_launch.urls(pagename).items()]
    if launch:
        buttons.append({"type": "group", "tooltip": "Run this page as a notebook",
                        "icon": "fas fa-rocket", "buttons": launch, "label": "launch-buttons"})


# --------------------------------------------------------------------------------------------
# MyST to plain Markdown


@dataclass
class Book:
    """What a page's conversion needs to know about the rest of the book."""

    srcdir: Path
    equations: dict  # label -> (docname, number as the book shows it, "7.3")
    titles: dict  # docname -> title
    citations: dict  # bibtex key -> "Author (year)"
    web_url: str = ""  # the HTML book, with a final "/": references become links to it

    def link(self, text, docname, anchor=""):
        """``text`` as a Markdown link to page ``docname`` of the web book (plain without one)."""
        if not self.web_url:
            return text
        return f"[{text}]({self.web_url}{docname}.html{'#' + anchor if anchor else ''})"

    def cited(self, code):
        """The line that gives the numbers of the equations a piece of code names, or ""."""
        labels = sorted(set(LABEL.findall(code)) & set(self.equations), key=code.index)
        if not labels:
            return ""
        cites = [f"`{label}` is " + self.link(f"({self.equations[label][1]})", self.equations[label][0],
                                              f"equation-{label}") for label in labels]
        return "*Equations cited in this code:* " + ", ".join(cites)


ROLE = re.compile(r"\{(?P<role>[a-z:]+)\}`(?P<text>[^`]*)`")
FENCE = re.compile(r"^(?P<fence>`{3,}|:{3,})\{(?P<name>[a-z-]+)\}[ \t]*(?P<arg>.*)\n"
                   r"(?P<body>(?:.*\n)*?)^(?P=fence)[ \t]*$", re.M)
DISPLAY_MATH = re.compile(r"\$\$(?P<body>.+?)\$\$(?:[ \t]*\((?P<label>[^)\s]+)\))?", re.S)
TARGET = re.compile(r"^\([\w:.-]+\)=[ \t]*\n", re.M)


def _options(body):
    """Split a directive's body into its ``:option: value`` lines and the rest."""
    lines = body.splitlines()
    options = {}
    while lines and (m := re.match(r":([\w-]+):\s*(.*)", lines[0])):
        options[m[1]] = m[2].strip()
        lines.pop(0)
    return options, "\n".join(lines).strip("\n")


def _escape_pipes(text):
    """Escape the pipes of a table cell, except in its math (Jupyter sets math apart first)."""
    parts = re.split(r"(\$\$.*?\$\$|\$[^$]*\$)", text)
    return "".join(p if i % 2 else p.replace("|", r"\|") for i, p in enumerate(parts))


def _list_table(arg, body):
    """A MyST list table as a Markdown table (cells on one line each)."""
    options, body = _options(body)
    rows, cell = [], None
    for line in body.splitlines():
        if m := re.match(r"\* - (.*)", line):
            rows.append([m[1]])
        elif m := re.match(r"  - (.*)", line):
            rows[-1].append(m[1])
        elif line.strip():
            rows[-1][-1] += " " + line.strip()
    cells = [[_escape_pipes(c.strip()) for c in row] for row in rows]
    width = max(len(row) for row in cells)
    cells = [row + [""] * (width - len(row)) for row in cells]
    header = int(options.get("header-rows", 0)) or 1
    lines = ["| " + " | ".join(row) + " |" for row in cells[:header]]
    lines.append("|" + " --- |" * width)
    lines += ["| " + " | ".join(row) + " |" for row in cells[header:]]
    return (f"**{arg.strip()}**\n\n" if arg.strip() else "") + "\n".join(lines)


def _directive(match, docname, book):
    name, arg, body = match["name"], match["arg"].strip(), match["body"]
    if name == "literalinclude":
        options, _ = _options(body)
        path = (book.srcdir / posixpath.dirname(docname) / arg).resolve()
        if "dedent" in options:  # a number of columns, or empty: as much as all lines share
            options["dedent"] = int(options["dedent"]) if options["dedent"] else None
        text, _ = LiteralIncludeReader(str(path), options, _Config()).read()
        language = options.get("language", "python")
        cited = book.cited(text)
        return f"```{language}\n{text.rstrip()}\n```" + (f"\n\n{cited}" if cited else "")
    if name == "list-table":
        return _list_table(arg, body)
    _, text = _options(body)
    if name == "dropdown":  # stays collapsed until the reader opens it
        return f"<details><summary>{arg or 'Details'}</summary>\n\n{text}\n\n</details>"
    heading = arg or name.capitalize()
    return "\n".join([f"> **{heading}**", ">"] + [f"> {ln}" if ln else ">" for ln in text.splitlines()])


class _Config:
    """The one setting ``LiteralIncludeReader`` reads."""

    source_encoding = "utf-8-sig"


def plain_markdown(text, docname, book):
    """Rewrite the MyST of one Markdown cell of page ``docname`` as plain Markdown."""

    def role(match):
        kind, body = match["role"], match["text"]
        explicit = re.fullmatch(r"(?P<label>.*?)\s*<(?P<target>[^>]+)>", body, re.S)
        target = explicit["target"] if explicit else body
        if kind == "eq" and target in book.equations:
            where, number = book.equations[target]
            text = f"({number})" if where == docname else f"({number}) in *{book.titles.get(where, where)}*"
            return book.link(text, where, f"equation-{target}")
        if kind == "doc":
            where = target[1:] if target.startswith("/") else posixpath.normpath(
                posixpath.join(posixpath.dirname(docname), target))
            return book.link(f"*{explicit['label'] if explicit else book.titles.get(where, where)}*", where)
        if kind == "math":
            return f"${body}$"
        if kind.startswith("cite"):
            return "; ".join(book.citations.get(k.strip(), k.strip()) for k in body.split(","))
        return explicit["label"] if explicit else body

    def display(match):  # each $$ ... $$ in turn, so a closing $$ is never taken for an opening one
        if match["label"] is None:
            return match[0]
        number = book.equations.get(match["label"], (None, None))[1]
        tag = f"\n\\tag{{{number}}}\n" if number is not None else "\n"
        return f"$${match['body'].rstrip()}{tag}$$"

    while (converted := FENCE.sub(lambda m: _directive(m, docname, book), text)) != text:
        text = converted  # again, for directives nested in others
    text = DISPLAY_MATH.sub(display, TARGET.sub("", text))
    return ROLE.sub(role, text)


# --------------------------------------------------------------------------------------------
# Notebooks


SETUP = '''\
# Setup: makes what this page needs importable ({modules}). Where it is installed already (a clone's
# .venv, Binder) this does nothing; elsewhere (Colab) it installs it once, with pip, and stops here
# with one clear message if that fails.
import importlib, importlib.util

def _missing(modules):
    importlib.invalidate_caches()
    missing = []
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except ImportError:  # its parent package is missing
            found = False
        missing += [] if found else [name]
    return missing

if _missing({names!r}):
    %pip install --quiet "{requirement}"
    if _missing({names!r}):
        raise RuntimeError(
            "The set-up could not install what this notebook needs ({requirement_short}; pip's message is above), so "
            "the cells below cannot run. Check the internet connection (Colab: Runtime > Restart session, then "
            "run this cell again), or install it yourself: pip install \\"{requirement}\\"")
'''

#: Cell tags of the book, and how JupyterLab shows such a cell: input or output collapsed.
HIDDEN = {"hide-input": ("source_hidden",), "remove-input": ("source_hidden",),
          "hide-output": ("outputs_hidden",), "remove-output": ("outputs_hidden",),
          "hide-cell": ("source_hidden", "outputs_hidden"), "remove-cell": ("source_hidden", "outputs_hidden")}


def setup_cell(code, launch, package):
    """The first cell of a page whose ``code`` needs the package (or its grader), or None.

    It checks every module the page needs, not only ``lgm``: where ``lgm`` imports but the page's extra
    (dask for chapter 7, the grader for the exercises) is missing, it installs the extra too.
    """
    imports = set(re.findall(r"^\s*(?:from|import)\s+(\w+)", code, re.M))
    if not imports & {"lgm", "nlgm", "torch", "dask", GRADER}:
        return None
    # the optional extras the page's imports need (pyproject.toml defines them), and a module each brings
    extras = [(extra, module) for extra, module, needed in (
        ("nlgm", "torch", bool(imports & {"nlgm", "torch"})), ("dask", "dask.array", "dask" in imports),
        ("grader", "pytest", GRADER in imports)) if needed]
    names = ["lgm", *(["nlgm"] if extras and extras[0][0] == "nlgm" else []), *(m for _, m in extras),
             *([GRADER] if GRADER in imports else [])]
    modules = ", ".join(dict.fromkeys(n.split(".")[0] for n in names))
    wanted = f"[{','.join(e for e, _ in extras)}]" if extras else ""
    requirement = f"{package}{wanted} @ git+{launch.repository_url}@{launch.branch}"
    cell = nbformat.v4.new_code_cell(SETUP.format(modules=modules, names=list(dict.fromkeys(names)),
                                                  requirement=requirement, requirement_short=f"{package}{wanted}"))
    cell.metadata["tags"] = ["setup"]
    return cell


GRADER = "pca_to_vae_grader"
"""The grader's package: an exercise page imports it for its check cells (the ``grader`` extra)."""


def page_notebook(docname, book, launch, package):
    """The plain notebook of page ``docname`` (no outputs)."""
    notebook = jupytext.read(book.srcdir / f"{docname}.md")
    notebook.metadata.pop("jupytext", None)
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            cell.source = plain_markdown(cell.source, docname, book)
        for tag in cell.metadata.get("tags", []):
            for key in HIDDEN.get(tag, ()):
                cell.metadata.setdefault("jupyter", {})[key] = True
    code = "\n".join(c.source for c in notebook.cells if c.cell_type == "code")
    if (cell := setup_cell(code, launch, package)) is not None:
        notebook.cells.insert(0, cell)
    return notebook


def is_notebook(app, docname):
    return "kernelspec" in app.env.metadata.get(docname, {})


def _citations(bibfiles):
    """``{key: "Author (year)"}`` for the book's bibtex entries."""
    from pybtex.database import parse_file

    citations = {}
    for bibfile in bibfiles:
        for key, entry in parse_file(bibfile).entries.items():
            names = [" ".join(p.last_names) for p in entry.persons.get("author", [])]
            who = (names[0] if len(names) == 1 else " and ".join(names) if len(names) == 2
                   else f"{names[0]} et al." if names else key)
            citations[key] = f"{who} ({entry.fields.get('year', 'n.d.')})".replace("{", "").replace("}", "")
    return citations


BINDER_REQUIREMENTS = """\
# Binder installs these before it opens the notebooks (written by book/_ext/notebooks.py).
--extra-index-url https://download.pytorch.org/whl/cpu
torch==2.13.0+cpu
{package}[nlgm,dask,grader] @ git+{repository}@{branch}
"""

NOTEBOOKS_README = """\
# Notebooks of the book

Generated from the book's pages on the `{branch}` branch of {repository} by its publishing
workflow (`make book`); do not edit them here. Colab and Binder open them from this branch.
"""


def write_notebooks(app, exception):
    """Write every page's notebook beside its HTML page and into the notebooks tree."""
    if exception is not None:
        return
    srcdir, outdir = Path(app.srcdir), Path(app.outdir)
    equations = {label: (doc, equation_number(doc, n))
                 for label, (doc, n) in app.env.get_domain("math").data.get("objects", {}).items()}
    titles = {doc: node.astext() for doc, node in app.env.titles.items()}
    bibfiles = [srcdir / f for f in getattr(app.config, "bibtex_bibfiles", [])]
    launch = app.notebooks_launch
    book = Book(srcdir, equations, titles, _citations(bibfiles), launch.web_url)
    package = tomllib.loads((srcdir.parent / "pyproject.toml").read_text())["project"]["name"]
    tree = outdir.parent / "notebooks"
    shutil.rmtree(tree, ignore_errors=True)
    for docname in sorted(app.env.found_docs):
        if not is_notebook(app, docname):
            continue
        notebook = page_notebook(docname, book, launch, package)
        for root in (outdir, tree):
            (root / docname).parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(notebook, root / f"{docname}.ipynb")
    (tree / "requirements.txt").write_text(BINDER_REQUIREMENTS.format(
        package=package, repository=launch.repository_url, branch=launch.branch))
    (tree / "runtime.txt").write_text("python-3.11\n")
    (tree / "README.md").write_text(NOTEBOOKS_README.format(branch=launch.branch, repository=launch.repository_url))


def setup(app):
    app.add_config_value("notebooks_branch", "notebooks", "html")
    app.connect("config-inited", take_launch_buttons)
    app.connect("html-page-context", add_buttons, priority=502)  # after the theme's buttons (501)
    app.connect("build-finished", write_notebooks)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
