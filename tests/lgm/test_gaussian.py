"""The Gaussian toolkit against independent references: scipy.stats, dense linear algebra,
the precision-matrix form of conditioning, and Monte Carlo."""
import numpy as np
import pytest
from scipy import stats

from lgm.gaussian import condition_gaussian, gaussian_logpdf, kl_gaussians, lowrank_solve_logdet


def random_spd(rng, n, scale=1.0):
    """A well-conditioned random SPD matrix (condition number of order 10)."""
    B = rng.normal(size=(n, n))
    return scale * (B @ B.T / n + np.eye(n))


def spd_with_eigenvalues(rng, eigenvalues):
    """Q diag(eigenvalues) Q^T with a random orthogonal Q, and Q itself."""
    Q, _ = np.linalg.qr(rng.normal(size=(len(eigenvalues), len(eigenvalues))))
    return (Q * eigenvalues) @ Q.T, Q


# ---------------------------------------------------------------- gaussian_logpdf

@pytest.mark.parametrize("d", [1, 3, 8])
def test_logpdf_matches_scipy(d):
    rng = np.random.default_rng(d)
    Sigma = random_spd(rng, d)
    mu = rng.normal(size=d)
    X = rng.normal(size=(50, d)) * 2
    ref = stats.multivariate_normal(mu, Sigma).logpdf(X)
    # Well-conditioned Sigma: both computations are backward stable, so they agree to ~1e-14.
    np.testing.assert_allclose(gaussian_logpdf(X, mu, Sigma), np.atleast_1d(ref), rtol=1e-10, atol=1e-10)


def test_logpdf_single_point_is_one_row():
    rng = np.random.default_rng(1)
    Sigma, mu, x = random_spd(rng, 4), rng.normal(size=4), rng.normal(size=4)
    out = gaussian_logpdf(x, mu, Sigma)
    assert out.shape == (1,)
    np.testing.assert_allclose(out[0], stats.multivariate_normal(mu, Sigma).logpdf(x), rtol=1e-10)


def _ill_conditioned_case(kappa, seed=2, d=6):
    rng = np.random.default_rng(seed)
    lam = np.logspace(0, -np.log10(kappa), d)  # eigenvalues 1 ... 1/kappa
    Sigma, Q = spd_with_eigenvalues(rng, lam)
    Sigma = 0.5 * (Sigma + Sigma.T)
    mu = rng.normal(size=d)
    X = mu + (rng.normal(size=(20, d)) * np.sqrt(lam)) @ Q.T  # typical points of the distribution
    return X, mu, Sigma, lam, Q


@pytest.mark.parametrize("kappa", [1e10, 1e12])
def test_logpdf_ill_conditioned(kappa):
    # The reference uses the eigen-decomposition the matrix was built from:
    # log|Sigma| = sum log(lambda), Mahalanobis term = sum (Q^T (x - mu))^2 / lambda.
    # Forming Sigma = Q diag(lambda) Q^T in floating point perturbs it by ~eps*|Sigma|, which moves
    # the result by a relative amount of order eps*kappa (first-order perturbation bound), so no
    # method can promise better; we allow 10*eps*kappa (2e-5 at kappa = 1e10; observed ~1e-8).
    X, mu, Sigma, lam, Q = _ill_conditioned_case(kappa)
    Y = (X - mu) @ Q
    ref = -0.5 * (X.shape[1] * np.log(2 * np.pi) + np.sum(np.log(lam)) + np.sum(Y**2 / lam, axis=1))
    out = gaussian_logpdf(X, mu, Sigma)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, ref, rtol=10 * np.finfo(float).eps * kappa)


def test_logpdf_ill_conditioned_matches_scipy():
    # scipy.stats treats eigenvalues below 1e6*eps*max (about 2e-10) as zero and then refuses the
    # matrix, so the comparison with scipy uses kappa = 3e9, just inside its range; same tolerance rule.
    kappa = 3e9
    X, mu, Sigma, _, _ = _ill_conditioned_case(kappa)
    ref = stats.multivariate_normal(mu, Sigma).logpdf(X)
    np.testing.assert_allclose(gaussian_logpdf(X, mu, Sigma), ref, rtol=10 * np.finfo(float).eps * kappa)


@pytest.mark.parametrize(
    "Sigma, match",
    [
        (np.array([[1.0, 2.0], [2.0, 1.0]]), "positive definite"),  # eigenvalues 3 and -1
        (np.array([[1.0, 0.5], [0.0, 1.0]]), "symmetric"),
        (np.array([[1.0, np.nan], [np.nan, 1.0]]), "NaN"),
        (np.ones((2, 3)), "square"),
    ],
)
def test_logpdf_rejects_bad_covariance(Sigma, match):
    with pytest.raises(ValueError, match=match):
        gaussian_logpdf(np.zeros((3, 2)), np.zeros(2), Sigma)


def test_logpdf_rejects_bad_shapes():
    Sigma = np.eye(3)
    with pytest.raises(ValueError, match=r"X must have shape \(N, 3\)"):
        gaussian_logpdf(np.zeros((4, 2)), np.zeros(3), Sigma)
    with pytest.raises(ValueError, match="mu must have shape"):
        gaussian_logpdf(np.zeros((4, 3)), np.zeros(2), Sigma)
    with pytest.raises(ValueError, match="NaN"):
        gaussian_logpdf(np.full((4, 3), np.nan), np.zeros(3), Sigma)


# ---------------------------------------------------------------- condition_gaussian

def test_condition_matches_precision_form():
    # Independent route: with Lambda = Sigma^{-1}, p(x_u | x_o) has covariance Lambda_uu^{-1}
    # and mean mu_u - Lambda_uu^{-1} Lambda_uo (x_o - mu_o) (completing the square in the joint).
    rng = np.random.default_rng(3)
    n = 7
    Sigma, mu = random_spd(rng, n), rng.normal(size=n)
    obs = [5, 1, 3]
    u = [0, 2, 4, 6]
    x_obs = rng.normal(size=3)
    m, S = condition_gaussian(mu, Sigma, obs, x_obs)
    Lam = np.linalg.inv(Sigma)
    S_ref = np.linalg.inv(Lam[np.ix_(u, u)])
    m_ref = mu[u] - S_ref @ Lam[np.ix_(u, obs)] @ (x_obs - mu[obs])
    # Condition numbers are ~10, so both routes agree to ~1e-14; 1e-10 leaves room.
    np.testing.assert_allclose(S, S_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(m, m_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(S, S.T)
    assert np.linalg.eigvalsh(S).min() > 0


def test_condition_matches_monte_carlo_regression():
    # Regress x_u on x_o over many joint draws: the least-squares slope is S_uo S_oo^{-1} and the
    # residual covariance is the Schur complement. With 2e5 draws, the entries have standard errors
    # of order 1/sqrt(2e5) ~ 2e-3 (times O(1) scales), so 2e-2 is about 10 standard errors.
    rng = np.random.default_rng(4)
    n = 4
    Sigma, mu = random_spd(rng, n), rng.normal(size=n)
    Z = rng.multivariate_normal(mu, Sigma, size=200_000)
    obs, u = [0, 2], [1, 3]
    design = np.column_stack([np.ones(len(Z)), Z[:, obs]])
    coef, *_ = np.linalg.lstsq(design, Z[:, u], rcond=None)
    resid = Z[:, u] - design @ coef
    x_obs = np.array([0.5, -1.0])
    m, S = condition_gaussian(mu, Sigma, obs, x_obs)
    np.testing.assert_allclose(m, coef[0] + x_obs @ coef[1:], atol=2e-2)
    np.testing.assert_allclose(S, np.cov(resid.T), atol=2e-2)


def test_condition_rejects_bad_input():
    Sigma, mu = np.eye(3), np.zeros(3)
    with pytest.raises(ValueError, match="obs_idx"):
        condition_gaussian(mu, Sigma, [0, 0], [1.0, 1.0])
    with pytest.raises(ValueError, match="obs_idx"):
        condition_gaussian(mu, Sigma, [3], [1.0])
    with pytest.raises(ValueError, match="obs_idx"):
        condition_gaussian(mu, Sigma, [0.5], [1.0])
    with pytest.raises(ValueError, match="x_obs must have shape"):
        condition_gaussian(mu, Sigma, [0, 1], [1.0])
    with pytest.raises(ValueError, match="mu must have shape"):
        condition_gaussian(np.zeros(2), Sigma, [0], [1.0])
    with pytest.raises(ValueError, match="positive definite"):
        condition_gaussian(mu, np.diag([0.0, 1.0, 1.0]), [0], [1.0])


# ---------------------------------------------------------------- kl_gaussians

def test_kl_matches_monte_carlo():
    # KL = E_{x ~ p0}[log p0(x) - log p1(x)]; the estimate's standard error is the sample s.d.
    # over sqrt(n). A correct formula lands within 4 standard errors except with probability 6e-5.
    rng = np.random.default_rng(5)
    n = 3
    m0, m1 = rng.normal(size=n), rng.normal(size=n)
    S0, S1 = random_spd(rng, n), random_spd(rng, n, scale=2.0)
    X = rng.multivariate_normal(m0, S0, size=200_000)
    w = stats.multivariate_normal(m0, S0).logpdf(X) - stats.multivariate_normal(m1, S1).logpdf(X)
    se = w.std(ddof=1) / np.sqrt(len(w))
    assert abs(kl_gaussians(m0, S0, m1, S1) - w.mean()) < 4 * se


def test_kl_to_standard_normal_closed_form():
    # KL(N(mu, Sigma) || N(0, I)) = 1/2 (tr Sigma + mu^T mu - K - log|Sigma|), computed with numpy.
    rng = np.random.default_rng(6)
    K = 5
    mu, Sigma = rng.normal(size=K), random_spd(rng, K)
    ref = 0.5 * (np.trace(Sigma) + mu @ mu - K - np.linalg.slogdet(Sigma)[1])
    np.testing.assert_allclose(kl_gaussians(mu, Sigma, np.zeros(K), np.eye(K)), ref, rtol=1e-12)


def test_kl_is_zero_at_equality_and_nonnegative():
    rng = np.random.default_rng(7)
    for n in (1, 2, 5):
        m, S = rng.normal(size=n), random_spd(rng, n)
        # Exact zero up to rounding: a few ulps of the O(n) terms that cancel.
        assert abs(kl_gaussians(m, S, m, S)) < 1e-12
    for _ in range(100):
        n = rng.integers(1, 6)
        kl = kl_gaussians(rng.normal(size=n), random_spd(rng, n), rng.normal(size=n), random_spd(rng, n))
        assert kl >= 0


def test_kl_is_not_symmetric():
    m, S0, S1 = np.zeros(1), np.eye(1), 4 * np.eye(1)
    # 1-D closed forms: KL(N(0,1)||N(0,4)) = (1/4 - 1 + log 4)/2, KL(N(0,4)||N(0,1)) = (4 - 1 - log 4)/2.
    np.testing.assert_allclose(kl_gaussians(m, S0, m, S1), 0.5 * (0.25 - 1 + np.log(4)), rtol=1e-12)
    np.testing.assert_allclose(kl_gaussians(m, S1, m, S0), 0.5 * (4 - 1 - np.log(4)), rtol=1e-12)


def test_kl_rejects_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        kl_gaussians(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="m1 must have shape"):
        kl_gaussians(np.zeros(2), np.eye(2), np.zeros(3), np.eye(2))
    with pytest.raises(ValueError, match="S1 must be positive definite"):
        kl_gaussians(np.zeros(2), np.eye(2), np.zeros(2), -np.eye(2))


# ---------------------------------------------------------------- lowrank_solve_logdet

@pytest.mark.parametrize("d, K", [(1, 1), (5, 2), (60, 10)])
def test_lowrank_matches_dense(d, K):
    rng = np.random.default_rng(d + K)
    A = rng.normal(size=(d, K))
    D = rng.uniform(0.1, 2.0, size=d)
    C = A @ A.T + np.diag(D)
    B = rng.normal(size=(d, 4))
    Y, logdet = lowrank_solve_logdet(A, D, B)
    # C has condition number at most (|A|^2 + 2) / 0.1 ~ 1e3 here, so the two routes agree to ~1e-12;
    # 1e-8 is the tolerance promised in the book.
    np.testing.assert_allclose(Y, np.linalg.solve(C, B), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(logdet, np.linalg.slogdet(C)[1], rtol=1e-8)
    y, logdet1 = lowrank_solve_logdet(A, D, B[:, 0])
    assert y.shape == (d,)
    np.testing.assert_allclose(y, np.linalg.solve(C, B[:, 0]), rtol=1e-8, atol=1e-10)
    none, logdet2 = lowrank_solve_logdet(A, D)
    assert none is None and logdet1 == logdet2 == logdet


def test_lowrank_rejects_bad_input():
    A = np.ones((4, 2))
    with pytest.raises(ValueError, match="strictly positive"):
        lowrank_solve_logdet(A, np.array([1.0, 0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match=r"D must have shape \(4,\)"):
        lowrank_solve_logdet(A, np.ones(3))
    with pytest.raises(ValueError, match="B must have shape"):
        lowrank_solve_logdet(A, np.ones(4), np.ones((3, 2)))
    with pytest.raises(ValueError, match="A must have shape"):
        lowrank_solve_logdet(np.ones(4), np.ones(4))
    with pytest.raises(ValueError, match="NaN"):
        lowrank_solve_logdet(A, np.array([1.0, np.nan, 1.0, 1.0]))


def test_condition_rejects_asymmetric_joint_covariance():
    Sigma = np.array([[2.0, 0.5, 0.0], [0.1, 1.0, 0.0], [0.0, 0.0, 1.0]])
    with pytest.raises(ValueError, match="Sigma must be symmetric"):
        condition_gaussian(np.zeros(3), Sigma, [2], [1.0])  # the observed block alone is fine


def test_symmetry_check_is_relative_to_scale():
    # A tiny covariance with a relative asymmetry of 10% is not symmetric, whatever its scale.
    Sigma = 1e-20 * np.array([[1.0, 0.1], [0.0, 1.0]])
    with pytest.raises(ValueError, match="symmetric"):
        gaussian_logpdf(np.zeros((1, 2)), np.zeros(2), Sigma)
