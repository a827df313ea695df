"""Data sets of the book: draws from a linear Gaussian model, curved manifolds, and the digits.

Nothing here touches the network. Synthetic data is generated from a seed, and the digits are
scikit-learn's bundled 8x8 images (:func:`sklearn.datasets.load_digits`), split into a training
and a test set by a fixed permutation that never changes between runs, machines or releases.
"""
from dataclasses import dataclass

import numpy as np

from lgm.checks import check_n_components, check_option, check_positive, check_positive_int, check_random_state

#: Fraction of the 1797 digits held out as the test set by :func:`load_digits`.
DIGITS_TEST_FRACTION = 0.25
#: Seed of the permutation that splits the digits; fixed, so the split is the same everywhere.
DIGITS_SPLIT_SEED = 0


@dataclass(frozen=True)
class LGMTruth:
    """The parameters and latents that generated a synthetic data set.

    Attributes
    ----------
    A : ndarray, shape (d, K)
        Loading matrix.
    D : ndarray, shape (d,)
        Diagonal of the noise covariance.
    mean : ndarray, shape (d,)
        Mean of x.
    Z : ndarray, shape (N, K)
        The latent vector of every sample, drawn from N(0, I_K).
    """

    A: np.ndarray
    D: np.ndarray
    mean: np.ndarray
    Z: np.ndarray


def make_lgm_data(n_samples, n_features, n_components, *, noise="diagonal", random_state=None):
    """Draw N samples x = mean + A z + e from a linear Gaussian model with known parameters.

    The model is z ~ N(0, I_K), e ~ N(0, diag(D)) independent of z, and x = mean + A z + e.
    The true parameters are drawn as follows: the entries of A and of the mean are standard
    normal; with ``noise="diagonal"`` each noise variance D_i is uniform on [0.1, 1]
    (factor analysis); with ``noise="isotropic"`` every D_i equals one value drawn uniform on
    [0.1, 1] (probabilistic PCA).

    Parameters
    ----------
    n_samples : int
        N, the number of samples.
    n_features : int
        d, the data dimension.
    n_components : int
        K, the latent dimension, between 1 and d.
    noise : {"diagonal", "isotropic"}
        The structure of the noise covariance.
    random_state : None, int or numpy.random.Generator
        Seed of everything drawn.

    Returns
    -------
    X : ndarray, shape (N, d)
        The samples, one per row.
    truth : LGMTruth
        ``truth.A`` (d, K), ``truth.D`` (d,), ``truth.mean`` (d,), ``truth.Z`` (N, K).
    """
    N = check_positive_int(n_samples, "n_samples")
    d = check_positive_int(n_features, "n_features")
    K = check_n_components(n_components, d)
    check_option(noise, "noise", ("diagonal", "isotropic"))
    rng = check_random_state(random_state)
    A = rng.standard_normal((d, K))
    mean = rng.standard_normal(d)
    if noise == "diagonal":
        D = rng.uniform(0.1, 1.0, size=d)
    else:
        D = np.full(d, rng.uniform(0.1, 1.0))
    Z = rng.standard_normal((N, K))
    X = mean + Z @ A.T + rng.standard_normal((N, d)) * np.sqrt(D)
    return X, LGMTruth(A=A, D=D, mean=mean, Z=Z)


def make_manifold_data(n_samples, *, kind="arc", noise=0.1, random_state=None):
    """Draw samples near a curved manifold: the data a linear model cannot fit well.

    In both cases z ~ N(0, I_K) and x = f(z) + e with e ~ N(0, noise^2 I), so the data follow a
    nonlinear Gaussian model exactly:

    - ``kind="arc"``: K = 1, d = 2, f(z) = (2 sin z, 2 cos z), an arc of the circle of radius 2
      (95% of the points lie within 2 radians, about 115 degrees, of the top of the circle).
    - ``kind="saddle"``: K = 2, d = 3, f(z) = (z1, z2, (z1^2 - z2^2) / 2), a saddle surface.

    Parameters
    ----------
    n_samples : int
        N, the number of samples.
    kind : {"arc", "saddle"}
        Which manifold.
    noise : float
        Standard deviation of the isotropic noise, >= 0.
    random_state : None, int or numpy.random.Generator
        Seed of everything drawn.

    Returns
    -------
    X : ndarray, shape (N, d)
        The samples (d = 2 for the arc, 3 for the saddle).
    z : ndarray, shape (N, K)
        The latent coordinate of each sample (K = 1 for the arc, 2 for the saddle).
    """
    N = check_positive_int(n_samples, "n_samples")
    check_option(kind, "kind", ("arc", "saddle"))
    noise = check_positive(noise, "noise", allow_zero=True)
    rng = check_random_state(random_state)
    if kind == "arc":
        z = rng.standard_normal((N, 1))
        F = np.column_stack([2.0 * np.sin(z[:, 0]), 2.0 * np.cos(z[:, 0])])
    else:
        z = rng.standard_normal((N, 2))
        F = np.column_stack([z[:, 0], z[:, 1], 0.5 * (z[:, 0] ** 2 - z[:, 1] ** 2)])
    return F + noise * rng.standard_normal(F.shape), z


def split_indices(n_samples, n_held_out, seed):
    """Indices (kept, held_out) of a seeded random split of range(n_samples).

    The held-out indices are the first ``n_held_out`` entries of the
    permutation that ``numpy.random.default_rng(seed)`` draws, the kept ones
    the rest, each part in the permutation's order. The one split of the
    package: the digits' test set, and the held-out rows of ``nlgm``.

    Parameters
    ----------
    n_samples : int
    n_held_out : int
        Between 0 and n_samples.
    seed : int

    Returns
    -------
    kept : ndarray of int, shape (n_samples - n_held_out,)
    held_out : ndarray of int, shape (n_held_out,)
    """
    order = np.random.default_rng(seed).permutation(n_samples)
    return order[n_held_out:], order[:n_held_out]


def load_digits(*, split=True, dequantise=True, random_state=0, return_labels=False):
    """scikit-learn's bundled 8x8 handwritten digits, scaled to [0, 1], with a fixed split.

    Each of the 1797 images has d = 64 pixels with integer values v in 0..16. With
    ``dequantise=True`` every pixel becomes (v + u) / 17 with u ~ U[0, 1) drawn independently
    (seeded by ``random_state``): the data then have a density on [0, 1)^64, so continuous
    log-likelihoods are comparable between models (a model of the integer values could put
    unbounded density on them). With ``dequantise=False`` the pixels are v / 16, in [0, 1].

    The split is fixed: a permutation of the 1797 images drawn with seed
    ``DIGITS_SPLIT_SEED = 0`` puts its first ``floor(0.25 * 1797) = 449`` images in the test
    set and the other 1348 in the training set, whatever ``random_state`` is.

    Parameters
    ----------
    split : bool
        Return (X_train, X_test) if True, all images X (in scikit-learn's order) if False.
    dequantise : bool
        Add uniform noise and divide by 17 (True) or divide by 16 (False).
    random_state : None, int or numpy.random.Generator
        Seed of the dequantisation noise only.
    return_labels : bool
        Also return the digit classes (0..9), after the images.

    Returns
    -------
    X_train : ndarray, shape (1348, 64), and X_test : ndarray, shape (449, 64)
        When ``split=True``; followed by y_train (1348,) and y_test (449,) if ``return_labels``.
    X : ndarray, shape (1797, 64)
        When ``split=False``; followed by y (1797,) if ``return_labels``.
    """
    from sklearn.datasets import load_digits as sklearn_load_digits

    for value, name in ((split, "split"), (dequantise, "dequantise"), (return_labels, "return_labels")):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name} must be True or False; got {value!r}.")
    rng = check_random_state(random_state)
    bunch = sklearn_load_digits()
    V, y = bunch.data.astype(float), bunch.target.copy()
    if dequantise:
        X = (V + rng.random(V.shape)) / 17.0
    else:
        X = V / 16.0
    if not split:
        return (X, y) if return_labels else X
    n_test = int(np.floor(DIGITS_TEST_FRACTION * len(X)))
    train, test = split_indices(len(X), n_test, DIGITS_SPLIT_SEED)
    if return_labels:
        return X[train], X[test], y[train], y[test]
    return X[train], X[test]


# --------------------------------------------------------------------------- the user's own files
#: Element types of the IDX format (MNIST's files): type code -> big-endian numpy dtype.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def load_data_file(path, *, key=None):
    """Read a data matrix X (N, d) from a file of one's own, one sample per row.

    Formats, by the file's name:

    - ``.npz`` (numpy archive): the array named ``key``, or the first one;
    - ``.npy``: the array;
    - ``.csv``: numbers separated by commas, one sample per line; a first line that is not
      numeric is taken as a header and skipped;
    - IDX, MNIST's format (a name containing ``idx`` or ``ubyte``, gzipped (``.gz``) or not),
      e.g. ``train-images-idx3-ubyte.gz``. Values are returned as stored (0..255 for MNIST).

    Arrays with more than two axes (images) are flattened to one row per sample; a 1-D array
    becomes one column. Nothing is rescaled.

    Parameters
    ----------
    path : str or os.PathLike
    key : str, optional
        The array to read from an ``.npz`` archive.

    Returns
    -------
    X : ndarray, shape (N, d), float64, finite

    Raises
    ------
    ValueError
        With one line saying what is wrong with the file (missing, unknown format, not numeric,
        truncated, NaN or infinite values).
    """
    import os
    import zipfile

    name = os.fspath(path)
    lower = name.lower()
    if not os.path.isfile(name):
        raise ValueError(f"data file {name!r} does not exist (or is not a file).")
    try:
        if lower.endswith(".npz"):
            with np.load(name, allow_pickle=False) as archive:
                if not archive.files:
                    raise ValueError("the archive holds no arrays")
                if key is not None and key not in archive.files:
                    raise ValueError(f"it has no array {key!r}; it has {', '.join(archive.files)}")
                X = archive[key if key is not None else archive.files[0]]
        elif lower.endswith(".npy"):
            X = np.load(name, allow_pickle=False)
        elif lower.endswith(".csv"):
            X = _read_csv(name)
        elif "idx" in os.path.basename(lower) or "ubyte" in os.path.basename(lower):
            X = _read_idx_file(name)
        else:
            raise ValueError("unknown format; expected .npz, .npy, .csv or an IDX file (MNIST's "
                             "'...-idx3-ubyte', optionally .gz)")
    except (OSError, EOFError, zipfile.BadZipFile, ValueError, TypeError) as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"cannot read data file {name!r}: {message}.") from None
    X = np.asarray(X)
    if X.dtype.kind not in "biuf":
        raise ValueError(f"cannot read data file {name!r}: its values are not numbers (dtype {X.dtype}).")
    if X.ndim == 0 or X.size == 0:
        raise ValueError(f"cannot read data file {name!r}: it holds no data.")
    X = X.reshape(len(X), -1) if X.ndim > 1 else X.reshape(-1, 1)
    X = X.astype(float)
    if not np.all(np.isfinite(X)):
        row = np.argwhere(~np.isfinite(X))[0][0]
        raise ValueError(f"data file {name!r} contains NaN or infinite values (first in row {row}).")
    return X


def _read_csv(name):
    with open(name, encoding="utf-8") as handle:
        lines = [line.strip() for line in handle if line.strip()]
    if not lines:
        raise ValueError("the file is empty")
    try:
        [float(v) for v in lines[0].split(",")]
    except ValueError:
        lines = lines[1:]  # a header
    rows = []
    for number, line in enumerate(lines, start=1):
        try:
            rows.append([float(v) for v in line.split(",")])
        except ValueError:
            raise ValueError(f"data line {number} is not a comma-separated list of numbers") from None
    if len({len(r) for r in rows}) > 1:
        raise ValueError("its lines do not all have the same number of values")
    return np.array(rows)


def read_idx(path):
    """The array stored in an IDX file (MNIST's format), gzipped (``.gz``) or not.

    Values are returned as stored, with the file's shape (MNIST's images: (N, 28, 28) uint8).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    ndarray

    Raises
    ------
    ValueError
        Naming the file and what is wrong: missing, not IDX, or truncated (the header promises
        more bytes than follow, or a gzip stream that ends early).
    """
    import os
    import zlib

    name = os.fspath(path)
    if not os.path.isfile(name):
        raise ValueError(f"IDX file {name!r} does not exist (or is not a file).")
    try:
        return _read_idx_file(name)
    except (OSError, EOFError, zlib.error, ValueError) as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"cannot read IDX file {name!r}: {message}.") from None


def _read_idx_file(name):
    import gzip

    opener = gzip.open if name.lower().endswith(".gz") else open
    with opener(name, "rb") as handle:
        return _read_idx(handle.read())


def _read_idx(raw):
    """Parse IDX bytes: two zero bytes, a type code, the number of axes, big-endian int32 sizes."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError("it does not start with an IDX header")
    ndim = raw[3]
    if ndim == 0 or len(raw) < 4 + 4 * ndim:
        raise ValueError("its IDX header is truncated")
    shape = tuple(int(s) for s in np.frombuffer(raw, ">i4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    body = raw[4 + 4 * ndim:]
    if len(body) != expected:
        raise ValueError(f"the header promises shape {shape} ({expected} bytes) but {len(body)} bytes follow")
    return np.frombuffer(body, dtype).reshape(shape)
