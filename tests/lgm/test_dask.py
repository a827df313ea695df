"""Fits on dask arrays: the sufficient statistics computed chunk by chunk equal numpy's, the fits
equal the numpy fits to rounding, what needs every row refuses dask clearly, and a lazily generated
array of several GB is fitted in a small fraction of its size in memory."""
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

da = pytest.importorskip("dask.array")

from lgm.data import load_digits, make_lgm_data  # noqa: E402
from lgm.em import LGM, sample_covariance  # noqa: E402
from lgm.pca import PCA, principal_angles  # noqa: E402
from lgm.ppca import PPCA  # noqa: E402
from lgm.sufficient_statistics import dask_statistics, is_dask_array  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("chunks", [(1000, 7), (333, 3), (10_000, 7)])
def test_statistics_equal_numpy_for_any_chunking(chunks):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(10_000, 7)) @ rng.normal(size=(7, 7)) + 50.0  # a large mean
    N, mean, S = dask_statistics(da.from_array(X, chunks=chunks))
    assert N == 10_000
    # Different orders of summation, and the shift by the first block's mean keeps the mean of 50
    # from cancelling digits: rounding only.
    np.testing.assert_allclose(mean, X.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(S, np.cov(X.T, bias=True), rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(S, S.T)


def test_integer_arrays_are_read_as_floats():
    X = np.arange(60).reshape(20, 3) % 7
    _, mean, S = dask_statistics(da.from_array(X, chunks=(6, 3)))
    np.testing.assert_allclose(S, np.cov(X.T, bias=True), rtol=1e-12)


def test_fits_equal_the_numpy_fits():
    X_train, _ = load_digits()
    X_lazy = da.from_array(X_train, chunks=(200, 64))
    ours, numpy_fit = LGM(10).fit(X_lazy), LGM(10).fit(X_train)
    # The same EM from the same S up to rounding (~1e-16 relative), over ~100 iterations.
    np.testing.assert_allclose(ours.A_, numpy_fit.A_, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(ours.D_, numpy_fit.D_, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(ours.loglik_[-1], numpy_fit.loglik_[-1], rtol=1e-12)
    assert ours.n_features_in_ == 64
    # Scoring afterwards takes ordinary arrays.
    np.testing.assert_allclose(ours.score(X_train), numpy_fit.score(X_train), rtol=1e-10)

    ppca, ppca_numpy = PPCA(10).fit(X_lazy), PPCA(10).fit(X_train)
    np.testing.assert_allclose(ppca.noise_variance_, ppca_numpy.noise_variance_, rtol=1e-10)
    np.testing.assert_allclose(ppca.A_, ppca_numpy.A_, rtol=1e-7, atol=1e-9)

    pca, pca_numpy = PCA(10).fit(X_lazy), PCA(10).fit(X_train)
    # eigh of S vs the SVD of X: the same eigenvalues, and the same (sign-fixed) eigenvectors
    np.testing.assert_allclose(pca.explained_variance_, pca_numpy.explained_variance_, rtol=1e-10)
    np.testing.assert_allclose(pca.explained_variance_ratio_, pca_numpy.explained_variance_ratio_, rtol=1e-10)
    np.testing.assert_allclose(pca.components_, pca_numpy.components_, atol=1e-7)
    assert principal_angles(pca.components_.T, pca_numpy.components_.T).max() < 1e-7


def test_what_needs_every_row_refuses_dask_clearly():
    X, _ = make_lgm_data(200, 5, 2, random_state=0)
    X_lazy = da.from_array(X, chunks=(50, 5))
    with pytest.raises(ValueError, match="completion='sampled'.*does not take a dask array"):
        LGM(2, completion="sampled").fit(X_lazy)
    with pytest.raises(ValueError, match="missing='em'.*does not take a dask array"):
        LGM(2, missing="em").fit(X_lazy)
    X[150, 3] = np.nan
    with pytest.raises(ValueError, match="contains NaN or infinite values"):
        LGM(2).fit(da.from_array(X, chunks=(50, 5)))
    with pytest.raises(ValueError, match="2-D dask array"):
        PPCA(1).fit(da.ones(10, chunks=5))
    with pytest.raises(ValueError, match="unknown shape"):
        LGM(1).fit(X_lazy[X_lazy[:, 0] > 0])
    with pytest.raises(ValueError, match="at least 2 samples"):
        LGM(1).fit(X_lazy[:1])


def test_importing_lgm_does_not_import_dask():
    code = "import sys, numpy as np, lgm; lgm.LGM(1).fit(np.eye(3)); print('dask' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"
    assert not is_dask_array(np.eye(2))


@pytest.mark.slow
def test_a_lazy_array_of_several_gigabytes_is_fitted_in_little_memory():
    # 8 million rows of d = 50 float64: 3.2 GB, generated block by block and never held whole.
    # Uniform draws scaled to unit variance are the cheapest to generate; their covariance is
    # A A^T + I as for Gaussian ones, and the fit depends on the data only through it. The child
    # process reports its peak resident memory (ru_maxrss): the interpreter, numpy, scipy,
    # sklearn and dask take ~150 MB of it, the 40 MB blocks in flight a few hundred MB.
    code = textwrap.dedent("""
        import resource
        import dask
        import dask.array as da
        import numpy as np
        from lgm import LGM, principal_angles

        dask.config.set(num_workers=2)
        N, d, K, chunk = 8_000_000, 50, 3, 100_000
        A = np.random.default_rng(0).normal(size=(d, K))
        randoms = da.random.default_rng(1)
        Z = (randoms.random(size=(N, K), chunks=(chunk, K)) - 0.5) * np.sqrt(12)
        E = (randoms.random(size=(N, d), chunks=(chunk, d)) - 0.5) * np.sqrt(12)
        X = Z @ A.T + E + 5.0
        model = LGM(K).fit(X)
        print(X.nbytes, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
              principal_angles(model.A_, A).max(), np.abs(model.D_ - 1).max())
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                              "MKL_NUM_THREADS": "1", "PATH": ""}, timeout=300)
    assert out.returncode == 0, out.stderr
    size, peak, angle, psi_error = map(float, out.stdout.split())
    assert size > 3e9
    assert peak < size / 5, f"peak memory {peak / 1e9:.2f} GB for a {size / 1e9:.1f} GB array"
    # With N = 8e6 the estimates are within ~1e-3 of the truth (unit noise variances).
    assert angle < 0.01 and psi_error < 0.01
