"""The derivation pages give their points to derivations, not to numerical stand-ins (issue 20.7).

``hostile/derive_nothing_*.py`` derive nothing: gradients by complex steps, expectations by
Gauss-Hermite quadrature, maximisers by scipy.optimize, the PCA error by scikit-learn. The grader
refuses those tools on these pages (``pca_to_vae_grader.audit``, read from the source before the worker
starts) and its tests use sizes, precisions and inputs at which numerical methods fail. The same
submissions with the tools written by hand in numpy (central differences, a quasi-Newton method,
quadrature nodes from the Golub-Welsch eigenproblem: the "evader" variants below), which the audit
cannot see, must fail too. Each is graded under several seeds and must earn at most 10% of the page.
"""
import re

import numpy as np
import pytest

from pca_to_vae_grader import audit
from pca_to_vae_grader.student import StudentFailure
from tests.exercises.test_autograder import HERE, TESTS, grade

HOSTILE = HERE / "hostile"
BLOCK = re.compile(r"# -- numerical tools: begin\n.*?# -- numerical tools: end\n", re.S)

HAND_WRITTEN_LINEAR = '''# -- numerical tools: begin


def _derivative(f, x, direction):
    """Central differences with a step relative to the point."""
    h = 1e-6 * max(1.0, float(np.max(np.abs(x))))
    return (f(x + h * direction) - f(x - h * direction)) / (2 * h)


def _minimize(f, x0, iterations=500):
    """BFGS with central-difference gradients and a backtracking line search."""
    x, H = np.array(x0, dtype=float), np.eye(len(x0))
    g = _gradient(f, x)
    for _ in range(iterations):
        p = -H @ g
        t, fx = 1.0, f(x)
        while f(x + t * p) > fx + 1e-4 * t * (g @ p) and t > 1e-12:
            t /= 2
        x_new = x + t * p
        g_new = _gradient(f, x_new)
        s, y = x_new - x, g_new - g
        if np.max(np.abs(g_new)) < 1e-10 or not np.any(s):
            return x_new
        if s @ y > 0:
            rho = 1.0 / (s @ y)
            V = np.eye(len(x)) - rho * np.outer(s, y)
            H = V @ H @ V.T + rho * np.outer(s, s)
        x, g = x_new, g_new
    return x


# -- numerical tools: end
'''

HAND_WRITTEN_NONLINEAR = '''# -- numerical tools: begin


def _derivative(f, x, direction):
    """Central differences (the callers scale the direction to the point)."""
    h = 1e-6
    return (f(x + h * direction) - f(x - h * direction)) / (2 * h)


def _cdf(t, s):
    return stats.norm.cdf(np.arcsinh(t / s))


# Gauss-Hermite nodes and weights (probabilists') by the Golub-Welsch eigenproblem.
_JACOBI = np.diag(np.sqrt(np.arange(1.0, 20.0)), 1)
_NODES, _VECTORS = np.linalg.eigh(_JACOBI + _JACOBI.T)
_WEIGHTS = np.sqrt(2 * np.pi) * _VECTORS[0] ** 2
# -- numerical tools: end
'''

PAGES = {"derive_linear": ("derive_nothing_linear.py", HAND_WRITTEN_LINEAR),
         "derive_nonlinear": ("derive_nothing_nonlinear.py", HAND_WRITTEN_NONLINEAR)}


def _variant(page, evader):
    name, hand_written = PAGES[page]
    text = (HOSTILE / name).read_text()
    return BLOCK.sub(lambda _: hand_written, text) if evader else text


def test_the_evader_variants_swap_the_numerical_tools():
    for page in PAGES:
        original, evader = _variant(page, False), _variant(page, True)
        assert "1j" in original and "1j" not in evader and evader != original


@pytest.mark.slow
@pytest.mark.parametrize("evader", [False, True], ids=["library-tools", "hand-written-tools"])
@pytest.mark.parametrize("page", sorted(PAGES))
def test_deriving_nothing_earns_at_most_a_tenth_of_a_derivation_page(tmp_path, page, evader):
    submission = tmp_path / f"{page}.py"
    submission.write_text(_variant(page, evader))
    for seed in (11, 12, 13):
        results, _, _ = grade(tmp_path, "--seed", str(seed), "--time-limit", "10", submission=submission,
                              files=[str(TESTS / f"test_{page}.py")], timeout=900)
        earned = [(t["name"], t["score"]) for t in results["tests"] if t["score"]]
        assert results["score"] <= 0.1 * results["max_score"], (seed, results["score"], results["max_score"], earned)


@pytest.mark.slow
@pytest.mark.parametrize("page", sorted(PAGES))
def test_honest_derivations_in_numpy_earn_full_marks_under_every_draw(tmp_path, page):
    # The tolerances and sizes that refuse numerical stand-ins must not refuse an honest formula's rounding.
    results, _, _ = grade(tmp_path, "--sweep", "5", "--time-limit", "10", submission=HOSTILE / f"honest_{page}.py",
                          files=[str(TESTS / f"test_{page}.py")], timeout=900)
    failed = [(t["name"], t["output"][:500]) for t in results["tests"] if t["score"] < t["max_score"]]
    assert not failed and results["score"] == results["max_score"] > 0, failed


# -- the audit itself (pca_to_vae_grader.audit): what it refuses, and that honest code passes -----------------

EVASIONS = {
    "complex literal": "def f(x):\n    return (x + 1e-20j).imag\n",
    "complex dtype by name": "import numpy as np\ndef f(x):\n    return np.zeros(3, dtype=np.complex128)\n",
    "complex dtype by string": "import numpy as np\ndef f(x):\n    return np.asarray(x).astype('c16')\n",
    "complex through a helper": "def _h(x):\n    return complex(x, 1e-20)\ndef f(x):\n    return _h(x).imag\n",
    "complex through an alias": "_step = 1e-20j\ndef f(x):\n    return (x + _step).imag\n",
    "emath": "import numpy as np\ndef f(x):\n    return np.emath.sqrt(-x)\n",
    "optimize imported in the function": "def f(x):\n    from scipy.optimize import minimize\n    return minimize(abs, x).x\n",
    "optimize through scipy": "import scipy.optimize\nimport scipy\ndef f(x):\n    return scipy.optimize.brentq(abs, 0, 1)\n",
    "optimize renamed": "from scipy import optimize as o\ndef f(x):\n    return o.minimize(abs, x).x\n",
    "star import": "from scipy.optimize import *\ndef f(x):\n    return x\n",
    "Gauss-Hermite": "import numpy as np\ndef f(x):\n    return np.polynomial.hermite.hermgauss(10)[0]\n",
    "Gauss-Hermite from scipy.special": "from scipy.special import roots_hermitenorm\ndef f(x):\n    return x\nf = lambda x: roots_hermitenorm(5)\n",
    "fft renamed": "import numpy.fft as F\ndef f(x):\n    return F.ifft(x).real\n",
    "Gauss-Legendre": "import numpy as np\ndef f(x):\n    return np.polynomial.legendre.leggauss(8)\n",
    "Gauss-Legendre from scipy.special": "from scipy import special\ndef f(x):\n    return special.roots_legendre(8)\n",
    "trapezoid rule": "import numpy as np\ndef f(x):\n    return np.trapezoid(x)\n",
    "quadrature": "from scipy import integrate\ndef f(x):\n    return integrate.quad(abs, 0, x)[0]\n",
    "the answer's own law": "from scipy import stats\ndef f(x, s):\n    return stats.johnsonsu(0, 1, scale=s).logpdf(x)\n",
    "scikit-learn": "from sklearn.decomposition import PCA\ndef f(X, K):\n    return PCA(K).fit(X).noise_variance_\n",
    "getattr with a computed name": "import numpy as np\ndef f(x):\n    return getattr(np, 'compl' + 'ex128')(x)\n",
    "globals in a class body": "def g(x):\n    return x\nclass C:\n    globals()['f'] = g\n",
    "a default that reaches globals": "def keep(fn):\n    return fn\n@keep\ndef f(x, y=globals()):\n    return x\n",
    "sys.modules": "import sys\ndef f(x):\n    return sys.modules['scipy'].optimize.minimize\n",
    "a global rebinding": "def f(x):\n    return x\ndef g():\n    global f\n    f = lambda x: (x + 1j).imag\n",
}


@pytest.mark.parametrize("name", sorted(EVASIONS))
def test_the_audit_refuses_numerical_stand_ins_and_hidden_names(name):
    from pca_to_vae_grader.audit import refusals

    refused = refusals([EVASIONS[name]])
    assert "f" in refused or "*" in refused, (name, refused)
    assert "On this page the grader refuses" in (refused.get("f") or refused["*"])


def test_the_audit_passes_honest_code_and_the_pages_own_notebooks():
    from pca_to_vae_grader.audit import refusals
    from pca_to_vae_grader.sandboxed.submission import read_cells

    for page in PAGES:
        stubs = refusals(read_cells(HERE.parents[1] / "book" / "exercises" / f"{page}.md"))
        honest = refusals(read_cells(HOSTILE / f"honest_{page}.py"))
        mistakes = refusals(read_cells(HERE / "mistakes" / f"{page}.py"))
        for name in _graded(page):
            assert name not in stubs and name not in honest and name not in mistakes, (page, name)
    # A local variable named like a refused module, a docstring that mentions one, eigh and slogdet: fine.
    assert not refusals(['import numpy as np\n\ndef f(S):\n    """Derived on paper: no scipy.optimize here."""\n    optimize = 2\n'
                         '    return np.linalg.eigh(S)[0].sum() + np.linalg.slogdet(S)[1] + optimize\n'])


def _graded(page):
    import ast

    from pca_to_vae_grader.sandboxed.submission import read_cells

    names = []
    for source in read_cells(HERE.parents[1] / "book" / "exercises" / f"{page}.md"):
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        names += [n.name for n in tree.body if isinstance(n, ast.FunctionDef) and "NotImplementedError" in ast.unparse(n)]
    return names


# -- the check in the notebook's kernel refuses what the graded run's audit refuses ---------------------------

def _kernel(*cells):
    """A kernel's namespace after running ``cells`` in order, with IPython's history of them (``In``)."""
    namespace = {"__name__": "__main__", "In": ["", *cells]}
    for number, cell in enumerate(cells, start=1):
        exec(compile(cell, f"<cell {number}>", "exec"), namespace)
    return namespace


def test_the_check_in_the_kernel_refuses_what_the_graded_run_refuses():
    # Before, a derive-nothing notebook scored in the student's own check what the graded run gives 0:
    # the kernel did not read the source. Now it refuses the same functions, with the same message.
    from pca_to_vae_grader.notebook import Checker

    page = "derive_nonlinear"
    refused = audit.refusals([_variant(page, False)])
    assert refused, "the audit refuses nothing in the derive-nothing file: this test would prove nothing"
    cheat = Checker(page, _kernel(_variant(page, False)), time_limit=10).run()
    assert cheat.score <= 0.1 * cheat.max_score, cheat.score
    for test in cheat.tests:
        function = next(name for name in refused if test.name.startswith(f"test_{name}"))
        assert not test.passed and refused[function] in test.output, (test.name, test.output[:300])


def test_the_check_in_the_kernel_reads_only_the_latest_version_of_each_statement():
    # A student who first tried a complex step, then replaced the function by a derivation, is not refused
    # for the old cell (the saved notebook, which the graded run reads, no longer has it); line numbers hold.
    from pca_to_vae_grader.notebook import KernelStudent, kernel_cells

    old = "import numpy as np\n\ndef slope(x):\n    return np.imag(np.sin(x + 1e-30j)) / 1e-30\n"
    new = "def slope(x):\n    return np.cos(x)\n"
    helper = "H = 1e-30j\n\ndef other(x):\n    return np.imag(np.sin(x + H)) / 1e-30\n"
    namespace = _kernel(old, new, helper)
    cells = kernel_cells(namespace)
    assert cells[0].split("\n")[0] == "import numpy as np" and "imag" not in cells[0]
    assert len(cells[0].split("\n")) == len(old.split("\n")) and cells[1] == new
    refused = audit.refusals(cells)
    assert "slope" not in refused and "other" in refused and "cell 3" in refused["other"]
    student = KernelStudent(namespace, refused=("torch",), audit_source=True)
    assert float(student.slope(0.5)) == pytest.approx(np.cos(0.5))
    with pytest.raises(StudentFailure, match="complex"):
        student.other(0.5)
    # the same cells in plain Python (no IPython history): nothing to read, nothing refused
    assert kernel_cells({k: v for k, v in namespace.items() if k != "In"}) == []
