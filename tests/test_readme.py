"""The README's Python snippets run as written: every name they use is imported or defined in them."""
import ast
import builtins
import re
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def python_snippets():
    blocks = re.findall(r"^( *)```python\n(.*?)^\1```", README, flags=re.S | re.M)
    return [textwrap.dedent(code) for _, code in blocks]


def unbound_names(code):
    tree = ast.parse(code)
    bound = set(dir(builtins))
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            bound |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.add(node.id)
    return sorted({node.id for node in ast.walk(tree)
                   if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)} - bound)


def test_the_readme_snippets_import_what_they_use():
    snippets = python_snippets()
    assert any("Client(" in code for code in snippets)  # the cluster lines are among them
    for code in snippets:
        assert unbound_names(code) == [], code


def test_the_cluster_lines_say_how_to_install_dask_distributed():
    # The 'dask' extra installs dask[array] only; dask.distributed is a package of its own.
    cluster = next(code for code in python_snippets() if "Client(" in code)
    assert "from dask.distributed import Client" in cluster
    assert 'pip install "dask[distributed]"' in cluster
