"""A submission for book/exercises/gaussians.md with one classic mistake in every function.

tests/exercises/test_autograder.py grades it and checks that, for each function, a test whose name
starts with test_<function> fails and that its message contains the hint below.
"""
import numpy as np
from scipy import linalg

HINTS = {
    "gaussian_logpdf": "forget the 1/2 in front of the quadratic form",
    "gaussian_mle": "divide by N - 1",
    "condition_gaussian": "forget to subtract mu_o",
    "kl_gauss": "swap the two distributions",
    "lowrank_solve_logdet": "forget log|D|",
}


def gaussian_logpdf(X, mu, Sigma):
    L = linalg.cholesky(Sigma, lower=True)
    Y = linalg.solve_triangular(L, (X - mu).T, lower=True)
    d = len(mu)
    return -0.5 * (d * np.log(2 * np.pi) + 2 * np.log(np.diag(L)).sum()) - np.sum(Y**2, axis=0)  # mistake: no 1/2


def gaussian_mle(X):
    return X.mean(axis=0), np.cov(X.T)  # mistake: np.cov divides by N - 1


def condition_gaussian(mu, Sigma, obs_idx, x_obs):
    o = np.asarray(obs_idx)
    u = np.setdiff1d(np.arange(len(mu)), o)
    G = np.linalg.solve(Sigma[np.ix_(o, o)], Sigma[np.ix_(o, u)])
    return mu[u] + G.T @ x_obs, Sigma[np.ix_(u, u)] - Sigma[np.ix_(u, o)] @ G  # mistake: x_obs, not x_obs - mu_o


def kl_gauss(m0, S0, m1, S1):
    m0, S0, m1, S1 = m1, S1, m0, S0  # mistake: KL(p1 || p0)
    inv1 = np.linalg.inv(S1)
    return 0.5 * (np.trace(inv1 @ S0) + (m1 - m0) @ inv1 @ (m1 - m0) - len(m0)
                  + np.linalg.slogdet(S1)[1] - np.linalg.slogdet(S0)[1])


def lowrank_solve_logdet(A, D, B):
    AD = A / D[:, None]
    M = np.eye(A.shape[1]) + A.T @ AD
    DB = B / D.reshape((-1,) + (1,) * (np.ndim(B) - 1))
    return DB - AD @ np.linalg.solve(M, AD.T @ B), np.linalg.slogdet(M)[1]  # mistake: no log|D|
