"""The data sets: shapes, ranges, determinism under random_state, the fixed digits split."""
import numpy as np
import pytest
from sklearn.datasets import load_digits as sklearn_load_digits

from lgm import load_digits, make_lgm_data, make_manifold_data


@pytest.mark.parametrize("noise", ["diagonal", "isotropic"])
def test_make_lgm_data_shapes_and_structure(noise):
    X, truth = make_lgm_data(50, 6, 2, noise=noise, random_state=0)
    assert X.shape == (50, 6) and truth.A.shape == (6, 2) and truth.D.shape == (6,)
    assert truth.mean.shape == (6,) and truth.Z.shape == (50, 2)
    assert np.all((truth.D >= 0.1) & (truth.D <= 1.0))
    if noise == "isotropic":
        assert np.ptp(truth.D) == 0.0


def test_make_lgm_data_follows_the_model():
    """With N = 200000 the sample covariance matches A A^T + D.

    The standard error of a covariance entry is about sqrt(C_ii C_jj / N) <= 0.02 here (the
    diagonal of C is at most about 1 + 3 * 4 for d=4, K=3 standard-normal loadings), so an
    absolute tolerance of 0.1 is five standard errors.
    """
    X, t = make_lgm_data(200_000, 4, 3, random_state=1)
    C = t.A @ t.A.T + np.diag(t.D)
    np.testing.assert_allclose(np.cov(X.T, bias=True), C, atol=0.1)
    np.testing.assert_allclose(X.mean(axis=0), t.mean, atol=0.03)
    # The residual after removing the true signal is the noise, with variances D.
    E = X - t.mean - t.Z @ t.A.T
    np.testing.assert_allclose(E.var(axis=0), t.D, rtol=0.02)


def test_make_lgm_data_is_deterministic():
    X1, t1 = make_lgm_data(20, 5, 2, random_state=3)
    X2, t2 = make_lgm_data(20, 5, 2, random_state=np.random.default_rng(3))
    X3, _ = make_lgm_data(20, 5, 2, random_state=4)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(t1.A, t2.A)
    assert not np.allclose(X1, X3)


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_samples=0, n_features=3, n_components=1), "n_samples"),
    (dict(n_samples=10, n_features=3, n_components=4), "n_components"),
    (dict(n_samples=10, n_features=3, n_components=1, noise="full"), "noise"),
])
def test_make_lgm_data_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_lgm_data(**kwargs)


@pytest.mark.parametrize("kind, d, K", [("arc", 2, 1), ("saddle", 3, 2)])
def test_make_manifold_data(kind, d, K):
    X, z = make_manifold_data(300, kind=kind, noise=0.0, random_state=0)
    assert X.shape == (300, d) and z.shape == (300, K)
    if kind == "arc":  # noise-free points lie on the circle of radius 2
        np.testing.assert_allclose(np.hypot(X[:, 0], X[:, 1]), 2.0, rtol=1e-12)
    else:  # and on the saddle x3 = (x1^2 - x2^2) / 2
        np.testing.assert_allclose(X[:, 2], 0.5 * (X[:, 0] ** 2 - X[:, 1] ** 2), atol=1e-12)
    X1, _ = make_manifold_data(300, kind=kind, noise=0.1, random_state=5)
    X2, _ = make_manifold_data(300, kind=kind, noise=0.1, random_state=5)
    np.testing.assert_array_equal(X1, X2)
    with pytest.raises(ValueError, match="noise"):
        make_manifold_data(10, kind=kind, noise=-1.0)
    with pytest.raises(ValueError, match="kind"):
        make_manifold_data(10, kind="torus")


def test_load_digits_split_is_fixed_and_disjoint():
    """The split does not depend on random_state and is a partition of all 1797 images."""
    Xtr, Xte, ytr, yte = load_digits(dequantise=False, return_labels=True)
    assert Xtr.shape == (1348, 64) and Xte.shape == (449, 64)
    ref = sklearn_load_digits()
    # Every image appears exactly once across train + test: match rows against the reference.
    allX = np.vstack([Xtr, Xte]) * 16
    ref_sorted = ref.data[np.lexsort(ref.data.T)]
    np.testing.assert_array_equal(allX[np.lexsort(allX.T)], ref_sorted)
    np.testing.assert_array_equal(np.sort(np.concatenate([ytr, yte])), np.sort(ref.target))
    Xtr2, Xte2 = load_digits(dequantise=False, random_state=123)
    np.testing.assert_array_equal(Xtr, Xtr2)
    np.testing.assert_array_equal(Xte, Xte2)


def test_load_digits_dequantisation():
    X = load_digits(split=False, random_state=0)
    V = sklearn_load_digits().data
    assert X.shape == (1797, 64)
    assert X.min() >= 0.0 and X.max() < 1.0
    # (v + u) / 17 with u in [0, 1): the integer part of 17 x recovers v.
    np.testing.assert_array_equal(np.floor(X * 17), V)
    np.testing.assert_array_equal(X, load_digits(split=False, random_state=0))
    assert not np.array_equal(X, load_digits(split=False, random_state=1))
    Xq = load_digits(split=False, dequantise=False)
    assert Xq.min() == 0.0 and Xq.max() == 1.0
    np.testing.assert_array_equal(Xq * 16, V)


def test_load_digits_rejects_bad_arguments():
    with pytest.raises(TypeError, match="split"):
        load_digits(split="yes")
    with pytest.raises(TypeError, match="random_state"):
        load_digits(random_state="seed")
