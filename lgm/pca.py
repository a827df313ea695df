"""Principal component analysis (chapter 4): SVD, iterative estimator, angles.

PCA finds the K-dimensional subspace that is closest to the centred data in
squared distance. The SVD gives it in one step (:class:`PCA`); the iterative
estimator :func:`pca_als` alternates the completion Z = X (W^+)^T of every
sample with the least-squares refit of W, and is subspace iteration in
disguise. It returns *a basis* of the subspace, which :func:`rayleigh_ritz`
turns into eigenvectors; :func:`principal_angles` measures how far two
subspaces are apart.

Data are (N, d) arrays with one sample per row, as in scikit-learn; the book's
equations write samples as columns, so the book's X is this module's ``X.T``.
"""
import numpy as np
from scipy import linalg

from sklearn.base import BaseEstimator, TransformerMixin

from lgm.checks import (
    check_data,
    check_fitted,
    check_n_components,
    check_positive_int,
    check_random_state,
    check_symmetric,
    check_variance_scale,
)
from lgm.sufficient_statistics import (
    check_dask_array,
    dask_statistics,
    is_dask_array,
)


def orient_columns(U):
    """Flip the sign of each column of U so its largest-magnitude entry is
    positive.

    Eigenvectors and singular vectors are defined only up to sign; this fixes
    one, so that fits are reproducible across machines and libraries.

    Parameters
    ----------
    U : ndarray, shape (d, K)

    Returns
    -------
    ndarray, shape (d, K)
    """
    K = U.shape[1]
    return U * np.sign(U[np.argmax(np.abs(U), axis=0), np.arange(K)])


class PCA(TransformerMixin, BaseEstimator):
    """Principal component analysis by the singular value decomposition.

    Implements eq-pca-svd: with the centred data X_c = U_s diag(s) V^T, the
    principal directions are the first K rows of V^T and the eigenvalues of
    S = X_c^T X_c / N are s^2 / N.

    Parameters
    ----------
    n_components : int, default 2
        K, the dimension of the principal subspace, between 1 and min(N, d).

    Attributes
    ----------
    components_ : ndarray, shape (K, d)
        Orthonormal rows: the top-K eigenvectors of S, in order of decreasing
        eigenvalue. The sign of each row is fixed so that its largest-magnitude
        entry is positive.
    explained_variance_ : ndarray, shape (K,)
        The top-K eigenvalues of the sample covariance
        S = (1/N) sum_n (x_n - mean)(x_n - mean)^T, the maximum-likelihood
        normalisation that the book uses. scikit-learn's
        ``PCA.explained_variance_`` divides by N - 1 instead, so it equals
        this times N / (N - 1).
    explained_variance_ratio_ : ndarray, shape (K,)
        ``explained_variance_`` divided by tr(S) (the same under either
        normalisation).
    mean_ : ndarray, shape (d,)
        The sample mean.
    n_features_in_ : int
        d.

    Examples
    --------
    >>> from lgm import PCA, make_lgm_data
    >>> X, _ = make_lgm_data(500, 5, 2, random_state=0)
    >>> pca = PCA(2).fit(X)
    >>> Z = pca.transform(X)  # (500, 2) coordinates in the subspace
    >>> X_hat = pca.inverse_transform(Z)  # (500, 5) projections onto it
    """

    def __init__(self, n_components=2):
        self.n_components = n_components

    def fit(self, X, y=None):
        """Fit the principal subspace to X (N, d). Returns self.

        X may be a ``dask.array``: the top K eigenvectors of the sample
        covariance S, which dask computes chunk by chunk
        (:mod:`lgm.sufficient_statistics`), are then the components. ``y`` is
        ignored (it is there for scikit-learn's pipelines).
        """
        if is_dask_array(X):
            N, d = check_dask_array(X)
            K = _check_rank(self.n_components, N, d)
            _, mean, S = dask_statistics(X)
            # the eigenvectors of S are the right singular vectors of X - mean
            eigenvalues, V = linalg.eigh(S)
            eigenvalues, V = np.maximum(eigenvalues[::-1], 0.0), V[:, ::-1]
            components = orient_columns(V[:, :K]).T
        else:
            X = check_data(X, min_samples=2)
            N, d = X.shape
            K = _check_rank(self.n_components, N, d)
            mean = X.mean(axis=0)
            _, s, Vt = linalg.svd(X - mean, full_matrices=False)
            components = orient_columns(Vt[:K].T).T
            with np.errstate(over="ignore"):  # refused below
                eigenvalues = s**2 / N
        check_variance_scale(eigenvalues[0], X)
        if not eigenvalues[0] > 0:
            raise ValueError(
                "X has zero variance (every row is the same); PCA needs"
                " varying data."
            )
        self.components_ = components
        self.explained_variance_ = eigenvalues[:K]
        self.explained_variance_ratio_ = eigenvalues[:K] / eigenvalues.sum()
        self.mean_ = mean
        self.n_features_in_ = d
        return self

    def transform(self, X):
        """Coordinates Z (N, K) of X (N, d) in the principal basis.

        Z = (X - mean) V_K.
        """
        check_fitted(self, "components_")
        X = check_data(X, n_features=self.n_features_in_, estimator="PCA")
        return (X - self.mean_) @ self.components_.T

    def inverse_transform(self, Z):
        """The points mean + V_K^T z on the principal subspace, (N, d).

        Z is (N, K).
        """
        check_fitted(self, "components_")
        Z = check_data(Z, "Z")
        K = self.components_.shape[0]
        if Z.shape[1] != K:
            raise ValueError(
                f"Z has {Z.shape[1]} features (columns), but this PCA has"
                f" n_components={K};"
                f" Z must be (N, {K}), as transform returns it."
            )
        return self.mean_ + Z @ self.components_


def pca_als(X, n_components, n_iter, W0=None, random_state=None,
            return_history=False):
    """The iterative PCA estimator: alternate Z <- W^+ X and W <- X Z^+
    (alternating least squares).

    Implements eq-pca-als. In the book's column notation (X is d x N) the two
    steps are Z = W^+ X = (W^T W)^{-1} W^T X and
    W = X Z^+ = X Z^T (Z Z^T)^{-1}; each minimises ||X - W Z||_F^2 over one
    block with the other fixed, so the reconstruction error never increases.
    Together they are subspace iteration, span(W_new) = span(S W), so span(W)
    converges to the principal subspace when lambda_K > lambda_{K+1} and W0
    is not deficient in a principal direction, with tan(largest principal
    angle) shrinking by lambda_{K+1}/lambda_K per iteration.

    Parameters
    ----------
    X : ndarray, shape (N, d)
        Data, one sample per row; it is centred (its column means subtracted)
        first.
    n_components : int
        K, between 1 and min(N, d).
    n_iter : int
        The number of iterations (pairs of steps).
    W0 : ndarray, shape (d, K), optional
        The starting basis, of full column rank. Default: standard normal
        entries.
    random_state : None, int or numpy.random.Generator
        Seed for the default W0.
    return_history : bool
        Also return the list of all iterates [W0, W1, ..., W_n_iter].

    Returns
    -------
    W : ndarray, shape (d, K)
        A basis of the estimated principal subspace (neither orthonormal nor
        made of eigenvectors; see :func:`rayleigh_ritz`).
    history : list of ndarray, shape (d, K)
        Only if ``return_history``.
    """
    X = check_data(X, min_samples=2)
    N, d = X.shape
    K = _check_rank(n_components, N, d)
    n_iter = check_positive_int(n_iter, "n_iter")
    if W0 is None:
        W = check_random_state(random_state).standard_normal((d, K))
    else:
        W = check_data(W0, "W0")
        if W.shape != (d, K):
            raise ValueError(
                f"W0 must have shape (d, K) = ({d}, {K}); got {W.shape}."
            )
    X = X - X.mean(axis=0)
    history = [W.copy()]
    for k in range(n_iter):
        # Z = X (W^+)^T: rows z_n = W^+ x_n
        Z = _least_squares_rows(X, W, "W", k)
        # W = X^T (Z^+)^T: the math's W = X Z^+
        W = _least_squares_rows(X.T, Z, "Z", k)
        history.append(W.copy())
    return (W, history) if return_history else W


def _check_rank(n_components, N, d):
    """n_components as an int in 1..min(d, N), or a clear error."""
    K = check_n_components(n_components, d)
    if K > N:
        raise ValueError(
            f"n_components={K} exceeds the number of samples N={N}; use at"
            f" most {N}."
        )
    return K


def _least_squares_rows(Y, B, name, iteration):
    """C = Y B (B^T B)^{-1}, minimising ||Y - C B^T||_F, or an error.

    The error names the rank-deficient B.
    """
    try:
        return linalg.solve(B.T @ B, B.T @ Y.T, assume_a="pos").T
    except (linalg.LinAlgError, ValueError):
        raise ValueError(
            f"{name} lost full column rank at iteration {iteration}; start"
            " from a W0 of full column rank (and data with at least K"
            " non-zero principal variances)."
        ) from None


def rayleigh_ritz(W, S):
    """Eigenpairs of S restricted to span(W) (the Rayleigh-Ritz procedure).

    Implements eq-rayleigh-ritz: orthonormalise W = Q R, diagonalise the K x K
    matrix Q^T S Q = Y diag(theta) Y^T, and return the Ritz vectors Q Y and
    Ritz values theta. When span(W) is an invariant subspace of S (e.g. the
    principal subspace), these are exactly K eigenpairs of S.

    Parameters
    ----------
    W : ndarray, shape (d, K)
        Any basis of the subspace (full column rank).
    S : ndarray, shape (d, d)
        A symmetric matrix (the sample covariance).

    Returns
    -------
    U : ndarray, shape (d, K)
        Orthonormal Ritz vectors, as columns, in order of decreasing Ritz
        value.
    theta : ndarray, shape (K,)
        The Ritz values, decreasing.
    """
    W = check_data(W, "W")
    d, K = W.shape
    S = check_symmetric(S, "S", shape=(d, d))
    if K > d:
        raise ValueError(f"W must have at most d={d} columns; got {K}.")
    Q, R = linalg.qr(W, mode="economic")
    if np.min(np.abs(np.diag(R))) <= 1e-12 * np.max(np.abs(np.diag(R))):
        raise ValueError(
            "W must have full column rank (its columns are linearly"
            " dependent)."
        )
    theta, Y = linalg.eigh(Q.T @ S @ Q)
    return Q @ Y[:, ::-1], theta[::-1]


def principal_angles(U, V):
    """Principal angles between span(U) and span(V), increasing, in radians.

    Implements eq-principal-angles: with orthonormal bases Q_U, Q_V (from QR),
    the cosines of the angles are the singular values of Q_U^T Q_V. Small
    angles are computed from their sines, the singular values of
    Q_V - Q_U Q_U^T Q_V (the smaller space as V), because arccos loses half
    the digits near 0 (an angle of 1e-10 has cosine 1 - 5e-21, which rounds
    to 1).

    Parameters
    ----------
    U : ndarray, shape (d, K1)
    V : ndarray, shape (d, K2)
        Bases (any, not necessarily orthonormal) of the two subspaces.

    Returns
    -------
    ndarray, shape (min(K1, K2),)
        theta_1 <= theta_2 <= ..., each in [0, pi/2]. Two K-dimensional
        subspaces are equal iff the largest angle is 0.
    """
    U = check_data(U, "U")
    V = check_data(V, "V")
    if U.shape[0] != V.shape[0]:
        raise ValueError(
            f"U and V must have the same number of rows d; got {U.shape} and"
            f" {V.shape}."
        )
    QU = linalg.orth(U)
    QV = linalg.orth(V)
    if QU.shape[1] < U.shape[1] or QV.shape[1] < V.shape[1]:
        raise ValueError(
            "U and V must have full column rank (their columns are linearly"
            " dependent)."
        )
    if QU.shape[1] < QV.shape[1]:
        QU, QV = QV, QU
    # the cosines come in decreasing order; the sines, reversed, in increasing
    cosines = np.clip(linalg.svdvals(QU.T @ QV), 0.0, 1.0)
    sines = np.clip(linalg.svdvals(QV - QU @ (QU.T @ QV)), 0.0, 1.0)[::-1]
    return np.where(cosines**2 > 0.5, np.arcsin(sines), np.arccos(cosines))
