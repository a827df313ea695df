"""Fitting an LGM to a dask array larger than memory: seconds per GB, against a bare pass.

Usage::

    python benchmarks/lgm_dask.py                 # 1, 2 and 4 GB, d=100, K=10 (a few minutes)
    python benchmarks/lgm_dask.py --quick         # 0.25 and 0.5 GB (seconds)
    python benchmarks/lgm_dask.py --workers 8     # dask threads (default: 2)

Each array is generated lazily, block by block (uniform noise through a known loading matrix), so
it never exists in memory as a whole. For each size the script times, with dask's threaded
scheduler and one BLAS thread per worker:

- "pass": dask generating the blocks and summing them (``X.sum(axis=0)``), the least work any
  method that reads the data does;
- "LGM fit": ``lgm.LGM(K).fit(X)``, i.e. one pass for N, the mean and the Gram matrix
  (:func:`lgm.sufficient_statistics.dask_statistics`) plus EM from S, which does not depend on N;

and prints wall-clock and CPU seconds per GB and the ratio fit / pass (wall), with the peak
resident memory of the process and the machine's load average.
On a dask.distributed cluster the same ``fit`` runs on the cluster's workers (see README.md).
"""
import argparse
import os
import resource
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import dask  # noqa: E402
import dask.array as da  # noqa: E402
import numpy as np  # noqa: E402

from lgm import LGM, principal_angles  # noqa: E402


def lazy_data(n_bytes, d, K, chunk_rows, seed=0):
    """A lazily generated (N, d) array x = A z + e + 5 of about n_bytes, and A."""
    N = int(n_bytes // (8 * d))
    A = np.random.default_rng(seed).normal(size=(d, K))
    randoms = da.random.default_rng(seed + 1)
    Z = (randoms.random(size=(N, K), chunks=(chunk_rows, K)) - 0.5) * np.sqrt(12)
    E = (randoms.random(size=(N, d), chunks=(chunk_rows, d)) - 0.5) * np.sqrt(12)
    return Z @ A.T + E + 5.0, A


def timed(fn):
    """fn(), with its (wall-clock, CPU) seconds (CPU: all threads of this process)."""
    start = np.array([time.perf_counter(), time.process_time()])
    out = fn()
    return out, np.array([time.perf_counter(), time.process_time()]) - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="0.25 and 0.5 GB")
    parser.add_argument("--tiny", action="store_true", help="1 MB, d=12, K=2 (a smoke test)")
    parser.add_argument("--sizes", type=float, nargs="+", help="array sizes in GB (default 1 2 4)")
    parser.add_argument("-d", type=int, default=100)
    parser.add_argument("-K", type=int, default=10)
    parser.add_argument("--chunk-mb", type=float, default=40.0, help="size of a row block in MB")
    parser.add_argument("--workers", type=int, default=2, help="dask worker threads")
    args = parser.parse_args(argv)
    if args.tiny:
        args.sizes, args.d, args.K, args.chunk_mb = [0.001], 12, 2, 0.25
    sizes = args.sizes or ([0.25, 0.5] if args.quick else [1.0, 2.0, 4.0])
    chunk_rows = max(1, int(args.chunk_mb * 1e6 // (8 * args.d)))
    dask.config.set(num_workers=args.workers)
    print(f"d={args.d}, K={args.K}, blocks of {chunk_rows} rows ({args.chunk_mb:g} MB),"
          f" {args.workers} dask threads, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"{'GB':>6} {'pass s/GB':>16} {'fit s/GB':>16} {'fit/pass':>9} {'angle deg':>10} {'peak RSS GB':>12}")
    print(f"{'':>6} {'wall':>8}{'CPU':>8} {'wall':>8}{'CPU':>8}")
    for gb in sizes:
        X, A = lazy_data(gb * 1e9, args.d, args.K, chunk_rows)
        size = X.nbytes / 1e9
        _, t_pass = timed(lambda: X.sum(axis=0).compute())
        model, t_fit = timed(lambda: LGM(args.K).fit(X))
        angle = np.degrees(principal_angles(model.A_, A).max())
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # kB on Linux
        print(f"{size:6.2f} {t_pass[0] / size:8.2f}{t_pass[1] / size:8.2f} {t_fit[0] / size:8.2f}"
              f"{t_fit[1] / size:8.2f} {t_fit[0] / t_pass[0]:9.2f} {angle:10.3f} {peak:12.2f}")


if __name__ == "__main__":
    main()
