"""nlgm: the nonlinear road of the book, in PyTorch.

The nonlinear Gaussian model x = f(z; theta) + e with an encoder Q(z | x; phi), the variational
autoencoder, trained by the same "complete, then re-estimate" loop as ``lgm`` (:mod:`lgm.completion`).
"""
from nlgm.elbo import (
    bernoulli_log_likelihood,
    gaussian_log_likelihood,
    importance_log_weights,
    importance_weighted_log_likelihood,
    kl_to_standard_normal,
    monte_carlo_elbo,
    reparameterise,
    weighted_kl,
)
from nlgm.model import NLGM
from nlgm.train import ELBOAscent, History, fit

__all__ = [
    "NLGM",
    "ELBOAscent",
    "History",
    "fit",
    "bernoulli_log_likelihood",
    "gaussian_log_likelihood",
    "importance_log_weights",
    "importance_weighted_log_likelihood",
    "kl_to_standard_normal",
    "monte_carlo_elbo",
    "reparameterise",
    "weighted_kl",
]
