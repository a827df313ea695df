"""Classic mistakes for book/exercises/evaluation.md: each function is right except for one classic error.

tests/exercises/test_autograder.py grades this file and checks that, for each function, a test whose
name starts with test_<function> fails and that its message contains the hint below.
"""
import numpy as np
from scipy import stats

HINTS = {
    "iwae_bound": "Use scipy.special.logsumexp",
    "is_log_likelihood": "average the log-weights",
}


def iwae_bound(logw):
    # Mistake: exponentiate, average, take the log; exp(-1e4) is 0 and the log is -inf.
    return np.log(np.mean(np.exp(logw), axis=0))


def is_log_likelihood(X, A, D, mu, logvar, eps):
    # Mistake: the mean of the log-weights (the Monte Carlo ELBO) instead of the log of the mean weight.
    sigma = np.exp(logvar / 2)
    Z = mu + sigma * eps
    logw = (stats.norm(Z @ A.T, np.sqrt(D)).logpdf(X).sum(axis=-1) + stats.norm.logpdf(Z).sum(axis=-1)
            - stats.norm(mu, sigma).logpdf(Z).sum(axis=-1))
    return logw.mean(axis=0)
