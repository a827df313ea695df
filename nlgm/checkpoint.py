"""Checkpoints of ``nlgm.fit``: one file that a Ctrl-C never leaves half written.

A checkpoint holds what training needs to continue exactly where it stopped: the model and its
optimisers, the random state, the history and the parameters of the best epoch, and the setup
that must not change between the runs (the data's shape, the scheme, the split).
"""
import os
import pickle
import tempfile
from dataclasses import asdict
from pathlib import Path

import torch


def load_failure(err):
    """Why ``torch.load`` (or ``torch.save``) failed, in a few words, for a one-line error.

    A file that is not a torch file makes ``torch.load(..., weights_only=True)`` raise a page of
    text that advises ``weights_only=False``, which would not help and is unsafe; it is reported
    as what it is.
    """
    if isinstance(err, pickle.UnpicklingError):
        return "UnpicklingError: not a file written by torch.save, or one holding more than tensors"
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else f"{type(err).__name__}: the file is empty or cut short"


def checkpoint_path(checkpoint):
    """``checkpoint`` as a Path whose folder exists and can be written, or None."""
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
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # a probe of its own: under torchrun every process checks the same folder at once, and a
        # shared name (or write's temporary file) would be written and removed under another's feet
        handle, probe = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".probe")
        os.close(handle)
        os.unlink(probe)
    except OSError as err:
        # mkdir under a regular file reports "File exists"; name the file instead
        blocker = next((p for p in path.parents if p.exists()), None)
        why = (f"{blocker} is a file, not a folder"
               if blocker is not None and not blocker.is_dir()
               else err.strerror or err)
        raise ValueError(f"checkpoint {path} cannot be written ({why}).") from None
    return path


def write(path, *, model, optimisers, rng, history, best, setup):
    """Write the checkpoint atomically (a temporary file, then a rename).

    Parameters
    ----------
    path : Path
    model : NLGM
    optimisers : dict of str to torch.optim.Optimizer
    rng : torch.Generator
    history : nlgm.train.History
    best : dict
        The state dict of the best epoch.
    setup : dict
        What must not change between the runs.
    """
    state = {
        "config": dict(model.config, hidden=list(model.config["hidden"])),
        "setup": setup,
        "model": model.state_dict(),
        "optimisers": {k: o.state_dict() for k, o in optimisers.items()},
        "rng": rng.get_state(),
        "history": asdict(history),
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


def read(path, model, setup, history_type):
    """The checkpoint at ``path``, if it continues this call of ``fit``; else a clear error.

    ``setup`` holds what must not change between the runs: the data's shape, the scheme and the
    split (``val_fraction`` and ``seed``; another split would validate on rows trained on).

    history_type : type
        What the history is read back as (``nlgm.train.History``); a history it does not take
        (a file of another version) is refused like any unreadable file.

    Returns
    -------
    dict
        With ``model``, ``optimisers``, ``rng``, ``history`` (a ``history_type``) and
        ``best_state``.
    """
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        config, saved_setup = saved["config"], saved["setup"]
        for key in ("model", "optimisers", "rng", "best_state"):
            saved[key]
        saved["history"] = history_type(**saved["history"])
    except Exception as err:  # any unreadable file: say which one and why
        raise ValueError(
            f"checkpoint {path} could not be read ({load_failure(err)})."
        ) from None
    architecture = {k: v for k, v in model.config.items() if k != "seed"}
    # checkpoints written before the posterior could be chosen used the diagonal one
    saved_architecture = {"posterior": "diagonal", **config, "hidden": tuple(config["hidden"])}
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
