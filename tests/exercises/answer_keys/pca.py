"""Answer key of book/exercises/pca.md: numpy and scipy only (never lgm)."""
import numpy as np
from scipy import linalg


def principal_angles(U, V):
    """Exercise 4.1: arccos of the singular values of Q_U^T Q_V; arcsin of the other side's for small angles."""
    QU, QV = linalg.orth(np.asarray(U, float)), linalg.orth(np.asarray(V, float))
    if QU.shape[1] < QV.shape[1]:
        QU, QV = QV, QU
    cosines = np.clip(linalg.svdvals(QU.T @ QV), 0.0, 1.0)
    sines = np.clip(linalg.svdvals(QV - QU @ (QU.T @ QV)), 0.0, 1.0)[::-1]
    return np.where(cosines**2 > 0.5, np.arcsin(sines), np.arccos(cosines))


def pca_als(X, n_components, n_iter, W0):
    """Exercise 4.2: centre, then n_iter times Z = X (W^+)^T and W = X^T (Z^+)^T, by least squares."""
    X = np.asarray(X, float)
    X = X - X.mean(axis=0)
    W = np.asarray(W0, float)
    for _ in range(n_iter):
        Z = np.linalg.lstsq(W, X.T, rcond=None)[0].T  # rows z_n = W^+ x_n
        W = np.linalg.lstsq(Z, X, rcond=None)[0].T
    return W
