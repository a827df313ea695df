"""A derive_linear submission that derives nothing (issue 20.7): every quantity by a numerical method.

Gradients by complex-step differentiation of the log-likelihood written from its definition,
maximisers by scipy.optimize run on the objective, the PCA error by scikit-learn's reconstruction,
the posterior moments by conditioning the (K + d)-dimensional joint Gaussian. The grader must give
it at most 10% of the page (tests/exercises/test_derivations.py). The block between the two
``# -- numerical tools`` lines is swapped there for central differences and a hand-written
quasi-Newton method, so that refusing complex numbers and scipy.optimize is not the only defence.
"""
import numpy as np
from sklearn.decomposition import PCA

# -- numerical tools: begin
from scipy import optimize


def _derivative(f, x, direction):
    """Complex step: the imaginary part of f(x + i h e) / h is f'(x) e to rounding."""
    h = 1e-30
    return np.imag(f(x + 1j * h * direction)) / h


def _minimize(f, x0):
    return optimize.minimize(f, x0, jac=lambda t: _gradient(f, t), method="BFGS", options={"gtol": 1e-10}).x


# -- numerical tools: end


def _gradient(f, x):
    x = np.asarray(x, dtype=float)
    G = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        E = np.zeros_like(x)
        E[i] = 1.0
        G[i] = _derivative(f, x, E)
    return G


def _logdet(M):
    """log det M for a real or complex matrix: log|det| plus the log of its phase."""
    sign, logabs = np.linalg.slogdet(M)
    return logabs + np.log(sign)


def _gauss_loglik(X, mu, Sigma):
    R = X - mu
    return -0.5 * (len(X) * (X.shape[1] * np.log(2 * np.pi) + _logdet(Sigma))
                   + np.sum(R * np.linalg.solve(Sigma, R.T).T))


def gaussian_loglik_grads(X, mu, Sigma):
    X, mu, Sigma = (np.asarray(a, dtype=float) for a in (X, mu, Sigma))
    return (_gradient(lambda m: _gauss_loglik(X, m, Sigma), mu),
            _gradient(lambda S: _gauss_loglik(X, mu, S), Sigma))


def gmm_shared_var_mstep(x, R):
    x, R = np.asarray(x, dtype=float), np.asarray(R, dtype=float)
    K = R.shape[1]

    def negative_Q(theta):
        a, m, b = theta[:K], theta[K:2 * K], theta[-1]
        log_pi = a - np.log(np.sum(np.exp(a)))
        return -np.sum(R * (log_pi - 0.5 * (np.log(2 * np.pi) + b) - 0.5 * (x[:, None] - m) ** 2 * np.exp(-b)))

    start = np.r_[np.zeros(K), np.full(K, x.mean()) + np.linspace(-1, 1, K), np.log(x.var())]
    theta = _minimize(negative_Q, start)
    a = theta[:K]
    return np.exp(a) / np.exp(a).sum(), theta[K:2 * K], float(np.exp(theta[-1]))


def pca_min_error(X, K):
    X = np.asarray(X, dtype=float)
    if K == 0:
        return float(np.mean(np.sum((X - X.mean(axis=0)) ** 2, axis=1)))
    pca = PCA(n_components=K, svd_solver="full").fit(X)
    return float(np.mean(np.sum((X - pca.inverse_transform(pca.transform(X))) ** 2, axis=1)))


def ppca_sigma2(S, W):
    S, W = np.asarray(S, dtype=float), np.asarray(W, dtype=float)
    d, K = W.shape

    def negative_loglik(theta):
        B = theta[:-1].reshape(K, K)
        C = W @ B @ B.T @ W.T + np.exp(theta[-1]) * np.eye(d)
        return 0.5 * (_logdet(C) + np.trace(np.linalg.solve(C, S)))

    start = np.r_[np.eye(K).ravel(), 0.0]
    theta = _minimize(negative_loglik, start)
    return float(np.exp(theta[-1]))


def estep_moments(X, mu, A, D):
    X, mu, A, D = (np.asarray(a, dtype=float) for a in (X, mu, A, D))
    K = A.shape[1]
    C = A @ A.T + np.diag(D)  # the (d, d) covariance of x: the joint Gaussian, conditioned by brute force
    gain = np.linalg.solve(C, A).T
    means = (X - mu) @ gain.T
    cov = np.eye(K) - gain @ A
    return means, cov + means[:, :, None] * means[:, None, :]


def _lgm_loglik(X, A, D):
    C = A @ A.T + np.diag(D)
    return -0.5 * (len(X) * (X.shape[1] * np.log(2 * np.pi) + _logdet(C)) + np.sum(X * np.linalg.solve(C, X.T).T))


def lgm_loglik_grads(X, A, D):
    X, A, D = (np.asarray(a, dtype=float) for a in (X, A, D))
    return (_gradient(lambda M: _lgm_loglik(X, M, D), A), _gradient(lambda v: _lgm_loglik(X, A, v), D))


def mcem_isotropic_mstep(X, Z):
    X, Z = np.asarray(X, dtype=float), np.asarray(Z, dtype=float)
    J, N, K = Z.shape
    Zs, Xs = Z.reshape(J * N, K), np.tile(X, (J, 1))
    A = np.linalg.lstsq(Zs, Xs, rcond=None)[0].T
    residual = Xs - Zs @ A.T
    f = lambda s: 0.5 * np.sum(s + residual ** 2 * np.exp(-s))
    s = _minimize(lambda v: f(v[0]), np.zeros(1))[0]
    return A, float(np.exp(s))
