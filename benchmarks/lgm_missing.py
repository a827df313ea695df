"""Imputation of hidden entries: ``lgm.LGM(missing="em")`` against scikit-learn's imputers.

Usage::

    python benchmarks/lgm_missing.py              # 20% of the entries hidden, three seeds
    python benchmarks/lgm_missing.py --share 0.4

For each of scikit-learn's bundled data sets (diabetes, breast cancer: columns standardised;
digits: pixels in [0, 1]) the script hides a share of the entries completely at random (every
row keeps one), fills them in with

- ``SimpleImputer()``: each column's mean;
- ``IterativeImputer(max_iter=10)``: each column regressed on the others in turn (BayesianRidge);
- ``lgm.LGM(K, missing="em").impute``: the posterior mean E[x_u | x_o] of a linear Gaussian model
  fitted by EM to the incomplete data, for a few K;

and prints the root-mean-square error over the hidden entries (mean over the seeds) and the
wall-clock and CPU time of fit + fill (one BLAS thread; on a busy machine the CPU time is the
fairer comparison). Only the LGM also gives a density of the incomplete rows
(``score``).

Then, for one K per data set and the default ``tol`` and ``max_iter``, the fit alone: EM alone
(``solver="em"``, what ``missing="em"`` did before the quasi-Newton hand-over) against the
default ``solver="auto"`` (EM, then L-BFGS-B on the observed-data likelihood when EM crawls):
iterations, times, the mean observed-data log-likelihood reached, and how many fits ended with a
ConvergenceWarning. ``--solvers-only`` skips the imputers. Measured figures are in
``benchmarks/RESULTS.md``.
"""
import argparse
import os
import time
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from sklearn.datasets import load_breast_cancer, load_diabetes  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.experimental import enable_iterative_imputer  # noqa: E402,F401
from sklearn.impute import IterativeImputer, SimpleImputer  # noqa: E402

from lgm import LGM, load_digits  # noqa: E402


def standardised(X):
    return (X - X.mean(axis=0)) / X.std(axis=0)


DATA = {
    "diabetes": (lambda: standardised(load_diabetes().data), (2, 4, 6)),
    "breast cancer": (lambda: standardised(load_breast_cancer().data), (4, 8, 12)),
    "digits": (lambda: load_digits(split=False), (8, 16, 24)),
}
#: K for the comparison of the solvers
SOLVER_K = {"diabetes": 3, "breast cancer": 5, "digits": 16}


def hide(X, share, rng):
    hidden = rng.random(X.shape) < share
    hidden[hidden.all(axis=1), 0] = False
    return np.where(hidden, np.nan, X), hidden


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--share", type=float, default=0.2, help="share of the entries hidden")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--solvers-only", action="store_true", help="skip the imputers")
    parser.add_argument("--tiny", action="store_true",
                        help="the first 100 rows of diabetes, one seed (a smoke test)")
    args = parser.parse_args(argv)
    if args.tiny:  # diabetes alone, its first 100 rows, one seed
        args.seeds = 1
        load, Ks = DATA["diabetes"]
        DATA.clear()
        DATA["diabetes"] = (lambda: load()[:100], Ks[:1])
    if not args.solvers_only:
        compare_imputers(args)
    compare_solvers(args)


def compare_imputers(args):
    print(f"{args.share:.0%} of the entries hidden at random; RMSE over them (mean of {args.seeds} seeds);"
          f" load average {os.getloadavg()[0]:.1f}")
    for name, (load, Ks) in DATA.items():
        X = load()
        methods = {"column means": lambda: SimpleImputer(),
                   "IterativeImputer": lambda: IterativeImputer(max_iter=10, random_state=0)}
        methods.update({f"LGM K={K}": (lambda K=K: LGM(K, missing="em", tol=1e-5, max_iter=500))
                        for K in Ks})
        errors = {m: [] for m in methods}
        times = {m: np.zeros(2) for m in methods}
        for seed in range(args.seeds):
            Xm, hidden = hide(X, args.share, np.random.default_rng(seed))
            for method, make in methods.items():
                start = np.array([time.perf_counter(), time.process_time()])
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    model = make()
                    filled = model.fit(Xm).impute(Xm) if isinstance(model, LGM) else model.fit_transform(Xm)
                times[method] += np.array([time.perf_counter(), time.process_time()]) - start
                errors[method].append(np.sqrt(np.mean((filled[hidden] - X[hidden]) ** 2)))
        print(f"\n{name} (N={X.shape[0]}, d={X.shape[1]})")
        for method in methods:
            wall, cpu = times[method] / args.seeds
            print(f"  {method:18s} RMSE {np.mean(errors[method]):.4f}   wall {wall:6.2f} s   CPU {cpu:6.2f} s")


def compare_solvers(args):
    print(f"\nEM alone (solver='em') against the default (solver='auto'), tol=1e-7, max_iter=1000;"
          f" mean of {args.seeds} seeds; load average {os.getloadavg()[0]:.1f}")
    for name, (load, _) in DATA.items():
        X, K = load(), SOLVER_K[name]
        print(f"\n{name} (N={X.shape[0]}, d={X.shape[1]}), K={K}")
        for solver in ("em", "auto"):
            n_iter, loglik, warned, times = [], [], 0, np.zeros(2)
            for seed in range(args.seeds):
                Xm, _ = hide(X, args.share, np.random.default_rng(seed))
                start = np.array([time.perf_counter(), time.process_time()])
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", ConvergenceWarning)
                    model = LGM(K, missing="em", solver=solver).fit(Xm)
                times += np.array([time.perf_counter(), time.process_time()]) - start
                warned += any(issubclass(w.category, ConvergenceWarning) for w in caught)
                n_iter.append(model.n_iter_)
                loglik.append(model.loglik_[-1])
            wall, cpu = times / args.seeds
            print(f"  solver={solver!r:7s} iterations {np.mean(n_iter):6.0f}   wall {wall:6.2f} s   CPU {cpu:6.2f} s"
                  f"   mean loglik {np.mean(loglik):.6f}   ConvergenceWarning {warned}/{args.seeds}")


if __name__ == "__main__":
    main()
