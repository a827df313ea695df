"""Reference solutions of book/exercises/lgm.md: the package's own functions, one copy of each algorithm."""
import numpy as np

from lgm.completion import complete_then_reestimate
from lgm.em import SampledCompletion, em_step  # noqa: F401 - em_step is exercise 7.2
from lgm.linear_gaussian import check_params, complete_data_ml  # noqa: F401 - exercise 7.1
from lgm.linear_gaussian import log_likelihood as lgm_loglik  # noqa: F401 - exercise 6.2
from lgm.linear_gaussian import posterior as lgm_posterior  # noqa: F401 - exercise 6.1


class GivenNoise:
    """Stands in for a random generator and hands out noise drawn beforehand."""

    def __init__(self, eps):
        self.eps = eps

    def standard_normal(self, shape):
        if tuple(shape) != self.eps.shape:
            raise ValueError(f"eps must have shape (J, N, K) = {tuple(shape)}; got {self.eps.shape}.")
        return self.eps


def mcem_step(X, A, D, eps):
    """Exercise 7.3: the package's sampled completion (J = len(eps)) with the given noise."""
    A, D = check_params(A, D, n_features=np.shape(X)[1])
    eps = np.asarray(eps, dtype=float)
    state = SampledCompletion(A, D, n_samples=eps.shape[0], floor=-np.inf)
    complete_then_reestimate(state, [np.asarray(X, dtype=float)], rng=GivenNoise(eps))
    return state.A, state.D
