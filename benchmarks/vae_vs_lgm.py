"""Held-out log-likelihood of linear models (PPCA, FA) and NLGMs (VAEs) on the digits or MNIST.

All models see the same data, dequantised so that every number is a log-density in nats per
image, comparable across models: scikit-learn's 8x8 digits scaled to (v + u) / 17 with
u ~ U[0, 1) (``lgm.data.load_digits``, its fixed 1348/449 train/test split; a density on
[0, 1)^64), or MNIST / Fashion-MNIST scaled to (v + u) / 256 (``lgm.mnist.load_mnist``, the
published 60000/10000 split; a density on [0, 1)^784). The linear models are exact (closed-form
PPCA; FA by EM, checked against scikit-learn); the NLGMs are trained with the settings of
:class:`nlgm.NLGM` and :func:`nlgm.fit` (default: early stopping on a 10% validation split of the
training set) and evaluated by importance sampling with the encoder as the proposal (k = 1000
samples per image, eq-iw-loglik).

Run: ``python benchmarks/vae_vs_lgm.py [--threads 2] [--seeds 0] [--importance 1000]``; MNIST:
``--data mnist --latent 20 --hidden 256 --epochs 100`` with its four IDX files in ``--folder``
(default: where ``lgm.mnist.load_mnist`` looks). Results recorded in ``benchmarks/RESULTS-vae.md``.
"""
import argparse
import resource
import time

import numpy as np
import torch
from sklearn.decomposition import FactorAnalysis

import nlgm
from lgm.data import load_digits
from lgm.em import LGM
from lgm.mnist import load_mnist
from lgm.ppca import PPCA


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(fn):
    wall, cpu = time.perf_counter(), cpu_seconds()
    out = fn()
    return out, time.perf_counter() - wall, cpu_seconds() - cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="NLGM seeds (default 0)")
    parser.add_argument("--importance", type=int, default=1000, help="k, importance samples (default 1000)")
    parser.add_argument("--latent", type=int, nargs="+", default=[2, 8], help="K values (default 2 8)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="the most epochs of nlgm.fit (default: fit's, 1000)")
    parser.add_argument("--data", choices=("digits", "mnist", "fashion-mnist"), default="digits")
    parser.add_argument("--folder", default=None,
                        help="the folder of the MNIST IDX files (default: load_mnist's)")
    parser.add_argument("--hidden", default=None,
                        help="the NLGM's hidden widths, comma-separated (default: NLGM's)")
    parser.add_argument("--noise", nargs="+", default=["isotropic", "diagonal"],
                        choices=("isotropic", "diagonal"), help="the NLGMs' noise models")
    parser.add_argument("--no-sklearn", action="store_true",
                        help="skip scikit-learn's FactorAnalysis (slow at d = 784)")
    args = parser.parse_args()
    fit_options = {} if args.epochs is None else {"epochs": args.epochs}
    architecture = {} if args.hidden is None else {
        "hidden": tuple(int(w) for w in args.hidden.split(","))}
    torch.set_num_threads(args.threads)
    if args.data == "digits":
        X_train, X_test = load_digits()
    else:
        X_train, X_test = load_mnist(args.folder, fashion=args.data == "fashion-mnist",
                                     dequantise=True, random_state=0)
    d = X_train.shape[1]
    print(f"{args.data}: train {X_train.shape}, test {X_test.shape}; torch threads {args.threads}")
    print(f"{'K':>2}  {'model':<22}{'test log-lik':>13}{'test ELBO':>11}{'wall s':>8}{'cpu s':>7}{'epochs':>7}")
    for K in args.latent:
        rows = []
        ppca, wall, cpu = timed(lambda: PPCA(K).fit(X_train))
        rows.append(("PPCA (lgm)", ppca.score(X_test), np.nan, wall, cpu, ""))
        fa, wall, cpu = timed(lambda: LGM(K, noise="diagonal").fit(X_train))
        rows.append(("FA (lgm, EM)", fa.score(X_test), np.nan, wall, cpu, ""))
        if not args.no_sklearn:
            sk, wall, cpu = timed(lambda: FactorAnalysis(K, tol=1e-6, max_iter=5000).fit(X_train))
            rows.append(("FA (scikit-learn)", sk.score(X_test), np.nan, wall, cpu, ""))
        for noise in args.noise:
            for seed in args.seeds:
                model = nlgm.NLGM(d, K, noise=noise, seed=seed, **architecture)
                history, wall, cpu = timed(lambda: nlgm.fit(model, X_train, seed=seed, progress=False,
                                                               **fit_options))
                g = torch.Generator().manual_seed(seed)
                loglik = model.log_likelihood(X_test, args.importance, generator=g)
                elbo = model.elbo(X_test, 100, generator=g)
                rows.append((f"NLGM {noise} s{seed}", loglik, elbo, wall, cpu, len(history["epoch"])))
        for name, ll, elbo, wall, cpu, epochs in rows:
            print(f"{K:>2}  {name:<22}{ll:>13.2f}{elbo:>11.2f}{wall:>8.1f}{cpu:>7.1f}{epochs!s:>7}", flush=True)
        fa_ll = rows[1][1]
        diag = [r[1] for r in rows if r[0].startswith("NLGM diagonal")]
        print(f"    K={K}: NLGM diagonal minus FA = {np.mean(diag) - fa_ll:+.2f} nats per image "
              f"(mean over {len(diag)} seed(s))", flush=True)


if __name__ == "__main__":
    main()
