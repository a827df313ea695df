"""Answer key of book/exercises/evaluation.md: numpy and scipy only (never lgm, nlgm)."""
import numpy as np
from scipy.special import logsumexp

LOG_2PI = np.log(2 * np.pi)


def iwae_bound(logw):
    """Exercise 12.1: log (1/S) sum_s w_s, by logsumexp over the S samples (axis 0)."""
    logw = np.asarray(logw, float)
    return logsumexp(logw, axis=0) - np.log(logw.shape[0])


def is_log_likelihood(X, A, D, mu, logvar, eps):
    """Exercise 12.2: log w = log p(x | z) + log p(z) - log q(z) at z = mu + sigma eps, then the bound."""
    X, A, D, mu, logvar, eps = (np.asarray(a, float) for a in (X, A, D, mu, logvar, eps))
    z = mu + np.exp(0.5 * logvar) * eps  # (S, N, K)
    log_px = -0.5 * np.sum(LOG_2PI + np.log(D) + (X - z @ A.T) ** 2 / D, axis=-1)
    log_prior = -0.5 * np.sum(LOG_2PI + z**2, axis=-1)
    log_q = -0.5 * np.sum(LOG_2PI + logvar + eps**2, axis=-1)
    return iwae_bound(log_px + log_prior - log_q)
