"""Factor analysis by EM: ``lgm.LGM`` against scikit-learn's ``FactorAnalysis``, in one run.

Usage::

    python benchmarks/lgm_vs_sklearn.py            # N=100000, d=784, K=20 (minutes, mostly scikit-learn)
    python benchmarks/lgm_vs_sklearn.py --quick    # N=5000, d=100, K=10 (seconds)
    python benchmarks/lgm_vs_sklearn.py --tiny     # N=300, d=12, K=2 (the smoke test's)
    python benchmarks/lgm_vs_sklearn.py --threads 2  # BLAS threads for every method (default 1)

Data come from the model itself (``lgm.data.make_lgm_data``, diagonal noise). Every estimator
runs with its default settings under the same BLAS thread limit (threadpoolctl). The script
prints wall-clock times, the time ratios, and the log-likelihood differences, each mean
log-likelihood per sample computed for every fitted model by the same two formulas:
scikit-learn's ``FactorAnalysis.score`` (a dense d x d precision) with the parameters plugged in,
and ``lgm.mean_log_likelihood`` (Woodbury). The baseline "X^T X" is the faster of
``X.T @ X`` and one ``dsyrk`` call: the least work any method that reads the second moments does.

Why LGM is fast: expected-completion EM needs the data only through the sample covariance S,
formed once with ``dsyrk`` (O(N d^2)); every EM iteration then costs O(d^2 K), whatever N is.
scikit-learn's FactorAnalysis computes an SVD of the whole (N, d) data in every iteration.

Measured figures are in ``benchmarks/RESULTS.md``.
"""
import argparse
import os
import time

import numpy as np
from scipy.linalg.blas import dsyrk
from sklearn.decomposition import FactorAnalysis
from threadpoolctl import threadpool_limits

from lgm import LGM, make_lgm_data, mean_log_likelihood
from lgm.em import sample_covariance


def timed(fn):
    """Run ``fn()`` once; return (result, (wall-clock seconds, CPU seconds of this process))."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, (time.perf_counter() - wall, time.process_time() - cpu)


def sklearn_score(X, mean, A, D):
    """scikit-learn's FactorAnalysis log-likelihood formula for the parameters (mean, A, D)."""
    fa = FactorAnalysis(n_components=A.shape[1])
    fa.components_, fa.noise_variance_, fa.mean_ = A.T, D, mean
    fa.n_features_in_ = X.shape[1]
    return fa.score(X)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N=5000, d=100, K=10 (seconds)")
    parser.add_argument("--tiny", action="store_true", help="N=300, d=12, K=2 (a smoke test)")
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS threads for every method (default 1: on a shared machine more threads "
                             "than free cores slow small BLAS calls a hundredfold)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fa-solvers", nargs="+", default=["randomized", "lapack"],
                        choices=["randomized", "lapack"],
                        help="FactorAnalysis's svd_method(s) to time (default both; lapack takes minutes)")
    args = parser.parse_args(argv)
    N, d, K = ((300, 12, 2) if args.tiny else (5000, 100, 10) if args.quick
               else (100000, 784, 20))

    X, _ = make_lgm_data(N, d, K, random_state=args.seed)
    print(f"N={N} d={d} K={K}  threads={args.threads} of {os.cpu_count()} cores  "
          f"load average before: {os.getloadavg()[0]:.1f}", flush=True)
    rows = {}
    with threadpool_limits(limits=args.threads):
        _, t_gemm = timed(lambda: X.T @ X)
        _, t_syrk = timed(lambda: dsyrk(1.0, X.T))
        t_xtx = min(t_gemm, t_syrk)  # by wall-clock time
        print(f"X^T X (wall, CPU seconds): numpy matmul {t_gemm[0]:.2f}, {t_gemm[1]:.2f}; "
              f"dsyrk {t_syrk[0]:.2f}, {t_syrk[1]:.2f}", flush=True)

        lgm_model, t = timed(lambda: LGM(K).fit(X))
        rows["lgm.LGM"] = (t, lgm_model.n_iter_, lgm_model.mean_, lgm_model.A_, lgm_model.D_)
        print(f"lgm.LGM: {t[0]:.2f} s, {lgm_model.n_iter_} iterations", flush=True)
        for solver in args.fa_solvers:
            fa, t = timed(lambda: FactorAnalysis(K, svd_method=solver, random_state=args.seed).fit(X))
            rows[f"FactorAnalysis({solver})"] = (t, fa.n_iter_, fa.mean_, fa.components_.T, fa.noise_variance_)
            print(f"FactorAnalysis({solver}): {t[0]:.2f} s, {fa.n_iter_} iterations", flush=True)

        S = sample_covariance(X, X.mean(axis=0))  # all three means are the sample mean
        scores = {name: (sklearn_score(X, m, A, D), mean_log_likelihood(S, A, D))
                  for name, (_, _, m, A, D) in rows.items()}

    t_lgm = rows["lgm.LGM"][0]
    fastest = min((name for name in rows if name != "lgm.LGM"), key=lambda name: rows[name][0][0])
    t_fastest = rows[fastest][0]
    best = max(s[0] for s in scores.values())
    best_w = max(s[1] for s in scores.values())
    print(f"\n{'method':26s} {'wall (s)':>9s} {'CPU (s)':>8s} {'iters':>6s} {'wall/LGM':>9s} {'CPU/LGM':>8s} "
          f"{'loglik - best (sklearn formula)':>32s} {'(Woodbury formula)':>19s}")
    for name, ((wall, cpu), n_iter, *_) in rows.items():
        s_sk, s_w = scores[name]
        print(f"{name:26s} {wall:9.2f} {cpu:8.2f} {n_iter:6d} {wall / t_lgm[0]:9.1f} {cpu / t_lgm[1]:8.1f} "
              f"{s_sk - best:32.2e} {s_w - best_w:19.2e}")
    print(f"\nmean log-likelihood per sample (best): {best:.6f} nats")
    print("LGM minus FactorAnalysis (target >= -1e-4): " + ", ".join(
        f"{name}: {scores['lgm.LGM'][0] - scores[name][0]:+.2e}" for name in rows if name != "lgm.LGM"))
    print(f"speed-up over the fastest FactorAnalysis solver, {fastest} (target >= 10x): "
          f"wall {t_fastest[0] / t_lgm[0]:.1f}x, CPU {t_fastest[1] / t_lgm[1]:.1f}x")
    print(f"LGM time / time to form X^T X (target <= 2): wall {t_lgm[0] / t_xtx[0]:.2f}, "
          f"CPU {t_lgm[1] / min(t_gemm[1], t_syrk[1]):.2f}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
