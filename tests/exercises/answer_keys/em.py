"""Answer key of book/exercises/em.md: numpy and scipy only, as a student would write it (never lgm)."""
import numpy as np
from scipy.special import logsumexp, xlogy


def elbo_discrete(log_joint, q):
    """Exercise 3.1: sum_z q(z) [log p(x, z) - log q(z)], with 0 log 0 = 0."""
    log_joint, q = np.asarray(log_joint, dtype=float), np.asarray(q, dtype=float)
    return np.sum(np.where(q > 0, q * log_joint, 0.0) - xlogy(q, q), axis=1)


def gmm_em_step(x, pi, mu, var):
    """Exercise 3.2: responsibilities (E-step), then weighted proportions, means and variances (M-step)."""
    x = np.asarray(x, dtype=float)[:, None]
    log_joint = np.log(pi) - 0.5 * np.log(2 * np.pi * var) - 0.5 * (x - mu) ** 2 / var
    R = np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))
    Nk = R.sum(axis=0)
    mu_new = (R * x).sum(axis=0) / Nk
    return Nk / len(x), mu_new, np.maximum((R * (x - mu_new) ** 2).sum(axis=0) / Nk, 1e-6)
