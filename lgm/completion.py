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

A model is any object with those two methods. ``lgm.LGM`` uses the loop for EM
with expected or sampled completion (one batch: the whole data set), through
:func:`run`; ``nlgm.fit`` runs :func:`complete_then_reestimate` once per epoch
for the VAE (many minibatches, one gradient step each), in a loop of its own
that adds a learning-rate schedule and early stopping.
"""
import math
import warnings

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


def run(model, batches, *, n_iter, score, rng, stop=None, progress=False,
        desc=None, on_iteration=None):
    """Repeat the loop until ``stop`` says so or ``n_iter`` sweeps are done.

    Parameters
    ----------
    model : object
        See :func:`complete_then_reestimate`.
    batches : callable
        ``batches()`` returns the iterable of batches for one sweep (for EM,
        one batch: the data, or their sufficient statistics).
    n_iter : int
        The most sweeps (EM iterations).
    score : callable
        ``score()`` returns the number to record after a sweep (the mean
        log-likelihood per sample for the LGM).
    rng : numpy.random.Generator or torch.Generator
    stop : callable, optional
        ``stop(history) -> bool``, e.g. :func:`converged`.
    progress : bool
        Show a tqdm progress bar.
    desc : str, optional
        The progress bar's label.
    on_iteration : callable, optional
        ``on_iteration(history)`` after each sweep (e.g. to record a
        parameter's path).

    Returns
    -------
    history : list of float
        The scores. If the user interrupts (Ctrl-C, the notebook's stop
        button), the loop warns and returns what it has: the model keeps the
        parameters of its last finished ``reestimate``.
    stopped : bool
        Whether ``stop`` ended the loop (rather than ``n_iter``).
    """
    history = []
    bar = tqdm(range(n_iter), desc=desc, disable=not progress, leave=False)
    stopped = False
    try:
        for _ in bar:
            complete_then_reestimate(model, batches(), rng)
            history.append(float(score()))
            bar.set_postfix(score=f"{history[-1]:.4f}")
            if on_iteration is not None:
                on_iteration(history)
            if stop is not None and stop(history):
                stopped = True
                break
    except KeyboardInterrupt:
        warnings.warn(
            f"Interrupted after {len(history)} sweeps; the model keeps the"
            " parameters it had then.",
            stacklevel=2,
        )
    finally:
        bar.close()
    return history, stopped
