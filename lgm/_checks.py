"""Checks of user input that turn bad arguments into one clear error.

Every public function and estimator of ``lgm`` (and ``nlgm``) validates its input here, so a
student who passes a 1-D array, a NaN or an unknown option reads a sentence that names the
argument and what was expected, never a traceback from deep inside numpy.
"""
from numbers import Integral

import numpy as np


def check_data(X, name="X", *, min_samples=1, n_features=None):
    """Return ``X`` as a finite float64 array of shape (N, d), or raise a clear error.

    Parameters
    ----------
    X : array_like, shape (N, d)
        Data, one sample per row.
    name : str
        The argument's name, used in the error message.
    min_samples : int
        The smallest N accepted.
    n_features : int, optional
        The width d that is required (for data passed to a fitted model).

    Returns
    -------
    ndarray, shape (N, d), float64
    """
    try:
        X = np.asarray(X, dtype=float)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a numeric array of shape (N, d); {err}") from None
    if X.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array of shape (N, d) with one sample per row; "
            f"got an array of shape {X.shape}. For a single sample use {name}.reshape(1, -1)."
        )
    if not np.all(np.isfinite(X)):
        bad = np.argwhere(~np.isfinite(X))[0]
        raise ValueError(
            f"{name} contains NaN or infinite values (first at row {bad[0]}, column {bad[1]}); "
            "remove or impute them first."
        )
    if X.shape[0] < min_samples:
        raise ValueError(f"{name} needs at least {min_samples} samples (rows); got {X.shape[0]}.")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(
            f"{name} has {X.shape[1]} features (columns) but the model was fitted with {n_features}."
        )
    return X


def check_n_components(n_components, d, name="n_components"):
    """Return ``n_components`` as an int in 1..d, or raise a clear error."""
    if isinstance(n_components, bool) or not isinstance(n_components, Integral):
        raise TypeError(f"{name} must be an integer between 1 and {d}; got {n_components!r}.")
    if not 1 <= n_components <= d:
        raise ValueError(
            f"{name} must be between 1 and the number of features d={d}; got {n_components}."
        )
    return int(n_components)


def check_positive_int(value, name):
    """Return ``value`` as a positive int, or raise a clear error."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}.")
    return int(value)


def check_positive(value, name, *, allow_zero=False):
    """Return ``value`` as a positive (or non-negative) float, or raise a clear error."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number; got {value!r}.") from None
    if not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        expected = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{name} must be a finite {expected} number; got {value!r}.")
    return value


def check_option(value, name, allowed):
    """Return ``value`` if it is one of ``allowed``, or raise a clear error."""
    if value not in allowed:
        options = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"{name} must be one of {options}; got {value!r}.")
    return value


def check_random_state(random_state):
    """Return a ``numpy.random.Generator`` from None, an int seed or a Generator."""
    if random_state is None or isinstance(random_state, (Integral, np.random.Generator)):
        return np.random.default_rng(random_state)
    raise TypeError(
        f"random_state must be None, an integer seed or a numpy.random.Generator; got {random_state!r}."
    )


def check_fitted(estimator, attribute):
    """Raise a clear error if ``estimator`` has not been fitted yet."""
    if not hasattr(estimator, attribute):
        raise RuntimeError(
            f"This {type(estimator).__name__} is not fitted yet; call fit(X) before using it."
        )
