"""Classic mistakes for book/exercises/lgm.md: each function is right except for one classic error.

tests/exercises/test_autograder.py grades this file and checks that, for each function, a test whose
name starts with test_<function> fails and that its message contains the hint below.
"""
import numpy as np

HINTS = {
    "lgm_posterior": "drop the prior's identity from the precision",
    "lgm_loglik": "forget log|D| in the determinant lemma",
    "complete_data_ml": "lstsq(Z, X) solves Z B = X",
    "em_step": "use the old A^k instead of the new A^{k+1} in the D-update",
    "mcem_step": "divide by N instead of NJ",
    "impute_row": "treat each missing entry as an observed 0",
}


def lgm_posterior(X, A, D):
    # Mistake: the prior's identity is missing from the precision, Sigma = (A^T D^{-1} A)^{-1}.
    AD = A / D[:, None]
    cov = np.linalg.inv(A.T @ AD)
    return X @ AD @ cov, cov


def lgm_loglik(X, A, D):
    # Mistake: log|C| without log|D| (the determinant lemma's first term is forgotten).
    K = A.shape[1]
    AD = A / D[:, None]
    cov = np.linalg.inv(np.eye(K) + A.T @ AD)
    means = X @ AD @ cov
    quad = np.sum(X**2 / D, axis=1) - np.einsum("nk,kl,nl->n", means, np.linalg.inv(cov), means)
    logdet = -np.linalg.slogdet(cov)[1]
    return -0.5 * (X.shape[1] * np.log(2 * np.pi) + logdet + quad)


def complete_data_ml(X, Z):
    # Mistake: lstsq(Z, X) solves Z B = X, so it returns B = A^T of shape (K, d), not A.
    A = np.linalg.lstsq(Z, X, rcond=None)[0]
    D = np.mean((X - Z @ A) ** 2, axis=0)
    return A, D


def em_step(X, A, D):
    # Mistake (the lecture's): the D-update uses the old A instead of the new one.
    N, K = X.shape[0], A.shape[1]
    AD = A / D[:, None]
    Sigma = np.linalg.inv(np.eye(K) + A.T @ AD)
    M = X @ AD @ Sigma
    A_new = X.T @ M @ np.linalg.inv(N * Sigma + M.T @ M)
    D_new = (np.sum(X**2, axis=0) - np.sum(A * (X.T @ M), axis=1)) / N
    return A_new, D_new


def mcem_step(X, A, D, eps):
    # Mistake (the lecture's): the D-update divides by N instead of N J, the number of pairs.
    J, N, K = eps.shape
    AD = A / D[:, None]
    Sigma = np.linalg.inv(np.eye(K) + A.T @ AD)
    M = X @ AD @ Sigma
    Z = (M + eps @ np.linalg.cholesky(Sigma).T).reshape(J * N, K)
    Xr = np.tile(X, (J, 1))
    A_new = Xr.T @ Z @ np.linalg.inv(Z.T @ Z)
    D_new = (np.sum(Xr**2, axis=0) - np.sum(A_new * (Xr.T @ Z), axis=1)) / N
    return A_new, D_new


def impute_row(x, A, D, mean):
    # Mistake: the NaN are set to 0 and the posterior uses all of A and D, as if 0 had been observed.
    o = ~np.isnan(x)
    x0 = np.where(o, x, 0.0)
    K = A.shape[1]
    m = np.linalg.solve(np.eye(K) + A.T @ (A / D[:, None]), A.T @ ((x0 - mean) / D))
    return np.where(o, x, mean + A @ m)
