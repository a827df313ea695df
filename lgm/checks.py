"""Checks of user input that turn bad arguments into one clear error.

Every public function and estimator of ``lgm`` (and ``nlgm``) validates its input here, so a
student who passes a 1-D array, a NaN or an unknown option reads a sentence that names the
argument and what was expected, never a traceback from deep inside numpy.
"""
import os
from numbers import Integral

import numpy as np

#: Variances above this are too close to the float64 overflow (1.8e308) for
#: the products and sums of a fit.
LARGEST_VARIANCE = 1e250
#: Variances below this are too close to the float64 underflow (2.2e-308)
#: for a noise floor and the products of a fit.
SMALLEST_VARIANCE = 1e-250


def as_real_array(X, name):
    """``X`` as a float64 ndarray; refuse sparse, complex and non-numbers."""
    if hasattr(X, "tocsr") or hasattr(X, "todense"):
        raise TypeError(
            f"{name} is a sparse matrix; sparse input is not supported. Pass"
            f" a dense array ({name}.toarray())."
        )
    try:
        arr = np.asarray(X)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"{name} must be a numeric array of shape (N, d); {err}"
        ) from None
    kind = arr.dtype.kind
    if kind == "c":
        raise ValueError(
            f"{name} holds complex numbers (dtype {arr.dtype}): Complex data"
            f" not supported; {name} must be real."
        )
    if kind in "USV":
        raise TypeError(
            f"{name} holds strings or bytes (dtype {arr.dtype}); {name} must"
            " be a numeric array of real numbers."
        )
    if kind == "O":
        for value in arr.flat:
            if isinstance(value, (str, bytes, complex, np.complexfloating)):
                raise TypeError(
                    f"{name} holds a {type(value).__name__} ({value!r}) among"
                    f" its entries; {name} must be an array of real numbers."
                )
    try:
        return np.asarray(arr, dtype=float)
    except (TypeError, ValueError) as err:
        # numpy's own words ("float() argument must be a string or a real
        # number, not 'dict'") say which entry is wrong
        raise TypeError(
            f"{name} must be a numeric array of shape (N, d); {err}"
        ) from None


def check_data(X, name="X", *, min_samples=1, n_features=None,
               estimator=None, finite=None):
    """Return ``X`` as a finite float64 array of shape (N, d), or raise a clear error.

    Complex, string, bytes and sparse input is refused (an object array is
    accepted only if every entry is a real number).

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
    estimator : str, optional
        The fitted model's class name, for the message when d is wrong.
    finite : bool, optional
        True: the caller has proved every entry finite (a finite column
        mean does), so X is not scanned again. None: scan it.

    Returns
    -------
    ndarray, shape (N, d), float64
    """
    X = as_real_array(X, name)
    if X.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array of shape (N, d) with one sample per row; "
            f"got an array of shape {X.shape}. Reshape your data: for a single sample use "
            f"{name}.reshape(1, -1)."
        )
    if X.shape[1] == 0:
        raise ValueError(
            f"{name} has 0 feature(s) (shape={X.shape}) while a minimum of 1 is required."
        )
    if not finite and not np.all(np.isfinite(X)):
        bad = np.argwhere(~np.isfinite(X))[0]
        raise ValueError(
            f"{name} contains NaN or infinite values (first at row {bad[0]}, column {bad[1]}); "
            "remove or impute them first."
        )
    if X.shape[0] < min_samples:
        def samples(n):
            return f"{n} sample" + ("" if n == 1 else "s")

        raise ValueError(
            f"{name} needs at least {samples(min_samples)} (rows); got"
            f" {samples(X.shape[0])}."
        )
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(
            f"{name} has {X.shape[1]} features, but {estimator or 'the model'}"
            f" is expecting {n_features} features as input (the number of"
            " columns it was fitted with)."
        )
    return X


def check_variance_scale(variance, X, name="X"):
    """Refuse data whose variances float64 cannot hold, naming the data.

    Cheap when the data are fine: it looks at one number already computed
    (the largest variance of a feature or principal direction) and reads X
    again only to tell tiny data from constant data.

    Parameters
    ----------
    variance : float
        The largest variance found in X (inf or NaN if computing it overflowed).
    X : ndarray, shape (N, d)
        The data.
    name : str
        The argument's name, used in the error message.
    """
    if not variance <= LARGEST_VARIANCE:  # NaN too
        raise ValueError(
            f"{name} is too large in scale: its variances (up to {variance:.1e})"
            f" exceed {LARGEST_VARIANCE:.0e}, too close to the float64 overflow"
            f" for the fit. Divide {name} by a constant (or standardise its"
            " columns) first."
        )
    if variance < SMALLEST_VARIANCE and np.ptp(X, axis=0).max() > 0:
        raise ValueError(
            f"{name} is too small in scale: its variances (at most"
            f" {variance:.1e}) are below {SMALLEST_VARIANCE:.0e}, too close to"
            f" the float64 underflow for the fit. Multiply {name} by a constant"
            " (or standardise its columns) first."
        )


def check_symmetric(S, name, *, shape=None):
    """Return ``S`` as a finite, square, symmetric float matrix, or raise.

    Symmetry is checked to rounding: |S - S^T| <= 1e-10 |S^T| + 1e-12 max|S|.

    Parameters
    ----------
    S : array_like, shape (d, d)
    name : str
        The argument's name, used in the error message.
    shape : tuple, optional
        The shape that is required.

    Returns
    -------
    ndarray, shape (d, d)
    """
    S = as_real_array(S, name)
    if S.ndim != 2 or S.shape[0] != S.shape[1] or (
        shape is not None and S.shape != shape
    ):
        expected = f"{shape}" if shape is not None else "(d, d)"
        raise ValueError(
            f"{name} must be a square {expected} symmetric matrix; got shape"
            f" {S.shape}."
        )
    if not np.all(np.isfinite(S)):
        raise ValueError(f"{name} contains NaN or infinite values.")
    if not np.allclose(
        S, S.T, rtol=1e-10, atol=1e-12 * np.abs(S).max(initial=0.0)
    ):
        raise ValueError(f"{name} must be symmetric.")
    return S


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
    """Return ``value`` as a positive (or non-negative) float, or raise a clear error.

    A bool or a string is refused, though ``float`` would take it (``lr=True`` is 1.0,
    ``tol="1e-3"`` a number): it is a slip, not a number.
    """
    if isinstance(value, (bool, np.bool_, str, bytes)):
        raise TypeError(f"{name} must be a number; got {value!r}.")
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


def check_seed(seed, name="seed", *, optional=False):
    """Return ``seed`` as an int >= 0 (or None if ``optional``), or raise ValueError."""
    if optional and seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, Integral) or seed < 0:
        raise ValueError(
            f"{name} must be {'None or ' if optional else ''}a non-negative"
            f" integer; got {seed!r}."
        )
    return int(seed)


def check_random_state(random_state, name="random_state"):
    """Return a ``numpy.random.Generator`` from None, an int seed >= 0 or a
    Generator."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    if random_state is None or (
        isinstance(random_state, Integral) and not isinstance(random_state, bool)
    ):
        if random_state is not None and random_state < 0:
            raise ValueError(
                f"{name} must be a non-negative integer seed; got {random_state!r}."
            )
        return np.random.default_rng(random_state)
    raise TypeError(
        f"{name} must be None, a non-negative integer seed or a"
        f" numpy.random.Generator; got {random_state!r}."
    )


def check_fitted(estimator, attribute):
    """Raise :class:`sklearn.exceptions.NotFittedError` if ``estimator`` has
    not been fitted yet (a ValueError and an AttributeError)."""
    if not hasattr(estimator, attribute):
        from sklearn.exceptions import NotFittedError

        raise NotFittedError(
            f"This {type(estimator).__name__} instance is not fitted yet; call"
            " fit(X) before using it."
        )


def check_array_size(n_rows, n_cols, name):
    """Refuse an (n_rows, n_cols) float64 array larger than the memory.

    Parameters
    ----------
    n_rows : int
        The count the user asked for (named ``name``).
    n_cols : int
        Floats per row.
    name : str
        The argument's name, used in the error message.
    """
    needed = 8 * n_rows * n_cols
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not on Linux/macOS
        memory = 2**40
    if needed > memory:
        raise ValueError(
            f"{name}={n_rows} would need {needed / 2**30:.3g} GiB for a"
            f" ({n_rows}, {n_cols}) array, more than this machine's"
            f" {memory / 2**30:.3g} GiB of memory; ask for fewer (in batches)."
        )
