"""``lgm.LGM`` of this tree against another tree's (e.g. ``main``), alternated in one run.

Usage::

    git archive main lgm | tar -x -C /tmp/before        # the other tree's lgm/
    python benchmarks/lgm_before_after.py --before /tmp/before          # N=100000, d=784, K=20
    python benchmarks/lgm_before_after.py --before /tmp/before --tiny   # N=300, d=12, K=2

The data (``make_lgm_data(N, d, K, random_state=0)``) are written once to a temporary .npy file.
Each timing then runs in a fresh interpreter with one tree's ``lgm`` first on its path, the two
trees alternating (before, after, before, after, ...), one BLAS thread each, so both see the
same load. Each process reports, in CPU seconds of its own:

- ``EM iteration``: the mean cost of one EM iteration with expected completion and its score
  (the log-likelihood recorded after it), run through ``lgm.completion.run`` from the PPCA
  start on the data's S, exactly as ``LGM.fit`` runs it in that tree;
- ``LGM(K).fit(X)``: the whole fit;
- ``X^T X``: forming the second moments (numpy matmul), the least work any method that reads
  them does; and the fit's time over it.

Measured figures are in ``benchmarks/RESULTS.md``.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WORKER = r"""
import inspect, json, sys, time
import numpy as np
from threadpoolctl import threadpool_limits
import lgm, lgm.em
from lgm.completion import run
from lgm.ppca import ppca_ml

X = np.load(sys.argv[1])
K, n_iter = int(sys.argv[2]), int(sys.argv[3])


def cpu(fn):
    start = time.process_time()
    out = fn()
    return out, time.process_time() - start


with threadpool_limits(limits=1):
    _, xtx = cpu(lambda: X.T @ X)
    model, fit = cpu(lambda: lgm.LGM(K).fit(X))
    S = lgm.em.sample_covariance(X, X.mean(axis=0))
    A, sigma2 = ppca_ml(S, K)
    floor = 1e-8 * np.trace(S) / S.shape[0]
    D = np.full(S.shape[0], max(sigma2, floor))
    if "S" in inspect.signature(lgm.em.ExpectedCompletion).parameters:
        state = lgm.em.ExpectedCompletion(A, D, floor=floor, S=S)  # scored by its E-step
        score = lambda: state.loglik
    else:
        state = lgm.em.ExpectedCompletion(A, D, floor=floor)  # scored apart
        score = lambda: lgm.em.mean_log_likelihood(S, state.A, state.D)
    (history, _), em = cpu(lambda: run(state, lambda: [S], n_iter=n_iter, score=score, rng=None))
print(json.dumps({"em_iteration": em / n_iter, "fit": fit, "xtx": xtx,
                  "n_iter": int(model.n_iter_), "loglik": float(model.loglik_[-1]),
                  "em_loglik": history[-1]}))
"""


def measure(tree, data, K, n_iter):
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", WORKER, str(data), str(K), str(n_iter)],
                         capture_output=True, text=True, env=env, check=True, cwd=tempfile.gettempdir())
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, type=Path,
                        help="a folder holding the other tree's lgm/ package")
    parser.add_argument("--tiny", action="store_true", help="N=300, d=12, K=2 (a smoke test)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--em-iterations", type=int, default=50)
    args = parser.parse_args(argv)
    N, d, K = (300, 12, 2) if args.tiny else (100000, 784, 20)
    repeats = 1 if args.tiny else args.repeats
    sys.path.insert(0, str(ROOT))
    import numpy as np

    from lgm import make_lgm_data

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "X.npy"
        np.save(data, make_lgm_data(N, d, K, random_state=0)[0])
        print(f"N={N} d={d} K={K}, one BLAS thread, {os.cpu_count()} cores, load average "
              f"{os.getloadavg()[0]:.1f} before", flush=True)
        rows = {"before": [], "after": []}
        for _ in range(repeats):
            for name, tree in (("before", args.before), ("after", ROOT)):
                rows[name].append(measure(tree, data, K, args.em_iterations))
                r = rows[name][-1]
                print(f"{name:6s}  EM iteration {1e3 * r['em_iteration']:7.2f} ms   fit {r['fit']:6.2f} s"
                      f"   X^T X {r['xtx']:6.2f} s   fit / X^T X {r['fit'] / r['xtx']:5.2f}"
                      f"   iterations {r['n_iter']}   loglik {r['loglik']:.9f}", flush=True)
    best = {name: {key: min(r[key] for r in runs) for key in ("em_iteration", "fit", "xtx")}
            for name, runs in rows.items()}
    print(f"\nbest of {repeats} (CPU seconds):")
    for name, b in best.items():
        print(f"{name:6s}  EM iteration {1e3 * b['em_iteration']:7.2f} ms   fit {b['fit']:6.2f} s"
              f"   fit / X^T X {b['fit'] / b['xtx']:5.2f}")
    print(f"after / before: EM iteration {best['after']['em_iteration'] / best['before']['em_iteration']:.2f},"
          f" fit {best['after']['fit'] / best['before']['fit']:.2f}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
