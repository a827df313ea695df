"""Training an NLGM by the book's one loop: complete, then re-estimate.

:func:`fit` runs the loop of EM, :func:`lgm.completion.run`, with an epoch as its
sweep, so that each line can be read:

    for each epoch:
        complete, then re-estimate, batch by batch   (complete_then_reestimate)
        score the model                              (the validation ELBO)
        stop?                                        (patience, or the last epoch)

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
import time
from dataclasses import dataclass, field
from numbers import Integral

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from lgm import completion
from lgm.checks import (
    check_option,
    check_positive,
    check_positive_int,
    check_seed,
)
from lgm.data import split_indices
from nlgm import checkpoint as checkpoints
from nlgm import distributed
from nlgm.data import is_streamed, shares, stream
from nlgm.elbo import weighted_kl
from nlgm.model import _MAX_ELEMENTS, NLGM


class StepLoss(torch.nn.Module):
    """The loss of a re-estimation step, summed over the rows of a completed batch.

    A module, so that under torchrun :class:`~torch.nn.parallel.DistributedDataParallel` can
    wrap it: DDP averages over the processes the gradients of what a module's forward returns
    (:class:`DataParallelELBOAscent`). One process calls it as it is (:class:`ELBOAscent`).

    Parameters
    ----------
    model : NLGM
    free_bits : float
        lambda of :func:`nlgm.elbo.weighted_kl` (0: the ELBO's KL term).
    """

    def __init__(self, model, free_bits=0.0):
        super().__init__()
        self.model, self.free_bits = model, free_bits

    def forward(self, x, completion, block, beta=1.0):
        """The loss of a step for ``block``, summed over the N rows of x (0 when N = 0).

        Parameters
        ----------
        x : Tensor, shape (N, d)
        completion : Completion
            (mu, logvar, z) of x, from :meth:`NLGM.complete`.
        block : {"theta", "phi", "joint"}
            "theta": the complete-data loss -sum_n (1/J) sum_j log p(x_n | z_nj) with the
            sampled z held fixed, which only the decoder's theta feels. "phi" and "joint":
            L_Q = -sum_n ELBO_n (eq-elbo-mc), its KL term weighted (:meth:`objective`).
        beta : float
            The KL weight.

        Returns
        -------
        loss : Tensor, shape ()
        elbo : Tensor, shape (N,), or None
            The rows' ELBOs (eq-elbo-mc), detached; None for "theta".
        """
        if block == "theta":
            z = completion[2].detach()
            return -self.model.log_px_given_z(x, z).mean(dim=0).sum(), None
        elbo = self.model.completion_elbo(x, completion)
        return -self.objective(elbo, completion, beta), elbo.detach()

    def objective(self, elbo, completion, beta):
        """The sum of the rows' ELBOs with the KL term weighted by beta and, for a diagonal q,
        floored per unit by :func:`nlgm.elbo.weighted_kl` (the ELBO itself when beta = 1 and
        free_bits = 0).

        The KL is the one the completion carries, so a full-covariance or flow posterior
        (:mod:`nlgm.posterior`) is weighted by its own KL. The floor applies to the mean KL of
        each unit over the rows given (under torchrun, one process's rows).

        Parameters
        ----------
        elbo : Tensor, shape (N,)
        completion : Completion
        beta : float

        Returns
        -------
        Tensor, shape ()
        """
        if beta == 1 and self.free_bits == 0:
            return elbo.sum()
        kl = completion.kl.sum()
        if self.free_bits == 0 or len(elbo) == 0:  # (no rows: no unit to floor)
            return elbo.sum() + kl - beta * kl
        mu, logvar, _ = completion  # free bits: per unit, a diagonal q (fit checks)
        return elbo.sum() + kl - len(elbo) * weighted_kl(mu, logvar, beta=beta,
                                                         free_bits=self.free_bits)


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
    free_bits : float
        lambda of :func:`nlgm.elbo.weighted_kl` (0: the ELBO's KL term).

    Attributes
    ----------
    beta : float
        The KL weight of the steps (1: the ELBO); ``fit`` sets it each epoch.
    loss : StepLoss
        The loss of a step (a module: :class:`DataParallelELBOAscent` wraps it in DDP).
    """

    def __init__(self, model, *, lr, n_samples, scheme, free_bits=0.0):
        self.model, self.n_samples, self.scheme = model, n_samples, scheme
        self.beta, self.loss = 1.0, StepLoss(model, free_bits)
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

        z = mu(x) + sigma(x) * eps, with eps standard normal
        (:meth:`NLGM.complete`).

        Returns
        -------
        mu, logvar : Tensor, shape (N, K)
        Z : Tensor, shape (J, N, K)
            Differentiable in the encoder's weights phi.
        """
        return self.model.complete(x, self.n_samples, generator=rng)

    def reestimate(self, x, completion):
        """Gradient steps on the completed batch; records the batch's ELBO
        (eq-elbo-mc)."""
        if self.scheme == "alternating":
            # theta: complete-data maximum likelihood, the sampled z held fixed
            # (as in the LGM).
            self._step("theta", x, completion)
        # phi (alternating) or theta and phi (joint): L_Q = -ELBO (its KL term
        # weighted, if asked: StepLoss.objective).
        elbo = self._step("phi" if self.scheme == "alternating" else "joint",
                          x, completion)
        # summed on the device: reading a number here would make a GPU wait
        self.elbo_sum = self.elbo_sum + elbo.sum()
        self.elbo_count += x.shape[0]

    def _step(self, block, x, completion):
        """An Adam step for ``block`` on the batch's loss (:class:`StepLoss`) per row; the
        rows' ELBOs."""
        self.model.zero_grad(set_to_none=True)
        loss, elbo = self.loss(x, completion, block, self.beta)
        (loss / self._rows(x)).backward()
        self.optimisers[block].step()
        return elbo

    def _rows(self, x):
        """The rows whose mean loss a step descends: the batch's."""
        return x.shape[0]

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


class DataParallelELBOAscent(ELBOAscent):
    """:class:`ELBOAscent` in one of several processes (``torchrun``), through
    :class:`~torch.nn.parallel.DistributedDataParallel` (DDP).

    Each batch is ``(x, m)``: this process's rows x of a global batch of m rows
    (:class:`nlgm.data.GlobalBatchSampler`). The noise eps is drawn for the
    whole global batch from the generator that every process holds in the same
    state, and each process keeps its rows' draws, so the processes together
    take the step that one process would take on the global batch.

    The step's loss comes out of DDP's forward (:class:`StepLoss` wrapped in
    DDP), so its backward pass averages the gradients over the W processes
    before every Adam step, and DDP gives every process rank 0's parameters
    when it is built: the copies of the model stay equal. Each process divides
    its rows' summed loss by m / W, so the average is the gradient of the
    global batch's mean loss, even for a process whose share of a last, small
    global batch is empty (its loss is 0, and it joins the average). The
    alternating scheme's theta step leaves the encoder without a gradient, so
    DDP is told to look for unused parameters (``find_unused_parameters``);
    the joint scheme uses every parameter in every step and does not pay for
    the search. (Free bits floor the KL of each unit averaged over a process's
    rows, not over the global batch: with ``free_bits`` > 0 the step is close
    to, not exactly, the one-process step.)

    Parameters
    ----------
    processes : nlgm.distributed.Processes
    **kwargs
        Those of :class:`ELBOAscent`.
    """

    def __init__(self, model, *, processes, **kwargs):
        super().__init__(model, **kwargs)
        self.processes, self.m = processes, None
        # No device_ids, on a GPU too: the model and the batches are already on
        # this process's device, and DDP would copy the completion into a plain
        # tuple, which has no KL term.
        self.loss = DistributedDataParallel(
            self.loss, find_unused_parameters=self.scheme == "alternating")

    def complete(self, batch, rng):
        """:meth:`NLGM.complete` of this process's rows, with their draws of the
        global batch's noise (eq-reparam)."""
        x, m = batch
        eps = torch.randn((self.n_samples, m, self.model.latent_dim),
                          generator=rng, dtype=x.dtype, device=x.device)
        p = self.processes
        return self.model.complete(x, eps=eps[:, p.rank::p.world_size])

    def reestimate(self, batch, completion):
        """:meth:`ELBOAscent.reestimate` of this process's rows of a global batch of m."""
        x, self.m = batch
        super().reestimate(x, completion)

    def _rows(self, x):
        """m / W: DDP averages the W processes' gradients, each of its rows' summed loss
        divided by m / W, which gives the gradient of the global batch's mean loss."""
        return self.m / self.processes.world_size

    def epoch_elbo(self):
        """Mean training ELBO since the last call, over all processes."""
        total, count = distributed.all_sum(
            [float(self.elbo_sum), self.elbo_count])
        self.elbo_sum, self.elbo_count = 0.0, 0
        return total / max(count, 1)


def cosine_lr(lr, epoch, epochs):
    """The learning rate of ``epoch`` (1..epochs): lr annealed on a cosine.

    lr_e = lr (1 + cos(pi (e - 1) / epochs)) / 2: about ``lr`` for the first
    epochs, half of it halfway, and nearly 0 in the last epoch. Stochastic
    gradient steps hover around a maximum at a distance that grows with the
    step size; shrinking the steps lets them settle on it.
    """
    return lr * 0.5 * (1.0 + math.cos(math.pi * (epoch - 1) / epochs))


def kl_weight(beta, epoch, kl_warmup):
    """The KL weight of ``epoch`` (1, 2, ...): ``beta``, warmed up linearly.

    beta_e = beta min(1, e / (W + 1)) for a warm-up of W = ``kl_warmup``
    epochs: beta / (W + 1) in the first epoch, rising by as much each epoch,
    and ``beta`` from epoch W + 1 on (W = 0: ``beta`` throughout).
    """
    return beta * min(1.0, epoch / (kl_warmup + 1))


def minibatches(x, batch_size, rng):
    """The rows of x in a random order, ``batch_size`` at a time."""
    order = torch.randperm(x.shape[0], generator=rng, device=x.device)
    return (
        x[order[i:i + batch_size]] for i in range(0, len(order), batch_size)
    )


@dataclass
class History:
    """What ``fit`` records, one entry per epoch in each list.

    ``history["epoch"]`` reads as ``history.epoch`` (and ``history.get``), so
    code written for the dict that ``fit`` used to return keeps working.

    Attributes
    ----------
    epoch : list of int
    train_elbo : list of float
        The mean minibatch ELBO during the epoch (the ELBO, whatever the KL
        weight of the steps).
    val_elbo : list of float
        The ELBO of the validation rows after the epoch; NaN without them.
    lr : list of float
        The learning rate of the epoch.
    beta : list of float
        The KL weight of the epoch (:func:`kl_weight`).
    seconds : list of float
        Cumulative.
    best_epoch : int
        The epoch whose parameters the model has (0: none finished).
    stopped : str
        Why training stopped, a reason of :func:`lgm.completion.run`:
        "patience" (early stopping), "n_iter" (the last epoch),
        "interrupted" (Ctrl-C); "" before any run.
    """

    epoch: list = field(default_factory=list)
    train_elbo: list = field(default_factory=list)
    val_elbo: list = field(default_factory=list)
    lr: list = field(default_factory=list)
    beta: list = field(default_factory=list)
    seconds: list = field(default_factory=list)
    best_epoch: int = 0
    stopped: str = ""

    def __getitem__(self, key):
        return getattr(self, key)

    def get(self, key, default=None):
        """``history[key]``, or ``default`` for a key it does not have."""
        return getattr(self, key, default)

    @property
    def stopped_early(self):
        """Whether early stopping (``patience``) ended training."""
        return self.stopped == "patience"

    def scores(self, validate):
        """The score of each epoch: the validation ELBO, or the training one
        without validation rows."""
        return list(self.val_elbo if validate else self.train_elbo)


def fit(model, X, *, epochs=1000, batch_size=128, lr=None, n_samples=1,
        val_fraction=None, seed=0, progress=True, scheme="joint", patience=50,
        checkpoint=None, device=None, initialise=True, beta=1.0, kl_warmup=0,
        free_bits=0.0):
    """Train an NLGM: maximise the ELBO of X with minibatches, in the one loop.

    The loop is :func:`lgm.completion.run`, EM's, with an epoch as its sweep:
    for every shuffled minibatch, :meth:`ELBOAscent.complete` samples z from
    the encoder and :meth:`ELBOAscent.reestimate` takes the gradient
    step(s), with the learning rate of the epoch (:func:`cosine_lr`). With
    validation rows, the model is then scored by their ELBO (eq-elbo-mc, the
    same noise every epoch); training stops when it has not improved for
    ``patience`` epochs, and the model is left with the parameters of its
    best epoch.

    Parameters
    ----------
    model : NLGM
    X : array_like or Tensor, shape (N, d); or numpy.memmap, Dataset, DataLoader
        Data in memory go to the device whole (the fast path). A memmap
        (``np.load(path, mmap_mode="r")``), a torch Dataset (map-style or
        iterable) or a DataLoader is streamed: its rows are read batch by
        batch, in the same batches and order as in memory (:mod:`nlgm.data`).
        Under ``torchrun`` each process reads its share of every batch and
        DistributedDataParallel averages the gradients over the processes
        (:class:`DataParallelELBOAscent`, :mod:`nlgm.distributed`); only
        rank 0 writes the checkpoint.
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
        state, best parameters; :mod:`nlgm.checkpoint`). If it exists when
        ``fit`` starts, training resumes from it and the history continues.
        Ctrl-C stops training; the model keeps its best (or last) parameters
        and the checkpoint holds the last finished epoch.
    device : str, optional
        "cpu", "cuda" or "mps"; None keeps the model where it is (the CPU
        unless moved).
    initialise : bool
        On a fresh start, call :meth:`NLGM.init_from_data` on the training rows
        first.
    beta : float >= 0
        The weight of the KL term in the steps' objective (1: the ELBO; a
        beta-VAE otherwise). The recorded ELBOs are always the ELBO's.
    kl_warmup : int >= 0
        Epochs over which the KL weight rises linearly to ``beta``
        (:func:`kl_weight`; 0: none).
    free_bits : float >= 0
        lambda, nats per latent unit: the KL term of the steps becomes
        beta sum_k max(lambda, mean-over-the-batch KL_k)
        (:func:`nlgm.elbo.weighted_kl`; 0: none).

    Returns
    -------
    History
        Lists ``epoch``, ``train_elbo``, ``val_elbo``, ``lr``, ``beta`` and
        ``seconds``, one entry per epoch; ``best_epoch`` (the epoch whose
        parameters the model has), ``stopped`` (why it stopped) and
        ``stopped_early``. ``history["epoch"]`` works too.

    Raises
    ------
    RuntimeError
        If an epoch's ELBO is not finite (the steps diverged): the model is
        first given back the parameters of its best finite epoch.
    """
    processes = distributed.processes()  # refuses torchrun without a group
    s = _settings(model, epochs=epochs, batch_size=batch_size, lr=lr,
                  n_samples=n_samples, val_fraction=val_fraction, seed=seed,
                  progress=progress, scheme=scheme, patience=patience,
                  checkpoint=checkpoint, device=device, beta=beta,
                  kl_warmup=kl_warmup, free_bits=free_bits)
    data = (stream(X, data_dim=model.data_dim, dtype=model.encoder.x_shift.dtype)
            if is_streamed(X) else None)
    if data is not None and not data.indexable:
        if val_fraction not in (None, 0):
            raise ValueError(
                f"val_fraction={val_fraction}: {data.name} has no index, so no"
                " rows can be held out from it; pass val_fraction=0, or a"
                " map-style Dataset (len and dataset[i]) or a memmap."
            )
        s.val_fraction = 0.0
    if data is None:
        x_all = model.to(s.device).check_input(X, "X", min_samples=2)
        N = len(x_all)
    else:
        model.to(s.device)
        N = data.n_rows  # None: an iterable source, all of it for training
    train_idx, val_idx = (_validation_split(N, s.val_fraction, seed)
                          if N is not None else (None, []))
    validate = len(val_idx) > 0
    if data is None:
        x_train = x_all[train_idx] if validate else x_all  # no copy if no split
        x_val = x_all[val_idx]
    setup = {"shape": [N, model.data_dim], "scheme": scheme,
             "val_fraction": s.val_fraction, "seed": seed}
    saved = _saved_checkpoint(s.checkpoint, model, setup, processes)

    if saved is None and initialise and processes.is_main:
        if data is None:
            model.init_from_data(x_train)
        else:
            model.init_from_moments(*data.moments(train_idx)[1:])
    trainer = (  # DataParallelELBOAscent's DDP gives every process rank 0's state
        DataParallelELBOAscent(model, processes=processes, lr=s.lr,
                               n_samples=s.n_samples, scheme=scheme,
                               free_bits=s.free_bits)
        if processes.distributed else
        ELBOAscent(model, lr=s.lr, n_samples=s.n_samples, scheme=scheme,
                   free_bits=s.free_bits)
    )
    share = dict(rank=processes.rank, world_size=processes.world_size)
    rng = torch.Generator(device=s.device).manual_seed(seed)
    history, best = History(), copy.deepcopy(model.state_dict())
    if saved is not None:
        history, best = _resume(saved, model, trainer, rng)
    start = time.perf_counter() - (history.seconds or [0.0])[-1]

    def epoch_batches():
        # the epoch's learning rate and KL weight, then its shuffled batches
        epoch = len(history.epoch) + 1
        trainer.set_lr(cosine_lr(s.lr, epoch, s.epochs))
        trainer.beta = kl_weight(s.beta, epoch, s.kl_warmup)
        if data is None and not processes.distributed:
            return minibatches(x_train, s.batch_size, rng)  # the fast path
        batches = (data.batches(train_idx, s.batch_size, generator=rng,
                                device=s.device, **share)
                   if data is not None else
                   shares(x_train, s.batch_size, rng, **share))
        # (rows, size of the global batch); one process needs only the rows
        return batches if processes.distributed else (x for x, _ in batches)

    def validation():
        if data is None and not processes.distributed:
            return validation_elbo(model, x_val, s.n_samples, seed)
        # the chunks of NLGM.mean_elbo, read or shared among the processes
        rows = max(1, _MAX_ELEMENTS // (s.n_samples * model._width()))
        chunks = (data.batches(val_idx, rows, device=s.device, **share)
                  if data is not None else shares(x_val, rows, None, **share))
        return _validation_elbo_of(trainer, chunks, seed, s.device, processes)

    def score():
        # the training ELBO (the one host sync of a sweep), then validation
        train_elbo = trainer.epoch_elbo()
        val_elbo = validation() if validate else math.nan
        history.epoch.append(len(history.epoch) + 1)
        history.train_elbo.append(train_elbo)
        history.val_elbo.append(val_elbo)
        history.lr.append(trainer.lr)
        history.beta.append(trainer.beta)
        history.seconds.append(time.perf_counter() - start)
        if not math.isfinite(train_elbo):
            return math.nan  # diverged, even if validation did not see it
        return val_elbo if validate else train_elbo

    def end_of_epoch(scores):
        # keep the best parameters (the last without validation); checkpoint
        nonlocal best
        if not validate or completion.sweeps_since_best(scores) == 0:
            best = copy.deepcopy(model.state_dict())
            history.best_epoch = history.epoch[-1]
        if s.checkpoint is not None and processes.is_main:
            checkpoints.write(s.checkpoint, model=model,
                              optimisers=trainer.optimisers, rng=rng,
                              history=history, best=best, setup=setup)

    _, history.stopped = completion.run(
        trainer, epoch_batches, n_iter=s.epochs, score=score, rng=rng,
        patience=s.patience if validate else None,
        history=history.scores(validate), desc="nlgm.fit",
        progress=progress and processes.is_main,
        unit="epochs", on_iteration=end_of_epoch,
        kept=lambda _: "the model keeps the parameters of epoch"
                       f" {history.best_epoch}.",
    )
    model.load_state_dict(best)
    if history.stopped == "diverged":
        raise RuntimeError(_diverged(history, s.lr))
    return history


def validation_elbo(model, x_val, n_samples, seed):
    """The mean ELBO of the held-out rows x_val (eq-elbo-mc), with the same noise every epoch.

    The noise is seeded with ``seed + 1`` (``seed`` draws the training samples), so the scores of
    two epochs differ only by what the model learnt between them.
    """
    noise = torch.Generator(device=x_val.device).manual_seed(seed + 1)
    return float(model.mean_elbo(x_val, n_samples, noise))


@torch.no_grad()
def _validation_elbo_of(trainer, batches, seed, device, processes):
    """The mean ELBO of validation rows read in ``batches`` (streamed, or shared
    among processes as ``(rows, m)``), with :func:`validation_elbo`'s noise.

    One process gets the value :func:`validation_elbo` gives for the same rows
    in memory; several sum their rows' ELBOs and counts (one all-reduce).
    """
    noise = torch.Generator(device=device).manual_seed(seed + 1)
    values = torch.cat([
        trainer.model.completion_elbo(
            batch[0], trainer.complete(batch if processes.distributed
                                       else batch[0], noise))
        for batch in batches
    ])
    if not processes.distributed:
        return float(values.mean())
    total, count = distributed.all_sum([values.sum(), len(values)], device)
    return total / count


def _saved_checkpoint(path, model, setup, processes):
    """The checkpoint to resume from, or None: read by the main process and
    sent to the others (which need not see its disk)."""
    saved = None
    if processes.is_main and path is not None and path.exists():
        try:
            saved = checkpoints.read(path, model, setup, History)
        except ValueError as err:  # every process raises it
            saved = err
    saved = distributed.broadcast_object(saved)
    if isinstance(saved, ValueError):
        raise saved
    return saved


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


@dataclass
class _Settings:
    epochs: int
    batch_size: int
    lr: float
    n_samples: int
    val_fraction: float
    patience: "int | None"
    checkpoint: object
    device: torch.device
    beta: float
    kl_warmup: int
    free_bits: float


def _settings(model, *, epochs, batch_size, lr, n_samples, val_fraction, seed,
              progress, scheme, patience, checkpoint, device, beta, kl_warmup,
              free_bits):
    """Every argument of :func:`fit` but the data, checked in one place."""
    if not isinstance(model, NLGM):
        raise TypeError(
            f"model must be an nlgm.NLGM; got {type(model).__name__}."
        )
    defaults = default_settings(model)
    if val_fraction is None:
        val_fraction = defaults["val_fraction"]
    val_fraction = check_positive(val_fraction, "val_fraction",
                                  allow_zero=True)
    if val_fraction >= 1:
        raise ValueError(
            f"val_fraction must be in [0, 1); got {val_fraction}."
        )
    check_seed(seed)
    check_option(scheme, "scheme", ("joint", "alternating"))
    if not isinstance(progress, (bool, np.bool_)):
        raise TypeError(f"progress must be True or False; got {progress!r}.")
    if (isinstance(kl_warmup, bool) or not isinstance(kl_warmup, Integral)
            or kl_warmup < 0):
        raise ValueError(
            f"kl_warmup must be a non-negative integer (epochs); got"
            f" {kl_warmup!r}."
        )
    free_bits = check_positive(free_bits, "free_bits", allow_zero=True)
    if free_bits > 0 and model.config["posterior"] != "diagonal":
        raise ValueError(
            "free_bits floors the KL of each latent unit, which only a"
            " diagonal posterior has; got free_bits > 0 with"
            f" posterior={model.config['posterior']!r}. Use free_bits=0"
            " (beta and kl_warmup work with every posterior)."
        )
    return _Settings(
        epochs=check_positive_int(epochs, "epochs"),
        batch_size=check_positive_int(batch_size, "batch_size"),
        lr=defaults["lr"] if lr is None else check_positive(lr, "lr"),
        n_samples=check_positive_int(n_samples, "n_samples"),
        val_fraction=val_fraction,
        patience=(None if patience is None
                  else check_positive_int(patience, "patience")),
        checkpoint=checkpoints.checkpoint_path(checkpoint),
        device=resolve_device(device, model),
        beta=check_positive(beta, "beta", allow_zero=True),
        kl_warmup=int(kl_warmup),
        free_bits=free_bits,
    )


def _diverged(history, lr):
    kept = history.best_epoch
    return (
        f"training diverged in epoch {history.epoch[-1]}: the ELBO is not"
        f" finite (training {history.train_elbo[-1]}, validation"
        f" {history.val_elbo[-1]}); the model keeps "
        + (f"the parameters of epoch {kept}" if kept else "its starting"
           " parameters")
        + f". Try a smaller lr (it was {lr:g}) or standardise X."
    )


def resolve_device(device, model):
    """``device`` as a torch.device that works here (None: where the model is), or a clear
    ValueError."""
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


def _resume(saved, model, trainer, rng):
    """Load a checkpoint's state into the objects of :func:`fit`.

    Returns
    -------
    history : History
    best : dict
        The state of the best epoch.
    """
    model.load_state_dict(saved["model"])
    for name, state in saved["optimisers"].items():
        trainer.optimisers[name].load_state_dict(state)
    rng.set_state(saved["rng"])
    best = {k: v.to(rng.device) for k, v in saved["best_state"].items()}
    return saved["history"], best
