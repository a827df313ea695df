"""Reference solutions for book/exercises/vae.md (kept out of the book).

The package's ELBO pieces (nlgm.elbo, PyTorch in float64), converted from and to numpy; elbo_lgm,
which the package does not need, is written here.
"""
import numpy as np
import torch

import nlgm
from lgm.linear_gaussian import check_params


def _t(a):
    return torch.as_tensor(np.asarray(a, dtype=float))


def kl_to_standard_normal(mu, logvar):
    """Exercise 9.1."""
    return nlgm.kl_to_standard_normal(_t(mu), _t(logvar)).numpy()


def elbo_lgm(X, A, D, means, cov):
    """Exercise 9.2: E_q log p(x | z) - KL(q || N(0, I)) for q = N(means[n], cov), in closed form."""
    X, means, cov = np.asarray(X, float), np.asarray(means, float), np.asarray(cov, float)
    A, D = check_params(A, D, n_features=X.shape[1])
    K = A.shape[1]
    residual = X - means @ A.T
    spread = np.trace((A.T / D) @ A @ cov)  # tr(A^T D^{-1} A S)
    reconstruction = -0.5 * (X.shape[1] * np.log(2 * np.pi) + np.sum(np.log(D))
                             + np.sum(residual**2 / D, axis=1) + spread)
    kl = 0.5 * (np.trace(cov) + np.sum(means**2, axis=1) - K - np.linalg.slogdet(cov)[1])
    return reconstruction - kl


def reparam(mu, logvar, eps):
    """Exercise 10.1."""
    return nlgm.reparameterise(_t(mu), _t(logvar), _t(eps)).numpy()


def pathwise_grad(logvar, eps, grad_z):
    """Exercise 10.2: back-propagate grad_z through the package's reparameterisation, averaged over J."""
    logvar, eps, grad_z = _t(logvar).requires_grad_(), _t(eps), _t(grad_z)
    mu = torch.zeros_like(logvar, requires_grad=True)  # the gradient does not depend on mu's value
    z = nlgm.reparameterise(mu, logvar, eps)
    (torch.sum(z * grad_z) / eps.shape[0]).backward()
    return mu.grad.numpy(), logvar.grad.numpy()


def gaussian_nll(x, mean, logvar):
    """Exercise 11.1, Gaussian decoder."""
    return -nlgm.gaussian_log_likelihood(_t(x), _t(mean), _t(logvar)).numpy()


def bernoulli_nll(x, logits):
    """Exercise 11.1, Bernoulli decoder."""
    return -nlgm.bernoulli_log_likelihood(_t(x), _t(logits)).numpy()


def neg_elbo(X, mu, logvar, eps, A, logvar_x):
    """Exercise 11.2: the negative Monte Carlo ELBO of a linear Gaussian decoder."""
    mu, logvar = _t(mu), _t(logvar)
    z = nlgm.reparameterise(mu, logvar, _t(eps))  # (J, N, K)
    log_px_given_z = nlgm.gaussian_log_likelihood(_t(X), z @ _t(A).T, _t(logvar_x))  # (J, N)
    return -nlgm.monte_carlo_elbo(log_px_given_z, nlgm.kl_to_standard_normal(mu, logvar)).numpy()
