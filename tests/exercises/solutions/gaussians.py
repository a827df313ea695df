"""Reference solutions for book/exercises/gaussians.md (kept out of the book).

Where the package implements an exercise, the solution calls it, so each algorithm has one copy.
"""
import numpy as np

import lgm


def gaussian_logpdf(X, mu, Sigma):
    return lgm.gaussian_logpdf(X, mu, Sigma)


def gaussian_mle(X):
    X = np.asarray(X, dtype=float)
    mu = X.mean(axis=0)
    R = X - mu
    return mu, R.T @ R / X.shape[0]


def condition_gaussian(mu, Sigma, obs_idx, x_obs):
    return lgm.condition_gaussian(mu, Sigma, obs_idx, x_obs)


def kl_gauss(m0, S0, m1, S1):
    return lgm.kl_gaussians(m0, S0, m1, S1)


def lowrank_solve_logdet(A, D, B):
    return lgm.lowrank_solve_logdet(A, D, B)
