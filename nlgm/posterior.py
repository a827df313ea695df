"""Approximate posteriors q(z | x) richer than a diagonal Gaussian.

The encoder outputs the mean mu and log-variances logvar of a Gaussian, and for the richer
families a few more numbers per data point ("extra"). A family turns them and standard-normal
noise eps into samples z of q(z | x), the log-density log q(z | x) of each sample (for the
importance weights of eq-iw-loglik) and the KL term of the ELBO:

- ``"diagonal"``: q = N(mu, diag(exp(logvar))) (eq-reparam, eq-kl-std-normal), the book's VAE;
- ``"full"``: q = N(mu, L L^T) with a Cholesky factor L from the encoder (eq-full-q,
  eq-kl-full);
- ``"iaf"``: the diagonal Gaussian pushed through an inverse autoregressive flow
  (Kingma et al. 2016; eq-iaf-step, eq-iaf-log-q), whose KL has no closed form and is
  estimated from the samples, log q(z | x) - log p(z).

Shapes: mu and logvar (N, K); eps and z (J, N, K) for J samples of N points; log q (J, N).
"""
import torch
from torch import nn
from torch.nn import functional as F

from nlgm.elbo import LOG_2PI, gaussian_log_likelihood, kl_to_standard_normal, reparameterise

POSTERIORS = ("diagonal", "full", "iaf")

#: Inverse autoregressive flow: the number of steps T, the hidden units of each step's
#: autoregressive network per latent variable, and the initial bias of its gate (sigmoid(2) =
#: 0.88, so each step starts close to the identity, as Kingma et al. 2016 advise).
IAF_STEPS, IAF_WIDTH_PER_LATENT, IAF_GATE_BIAS = 2, 8, 2.0


def cholesky_factor(logvar, lower):
    """L = diag(sigma) + the strictly lower triangle, a Cholesky factor of q's covariance.

    Implements eq-full-q: the diagonal L_kk = sigma_k = exp(logvar_k / 2) > 0, so L L^T is
    positive definite whatever the encoder outputs.

    Parameters
    ----------
    logvar : Tensor, shape (..., K)
        log L_kk^2.
    lower : Tensor, shape (..., K (K - 1) / 2)
        The entries below the diagonal, row by row.

    Returns
    -------
    Tensor, shape (..., K, K), lower triangular
    """
    K = logvar.shape[-1]
    rows, cols = torch.tril_indices(K, K, offset=-1, device=logvar.device)
    strictly_lower = lower.new_zeros((*lower.shape[:-1], K, K))
    strictly_lower[..., rows, cols] = lower
    return torch.diag_embed(torch.exp(0.5 * logvar)) + strictly_lower


def full_gaussian_log_density(z, mu, L):
    """log N(z; mu, L L^T) for a lower-triangular L with a positive diagonal.

    Implements eq-full-q's density:
    log q(z) = -1/2 |L^-1 (z - mu)|^2 - K/2 log 2pi - sum_k log L_kk,
    the log-determinant from the diagonal of L alone.

    Parameters
    ----------
    z : Tensor, shape (J, N, K) or (N, K)
    mu : Tensor, shape (N, K)
    L : Tensor, shape (N, K, K)

    Returns
    -------
    Tensor, shape (J, N) or (N,)
    """
    eps = torch.linalg.solve_triangular(L, (z - mu).unsqueeze(-1), upper=False).squeeze(-1)
    log_det = torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)
    return -0.5 * (eps**2).sum(-1) - 0.5 * z.shape[-1] * LOG_2PI - log_det


def kl_full_to_standard_normal(mu, L):
    """KL( N(mu, L L^T) || N(0, I_K) ), closed form.

    Implements eq-kl-full:
    1/2 ( tr(L L^T) + mu^T mu - K - 2 sum_k log L_kk ), with tr(L L^T) = sum_ij L_ij^2.
    For a diagonal L it is eq-kl-std-normal.

    Parameters
    ----------
    mu : Tensor, shape (N, K)
    L : Tensor, shape (N, K, K), lower triangular with a positive diagonal

    Returns
    -------
    Tensor, shape (N,)
    """
    log_det = torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)
    return 0.5 * ((L**2).sum((-2, -1)) + (mu**2).sum(-1) - mu.shape[-1] - 2 * log_det)


def log_prior(z):
    """log N(z; 0, I_K) of samples z, shape z.shape[:-1] (eq-gaussian-decoder's formula)."""
    zero = torch.zeros((), dtype=z.dtype, device=z.device)
    return gaussian_log_likelihood(z, zero, zero)


class Completion(tuple):
    """The completion (mu, logvar, z) of :meth:`nlgm.NLGM.complete`, with its KL term.

    A tuple of three, so ``mu, logvar, z = completion`` works whatever the posterior.

    Attributes
    ----------
    kl : Tensor, shape (N,)
        KL( q(z | x) || N(0, I) ) of each row: closed form, or a Monte Carlo estimate from z.
    """

    def __new__(cls, mu, logvar, z, *, kl):
        completion = super().__new__(cls, (mu, logvar, z))
        completion.kl = kl
        return completion


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed 0/1 mask (MADE, Germain et al. 2015).

    Parameters
    ----------
    mask : Tensor, shape (n_out, n_in)
    """

    def __init__(self, mask):
        super().__init__(mask.shape[1], mask.shape[0])
        self.register_buffer("mask", mask.to(self.weight.dtype))

    def forward(self, x):
        return F.linear(x, self.weight * self.mask, self.bias)


class IAFStep(nn.Module):
    """One step of an inverse autoregressive flow, in the gated form.

    Implements eq-iaf-step: (m, s) = MADE(z, h), sigma = sigmoid(s), and
    z <- sigma * z + (1 - sigma) * m, whose Jacobian is lower triangular with diagonal sigma,
    so log |det dz_new / dz| = sum_k log sigma_k. The network is autoregressive: m_k and s_k
    depend on z_1..z_{k-1} (and on the encoder's context h) only.

    Parameters
    ----------
    latent_dim : int
        K.
    width : int
        Hidden units of the autoregressive network.
    context_dim : int
        Size of the context h from the encoder.
    """

    def __init__(self, latent_dim, width, context_dim):
        super().__init__()
        degree_in = torch.arange(1, latent_dim + 1)
        degree_hidden = torch.arange(width) % max(latent_dim - 1, 1) + 1
        self.hidden = MaskedLinear(degree_hidden[:, None] >= degree_in[None, :])
        self.context = nn.Linear(context_dim, width, bias=False)
        out_mask = degree_in[:, None] > degree_hidden[None, :]  # strictly: m_k sees z_<k
        self.shift = MaskedLinear(out_mask)
        self.gate = MaskedLinear(out_mask)
        with torch.no_grad():
            self.gate.bias.fill_(IAF_GATE_BIAS)

    def forward(self, z, h):
        """The new z and log |det dz_new / dz|.

        Parameters
        ----------
        z : Tensor, shape (..., N, K)
        h : Tensor, shape (N, context_dim)

        Returns
        -------
        z : Tensor, shape of z
        log_det : Tensor, shape (..., N)
        """
        a = F.elu(self.hidden(z) + self.context(h))
        m, s = self.shift(a), self.gate(a)
        sigma = torch.sigmoid(s)
        return sigma * z + (1 - sigma) * m, F.logsigmoid(s).sum(-1)


class DiagonalPosterior(nn.Module):
    """q(z | x) = N(mu, diag(exp(logvar))) (eq-reparam, eq-kl-std-normal); no extra outputs."""

    def extra_outputs(self, latent_dim):
        """How many numbers per data point the encoder adds to (mu, logvar)."""
        return 0

    def sample(self, mu, logvar, extra, eps):
        """Samples z of q(z | x) and their log q(z | x).

        Parameters
        ----------
        mu, logvar : Tensor, shape (N, K)
        extra : Tensor, shape (N, extra_outputs)
        eps : Tensor, shape (J, N, K), standard normal

        Returns
        -------
        z : Tensor, shape (J, N, K)
        log_q : Tensor, shape (J, N)
        """
        z = reparameterise(mu, logvar, eps)
        return z, gaussian_log_likelihood(z, mu, logvar)

    def kl(self, mu, logvar, extra, z, log_q):
        """KL( q(z | x) || N(0, I) ) of each data point, shape (N,)."""
        return kl_to_standard_normal(mu, logvar)

    def centre(self, mu, logvar, extra):
        """The sample at eps = 0, shape (N, K): mu for a Gaussian q."""
        return mu


class FullPosterior(DiagonalPosterior):
    """q(z | x) = N(mu, L L^T), L = diag(exp(logvar / 2)) + the encoder's strictly lower part.

    Implements eq-full-q and eq-kl-full; the encoder adds K (K - 1) / 2 outputs.

    The KL's value is the closed form eq-kl-full; its gradient is that of the samples'
    log q(z | x) - log p(z) with q's parameters held fixed inside log q (the "path derivative"
    of Roeder et al. 2017, eq-stl). Both are unbiased for the ELBO's gradient, but the path
    derivative is exactly zero for every sample once q is the exact posterior, so training
    settles there instead of jittering around it.
    """

    def extra_outputs(self, latent_dim):
        return latent_dim * (latent_dim - 1) // 2

    def sample(self, mu, logvar, extra, eps):
        L = cholesky_factor(logvar, extra)
        z = mu + (L @ eps.unsqueeze(-1)).squeeze(-1)
        return z, full_gaussian_log_density(z, mu, L)

    def kl(self, mu, logvar, extra, z, log_q):
        L = cholesky_factor(logvar, extra)
        closed = kl_full_to_standard_normal(mu, L)
        path = (full_gaussian_log_density(z, mu.detach(), L.detach()) - log_prior(z)).mean(0)
        return closed.detach() + (path - path.detach())


class IAFPosterior(DiagonalPosterior):
    """The diagonal Gaussian pushed through ``IAF_STEPS`` steps of an inverse autoregressive flow.

    Implements eq-iaf-log-q: z_0 = mu + sigma * eps, z_t = IAFStep_t(z_{t-1}, h) and
    log q(z_T | x) = log N(z_0; mu, diag(sigma^2)) - sum_t sum_k log sigma_tk. The encoder adds
    a context h of K numbers that every step sees. All steps use the same order of the
    latent variables, so dz_T / deps is lower triangular. The KL term is the Monte Carlo
    average of log q(z_T | x) - log N(z_T; 0, I) over the J samples.

    Parameters
    ----------
    latent_dim : int
        K.
    """

    def __init__(self, latent_dim):
        super().__init__()
        self.steps = nn.ModuleList(
            IAFStep(latent_dim, IAF_WIDTH_PER_LATENT * latent_dim, latent_dim)
            for _ in range(IAF_STEPS))

    def extra_outputs(self, latent_dim):
        return latent_dim

    def sample(self, mu, logvar, extra, eps):
        z = reparameterise(mu, logvar, eps)
        log_q = gaussian_log_likelihood(z, mu, logvar)
        for step in self.steps:
            z, log_det = step(z, extra)
            log_q = log_q - log_det
        return z, log_q

    def kl(self, mu, logvar, extra, z, log_q):
        return (log_q - log_prior(z)).mean(0)

    def centre(self, mu, logvar, extra):
        """mu pushed through the flow."""
        return self.sample(mu, logvar, extra, torch.zeros_like(mu))[0]


def make_posterior(kind, latent_dim):
    """The family of q(z | x) named ``kind`` ("diagonal", "full" or "iaf") for K = latent_dim."""
    if kind == "full":
        return FullPosterior()
    if kind == "iaf":
        return IAFPosterior(latent_dim)
    return DiagonalPosterior()

