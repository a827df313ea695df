"""Classic mistakes for book/exercises/mixtures.md: each function is right except for one classic error.

tests/exercises/test_autograder.py grades this file and checks that, for each function, a test whose
name starts with test_<function> fails and that its message contains the hint below.
"""
import numpy as np
from scipy import stats
from scipy.special import expit

HINTS = {
    "mfa_responsibilities": "forget the mixing weights",
    "mfa_m_step": "leave out the posterior covariance",
    "bpca_m_step": "without the 1/N",
    "ard_update": "forget the d",
    "gaussian_entropy_full": "take half the sum of log L_kk",
    "kl_full_to_standard_normal": "take tr(Sigma) as sum_k L_kk^2",
    "flow_logdet": "use log(1 - sigma) instead of log(sigma)",
}


def mfa_responsibilities(X, pi, mu, A, D):
    # Mistake: no pi_j (and dense densities, exponentiated: these also underflow at large d).
    dens = np.column_stack([stats.multivariate_normal(mu[j], A[j] @ A[j].T + np.diag(D[j])).pdf(X)
                            for j in range(len(pi))])
    return dens / dens.sum(axis=1, keepdims=True)


def mfa_m_step(X, R, Z, Sigma):
    N, J = R.shape
    Nj = R.sum(axis=0)
    mus, As, Ds = [], [], []
    for j in range(J):
        w = R[:, j] / Nj[j]
        xbar, zbar = w @ X, w @ Z[:, j]
        Xc, Zc = X - xbar, Z[:, j] - zbar
        Cxz = (Xc * w[:, None]).T @ Zc
        Czz = (Zc * w[:, None]).T @ Zc  # mistake: E[z z^T] without the posterior covariance Sigma_j
        A = np.linalg.solve(Czz, Cxz.T).T
        mus.append(xbar - A @ zbar)
        As.append(A)
        Ds.append(w @ Xc**2 - np.sum(A * Cxz, axis=1))
    return Nj / N, np.array(mus), np.array(As), np.array(Ds)


def bpca_m_step(S, Sxz, Szz, sigma2, alpha, n_samples):
    on = np.isfinite(alpha)
    A = np.zeros_like(Sxz)
    G = Szz[np.ix_(on, on)] + np.diag(sigma2 * alpha[on])  # mistake: the ridge without the 1/N
    A[:, on] = np.linalg.solve(G, Sxz[:, on].T).T
    return A, float(np.trace(S - 2 * A @ Sxz.T + A @ Szz @ A.T) / S.shape[0])


def ard_update(A):
    with np.errstate(divide="ignore"):
        return 1.0 / np.sum(A**2, axis=0)  # mistake: alpha_k = 1 / ||a_k||^2, the d is missing


def gaussian_entropy_full(L):
    K = L.shape[-1]
    # Mistake: (1/2) sum log L_kk, as if the L_kk were variances; log|Sigma| = 2 sum log L_kk.
    return 0.5 * K * np.log(2 * np.pi * np.e) + 0.5 * np.sum(np.log(np.diagonal(L, axis1=-2, axis2=-1)), axis=-1)


def kl_full_to_standard_normal(mu, L):
    K = mu.shape[-1]
    diag = np.diagonal(L, axis1=-2, axis2=-1)
    # Mistake: tr(L L^T) as sum of the squared diagonal of L only.
    return 0.5 * (np.sum(diag**2, axis=-1) + np.sum(mu**2, axis=-1) - K) - np.sum(np.log(diag), axis=-1)


def flow_logdet(z, W_m, b_m, W_s, b_s):
    m, s = z @ W_m.T + b_m, z @ W_s.T + b_s
    sigma = expit(s)
    return sigma * z + (1 - sigma) * m, np.sum(np.log1p(-sigma), axis=-1)  # mistake: log(1 - sigma)
