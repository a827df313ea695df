"""The derivation pages give their points to derivations, not to numerical stand-ins (issue 20.7).

``hostile/derive_nothing_*.py`` derive nothing: gradients by complex steps, expectations by
Gauss-Hermite quadrature, maximisers by scipy.optimize, the PCA error by scikit-learn. The grader
refuses those tools on these pages (``autograder.audit``, read from the source before the worker
starts) and its tests use sizes, precisions and inputs at which numerical methods fail. The same
submissions with the tools written by hand in numpy (central differences, a quasi-Newton method,
quadrature nodes from the Golub-Welsch eigenproblem: the "evader" variants below), which the audit
cannot see, must fail too. Each is graded under several seeds and must earn at most 10% of the page.
"""
import re

import pytest

from tests.exercises.test_autograder import HERE, grade

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
                              files=[str(HERE / f"test_{page}.py")], timeout=900)
        earned = [(t["name"], t["score"]) for t in results["tests"] if t["score"]]
        assert results["score"] <= 0.1 * results["max_score"], (seed, results["score"], results["max_score"], earned)
