"""A submission for book/exercises/ppca.md with one classic mistake in every function (see mistakes/gaussians.py)."""
import numpy as np

HINTS = {
    "ppca_ml": "smallest eigenvalues",
    "ppca_posterior": "sigma^2",
}


def ppca_ml(S, n_components):
    lam, U = np.linalg.eigh(S)  # mistake: eigh sorts eigenvalues in increasing order; not reversed
    K = n_components
    sigma2 = lam[K:].mean()
    return U[:, :K] * np.sqrt(np.abs(lam[:K] - sigma2)), sigma2


def ppca_posterior(X, A, sigma2):
    M = A.T @ A + sigma2 * np.eye(A.shape[1])
    return np.linalg.solve(M, A.T @ X.T).T, np.linalg.inv(M)  # mistake: the covariance lacks sigma^2
