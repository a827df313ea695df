"""Answer key of book/exercises/derive_nonlinear.md: the derived formulas in numpy (no torch, no autograd).

Each function is the result of the worked derivation in book/solutions/derive_nonlinear.md.
"""
import numpy as np
from scipy.special import expit, softmax

LOG_2PI = np.log(2 * np.pi)


def pushforward_logpdf(x, s):
    """D8.1: z = arsinh(x / s), |dz/dx| = 1 / sqrt(s^2 + x^2)."""
    x = np.asarray(x, dtype=float)
    z = np.arcsinh(x / s)
    return -0.5 * (LOG_2PI + z**2) - 0.5 * np.log(s**2 + x**2)


def kl_diag_gaussians(mu0, logvar0, mu1, logvar1):
    """D9.1: 1/2 sum_k [exp(s0 - s1) + (mu1 - mu0)^2 exp(-s1) - 1 + s1 - s0], per row."""
    mu0, logvar0, mu1, logvar1 = (np.asarray(a, float) for a in (mu0, logvar0, mu1, logvar1))
    return 0.5 * np.sum(np.exp(logvar0 - logvar1) + (mu1 - mu0) ** 2 * np.exp(-logvar1) - 1.0 + logvar1 - logvar0,
                        axis=-1)


def kl_std_normal_grads(mu, logvar):
    """D9.2: dKL/dmu = mu, dKL/ds = (exp(s) - 1) / 2."""
    mu, logvar = np.asarray(mu, float), np.asarray(logvar, float)
    return mu.copy(), 0.5 * (np.exp(logvar) - 1.0)


def elbo_reparam_grads(X, mu, logvar, eps, A, D):
    """D10.1: with g_j = A^T D^{-1} (x - A z_j) at z_j = mu + exp(s/2) eps_j: dmu = mean_j g_j - mu and
    ds = mean_j g_j exp(s/2) eps_j / 2 - (exp(s) - 1) / 2."""
    X, mu, logvar, eps, A, D = (np.asarray(a, float) for a in (X, mu, logvar, eps, A, D))
    sigma = np.exp(0.5 * logvar)
    z = mu + sigma * eps  # (J, N, K)
    g = ((X - z @ A.T) / D) @ A  # (J, N, K)
    grad_mu = g.mean(axis=0) - mu
    grad_logvar = 0.5 * (g * sigma * eps).mean(axis=0) - 0.5 * (np.exp(logvar) - 1.0)
    return grad_mu, grad_logvar


def bernoulli_decoder_grads(X, Z, W, b):
    """D11.1: with logits L = Z W^T + b, d/dL = X - sigmoid(L): dW = (X - sigmoid(L))^T Z, db = its column sums."""
    X, Z, W, b = (np.asarray(a, float) for a in (X, Z, W, b))
    residual = X - expit(Z @ W.T + b)
    return residual.T @ Z, residual.sum(axis=0)


def iwae_logw_grads(log_w):
    """D12.1: the gradient of logsumexp - log S is the softmax of the log-weights over the S samples."""
    return softmax(np.asarray(log_w, float), axis=0)
