"""Classic mistakes for book/exercises/vae.md: each function is right except for one classic error.

tests/exercises/test_autograder.py grades this file and checks that, for each function, a test whose
name starts with test_<function> fails and that its message contains the hint below.
"""
import numpy as np

HINTS = {
    "kl_to_standard_normal": "the lecture's garbled formula",
    "elbo_lgm": "forget the trace term",
    "reparam": "instead of the standard deviation exp(logvar / 2)",
    "pathwise_grad": "without the 1/2",
    "gaussian_nll": "drop the normalising terms",
    "bernoulli_nll": "Use the stable form softplus(l) - x l",
    "neg_elbo": "instead of averaging them",
}


def kl_to_standard_normal(mu, logvar):
    # Mistake (the lecture's): the garbled 1/2 (tr Sigma + mu^T (mu - d - log|Sigma|)), with K for d.
    K = mu.shape[1]
    return 0.5 * (np.exp(logvar).sum(axis=1) + np.sum(mu**2, axis=1) - (K + logvar.sum(axis=1)) * mu.sum(axis=1))


def elbo_lgm(X, A, D, means, cov):
    # Mistake: the expected reconstruction plugs in the mean m and forgets tr(A^T D^{-1} A S).
    d, K = A.shape
    R = X - means @ A.T
    rec = -0.5 * (d * np.log(2 * np.pi) + np.sum(np.log(D)) + np.sum(R**2 / D, axis=1))
    kl = 0.5 * (np.trace(cov) + np.sum(means**2, axis=1) - K - np.linalg.slogdet(cov)[1])
    return rec - kl


def reparam(mu, logvar, eps):
    # Mistake: the noise is scaled by the variance instead of the standard deviation.
    return mu + np.exp(logvar) * eps


def pathwise_grad(logvar, eps, grad_z):
    # Mistake (the lecture's diag(eps) Sigma^{1/2}): d z / d logvar taken as sigma eps, without the 1/2.
    sigma = np.exp(logvar / 2)
    return grad_z.mean(axis=0), np.mean(grad_z * eps, axis=0) * sigma


def gaussian_nll(x, mean, logvar):
    # Mistake: the squared error alone, without the normalising terms log 2 pi + logvar.
    return 0.5 * np.sum((x - mean) ** 2 / np.exp(logvar), axis=-1)


def bernoulli_nll(x, logits):
    # Mistake: the textbook formula through sigmoid and log, which breaks for large |logits|.
    y = 1 / (1 + np.exp(-logits))
    return -np.sum(x * np.log(y) + (1 - x) * np.log(1 - y), axis=-1)


def neg_elbo(X, mu, logvar, eps, A, logvar_x):
    # Mistake (the lecture's): the reconstruction terms are summed over the J samples, not averaged.
    z = mu + np.exp(logvar / 2) * eps
    rec = 0.5 * np.sum(np.log(2 * np.pi) + logvar_x + (X - z @ A.T) ** 2 / np.exp(logvar_x), axis=-1)
    kl = 0.5 * np.sum(np.exp(logvar) + mu**2 - 1 - logvar, axis=1)
    return rec.sum(axis=0) + kl
