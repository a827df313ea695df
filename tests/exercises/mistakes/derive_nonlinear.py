"""Classic mistakes for book/exercises/derive_nonlinear.md: each function is right except for one error.

tests/exercises/test_autograder.py grades this file and checks that, for each function, a test whose
name starts with test_<function> fails and that its message contains the hint below.
"""
import numpy as np

HINTS = {
    "pushforward_logpdf": "forget the Jacobian",
    "kl_diag_gaussians": "swap the two Gaussians",
    "kl_std_normal_grads": "differentiate with respect to sigma^2 instead of log sigma^2",
    "elbo_reparam_grads": "forget the 1/2 in d sigma / d log sigma^2 = sigma / 2",
    "bernoulli_decoder_grads": "use sigmoid(l) - x",
    "iwae_logw_grads": "weight every sample by 1/S",
}


def pushforward_logpdf(x, s):
    # Mistake: the prior's density at z = f^{-1}(x), without the Jacobian |dz/dx|.
    z = np.arcsinh(np.asarray(x, dtype=float) / s)
    return -0.5 * (np.log(2 * np.pi) + z**2)


def kl_diag_gaussians(mu0, logvar0, mu1, logvar1):
    # Mistake: KL(q1 || q0) instead of KL(q0 || q1).
    return 0.5 * np.sum(np.exp(logvar1 - logvar0) + (mu1 - mu0) ** 2 / np.exp(logvar0) - 1
                        + logvar0 - logvar1, axis=1)


def kl_std_normal_grads(mu, logvar):
    # Mistake: d KL / d sigma^2 = (1 - 1 / sigma^2) / 2, not the derivative in s = log sigma^2.
    return mu, 0.5 * (1 - np.exp(-logvar))


def elbo_reparam_grads(X, mu, logvar, eps, A, D):
    # Mistake (the lecture's): d z / d s = sigma * eps, without the 1/2.
    sigma = np.exp(logvar / 2)
    z = mu + sigma * eps  # (J, N, K)
    g = ((X - z @ A.T) / D) @ A  # grad_z log p(x | z), (J, N, K)
    return g.mean(axis=0) - mu, (g * sigma * eps).mean(axis=0) - 0.5 * (np.exp(logvar) - 1)


def bernoulli_decoder_grads(X, Z, W, b):
    # Mistake: y - x, the gradient of the negative log-likelihood.
    Y = 1 / (1 + np.exp(-(Z @ W.T + b)))
    return (Y - X).T @ Z, (Y - X).sum(axis=0)


def iwae_logw_grads(log_w):
    # Mistake: every sample weighted 1/S, the gradient of the average of the log-weights.
    return np.full(np.shape(log_w), 1.0 / np.shape(log_w)[0])
