"""Reference solutions for book/exercises/derive_linear.md (kept out of the book).

Where the package has the quantity (posterior moments, complete-data maximum likelihood, the
sample covariance) the solution calls it; the derived gradients and maximisers that the package
does not need are written here, each the formula of the worked derivation in
book/solutions/derive_linear.md.
"""
import numpy as np

from lgm.em import sample_covariance
from lgm.linear_gaussian import complete_data_ml, posterior


def gaussian_loglik_grads(X, mu, Sigma):
    """D2: d ell/d mu = Sigma^{-1} sum_n r_n, d ell/d Sigma = -1/2 (N Sigma^{-1} - Sigma^{-1} R Sigma^{-1})."""
    X, mu, Sigma = np.asarray(X, float), np.asarray(mu, float), np.asarray(Sigma, float)
    Rv = X - mu
    P = np.linalg.inv(Sigma)
    grad_mu = P @ Rv.sum(axis=0)
    grad_Sigma = -0.5 * (len(X) * P - P @ (Rv.T @ Rv) @ P)
    return grad_mu, grad_Sigma


def gmm_shared_var_mstep(x, R):
    """D3: pi_k = N_k / N, mu_k = weighted mean, v = (1/N) sum_nk r_nk (x_n - mu_k)^2."""
    x, R = np.asarray(x, float), np.asarray(R, float)
    Nk = R.sum(axis=0)
    mu = R.T @ x / Nk
    var = float(np.sum(R * (x[:, None] - mu) ** 2) / len(x))
    return Nk / len(x), mu, var


def pca_min_error(X, K):
    """D4: the sum of the d - K smallest eigenvalues of the sample covariance (normalised by N)."""
    X = np.asarray(X, float)
    lam = np.linalg.eigvalsh(sample_covariance(X, X.mean(axis=0)))  # ascending
    return float(np.clip(lam[: X.shape[1] - K], 0, None).sum())


def ppca_sigma2(S, W):
    """D5: the variance left outside span(W), averaged over its d - K dimensions."""
    S, W = np.asarray(S, float), np.asarray(W, float)
    d, K = W.shape
    return float((np.trace(S) - np.trace(W.T @ S @ W)) / (d - K))


def estep_moments(X, mu, A, D):
    """D6: the package's posterior of the centred data; E[z z^T | x] = Sigma + m m^T."""
    means, cov = posterior(np.asarray(X, float) - np.asarray(mu, float), A, D)
    return means, cov + means[:, :, None] * means[:, None, :]


def lgm_loglik_grads(X, A, D):
    """D7: with G = C^{-1} S C^{-1} - C^{-1}: d ell/dA = N G A, d ell/dpsi = N/2 diag(G)."""
    X, A, D = np.asarray(X, float), np.asarray(A, float), np.asarray(D, float)
    N = len(X)
    Cinv = np.linalg.inv(A @ A.T + np.diag(D))
    S = sample_covariance(X, np.zeros(X.shape[1]))
    G = Cinv @ S @ Cinv - Cinv
    return N * G @ A, 0.5 * N * np.diag(G)


def mcem_isotropic_mstep(X, Z):
    """D8: complete-data ML on the N J pairs; sigma^2 is the mean of the d per-coordinate variances."""
    X, Z = np.asarray(X, float), np.asarray(Z, float)
    J, N, K = Z.shape
    A, D = complete_data_ml(np.tile(X, (J, 1)), Z.reshape(J * N, K))
    return A, float(D.mean())
