"""Reading a submission (a ``.ipynb`` notebook, a MyST ``.md`` notebook or a ``.py`` file) into code cells,
and choosing which of its top-level statements the grader runs.

The grader runs only the *definitions* of a submission: imports, ``def`` and ``class`` statements,
and assignments that neither call anything with the submission's own functions nor use a name
that a skipped statement assigned. Everything else in a notebook —
the self-check cells, prints, plots, loops, ``assert`` statements, calls such as ``sys.exit()`` —
is skipped, so a failing self-check or a slow demonstration never stops the functions from being
graded. Each statement that runs is executed on its own, so an error in one cell costs only the
names that cell would have defined. A ``.py`` file is split into cells at ``# %%`` markers; a cell
with a syntax error is split further at its top-level ``def``, ``class`` and decorator lines, so one
broken helper costs only itself and what uses it.

The notebook's in-kernel check (``from <this package> import Checker``, ``check = Checker(...)``,
``check("...")``) is skipped too: it is feedback in the student's kernel, not part of the submission.

Shell escapes never run: IPython magics and ``!`` commands (also ``x = !ls``), cell magics such as
``%%bash``, and any statement that mentions ``get_ipython`` are removed; what is left is refused at
run time by :mod:`pca_to_vae_grader.sandboxed.guard` (``os.system``, ``subprocess``...).

Reading a file never executes it: notebooks are parsed as JSON or MyST text and cells as Python
syntax trees. What a submission makes the grader do while reading it is bounded too: a file larger
than :data:`MAX_BYTES` (2 MiB for MyST, 32 MiB otherwise) is refused, and the YAML of a MyST notebook (its header, its cell options) may
not use aliases (``&a`` ... ``*a``), with which a few lines expand to billions of items.
"""
import ast
import json
import re
from pathlib import Path

SUFFIXES = (".ipynb", ".md", ".py")
MAX_BYTES = {".ipynb": 32 * 2**20, ".md": 2 * 2**20, ".py": 32 * 2**20}
"""The largest submission the grader reads, by kind: a notebook with its outputs is rarely over a few MiB,
a MyST notebook (text only) rarely over 100 KiB, and reading MyST takes the grader about 7 s per MiB."""

_KEPT = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_ASSIGNMENTS = (ast.Assign, ast.AnnAssign, ast.AugAssign)


class SubmissionError(ValueError):
    """A submission that cannot be read at all (missing file, unknown format, not a notebook)."""


def read_cells(path):
    """The code cells of a submission, as a list of source strings, in order.

    Parameters
    ----------
    path : str or Path
        A ``.ipynb`` notebook, a MyST markdown notebook ``.md`` or a Python file ``.py`` (split into
        cells at ``# %%`` lines; each cell keeps the file's line numbers).

    Returns
    -------
    list of str
    """
    path = Path(path)
    if not path.is_file():
        raise SubmissionError(f"no submission file at {path}")
    if path.suffix not in SUFFIXES:
        raise SubmissionError(f"{path.name}: a submission must be one of {', '.join(SUFFIXES)} files")
    if path.stat().st_size > MAX_BYTES[path.suffix]:
        advice = "remove what is not code or text" if path.suffix == ".md" else \
            "clear the notebook's outputs (Edit > Clear All Outputs)"
        raise SubmissionError(f"{path.name} is larger than {MAX_BYTES[path.suffix] // 2**20} MiB: {advice} and "
                              "submit it again")
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix == ".py":
        return _py_cells(text)
    if path.suffix == ".ipynb":
        return _notebook_cells(text, path.name)
    import jupytext
    import yaml

    safe = yaml.SafeLoader  # what yaml.safe_load uses, looked up at each call: jupytext's calls get _NoAliases
    yaml.SafeLoader = _no_aliases()
    try:
        notebook = jupytext.reads(text, fmt="md:myst")
    except Exception as err:  # jupytext raises many kinds of errors on malformed text
        raise SubmissionError(f"{path.name} is not a readable MyST notebook ({str(err)[:300]})") from None
    finally:
        yaml.SafeLoader = safe
    return [cell.source for cell in notebook.cells if cell.cell_type == "code"]


def _no_aliases():
    """A YAML loader that refuses aliases: safe_load expands ``*a`` by reference, but whatever walks the
    result afterwards (jupytext copies and compares metadata) visits every copy, exponentially many."""
    import yaml

    class NoAliases(yaml.SafeLoader):
        def compose_node(self, parent, index):
            if self.check_event(yaml.events.AliasEvent):
                raise yaml.YAMLError("YAML aliases (*name) are not allowed in a submission")
            return super().compose_node(parent, index)

    return NoAliases


def _py_cells(text):
    """Split a Python file at ``# %%`` lines; blank lines in front keep each cell's line numbers."""
    cells, start, lines = [], 0, text.split("\n")
    for number, line in enumerate(lines):
        if re.match(r"#\s*%%", line) and number > start:
            cells.append("\n" * start + "\n".join(lines[start:number]))
            start = number
    cells.append("\n" * start + "\n".join(lines[start:]))
    return cells


def _notebook_cells(text, name):
    problem = f"{name} is not a readable Jupyter notebook"
    try:
        notebook = json.loads(text)
    except (ValueError, RecursionError) as err:  # RecursionError: arrays nested thousands deep
        raise SubmissionError(f"{problem}: it is not valid JSON ({err}). Download it again from Jupyter "
                              "(File > Download) rather than editing the file by hand") from None
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        raise SubmissionError(f"{problem}: it has no list of cells (a notebook is a JSON object whose "
                              "'cells' is a list)")
    sources = []
    for number, cell in enumerate(notebook["cells"], start=1):
        if not isinstance(cell, dict):
            raise SubmissionError(f"{problem}: its cell {number} is not a JSON object")
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source")
        if isinstance(source, list) and all(isinstance(line, str) for line in source):
            sources.append("".join(source))
        elif isinstance(source, str):
            sources.append(source)
        else:
            raise SubmissionError(f"{problem}: its cell {number} has no source text")
    return sources


_SHELL_LINE = re.compile(r"^\s*(?:[%!]|[\w.,\s\[\]()]+=\s*[%!](?!=))")


def without_magics(source):
    """Blank out IPython magics and shell escapes (``%time``, ``!pip``, ``x = !ls``), keeping line numbers;
    a cell magic (``%%bash``) blanks its whole cell."""
    lines = source.split("\n")
    first = next((line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")), "")
    if first.startswith("%%"):
        return "\n" * (len(lines) - 1)
    return "\n".join("" if _SHELL_LINE.match(line) else line for line in lines)


_BOUNDARY = re.compile(r"(?:async\s+def|def|class)\s|@")


def _parse(source, number):
    """Parse one cell; on a syntax error, parse its top-level definitions one by one.

    Returns (list of ast.Module, list of problems).
    """
    try:
        return [ast.parse(source, filename=f"<cell {number}>")], []
    except SyntaxError:
        pass
    lines = source.split("\n")
    starts = [next((i for i, line in enumerate(lines) if line.strip()), 0)]
    for i, line in enumerate(lines):
        previous = lines[i - 1] if i else ""
        if i > starts[0] and _BOUNDARY.match(line) and not previous.startswith("@"):
            starts.append(i)
    trees, problems = [], []
    for begin, end in zip(starts, starts[1:] + [len(lines)]):
        chunk = "\n" * begin + "\n".join(lines[begin:end])
        try:
            trees.append(ast.parse(chunk, filename=f"<cell {number}>"))
        except SyntaxError as err:
            problems.append(f"code cell {number} has a syntax error (line {err.lineno}: {err.msg}); the grader "
                            f"skipped lines {begin + 1}-{end} of it")
    return trees, problems


def _names(node):
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def definitions(cells):
    """Parse the cells and pick the statements the grader runs.

    Parameters
    ----------
    cells : list of str

    Returns
    -------
    statements : list of (cell_number, ast.Module)
        One single-statement module per kept statement, with the line numbers of its cell
        (cells are numbered from 1 among the code cells).
    problems : list of str
        One line per cell that could not be parsed.
    """
    parsed, problems, own = [], [], set()
    for number, source in enumerate(cells, start=1):
        trees, cell_problems = _parse(without_magics(source), number)
        problems += cell_problems
        for tree in trees:
            parsed.append((number, tree))
            own |= {s.name for s in tree.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    statements, tainted = [], set()
    for number, tree in parsed:
        for statement in tree.body:
            if ("get_ipython" in _names(statement) and not isinstance(statement, _KEPT[2:])  # never run at load
                    or _imports_grader(statement)):  # the notebook's own check (pca_to_vae_grader.notebook)
                keep = False
                tainted |= bound_names(statement)
            elif isinstance(statement, _KEPT):
                keep = True
                tainted -= bound_names(statement)
            elif isinstance(statement, _ASSIGNMENTS):
                # An assignment runs unless it calls something and uses one of the submission's functions
                # (a self-check's result), or reads a name that a skipped statement assigned: then its
                # targets are skipped too. Aliases such as `step = gmm_em_step` run.
                reads = _names(statement) - bound_names(statement)
                calls = any(isinstance(node, ast.Call) for node in ast.walk(statement))
                keep = not (reads & tainted or calls and reads & own)
                if isinstance(statement, ast.AugAssign):
                    keep = keep and not (bound_names(statement) & tainted)
                tainted = (tainted - bound_names(statement)) if keep else (tainted | bound_names(statement))
            else:
                keep = False
                tainted |= bound_names(statement)  # e.g. names a for loop or a with statement binds
            if keep:
                statements.append((number, ast.Module(body=[statement], type_ignores=[])))
    return statements, problems


GRADER = __name__.split(".")[0]
"""This package: a notebook imports it for its in-kernel check, which the graded run skips with what it binds."""


def _imports_grader(statement):
    if isinstance(statement, ast.Import):
        return any(a.name.split(".")[0] == GRADER for a in statement.names)
    return isinstance(statement, ast.ImportFrom) and (statement.module or "").split(".")[0] == GRADER


def bound_names(statement):
    """The names a statement binds at the top level."""
    if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {statement.name}
    if isinstance(statement, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in statement.names}
    return {n.id for n in ast.walk(statement) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
