"""The pieces of the evidence lower bound, as small pure functions of tensors.

Each function is one equation of chapters 9-12, written with the book's
symbols: ``mu`` and ``logvar`` are the mean and log-variance of the encoder's
diagonal Gaussian q(z | x), ``eps`` the standard-normal noise of the
reparameterisation, J the number of samples per data point. Shapes broadcast
over leading axes, so one call handles J samples of N points at once: a latent
sample tensor has shape (J, N, K) and a data tensor (N, d).

The model (:class:`nlgm.NLGM`) assembles these; exercises check students'
versions against them.
"""
import math

import torch
from torch.nn import functional as F

LOG_2PI = math.log(2.0 * math.pi)


def kl_to_standard_normal(mu, logvar):
    """KL from a diagonal Gaussian to the standard-normal prior, closed form.

    Implements eq-kl-std-normal:
    KL( N(mu, diag(sigma^2)) || N(0, I_K) )
        = 1/2 sum_k ( sigma_k^2 + mu_k^2 - 1 - log sigma_k^2 ).

    It is zero exactly when mu = 0 and sigma^2 = 1.

    Parameters
    ----------
    mu : Tensor, shape (..., K)
        Means of q(z | x).
    logvar : Tensor, shape (..., K)
        Log-variances log sigma^2 of q(z | x).

    Returns
    -------
    Tensor, shape (...)
        One KL value (nats) per distribution, e.g. (N,) for N data points.
    """
    return 0.5 * torch.sum(torch.exp(logvar) + mu**2 - 1.0 - logvar, dim=-1)


def weighted_kl(mu, logvar, *, beta=1.0, free_bits=0.0):
    """The KL term of a batch's training objective, weighted by beta, with free bits.

    Without free bits (``free_bits=0``) it is beta times the mean over the batch of
    eq-kl-std-normal, so the objective mean(ELBO) is the ELBO's when beta = 1. With
    free bits lambda > 0 (Kingma et al. 2016), each latent unit k is charged at least lambda
    nats: beta sum_k max(lambda, (1/N) sum_n KL_nk), where KL_nk is the KL of unit k alone
    (eq-kl-std-normal with K = 1). A unit whose mean KL is below lambda then gets no gradient
    towards the prior, so the encoder is not pushed to switch it off.

    Parameters
    ----------
    mu, logvar : Tensor, shape (N, K)
    beta : float or 0-d Tensor
        The KL weight (1: the ELBO).
    free_bits : float
        lambda, nats per latent unit (0: none).

    Returns
    -------
    Tensor, 0-d
    """
    if free_bits == 0:
        return beta * kl_to_standard_normal(mu, logvar).mean()
    # each unit as a one-dimensional Gaussian: shape (N, K)
    per_unit = kl_to_standard_normal(mu.unsqueeze(-1), logvar.unsqueeze(-1))
    return beta * torch.clamp(per_unit.mean(dim=0), min=free_bits).sum()


def reparameterise(mu, logvar, eps):
    """Reparameterised samples of q(z | x), differentiable in (mu, logvar).

    Implements eq-reparam: z = mu + sigma * eps with sigma = exp(logvar / 2),
    elementwise. The randomness is all in ``eps``, so dz/dmu = 1 and
    dz/dsigma = eps, and gradients of any f(z) flow back to the encoder that
    produced mu and logvar.

    Parameters
    ----------
    mu, logvar : Tensor, shape (N, K)
    eps : Tensor, shape (N, K) or (J, N, K)
        Draws of N(0, I_K); a leading axis J gives J samples per data point.

    Returns
    -------
    Tensor, shape of ``eps``
    """
    return mu + torch.exp(0.5 * logvar) * eps


def gaussian_log_likelihood(x, mean, logvar):
    """Log-density of x under a diagonal Gaussian, summed over the coordinates.

    Implements eq-gaussian-decoder:
    log N(x; f, diag(D))
        = -1/2 sum_i [ log 2pi + log D_i + (x_i - f_i)^2 / D_i ].

    Used for the decoder p(x | z) = N(x; f(z), D), and also for the prior
    N(z; 0, I) and the encoder's density q(z | x) in the importance weights.

    Parameters
    ----------
    x : Tensor, shape (..., d)
    mean : Tensor, broadcastable to x
        f(z), e.g. shape (J, N, d) for J samples per data point.
    logvar : Tensor, broadcastable to x
        log D: shape (d,) for a diagonal noise, (1,) for isotropic noise
        sigma^2 I.

    Returns
    -------
    Tensor, the broadcast shape without the last axis, e.g. (J, N)
    """
    return -0.5 * torch.sum(
        LOG_2PI + logvar + (x - mean) ** 2 * torch.exp(-logvar), dim=-1
    )


def bernoulli_log_likelihood(x, logits):
    """Log-probability of binary x under independent Bernoullis, summed.

    Implements eq-bernoulli-decoder:
    log p(x | z) = sum_i [ x_i log y_i + (1 - x_i) log(1 - y_i) ]
    with y = sigmoid(logits), computed as
    sum_i [ x_i eta_i - softplus(eta_i) ] with the logits eta = f(z) and
    softplus(eta) = log(1 + e^eta), which is exact and stable for logits of
    any size. ``F.softplus`` returns eta itself above its ``threshold``; at
    the default 20 that drops up to 2e-9 and makes the gradient x - 1
    instead of x - sigmoid(eta) there, so the
    threshold is 40, where e^-40 ~ 4e-18 is below float64's rounding.

    For x outside {0, 1} (grey levels) this is not a normalised probability,
    and the value is not comparable with the log-density of a Gaussian model.

    Parameters
    ----------
    x : Tensor, shape (..., d), entries in {0, 1}
    logits : Tensor, broadcastable to x
        The decoder's output before the sigmoid.

    Returns
    -------
    Tensor, the broadcast shape without the last axis, e.g. (J, N)
    """
    return torch.sum(x * logits - F.softplus(logits, threshold=40.0), dim=-1)


def monte_carlo_elbo(log_px_given_z, kl):
    """The Monte Carlo ELBO of each data point from J samples.

    Implements eq-elbo-mc:
    ELBO(x) ~ (1/J) sum_j log p(x | z_j) - KL( q(z | x) || N(0, I) ).

    The reconstruction term is *averaged* over the J samples of each x, so the
    KL keeps its weight whatever J is.

    Parameters
    ----------
    log_px_given_z : Tensor, shape (J, N)
        log p(x_n | z_nj) for the J samples of each of N points.
    kl : Tensor, shape (N,)
        From :func:`kl_to_standard_normal`.

    Returns
    -------
    Tensor, shape (N,)
    """
    return log_px_given_z.mean(dim=0) - kl


def importance_log_weights(log_px_given_z, z, mu, logvar):
    """Log importance weights log w = log p(x | z) + log p(z) - log q(z | x).

    Parameters
    ----------
    log_px_given_z : Tensor, shape (S, N)
    z : Tensor, shape (S, N, K)
        Samples of q(z | x).
    mu, logvar : Tensor, shape (N, K)
        The encoder's q(z | x), the proposal.

    Returns
    -------
    Tensor, shape (S, N)
    """
    zero = torch.zeros((), dtype=z.dtype, device=z.device)
    log_prior = gaussian_log_likelihood(z, zero, zero)
    log_q = gaussian_log_likelihood(z, mu, logvar)
    return log_px_given_z + log_prior - log_q


def importance_weighted_log_likelihood(log_w):
    """Estimate log p(x) from S importance weights, stably.

    Implements eq-iw-loglik:
    log p(x) ~ log (1/S) sum_s w_s = logsumexp_s(log w_s) - log S.

    The average of the weights is unbiased for p(x); its log is biased low,
    rises with S towards log p(x), and equals the ELBO's Monte Carlo estimate
    for S = 1.

    Parameters
    ----------
    log_w : Tensor, shape (S, N)
        From :func:`importance_log_weights`.

    Returns
    -------
    Tensor, shape (N,)
    """
    return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])
