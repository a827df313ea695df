"""Answer key of book/exercises/lgm.md: numpy and scipy only (never lgm).

The model is x = A z + noise with z ~ N(0, I_K) and noise ~ N(0, diag(D)); every solve is K x K
(Woodbury and the determinant lemma), never d x d.
"""
import numpy as np
from scipy import linalg


def lgm_posterior(X, A, D):
    """Exercise 6.1: Sigma = (I + A^T D^{-1} A)^{-1}; means m_n = Sigma A^T D^{-1} x_n (rows of X)."""
    X, A, D = np.asarray(X, float), np.asarray(A, float), np.asarray(D, float)
    AD = A / D[:, None]
    L = linalg.cholesky(np.eye(A.shape[1]) + A.T @ AD, lower=True)
    Sigma = linalg.cho_solve((L, True), np.eye(A.shape[1]))
    return X @ AD @ Sigma, 0.5 * (Sigma + Sigma.T)


def lgm_loglik(X, A, D):
    """Exercise 6.2: log N(x_n; 0, A A^T + D) per row, in O(N d K + d K^2)."""
    X, A, D = np.asarray(X, float), np.asarray(A, float), np.asarray(D, float)
    AD = A / D[:, None]
    L = linalg.cholesky(np.eye(A.shape[1]) + A.T @ AD, lower=True)
    logdet = np.sum(np.log(D)) + 2 * np.sum(np.log(np.diag(L)))
    U = linalg.solve_triangular(L, (X @ AD).T, lower=True)  # L^{-1} A^T D^{-1} x_n
    quad = np.sum(X**2 / D, axis=1) - np.sum(U**2, axis=0)
    return -0.5 * (X.shape[1] * np.log(2 * np.pi) + logdet + quad)


def _m_step(sxx, Sxz, Szz):
    """A = Sxz Szz^{-1}; D = diag(Sxx) - diag(A Sxz^T), from the (1/N) sums of the completed data."""
    A = linalg.solve(Szz, Sxz.T, assume_a="pos").T
    return A, sxx - np.sum(A * Sxz, axis=1)


def complete_data_ml(X, Z):
    """Exercise 7.1: least squares of X on Z for A, the mean squared residual per coordinate for D."""
    X, Z = np.asarray(X, float), np.asarray(Z, float)
    N = len(X)
    A, D = _m_step(np.sum(X**2, axis=0) / N, X.T @ Z / N, Z.T @ Z / N)
    return A, np.maximum(D, 0.0)


def em_step(X, A, D):
    """Exercise 7.2: E-step (posterior moments), then the M-step on the expected statistics."""
    X = np.asarray(X, float)
    means, Sigma = lgm_posterior(X, A, D)
    N = len(X)
    Sxz = X.T @ means / N
    Szz = Sigma + means.T @ means / N
    return _m_step(np.sum(X**2, axis=0) / N, Sxz, Szz)


def mcem_step(X, A, D, eps):
    """Exercise 7.3: z_nj = m_n + L eps_nj (L L^T = Sigma), then complete-data ML on the N J pairs."""
    X, eps = np.asarray(X, float), np.asarray(eps, float)
    means, Sigma = lgm_posterior(X, A, D)
    Z = means + eps @ np.linalg.cholesky(Sigma).T  # (J, N, K)
    J, N, K = Z.shape
    Sxz = X.T @ Z.sum(axis=0) / (N * J)
    Zf = Z.reshape(N * J, K)
    return _m_step(np.sum(X**2, axis=0) / N, Sxz, Zf.T @ Zf / (N * J))


def impute_row(x, A, D, mean):
    """Exercise 7.4: the posterior mean of z from the observed entries; missing entries mean + A m."""
    x, A, D, mean = (np.asarray(a, float) for a in (x, A, D, mean))
    o = ~np.isnan(x)
    m, _ = lgm_posterior((x[o] - mean[o])[None, :], A[o], D[o])
    return np.where(o, x, mean + A @ m[0])
