"""Mixtures of factor analysers on the digits, against the LGM and scikit-learn's Gaussian mixtures.

Usage::

    python benchmarks/mixture_fa.py            # the full grids (a few minutes)
    python benchmarks/mixture_fa.py --quick    # small grids (under a minute)

Data: the book's digits, ``lgm.load_digits()`` (dequantised to [0, 1), the fixed split of 1348
training and 449 test images). Each family is fitted on the training images over a grid of its
sizes; the size with the best BIC on the training images is chosen (as scikit-learn's
``GaussianMixture.bic``: -2 N l/N + p log N, lower is better), and its held-out log-likelihood
on the test images is reported (mean nats per image, higher is better):

- ``lgm.MixtureFA(J, K)``: J components of K factors with diagonal noise;
- ``lgm.LGM(K)``: one factor analyser (J = 1);
- ``sklearn.mixture.GaussianMixture(J, covariance_type="full" | "diag")``.

It also times one fit of the chosen MixtureFA on its own (target: under 30 s on two cores).
Every model runs under the same BLAS thread limit (threadpoolctl). Figures are in
``benchmarks/RESULTS.md``.
"""
import argparse
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits

from lgm import LGM, MixtureFA, load_digits


def lgm_bic(model, X):
    """BIC of a fitted LGM, in scikit-learn's convention (lower is better)."""
    d, K = model.A_.shape
    p = 2 * d + d * K - K * (K - 1) // 2
    return -2 * len(X) * model.score(X) + p * np.log(len(X))


def best_by_bic(name, make, grid, X_train, X_test, bic):
    """Fit ``make(size)`` for each size; print and return the row of the best BIC."""
    rows = []
    for size in grid:
        start, cpu = time.perf_counter(), time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = make(size).fit(X_train)
        seconds = time.perf_counter() - start, time.process_time() - cpu
        rows.append((bic(model, X_train), size, model.score(X_test), seconds))
        print(f"  {name} {size}: BIC {rows[-1][0]:.0f}, held-out {rows[-1][2]:.2f}"
              f" nats/image, {seconds[0]:.2f} s wall, {seconds[1]:.2f} s CPU", flush=True)
    return min(rows, key=lambda row: row[0])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small grids")
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS threads (default 1: the machine is shared)")
    args = parser.parse_args(argv)
    X_train, X_test = load_digits()
    if args.quick:
        mfa_grid = [(J, K) for J in (1, 4, 8) for K in (3, 6)]
        lgm_grid, full_grid, diag_grid = [5, 10, 20], [1, 2, 3], [5, 10, 20]
    else:
        mfa_grid = [(J, K) for J in (1, 2, 4, 6, 8, 10, 12, 15) for K in (2, 3, 4, 6)]
        lgm_grid, full_grid = list(range(2, 41, 2)), list(range(1, 9))
        diag_grid = [1, 2, 4, 6, 8, 10, 15, 20, 25, 30, 40, 50, 60]
    results = {}
    with threadpool_limits(args.threads):
        results["MixtureFA (J, K)"] = best_by_bic(
            "MixtureFA", lambda JK: MixtureFA(*JK, random_state=0), mfa_grid,
            X_train, X_test, lambda m, X: m.bic(X))
        results["LGM (K)"] = best_by_bic(
            "LGM", lambda K: LGM(K), lgm_grid, X_train, X_test, lgm_bic)
        for kind, grid in (("full", full_grid), ("diag", diag_grid)):
            results[f"GaussianMixture {kind} (J)"] = best_by_bic(
                f"GaussianMixture {kind}",
                lambda J, kind=kind: GaussianMixture(J, covariance_type=kind, random_state=0),
                grid, X_train, X_test, lambda m, X: m.bic(X))
        J, K = results["MixtureFA (J, K)"][1]
        times = []
        for seed in range(3):
            start, cpu = time.perf_counter(), time.process_time()
            model = MixtureFA(J, K, random_state=seed).fit(X_train)
            times.append((time.perf_counter() - start, time.process_time() - cpu))
    print("\n| model (size chosen by BIC) | size | BIC (train) | held-out l/N (nats/image)"
          " | fit wall (s) | fit CPU (s) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, (bic, size, held_out, (wall, cpu)) in results.items():
        print(f"| {name} | {size} | {bic:.0f} | {held_out:.2f} | {wall:.2f} | {cpu:.2f} |")
    print(f"\nMixtureFA({J}, {K}) fit on the 1348 training digits: "
          + ", ".join(f"{wall:.2f} s wall ({cpu:.2f} s CPU)" for wall, cpu in times)
          + f" (seeds 0-2; {model.n_iter_} iterations for seed 2)")


if __name__ == "__main__":
    main()
