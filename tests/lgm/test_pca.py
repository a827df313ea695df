"""PCA, the iterative estimator, Rayleigh-Ritz and principal angles, against independent references."""
import numpy as np
import pytest
from scipy import linalg
from sklearn.decomposition import PCA as SklearnPCA
from sklearn.exceptions import NotFittedError

from lgm import PCA, pca_als, principal_angles, rayleigh_ritz


def gapped_data(eigenvalues, N=2000, seed=0):
    """Data whose population covariance has the given eigenvalues along random orthonormal axes."""
    rng = np.random.default_rng(seed)
    d = len(eigenvalues)
    Q = linalg.qr(rng.standard_normal((d, d)))[0]
    return rng.standard_normal((N, d)) * np.sqrt(eigenvalues) @ Q.T + rng.standard_normal(d)


def sample_cov(X):
    Xc = X - X.mean(axis=0)
    return Xc.T @ Xc / len(X)


EIGENVALUES = np.array([10.0, 5.0, 2.0, 1.0, 0.5, 0.2])


# ---------------------------------------------------------------- PCA (SVD)
@pytest.mark.parametrize("K", [1, 2, 4])
def test_pca_matches_sklearn(K):
    """Same subspace (principal angles < 1e-8, i.e. round-off), eigenvalues equal after rescaling.

    scikit-learn divides by N - 1 where the book divides by N, so its explained_variance_ is
    N / (N - 1) times ours; the ratio is the same under both.
    """
    X = gapped_data(EIGENVALUES)
    N = len(X)
    ours, ref = PCA(K).fit(X), SklearnPCA(K).fit(X)
    assert principal_angles(ours.components_.T, ref.components_.T).max() < 1e-8
    np.testing.assert_allclose(ours.explained_variance_ * N / (N - 1), ref.explained_variance_, rtol=1e-12)
    np.testing.assert_allclose(ours.explained_variance_ratio_, ref.explained_variance_ratio_, rtol=1e-12)
    np.testing.assert_allclose(ours.mean_, ref.mean_, atol=1e-14)
    # each row matches up to sign
    np.testing.assert_allclose(np.abs(np.sum(ours.components_ * ref.components_, axis=1)), 1.0, atol=1e-10)


def test_pca_components_are_orthonormal_eigenvectors_of_S():
    X = gapped_data(EIGENVALUES)
    pca = PCA(3).fit(X)
    V = pca.components_
    np.testing.assert_allclose(V @ V.T, np.eye(3), atol=1e-12)
    S = sample_cov(X)
    np.testing.assert_allclose(S @ V.T, V.T * pca.explained_variance_, atol=1e-10)
    np.testing.assert_allclose(pca.explained_variance_, np.linalg.eigvalsh(S)[::-1][:3], rtol=1e-10)


def test_pca_transform_inverse_transform_is_the_orthogonal_projection():
    X = gapped_data(EIGENVALUES)
    pca = PCA(2).fit(X)
    P = pca.components_.T @ pca.components_
    X_hat = pca.inverse_transform(pca.transform(X))
    np.testing.assert_allclose(X_hat, pca.mean_ + (X - pca.mean_) @ P, atol=1e-12)
    # Eckart-Young: the residual sum of squares is N times the sum of the discarded eigenvalues.
    lam = np.linalg.eigvalsh(sample_cov(X))[::-1]
    np.testing.assert_allclose(np.sum((X - X_hat) ** 2), len(X) * lam[2:].sum(), rtol=1e-10)


def test_pca_bad_input():
    X = gapped_data(EIGENVALUES, N=50)
    for K in (0, 7):
        with pytest.raises(ValueError, match="n_components"):
            PCA(K).fit(X)
    with pytest.raises(TypeError, match="n_components"):
        PCA(1.5).fit(X)
    with pytest.raises(ValueError, match="n_components"):
        PCA(4).fit(X[:3])  # K > N
    with pytest.raises(ValueError, match="2-D"):
        PCA(1).fit(X[:, 0])
    Xnan = X.copy()
    Xnan[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        PCA(1).fit(Xnan)
    with pytest.raises(ValueError, match="zero variance"):
        PCA(1).fit(np.ones((5, 3)))
    with pytest.raises(NotFittedError, match="not fitted"):
        PCA(1).transform(X)
    pca = PCA(2).fit(X)
    with pytest.raises(ValueError, match="features"):
        pca.transform(X[:, :5])
    with pytest.raises(ValueError, match="features"):
        pca.inverse_transform(np.zeros((4, 3)))


def test_failed_fit_leaves_the_estimator_as_it_was():
    X = gapped_data(EIGENVALUES, N=50)
    pca = PCA(2).fit(X)
    before = pca.components_.copy()
    bad = X.copy()
    bad[0, 0] = np.inf
    with pytest.raises(ValueError):
        pca.fit(bad)
    np.testing.assert_array_equal(pca.components_, before)


# ---------------------------------------------------------------- the iterative estimator
def test_pca_als_converges_to_the_svd_subspace():
    X = gapped_data(EIGENVALUES)
    W = pca_als(X, 2, n_iter=200, random_state=0)
    ref = SklearnPCA(2).fit(X).components_.T
    # 200 iterations at rate 0.4 reach round-off; 1e-8 leaves room for its accumulation.
    assert principal_angles(W, ref).max() < 1e-8


def test_pca_als_contraction_rate_is_the_eigenvalue_ratio():
    """tan(largest angle) shrinks by lambda_3 / lambda_2 per iteration (K = 2).

    The ratio is measured once the transient of the smaller angle has died out (iterations 10-25)
    and while tan is still far above round-off (it ends near 1e-8); 1% is a generous bound on what
    is left of that transient, which decays like (lambda_4 / lambda_3)^k = 0.5^k.
    """
    X = gapped_data(EIGENVALUES)
    lam = np.linalg.eigvalsh(sample_cov(X))[::-1]
    U2 = np.linalg.eigh(sample_cov(X))[1][:, ::-1][:, :2]
    _, history = pca_als(X, 2, n_iter=25, random_state=1, return_history=True)
    t = np.tan([principal_angles(W, U2).max() for W in history])
    measured = t[11:26] / t[10:25]
    np.testing.assert_allclose(measured, lam[2] / lam[1], rtol=0.01)


def test_pca_als_reconstruction_error_is_non_increasing():
    """Each half-step is an exact least-squares solve, so the error cannot rise (up to round-off)."""
    X = gapped_data(EIGENVALUES, N=300)
    Xc = X - X.mean(axis=0)
    _, history = pca_als(X, 3, n_iter=30, random_state=2, return_history=True)
    errors = []
    for W in history:
        Z = Xc @ W @ np.linalg.inv(W.T @ W)  # the best Z for this W (independent normal equations)
        errors.append(np.sum((Xc - Z @ W.T) ** 2))
    assert np.all(np.diff(errors) <= 1e-9 * errors[0])
    lam = np.linalg.eigvalsh(sample_cov(X))[::-1]
    np.testing.assert_allclose(errors[-1], len(X) * lam[3:].sum(), rtol=1e-6)


def test_pca_als_returns_a_basis_and_rayleigh_ritz_recovers_eigenvectors():
    X = gapped_data(EIGENVALUES)
    S = sample_cov(X)
    W = pca_als(X, 3, n_iter=300, random_state=3)
    G = W.T @ W
    assert np.abs(G - np.diag(np.diag(G))).max() > 1e-2  # not orthogonal in general
    lam, U = np.linalg.eigh(S)
    U_ritz, theta = rayleigh_ritz(W, S)
    np.testing.assert_allclose(np.abs(np.sum(U_ritz * U[:, ::-1][:, :3], axis=0)), 1.0, atol=1e-8)
    np.testing.assert_allclose(theta, lam[::-1][:3], rtol=1e-10)
    np.testing.assert_allclose(U_ritz.T @ U_ritz, np.eye(3), atol=1e-12)


def test_rayleigh_ritz_on_an_arbitrary_basis_of_an_invariant_subspace():
    """Any basis B = U_S T (T invertible) of a span of eigenvectors gives those eigenpairs exactly."""
    rng = np.random.default_rng(4)
    S = sample_cov(gapped_data(EIGENVALUES))
    lam, U = np.linalg.eigh(S)
    idx = [0, 2, 5]
    B = U[:, idx] @ rng.standard_normal((3, 3))
    U_ritz, theta = rayleigh_ritz(B, S)
    np.testing.assert_allclose(np.sort(theta), lam[idx], rtol=1e-10)
    assert principal_angles(U_ritz, U[:, idx]).max() < 1e-8


def test_pca_als_bad_input():
    X = gapped_data(EIGENVALUES, N=40)
    with pytest.raises(ValueError, match="W0"):
        pca_als(X, 2, 5, W0=np.ones((6, 3)))
    with pytest.raises(ValueError, match="rank"):
        pca_als(X, 2, 5, W0=np.ones((6, 2)))
    with pytest.raises(ValueError, match="n_iter"):
        pca_als(X, 2, 0)
    with pytest.raises(ValueError, match="n_components"):
        pca_als(X, 7, 5)
    with pytest.raises(ValueError, match="symmetric"):
        rayleigh_ritz(np.ones((6, 1)), np.arange(36.0).reshape(6, 6))
    with pytest.raises(ValueError, match="full column rank"):
        rayleigh_ritz(np.ones((6, 2)), np.eye(6))


# ---------------------------------------------------------------- principal angles
@pytest.mark.parametrize("K1, K2", [(1, 1), (3, 3), (2, 4), (4, 2)])
def test_principal_angles_match_scipy(K1, K2):
    rng = np.random.default_rng(K1 * 10 + K2)
    U, V = rng.standard_normal((7, K1)), rng.standard_normal((7, K2))
    np.testing.assert_allclose(principal_angles(U, V), np.sort(linalg.subspace_angles(U, V)), atol=1e-12)


def test_principal_angles_are_accurate_for_tiny_angles():
    """A rotation by 1e-10 rad is measured to 1e-6 relative accuracy (arccos of the cosine gives 0)."""
    u = np.array([[1.0], [0.0], [0.0]])
    v = np.array([[np.cos(1e-10)], [np.sin(1e-10)], [0.0]])
    np.testing.assert_allclose(principal_angles(u, v), [1e-10], rtol=1e-6)
    np.testing.assert_allclose(principal_angles(u, np.array([[0.0], [1.0], [5.0]])), [np.pi / 2], atol=1e-15)
    np.testing.assert_allclose(principal_angles(u, 3 * u), [0.0], atol=1e-15)


def test_principal_angles_bad_input():
    with pytest.raises(ValueError, match="same number of rows"):
        principal_angles(np.ones((3, 1)), np.ones((4, 1)))
    with pytest.raises(ValueError, match="full column rank"):
        principal_angles(np.ones((3, 2)), np.eye(3)[:, :1])


# ---------------------------------------------------------------- the pictures of lgm.plots
@pytest.mark.slow  # ten seconds or more on the shared 2-core machine (make quick skips it)
def test_plot_model_draws_one_attachment_per_point_and_rejects_bad_shapes():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lgm.plots import plot_frames, plot_model

    X = gapped_data([3.0, 1.0], N=20)
    pca = PCA(1).fit(X)
    P = pca.inverse_transform(pca.transform(X))
    ax = plot_model(X, pca.components_.T, mean=pca.mean_, D=np.ones(2), attachments=P)
    segments = [line for line in ax.lines if line.get_color() == "0.5"]
    assert len(segments) == len(X)
    for line, x, p in zip(segments, X, P):  # each segment joins x_n to its projection
        np.testing.assert_allclose(np.column_stack(line.get_data()), [x, p])
    with pytest.raises(ValueError, match="2 or 3 columns"):
        plot_model(gapped_data(EIGENVALUES[:4], N=10), np.ones((4, 1)))
    with pytest.raises(ValueError, match="A must have shape"):
        plot_model(X, np.ones((2, 2)))
    fig, axes = plot_frames(gapped_data([3.0, 2.0, 1.0], N=20), [np.eye(3)[:, :2]] * 3, ncols=2)
    assert len(axes) == 3 and axes[0].name == "3d"
    plt.close("all")
