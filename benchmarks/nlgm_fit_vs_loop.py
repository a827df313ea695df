"""Seconds per epoch of ``nlgm.fit`` against a plain PyTorch loop: same model, data and device.

The plain loop is what one would write by hand: shuffle, then for every minibatch
``loss = -model(x).mean()``, ``backward``, an Adam step. ``nlgm.fit`` runs the same steps
through the book's loop (``complete_then_reestimate`` with ``ELBOAscent``), plus its once-per-epoch
work: the learning rate of the epoch, reading the epoch's ELBO (one host sync) and keeping the
epoch's parameters. Both train on all rows (``val_fraction=0``), so they see the same data; the
call of ``fit`` is timed whole (input check, ``init_from_data``, the split), divided by its
epochs.

Data: N x 784 uniform numbers (MNIST's size, synthetic: no download), float32 on the device.
Model: ``NLGM(784, 20, hidden=(512, 512))``. The device is CUDA when available, else the CPU.

Run: ``python benchmarks/nlgm_fit_vs_loop.py [--rows 60000] [--epochs 1] [--repeats 3]
[--batch-sizes 128 1024] [--threads T]``. Each timing is the minimum over the repeats (fit and
the loop alternate, so a busy machine slows both alike). Results in ``benchmarks/RESULTS-vae.md``.
"""
import argparse
import platform
import time

import torch

import nlgm


def device_name(device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def synchronise(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fresh_model(device, X):
    model = nlgm.NLGM(784, 20, hidden=(512, 512), seed=0).to(device)
    return model.init_from_data(X[:10000])


def plain_loop(model, X, epochs, batch_size, lr=1e-3):
    """The hand-written loop: the same ELBO (``model.forward``) and the same Adam."""
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(epochs):
        order = torch.randperm(X.shape[0], device=X.device)
        for i in range(0, X.shape[0], batch_size):
            loss = -model(X[order[i:i + batch_size]]).mean()
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()


def with_fit(model, X, epochs, batch_size, lr=1e-3):
    nlgm.fit(model, X, epochs=epochs, batch_size=batch_size, lr=lr, val_fraction=0,
             progress=False, initialise=False)


def seconds_per_epoch(train, device, X, epochs, batch_size):
    model = fresh_model(device, X)
    synchronise(device)
    start = time.perf_counter()
    train(model, X, epochs, batch_size)
    synchronise(device)
    return (time.perf_counter() - start) / epochs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=60000, help="N (default 60000)")
    parser.add_argument("--epochs", type=int, default=1, help="epochs per timing (default 1)")
    parser.add_argument("--repeats", type=int, default=3, help="timings per method (default 3)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 1024])
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    X = torch.rand(args.rows, 784, generator=torch.Generator().manual_seed(0)).to(device)
    print(f"device: {device} ({device_name(device)}); torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads; data {tuple(X.shape)}; "
          f"NLGM(784, 20, hidden=(512, 512)); {args.epochs} epoch(s) per timing, "
          f"min of {args.repeats}")
    seconds_per_epoch(plain_loop, device, X[:4096], 1, 128)  # warm-up (allocator, kernels)
    print(f"{'batch':>6}{'fit s/epoch':>13}{'loop s/epoch':>14}{'fit / loop':>12}")
    for batch_size in args.batch_sizes:
        fit_s, loop_s = [], []
        for _ in range(args.repeats):
            fit_s.append(seconds_per_epoch(with_fit, device, X, args.epochs, batch_size))
            loop_s.append(seconds_per_epoch(plain_loop, device, X, args.epochs, batch_size))
        print(f"{batch_size:>6}{min(fit_s):>13.3f}{min(loop_s):>14.3f}"
              f"{min(fit_s) / min(loop_s):>12.3f}", flush=True)


if __name__ == "__main__":
    main()
