"""A derive_nonlinear submission that derives nothing (issue 20.7): every quantity by a numerical method.

KLs by Gauss-Hermite quadrature of their definition, every gradient by complex-step differentiation
of the objective written from its definition, the pushforward density by differentiating its
distribution function. The grader must give it at most 10% of the page
(tests/exercises/test_derivations.py). The block between the two ``# -- numerical tools``
lines is swapped there for central differences and quadrature nodes computed with numpy, so that
refusing complex numbers and numpy.polynomial is not the only defence.
"""
import numpy as np
from scipy import stats

# -- numerical tools: begin


def _derivative(f, x, direction):
    """Complex step: the imaginary part of f(x + i h e) / h is f'(x) e to rounding."""
    h = 1e-30
    return np.imag(f(x + 1j * h * direction)) / h


def _cdf(t, s):
    """P(X <= t) = Phi(arsinh(t / s)); Phi is analytic, Phi(a + i b) ~ Phi(a) + i b phi(a) for tiny b."""
    a = np.arcsinh(t / s)
    return stats.norm.cdf(a.real) + 1j * a.imag * stats.norm.pdf(a.real)


_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(20)  # E[g(Z)] = sum_i w_i g(t_i) / sqrt(2 pi)
# -- numerical tools: end


def _expect(g):
    """E[g(Z)] for Z ~ N(0, 1), by Gauss-Hermite quadrature (g broadcasts over a leading axis)."""
    return np.tensordot(_WEIGHTS, g(_NODES.reshape(-1, *([1] * 2))), axes=1) / np.sqrt(2 * np.pi)


def _log_normal(z, m, v):
    return -0.5 * (np.log(2 * np.pi * v) + (z - m) ** 2 / v)


def _entrywise_gradient(f, x):
    """f maps an array to an array of the same leading shape, entry by entry: one derivative per entry."""
    x = np.asarray(x, dtype=float)
    return _derivative(f, x, np.ones_like(x))


def pushforward_logpdf(x, s):
    # p(x) = d/dx P(X <= x), with P(X <= x) = Phi(arsinh(x / s)): differentiate the distribution function.
    x = np.asarray(x, dtype=float)
    scale = np.maximum(1.0, np.abs(x))
    return np.log(_derivative(lambda t: _cdf(t, s), x, scale) / scale)


def kl_diag_gaussians(mu0, logvar0, mu1, logvar1):
    mu0, s0, mu1, s1 = (np.asarray(a, dtype=float) for a in (mu0, logvar0, mu1, logvar1))
    sd0 = np.exp(s0 / 2)
    g = lambda t: _log_normal(mu0 + sd0 * t, mu0, np.exp(s0)) - _log_normal(mu0 + sd0 * t, mu1, np.exp(s1))
    return _expect(g).sum(axis=-1)


def _kl_prior(mu, s):
    sd = np.exp(s / 2)
    return _expect(lambda t: _log_normal(mu + sd * t, mu, np.exp(s)) - _log_normal(mu + sd * t, 0.0, 1.0))


def kl_std_normal_grads(mu, logvar):
    mu, s = np.asarray(mu, dtype=float), np.asarray(logvar, dtype=float)
    return (_entrywise_gradient(lambda m: _kl_prior(m, s), mu), _entrywise_gradient(lambda v: _kl_prior(mu, v), s))


def elbo_reparam_grads(X, mu, logvar, eps, A, D):
    X, mu, s, eps, A, D = (np.asarray(a, dtype=float) for a in (X, mu, logvar, eps, A, D))

    def elbo(m, v):  # one value per row
        z = m + np.exp(v / 2) * eps
        log_px = _log_normal(X, z @ A.T, D).sum(axis=-1)
        return log_px.mean(axis=0) - _kl_prior(m, v).sum(axis=-1)

    K = mu.shape[1]
    g_mu, g_s = np.zeros_like(mu), np.zeros_like(s)
    for k in range(K):  # one direction per coordinate, all rows at once (the rows are independent)
        E = np.zeros_like(mu)
        E[:, k] = 1.0
        g_mu[:, k] = _derivative(lambda m: elbo(m, s), mu, E)
        g_s[:, k] = _derivative(lambda v: elbo(mu, v), s, E)
    return g_mu, g_s


def _bernoulli_loglik(X, Z, W, b):
    L = Z @ W.T + b
    return np.sum(X * L - np.logaddexp(0, L)) if not np.iscomplexobj(L) else np.sum(X * L - np.log(1 + np.exp(L)))


def bernoulli_decoder_grads(X, Z, W, b):
    X, Z, W, b = (np.asarray(a, dtype=float) for a in (X, Z, W, b))
    gW, gb = np.zeros_like(W), np.zeros_like(b)
    for i in np.ndindex(W.shape):
        E = np.zeros_like(W)
        E[i] = 1.0
        gW[i] = _derivative(lambda M: _bernoulli_loglik(X, Z, M, b), W, E)
    for i in range(len(b)):
        E = np.zeros_like(b)
        E[i] = 1.0
        gb[i] = _derivative(lambda v: _bernoulli_loglik(X, Z, W, v), b, E)
    return gW, gb


def iwae_logw_grads(log_w):
    log_w = np.asarray(log_w, dtype=float)

    def estimate(lw):  # one value per column
        top = np.max(lw.real, axis=0)
        return top + np.log(np.mean(np.exp(lw - top), axis=0))

    G = np.zeros_like(log_w)
    for s in range(log_w.shape[0]):
        E = np.zeros_like(log_w)
        E[s] = 1.0
        G[s] = _derivative(estimate, log_w, E)
    return G
