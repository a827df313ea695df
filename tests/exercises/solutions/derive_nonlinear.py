"""Reference solutions for book/exercises/derive_nonlinear.md (kept out of the book).

The gradients are the package's ELBO pieces (nlgm.elbo, PyTorch in float64) differentiated by
autograd, so each algorithm has one copy; the KL between two diagonal Gaussians is lgm's Gaussian
KL; the pushforward density, which the package does not need, is the formula of the worked
derivation in book/solutions/derive_nonlinear.md.
"""
import numpy as np
import torch

import nlgm
from lgm import kl_gaussians


def _t(a, grad=False):
    return torch.tensor(np.asarray(a, dtype=float), requires_grad=grad)


def pushforward_logpdf(x, s):
    """D8.1: z = arsinh(x / s), dz/dx = 1 / sqrt(s^2 + x^2)."""
    x = np.asarray(x, dtype=float)
    z = np.arcsinh(x / s)
    return -0.5 * (np.log(2 * np.pi) + z**2) - 0.5 * np.log(s**2 + x**2)


def kl_diag_gaussians(mu0, logvar0, mu1, logvar1):
    """D9.1: lgm's KL between two Gaussians, row by row, with diagonal covariances."""
    rows = zip(*(np.asarray(a, dtype=float) for a in (mu0, logvar0, mu1, logvar1)))
    return np.array([kl_gaussians(m0, np.diag(np.exp(s0)), m1, np.diag(np.exp(s1))) for m0, s0, m1, s1 in rows])


def kl_std_normal_grads(mu, logvar):
    """D9.2: autograd of the package's KL to the prior."""
    mu, logvar = _t(mu, True), _t(logvar, True)
    nlgm.kl_to_standard_normal(mu, logvar).sum().backward()
    return mu.grad.numpy(), logvar.grad.numpy()


def elbo_reparam_grads(X, mu, logvar, eps, A, D):
    """D10.1: autograd of the package's Monte Carlo ELBO through its reparameterisation."""
    mu, logvar, eps, A = _t(mu, True), _t(logvar, True), _t(eps), _t(A)
    z = nlgm.reparameterise(mu, logvar, eps)  # (J, N, K)
    log_px = nlgm.gaussian_log_likelihood(_t(X), z @ A.T, torch.log(_t(D)))  # (J, N)
    nlgm.monte_carlo_elbo(log_px, nlgm.kl_to_standard_normal(mu, logvar)).sum().backward()
    return mu.grad.numpy(), logvar.grad.numpy()


def bernoulli_decoder_grads(X, Z, W, b):
    """D11.1: autograd of the package's Bernoulli log-likelihood."""
    W, b = _t(W, True), _t(b, True)
    nlgm.bernoulli_log_likelihood(_t(X), _t(Z) @ W.T + b).sum().backward()
    return W.grad.numpy(), b.grad.numpy()


def iwae_logw_grads(log_w):
    """D12.1: autograd of the package's importance-weighted estimate."""
    log_w = _t(log_w, True)
    nlgm.importance_weighted_log_likelihood(log_w).sum().backward()
    return log_w.grad.numpy()
