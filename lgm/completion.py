"""The one loop of the book: complete the latents, then re-estimate the model.

PCA completes each x with a point, the linear Gaussian model with its exact
posterior (its moments, or samples of it), and the VAE with samples from an
encoder. Whatever the model, the loop is the same, and it is written only here
(implements eq-complete-reestimate):

    for each batch:
        # fill in z for every x in the batch
        completion = model.complete(batch, rng)
        # fit the model to the completed data
        model.reestimate(batch, completion)

A model is any object with those two methods. :func:`run` repeats the sweep
and owns everything around it (the score after each sweep, its history, the
stop rules, the progress bar, Ctrl-C); it is the outer loop of every EM of
``lgm.LGM`` (expected, sampled, with missing entries: one batch, the whole
data set) and of ``nlgm.fit`` for the VAE (one sweep per epoch over shuffled
minibatches, one gradient step each).
"""
import math
import warnings
from typing import NamedTuple

from tqdm import TqdmWarning

with warnings.catch_warnings():
    # In a notebook without ipywidgets, tqdm.auto warns (on stderr) at import
    # and falls back to the text progress bar, which is what we want; the
    # warning would clutter every page that imports lgm.
    warnings.simplefilter("ignore", TqdmWarning)
    from tqdm.auto import tqdm


def complete_then_reestimate(model, batches, rng):
    """One sweep of the loop over ``batches``.

    Implements eq-complete-reestimate.

    Parameters
    ----------
    model : object
        Has ``complete(batch, rng) -> completion`` and ``reestimate(batch,
        completion)``.
    batches : iterable
        The data, in the form the model's two methods take (arrays, tensors,
        statistics).
    rng : numpy.random.Generator or torch.Generator
        The source of randomness for sampled completion.
    """
    for batch in batches:
        completion = model.complete(batch, rng)
        model.reestimate(batch, completion)


def converged(tol):
    """A stopping rule: the score rose by less than ``tol`` in one sweep."""

    def stop(history):
        return len(history) >= 2 and history[-1] - history[-2] < tol

    return stop


def remaining_gain(history):
    """Aitken's estimate of how much the score will still rise.

    With the last two gains g_{k-1} and g_k and their ratio r = g_k / g_{k-1},
    a linearly converging sequence still has g_k (r + r^2 + ...) =
    g_k r / (1 - r) to gain (Aitken's delta-squared extrapolation, used to
    stop EM by Bohning et al. 1994). A crawl has r near 1 and a large
    remainder, however small each step is.

    Parameters
    ----------
    history : list of float
        The scores so far.

    Returns
    -------
    float
        ``inf`` with fewer than three scores or gains that do not shrink; 0
        when the last step gained nothing (a fixed point, to rounding).
    """
    if len(history) < 3:
        return math.inf
    gain_before, gain = history[-2] - history[-3], history[-1] - history[-2]
    if gain <= 0:
        return 0.0
    if gain_before <= 0 or gain >= gain_before:
        return math.inf
    r = gain / gain_before
    return gain * r / (1.0 - r)


def aitken_converged(tol):
    """A stopping rule: at most ``tol`` is left to gain.

    The remainder is :func:`remaining_gain`, so a slow crawl is not mistaken
    for convergence the way :func:`converged` mistakes it.
    """

    def stop(history):
        return remaining_gain(history) <= tol

    return stop


#: Why :func:`run` stopped: a stop rule said so (converged, or EM crawls),
#: ``patience`` sweeps passed without a new best score, ``n_iter`` sweeps
#: were done, the user pressed Ctrl-C, or a score was not finite.
REASONS = ("stop", "patience", "n_iter", "interrupted", "diverged")


class Run(NamedTuple):
    """What :func:`run` returns: the scores and why it stopped.

    A named pair, so ``history, reason = run(...)`` unpacks it.
    """

    history: list
    reason: str


def sweeps_since_best(history):
    """How many sweeps ago the best score was (0: the last one is the best).

    The first of equal best scores counts, so a score that only equals the
    best is no improvement.
    """
    best = max(range(len(history)), key=lambda i: (history[i], -i))
    return len(history) - 1 - best


def run(model, batches, *, n_iter, score, rng, stop=None, patience=None,
        history=None, progress=False, desc=None, unit="sweeps",
        on_iteration=None, kept=None):
    """Repeat the loop until a stop rule says so or ``n_iter`` sweeps are done.

    The one outer loop of the book, for EM of every kind and for training
    the VAE (``nlgm.fit``, one sweep per epoch):

        until a stop rule fires:
            complete_then_reestimate(model, batches(), rng)
            history.append(score())

    Parameters
    ----------
    model : object
        See :func:`complete_then_reestimate`.
    batches : callable
        ``batches()`` returns the iterable of batches for one sweep (for EM,
        one batch: the data, or their sufficient statistics; for the VAE,
        the shuffled minibatches of an epoch).
    n_iter : int
        The most sweeps in all, counting those of ``history``.
    score : callable
        ``score()`` returns the number to record after a sweep (the mean
        log-likelihood per sample for the LGM, an ELBO for the VAE).
    rng : numpy.random.Generator or torch.Generator
    stop : callable, optional
        ``stop(history) -> bool``, e.g. :func:`aitken_converged`.
    patience : int, optional
        Stop when the best score is ``patience`` sweeps old
        (:func:`sweeps_since_best`); None: never for that.
    history : list of float, optional
        The scores of earlier sweeps, when a run resumes: ``run`` appends to
        this list, and the stop rules see it all.
    progress : bool
        Show a tqdm progress bar.
    desc : str, optional
        The progress bar's label.
    unit : str
        What a sweep is called in the message of an interruption.
    on_iteration : callable, optional
        ``on_iteration(history)`` after each sweep with a finite score (e.g.
        to record a parameter's path, or write a checkpoint).
    kept : callable, optional
        ``kept(history) -> str``, what the model keeps after an
        interruption, for its warning.

    Returns
    -------
    Run
        ``history``, the list of scores, and ``reason``, one of
        :data:`REASONS`. If the user interrupts (Ctrl-C, the notebook's stop
        button), the loop warns and returns what it has (reason
        ``"interrupted"``); the model keeps the parameters of its last
        finished ``reestimate``. A score that is not finite ends the loop
        (reason ``"diverged"``) before ``on_iteration`` sees it.
    """
    history = [] if history is None else history

    def reason():
        if history and not math.isfinite(history[-1]):
            return "diverged"
        if history and stop is not None and stop(history):
            return "stop"
        if (history and patience is not None
                and sweeps_since_best(history) >= patience):
            return "patience"
        if len(history) >= n_iter:
            return "n_iter"
        return None

    bar = tqdm(total=n_iter, initial=len(history), desc=desc,
               disable=not progress, leave=False)
    try:
        while (why := reason()) is None:
            complete_then_reestimate(model, batches(), rng)
            history.append(float(score()))
            bar.update()
            bar.set_postfix(score=f"{history[-1]:.4f}")
            if on_iteration is not None and math.isfinite(history[-1]):
                on_iteration(history)
    except KeyboardInterrupt:
        why = "interrupted"
        what = (kept(history) if kept is not None
                else "the model keeps the parameters it had then.")
        warnings.warn(f"Interrupted after {len(history)} {unit}; {what}",
                      stacklevel=2)
    finally:
        bar.close()
    return Run(history, why)
