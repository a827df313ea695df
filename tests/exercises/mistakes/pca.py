"""A submission for book/exercises/pca.md with one classic mistake in every function (see mistakes/gaussians.py)."""
import numpy as np

HINTS = {
    "pca_als": "forget to centre",
    "principal_angles": "orthonormal",
}


def pca_als(X, n_components, n_iter, W0):
    W = W0  # mistake: X is not centred
    for _ in range(n_iter):
        Z = np.linalg.solve(W.T @ W, W.T @ X.T).T
        W = np.linalg.solve(Z.T @ Z, Z.T @ X).T
    return W


def principal_angles(U, V):
    cosines = np.linalg.svd(U.T @ V, compute_uv=False)  # mistake: U and V are not orthonormalised
    return np.sort(np.arccos(np.clip(cosines, -1.0, 1.0)))
