"""Reference solutions for book/exercises/collapse.md (kept out of the book).

The package's pieces (nlgm.elbo, PyTorch in float64), converted from and to numpy; the free-bits
gradient by torch autograd through nlgm.weighted_kl.
"""
import numpy as np
import torch

import nlgm


def _t(a):
    return torch.as_tensor(np.asarray(a, dtype=float))


def rate_distortion(mu, logvar, log_px_given_z):
    """Exercise 11b.1: R = mean KL(q(z | x) || p(z)), D = -mean E_q log p(x | z)."""
    rate = nlgm.kl_to_standard_normal(_t(mu), _t(logvar)).mean()
    return float(rate), float(-_t(log_px_given_z).mean())


def active_units(mu, logvar, threshold=0.01):
    """Exercise 11b.2: units whose posterior mean varies over the data by more than the threshold."""
    return torch.var(_t(mu), dim=0, unbiased=False).numpy() > threshold


def free_bits_grad(mu, logvar, free_bits):
    """Exercise 11b.3: the gradient of sum_k max(lambda, mean_n KL_nk), by autograd."""
    mu, logvar = _t(mu).requires_grad_(), _t(logvar).requires_grad_()
    nlgm.weighted_kl(mu, logvar, free_bits=free_bits).backward()
    return mu.grad.numpy(), logvar.grad.numpy()
