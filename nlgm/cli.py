"""Command line: ``python -m nlgm train ...`` and ``python -m nlgm evaluate RUN`` (also ``nlgm``).

``train`` fits an NLGM to the digits or to a file of one's own and writes a run folder:
``model.pt`` (the model, :meth:`NLGM.load`), ``history.csv`` (ELBO per epoch),
``checkpoint.pt`` (running the same command again resumes from it), ``run.json`` (the options)
and four figures. ``evaluate`` prints the test split's ELBO and importance-weighted
log-likelihood. Errors are one line on stderr and a non-zero exit status.
"""
import argparse
import csv
import json
import math
import sys
from pathlib import Path

import numpy as np

#: Share of a user's file held out as the test split (the digits have their own fixed split).
TEST_FRACTION = 0.2
#: Seed of the test split of a user's file, fixed so that ``evaluate`` finds the same rows.
SPLIT_SEED = 0


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are a single line."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _hidden(text):
    if text.strip().lower() in ("", "none", "linear"):
        return ()
    try:
        sizes = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated widths like 256,256; got {text!r}") from None
    if any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(f"widths must be positive; got {text!r}")
    return sizes


def _parser():
    parser = _Parser(prog="nlgm", description="Train and evaluate nonlinear Gaussian models (VAEs).")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    train = commands.add_parser(
        "train", help="fit a model and write a run folder",
        description="Fit an NLGM by maximising the ELBO, with early stopping on a validation split, "
                    "and write the model, its history (CSV) and figures to --out. Running the same "
                    "command again resumes from the run's checkpoint.")
    train.add_argument("--data", required=True,
                       help="'digits' (scikit-learn's 8x8 digits, scaled to [0,1) with uniform "
                            "dequantisation, fixed 75/25 train/test split), 'mnist' or "
                            "'fashion-mnist' (their IDX files in $PCA_TO_VAE_DATA/mnist or "
                            "~/.cache/pca-to-vae/mnist (fashion-mnist), dequantised to [0,1), the "
                            "published 60000/10000 split) or a path to a .npz, .npy, "
                            f".csv or MNIST IDX file (one sample per row; {TEST_FRACTION:.0%}% held out "
                            "as the test split)")
    train.add_argument("--key", help="the array to read from an .npz file (default: the first)")
    train.add_argument("--latent", type=int, required=True, help="K, the number of latent variables")
    train.add_argument("--out", required=True, type=Path, help="the run folder to write")
    train.add_argument("--hidden", type=_hidden, default=(256, 256),
                       help="hidden widths, comma-separated; 'none' for linear networks (default 256,256)")
    train.add_argument("--likelihood", choices=("gaussian", "bernoulli"), default="gaussian",
                       help="p(x|z): Gaussian for real data, Bernoulli for binary data (default gaussian)")
    train.add_argument("--noise", choices=("isotropic", "diagonal"), default="diagonal",
                       help="Gaussian noise D: sigma^2 I or one variance per feature (default diagonal)")
    train.add_argument("--decoder", choices=("mlp", "linear"), default="mlp",
                       help="f(z): an MLP, or the linear map A z + b (default mlp)")
    train.add_argument("--activation", choices=("relu", "tanh"), default="relu",
                       help="the hidden units' nonlinearity (default relu)")
    train.add_argument("--posterior", choices=("diagonal", "full", "iaf"), default="diagonal",
                       help="q(z|x): a Gaussian with diagonal or full covariance, or a diagonal one "
                            "pushed through an inverse autoregressive flow (default diagonal)")
    train.add_argument("--epochs", type=int, default=1000, help="the most epochs (default 1000)")
    train.add_argument("--batch-size", type=int, default=128, help="minibatch size (default 128)")
    train.add_argument("--lr", type=float, default=None,
                       help="Adam's initial learning rate, annealed to 0 on a cosine over --epochs "
                            "(default 1e-3 with hidden layers, 3e-2 for linear networks)")
    train.add_argument("--samples", type=int, default=1, help="J, samples of z per x and step (default 1)")
    train.add_argument("--val-fraction", type=float, default=None,
                       help="share of the training split held out for early stopping; 0 trains on "
                            "all of it for --epochs (default 0.1 with hidden layers, 0 for linear "
                            "networks)")
    train.add_argument("--patience", type=int, default=50,
                       help="epochs without a better validation ELBO before stopping (default 50)")
    train.add_argument("--scheme", choices=("joint", "alternating"), default="joint",
                       help="one ELBO step for decoder and encoder together, or the lecture's "
                            "alternation (decoder step with z fixed, then encoder step) (default joint)")
    train.add_argument("--seed", type=int, default=0, help="seed of the weights, split and samples (default 0)")
    _common(train)
    train.add_argument("--no-progress", action="store_true", help="no progress bar")

    evaluate = commands.add_parser(
        "evaluate", help="print the test ELBO and log-likelihood of a run",
        description="Print the ELBO and the importance-weighted log-likelihood (nats per sample) of "
                    "the run's test split, with the encoder as the proposal.")
    evaluate.add_argument("run", type=Path, help="a run folder written by 'nlgm train'")
    evaluate.add_argument("--importance", type=int, default=1000,
                          help="S, importance samples per test point (default 1000)")
    evaluate.add_argument("--samples", type=int, default=10,
                          help="J, samples per test point for the ELBO (default 10)")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the Monte Carlo samples (default 0)")
    _common(evaluate)
    return parser


def _common(sub):
    sub.add_argument("--device", default="cpu", help="cpu, cuda or mps (default cpu)")
    sub.add_argument("--threads", type=int, default=None,
                     help="CPU threads for torch (default: torch's choice; 1 is often fastest on a "
                          "busy machine)")


def load_split(data, key=None):
    """(X_train, X_test) for ``--data``: the digits' fixed split, or a seeded split of a file."""
    from lgm.data import load_data_file, load_digits, split_indices

    if data == "digits":
        return load_digits(split=True, dequantise=True, random_state=0)
    if data in ("mnist", "fashion-mnist"):
        from lgm.mnist import load_mnist

        try:
            return load_mnist(fashion=data == "fashion-mnist", dequantise=True, random_state=0)
        except FileNotFoundError as err:
            raise ValueError(str(err)) from None
    X = load_data_file(data, key=key)
    if len(X) < 10:
        raise ValueError(f"data file {data!r} has {len(X)} rows; at least 10 are needed for the splits.")
    n_test = int(round(TEST_FRACTION * len(X)))
    train, test = split_indices(len(X), n_test, SPLIT_SEED)
    return X[np.sort(train)], X[np.sort(test)]


def _train(args):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from nlgm import distributed, figures
    from nlgm.model import NLGM
    from nlgm.train import fit

    # under torchrun: join the processes (gloo on the CPU, NCCL and GPU LOCAL_RANK with cuda)
    processes, device = (distributed.init_process_group(args.device)
                         if distributed.launched_by_torchrun()
                         else (distributed.Processes(), args.device))
    X_train, X_test = load_split(args.data, args.key)
    model = NLGM(X_train.shape[1], args.latent, hidden=args.hidden, likelihood=args.likelihood,
                 noise=args.noise, decoder=args.decoder, activation=args.activation, seed=args.seed,
                 posterior=args.posterior)
    if processes.is_main:
        _make_folder(args.out)
    _set_threads(torch, args.threads)
    history = fit(model, X_train, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                  n_samples=args.samples, val_fraction=args.val_fraction, seed=args.seed,
                  progress=not args.no_progress, scheme=args.scheme, patience=args.patience,
                  checkpoint=args.out / "checkpoint.pt", device=device)
    distributed.close_process_group()
    if not processes.is_main:  # rank 0 writes the run folder
        return 0
    model.to("cpu").save(args.out / "model.pt")
    run = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    run["world_size"] = processes.world_size
    (args.out / "run.json").write_text(json.dumps(run, indent=2) + "\n")
    columns = ["epoch", "train_elbo", "val_elbo", "lr", "seconds"]
    with open(args.out / "history.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(zip(*(history[c] for c in columns)))
    generator = torch.Generator().manual_seed(args.seed)
    for name, fig in [("samples", figures.plot_samples(model, generator=generator)),
                      ("reconstructions", figures.plot_reconstructions(model, X_test)),
                      ("traversal", figures.plot_latent_traversal(model)),
                      ("elbo", figures.plot_elbo_curve(history))]:
        fig.savefig(args.out / f"{name}.png", dpi=120)
        plt.close(fig)
    n, kept = len(history["epoch"]), history["best_epoch"]
    validated = kept and math.isfinite(history["val_elbo"][kept - 1])
    which = "validation" if validated else "training"
    score = history["val_elbo" if validated else "train_elbo"][kept - 1] if kept else float("nan")
    print(f"trained {n} epochs in {history['seconds'][-1] if n else 0:.1f} s; kept epoch {kept} "
          f"({which} ELBO {score:.3f} nats per sample); wrote {args.out}")
    return 0


def _evaluate(args):
    import torch

    from nlgm.model import NLGM

    if not (args.run / "run.json").is_file() or not (args.run / "model.pt").is_file():
        raise ValueError(f"{args.run} is not a run folder of 'nlgm train' (no run.json or model.pt).")
    run = read_run(args.run / "run.json")
    _set_threads(torch, args.threads)
    from nlgm.train import resolve_device

    model = NLGM.load(args.run / "model.pt")
    device = resolve_device(args.device, model)
    model.to(device)
    _, X_test = load_split(run["data"], run.get("key"))
    generator = torch.Generator(device=device).manual_seed(args.seed)
    elbo = model.elbo(X_test, args.samples, generator=generator)
    loglik = model.log_likelihood(X_test, args.importance, generator=generator)
    print(f"test split: {len(X_test)} samples, d = {X_test.shape[1]}")
    print(f"ELBO ({args.samples} samples):                      {elbo:.3f} nats per sample")
    print(f"log-likelihood ({args.importance} importance samples): {loglik:.3f} nats per sample")
    return 0


def _make_folder(path):
    """Create the run folder ``path``, or say in one line why it cannot be written."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise ValueError(f"--out {path} cannot be written ({err.strerror or err}).") from None


def _set_threads(torch, threads):
    """Torch's CPU threads for this process (the library itself never changes them)."""
    if threads is not None:
        if threads < 1:
            raise ValueError(f"--threads must be a positive integer; got {threads}.")
        torch.set_num_threads(threads)


def read_run(path):
    """The options of a run, from its ``run.json``; a clear error if it is corrupt or incomplete.

    Returns
    -------
    dict
        At least ``data`` (str) and ``key`` (str or None).
    """
    try:
        run = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} could not be read as JSON ({err}).") from None
    if not isinstance(run, dict):
        raise ValueError(f"{path} must hold a JSON object of the run's options.")
    for key, kind in (("data", str), ("key", (str, type(None)))):
        if key not in run:
            raise ValueError(f"{path} has no {key!r} entry; it was not written by 'nlgm train'.")
        if not isinstance(run[key], kind):
            raise ValueError(f"{path}: {key!r} must be a string; got {run[key]!r}.")
    return run


def main(argv=None):
    """Entry point of ``python -m nlgm`` and of the ``nlgm`` console script."""
    args = _parser().parse_args(argv)
    try:
        return _train(args) if args.command == "train" else _evaluate(args)
    except (ValueError, TypeError, RuntimeError) as err:
        print(f"nlgm {args.command}: error: {str(err).splitlines()[0]}", file=sys.stderr)
        return 1
    except OSError as err:  # a file that vanished or a disk that filled up during the run
        where = f" {err.filename}" if err.filename else ""
        print(f"nlgm {args.command}: error: cannot read or write{where} ({err.strerror or err})",
              file=sys.stderr)
        return 1
