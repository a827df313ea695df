"""Answer key of book/exercises/gaussians.md: numpy and scipy only, as a student would write it (never lgm)."""
import numpy as np
from scipy import linalg


def gaussian_logpdf(X, mu, Sigma):
    X, mu = np.atleast_2d(np.asarray(X, dtype=float)), np.asarray(mu, dtype=float)
    L = np.linalg.cholesky(np.asarray(Sigma, dtype=float))
    Y = linalg.solve_triangular(L, (X - mu).T, lower=True)
    return -0.5 * (len(mu) * np.log(2 * np.pi) + np.sum(Y**2, axis=0)) - np.sum(np.log(np.diag(L)))


def gaussian_mle(X):
    X = np.asarray(X, dtype=float)
    mu = X.mean(axis=0)
    R = X - mu
    return mu, R.T @ R / X.shape[0]


def condition_gaussian(mu, Sigma, obs_idx, x_obs):
    mu, Sigma, o = np.asarray(mu, dtype=float), np.asarray(Sigma, dtype=float), np.asarray(obs_idx)
    u = np.setdiff1d(np.arange(len(mu)), o)
    G = np.linalg.solve(Sigma[np.ix_(o, o)], Sigma[np.ix_(o, u)]).T
    return mu[u] + G @ (np.asarray(x_obs, dtype=float) - mu[o]), Sigma[np.ix_(u, u)] - G @ Sigma[np.ix_(o, u)]


def kl_gauss(m0, S0, m1, S1):
    n = len(m0)
    diff = np.asarray(m1, dtype=float) - m0
    inv1 = np.linalg.inv(S1)
    return 0.5 * (np.trace(inv1 @ S0) + diff @ inv1 @ diff - n
                  + np.linalg.slogdet(S1)[1] - np.linalg.slogdet(S0)[1])


def lowrank_solve_logdet(A, D, B):
    A, D, B = np.asarray(A, dtype=float), np.asarray(D, dtype=float), np.asarray(B, dtype=float)
    K = A.shape[1]
    AD = A / D[:, None]
    M = np.eye(K) + A.T @ AD
    DB = B / D.reshape((-1,) + (1,) * (B.ndim - 1))
    Y = DB - AD @ np.linalg.solve(M, A.T @ DB)
    return Y, np.sum(np.log(D)) + np.linalg.slogdet(M)[1]
