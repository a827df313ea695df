"""Probabilistic PCA (chapter 5): the LGM with isotropic noise, closed form.

The model is z ~ N(0, I_K), e ~ N(0, sigma^2 I_d) independent of z, and
x = mu + A z + e, so that x ~ N(mu, A A^T + sigma^2 I) (eq-ppca-marginal). Its
maximum-likelihood parameters come from the eigendecomposition of the sample
covariance (Tipping & Bishop 1999, :func:`ppca_ml`). Densities, posteriors and
samples are those of the general linear Gaussian model with D = sigma^2 I, so
:class:`PPCA` inherits them from :class:`lgm.estimator.LinearGaussianEstimator`
rather than repeating the algebra.
"""
import numpy as np
from scipy import linalg

from lgm.checks import check_n_components, check_symmetric, check_variance_scale
from lgm.estimator import LinearGaussianEstimator
from lgm.pca import orient_columns
from lgm.sufficient_statistics import (
    check_dask_array,
    dask_statistics,
    is_dask_array,
)


def ppca_ml(S, n_components):
    """Maximum-likelihood PPCA parameters from a sample covariance (Tipping &
    Bishop).

    Implements eq-ppca-ml: with the eigenvalues lambda_1 >= ... >= lambda_d of
    S and the eigenvectors U_K of the K largest,
    sigma^2 = (lambda_{K+1} + ... + lambda_d) / (d - K) and
    A = U_K (Lambda_K - sigma^2 I)^{1/2}, unique up to A -> A R for an
    orthogonal R. A column whose eigenvalue equals sigma^2
    is zero.

    Parameters
    ----------
    S : ndarray, shape (d, d)
        Sample covariance of the data, normalised by N:
        S = (1/N) sum_n (x_n - mu)(x_n - mu)^T.
    n_components : int
        K, between 1 and d - 1 (with K = d no variance is left over for the
        noise).

    Returns
    -------
    A : ndarray, shape (d, K)
        The loading matrix (with R = I; each column's largest-magnitude entry
        positive).
    sigma2 : float
        The noise variance, > 0.
    """
    S = check_symmetric(S, "S")
    d = S.shape[1]
    K = check_n_components(n_components, d)
    if K == d:
        raise ValueError(
            f"n_components={K} must be smaller than the number of features"
            f" (n_features={d}) for PPCA: the noise"
            " variance is the mean of the d - K discarded eigenvalues, so at"
            " least one must be discarded."
        )
    # only the K largest eigenpairs (about a third of the work of all d); the
    # d - K discarded eigenvalues enter only through their sum, tr S - sum_K
    lam, U = linalg.eigh(S, subset_by_index=[d - K, d - 1])
    lam, U = lam[::-1], U[:, ::-1]
    sigma2 = (np.trace(S) - lam.sum()) / (d - K)
    if not sigma2 > 1e-12 * max(lam[0], 1e-300):
        raise ValueError(
            f"The {d - K} smallest eigenvalues of S, the data's sample"
            " covariance, are (numerically) zero: the data vary in at most"
            f" n_components={K} of their {d} dimensions (N samples span at"
            " most N - 1), so the ML noise variance is 0 and PPCA has no"
            " density. Use fewer components, or more samples that vary in"
            " every dimension."
        )
    A = orient_columns(U[:, :K]) * np.sqrt(np.maximum(lam[:K] - sigma2, 0.0))
    return A, float(sigma2)


class PPCA(LinearGaussianEstimator):
    """Probabilistic PCA fitted by closed-form maximum likelihood (ppca_ml).

    Densities, posteriors and samples are those of the linear Gaussian model
    with D = sigma^2 1 (eq-ppca-marginal, eq-ppca-posterior), inherited from
    :class:`lgm.estimator.LinearGaussianEstimator`.

    Parameters
    ----------
    n_components : int, default 2
        K, between 1 and d - 1.

    Attributes
    ----------
    A_ : ndarray, shape (d, K)
        Loading matrix; its columns span the principal subspace.
    noise_variance_ : float
        sigma^2.
    mean_ : ndarray, shape (d,)
        mu, the sample mean.
    n_features_in_ : int
        d.

    Examples
    --------
    >>> from lgm import PPCA, make_lgm_data
    >>> X, _ = make_lgm_data(500, 5, 2, noise="isotropic", random_state=0)
    >>> model = PPCA(2).fit(X)
    >>> log_p = model.score(X)  # mean log-likelihood per sample, in nats
    >>> means, cov = model.posterior(X)  # (500, 2) and (2, 2)
    """

    def __init__(self, n_components=2):
        self.n_components = n_components

    def fit(self, X, y=None):
        """Fit the maximum-likelihood parameters to X (N, d). Returns self.

        X may be a ``dask.array``: the mean and the sample covariance are then
        computed chunk by chunk (:mod:`lgm.sufficient_statistics`). ``y`` is
        ignored (it is there for scikit-learn's pipelines).
        """
        if is_dask_array(X):
            check_n_components(self.n_components, check_dask_array(X)[1])
            _, mean, S = dask_statistics(X)
        else:
            X = self._validate_X(X, reset=True, min_samples=2)
            check_n_components(self.n_components, X.shape[1])
            mean = X.mean(axis=0)
            Xc = X - mean
            with np.errstate(over="ignore", invalid="ignore"):  # refused below
                S = Xc.T @ Xc / X.shape[0]
        check_variance_scale(np.max(np.diag(S)), X)
        A, sigma2 = ppca_ml(S, self.n_components)
        self.A_, self.noise_variance_, self.mean_ = A, sigma2, mean
        self.n_features_in_ = mean.shape[0]
        return self

    def _noise(self):
        return np.full(self.n_features_in_, self.noise_variance_)
