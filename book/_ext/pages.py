"""Sphinx extension: what the web pages and the build log should not show.

- **An exercise stub's traceback.** A cell that calls a function the student has not written yet
  (tag ``raises-exception``) ends in ``NotImplementedError``; executed for the book, it would
  print a red traceback on the page. Such an output is shown as one quiet line instead: what
  the cell will do once the stub is filled in is the student's to see. Any other error output
  stays as it is.
- **A script twice in a page's head.** sphinx-thebe registers its configuration script (which
  declares ``const THEBE_JS_URL``) so that it lands in every page's head twice, and the second
  copy is a JavaScript error; every script is kept once, at its first place.
- **A console error on a first visit.** The theme reads the reader's light/dark choice from the
  browser's storage, and with none stored (a first visit) and no default it logs "Got invalid
  theme mode"; the default is set to light (the figures are drawn on white).
- **The kernels' log line.** Each executed page starts a kernel that warns that it listens on
  TCP without encryption (on the loopback interface, for the build's own client): the build
  gives its kernels an IPython profile that logs errors only.
"""
import os
import re
from pathlib import Path

from docutils import nodes

LAST_LINE = re.compile(r"^NotImplementedError\b:?\s*(?P<message>.*)\Z", re.M)
STUB = "Not implemented yet: this cell runs once the function above is written."


def quiet_stub_tracebacks(app, doctree):
    """Replace a traceback ending in NotImplementedError by a one-line note (``doctree-read``)."""
    for block in list(doctree.findall(nodes.literal_block)):
        if "traceback" not in block["classes"]:
            continue
        m = LAST_LINE.search(block.astext().rstrip())
        if m is None:
            continue
        message = m["message"].strip()
        note = nodes.literal_block(text=f"{STUB}\n({message})" if message else STUB)
        note["language"] = "none"
        block.replace_self(note)
        note["classes"] = ["output", "stream", "not-implemented-yet"]  # not the traceback's


def tidy_head(app, pagename, templatename, context, doctree):
    """Keep each script of the page's head once, and give the theme a default mode (``html-page-context``)."""
    context.setdefault("default_mode", "light")  # the theme's template reads it, with no option to set it
    seen, unique = set(), []
    for script in context.get("script_files", []):
        # the two copies of an inline script differ only in filename None or ""
        key = (str(getattr(script, "filename", script) or ""),
               tuple(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


KERNEL_CONFIG = """\
# Written by book/_ext/pages.py for the kernels that execute the book's pages.
c.IPKernelApp.log_level = "ERROR"
"""


def quiet_kernels(app, config):
    """Give the build's kernels a profile that logs errors only (``config-inited``)."""
    profile = Path(app.doctreedir).parent / "ipython" / "profile_default"
    profile.mkdir(parents=True, exist_ok=True)
    (profile / "ipython_kernel_config.py").write_text(KERNEL_CONFIG)
    os.environ["IPYTHONDIR"] = str(profile.parent)


def setup(app):
    app.connect("config-inited", quiet_kernels)
    app.connect("doctree-read", quiet_stub_tracebacks)
    app.connect("html-page-context", tidy_head, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
