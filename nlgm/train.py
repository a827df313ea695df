"""Training an NLGM by the book's one loop: complete, then re-estimate.

:func:`fit` writes the loop out the way EM's loop (:func:`lgm.completion.run`)
is written, so that each line can be read:

    for each epoch:
        complete, then re-estimate, batch by batch   (complete_then_reestimate)
        score the model                              (the validation ELBO)
        stop?                                        (EarlyStopping)

The sweep over the batches is :func:`lgm.completion.complete_then_reestimate`,
the same function for both models. Side by side, for one batch of data:

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
joint one in all parameters at once. EM's closed-form steps land on the
maximum of each sub-problem; gradient steps on minibatches only hover near a
maximum, so the learning rate is annealed to 0 over the epochs
(:func:`cosine_lr`).
"""
import copy
import math
import os
import time
import warnings
from numbers import Integral
from pathlib import Path

import numpy as np
import torch

from lgm._checks import check_option, check_positive, check_positive_int
from lgm.completion import complete_then_reestimate, tqdm
from lgm.data import split_indices
from nlgm.elbo import kl_to_standard_normal, monte_carlo_elbo, reparameterise
from nlgm.model import NLGM, load_failure


class ELBOAscent:
    """An NLGM and its optimisers, completed and re-estimated by the loop.

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
        mu, logvar = self.model.encoder(x)
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
        # summed on the device: reading a number here would make a GPU wait
        self.elbo_sum = self.elbo_sum + elbo.detach() * x.shape[0]
        self.elbo_count += x.shape[0]

    def _step(self, which, loss):
        self.model.zero_grad(set_to_none=True)
        loss.backward()
        self.optimisers[which].step()

    def epoch_elbo(self):
        """Mean training ELBO (nats per sample) since the last call."""
        value = float(self.elbo_sum) / max(self.elbo_count, 1)
        self.elbo_sum, self.elbo_count = 0.0, 0
        return value

    @property
    def lr(self):
        """The optimisers' current learning rate."""
        return next(iter(self.optimisers.values())).param_groups[0]["lr"]

    def set_lr(self, lr):
        """Set every optimiser's learning rate."""
        for optimiser in self.optimisers.values():
            for group in optimiser.param_groups:
                group["lr"] = lr


def cosine_lr(lr, epoch, epochs):
    """The learning rate of ``epoch`` (1..epochs): lr annealed on a cosine.

    lr_e = lr (1 + cos(pi (e - 1) / epochs)) / 2: about ``lr`` for the first
    epochs, half of it halfway, and nearly 0 in the last epoch. Stochastic
    gradient steps hover around a maximum at a distance that grows with the
    step size; shrinking the steps lets them settle on it.
    """
    return lr * 0.5 * (1.0 + math.cos(math.pi * (epoch - 1) / epochs))


class EarlyStopping:
    """Stop when the score has not reached a new best for ``patience`` epochs.

    Parameters
    ----------
    patience : int or None
        None never stops.
    """

    def __init__(self, patience):
        self.patience = patience
        self.best, self.waited = -math.inf, 0

    def update(self, score):
        """Record one epoch's score; True if it is a new best."""
        if score > self.best:
            self.best, self.waited = score, 0
            return True
        self.waited += 1
        return False

    def stop(self):
        """Whether ``patience`` epochs have passed without a new best."""
        return self.patience is not None and self.waited >= self.patience


def minibatches(x, batch_size, rng):
    """The rows of x in a random order, ``batch_size`` at a time."""
    order = torch.randperm(x.shape[0], generator=rng, device=x.device)
    return (
        x[order[i:i + batch_size]] for i in range(0, len(order), batch_size)
    )


def fit(model, X, *, epochs=1000, batch_size=128, lr=None, n_samples=1,
        val_fraction=None, seed=0, progress=True, scheme="joint", patience=50,
        checkpoint=None, device=None, initialise=True):
    """Train an NLGM: maximise the ELBO of X with minibatches, in the one loop.

    Each epoch is one sweep of :func:`lgm.completion.complete_then_reestimate`
    over shuffled minibatches: for every batch, :meth:`ELBOAscent.complete`
    samples z from the encoder and :meth:`ELBOAscent.reestimate` takes the
    gradient step(s), with the learning rate of the epoch
    (:func:`cosine_lr`). With validation rows, the model is then scored by
    their ELBO (eq-elbo-mc, the same noise every epoch); training stops when
    it has not improved for ``patience`` epochs (:class:`EarlyStopping`), and
    the model is left with the parameters of its best epoch.

    Parameters
    ----------
    model : NLGM
    X : array_like or Tensor, shape (N, d)
    epochs : int
        The most epochs in total, counting those of a resumed checkpoint; the
        learning rate reaches 0 at the last one.
    batch_size : int
    lr : float, optional
        Adam's initial learning rate. None: 1e-3 for a model with hidden
        layers, 3e-2 for a linear one (``hidden=()``), whose linear maps from
        few inputs take larger steps (see :func:`default_settings`).
    n_samples : int
        J, samples of z per data point in each step.
    val_fraction : float in [0, 1), optional
        Share of X held out (a seeded random subset) for early stopping. 0
        trains on all of X for ``epochs`` epochs and keeps the last
        parameters. None: 0.1 for a model with hidden layers, which can
        overfit, 0 for a linear one (probabilistic PCA or factor analysis:
        few parameters and no overfitting to stop).
    seed : int
        Seeds the split, the shuffling and the samples: the same call gives the
        same model.
    progress : bool
        Show a tqdm progress bar.
    scheme : {"joint", "alternating"}
        See :class:`ELBOAscent`.
    patience : int or None
        Epochs without a better validation ELBO before stopping; None never
        stops early. Unused without validation.
    checkpoint : str or Path, optional
        A file written after every epoch (model, optimisers, history, random
        state, best parameters). If it exists when ``fit`` starts, training
        resumes from it and the history continues. Ctrl-C stops training; the
        model keeps its best (or last) parameters and the checkpoint holds the
        last finished epoch.
    device : str, optional
        "cpu", "cuda" or "mps"; None keeps the model where it is (the CPU
        unless moved).
    initialise : bool
        On a fresh start, call :meth:`NLGM.init_from_data` on the training rows
        first.

    Returns
    -------
    history : dict
        Lists ``epoch``, ``train_elbo`` (mean minibatch ELBO during the epoch),
        ``val_elbo`` (NaN without validation), ``lr`` (the learning rate of the
        epoch) and ``seconds`` (cumulative), one entry per epoch; and
        ``best_epoch`` (the epoch whose parameters the model has) and
        ``stopped_early``.

    Raises
    ------
    RuntimeError
        If an epoch's ELBO is not finite (the steps diverged): the model is
        first given back the parameters of its best finite epoch.
    """
    _check_model(model)
    defaults = default_settings(model)
    epochs = check_positive_int(epochs, "epochs")
    batch_size = check_positive_int(batch_size, "batch_size")
    lr = defaults["lr"] if lr is None else check_positive(lr, "lr")
    n_samples = check_positive_int(n_samples, "n_samples")
    if val_fraction is None:
        val_fraction = defaults["val_fraction"]
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
    device = _resolve_device(device, model)
    x_all = model.to(device)._tensor(X, "X", min_samples=2)  # checked once
    train_idx, val_idx = _validation_split(len(x_all), val_fraction, seed)
    validate = len(val_idx) > 0
    x_train = x_all[train_idx] if validate else x_all  # no copy if no split
    x_val = x_all[val_idx]
    checkpoint = _checkpoint_path(checkpoint)
    setup = {"shape": list(x_all.shape), "scheme": scheme,
             "val_fraction": val_fraction, "seed": seed}
    saved = (
        _read_checkpoint(checkpoint, model, setup)
        if checkpoint is not None and checkpoint.exists()
        else None
    )

    if saved is None and initialise:
        model.init_from_data(x_train)
    trainer = ELBOAscent(model, lr=lr, n_samples=n_samples, scheme=scheme)
    stopping = EarlyStopping(patience if validate else None)
    rng = torch.Generator(device=device).manual_seed(seed)
    history = {"epoch": [], "train_elbo": [], "val_elbo": [], "lr": [],
               "seconds": [], "best_epoch": 0, "stopped_early": False}
    best = copy.deepcopy(model.state_dict())
    if saved is not None:
        history, best = _resume(saved, model, trainer, stopping, rng)
    if history["stopped_early"] or len(history["epoch"]) >= epochs:
        model.load_state_dict(best)
        return history

    start = time.perf_counter() - _seconds_so_far(history)
    bar = tqdm(range(len(history["epoch"]) + 1, epochs + 1), desc="nlgm.fit",
               disable=not progress, leave=False)
    try:
        for epoch in bar:
            trainer.set_lr(cosine_lr(lr, epoch, epochs))
            complete_then_reestimate(
                trainer, minibatches(x_train, batch_size, rng), rng
            )
            train_elbo = trainer.epoch_elbo()  # the one host sync of a sweep
            val_elbo = (validation_elbo(model, x_val, n_samples, seed)
                        if validate else math.nan)
            _record(history, epoch, train_elbo, val_elbo, trainer.lr,
                    time.perf_counter() - start)
            score = val_elbo if validate else train_elbo
            bar.set_postfix(elbo=f"{score:.4f}")
            if not (math.isfinite(train_elbo) and math.isfinite(score)):
                model.load_state_dict(best)
                raise RuntimeError(_diverged(history, lr))
            if stopping.update(score) or not validate:
                best = copy.deepcopy(model.state_dict())
                history["best_epoch"] = epoch
            history["stopped_early"] = stopping.stop()
            if checkpoint is not None:
                _write_checkpoint(checkpoint, model, trainer, stopping, rng,
                                  history, best, setup)
            if history["stopped_early"]:
                break
    except KeyboardInterrupt:
        warnings.warn(
            f"Interrupted after {len(history['epoch'])} epochs; the model"
            f" keeps the parameters of epoch {history['best_epoch']}.",
            stacklevel=2,
        )
    finally:
        bar.close()
    model.load_state_dict(best)
    return history


def validation_elbo(model, x_val, n_samples, seed):
    """The mean ELBO of the held-out rows x_val (eq-elbo-mc), with the same noise every epoch.

    The noise is seeded with ``seed + 1`` (``seed`` draws the training samples), so the scores of
    two epochs differ only by what the model learnt between them.
    """
    noise = torch.Generator(device=x_val.device).manual_seed(seed + 1)
    return float(model._mean_elbo(x_val, n_samples, noise))


def default_settings(model):
    """The learning rate and validation share that ``fit`` uses for ``model``.

    A model with hidden layers: ``lr=1e-3`` (Adam's usual step) and
    ``val_fraction=0.1`` (early stopping against overfitting). A linear model
    (``hidden=()``, probabilistic PCA or factor analysis with a linear
    encoder): ``lr=3e-2``, since Adam moves every weight by about lr per step
    and a linear map from K inputs needs larger steps than a 256-wide layer,
    and ``val_fraction=0``, since it has few parameters and one maximum.

    Returns
    -------
    dict
        ``lr`` and ``val_fraction``.
    """
    if model.config["hidden"]:
        return {"lr": 1e-3, "val_fraction": 0.1}
    return {"lr": 3e-2, "val_fraction": 0.0}


def _record(history, epoch, train_elbo, val_elbo, lr, seconds):
    history["epoch"].append(epoch)
    history["train_elbo"].append(train_elbo)
    history["val_elbo"].append(val_elbo)
    history["lr"].append(lr)
    history["seconds"].append(seconds)


def _seconds_so_far(history):
    return history["seconds"][-1] if history["seconds"] else 0.0


def _diverged(history, lr):
    kept = history["best_epoch"]
    return (
        f"training diverged in epoch {history['epoch'][-1]}: the ELBO is not"
        f" finite (training {history['train_elbo'][-1]}, validation"
        f" {history['val_elbo'][-1]}); the model keeps "
        + (f"the parameters of epoch {kept}" if kept else "its starting"
           " parameters")
        + f". Try a smaller lr (it was {lr:g}) or standardise X."
    )


def _check_model(model):
    if not isinstance(model, NLGM):
        raise TypeError(
            f"model must be an nlgm.NLGM; got {type(model).__name__}."
        )


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


# ------------------------------------------------------------- checkpoints
def _checkpoint_path(checkpoint):
    """``checkpoint`` as a Path whose folder exists and can be written."""
    if checkpoint is None:
        return None
    try:
        path = Path(checkpoint)
    except TypeError:
        raise TypeError(
            f"checkpoint must be a path (str or Path); got {checkpoint!r}."
        ) from None
    if path.is_dir():
        raise ValueError(f"checkpoint {path} is a folder; pass a file path.")
    probe = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        # mkdir under a regular file reports "File exists"; name the file instead
        blocker = next((p for p in path.parents if p.exists()), None)
        why = (f"{blocker} is a file, not a folder"
               if blocker is not None and not blocker.is_dir()
               else err.strerror or err)
        raise ValueError(f"checkpoint {path} cannot be written ({why}).") from None
    return path


def _write_checkpoint(path, model, trainer, stopping, rng, history, best,
                      setup):
    """Write atomically (a temporary file, then a rename).

    Ctrl-C therefore never leaves half a file.
    """
    state = {
        "config": dict(model.config, hidden=list(model.config["hidden"])),
        "setup": setup,
        "model": model.state_dict(),
        "optimisers": {
            k: o.state_dict() for k, o in trainer.optimisers.items()
        },
        "stopping": vars(stopping),
        "rng": rng.get_state(),
        "history": history,
        "best_state": best,
    }
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except OSError as err:
        raise ValueError(
            f"checkpoint {path} could not be written ({err.strerror or err})."
        ) from None


def _read_checkpoint(path, model, setup):
    """The checkpoint at ``path``, if it continues this call of :func:`fit`.

    ``setup`` holds what must not change between the runs: the data's shape, the scheme and the
    split (``val_fraction`` and ``seed``; another split would validate on rows trained on).
    """
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        config, saved_setup = saved["config"], saved["setup"]
        for key in ("model", "optimisers", "stopping", "rng", "history",
                    "best_state"):
            saved[key]
    except Exception as err:  # any unreadable file: say which one and why
        raise ValueError(
            f"checkpoint {path} could not be read ({load_failure(err)})."
        ) from None
    architecture = {k: v for k, v in model.config.items() if k != "seed"}
    saved_architecture = dict(config, hidden=tuple(config["hidden"]))
    if dict(saved_architecture, seed=None) != dict(architecture, seed=None):
        raise ValueError(
            f"checkpoint {path} belongs to a different model ({config}); "
            "pass a new checkpoint path or the same model configuration."
        )
    if saved_setup != setup:
        raise ValueError(
            f"checkpoint {path} was written for {_describe(saved_setup)}; got"
            f" {_describe(setup)}. Pass a new checkpoint path or the same"
            " data and settings."
        )
    return saved


def _describe(setup):
    shape = tuple(setup.get("shape", ()))
    rest = ", ".join(f"{k}={v!r}" for k, v in setup.items() if k != "shape")
    return f"data of shape {shape}, {rest}"


def _resume(saved, model, trainer, stopping, rng):
    """Load a checkpoint's state into the objects of :func:`fit`.

    Returns
    -------
    history : dict
    best : dict
        The state of the best epoch.
    """
    device = rng.device
    model.load_state_dict(saved["model"])
    for name, state in saved["optimisers"].items():
        trainer.optimisers[name].load_state_dict(state)
    # the best score and the epochs waited carry on; the patience is this call's
    stopping.best = saved["stopping"]["best"]
    stopping.waited = saved["stopping"]["waited"]
    rng.set_state(saved["rng"])
    best = {k: v.to(device) for k, v in saved["best_state"].items()}
    return saved["history"], best
