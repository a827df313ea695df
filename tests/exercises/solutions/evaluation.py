"""Reference solutions for book/exercises/evaluation.md (kept out of the book).

The package's importance weighting (nlgm.elbo, PyTorch in float64), converted from and to numpy.
"""
import numpy as np
import torch

import nlgm


def _t(a):
    return torch.as_tensor(np.asarray(a, dtype=float))


def iwae_bound(logw):
    """Exercise 12.1."""
    return nlgm.importance_weighted_log_likelihood(_t(logw)).numpy()


def is_log_likelihood(X, A, D, mu, logvar, eps):
    """Exercise 12.2: importance sampling of the LGM's log p(x) with proposal N(mu, diag(exp(logvar)))."""
    mu, logvar = _t(mu), _t(logvar)
    z = nlgm.reparameterise(mu, logvar, _t(eps))  # (S, N, K)
    log_px_given_z = nlgm.gaussian_log_likelihood(_t(X), z @ _t(A).T, torch.log(_t(D)))  # (S, N)
    log_w = nlgm.importance_log_weights(log_px_given_z, z, mu, logvar)
    return nlgm.importance_weighted_log_likelihood(log_w).numpy()
