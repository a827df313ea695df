"""Classic mistakes for book/exercises/derive_linear.md: each function is right except for one error.

tests/exercises/test_autograder.py grades this file and checks that, for each function, a test whose
name starts with test_<function> fails and that its message contains the hint below.
"""
import numpy as np

HINTS = {
    "gaussian_loglik_grads": "forget the minus sign in d(Sigma^{-1}) = -Sigma^{-1} dSigma Sigma^{-1}",
    "gmm_shared_var_mstep": "average the K per-component variances",
    "pca_min_error": "sum the K largest eigenvalues",
    "ppca_sigma2": "divide by d instead of d - K",
    "estep_moments": "forget the posterior covariance in E[z z^T | x]",
    "lgm_loglik_grads": "forget that A appears twice in C = A A^T",
    "mcem_isotropic_mstep": "divide by N d instead of N J d",
}


def gaussian_loglik_grads(X, mu, Sigma):
    # Mistake: d(Sigma^{-1}) taken as +Sigma^{-1} dSigma Sigma^{-1}.
    Rv = X - mu
    P = np.linalg.inv(Sigma)
    return P @ Rv.sum(axis=0), -0.5 * (len(X) * P + P @ (Rv.T @ Rv) @ P)


def gmm_shared_var_mstep(x, R):
    # Mistake: the shared variance as the plain average of K per-component variances.
    Nk = R.sum(axis=0)
    mu = R.T @ x / Nk
    var_k = np.sum(R * (x[:, None] - mu) ** 2, axis=0) / Nk
    return Nk / len(x), mu, float(var_k.mean())


def pca_min_error(X, K):
    # Mistake: the variance kept, not the variance lost.
    Xc = X - X.mean(axis=0)
    lam = np.linalg.eigvalsh(Xc.T @ Xc / len(X))
    return float(lam[::-1][:K].sum())


def ppca_sigma2(S, W):
    # Mistake: the variance outside span(W) averaged over all d dimensions.
    return float((np.trace(S) - np.trace(W.T @ S @ W)) / W.shape[0])


def estep_moments(X, mu, A, D):
    # Mistake: E[z z^T | x] = m m^T, without the posterior covariance.
    K = A.shape[1]
    AD = A / D[:, None]
    Sigma = np.linalg.inv(np.eye(K) + A.T @ AD)
    means = (X - mu) @ AD @ Sigma
    return means, means[:, :, None] * means[:, None, :]


def lgm_loglik_grads(X, A, D):
    # Mistake: d(A A^T) = dA A^T only, so the A-gradient is half what it should be.
    N = len(X)
    Cinv = np.linalg.inv(A @ A.T + np.diag(D))
    G = Cinv @ (X.T @ X / N) @ Cinv - Cinv
    return 0.5 * N * G @ A, 0.5 * N * np.diag(G)


def mcem_isotropic_mstep(X, Z):
    # Mistake: the sum of squared residuals over the N J pairs divided by N d, not N J d.
    J, N, K = Z.shape
    Zs, Xs = Z.reshape(J * N, K), np.tile(X, (J, 1))
    A = Xs.T @ Zs @ np.linalg.inv(Zs.T @ Zs)
    return A, float(np.sum((Xs - Zs @ A.T) ** 2) / (N * X.shape[1]))
