"""Autograder tests of book/exercises/ppca.md (chapter 5: probabilistic PCA).

The loading matrix is identifiable only up to a rotation, A -> A R, so A is graded through A A^T
(and the log-likelihood), never entry by entry. References: the package's lgm.ppca_ml (tested
against scikit-learn in tests/lgm); for the posterior, brute-force conditioning of the joint Gaussian
of (z, x) with the toolkit's condition_gaussian (eq-gauss-condition), an independent route.
Tolerances: 1e-8 relative for well-conditioned float64 linear algebra.
"""
import numpy as np
import pytest

import lgm
from pca_to_vae_grader import inputs
from pca_to_vae_grader.compare import check, check_array, check_tuple


def _data(rng, N=300, d=6, K=2):
    A = rng.normal(size=(d, K)) * [3.0, 2.0][:K]
    X = rng.normal(size=(N, K)) @ A.T + 0.5 * rng.normal(size=(N, d))
    X = X - X.mean(axis=0)
    return X, X.T @ X / N


# ---------------------------------------------------------------------------------------------
# ppca_ml(S, n_components) -> (A, sigma2)


def _ml_mistakes(S, K):
    lam, U = np.linalg.eigh(S)
    top, bottom = U[:, ::-1][:, :K], U[:, :K]
    lam_desc = lam[::-1]
    sigma2 = lam_desc[K:].mean()
    return {
        "AAT": [
            ("take the eigenvectors of the K smallest eigenvalues: np.linalg.eigh returns them in increasing order",
             (bottom * np.abs(lam[:K] - lam[K:].mean())) @ bottom.T),
            ("forget to subtract sigma^2 from the eigenvalues, A = U_K Lambda_K^{1/2}", (top * lam_desc[:K]) @ top.T),
            ("use the eigenvalues instead of their square roots in A", (top * (lam_desc[:K] - sigma2) ** 2) @ top.T),
        ],
        "sigma2": [
            ("keep the K smallest eigenvalues: np.linalg.eigh returns them in increasing order", lam[K:].mean()),
            ("average all d eigenvalues for sigma^2 instead of the d - K discarded ones", lam.mean()),
            ("divide the sum of the discarded eigenvalues by d instead of d - K", lam_desc[K:].sum() / len(lam)),
        ],
    }


@pytest.mark.points(2)
@pytest.mark.parametrize("K", [1, 2])
def test_ppca_ml_matches_tipping_bishop(student, K):
    X, S = _data(inputs.rng(K))
    A, sigma2 = check_tuple(student.ppca_ml(S, K), 2, "ppca_ml(S, K)", ("A", "sigma2"))
    A = np.asarray(A, dtype=float)
    check(A.shape == (6, K), f"A must have shape (d, K) = (6, {K}); got {A.shape}.")
    A_ref, sigma2_ref = lgm.ppca_ml(S, K)
    mistakes = _ml_mistakes(S, K)
    check_array(sigma2, sigma2_ref, "sigma2", rtol=1e-8, atol=1e-12, mistakes=mistakes["sigma2"])
    check_array(A @ A.T, A_ref @ A_ref.T, "A A^T (A itself is unique only up to a rotation A R)",
                rtol=1e-8, atol=1e-10, mistakes=mistakes["AAT"])


@pytest.mark.points(1)
def test_ppca_ml_maximises_the_likelihood(student):
    # The log-likelihood of the data under N(0, A A^T + sigma^2 I) at your parameters equals that at
    # the reference's (to 1e-8 relative) and is above that at 10 random nearby parameters.
    rng = inputs.rng(3)
    X, S = _data(rng)
    A, sigma2 = check_tuple(student.ppca_ml(S, 2), 2, "ppca_ml(S, 2)", ("A", "sigma2"))
    A, sigma2 = np.asarray(A, dtype=float), float(np.asarray(sigma2))
    check(A.shape == (6, 2) and sigma2 > 0, f"ppca_ml must return A of shape (6, 2) and sigma2 > 0; got {A.shape}, {sigma2}.")
    loglik = lambda A, s2: lgm.gaussian_logpdf(X, np.zeros(6), A @ A.T + s2 * np.eye(6)).sum()
    A_ref, sigma2_ref = lgm.ppca_ml(S, 2)
    check_array(loglik(A, sigma2), loglik(A_ref, sigma2_ref), "the log-likelihood at your (A, sigma2)",
                rtol=1e-8, atol=1e-8)
    for _ in range(10):
        other = loglik(A + 0.01 * rng.normal(size=A.shape), sigma2 * np.exp(0.01 * rng.normal()))
        check(loglik(A, sigma2) >= other, "A nearby (A, sigma2) has a higher likelihood: yours is not the maximum.")


# ---------------------------------------------------------------------------------------------
# ppca_posterior(X, A, sigma2) -> (means (N, K), cov (K, K))


def _brute_force_posterior(X, A, sigma2):
    """Condition the joint Gaussian of (z, x) on x, one row at a time."""
    d, K = A.shape
    joint = np.block([[np.eye(K), A.T], [A, A @ A.T + sigma2 * np.eye(d)]])
    observed = np.arange(K, K + d)
    results = [lgm.condition_gaussian(np.zeros(K + d), joint, observed, x) for x in X]
    return np.array([m for m, _ in results]), results[0][1]


@pytest.mark.points(2)
@pytest.mark.parametrize("seed", [0, 1])
def test_ppca_posterior_matches_conditioning(student, seed):
    rng = inputs.rng(10 + seed)
    d, K, sigma2 = 5, 2, 0.3
    A, X = rng.normal(size=(d, K)), rng.normal(size=(4, d))
    means, cov = check_tuple(student.ppca_posterior(X, A, sigma2), 2, "ppca_posterior(X, A, sigma2)", ("means", "cov"))
    expected_means, expected_cov = _brute_force_posterior(X, A, sigma2)
    M = A.T @ A + sigma2 * np.eye(K)
    check_array(means, expected_means, "the posterior means (one row per sample)", rtol=1e-8, atol=1e-10, mistakes=[
        ("use the pseudo-inverse A^+ x, the sigma^2 -> 0 limit, instead of M^{-1} A^T x",
         X @ np.linalg.pinv(A).T),
        ("use A^T x without M^{-1}", X @ A),
    ])
    check_array(cov, expected_cov, "the posterior covariance", rtol=1e-8, atol=1e-10, mistakes=[
        ("forget the factor sigma^2 in the covariance sigma^2 M^{-1}", np.linalg.inv(M)),
        ("use sigma^2 M instead of sigma^2 M^{-1}", sigma2 * M),
    ])


@pytest.mark.points(1)
def test_ppca_posterior_small_noise_limit(student):
    # As sigma^2 -> 0 the posterior collapses onto z = A^+ x: the PCA projection (chapter 5).
    # At sigma^2 = 1e-10 the means are within about 1e-10 of A^+ x and the covariance about 1e-10.
    rng = inputs.rng(12)
    A, X = rng.normal(size=(6, 2)), rng.normal(size=(5, 6))
    means, cov = check_tuple(student.ppca_posterior(X, A, 1e-10), 2, "ppca_posterior(X, A, 1e-10)", ("means", "cov"))
    check_array(means, X @ np.linalg.pinv(A).T, "the posterior means at sigma2 = 1e-10 (should be A^+ x)",
                rtol=1e-6, atol=1e-8)
    check_array(cov, np.zeros((2, 2)), "the posterior covariance at sigma2 = 1e-10 (should be about 0)",
                rtol=0, atol=1e-8)
