"""Autograder tests of book/exercises/gaussians.md (chapters 1 and 2).

Each test calls the student's function in its own process (the ``student`` fixture) and compares it
with an independent reference: scipy.stats and dense numpy linear algebra, or the package's
function where that is the reference. Tolerances: 1e-8 relative for well-conditioned inputs (a
correct float64 computation is about 1e-13 off), looser only where the test says why.
"""
import numpy as np
import pytest
from scipy import stats
from scipy.linalg import expm

import lgm
from pca_to_vae_grader import inputs
from pca_to_vae_grader.compare import as_number, check, check_array, check_tuple, hint_on_failure
from pca_to_vae_grader.inputs import spd_matrix

LOG_2PI = np.log(2 * np.pi)


def _logpdf_mistakes(X, mu, Sigma):
    """What the classic mistakes of gaussian_logpdf produce."""
    R = X - mu
    maha = np.einsum("ni,ij,nj->n", R, np.linalg.inv(Sigma), R)
    logdet = np.linalg.slogdet(Sigma)[1]
    d = len(mu)
    return [
        ("forget the 1/2 in front of the quadratic form (x - mu)^T Sigma^{-1} (x - mu)",
         -0.5 * (d * LOG_2PI + logdet) - maha),
        ("forget the 1/2 in front of log|Sigma|", -0.5 * (d * LOG_2PI + maha) - logdet),
        ("use Sigma instead of its inverse in the quadratic form",
         -0.5 * (d * LOG_2PI + logdet + np.einsum("ni,ij,nj->n", R, Sigma, R))),
        ("drop the normalising constant -d/2 log 2 pi", -0.5 * (logdet + maha)),
    ]


# ---------------------------------------------------------------------------------------------
# gaussian_logpdf(X, mu, Sigma) -> (N,)


@pytest.mark.points(2)
@pytest.mark.parametrize("seed", [0, 1])
def test_gaussian_logpdf_matches_scipy(student, seed):
    rng = inputs.rng(seed)
    N, d = 7, 4
    mu, Sigma = rng.normal(size=d), spd_matrix(rng, d)
    X = rng.normal(size=(N, d)) * 2 + mu
    expected = stats.multivariate_normal(mu, Sigma).logpdf(X)
    check_array(student.gaussian_logpdf(X, mu, Sigma), expected, "gaussian_logpdf(X, mu, Sigma)",
                rtol=1e-8, atol=1e-10, mistakes=_logpdf_mistakes(X, mu, Sigma))


@pytest.mark.points(1)
def test_gaussian_logpdf_one_feature_one_sample(student):
    rng = inputs.rng(2)  # drawn anew in every run, like every input that decides points
    x, m, s = rng.normal(scale=2.0), rng.normal(), rng.uniform(0.5, 3.0)
    X, mu, Sigma = np.array([[x]]), np.array([m]), np.array([[s**2]])
    expected = stats.norm(m, s).logpdf([x])
    check_array(student.gaussian_logpdf(X, mu, Sigma), expected, "gaussian_logpdf for d = 1 and N = 1",
                rtol=1e-10, atol=1e-12, mistakes=_logpdf_mistakes(X, mu, Sigma))


@pytest.mark.points(1)
def test_gaussian_logpdf_ill_conditioned(student):
    # d = 80 with eigenvalues from 1e-10 to 1: det(Sigma) is about 1e-400, which underflows to 0
    # in float64, so log(det(Sigma)) is -inf; a Cholesky factor or slogdet is exact. The reference is
    # the package's Cholesky computation; the tolerance 1e-6 relative allows the condition number
    # 1e10 times machine precision in the quadratic form.
    rng = inputs.rng(3)
    d = 80
    mu, Sigma = rng.normal(size=d), spd_matrix(rng, d, condition=1e10)
    X = rng.multivariate_normal(mu, Sigma, size=5, method="cholesky")
    expected = lgm.gaussian_logpdf(X, mu, Sigma)
    with hint_on_failure("NaN or infinity", "det(Sigma) is about 1e-400 here, below the smallest float64, so "
                         "np.linalg.det returns 0 and log(det(Sigma)) is -inf. Compute log|Sigma| without the determinant "
                         "itself: np.linalg.slogdet(Sigma)[1], or 2 * sum(log(diag(L))) with L the Cholesky factor."):
        check_array(student.gaussian_logpdf(X, mu, Sigma), expected,
                    "gaussian_logpdf(X, mu, Sigma) with condition number 1e10 and d = 80", rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# gaussian_mle(X) -> (mu, Sigma)


@pytest.mark.points(2)
def test_gaussian_mle_matches_formula(student):
    rng = inputs.rng(4)
    N, d = 50, 3
    X = rng.normal(size=(N, d)) @ rng.normal(size=(d, d)) + 5.0
    mu, Sigma = check_tuple(student.gaussian_mle(X), 2, "gaussian_mle(X)", ("mu", "Sigma"))
    expected_mu = X.mean(axis=0)
    check_array(mu, expected_mu, "mu from gaussian_mle(X)", rtol=1e-10, atol=1e-12,
                mistakes=[("average over the features (axis=1) instead of over the samples (axis=0)", X.mean(axis=1))])
    check_array(Sigma, np.cov(X.T, bias=True), "Sigma from gaussian_mle(X)", rtol=1e-8, atol=1e-12, mistakes=[
        ("divide by N - 1 (np.cov's default) instead of N: the maximum-likelihood estimate divides by N",
         np.cov(X.T)),
        ("forget to subtract the mean before forming the outer products", X.T @ X / N),
    ])


@pytest.mark.points(1)
def test_gaussian_mle_maximises_likelihood(student):
    rng = inputs.rng(5)
    X = rng.normal(size=(40, 2)) @ np.array([[2.0, 0.3], [0.0, 0.5]])
    mu, Sigma = check_tuple(student.gaussian_mle(X), 2, "gaussian_mle(X)", ("mu", "Sigma"))
    mu, Sigma = np.asarray(mu, dtype=float), np.asarray(Sigma, dtype=float)
    check(mu.shape == (2,) and Sigma.shape == (2, 2),
          f"gaussian_mle(X) must return mu of shape (2,) and Sigma of shape (2, 2); got {mu.shape} and {Sigma.shape}.")
    check(np.allclose(Sigma, Sigma.T) and np.linalg.eigvalsh(Sigma).min() > 0,
          "The Sigma returned by gaussian_mle must be symmetric positive definite.")
    best = lgm.gaussian_logpdf(X, mu, Sigma).sum()
    # Along Sigma's own scale first: a covariance normalised by N - 1 is larger than the MLE by N / (N - 1)
    # (2.5% here), and Sigma / 1.01 then raises the log-likelihood by about d / 2 * 0.015, far above the
    # 1e-9 allowed; random moves of Sigma rarely point that way.
    for c in (0.99, 1.01):
        other = lgm.gaussian_logpdf(X, mu, c * Sigma).sum()
        check(best >= other - 1e-9,
              f"The log-likelihood at your (mu, Sigma) is {best:.6f}, but ({c:g} Sigma) reaches {other:.6f}: your "
              "Sigma is not the maximum along its own scale. The maximum-likelihood covariance divides by N, not by "
              "N - 1 (np.cov's default).")
    L = np.linalg.cholesky(Sigma)
    for _ in range(20):  # the log-likelihood at the MLE is at least that at nearby parameters
        # Sigma moved in every direction, smaller as well as larger (L expm(F) L^T with F symmetric): a
        # Sigma far too large (1e6 I) loses only to a smaller one.
        F = rng.normal(scale=0.05, size=(2, 2))
        other = lgm.gaussian_logpdf(X, mu + rng.normal(scale=0.05, size=2), L @ expm(F + F.T) @ L.T).sum()
        check(best >= other - 1e-9,
              f"The log-likelihood at your (mu, Sigma) is {best:.6f}, but a nearby (mu, Sigma) reaches {other:.6f}: "
              "your estimate is not the maximum.")


# ---------------------------------------------------------------------------------------------
# condition_gaussian(mu, Sigma, obs_idx, x_obs) -> (m, S)


def _condition_mistakes(mu, Sigma, o, x_obs):
    u = np.setdiff1d(np.arange(len(mu)), o)
    Suo, Soo, Suu = Sigma[np.ix_(u, o)], Sigma[np.ix_(o, o)], Sigma[np.ix_(u, u)]
    G = Suo @ np.linalg.inv(Soo)
    means = [("forget to subtract mu_o from x_o", mu[u] + G @ x_obs),
             ("use S_oo instead of its inverse", mu[u] + Suo @ Soo @ (x_obs - mu[o]))]
    covs = [("add the correction term instead of subtracting it (S_uu + S_uo S_oo^{-1} S_ou)", Suu + G @ Suo.T),
            ("use S_oo instead of its inverse in the Schur complement", Suu - Suo @ Soo @ Suo.T)]
    return means, covs


@pytest.mark.points(2)
@pytest.mark.parametrize("seed", [0, 1])
def test_condition_gaussian_matches_reference(student, seed):
    rng = inputs.rng(10 + seed)
    n, o = 5, np.array([0, 3])
    mu, Sigma = rng.normal(size=n), spd_matrix(rng, n)
    x_obs = rng.normal(size=2)
    m, S = check_tuple(student.condition_gaussian(mu, Sigma, o, x_obs), 2, "condition_gaussian(...)", ("m", "S"))
    expected_m, expected_S = lgm.condition_gaussian(mu, Sigma, o, x_obs)
    means, covs = _condition_mistakes(mu, Sigma, o, x_obs)
    check_array(m, expected_m, "the conditional mean m", rtol=1e-8, atol=1e-10, mistakes=means)
    check_array(S, expected_S, "the conditional covariance S", rtol=1e-8, atol=1e-10, mistakes=covs)


@pytest.mark.points(1)
def test_condition_gaussian_unsorted_indices_give_symmetric_psd(student):
    # x_obs[i] is the value of coordinate obs_idx[i]; the indices need not be sorted.
    rng = inputs.rng(12)
    n, o = 6, np.array([4, 1, 2])
    mu, Sigma = rng.normal(size=n), spd_matrix(rng, n)
    x_obs = rng.normal(size=3)
    m, S = check_tuple(student.condition_gaussian(mu, Sigma, o, x_obs), 2, "condition_gaussian(...)", ("m", "S"))
    expected_m, expected_S = lgm.condition_gaussian(mu, Sigma, o, x_obs)
    check_array(m, expected_m, "the conditional mean m for obs_idx = [4, 1, 2]", rtol=1e-8, atol=1e-10, mistakes=[
        ("sort obs_idx without reordering x_obs the same way",
         lgm.condition_gaussian(mu, Sigma, np.sort(o), x_obs)[0])])
    S = check_array(S, expected_S, "the conditional covariance S for obs_idx = [4, 1, 2]", rtol=1e-8, atol=1e-10)
    check(np.allclose(S, S.T, atol=1e-12) and np.linalg.eigvalsh(S).min() > -1e-12,
          "The conditional covariance must be symmetric positive semi-definite.")


# ---------------------------------------------------------------------------------------------
# kl_gauss(m0, S0, m1, S1) -> float


@pytest.mark.points(2)
@pytest.mark.parametrize("seed", [0, 1])
def test_kl_gauss_matches_reference(student, seed):
    rng = inputs.rng(20 + seed)
    n = 3
    m0, m1 = rng.normal(size=n), rng.normal(size=n)
    S0, S1 = spd_matrix(rng, n), spd_matrix(rng, n)
    expected = lgm.kl_gaussians(m0, S0, m1, S1)
    inv1 = np.linalg.inv(S1)
    logdet0, logdet1 = np.linalg.slogdet(S0)[1], np.linalg.slogdet(S1)[1]
    mistakes = [
        ("swap the two distributions: KL(p1 || p0) instead of KL(p0 || p1) (KL is not symmetric)",
         lgm.kl_gaussians(m1, S1, m0, S0)),
        ("swap log|S0| and log|S1|",
         0.5 * (np.trace(inv1 @ S0) + (m1 - m0) @ inv1 @ (m1 - m0) - n + logdet0 - logdet1)),
        ("forget the -n (the dimension) inside the bracket", expected + n / 2),
    ]
    check_array(student.kl_gauss(m0, S0, m1, S1), expected, "kl_gauss(m0, S0, m1, S1)",
                rtol=1e-8, atol=1e-10, mistakes=mistakes)


@pytest.mark.points(1)
def test_kl_gauss_zero_for_equal_and_positive_otherwise(student):
    rng = inputs.rng(22)
    m, S = rng.normal(size=3), spd_matrix(rng, 3)
    check_array(student.kl_gauss(m, S, m, S), 0.0, "kl_gauss(m, S, m, S), the KL of a distribution to itself",
                rtol=0, atol=1e-10)
    for _ in range(5):
        m0, m1, S0, S1 = rng.normal(size=3), rng.normal(size=3), spd_matrix(rng, 3), spd_matrix(rng, 3)
        kl = as_number(student.kl_gauss(m0, S0, m1, S1), "kl_gauss(m0, S0, m1, S1)")
        check(kl > 0, f"kl_gauss returned {kl:.6g} for two different Gaussians; a KL divergence is never negative "
                      "and is zero only for equal distributions. Check the sign of each term.")
        # Positive is not enough (any constant is): the value must be the KL divergence.
        check_array(kl, lgm.kl_gaussians(m0, S0, m1, S1), "kl_gauss for two different Gaussians", rtol=1e-6, atol=1e-8)


# ---------------------------------------------------------------------------------------------
# lowrank_solve_logdet(A, D, B) -> (C^{-1} B, log|C|) for C = A A^T + diag(D)


@pytest.mark.points(2)
@pytest.mark.parametrize("K", [1, 3])
def test_lowrank_solve_logdet_matches_dense(student, K):
    rng = inputs.rng(30 + K)
    d = 30
    A, D, B = rng.normal(size=(d, K)), rng.uniform(0.5, 2.0, size=d), rng.normal(size=(d, 2))
    C = A @ A.T + np.diag(D)
    Y, logdet = check_tuple(student.lowrank_solve_logdet(A, D, B), 2, "lowrank_solve_logdet(A, D, B)", ("Y", "logdet"))
    M = np.eye(K) + A.T @ (A / D[:, None])
    check_array(Y, np.linalg.solve(C, B), "Y = C^{-1} B", rtol=1e-8, atol=1e-10, mistakes=[
        ("add the correction term of the Woodbury identity instead of subtracting it",
         B / D[:, None] + (A / D[:, None]) @ np.linalg.solve(M, (A / D[:, None]).T @ B))])
    check_array(logdet, np.linalg.slogdet(C)[1], "log|C|", rtol=1e-8, atol=1e-10, mistakes=[
        ("forget log|D| in the determinant lemma log|C| = log|D| + log|I + A^T D^{-1} A|", np.linalg.slogdet(M)[1]),
        ("use log|A^T D^{-1} A| without the identity", np.sum(np.log(D)) + np.linalg.slogdet(M - np.eye(K))[1])])


@pytest.mark.points(1)
def test_lowrank_solve_logdet_vector_right_hand_side(student):
    rng = inputs.rng(33)
    d, K = 12, 2
    A, D, b = rng.normal(size=(d, K)), rng.uniform(0.5, 2.0, size=d), rng.normal(size=d)
    Y, _ = check_tuple(student.lowrank_solve_logdet(A, D, b), 2, "lowrank_solve_logdet(A, D, b)", ("Y", "logdet"))
    check_array(Y, np.linalg.solve(A @ A.T + np.diag(D), b), "C^{-1} b for a vector b of shape (d,)",
                rtol=1e-8, atol=1e-10)
