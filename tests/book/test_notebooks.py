"""Every page is a notebook that runs where only the package is installed (book/_ext/notebooks.py).

The fast tests convert MyST snippets and build launch URLs; the slow one takes notebooks from the
built site into an empty folder and executes them in a fresh virtual environment that has the
built wheel and what Colab ships, nothing of this repository.
"""
import ast
import importlib.util
import inspect
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
EXT = ROOT / "book" / "_ext"
sys.path.insert(0, str(EXT))  # the extensions import each other, as Sphinx loads them
try:
    _spec = importlib.util.spec_from_file_location("book_notebooks", EXT / "notebooks.py")
    notebooks = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(notebooks)
    import equations
finally:
    sys.path.remove(str(EXT))

BOOK = notebooks.Book(
    srcdir=ROOT / "book",
    equations={"eq-here": ("05_ppca", 3), "eq-there": ("06_lgm", 7)},
    titles={"06_lgm": "Linear Gaussian models", "exercises/index": "Exercises"},
    citations={"tipping1999": "Tipping and Bishop (1999)"},
)


def convert(text, docname="05_ppca"):
    return notebooks.plain_markdown(text, docname, BOOK)


def test_literalinclude_becomes_the_source_of_the_object():
    import lgm.completion
    import lgm.ppca

    text = convert("Before.\n\n```{literalinclude} ../lgm/completion.py\n:pyobject: complete_then_reestimate\n```\n")
    expected = inspect.getsource(lgm.completion.complete_then_reestimate).rstrip()
    assert text == f"Before.\n\n```python\n{expected}\n```\n"
    # A method, dedented as the page asks: the fenced block starts at column 0.
    method = convert("```{literalinclude} ../../lgm/ppca.py\n:pyobject: PPCA.fit\n:dedent: 4\n```",
                     docname="exercises/x")
    assert method.splitlines()[1].startswith("def fit(")
    assert method.splitlines()[1:-1] == [ln[4:] for ln in inspect.getsource(lgm.ppca.PPCA.fit).rstrip().splitlines()]


def test_roles_become_plain_text():
    text = convert("By {eq}`eq-here` and {eq}`eq-there`, see {doc}`06_lgm` and "
                   "{doc}`the exercises <exercises/index>`, {cite}`tipping1999`, {math}`x^2`.")
    assert text == ("By (3) and (7) in *Linear Gaussian models*, see *Linear Gaussian models* and "
                    "*the exercises*, Tipping and Bishop (1999), $x^2$.")
    assert convert("{doc}`../06_lgm`", docname="exercises/pca") == "*Linear Gaussian models*"


def test_labelled_equations_get_their_number_and_targets_go():
    text = convert("(sec-x)=\n## Title\n\n$$\na = b\n$$ (eq-here)\n\n$$\n(c+d)^2\n$$\n\nand $$x$$ (not a label).")
    assert text == "## Title\n\n$$\na = b\n\\tag{3}\n$$\n\n$$\n(c+d)^2\n$$\n\nand $$x$$ (not a label)."


def test_equations_are_numbered_per_chapter():
    assert equations.equation_number("07_em_lgm", 3) == "7.3"
    assert equations.equation_number("12_evaluating", 1) == "12.1"
    assert equations.equation_number("07b_mixtures_fa", 2) == "7b.2"  # a chapter between 7 and 8
    assert equations.equation_number("faq", 2) == "2"  # not a chapter
    assert equations.equation_number("exercises/07_x", 2) == "2"


def test_references_link_to_the_web_book_with_its_numbers():
    web = notebooks.Book(srcdir=BOOK.srcdir, equations={"eq-here": ("05_ppca", "5.3"), "eq-there": ("06_lgm", "6.7")},
                         titles=BOOK.titles, citations=BOOK.citations, web_url="https://o.github.io/r/")
    text = notebooks.plain_markdown("By {eq}`eq-here` and {eq}`eq-there`, see {doc}`06_lgm`.", "05_ppca", web)
    assert text == ("By [(5.3)](https://o.github.io/r/05_ppca.html#equation-eq-here) and "
                    "[(6.7) in *Linear Gaussian models*](https://o.github.io/r/06_lgm.html#equation-eq-there), "
                    "see [*Linear Gaussian models*](https://o.github.io/r/06_lgm.html).")
    assert notebooks.plain_markdown("$$\na = b\n$$ (eq-there)", "06_lgm", web) == "$$\na = b\n\\tag{6.7}\n$$"
    # The code a page shows is followed by the numbers of the equations its docstring cites.
    cited = web.cited('"""Implements eq-there and eq-here (eq-unknown is no label)."""')
    assert cited == ("*Equations cited in this code:* `eq-there` is [(6.7)](https://o.github.io/r/06_lgm.html#equation-eq-there), "
                     "`eq-here` is [(5.3)](https://o.github.io/r/05_ppca.html#equation-eq-here)")
    assert web.cited("no labels here") == ""
    # The web book is the repository's GitHub Pages site, from the one repository setting.
    assert notebooks.web_book_url("https://github.com/someone/fork") == "https://someone.github.io/fork/"
    assert notebooks.web_book_url("https://gitlab.com/a/b") == ""


def test_admonitions_dropdowns_and_list_tables_become_markdown():
    text = convert(":::{admonition} A note on the lecture\n:class: warning\nThe slide says $a|b$.\n\nIt is wrong.\n:::")
    assert text == "> **A note on the lecture**\n>\n> The slide says $a|b$.\n>\n> It is wrong."
    assert convert(":::{dropdown} Hint\nUse {eq}`eq-here`.\n:::") == \
        "<details><summary>Hint</summary>\n\nUse (3).\n\n</details>"
    table = convert("```{list-table}\n:header-rows: 1\n\n* - Item\n  - Value\n* - a | b\n  - $\\|x\\|$ and\n    more\n```")
    assert table == "| Item | Value |\n| --- | --- |\n| a \\| b | $\\|x\\|$ and more |"


def test_setup_cell_installs_only_where_the_package_does_not_import():
    from IPython.core.inputtransformer2 import TransformerManager

    launch = notebooks.Launch("https://github.com/o/r", "main", "notebooks")
    assert notebooks.setup_cell("import numpy as np", launch, "pca-to-vae") is None
    linear = notebooks.setup_cell("from lgm import PPCA", launch, "pca-to-vae").source
    nonlinear = notebooks.setup_cell("import torch", launch, "pca-to-vae").source
    assert "_missing(['lgm'])" in linear and '"pca-to-vae @ git+https://github.com/o/r@main"' in linear
    assert "_missing(['lgm', 'nlgm', 'torch'])" in nonlinear
    assert '"pca-to-vae[nlgm] @ git+https://github.com/o/r@main"' in nonlinear
    # IPython turns the indented %pip into a call, so the cell is valid Python in a kernel.
    compile(TransformerManager().transform_cell(nonlinear), "setup", "exec")
    # pip can read what the cell installs: this package, with an extra that pyproject.toml defines.
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = Requirement(re.search(r'%pip install --quiet "([^"]+)"', nonlinear)[1])
    assert wanted.name == project["name"] and wanted.extras <= set(project["optional-dependencies"])
    assert wanted.extras == {"nlgm"} and wanted.url == "git+https://github.com/o/r@main"
    # a page that imports dask (chapter 7) gets the optional extra that installs it
    with_dask = notebooks.setup_cell("import lgm\nimport dask.array as da", launch, "pca-to-vae").source
    assert "'dask.array'" in with_dask and '"pca-to-vae[dask] @ git+https://github.com/o/r@main"' in with_dask
    # an exercise page imports the grader for its check cells: the grader extra
    exercise = notebooks.setup_cell("import numpy\nfrom pca_to_vae_grader import Checker", launch, "pca-to-vae").source
    assert "'pca_to_vae_grader'" in exercise and '"pca-to-vae[grader] @ git+https://github.com/o/r@main"' in exercise


def _run_setup(source, installs):
    """Run a set-up cell as IPython would, with %pip recorded instead of run."""
    from IPython.core.inputtransformer2 import TransformerManager

    class Shell:
        def run_line_magic(self, magic, line):
            installs.append(f"%{magic} {line}")

    exec(compile(TransformerManager().transform_cell(source), "setup", "exec"), {"get_ipython": Shell})


def test_setup_cell_installs_what_is_missing_even_where_lgm_imports_and_stops_clearly_if_it_cannot():
    launch = notebooks.Launch("https://github.com/o/r", "main", "notebooks")
    source = notebooks.setup_cell("import lgm\nimport dask.array as da", launch, "pca-to-vae").source
    installs = []
    _run_setup(source, installs)  # lgm and dask import here: nothing to do
    assert installs == []
    # lgm imports but the page's extra does not (dask, on a machine with the wheel only): pip runs, and when
    # the install does not bring it the notebook stops with one message that says what and how to fix it.
    with pytest.raises(RuntimeError, match=r"could not install what this notebook needs \(pca-to-vae\[dask\]"):
        _run_setup(source.replace("'dask.array'", "'dask.no_such_module'"), installs)
    assert installs == ['%pip install --quiet "pca-to-vae[dask] @ git+https://github.com/o/r@main"']


def test_launch_urls_follow_the_repository_setting():
    config = yaml.safe_load((ROOT / "book" / "_config.yml").read_text())
    theme = {"repository_url": config["repository"]["url"], "repository_branch": config["repository"]["branch"]}
    default = notebooks.Launch.from_config(theme, config["launch_buttons"], "notebooks", environ={})
    fork = notebooks.Launch.from_config(theme, config["launch_buttons"], "notebooks", environ={
        "BOOK_REPOSITORY_URL": "https://github.com/someone/fork.git", "BOOK_JUPYTERHUB_URL": "https://hub.example.edu/"})
    owner_repo = config["repository"]["url"].removeprefix("https://github.com/")
    assert default.urls("exercises/pca") == {
        "Colab": f"https://colab.research.google.com/github/{owner_repo}/blob/notebooks/exercises/pca.ipynb",
        "Binder": f"https://mybinder.org/v2/gh/{owner_repo}/notebooks?urlpath=lab/tree/exercises/pca.ipynb",
    }
    assert fork.urls("04_pca") == {
        "Colab": "https://colab.research.google.com/github/someone/fork/blob/notebooks/04_pca.ipynb",
        "Binder": "https://mybinder.org/v2/gh/someone/fork/notebooks?urlpath=lab/tree/04_pca.ipynb",
        "JupyterHub": "https://hub.example.edu/hub/user-redirect/git-pull?repo=https%3A//github.com/someone/fork"
                      "&branch=notebooks&urlpath=lab/tree/fork/04_pca.ipynb",
    }
    assert (default.web_url, fork.web_url) == (f"https://{owner_repo.replace('/', '.github.io/', 1)}/",
                                               "https://someone.github.io/fork/")
    # Not on GitHub: Colab cannot open it, Binder takes the plain git URL.
    gitlab = notebooks.Launch("https://gitlab.com/a/b", "main", "notebooks", "https://colab.research.google.com",
                              "https://mybinder.org")
    assert gitlab.urls("x") == {"Binder": "https://mybinder.org/v2/git/https%3A%2F%2Fgitlab.com%2Fa%2Fb/notebooks?urlpath=lab/tree/x.ipynb"}


#: One linear chapter, one nonlinear chapter, one exercise sheet: short ones, to keep the test quick.
RUN = ["05_ppca", "10_reparameterisation", "exercises/em"]

RUNNER = """
import json, sys
import nbformat
from nbclient import NotebookClient

for name in sys.argv[1:]:
    nb = nbformat.read(name, as_version=4)
    # Observation only, after the page's own cells: which Python ran them, and which lgm.
    nb.cells.append(nbformat.v4.new_code_cell("import sys, lgm; print(sys.executable); print(lgm.__file__)"))
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": "."}}).execute()
    nbformat.write(nb, name + ".out")
"""


@pytest.mark.slow
def test_downloaded_notebooks_run_unchanged_with_only_the_wheel(built_book, fresh_venv, clean_env, tmp_path):
    """A new user's Colab: an empty folder, the wheel and Colab's packages, the site's notebooks."""
    names = []
    for page in RUN:
        name = page.replace("/", "-") + ".ipynb"
        shutil.copy(built_book.html / f"{page}.ipynb", tmp_path / name)
        names.append(name)
    (tmp_path / "run.py").write_text(RUNNER)
    result = subprocess.run([str(fresh_venv.python), "run.py", *names], cwd=tmp_path, env=clean_env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    (tmp_path / "run.py").unlink()
    for page, name in zip(RUN, names):
        cells = json.loads((tmp_path / f"{name}.out").read_text())["cells"]
        python, lgm_file = "".join(cells[-1]["outputs"][0]["text"]).split()
        assert Path(python).parent.parent == fresh_venv.path, f"{page} ran in {python}"
        assert Path(lgm_file).is_relative_to(fresh_venv.path), f"{page} imported {lgm_file}"
        setup = cells[0]
        if "setup" in setup["metadata"].get("tags", []):  # the package imports: nothing installed
            assert setup["outputs"] == [], f"{page}: the setup cell did something: {setup['outputs']}"
        else:
            assert page.startswith("exercises/")


#: Runs notebooks given as arguments in an empty folder and writes each executed one beside it (errors allowed:
#: a classic mistake fails its self-check cell; the check cells report it and the last cell still runs).
GRADED_RUNNER = """
import sys
import nbformat
from nbclient import NotebookClient

for name in sys.argv[1:]:
    nb = nbformat.read(name, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": "."}}).execute()
    nbformat.write(nb, name + ".out")
"""


def _pasted(notebook, solution):
    """The notebook with each stub replaced by the function of ``solution`` (a module's source), and the
    module's other top-level statements (imports, constants, helpers) in the first stub's cell."""
    import ast

    tree = ast.parse(solution)
    functions = {n.name: ast.get_source_segment(solution, n) for n in tree.body if isinstance(n, ast.FunctionDef)}
    rest = "\n".join(ast.get_source_segment(solution, n) for n in tree.body
                     if not isinstance(n, ast.FunctionDef) and not (isinstance(n, ast.Assign) and
                                                                      getattr(n.targets[0], "id", "") == "HINTS")
                     and not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)))
    helpers = "\n\n\n".join(source for name, source in functions.items() if name.startswith("_"))
    first = True
    for cell in notebook["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        stubs = [name for name in functions if re.search(rf"^def {name}\(", source, re.M)
                 and "raise NotImplementedError" in source]
        if stubs:
            cell["source"] = ((rest + "\n\n\n" + helpers + "\n\n\n" if first else "")
                              + "\n\n\n".join(functions[name] for name in stubs))
            first = False
    return notebook





@pytest.mark.slow
def test_exercise_notebooks_grade_themselves_with_only_the_wheel_and_its_grader(built_book, fresh_venv, clean_env,
                                                                                 tmp_path):
    """Issue 15's check: only Colab's packages and the wheel with its grader extra, an empty folder, each
    exercise notebook with a correct solution pasted into its stubs: its last line reports full marks; with
    the classic mistakes: fewer points, and each mistake's hint."""
    from pca_to_vae_grader import pages

    exercises = ROOT / "tests" / "exercises"
    names = []
    for page in pages.PAGES:
        notebook = json.loads((built_book.html / "exercises" / f"{page}.ipynb").read_text())
        assert "setup" in notebook["cells"][0]["metadata"].get("tags", []), page  # installs the grader on Colab
        for kind in ("answer_keys", "mistakes"):
            pasted = _pasted(json.loads(json.dumps(notebook)), (exercises / kind / f"{page}.py").read_text())
            name = f"{page}-{kind}.ipynb"
            (tmp_path / name).write_text(json.dumps(pasted))
            names.append(name)
    (tmp_path / "run.py").write_text(GRADED_RUNNER)
    result = subprocess.run([str(fresh_venv.python), "run.py", *names], cwd=tmp_path, env=clean_env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    for page in pages.PAGES:
        outputs = {}
        for kind in ("answer_keys", "mistakes"):
            cells = json.loads((tmp_path / f"{page}-{kind}.ipynb.out").read_text())["cells"]
            texts = ["".join(o.get("text", "")) for c in cells if c["cell_type"] == "code" for o in c.get("outputs", [])]
            last = "".join("".join(o.get("text", "")) for o in cells[-1]["outputs"]).rstrip().splitlines()
            assert last and last[-1].startswith("Score: "), (page, kind, cells[-1]["outputs"])
            got, total = (float(x) for x in last[-1].removeprefix("Score: ").split(" / "))
            outputs[kind] = (got, total, "\n".join(texts))
        got, total, _ = outputs["answer_keys"]
        assert got == total > 0, f"{page}: the answer key pasted into the notebook scores {got} / {total}"
        got, total, text = outputs["mistakes"]
        assert got < total, f"{page}: the classic mistakes score full marks"
        module = ast.parse((exercises / "mistakes" / f"{page}.py").read_text())
        hints = next(ast.literal_eval(node.value) for node in module.body
                     if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "HINTS")
        for function, hint in hints.items():
            assert hint in text, f"{page}: the notebook's checks do not name the mistake in {function} ({hint!r})"
