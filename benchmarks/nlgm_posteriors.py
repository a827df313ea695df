"""The three posteriors of ``nlgm.NLGM`` on chapter 11's rotated linear model: ELBO gap and time.

The model is the test's (``tests/nlgm/test_posterior.py::rotated_digits_model``): the digits,
K = 4, the decoder fixed at the PPCA solution rotated by a random R, a linear encoder trained
from scratch by ``nlgm.fit`` (defaults for a linear model, 150 epochs). The gap is the exact
log-likelihood (scipy) minus the ELBO (500 samples per image), in nats per image; the best
diagonal q's gap is printed from its closed form. Time per epoch is the process's CPU seconds
(one torch thread), fairer than wall-clock seconds on a shared machine.

Run: ``python benchmarks/nlgm_posteriors.py [--seeds 0 1 2] [--epochs 150]``. Results in
``benchmarks/RESULTS.md``.
"""
import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

import nlgm

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "nlgm"))
from test_posterior import elbo_gap, rotated_digits_model  # noqa: E402  (the test's model)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=150)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"one thread, epochs {args.epochs}, seeds {args.seeds}")
    for posterior in ("diagonal", "full", "iaf"):
        gaps, seconds = [], []
        for seed in args.seeds:
            model, X, exact, best_diagonal = rotated_digits_model(posterior, warm_start=False)
            start = time.process_time()
            nlgm.fit(model, X, epochs=args.epochs, initialise=False, progress=False, seed=seed)
            seconds.append((time.process_time() - start) / args.epochs)
            gaps.append(elbo_gap(model, X, exact))
        print(f"| {posterior} | {np.mean(gaps):.4f} ({min(gaps):.4f} to {max(gaps):.4f}) "
              f"| {1000 * np.median(seconds):.0f} |", flush=True)
    print(f"best diagonal q (closed form): {best_diagonal:.4f}")


if __name__ == "__main__":
    main()
