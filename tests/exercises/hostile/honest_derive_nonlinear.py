"""A student's derive_nonlinear submission: every formula derived on paper, written with numpy.

The grader must give it full marks under every draw of the inputs (tests/exercises/test_derivations.py):
the tolerances that refuse numerical stand-ins must not refuse the rounding of an honest formula.
"""
import numpy as np
from scipy.special import logsumexp


def pushforward_logpdf(x, s):
    x = np.asarray(x, dtype=float)
    z = np.arcsinh(x / s)
    return -0.5 * (np.log(2 * np.pi) + z**2) - 0.5 * np.log(s**2 + x**2)


def kl_diag_gaussians(mu0, logvar0, mu1, logvar1):
    mu0, s0, mu1, s1 = (np.asarray(a, dtype=float) for a in (mu0, logvar0, mu1, logvar1))
    return 0.5 * np.sum(np.exp(s0 - s1) + (mu0 - mu1) ** 2 * np.exp(-s1) - 1 - s0 + s1, axis=-1)


def kl_std_normal_grads(mu, logvar):
    mu, s = np.asarray(mu, dtype=float), np.asarray(logvar, dtype=float)
    return mu.copy(), 0.5 * np.expm1(s)


def elbo_reparam_grads(X, mu, logvar, eps, A, D):
    X, mu, s, eps, A, D = (np.asarray(a, dtype=float) for a in (X, mu, logvar, eps, A, D))
    sigma = np.exp(s / 2)
    z = mu + sigma * eps  # (J, N, K)
    g = ((X - z @ A.T) / D) @ A  # gradient of log p(x | z) in z, (J, N, K)
    return g.mean(axis=0) - mu, (g * eps).mean(axis=0) * sigma / 2 - 0.5 * np.expm1(s)


def bernoulli_decoder_grads(X, Z, W, b):
    X, Z, W, b = (np.asarray(a, dtype=float) for a in (X, Z, W, b))
    L = Z @ W.T + b
    E = X - np.exp(-np.logaddexp(0, -L))  # x - sigmoid(l), without overflow
    return E.T @ Z, E.sum(axis=0)


def iwae_logw_grads(log_w):
    log_w = np.asarray(log_w, dtype=float)
    return np.exp(log_w - logsumexp(log_w, axis=0, keepdims=True))
