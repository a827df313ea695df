"""Reference solutions for book/exercises/em.md (kept out of the book).

Where the package implements an exercise, the solution calls it, so each algorithm has one copy.
"""
import numpy as np
from scipy.special import xlogy

import lgm


def elbo_discrete(log_joint, q):
    log_joint, q = np.asarray(log_joint, dtype=float), np.asarray(q, dtype=float)
    # sum_z q(z) [log p(x, z) - log q(z)], with 0 log 0 = 0 (xlogy) and 0 * log_joint = 0.
    return np.sum(np.where(q > 0, q * log_joint, 0.0) - xlogy(q, q), axis=1)


def gmm_em_step(x, pi, mu, var):
    return lgm.gmm_em_step(x, pi, mu, var)
