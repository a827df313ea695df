"""Reading a submission (a ``.ipynb`` notebook, a MyST ``.md`` notebook or a ``.py`` file) into code cells,
and choosing which of its top-level statements the grader runs.

The grader runs only the *definitions* of a submission: imports, ``def`` and ``class`` statements,
and assignments that neither call anything with the submission's own functions nor use a name
that a skipped statement assigned. Everything else in a notebook —
the self-check cells, prints, plots, loops, ``assert`` statements, calls such as ``sys.exit()`` —
is skipped, so a failing self-check or a slow demonstration never stops the functions from being
graded. Each statement that runs is executed on its own, so an error in one cell costs only the
names that cell would have defined.

Reading a file never executes it: notebooks are parsed as JSON or MyST text and cells as Python
syntax trees.
"""
import ast
import json
from pathlib import Path

SUFFIXES = (".ipynb", ".md", ".py")

_KEPT = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_ASSIGNMENTS = (ast.Assign, ast.AnnAssign, ast.AugAssign)


class SubmissionError(ValueError):
    """A submission that cannot be read at all (missing file, unknown format, not a notebook)."""


def read_cells(path):
    """The code cells of a submission, as a list of source strings, in order.

    Parameters
    ----------
    path : str or Path
        A ``.ipynb`` notebook, a MyST markdown notebook ``.md`` or a Python file ``.py``
        (a Python file is one cell).

    Returns
    -------
    list of str
    """
    path = Path(path)
    if not path.is_file():
        raise SubmissionError(f"no submission file at {path}")
    if path.suffix not in SUFFIXES:
        raise SubmissionError(f"{path.name}: a submission must be one of {', '.join(SUFFIXES)} files")
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix == ".py":
        return [text]
    if path.suffix == ".ipynb":
        try:
            cells = json.loads(text)["cells"]
            return [_joined(c["source"]) for c in cells if c.get("cell_type") == "code"]
        except (ValueError, KeyError, TypeError) as err:
            raise SubmissionError(f"{path.name} is not a readable Jupyter notebook ({err})") from None
    import jupytext

    try:
        notebook = jupytext.reads(text, fmt="md:myst")
    except Exception as err:  # jupytext raises many kinds of errors on malformed text
        raise SubmissionError(f"{path.name} is not a readable MyST notebook ({err})") from None
    return [cell.source for cell in notebook.cells if cell.cell_type == "code"]


def _joined(source):
    return "".join(source) if isinstance(source, list) else str(source)


def _without_magics(source):
    """Blank out IPython magics and shell escapes (``%time``, ``!pip``), keeping line numbers."""
    lines = source.split("\n")
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in lines)


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
        try:
            tree = ast.parse(_without_magics(source), filename=f"<cell {number}>")
        except SyntaxError as err:
            problems.append(f"code cell {number} has a syntax error (line {err.lineno}: {err.msg}); it was skipped")
            continue
        parsed.append((number, tree))
        own |= {s.name for s in tree.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    statements, tainted = [], set()
    for number, tree in parsed:
        for statement in tree.body:
            if isinstance(statement, _KEPT):
                keep = True
                tainted -= _targets(statement)
            elif isinstance(statement, _ASSIGNMENTS):
                # An assignment runs unless it calls something and uses one of the submission's functions
                # (a self-check's result), or reads a name that a skipped statement assigned: then its
                # targets are skipped too. Aliases such as `step = gmm_em_step` run.
                reads = _names(statement) - _targets(statement)
                calls = any(isinstance(node, ast.Call) for node in ast.walk(statement))
                keep = not (reads & tainted or calls and reads & own) and "get_ipython" not in reads
                if isinstance(statement, ast.AugAssign):
                    keep = keep and not (_targets(statement) & tainted)
                tainted = (tainted - _targets(statement)) if keep else (tainted | _targets(statement))
            else:
                keep = False
                tainted |= _targets(statement)  # e.g. names a for loop or a with statement binds
            if keep:
                statements.append((number, ast.Module(body=[statement], type_ignores=[])))
    return statements, problems


def _targets(statement):
    """The names a statement binds at the top level."""
    if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {statement.name}
    if isinstance(statement, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in statement.names}
    return {n.id for n in ast.walk(statement) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
