"""Random inputs for exercise tests: well-defined test cases from a seeded generator."""
import numpy as np


def spd_matrix(rng, d, *, condition=None):
    """A random symmetric positive definite (d, d) matrix.

    Parameters
    ----------
    rng : numpy.random.Generator
    d : int
    condition : float, optional
        The condition number (largest over smallest eigenvalue); eigenvalues are then spread
        log-uniformly between ``1 / condition`` and 1. Without it, eigenvalues lie in [0.5, 3].

    Returns
    -------
    ndarray, shape (d, d)
    """
    Q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    if condition is None:
        eigenvalues = rng.uniform(0.5, 3.0, size=d)
    else:
        eigenvalues = np.logspace(-np.log10(condition), 0.0, d)
    S = (Q * eigenvalues) @ Q.T
    return 0.5 * (S + S.T)
