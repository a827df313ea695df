"""Sufficient statistics of data larger than memory, computed chunk by chunk with dask.

PCA, probabilistic PCA and EM with expected completion need the data only through N, the mean and
the sample covariance S = (1/N) sum_n (x_n - mean)(x_n - mean)^T (eq-em-mstep works from S alone).
For a ``dask.array`` these come from one pass of dask over the row blocks: each block contributes
its column sums and its Gram matrix X_b^T X_b (a d x d matrix), and dask adds them up, on the
threads of a laptop or the workers of a ``dask.distributed`` cluster alike. Only d x d matrices
ever reach this process.

dask is optional: it is imported only when a dask array is passed, and a dask array can only be
passed by someone who has imported dask already.
"""
import sys

import numpy as np


def is_dask_array(X):
    """Whether ``X`` is a ``dask.array.Array`` (without importing dask)."""
    da = sys.modules.get("dask.array")
    return da is not None and isinstance(X, da.Array)


def check_dask_array(X, name="X", *, min_samples=2):
    """The shape (N, d) of a dask array, or a clear error (nothing is computed).

    Parameters
    ----------
    X : dask.array.Array
    name : str
        The argument's name, for error messages.
    min_samples : int
        The smallest N accepted.

    Returns
    -------
    N, d : int
    """
    if X.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D dask array of shape (N, d) with one sample per row; got shape"
            f" {X.shape}."
        )
    N, d = X.shape
    if np.isnan(N) or np.isnan(d):
        raise ValueError(
            f"{name} is a dask array of unknown shape {X.shape}; call"
            f" {name}.compute_chunk_sizes() first."
        )
    if N < min_samples:
        raise ValueError(f"{name} needs at least {min_samples} samples (rows); got {N}.")
    if not np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.complexfloating):
        raise TypeError(f"{name} must be a real numeric dask array; got dtype {X.dtype}.")
    return int(N), int(d)


def dask_statistics(X, name="X", *, min_samples=2):
    """N, the mean and the sample covariance of a dask array, in one pass over its row blocks.

    The rows are shifted by the mean of the first row block, c, before the Gram matrix is
    accumulated, S = (1/N) sum_n (x_n - c)(x_n - c)^T - (mean - c)(mean - c)^T, so that a large
    mean does not cancel the digits of S (the shifted-data algorithm; c costs one block).

    Parameters
    ----------
    X : dask.array.Array, shape (N, d)
        Any chunking; it is rechunked to whole rows if its columns are split. Computed, never
        held in memory as a whole.
    name : str
        The argument's name, for error messages.
    min_samples : int
        The smallest N accepted.

    Returns
    -------
    N : int
    mean : ndarray, shape (d,)
    S : ndarray, shape (d, d), symmetric
        Normalised by N, as :func:`lgm.em.sample_covariance`.
    """
    import dask
    import dask.array as da

    N, _ = check_dask_array(X, name, min_samples=min_samples)
    X = X.astype(np.float64)
    if X.numblocks[1] != 1:
        X = X.rechunk({1: -1})
    shift = X.blocks[0].mean(axis=0).compute()
    Xs = X - shift
    total, gram, finite = dask.compute(Xs.sum(axis=0), Xs.T @ Xs, da.isfinite(X).all())
    if not finite or not np.all(np.isfinite(shift)):
        raise ValueError(
            f"{name} contains NaN or infinite values; remove them first (missing='em' needs every"
            " row in every iteration, so it does not take a dask array)."
        )
    offset = total / N  # mean - c
    S = gram / N - np.outer(offset, offset)
    return int(N), shift + offset, 0.5 * (S + S.T)
