"""Answer key of book/exercises/derive_linear.md: the derived formulas in numpy (never lgm).

Each function is the result of the worked derivation in book/solutions/derive_linear.md.
"""
import numpy as np


def gaussian_loglik_grads(X, mu, Sigma):
    """D2.1: d ell/d mu = Sigma^{-1} sum_n r_n, d ell/d Sigma = -1/2 (N Sigma^{-1} - Sigma^{-1} R Sigma^{-1})."""
    X, mu, Sigma = np.asarray(X, float), np.asarray(mu, float), np.asarray(Sigma, float)
    Rv = X - mu
    P = np.linalg.inv(Sigma)
    return P @ Rv.sum(axis=0), -0.5 * (len(X) * P - P @ (Rv.T @ Rv) @ P)


def gmm_shared_var_mstep(x, R):
    """D3.1: pi_k = N_k / N, mu_k the weighted means, v = (1/N) sum_nk r_nk (x_n - mu_k)^2."""
    x, R = np.asarray(x, float), np.asarray(R, float)
    Nk = R.sum(axis=0)
    mu = R.T @ x / Nk
    return Nk / len(x), mu, float(np.sum(R * (x[:, None] - mu) ** 2) / len(x))


def pca_min_error(X, K):
    """D4.1: the sum of the d - K smallest eigenvalues of the sample covariance (divided by N)."""
    X = np.asarray(X, float)
    R = X - X.mean(axis=0)
    lam = np.linalg.eigvalsh(R.T @ R / len(X))  # ascending
    return float(np.clip(lam[: X.shape[1] - K], 0, None).sum())


def ppca_sigma2(S, W):
    """D5.1: the variance outside span(W) (W orthonormal), averaged over its d - K dimensions."""
    S, W = np.asarray(S, float), np.asarray(W, float)
    d, K = W.shape
    return float((np.trace(S) - np.trace(W.T @ S @ W)) / (d - K))


def estep_moments(X, mu, A, D):
    """D6.1: Sigma = (I + A^T D^{-1} A)^{-1}, m_n = Sigma A^T D^{-1} (x_n - mu), E[z z^T | x_n] = Sigma + m m^T."""
    X, mu, A, D = (np.asarray(a, float) for a in (X, mu, A, D))
    AD = A / D[:, None]
    Sigma = np.linalg.inv(np.eye(A.shape[1]) + A.T @ AD)
    Sigma = 0.5 * (Sigma + Sigma.T)
    means = (X - mu) @ AD @ Sigma
    return means, Sigma + means[:, :, None] * means[:, None, :]


def lgm_loglik_grads(X, A, D):
    """D6.2: with C = A A^T + D and G = C^{-1} S C^{-1} - C^{-1}: d ell/dA = N G A, d ell/dpsi = N/2 diag(G)."""
    X, A, D = np.asarray(X, float), np.asarray(A, float), np.asarray(D, float)
    N = len(X)
    Cinv = np.linalg.inv(A @ A.T + np.diag(D))
    G = Cinv @ (X.T @ X / N) @ Cinv - Cinv
    return N * G @ A, 0.5 * N * np.diag(G)


def mcem_isotropic_mstep(X, Z):
    """D7.1: A = (sum x z^T)(sum z z^T)^{-1} over the N J pairs; sigma^2 the mean squared residual per entry."""
    X, Z = np.asarray(X, float), np.asarray(Z, float)
    J, N, K = Z.shape
    Xt, Zf = np.tile(X, (J, 1)), Z.reshape(J * N, K)
    A = np.linalg.solve(Zf.T @ Zf, Zf.T @ Xt).T
    return A, float(np.mean((Xt - Zf @ A.T) ** 2))
