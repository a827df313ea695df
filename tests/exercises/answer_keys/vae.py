"""Answer key of book/exercises/vae.md: numpy and scipy only (never lgm, nlgm)."""
import numpy as np
from scipy.special import log_expit

LOG_2PI = np.log(2 * np.pi)


def kl_to_standard_normal(mu, logvar):
    """Exercise 9.1: 1/2 sum_k (exp(s_k) + mu_k^2 - 1 - s_k) per row."""
    mu, logvar = np.asarray(mu, float), np.asarray(logvar, float)
    return 0.5 * np.sum(np.exp(logvar) + mu**2 - 1.0 - logvar, axis=-1)


def elbo_lgm(X, A, D, means, cov):
    """Exercise 9.2: E_q log p(x | z) - KL(q || N(0, I)) for q = N(means[n], cov), in closed form."""
    X, A, D, means, cov = (np.asarray(a, float) for a in (X, A, D, means, cov))
    K = A.shape[1]
    residual = X - means @ A.T
    spread = np.trace((A.T / D) @ A @ cov)  # tr(A^T D^{-1} A S)
    reconstruction = -0.5 * (X.shape[1] * LOG_2PI + np.sum(np.log(D)) + np.sum(residual**2 / D, axis=1) + spread)
    kl = 0.5 * (np.trace(cov) + np.sum(means**2, axis=1) - K - np.linalg.slogdet(cov)[1])
    return reconstruction - kl


def reparam(mu, logvar, eps):
    """Exercise 10.1: z = mu + exp(logvar / 2) eps."""
    return np.asarray(mu, float) + np.exp(0.5 * np.asarray(logvar, float)) * np.asarray(eps, float)


def pathwise_grad(logvar, eps, grad_z):
    """Exercise 10.2: dz/dmu = 1 and dz/ds = 1/2 exp(s / 2) eps, averaged over the J samples."""
    logvar, eps, grad_z = (np.asarray(a, float) for a in (logvar, eps, grad_z))
    J = eps.shape[0]
    return grad_z.sum(axis=0) / J, np.sum(grad_z * 0.5 * np.exp(0.5 * logvar) * eps, axis=0) / J


def gaussian_nll(x, mean, logvar):
    """Exercise 11.1: -log N(x; mean, diag(exp(logvar))) summed over the last axis."""
    x, mean, logvar = (np.asarray(a, float) for a in (x, mean, logvar))
    return 0.5 * np.sum(LOG_2PI + logvar + (x - mean) ** 2 * np.exp(-logvar), axis=-1)


def bernoulli_nll(x, logits):
    """Exercise 11.1: -sum [x log sigmoid(l) + (1 - x) log sigmoid(-l)], stable for large |l|."""
    x, logits = np.asarray(x, float), np.asarray(logits, float)
    return -np.sum(x * log_expit(logits) + (1 - x) * log_expit(-logits), axis=-1)


def neg_elbo(X, mu, logvar, eps, A, logvar_x):
    """Exercise 11.2: -(mean over J of log p(x | z_j) - KL(q || N(0, I))) with z_j = mu + sigma eps_j."""
    z = reparam(mu, logvar, eps)  # (J, N, K)
    log_px = -gaussian_nll(np.asarray(X, float), z @ np.asarray(A, float).T, logvar_x)  # (J, N)
    return -(log_px.mean(axis=0) - kl_to_standard_normal(mu, logvar))
