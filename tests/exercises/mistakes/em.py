"""A submission for book/exercises/em.md with one classic mistake in every function (see mistakes/gaussians.py)."""
import numpy as np
from scipy.special import logsumexp

HINTS = {
    "elbo_discrete": "entropy",
    "gmm_em_step": "old means",
}


def elbo_discrete(log_joint, q):
    return np.sum(q * log_joint, axis=1)  # mistake: the entropy term -sum q log q is missing


def gmm_em_step(x, pi, mu, var):
    log_joint = np.log(pi) - 0.5 * (np.log(2 * np.pi * var) + (x[:, None] - mu) ** 2 / var)
    R = np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))
    Nk = R.sum(axis=0)
    var_new = np.sum(R * (x[:, None] - mu) ** 2, axis=0) / Nk  # mistake: deviations from the old means
    return Nk / len(x), R.T @ x / Nk, var_new
