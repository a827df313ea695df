"""A quasi-Newton method (L-BFGS-B) that maximises a log-likelihood (ch. 6, 7).

EM crawls where the likelihood is flat in some direction (near a Heywood case): every
iteration gains a fixed fraction of what is left. A quasi-Newton method learns the curvature
from its gradients and crosses such a valley in tens of steps. The package uses it twice, on
the profile log-likelihood in the noise variances (:mod:`lgm.profile_likelihood`) and on the
observed-data log-likelihood with missing entries (:mod:`lgm.missing`); this module holds what
the two share: the bounds, the stopping rule, and the record of the log-likelihood after each
iteration.
"""
import numpy as np
from scipy import optimize


def maximise(objective, x0, lower, upper, *, max_iter, tol, on_iteration=None, memory=10):
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

    Returns
    -------
    x : ndarray, shape (n,)
        The last point accepted (x0, clipped, if none was).
    """
    values = {}  # the objective at the last points evaluated, for on_iteration

    def negative(x):
        value, gradient = objective(x)
        values[x.tobytes()] = value
        if len(values) > 20:  # a line search's trials; the oldest is no longer needed
            del values[next(iter(values))]
        return -value, -gradient

    def callback(x):
        if on_iteration is not None:
            value = values.get(x.tobytes())
            on_iteration(objective(x)[0] if value is None else value)

    result = optimize.minimize(
        negative, np.clip(x0, lower, upper), jac=True, method="L-BFGS-B",
        bounds=optimize.Bounds(lower, upper), callback=callback,
        # ftol=0: stop on the projected gradient, never on a small gain
        options={"maxiter": max_iter, "ftol": 0.0, "gtol": tol, "maxcor": memory},
    )
    return result.x
