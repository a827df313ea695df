"""Classic mistakes for book/exercises/nlgm.md: each function is right except for one classic error.

tests/exercises/test_autograder.py grades this file and checks that, for each function, a test whose
name starts with test_<function> fails and that its message contains the hint below.
"""
import numpy as np
from scipy.special import logsumexp

HINTS = {
    "nlgm_logpx_quad": "the prior is N(z; 0, 1)",
    "sigma2_mle": "forget the count M",
}


def nlgm_logpx_quad(f_grid, x, sigma2, grid):
    # Mistake (the lecture's): the prior on z is N(0, sigma2) instead of the standard normal N(0, 1).
    d = x.shape[1]
    sq = np.sum((x[:, None, :] - f_grid[None, :, :]) ** 2, axis=-1)
    log_lik = -0.5 * (d * np.log(2 * np.pi * sigma2) + sq / sigma2)
    log_prior = -0.5 * (np.log(2 * np.pi * sigma2) + grid**2 / sigma2)
    return logsumexp(log_lik + log_prior, axis=1) + np.log(grid[1] - grid[0])


def sigma2_mle(X, FZ):
    # Mistake (the lecture's): the loss has d log sigma2 instead of M d log sigma2, so the count M is lost.
    return np.sum((X - FZ) ** 2) / X.shape[1]
