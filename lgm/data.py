"""Data sets of the book: draws from a linear Gaussian model, curved manifolds, and the digits.

Nothing here touches the network. Synthetic data is generated from a seed, and the digits are
scikit-learn's bundled 8x8 images (:func:`sklearn.datasets.load_digits`), split into a training
and a test set by a fixed permutation that never changes between runs, machines or releases.
"""
from dataclasses import dataclass

import numpy as np

from lgm._checks import check_n_components, check_option, check_positive, check_positive_int, check_random_state

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
    order = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(len(X))
    n_test = int(np.floor(DIGITS_TEST_FRACTION * len(X)))
    test, train = order[:n_test], order[n_test:]
    if return_labels:
        return X[train], X[test], y[train], y[test]
    return X[train], X[test]
