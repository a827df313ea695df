"""Probabilistic PCA (chapter 5): the LGM with isotropic noise, closed form.

The model is z ~ N(0, I_K), e ~ N(0, sigma^2 I_d) independent of z, and
x = mu + A z + e, so that x ~ N(mu, A A^T + sigma^2 I) (eq-ppca-marginal). Its
maximum-likelihood parameters come from the eigendecomposition of the sample
covariance (Tipping & Bishop 1999, :func:`ppca_ml`). Densities and posteriors
are those of the general linear Gaussian model with D = sigma^2 I, so
:class:`PPCA` calls :mod:`lgm.linear_gaussian` for them rather than repeating
the algebra.
"""
import numpy as np
from scipy import linalg

from lgm import linear_gaussian
from lgm._checks import (
    check_data,
    check_fitted,
    check_n_components,
    check_positive_int,
    check_random_state,
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
    S = check_data(S, "S")
    d = S.shape[1]
    if S.shape != (d, d) or not np.allclose(
        S, S.T, rtol=1e-10, atol=1e-12 * np.abs(S).max(initial=1.0)
    ):
        raise ValueError(
            "S must be a symmetric (d, d) sample covariance; got shape"
            f" {S.shape}."
        )
    K = check_n_components(n_components, d)
    if K == d:
        raise ValueError(
            f"n_components must be smaller than d={d} for PPCA: the noise"
            " variance is the mean of the d - K discarded eigenvalues, so at"
            " least one must be discarded."
        )
    lam, U = linalg.eigh(S)
    lam, U = lam[::-1], U[:, ::-1]
    sigma2 = lam[K:].mean()
    if not sigma2 > 1e-12 * max(lam[0], 1e-300):
        raise ValueError(
            f"The {d - K} smallest eigenvalues of S are (numerically) zero, so"
            " the ML noise variance is 0 and PPCA has no density; use fewer"
            " components or data that fill all dimensions."
        )
    U_K = U[:, :K] * np.sign(
        U[np.argmax(np.abs(U[:, :K]), axis=0), np.arange(K)]
    )
    A = U_K * np.sqrt(np.maximum(lam[:K] - sigma2, 0.0))
    return A, float(sigma2)


class PPCA:
    """Probabilistic PCA fitted by closed-form maximum likelihood (ppca_ml).

    Parameters
    ----------
    n_components : int
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

    def __init__(self, n_components):
        self.n_components = n_components

    def fit(self, X):
        """Fit the maximum-likelihood parameters to X (N, d). Returns self."""
        X = check_data(X, min_samples=2)
        check_n_components(self.n_components, X.shape[1])
        mean = X.mean(axis=0)
        Xc = X - mean
        A, sigma2 = ppca_ml(Xc.T @ Xc / X.shape[0], self.n_components)
        self.A_, self.noise_variance_, self.mean_, self.n_features_in_ = (
            A,
            sigma2,
            mean,
            X.shape[1],
        )
        return self

    def _D(self):
        return np.full(self.n_features_in_, self.noise_variance_)

    def _centred(self, X):
        check_fitted(self, "A_")
        return check_data(X, n_features=self.n_features_in_) - self.mean_

    def score_samples(self, X):
        """log N(x_n; mu, A A^T + sigma^2 I) of every row, shape (N,), in nats.

        Implements eq-ppca-marginal through eq-lgm-loglik with D = sigma^2 I.
        """
        return linear_gaussian.log_likelihood(
            self._centred(X), self.A_, self._D()
        )

    def score(self, X):
        """Mean log-likelihood per sample of X (N, d), in nats."""
        return float(np.mean(self.score_samples(X)))

    def posterior(self, X):
        """The posterior of z for every row of X.

        p(z | x_n) = N(M^{-1} A^T (x_n - mu), sigma^2 M^{-1}),
        M = A^T A + sigma^2 I.

        Implements eq-ppca-posterior, through eq-lgm-posterior with
        D = sigma^2 I.

        Returns
        -------
        means : ndarray, shape (N, K)
        cov : ndarray, shape (K, K)
            The same for every sample.
        """
        return linear_gaussian.posterior(self._centred(X), self.A_, self._D())

    def transform(self, X):
        """Posterior means E[z | x_n], shape (N, K)."""
        return self.posterior(X)[0]

    def sample(self, n_samples, random_state=None):
        """Draw x = mu + A z + e with z ~ N(0, I_K), e ~ N(0, sigma^2 I);
        returns (n_samples, d)."""
        check_fitted(self, "A_")
        n = check_positive_int(n_samples, "n_samples")
        rng = check_random_state(random_state)
        Z = rng.standard_normal((n, self.A_.shape[1]))
        E = rng.standard_normal((n, self.n_features_in_)) * np.sqrt(
            self.noise_variance_
        )
        return self.mean_ + Z @ self.A_.T + E
