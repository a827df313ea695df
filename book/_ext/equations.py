"""Sphinx extension: equations numbered per chapter, (7.3), and cited under the code that implements them.

Sphinx numbers the labelled display equations of a page 1, 2, ... in the order they appear (the
math domain keeps ``label -> (docname, n)``), and with ``numfig`` on it shows them numbered
across the whole book instead, (27), (41). A chapter's page is named ``NN_title``; this
extension shows its n-th equation as (NN.n), in the page, in every reference to it, and, through
:func:`equation_number`, in the page's notebook (``book/_ext/notebooks.py``). A page that is not a
chapter keeps n.

The package's docstrings name the equations they implement by label ("Implements eq-lgm-posterior").
Under every code block of a page that cites labels, this extension adds a line that gives their
numbers, each a link to the equation, so the reader sees (6.4), not only the label.
"""
import re

from docutils import nodes
from docutils.nodes import make_id

CHAPTER = re.compile(r"(?P<chapter>\d+[a-z]?)_[^/]*")
#: An equation label as the book writes them, and as docstrings cite them.
LABEL = re.compile(r"\beq-[a-z0-9]+(?:-[a-z0-9]+)*\b")


def equation_number(docname, n):
    """The number shown for the n-th labelled equation of page ``docname``: "7.3", "7b.3", or "3"."""
    m = CHAPTER.fullmatch(docname)
    return f"{m['chapter'].lstrip('0')}.{n}" if m else str(n)


def _objects(env):
    """``{label: (docname, n)}``: the labelled equations the math domain has seen."""
    return env.get_domain("math").data.get("objects", {})


def number_per_chapter(app, env):
    """Replace the book-wide numbers of the equations by per-chapter ones (``env-get-updated``).

    Runs after Sphinx has assigned the figure numbers (its collector listens at the default
    priority), so that both the number shown beside an equation and every reference to it, which
    Sphinx reads from ``env.toc_fignumbers``, use ours.
    """
    for label, (docname, n) in _objects(env).items():
        numbers = env.toc_fignumbers.setdefault(docname, {}).setdefault("displaymath", {})
        numbers[make_id(f"equation-{label}")] = tuple(equation_number(docname, n).split("."))
    return []


def cite_numbers_under_code(app, doctree, docname):
    """Under each code block that names equation labels, give their numbers as links."""
    objects = _objects(app.env)
    builder = app.builder
    for block in list(doctree.findall(nodes.literal_block)):
        if "output" in block["classes"]:
            continue
        labels = sorted(set(LABEL.findall(block.astext())) & set(objects), key=block.astext().index)
        if not labels:
            continue
        line = nodes.paragraph(classes=["cited-equations"])
        line += nodes.emphasis(text="Equations cited in this code: ")
        for i, label in enumerate(labels):
            where, n = objects[label]
            uri = builder.get_relative_uri(docname, where) if where != docname else ""
            if i:
                line += nodes.Text(", ")
            line += nodes.literal(text=label)
            line += nodes.Text(" is ")
            line += nodes.reference("", f"({equation_number(where, n)})", internal=True,
                                    refuri=f"{uri}#{make_id(f'equation-{label}')}")
        parent = block.parent
        # a literalinclude with a caption sits in a container with the caption: go under both
        anchor = parent if isinstance(parent, nodes.container) and "literal-block-wrapper" in parent["classes"] else block
        anchor.parent.insert(anchor.parent.index(anchor) + 1, line)


def setup(app):
    app.connect("env-get-updated", number_per_chapter, priority=900)
    app.connect("doctree-resolved", cite_numbers_under_code)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
