"""Points for the work, whatever form an honest answer takes, with the message a teacher would write.

- Issue 20.6: a number returned as a Python float, a 0-d or 1-element array, a float32, a list or a
  0-d tensor is graded as the number it is (the codec kept 0-d arrays as shape (1,) before).
- Issue 20.5: no points without the work. A table of answers computed offline for inputs that used to be
  fixed earns nothing (every input that decides points is drawn per run), and an importance-sampling
  estimator that returns the exact log p(x), ignoring its proposal and samples, earns nothing.
- Issue 15.6: a d x d posterior at d = 20000 is told to use the K x K (Woodbury) form, log(det(Sigma))
  underflowing to -inf is told to use slogdet, and the covariance normalised by N - 1 loses the test of
  the maximum.
"""
import json

import numpy as np
import pytest
import torch
from scipy import stats

from pca_to_vae_grader.sandboxed import codec
from pca_to_vae_grader.compare import GradingFailure, as_number, check_array

from .test_autograder import HERE, TESTS, grade


@pytest.mark.parametrize("value", [1.5, np.float64(1.5), np.array(1.5), np.array([1.5]), [1.5], np.float32(1.5),
                                   np.array([[1.5]]), torch.tensor(1.5, dtype=torch.float64)],
                         ids=["float", "float64", "0-d", "1-element", "list", "float32", "1x1", "tensor"])
def test_a_number_in_any_form_is_graded_as_that_number(value):
    back = codec.from_jsonable(json.loads(json.dumps(codec.to_jsonable(value))))  # the way back from the worker
    assert np.shape(back) == np.shape(value)  # a 0-d array stays 0-d
    check_array(back, 1.5, "kl_gauss(m0, S0, m1, S1)", rtol=1e-12, atol=0)
    assert as_number(back, "kl_gauss") == 1.5


def test_a_float32_answer_is_compared_as_its_value_and_told_why_it_falls_short():
    check_array(np.float32(0.1), 0.1, "x", rtol=1e-6, atol=0)  # within float32's precision: passes
    with pytest.raises(GradingFailure, match="float32 values, which keep about 7 significant digits"):
        check_array(np.float32(0.1), 0.1, "x", rtol=1e-10, atol=0)
    with pytest.raises(GradingFailure, match="must be a single number"):
        as_number(np.array([1.0, 2.0]), "var")


def _old_fixed_answers():
    """What a table computed offline would hold for the inputs these tests used to fix in every run."""
    mu, logvar = np.array([[0.0, 3.0, -40.0], [1.0, 0.0, 0.0]]), np.array([[-30.0, 20.0, 0.0], [5.0, -10.0, 1e-8]])
    eps = np.array([[[1.5, -0.5]], [[-2.0, 0.25]]])
    return {
        "logpdf_1x1": stats.norm(0.5, 2.0).logpdf([1.5]),
        "kl_extreme": 0.5 * np.sum(np.exp(logvar) + mu**2 - 1 - logvar, axis=1),
        "reparam_extreme": np.array([[2.0, -1.0]]) + np.exp(np.array([[-60.0, 8.0]]) / 2) * eps,
        "quad_1d": stats.norm(0, np.sqrt(4.5)).logpdf([1.3]),
        "sigma2_single": (0.25 + 0.25 + 1.0) / 4,
    }


TABLE = _old_fixed_answers()

GAUSSIANS = (HERE / "answer_keys" / "gaussians.py").read_text() + f'''

_right_logpdf, _right_kl = gaussian_logpdf, kl_gauss


def gaussian_logpdf(X, mu, Sigma):
    X = np.asarray(X, dtype=float)
    if X.shape == (1, 1):  # the answer of the test that used to fix its inputs, from a table
        return np.array({TABLE["logpdf_1x1"].tolist()!r})
    R = X - mu  # and log(det(Sigma)), which underflows for an ill-conditioned Sigma
    return -0.5 * (X.shape[1] * np.log(2 * np.pi) + np.log(np.linalg.det(Sigma))
                   + np.sum(R * np.linalg.solve(Sigma, R.T).T, axis=1))


def gaussian_mle(X):
    X = np.asarray(X, dtype=float)
    return X.mean(axis=0), np.cov(X, rowvar=False)  # normalised by N - 1


def kl_gauss(m0, S0, m1, S1):
    return np.asarray(_right_kl(m0, S0, m1, S1))  # a 0-d array: an honest answer in another form
'''

VAE = f'''import numpy as np


def kl_to_standard_normal(mu, logvar):
    return np.array({TABLE["kl_extreme"].tolist()!r})


def reparam(mu, logvar, eps):
    return np.array({TABLE["reparam_extreme"].tolist()!r})


def bernoulli_nll(x, logits):  # the old test's four columns, told apart by x and the sign of the logits
    table = {{(1.0, 1.0): [1.9287498479639178e-22, 0.0], (0.0, 1.0): [50.0, 500.0],
              (1.0, -1.0): [50.0, 500.0], (0.0, -1.0): [1.9287498479639178e-22, 0.0]}}
    return np.array(table[(float(x[0, 0]), float(np.sign(logits[0, 0])))])
'''

NLGM = f'''import numpy as np


def nlgm_logpx_quad(f_grid, x, sigma2, grid):
    return np.array({TABLE["quad_1d"].tolist()!r})


def sigma2_mle(X, FZ):
    return {TABLE["sigma2_single"]!r}
'''

EVALUATION = '''import numpy as np


def is_log_likelihood(X, A, D, mu, logvar, eps):
    # The exact log p(x) of the LGM: right where the proposal is the posterior, and it ignores the
    # proposal and the samples it is given.
    C = A @ A.T + np.diag(D)
    return -0.5 * (X.shape[1] * np.log(2 * np.pi) + np.linalg.slogdet(C)[1] + np.sum(X * np.linalg.solve(C, X.T).T, axis=1))
'''

LGM = '''import numpy as np


def lgm_posterior(X, A, D):
    # The d x d form: C = A A^T + diag(D), then A^T C^{-1}.
    C = A @ A.T + np.diag(D)
    gain = np.linalg.solve(C, A).T
    return X @ gain.T, np.eye(A.shape[1]) - gain @ A
'''

SELECTED = {
    "gaussians": ["test_gaussian_logpdf_one_feature_one_sample", "test_gaussian_logpdf_ill_conditioned",
                  "test_gaussian_mle_maximises_likelihood", "test_kl_gauss"],
    "vae": ["test_kl_to_standard_normal_extreme_logvar", "test_reparam_tiny_and_large_variance",
            "test_bernoulli_nll_stable_for_large_logits"],
    "nlgm": ["test_nlgm_logpx_quad_one_dimensional_data", "test_sigma2_mle_single_pair"],
    "evaluation": ["test_is_log_likelihood"],
    "lgm": ["test_lgm_posterior_large_d"],
}


@pytest.mark.slow
def test_answers_from_a_table_or_that_ignore_their_inputs_earn_nothing_and_mistakes_get_a_teachers_hint(tmp_path):
    folder = tmp_path / "submissions"
    folder.mkdir()
    for page, text in {"gaussians": GAUSSIANS, "vae": VAE, "nlgm": NLGM, "evaluation": EVALUATION, "lgm": LGM}.items():
        (folder / f"{page}.py").write_text(text)
    names = [name for tests in SELECTED.values() for name in tests]
    results, _, _ = grade(tmp_path, "-k", " or ".join(names), "--time-limit", "10", submission=folder,
                          files=[str(TESTS / f"test_{page}.py") for page in SELECTED], timeout=600)
    tests = {t["extra_data"]["test"]: t for t in results["tests"]}  # pytest's names (results are named by exercise)
    for name in names:
        assert any(n.startswith(name) for n in tests), (name, sorted(tests))
    earned = {n: t["score"] for n, t in tests.items() if t["score"] and not n.startswith("test_kl_gauss")}
    assert not earned, earned  # the table, the exact log p(x), the d x d form, det and N - 1 earn nothing
    kl = [t for n, t in tests.items() if n.startswith("test_kl_gauss")]
    assert kl and all(t["score"] == t["max_score"] for t in kl), kl  # a 0-d array is the number it holds
    assert "slogdet" in tests["test_gaussian_logpdf_ill_conditioned"]["output"]
    assert "N - 1" in tests["test_gaussian_mle_maximises_likelihood"]["output"]
    assert "Woodbury" in tests["test_lgm_posterior_large_d"]["output"]  # after MemoryError or the time limit
