"""A quasi-Newton method (L-BFGS-B) that maximises a log-likelihood (ch. 6, 7).

EM crawls where the likelihood is flat in some direction (near a Heywood case): every
iteration gains a fixed fraction of what is left. A quasi-Newton method learns the curvature
from its gradients and crosses such a valley in tens of steps. The package uses it twice, on
the profile log-likelihood in the noise variances (:mod:`lgm.profile_likelihood`) and on the
observed-data log-likelihood with missing entries (:mod:`lgm.missing`); this module holds what
the two share: the bounds, the stopping rule, the record of the log-likelihood after each
iteration, a progress bar, and an interruption (Ctrl-C) that keeps the last point accepted.
"""
import warnings
from typing import NamedTuple

import numpy as np
from scipy import optimize

from lgm import completion


class Solution(NamedTuple):
    """What both quasi-Newton solvers of the linear Gaussian model return.

    Attributes
    ----------
    A : ndarray, shape (d, K)
    D : ndarray, shape (d,)
    mean : ndarray, shape (d,) or None
        None for the profile likelihood (its data are centred: the mean is
        the sample mean).
    loglik : float
        The mean log-likelihood per sample at the solution (NaN if Ctrl-C
        came before it was first computed; the parameters are then the
        start).
    converged : bool
        False if ``max_iter`` stopped the solver; True if its stopping rule
        or Ctrl-C did (a Ctrl-C keeps the last point accepted).
    """

    A: np.ndarray
    D: np.ndarray
    mean: "np.ndarray | None"
    loglik: float
    converged: bool


def maximise(objective, x0, lower, upper, *, max_iter, tol, on_iteration=None, memory=10,
             progress=False, desc=None):
    """Maximise ``objective`` over the box lower <= x <= upper by L-BFGS-B.

    Each iteration that L-BFGS-B accepts raises the objective (its line search asks for a
    sufficient increase), so the values passed to ``on_iteration`` increase.

    Parameters
    ----------
    objective : callable
        ``objective(x)`` returns the value to maximise (a mean log-likelihood per sample, in
        nats) and its gradient, an ndarray of the shape of x.
    x0 : ndarray, shape (n,)
        The start; it is clipped into the box.
    lower, upper : ndarray, shape (n,)
        The bounds (``-numpy.inf`` and ``numpy.inf`` for none).
    max_iter : int
        The most iterations.
    tol : float
        Stop when no component of the projected gradient exceeds ``tol``, or when no step
        gains any more (the limit of float64); never on a small gain alone.
    on_iteration : callable, optional
        ``on_iteration(value)`` after each iteration, with the objective at the new point.
    memory : int
        How many past steps the curvature estimate uses (``maxcor``; scipy's default is 10).
    progress : bool
        Show a tqdm progress bar.
    desc : str, optional
        The progress bar's label.

    Returns
    -------
    x : ndarray, shape (n,)
        The last point accepted (x0, clipped, if none was).
    interrupted : bool
        Whether a KeyboardInterrupt (Ctrl-C) stopped it; x is then the last point accepted
        before it, and a warning says so.
    """
    values = {}  # the objective at the last points evaluated, for on_iteration

    def negative(x):
        value, gradient = objective(x)
        values[x.tobytes()] = value
        if len(values) > 20:  # a line search's trials; the oldest is no longer needed
            del values[next(iter(values))]
        return -value, -gradient

    accepted = [np.clip(x0, lower, upper)]
    bar = completion.tqdm(total=max_iter, desc=desc, disable=not progress, leave=False)

    def callback(x):
        value = values.get(x.tobytes())
        value = objective(x)[0] if value is None else value
        if on_iteration is not None:
            on_iteration(value)
        # x is accepted only once its value is recorded: a Ctrl-C before then keeps the
        # previous point, whose value was recorded last
        accepted.append(x.copy())
        bar.update()
        bar.set_postfix(score=f"{value:.4f}")

    try:
        result = optimize.minimize(
            negative, accepted[0], jac=True, method="L-BFGS-B",
            bounds=optimize.Bounds(lower, upper), callback=callback,
            # ftol=0: stop on the projected gradient, never on a small gain
            options={"maxiter": max_iter, "ftol": 0.0, "gtol": tol, "maxcor": memory},
        )
    except KeyboardInterrupt:
        warnings.warn(
            f"Interrupted after {len(accepted) - 1} quasi-Newton iterations; the model keeps"
            " the parameters it had then.",
            stacklevel=2,
        )
        return accepted[-1], True
    finally:
        bar.close()
    return result.x, False
