"""Diagnostics of posterior collapse: rate, distortion, active units, the aggregate posterior.

Chapter "Posterior collapse and the rate-distortion view" reads a trained NLGM through these
numbers. The ELBO of a data set splits into a distortion D and a rate R, ELBO = -(D + R); the rate
is a sum over the K latent units, and a unit whose rate is near zero has a posterior equal to the
prior for every x, so it carries no information about x. Each function takes a model and data
X of shape (N, d) and returns numpy values in nats, averaged over the N rows.
"""
import math

import numpy as np
import torch

from lgm.checks import check_positive, check_positive_int
from nlgm.elbo import gaussian_log_likelihood, kl_to_standard_normal, reparameterise
from nlgm.model import NLGM

_CHUNK = 256  # rows of z per block in the aggregate posterior's N x N log-densities


def _check_model(model):
    if not isinstance(model, NLGM):
        raise TypeError(f"model must be an nlgm.NLGM; got {type(model).__name__}.")
    return model


@torch.no_grad()
def unit_rates(model, X):
    """The rate of each latent unit: its KL to the prior, averaged over the data.

    Implements eq-rate-distortion unit by unit:
    R_k = (1/N) sum_n KL( q(z_k | x_n) || N(0, 1) ), in closed form (eq-kl-std-normal with K = 1).
    The rate R of eq-rate-distortion is their sum.

    Parameters
    ----------
    model : NLGM
    X : array_like or Tensor, shape (N, d)

    Returns
    -------
    ndarray, shape (K,), nats per data point
    """
    mu, logvar = _check_model(model).encode(X)
    per_unit = kl_to_standard_normal(mu.unsqueeze(-1), logvar.unsqueeze(-1))  # (N, K)
    return per_unit.mean(dim=0).cpu().double().numpy()


@torch.no_grad()
def rate_distortion(model, X, n_samples=10, *, generator=None):
    """The rate R and the distortion D of the model on X, with ELBO = -(D + R).

    Implements eq-rate-distortion:
    R = (1/N) sum_n KL( q(z | x_n) || p(z) ) in closed form, and
    D = -(1/N) sum_n E_q(z | x_n)[ log p(x_n | z) ], estimated with J = ``n_samples``
    reparameterised draws of z per row (eq-reparam).

    Parameters
    ----------
    model : NLGM
    X : array_like or Tensor, shape (N, d)
    n_samples : int
        J, the draws of z per row for the distortion.
    generator : torch.Generator, optional

    Returns
    -------
    rate, distortion : float
        Nats per data point. For a Gaussian decoder the distortion is a negative log-density and
        may be negative.
    """
    n_samples = check_positive_int(n_samples, "n_samples")
    x = _check_model(model).check_input(X, "X")
    mu, logvar = model.encode(x)
    eps = torch.randn((n_samples, *mu.shape), generator=generator, dtype=mu.dtype, device=mu.device)
    log_px = model.log_px_given_z(x, reparameterise(mu, logvar, eps))  # (J, N)
    rate = kl_to_standard_normal(mu, logvar).mean()
    return float(rate), float(-log_px.mean())


@torch.no_grad()
def unit_activity(model, X):
    """The activity of each latent unit: how much its posterior mean varies with x.

    Implements eq-active-units: A_k = Var_n( E_q[z_k | x_n] ), the variance over the N rows (divided
    by N) of the encoder's means (Burda et al., 2016).

    Parameters
    ----------
    model : NLGM
    X : array_like or Tensor, shape (N, d)

    Returns
    -------
    ndarray, shape (K,)
    """
    mu, _ = _check_model(model).encode(X)
    return mu.var(dim=0, unbiased=False).cpu().double().numpy()


def active_units(model, X, threshold=0.01):
    """The number of active latent units: those whose activity exceeds ``threshold``.

    Implements eq-active-units: #{k : A_k > threshold}, with Burda et al.'s (2016) threshold 0.01
    by default (see :func:`unit_activity`).

    Parameters
    ----------
    model : NLGM
    X : array_like or Tensor, shape (N, d)
    threshold : float > 0

    Returns
    -------
    int
    """
    threshold = check_positive(threshold, "threshold")
    return int(np.sum(unit_activity(model, X) > threshold))


@torch.no_grad()
def rate_decomposition(model, X, *, generator=None):
    """Split the rate into the mutual information I_q(x; z) and the marginal KL(q(z) || p(z)).

    Implements eq-rate-decomposition, R = I_q(x; z) + KL( q(z) || p(z) ), with q(z) = (1/N) sum_n
    q(z | x_n) the aggregate posterior over the rows of X. One draw z_n ~ q(z | x_n) per row gives
    the Monte Carlo estimates
    I = (1/N) sum_n [ log q(z_n | x_n) - log q(z_n) ] and
    KL = (1/N) sum_n [ log q(z_n) - log p(z_n) ],
    with log q(z) = logsumexp_m log q(z | x_m) - log N (N^2 K work, in blocks of rows). Their sum
    estimates R without bias; I is at most log N.

    Parameters
    ----------
    model : NLGM
    X : array_like or Tensor, shape (N, d)
    generator : torch.Generator, optional

    Returns
    -------
    mutual_information, marginal_kl : float
        Nats per data point.
    """
    mu, logvar = _check_model(model).encode(X)
    eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
    z = reparameterise(mu, logvar, eps)  # (N, K)
    log_q_own = gaussian_log_likelihood(z, mu, logvar)  # log q(z_n | x_n)
    log_q = torch.cat([
        torch.logsumexp(gaussian_log_likelihood(block.unsqueeze(1), mu, logvar), dim=1)
        for block in z.split(_CHUNK)
    ]) - math.log(len(z))  # log q(z_n), the aggregate posterior
    zero = torch.zeros((), dtype=z.dtype, device=z.device)
    log_prior = gaussian_log_likelihood(z, zero, zero)
    return float((log_q_own - log_q).mean()), float((log_q - log_prior).mean())
