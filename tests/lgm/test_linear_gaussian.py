"""The linear Gaussian model's equations against independent references: Schur conditioning of
the joint Gaussian, the d x d form of the posterior, scipy.stats, and least squares."""
import numpy as np
import pytest
from scipy import stats
from scipy.linalg import subspace_angles

from lgm.gaussian import condition_gaussian
from lgm.linear_gaussian import (
    complete_data_ml,
    log_likelihood,
    m_step,
    mean_log_likelihood,
    posterior,
    posterior_map,
)


def random_model(seed, d=7, K=3):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(d, K))
    D = rng.uniform(0.1, 1.0, size=d)
    X = rng.normal(size=(40, K)) @ A.T + rng.normal(size=(40, d)) * np.sqrt(D)
    return X, A, D


# ---------------------------------------------------------------- posterior

@pytest.mark.parametrize("seed", range(3))
def test_posterior_equals_schur_conditioning_of_the_joint(seed):
    X, A, D = random_model(seed)
    d, K = A.shape
    joint = np.block([[np.eye(K), A.T], [A, A @ A.T + np.diag(D)]])  # Cov of (z, x)
    means, cov = posterior(X, A, D)
    assert means.shape == (X.shape[0], K) and cov.shape == (K, K)
    for n in range(5):
        m_ref, S_ref = condition_gaussian(np.zeros(K + d), joint, np.arange(K, K + d), X[n])
        # Two exact formulas for the same quantity on a well-conditioned problem: rounding only.
        np.testing.assert_allclose(means[n], m_ref, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(cov, S_ref, rtol=1e-10, atol=1e-12)


def test_posterior_equals_the_d_by_d_form():
    X, A, D = random_model(7)
    C = A @ A.T + np.diag(D)
    means, cov = posterior(X, A, D)
    # p(z | x) = N(A^T C^{-1} x, I - A^T C^{-1} A), with dense d x d solves.
    np.testing.assert_allclose(means, np.linalg.solve(C, X.T).T @ A, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(cov, np.eye(A.shape[1]) - A.T @ np.linalg.solve(C, A), rtol=1e-10, atol=1e-12)


def test_posterior_map_is_the_linear_map_of_the_means():
    X, A, D = random_model(8)
    beta, Sigma = posterior_map(A, D)
    means, cov = posterior(X, A, D)
    np.testing.assert_allclose(X @ beta.T, means, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(Sigma, cov)
    np.testing.assert_array_equal(Sigma, Sigma.T)
    assert np.all(np.linalg.eigvalsh(Sigma) > 0)


# ---------------------------------------------------------------- log-likelihood

@pytest.mark.parametrize("seed", range(3))
def test_log_likelihood_matches_scipy(seed):
    X, A, D = random_model(seed)
    ref = stats.multivariate_normal(np.zeros(A.shape[0]), A @ A.T + np.diag(D)).logpdf(X)
    # Woodbury + determinant lemma against a dense Cholesky: rounding only.
    np.testing.assert_allclose(log_likelihood(X, A, D), ref, rtol=1e-10)


def test_mean_log_likelihood_from_S_equals_the_mean_over_rows():
    X, A, D = random_model(4)
    S = X.T @ X / X.shape[0]
    np.testing.assert_allclose(mean_log_likelihood(S, A, D), log_likelihood(X, A, D).mean(), rtol=1e-12)


def test_log_likelihood_is_invariant_under_rotation_of_A():
    X, A, D = random_model(5)
    R, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(A.shape[1],) * 2))
    np.testing.assert_allclose(log_likelihood(X, A @ R, D), log_likelihood(X, A, D), rtol=1e-12)


def test_log_likelihood_does_not_form_a_d_by_d_matrix():
    # d = 20000 would need a 3.2 GB covariance; the Woodbury route needs a few MB.
    rng = np.random.default_rng(0)
    d, K = 20000, 2
    A, D = rng.normal(size=(d, K)), np.full(d, 0.5)
    X = rng.normal(size=(3, d))
    out = log_likelihood(X, A, D)
    # Check one value by the determinant lemma and Woodbury written out independently (K x K only).
    G = np.eye(K) + A.T @ (A / D[:, None])
    u = A.T @ (X[0] / D)
    quad = X[0] @ (X[0] / D) - u @ np.linalg.solve(G, u)
    ref = -0.5 * (d * np.log(2 * np.pi) + np.sum(np.log(D)) + np.linalg.slogdet(G)[1] + quad)
    np.testing.assert_allclose(out[0], ref, rtol=1e-10)


# ---------------------------------------------------------------- complete-data maximum likelihood

def test_complete_data_ml_equals_least_squares_and_residual_variances():
    rng = np.random.default_rng(3)
    N, d, K = 200, 6, 2
    X, Z = rng.normal(size=(N, d)), rng.normal(size=(N, K))
    A, D = complete_data_ml(X, Z)
    # Shapes (d, K) and (d,) with d != K: the lecture's A sum(x z^T) is not even defined.
    assert A.shape == (d, K) and D.shape == (d,)
    A_ref = np.linalg.lstsq(Z, X, rcond=None)[0].T
    np.testing.assert_allclose(A, A_ref, rtol=1e-10, atol=1e-12)
    # D is the mean squared residual per coordinate (the formula valid for any A, at A = A_ML).
    np.testing.assert_allclose(D, np.mean((X - Z @ A_ref.T) ** 2, axis=0), rtol=1e-10)


def test_complete_data_ml_with_the_true_latents_recovers_A_and_D():
    rng = np.random.default_rng(11)
    N, d, K = 20000, 8, 3
    A_true, D_true = rng.normal(size=(d, K)), rng.uniform(0.2, 1.0, size=d)
    Z = rng.normal(size=(N, K))
    X = Z @ A_true.T + rng.normal(size=(N, d)) * np.sqrt(D_true)
    A, D = complete_data_ml(X, Z)
    # Sampling error: each entry of A has s.d. about sqrt(psi / N) <= 0.007, so the subspace is
    # off by ~0.01 rad; 0.05 leaves a wide margin. D_i has relative s.d. sqrt(2 / N) = 1%: 5% is 5 s.d.
    assert np.max(subspace_angles(A, A_true)) < 0.05
    np.testing.assert_allclose(A, A_true, atol=0.05)
    np.testing.assert_allclose(D, D_true, rtol=0.05)


def test_m_step_rejects_degenerate_latents():
    with pytest.raises(ValueError, match="degenerate"):
        m_step(np.ones(3), np.ones((3, 2)), np.ones((2, 2)))


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize(
    "args, match",
    [
        ((np.array([[np.nan, 1.0]]), np.ones((2, 1)), np.ones(2)), "X contains NaN"),
        ((np.ones(2), np.ones((2, 1)), np.ones(2)), "X must be a 2-D"),
        ((np.ones((3, 2)), np.ones((3, 1)), np.ones(3)), "A has 3 rows"),
        ((np.ones((3, 2)), np.ones((2, 1)), np.ones(3)), r"D must be the \(d,\) diagonal"),
        ((np.ones((3, 2)), np.ones((2, 1)), np.array([1.0, 0.0])), "strictly positive"),
        ((np.ones((3, 2)), np.ones((2, 3)), np.ones(2)), "K <= d"),
    ],
)
@pytest.mark.parametrize("func", [posterior, log_likelihood])
def test_bad_input_is_named(func, args, match):
    with pytest.raises(ValueError, match=match):
        func(*args)


def test_complete_data_ml_bad_input():
    with pytest.raises(ValueError, match="Z must have one row per row of X"):
        complete_data_ml(np.ones((5, 3)), np.ones((4, 2)))
    with pytest.raises(ValueError, match="N >= K"):
        complete_data_ml(np.ones((1, 3)), np.ones((1, 2)))
    with pytest.raises(ValueError, match="degenerate"):
        complete_data_ml(np.ones((5, 3)), np.ones((5, 2)))


def test_mean_log_likelihood_needs_square_S():
    with pytest.raises(ValueError, match="S must be a square"):
        mean_log_likelihood(np.ones((2, 3)), np.ones((3, 1)), np.ones(3))
