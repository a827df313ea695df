"""Answer key of book/exercises/ppca.md: numpy and scipy only (never lgm)."""
import numpy as np
from scipy import linalg


def ppca_ml(S, n_components):
    """Exercise 5.1: A = U_K (Lambda_K - sigma^2 I)^{1/2}, sigma^2 the mean of the d - K discarded eigenvalues."""
    S = np.asarray(S, float)
    d, K = S.shape[0], n_components
    lam, U = linalg.eigh(S)
    lam, U = lam[::-1], U[:, ::-1]
    sigma2 = lam[K:].sum() / (d - K)
    U = U[:, :K]
    U = U * np.sign(U[np.argmax(np.abs(U), axis=0), np.arange(K)])  # a sign per column: largest entry positive
    return U * np.sqrt(np.maximum(lam[:K] - sigma2, 0.0)), float(sigma2)


def ppca_posterior(X, A, sigma2):
    """Exercise 5.2: M = A^T A + sigma^2 I; means M^{-1} A^T x_n, covariance sigma^2 M^{-1}."""
    X, A = np.asarray(X, float), np.asarray(A, float)
    M = A.T @ A + sigma2 * np.eye(A.shape[1])
    cov = sigma2 * np.linalg.inv(M)
    return np.linalg.solve(M, A.T @ X.T).T, 0.5 * (cov + cov.T)
