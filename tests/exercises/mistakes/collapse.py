"""Classic mistakes for book/exercises/collapse.md: each function is right except for one classic error.

tests/exercises/test_autograder.py grades this file and checks that, for each function, a test whose
name starts with test_<function> fails and that its message contains the hint below.
"""
import numpy as np

HINTS = {
    "rate_distortion": "sum the KL over the rows of the batch",
    "active_units": "use the variance of samples z of q(z | x)",
    "free_bits_grad": "apply the floor to the KL summed over the units",
}


def rate_distortion(mu, logvar, log_px_given_z):
    # Mistake: the KL summed over the batch, not averaged, so R grows with the batch size.
    kl = 0.5 * np.sum(np.exp(logvar) + mu**2 - 1 - logvar)
    return kl, -np.mean(log_px_given_z)


def active_units(mu, logvar, threshold=0.01):
    # Mistake: the variance of samples z ~ q(z | x) over the data, Var(mu) + E[sigma^2], not of the means.
    rng = np.random.default_rng(0)
    z = mu + np.exp(logvar / 2) * rng.normal(size=(200, *mu.shape))
    return z.reshape(-1, mu.shape[1]).var(axis=0) > threshold


def free_bits_grad(mu, logvar, free_bits):
    # Mistake: the floor on the total KL, max(K lambda, sum_k mean_n KL_nk), instead of on each unit.
    N, K = mu.shape
    kl = 0.5 * (np.exp(logvar) + mu**2 - 1 - logvar)
    on = float(kl.sum(axis=1).mean() > K * free_bits)
    return on * mu / N, on * 0.5 * (np.exp(logvar) - 1) / N
