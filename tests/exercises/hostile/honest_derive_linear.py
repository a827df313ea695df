"""A student's derive_linear submission: every formula derived on paper, written with numpy.

The grader must give it full marks under every draw of the inputs (tests/exercises/test_derivations.py):
the sizes and tolerances that refuse numerical stand-ins must not refuse an honest formula.
"""
import numpy as np


def gaussian_loglik_grads(X, mu, Sigma):
    X, mu, Sigma = (np.asarray(a, dtype=float) for a in (X, mu, Sigma))
    R = X - mu
    P = np.linalg.inv(Sigma)
    return P @ R.sum(axis=0), -0.5 * (len(X) * P - P @ (R.T @ R) @ P)


def gmm_shared_var_mstep(x, R):
    x, R = np.asarray(x, dtype=float), np.asarray(R, dtype=float)
    Nk = R.sum(axis=0)
    mu = (R.T @ x) / Nk
    return Nk / len(x), mu, float(np.sum(R * (x[:, None] - mu) ** 2) / len(x))


def pca_min_error(X, K):
    X = np.asarray(X, dtype=float)
    Xc = X - X.mean(axis=0)
    lam = np.linalg.eigvalsh(Xc.T @ Xc / len(X))
    return float(np.clip(lam[: X.shape[1] - K], 0, None).sum())


def ppca_sigma2(S, W):
    S, W = np.asarray(S, dtype=float), np.asarray(W, dtype=float)
    d, K = W.shape
    return float((np.trace(S) - np.trace(W.T @ S @ W)) / (d - K))


def estep_moments(X, mu, A, D):
    X, mu, A, D = (np.asarray(a, dtype=float) for a in (X, mu, A, D))
    K = A.shape[1]
    AtDinv = A.T / D  # (K, d)
    cov = np.linalg.inv(np.eye(K) + AtDinv @ A)  # Woodbury: only K x K
    means = (X - mu) @ AtDinv.T @ cov
    return means, cov + means[:, :, None] * means[:, None, :]


def lgm_loglik_grads(X, A, D):
    X, A, D = (np.asarray(a, dtype=float) for a in (X, A, D))
    N = len(X)
    Cinv = np.linalg.inv(A @ A.T + np.diag(D))
    G = Cinv @ (X.T @ X / N) @ Cinv - Cinv
    return N * G @ A, 0.5 * N * np.diag(G)


def mcem_isotropic_mstep(X, Z):
    X, Z = np.asarray(X, dtype=float), np.asarray(Z, dtype=float)
    J, N, K = Z.shape
    Zs, Xs = Z.reshape(J * N, K), np.tile(X, (J, 1))
    A = np.linalg.solve(Zs.T @ Zs, Zs.T @ Xs).T
    return A, float(np.mean((Xs - Zs @ A.T) ** 2))
