"""Answer key of book/exercises/mixtures.md: numpy and scipy only, as a student would write it (never lgm)."""
import numpy as np
from scipy.special import expit, logsumexp


def _log_gaussian_lowrank(Xc, A, D):
    """log N(x; 0, A A^T + diag(D)) for each row of Xc, by Woodbury and the determinant lemma."""
    d, K = A.shape
    AtDinv = A.T / D
    M = np.eye(K) + AtDinv @ A  # I + A^T D^-1 A
    Lm = np.linalg.cholesky(M)
    u = np.linalg.solve(Lm, AtDinv @ Xc.T)  # (K, N)
    quad = np.sum(Xc**2 / D, axis=1) - np.sum(u**2, axis=0)
    log_det = np.sum(np.log(D)) + 2 * np.sum(np.log(np.diag(Lm)))
    return -0.5 * (d * np.log(2 * np.pi) + log_det + quad)


def mfa_responsibilities(X, pi, mu, A, D):
    """Exercise 7b.1: Bayes' rule over the components, in log space."""
    X = np.asarray(X, dtype=float)
    log_joint = np.column_stack([np.log(pi[j]) + _log_gaussian_lowrank(X - mu[j], A[j], D[j])
                                 for j in range(len(pi))])
    return np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))


def mfa_m_step(X, R, Z, Sigma):
    """Exercise 7b.2: per component, weighted centred moments, then the LGM's M-step."""
    X, R = np.asarray(X, dtype=float), np.asarray(R, dtype=float)
    N, J = R.shape
    Nj = R.sum(axis=0)
    mus, As, Ds = [], [], []
    for j in range(J):
        w = R[:, j] / Nj[j]
        xbar, zbar = w @ X, w @ Z[:, j]
        Xc, Zc = X - xbar, Z[:, j] - zbar
        Cxz = (Xc * w[:, None]).T @ Zc
        Czz = Sigma[j] + (Zc * w[:, None]).T @ Zc
        A = np.linalg.solve(Czz, Cxz.T).T
        mus.append(xbar - A @ zbar)
        As.append(A)
        Ds.append(w @ Xc**2 - np.sum(A * Cxz, axis=1))
    return Nj / N, np.array(mus), np.array(As), np.array(Ds)


def bpca_m_step(S, Sxz, Szz, sigma2, alpha, n_samples):
    """Exercise 7b.3: a ridge regression per column (switched-off columns left at 0), then the residual."""
    S, Sxz, Szz, alpha = (np.asarray(v, dtype=float) for v in (S, Sxz, Szz, alpha))
    on = np.isfinite(alpha)
    A = np.zeros_like(Sxz)
    G = Szz[np.ix_(on, on)] + np.diag(sigma2 * alpha[on] / n_samples)
    A[:, on] = np.linalg.solve(G, Sxz[:, on].T).T
    return A, float(np.trace(S - 2 * A @ Sxz.T + A @ Szz @ A.T) / S.shape[0])


def ard_update(A):
    """Exercise 7b.4: alpha_k = d / ||a_k||^2 (inf for a zero column)."""
    A = np.asarray(A, dtype=float)
    with np.errstate(divide="ignore"):
        return A.shape[0] / np.sum(A**2, axis=0)


def gaussian_entropy_full(L):
    """Exercise 11.3: (K/2) log(2 pi e) + sum_k log L_kk."""
    L = np.asarray(L, dtype=float)
    K = L.shape[-1]
    return 0.5 * K * (1 + np.log(2 * np.pi)) + np.sum(np.log(np.abs(np.diagonal(L, axis1=-2, axis2=-1))), axis=-1)


def kl_full_to_standard_normal(mu, L):
    """Exercise 11.3: (1/2)(tr(L L^T) + mu^T mu - K - log|L L^T|)."""
    mu, L = np.asarray(mu, dtype=float), np.asarray(L, dtype=float)
    K = mu.shape[-1]
    trace = np.einsum("...ij,...ij->...", L, L)
    log_det = 2 * np.sum(np.log(np.abs(np.diagonal(L, axis1=-2, axis2=-1))), axis=-1)
    return 0.5 * (trace + np.sum(mu**2, axis=-1) - K - log_det)


def flow_logdet(z, W_m, b_m, W_s, b_s):
    """Exercise 11.4: one IAF layer and sum_i log sigmoid(s_i), computed stably."""
    z = np.asarray(z, dtype=float)
    m = z @ np.asarray(W_m).T + b_m
    s = z @ np.asarray(W_s).T + b_s
    sigma = expit(s)
    return sigma * z + (1 - sigma) * m, -np.sum(np.logaddexp(0.0, -s), axis=-1)
