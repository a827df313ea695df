"""Probabilistic PCA against independent references: scipy.stats, scikit-learn, brute-force conditioning."""
import numpy as np
import pytest
from scipy import linalg
from scipy.stats import multivariate_normal
from sklearn.decomposition import PCA as SklearnPCA
from sklearn.exceptions import NotFittedError

from lgm import PPCA, condition_gaussian, make_lgm_data, ppca_ml, principal_angles


@pytest.fixture(scope="module")
def data():
    X, _ = make_lgm_data(400, 6, 2, noise="isotropic", random_state=0)
    return X


def marginal_cov(model):
    d = model.n_features_in_
    return model.A_ @ model.A_.T + model.noise_variance_ * np.eye(d)


def mean_loglik(X, mu, A, sigma2):
    """Independent reference: the dense Gaussian log-density from scipy."""
    C = A @ A.T + sigma2 * np.eye(X.shape[1])
    return multivariate_normal(mu, C).logpdf(X).mean()


def test_score_samples_equals_scipy(data):
    model = PPCA(2).fit(data)
    ref = multivariate_normal(model.mean_, marginal_cov(model)).logpdf(data)
    np.testing.assert_allclose(model.score_samples(data), ref, rtol=1e-12)
    np.testing.assert_allclose(model.score(data), ref.mean(), rtol=1e-12)


def test_matches_sklearn_pca_likelihood(data):
    """scikit-learn's PCA.score is the same PPCA likelihood, with S normalised by N - 1.

    Its covariance estimate is therefore N / (N - 1) times ours. Fitting scikit-learn on
    Y = mean + (X - mean) sqrt((N - 1) / N), whose (N - 1)-normalised covariance is exactly our S
    and whose mean is ours, gives the same model, so both must score X identically (to round-off).
    Fitted on X itself, its noise variance is ours times N / (N - 1).
    """
    N = len(data)
    model = PPCA(2).fit(data)
    Y = model.mean_ + (data - model.mean_) * np.sqrt((N - 1) / N)
    ref = SklearnPCA(2).fit(Y)
    np.testing.assert_allclose(model.score_samples(data), ref.score_samples(data), rtol=1e-12)
    np.testing.assert_allclose(marginal_cov(model), ref.get_covariance(), atol=1e-12)
    np.testing.assert_allclose(
        model.noise_variance_ * N / (N - 1), SklearnPCA(2).fit(data).noise_variance_, rtol=1e-12
    )


def test_columns_span_the_principal_subspace(data):
    model = PPCA(2).fit(data)
    assert principal_angles(model.A_, SklearnPCA(2).fit(data).components_.T).max() < 1e-8


def test_ml_is_a_maximum(data):
    """Random perturbations of A or sigma^2 lower the likelihood; the finite-difference gradient is 0.

    The gradient is central differences with step 1e-5 (error O(1e-10) times the third
    derivative), so 1e-6 separates a stationary point from a slope.
    """
    model = PPCA(2).fit(data)
    mu, A, s2 = model.mean_, model.A_, model.noise_variance_
    best = mean_loglik(data, mu, A, s2)
    rng = np.random.default_rng(1)
    for _ in range(10):
        assert mean_loglik(data, mu, A + 0.01 * rng.standard_normal(A.shape), s2) < best
    for factor in (0.95, 1.05):
        assert mean_loglik(data, mu, A, s2 * factor) < best
    h = 1e-5
    grad = []
    for idx in np.ndindex(A.shape):
        E = np.zeros_like(A)
        E[idx] = h
        grad.append((mean_loglik(data, mu, A + E, s2) - mean_loglik(data, mu, A - E, s2)) / (2 * h))
    grad.append((mean_loglik(data, mu, A, s2 + h) - mean_loglik(data, mu, A, s2 - h)) / (2 * h))
    assert np.abs(grad).max() < 1e-6


def test_rotation_does_not_change_the_likelihood(data):
    model = PPCA(2).fit(data)
    R = linalg.qr(np.random.default_rng(2).standard_normal((2, 2)))[0]
    a = mean_loglik(data, model.mean_, model.A_, model.noise_variance_)
    b = mean_loglik(data, model.mean_, model.A_ @ R, model.noise_variance_)
    assert abs(a - b) < 1e-12


def test_ppca_ml_closed_form_against_eigendecomposition():
    """sigma^2 is the mean discarded eigenvalue and A A^T = U_K (Lambda_K - sigma^2) U_K^T."""
    X, _ = make_lgm_data(300, 5, 2, random_state=3)
    S = np.cov(X.T, bias=True)
    A, s2 = ppca_ml(S, 2)
    lam, U = np.linalg.eigh(S)
    lam, U = lam[::-1], U[:, ::-1]
    np.testing.assert_allclose(s2, lam[2:].mean(), rtol=1e-12)
    np.testing.assert_allclose(A @ A.T, U[:, :2] * (lam[:2] - s2) @ U[:, :2].T, atol=1e-12)
    # and the columns are orthogonal with squared lengths lambda_k - sigma^2
    np.testing.assert_allclose(A.T @ A, np.diag(lam[:2] - s2), atol=1e-12)


def test_posterior_matches_conditioning_of_the_joint(data):
    """(z, x) ~ N((0, mu), [[I, A^T], [A, C]]); condition on x with the Schur complement."""
    model = PPCA(2).fit(data)
    A, K, d = model.A_, 2, 6
    joint_mean = np.concatenate([np.zeros(K), model.mean_])
    joint_cov = np.block([[np.eye(K), A.T], [A, marginal_cov(model)]])
    means, cov = model.posterior(data[:5])
    for n in range(5):
        m, P = condition_gaussian(joint_mean, joint_cov, np.arange(K, K + d), data[n])
        np.testing.assert_allclose(means[n], m, atol=1e-12)
        np.testing.assert_allclose(cov, P, atol=1e-12)
    # eq-ppca-posterior written out: M = A^T A + sigma^2 I, mean M^{-1} A^T (x - mu), cov sigma^2 M^{-1}
    M = A.T @ A + model.noise_variance_ * np.eye(K)
    np.testing.assert_allclose(cov, model.noise_variance_ * np.linalg.inv(M), atol=1e-12)
    np.testing.assert_allclose(model.transform(data), np.linalg.solve(M, A.T @ (data - model.mean_).T).T, atol=1e-12)


def test_sample_has_the_model_covariance(data):
    """200000 draws: covariance entries have standard error <= max(C_ii) / sqrt(N) ~ 0.02 here."""
    model = PPCA(2).fit(data)
    Xs = model.sample(200_000, random_state=4)
    assert Xs.shape == (200_000, 6)
    np.testing.assert_allclose(np.cov(Xs.T), marginal_cov(model), atol=0.1)
    np.testing.assert_allclose(Xs.mean(axis=0), model.mean_, atol=0.05)
    np.testing.assert_array_equal(model.sample(5, random_state=7), model.sample(5, random_state=7))


def test_bad_input(data):
    for K in (0, 6, 7):
        with pytest.raises(ValueError, match="n_components"):
            PPCA(K).fit(data)
    with pytest.raises(ValueError, match="2-D"):
        PPCA(1).fit(data[:, 0])
    bad = data.copy()
    bad[1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        PPCA(1).fit(bad)
    for method in ("score", "score_samples", "posterior", "transform"):
        with pytest.raises(NotFittedError, match="not fitted"):
            getattr(PPCA(1), method)(data)
        with pytest.raises(ValueError, match="features"):
            getattr(PPCA(1).fit(data), method)(data[:, :4])
    with pytest.raises(NotFittedError, match="not fitted"):
        PPCA(1).sample(3)
    with pytest.raises(ValueError, match="n_samples"):
        PPCA(1).fit(data).sample(0)


def test_ppca_ml_bad_input():
    with pytest.raises(ValueError, match="symmetric"):
        ppca_ml(np.arange(9.0).reshape(3, 3), 1)
    with pytest.raises(ValueError, match="smaller than the number of features"):
        ppca_ml(np.eye(3), 3)
    S = np.diag([2.0, 1.0, 0.0])  # data confined to a plane: nothing left for the noise
    with pytest.raises(ValueError, match="noise variance is 0"):
        ppca_ml(S, 2)


def test_failed_fit_leaves_the_model_as_it_was(data):
    model = PPCA(2).fit(data)
    A = model.A_.copy()
    flat = np.column_stack([data[:, :2], np.zeros((len(data), 4))])  # rank 2: sigma^2 would be 0
    with pytest.raises(ValueError):
        model.fit(flat)
    np.testing.assert_array_equal(model.A_, A)
