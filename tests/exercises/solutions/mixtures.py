"""Reference solutions for book/exercises/mixtures.md (kept out of the book).

Where the package implements an exercise, the solution calls it, so each algorithm has one copy.
"""
import numpy as np
from scipy.special import expit

import lgm
from lgm.bayesian_pca import ard_update as _ard_update
from lgm.bayesian_pca import bpca_m_step as _bpca_m_step


def mfa_responsibilities(X, pi, mu, A, D):
    return lgm.mfa_responsibilities(X, pi, mu, A, D)


def mfa_m_step(X, R, Z, Sigma):
    return lgm.mfa_m_step(X, R, Z, Sigma)


def bpca_m_step(S, Sxz, Szz, sigma2, alpha, n_samples):
    return _bpca_m_step(np.asarray(S, dtype=float), np.asarray(Sxz, dtype=float), np.asarray(Szz, dtype=float),
                        float(sigma2), np.asarray(alpha, dtype=float), n_samples)


def ard_update(A):
    return _ard_update(np.asarray(A, dtype=float))


def gaussian_entropy_full(L):
    L = np.asarray(L, dtype=float)
    K = L.shape[-1]
    # H = (K/2) log(2 pi e) + (1/2) log|L L^T|, and log|L L^T| = 2 sum_k log|L_kk|.
    return 0.5 * K * np.log(2 * np.pi * np.e) + np.log(np.abs(np.diagonal(L, axis1=-2, axis2=-1))).sum(axis=-1)


def kl_full_to_standard_normal(mu, L):
    mu, L = np.asarray(mu, dtype=float), np.asarray(L, dtype=float)
    K = mu.shape[-1]
    log_det = 2 * np.log(np.abs(np.diagonal(L, axis1=-2, axis2=-1))).sum(axis=-1)
    return 0.5 * (np.sum(L**2, axis=(-2, -1)) + np.sum(mu**2, axis=-1) - K - log_det)


def flow_logdet(z, W_m, b_m, W_s, b_s):
    z = np.asarray(z, dtype=float)
    m, s = z @ W_m.T + b_m, z @ W_s.T + b_s
    sigma = expit(s)
    # The Jacobian is lower triangular with diagonal sigma: log|det| = sum_i log sigmoid(s_i).
    return sigma * z + (1 - sigma) * m, -np.logaddexp(0.0, -s).sum(axis=-1)
