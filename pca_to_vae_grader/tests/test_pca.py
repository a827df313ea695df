"""Autograder tests of book/exercises/pca.md (chapter 4: PCA and its iterative estimator).

Subspaces are compared by principal angles (scipy.linalg.subspace_angles), never by raw loadings,
since any invertible mix of a basis spans the same subspace. The reference principal subspace is
the top right singular vectors of the centred data (numpy's SVD); the reference iterates are the
package's lgm.pca_als; the reference angles are scipy's. Tolerances are stated at each test.
"""
import numpy as np
import pytest
from scipy.linalg import subspace_angles

import lgm
from pca_to_vae_grader import inputs
from pca_to_vae_grader.compare import check_array, check_subspace


def _data(rng, spectrum, N=400, mean=5.0):
    """N samples in d = len(spectrum) dimensions with covariance eigenvalues close to ``spectrum``."""
    d = len(spectrum)
    Q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return (rng.normal(size=(N, d)) * np.sqrt(spectrum)) @ Q.T + mean * rng.normal(size=d)


def _top_subspace(X, K, centre=True):
    R = X - X.mean(axis=0) if centre else X
    return np.linalg.svd(R, full_matrices=False)[2][:K].T


def _uncentred_iterates(X, n_iter, W0):
    """What the iteration Z <- W^+ X, W <- X Z^+ gives from W0 on the raw (uncentred) data: with a
    random mean, the uncentred second and third directions can be close, so this is not always the
    uncentred top subspace after n_iter steps."""
    W = W0
    for _ in range(n_iter):
        Z = np.linalg.lstsq(W, X.T, rcond=None)[0].T
        W = np.linalg.lstsq(Z, X, rcond=None)[0].T
    return W


# ---------------------------------------------------------------------------------------------
# pca_als(X, n_components, n_iter, W0) -> W (d, K)


@pytest.mark.points(2)
def test_pca_als_converges_to_the_principal_subspace(student):
    # lambda_3 / lambda_2 = 0.25, so 60 iterations shrink the angle by 0.25^60: far below 1e-8.
    rng = inputs.rng(0)
    X = _data(rng, [10.0, 4.0, 1.0, 0.5, 0.3, 0.1])
    W0 = rng.normal(size=(6, 2))
    W = student.pca_als(X, 2, 60, W0)
    check_subspace(W, _top_subspace(X, 2), "W = pca_als(X, 2, 60, W0)", atol=1e-8, mistakes=[
        ("forget to centre X (subtract the mean of each column) first", _uncentred_iterates(X, 60, W0)),
        ("keep the directions of the smallest variance", np.linalg.svd(X - X.mean(axis=0))[2][-2:].T),
    ])


@pytest.mark.points(2)
def test_pca_als_follows_the_alternating_iteration(student):
    # With lambda_3 / lambda_2 = 0.9 two iterations from W0 are still far from the principal subspace
    # (checked below), so this grades the iteration Z <- W^+ X, W <- X Z^+ itself, not an SVD. The
    # iterates of a correct implementation agree with the package's to about 1e-12 rad; 1e-7 allows
    # for a different but stable way of solving the two least-squares problems.
    rng = inputs.rng(1)
    X = _data(rng, [5.0, 1.0, 0.9, 0.2, 0.1])
    W0 = rng.normal(size=(5, 2))
    expected = lgm.pca_als(X, 2, 2, W0=W0)
    converged = _top_subspace(X, 2)
    assert np.max(subspace_angles(expected, converged)) > 1e-2
    W = student.pca_als(X, 2, 2, W0)
    check_subspace(W, expected, "W = pca_als(X, 2, 2, W0), after two iterations", atol=1e-7, mistakes=[
        ("return the converged principal subspace (an SVD) instead of n_iter iterations from W0", converged),
        ("do one iteration too many", lgm.pca_als(X, 2, 3, W0=W0)),
        ("do one iteration too few", lgm.pca_als(X, 2, 1, W0=W0)),
    ])


# ---------------------------------------------------------------------------------------------
# principal_angles(U, V) -> (min(K1, K2),), increasing, radians


@pytest.mark.points(2)
@pytest.mark.parametrize("K1, K2", [(2, 2), (3, 2)])
def test_principal_angles_match_scipy(student, K1, K2):
    # Bases that are not orthonormal: the angles are between the spanned subspaces.
    rng = inputs.rng(10 + K1)
    U = rng.normal(size=(6, K1)) * [1.0, 5.0, 0.2][:K1]
    V = rng.normal(size=(6, K2))
    expected = np.sort(subspace_angles(U, V))
    raw = np.linalg.svd(U.T @ V, compute_uv=False)
    check_array(student.principal_angles(U, V), expected, f"principal_angles(U, V) for K1 = {K1}, K2 = {K2}",
                rtol=1e-8, atol=1e-10, mistakes=[
                    ("do not make the bases orthonormal first (np.linalg.qr or scipy.linalg.orth): the singular "
                     "values of U^T V are cosines only for orthonormal U and V", np.sort(np.arccos(np.clip(raw, -1, 1)))),
                    ("return the angles in decreasing order", expected[::-1]),
                    ("return degrees instead of radians", np.degrees(expected)),
                ])


@pytest.mark.points(1)
def test_principal_angles_of_a_subspace_with_itself_are_zero(student):
    # span(U R) = span(U) for an invertible R. arccos near 1 is ill-conditioned: a cosine that rounds
    # to 1 + 2e-16 gives NaN unless clipped, and one of 1 - 1e-16 gives an angle of about 1.5e-8, so
    # 1e-7 rad is accepted.
    rng = inputs.rng(20)
    U = rng.normal(size=(8, 3))
    V = U @ rng.normal(size=(3, 3))
    check_array(student.principal_angles(U, V), np.zeros(3), "principal_angles(U, U R), a subspace with itself",
                rtol=0, atol=1e-7)
    # Zeros alone prove nothing (a function that returns zeros passes the first check): the planes
    # span(e1, e2) and span(e1, cos t e2 + sin t e3) meet at the angles 0 and t.
    t = 0.7
    P, Q = np.eye(4)[:, :2], np.array([[1.0, 0.0], [0.0, np.cos(t)], [0.0, np.sin(t)], [0.0, 0.0]])
    check_array(np.sort(np.asarray(student.principal_angles(P, Q), dtype=float).ravel()), [0.0, t],
                f"principal_angles of span(e1, e2) and span(e1, cos({t}) e2 + sin({t}) e3), sorted",
                rtol=1e-7, atol=1e-7)
