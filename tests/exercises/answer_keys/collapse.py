"""Answer key for book/exercises/collapse.md: numpy only (no lgm, no nlgm), full marks.

Each function is the formula of chapter 11b written out; the grader compares it with the package.
"""
import numpy as np


def _unit_kl(mu, logvar):
    """KL of each unit of each row to N(0, 1), shape (N, K) (eq-kl-std-normal with K = 1)."""
    mu, logvar = np.asarray(mu, dtype=float), np.asarray(logvar, dtype=float)
    return 0.5 * (np.exp(logvar) + mu**2 - 1.0 - logvar)


def rate_distortion(mu, logvar, log_px_given_z):
    """Exercise 11b.1: R = mean_n KL(q(z | x_n) || N(0, I)), D = -mean_n (1/J) sum_j log p(x_n | z_nj)."""
    rate = _unit_kl(mu, logvar).sum(axis=1).mean()
    distortion = -np.asarray(log_px_given_z, dtype=float).mean()
    return float(rate), float(distortion)


def active_units(mu, logvar, threshold=0.01):
    """Exercise 11b.2: unit k is active when the variance over the data of its posterior mean exceeds the threshold."""
    return np.var(np.asarray(mu, dtype=float), axis=0) > threshold


def free_bits_grad(mu, logvar, free_bits):
    """Exercise 11b.3: the gradient of F = sum_k max(lambda, (1/N) sum_n KL_nk) in mu and logvar.

    A unit above the floor passes (1/N) dKL_nk: mu_nk / N and (exp(logvar_nk) - 1) / (2N); a unit
    below it gets no gradient.
    """
    mu, logvar = np.asarray(mu, dtype=float), np.asarray(logvar, dtype=float)
    N = mu.shape[0]
    above = _unit_kl(mu, logvar).mean(axis=0) > free_bits
    return mu / N * above, (np.exp(logvar) - 1.0) / (2 * N) * above
