"""Training an NLGM by the book's one loop: complete, then re-estimate.

The NLGM is completed with samples from its encoder. The loop is
:func:`lgm.completion.run`, the same one that fits the linear Gaussian model by
sampled-completion EM. Side by side, for one batch of data:

- ``complete``

  - LGM (``lgm.em.SampledCompletion``): J draws of z from the exact
    posterior p(z | x).
  - NLGM (:class:`ELBOAscent`): J draws z = mu + sigma * eps from the
    encoder's q(z | x) (eq-reparam).

- ``reestimate``

  - LGM: complete-data maximum likelihood of (A, D), in closed form.
  - NLGM: a gradient step on the complete-data loss for theta (z held
    fixed), then one on -ELBO for phi ("alternating"), or one joint step on
    -ELBO ("joint").

Both schemes climb the same objective, the sum of the ELBOs of the data
(eq-elbo): the alternating one by coordinate ascent (theta, then phi), the
joint one in all parameters at once.
"""
import copy
import os
import time
from numbers import Integral
from pathlib import Path

import numpy as np
import torch

from lgm._checks import (
    check_data,
    check_option,
    check_positive,
    check_positive_int,
)
from lgm.completion import run
from lgm.data import split_indices
from nlgm.elbo import kl_to_standard_normal, monte_carlo_elbo, reparameterise


class ELBOAscent:
    """An NLGM and its optimisers, as a model for :func:`lgm.completion.run`.

    The loop completes and re-estimates it.

    Parameters
    ----------
    model : NLGM
    lr : float
        Adam's learning rate.
    n_samples : int
        J, the samples of z drawn for each x.
    scheme : {"joint", "alternating"}
        "joint": one Adam step on -ELBO for theta and phi together.
        "alternating" (the lecture's scheme): an Adam step for theta on the
        complete-data loss with the sampled z held fixed, then one for phi on
        L_Q = -ELBO.
    """

    def __init__(self, model, *, lr, n_samples, scheme):
        self.model, self.n_samples, self.scheme = model, n_samples, scheme
        if scheme == "joint":
            self.optimisers = {
                "joint": torch.optim.Adam(model.parameters(), lr=lr)
            }
        else:
            self.optimisers = {
                "theta": torch.optim.Adam(model.decoder_parameters(), lr=lr),
                "phi": torch.optim.Adam(model.encoder_parameters(), lr=lr),
            }
        self.elbo_sum, self.elbo_count = 0.0, 0

    def complete(self, x, rng):
        """Fill in J latent vectors for each row of x (eq-reparam).

        z = mu(x) + sigma(x) * eps, with eps standard normal.

        Returns
        -------
        mu, logvar : Tensor, shape (N, K)
        Z : Tensor, shape (J, N, K)
            Differentiable in the encoder's weights phi.
        """
        mu, logvar = self.model.encode(x)
        eps = torch.randn(
            (self.n_samples, *mu.shape),
            generator=rng,
            dtype=mu.dtype,
            device=mu.device,
        )
        return mu, logvar, reparameterise(mu, logvar, eps)

    def reestimate(self, x, completion):
        """Gradient steps on the completed batch; records the batch's ELBO
        (eq-elbo-mc)."""
        mu, logvar, Z = completion
        kl = kl_to_standard_normal(mu, logvar)
        if self.scheme == "alternating":
            # theta: complete-data maximum likelihood, the sampled z held fixed
            # (as in the LGM).
            self._step(
                "theta", -self.model.log_px_given_z(x, Z.detach()).mean()
            )
        # phi (alternating) or theta and phi (joint): L_Q = -ELBO, averaged
        # over the batch.
        elbo = monte_carlo_elbo(self.model.log_px_given_z(x, Z), kl).mean()
        self._step("phi" if self.scheme == "alternating" else "joint", -elbo)
        self.elbo_sum += float(elbo.detach()) * x.shape[0]
        self.elbo_count += x.shape[0]

    def _step(self, which, loss):
        self.model.zero_grad(set_to_none=True)
        loss.backward()
        self.optimisers[which].step()

    def epoch_elbo(self):
        """Mean training ELBO (nats per sample) since the last call."""
        value = self.elbo_sum / max(self.elbo_count, 1)
        self.elbo_sum, self.elbo_count = 0.0, 0
        return value


def _resolve_device(device, model):
    if device is None:
        return next(model.parameters()).device
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"device must be 'cpu', 'cuda', 'cuda:N' or 'mps'; got {device!r}."
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "device='cuda' was asked for, but this torch has no usable CUDA"
            " GPU."
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(
            "device='mps' was asked for, but MPS (Apple GPU) is not available"
            " here."
        )
    return device


def _validation_split(N, val_fraction, seed):
    """Indices (train, val) from a seeded permutation.

    Its first round(val_fraction * N) entries are held out.
    """
    n_val = int(round(val_fraction * N))
    if val_fraction > 0 and not 1 <= n_val < N:
        raise ValueError(
            f"val_fraction={val_fraction} leaves no validation or no training"
            f" rows of N={N}."
        )
    train, val = split_indices(N, n_val, seed)
    return np.sort(train), np.sort(val)


def fit(model, X, *, epochs=1000, batch_size=128, lr=1e-3, n_samples=1,
        val_fraction=0.1, seed=0, progress=True, scheme="joint", patience=50,
        checkpoint=None, device=None, threads=None, initialise=True):
    """Train an NLGM: maximise the ELBO of X with minibatches, in the one loop.

    Each epoch is one sweep of :func:`lgm.completion.run` over shuffled
    minibatches: for every batch, :meth:`ELBOAscent.complete` samples z from
    the encoder and :meth:`ELBOAscent.reestimate` takes the gradient step(s).
    After each epoch the validation ELBO (eq-elbo-mc, same noise every epoch)
    is recorded; training stops when it has not improved for ``patience``
    epochs, and the model is left with the parameters of the best epoch.

    Parameters
    ----------
    model : NLGM
    X : array_like, shape (N, d)
    epochs : int
        The most epochs in total, counting those of a resumed checkpoint.
    batch_size : int
    lr : float
        Adam's learning rate.
    n_samples : int
        J, samples of z per data point in each step.
    val_fraction : float in [0, 1)
        Share of X held out (a seeded random subset) for early stopping. 0
        trains on all of X for ``epochs`` epochs and keeps the last parameters.
    seed : int
        Seeds the split, the shuffling and the samples: the same call gives the
        same model.
    progress : bool
        Show a tqdm progress bar.
    scheme : {"joint", "alternating"}
        See :class:`ELBOAscent`.
    patience : int or None
        Epochs without a better validation ELBO before stopping; None never
        stops early. Ignored when ``val_fraction=0``.
    checkpoint : str or Path, optional
        A file written after every epoch (model, optimisers, history, random
        state, best parameters). If it exists when ``fit`` starts, training
        resumes from it and the history continues. Ctrl-C stops training; the
        model keeps its best (or last) parameters and the checkpoint holds the
        last finished epoch.
    device : str, optional
        "cpu", "cuda" or "mps"; None keeps the model where it is (the CPU
        unless moved).
    threads : int, optional
        CPU threads torch may use during training (``torch.set_num_threads``);
        restored after. None leaves torch's choice (all cores). On a busy
        machine, where torch's thread pool competes with other processes, 1
        thread can be several times faster for these small networks.
    initialise : bool
        On a fresh start, call :meth:`NLGM.init_from_data` on the training rows
        first.

    Returns
    -------
    history : dict
        Lists ``epoch``, ``train_elbo`` (mean minibatch ELBO during the epoch),
        ``val_elbo`` (NaN without validation) and ``seconds`` (cumulative), one
        entry per epoch; and ``best_epoch`` (the epoch whose parameters the
        model has) and ``stopped_early``.
    """
    X = check_data(X, min_samples=2, n_features=model.data_dim)
    epochs = check_positive_int(epochs, "epochs")
    batch_size = check_positive_int(batch_size, "batch_size")
    lr = check_positive(lr, "lr")
    n_samples = check_positive_int(n_samples, "n_samples")
    val_fraction = check_positive(
        val_fraction, "val_fraction", allow_zero=True
    )
    if val_fraction >= 1:
        raise ValueError(
            f"val_fraction must be in [0, 1); got {val_fraction}."
        )
    if isinstance(seed, bool) or not isinstance(seed, Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}.")
    check_option(scheme, "scheme", ("joint", "alternating"))
    if patience is not None:
        patience = check_positive_int(patience, "patience")
    if threads is not None:
        threads = check_positive_int(threads, "threads")
    device = _resolve_device(device, model)
    train_idx, val_idx = _validation_split(len(X), val_fraction, seed)
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    saved = (
        _read_checkpoint(checkpoint, model, X, scheme)
        if checkpoint and checkpoint.exists()
        else None
    )

    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        model.to(device)
        x_train = model._tensor(X[train_idx], "X")
        x_val = model._tensor(X[val_idx], "X") if len(val_idx) else None
        rng = torch.Generator(device=device).manual_seed(seed)
        if saved is None and initialise:
            model.init_from_data(x_train)
        trainer = ELBOAscent(model, lr=lr, n_samples=n_samples, scheme=scheme)
        history = {"epoch": [], "train_elbo": [], "val_elbo": [],
                   "seconds": [], "best_epoch": 0, "stopped_early": False}
        best = {"score": -np.inf, "state": copy.deepcopy(model.state_dict())}
        if saved is not None:
            model.load_state_dict(saved["model"])
            for name, state in saved["optimisers"].items():
                trainer.optimisers[name].load_state_dict(state)
            rng.set_state(saved["rng"])
            history = saved["history"]
            best = {"score": saved["best_score"],
                    "state": saved["best_state"]}
        if history["stopped_early"] or len(history["epoch"]) >= epochs:
            model.load_state_dict(best["state"])
            return history
        val_seed = seed + 1

        def batches():
            order = torch.randperm(
                x_train.shape[0], generator=rng, device=device
            )
            return (
                x_train[order[i:i + batch_size]]
                for i in range(0, len(order), batch_size)
            )

        def score():
            if x_val is None:
                return trainer.epoch_elbo()
            generator = torch.Generator(device=device).manual_seed(val_seed)
            return model.elbo(x_val, n_samples, generator=generator)

        start = time.perf_counter() - (
            history["seconds"][-1] if history["seconds"] else 0.0
        )

        def on_iteration(scores):
            train = trainer.epoch_elbo() if x_val is not None else scores[-1]
            history["epoch"].append(len(history["epoch"]) + 1)
            history["train_elbo"].append(train)
            history["val_elbo"].append(
                scores[-1] if x_val is not None else float("nan")
            )
            history["seconds"].append(time.perf_counter() - start)
            if x_val is None or scores[-1] > best["score"]:
                best["score"] = scores[-1]
                best["state"] = copy.deepcopy(model.state_dict())
                history["best_epoch"] = history["epoch"][-1]
            if checkpoint is not None:
                _write_checkpoint(
                    checkpoint, model, trainer, rng, history, best, X.shape
                )

        def stop(scores):
            return (
                x_val is not None
                and patience is not None
                and len(history["epoch"]) - history["best_epoch"] >= patience
            )

        scores = (
            history["val_elbo"] if x_val is not None else history["train_elbo"]
        )
        _, stopped = run(trainer, batches,
                         n_iter=epochs - len(history["epoch"]), score=score,
                         rng=rng, stop=stop, progress=progress,
                         desc="nlgm.fit", on_iteration=on_iteration,
                         history=scores)
        history["stopped_early"] = bool(stopped)
        if stopped and checkpoint is not None:
            _write_checkpoint(
                checkpoint, model, trainer, rng, history, best, X.shape
            )
        model.load_state_dict(best["state"])
    finally:
        torch.set_num_threads(previous_threads)
    return history


def _write_checkpoint(path, model, trainer, rng, history, best, shape):
    """Write atomically (a temporary file, then a rename).

    Ctrl-C therefore never leaves half a file.
    """
    state = {
        "config": dict(model.config, hidden=list(model.config["hidden"])),
        "shape": list(shape),
        "scheme": trainer.scheme,
        "model": model.state_dict(),
        "optimisers": {
            k: o.state_dict() for k, o in trainer.optimisers.items()
        },
        "rng": rng.get_state(),
        "history": history,
        "best_score": float(best["score"]),
        "best_state": best["state"],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _read_checkpoint(path, model, X, scheme):
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        config, shape = saved["config"], saved["shape"]
        saved_scheme = saved["scheme"]
    except Exception as err:  # any unreadable file: say which one and why
        raise ValueError(
            f"checkpoint {path} could not be read ({type(err).__name__}:"
            f" {err})."
        ) from None
    architecture = {k: v for k, v in model.config.items() if k != "seed"}
    saved_architecture = dict(config, hidden=tuple(config["hidden"]))
    if dict(saved_architecture, seed=None) != dict(architecture, seed=None):
        raise ValueError(
            f"checkpoint {path} belongs to a different model ({config}); "
            "pass a new checkpoint path or the same model configuration."
        )
    if list(shape) != list(X.shape) or saved_scheme != scheme:
        raise ValueError(
            f"checkpoint {path} was written for data of shape {tuple(shape)}"
            f" with scheme={saved_scheme!r}; got shape {X.shape} and"
            f" scheme={scheme!r}."
        )
    return saved
