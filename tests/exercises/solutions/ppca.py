"""Reference solutions for book/exercises/ppca.md (kept out of the book): the package's own functions."""
import numpy as np

import lgm


def ppca_ml(S, n_components):
    return lgm.ppca_ml(S, n_components)


def ppca_posterior(X, A, sigma2):
    # PPCA is the linear Gaussian model with D = sigma^2 I: one copy of the posterior (eq-lgm-posterior).
    return lgm.posterior(X, A, np.full(np.shape(A)[0], float(sigma2)))
