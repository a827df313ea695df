"""Answer key of book/exercises/nlgm.md: numpy and scipy only (the reference solution is already one)."""
import numpy as np
from scipy.special import logsumexp


def nlgm_logpx_quad(f_grid, x, sigma2, grid):
    """Exercise 8.1: log p(x_n) = logsumexp_g [log N(x_n; f(z_g), sigma2 I) + log N(z_g; 0, 1)] + log h."""
    x, f_grid, grid = np.asarray(x, float), np.asarray(f_grid, float), np.asarray(grid, float)
    d = x.shape[1]
    sq = np.sum((x[:, None, :] - f_grid[None, :, :]) ** 2, axis=-1)  # (N, G) squared distances
    log_lik = -0.5 * (d * np.log(2 * np.pi * sigma2) + sq / sigma2)
    log_prior = -0.5 * (np.log(2 * np.pi) + grid**2)
    return logsumexp(log_lik + log_prior, axis=1) + np.log(grid[1] - grid[0])


def sigma2_mle(X, FZ):
    """Exercise 8.2: the mean squared error per coordinate over the M pairs, 1/(M d) sum ||x - f||^2."""
    return float(np.mean((np.asarray(X, float) - np.asarray(FZ, float)) ** 2))
