"""Reference solutions for book/exercises/lgm.md (kept out of the book).

Every exercise calls the package (lgm.linear_gaussian, lgm.em, lgm.missing), so each algorithm has one copy.
"""
import numpy as np

from lgm.completion import complete_then_reestimate
from lgm.em import SampledCompletion
from lgm.em import em_step as lgm_em_step
from lgm.linear_gaussian import check_params, log_likelihood, posterior
from lgm.linear_gaussian import complete_data_ml as lgm_complete_data_ml
from lgm.missing import impute


def lgm_posterior(X, A, D):
    return posterior(X, A, D)


def lgm_loglik(X, A, D):
    return log_likelihood(X, A, D)


def complete_data_ml(X, Z):
    return lgm_complete_data_ml(X, Z)


def em_step(X, A, D):
    return lgm_em_step(X, A, D)


class GivenNoise:
    """Stands in for a random generator and hands out noise drawn beforehand."""

    def __init__(self, eps):
        self.eps = eps

    def standard_normal(self, shape):
        if tuple(shape) != self.eps.shape:
            raise ValueError(f"eps must have shape (J, N, K) = {tuple(shape)}; got {self.eps.shape}.")
        return self.eps


def mcem_step(X, A, D, eps):
    """The package's sampled completion (J = len(eps) draws per row) with the given noise."""
    A, D = check_params(A, D, n_features=np.shape(X)[1])
    eps = np.asarray(eps, dtype=float)
    state = SampledCompletion(A, D, n_samples=eps.shape[0], floor=-np.inf)
    complete_then_reestimate(state, [np.asarray(X, dtype=float)], rng=GivenNoise(eps))
    return state.A, state.D


def impute_row(x, A, D, mean):
    return impute(np.reshape(x, (1, -1)), A, D, mean)[0]
