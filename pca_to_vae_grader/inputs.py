"""Random inputs for exercise tests: well-defined test cases from a seeded generator.

Inputs that decide points come from :func:`rng`, which mixes a test's own key with the seed of this
grading run. The run's seed is drawn from ``os.urandom`` in the grader (or given with ``--seed`` to
reproduce a run) and never sent to the submission, so values a submission learns from one run's
feedback are of no use in the next.
"""
import os

import numpy as np

_RUN_SEED = None


def set_run_seed(seed):
    """Set the seed of this grading run (a non-negative integer)."""
    global _RUN_SEED
    _RUN_SEED = int(seed) % 2**64


def run_seed():
    """The seed of this grading run (drawn from os.urandom on first use unless set)."""
    if _RUN_SEED is None:
        set_run_seed(int.from_bytes(os.urandom(8), "little"))
    return _RUN_SEED


def rng(*key):
    """A generator for one test case: ``rng(seed)`` or ``rng(N, d, K, seed)`` (non-negative integers).

    Different keys give independent streams; the same key gives the same stream within one run, and a
    different one in the next run.
    """
    return np.random.default_rng([run_seed(), *(int(k) for k in key)])


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


def case_where(accept, draw, *key, tries=50):
    """Inputs for a statistical check, drawn anew in every run: the first ``draw(rng(*key, attempt))`` that
    ``accept`` takes.

    A check such as "the estimate is within 4 standard errors of the exact value" fails a correct
    estimate now and then by chance. With ``accept`` asking the reference implementation to pass with
    a margin (within 3 standard errors), a correct submission, which computes the same estimate, never
    fails; and since the inputs change with every run, values learned from feedback do not carry over.

    Parameters
    ----------
    accept : callable
        ``accept(case) -> bool``.
    draw : callable
        ``draw(rng) -> case`` for a :class:`numpy.random.Generator`.
    *key : int
        The test's key, as for :func:`rng`.
    tries : int
        Draws before giving up (the reference then fails far more often than it should: a bug of the test).
    """
    for attempt in range(tries):
        case = draw(rng(*key, attempt))
        if accept(case):
            return case
    raise RuntimeError(f"no test case among {tries} draws for key {key} satisfies the reference's check")
