"""Classic mistakes for book/exercises/evaluation.md: each function is right except for one classic error."""
import numpy as np
from scipy import stats


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
