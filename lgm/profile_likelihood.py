"""Factor analysis by its profile likelihood in the noise variances (ch. 6).

For fixed noise variances D the best loading matrix A has a closed form
(Joreskog 1967): scale the sample covariance to S* = D^{-1/2} S D^{-1/2}, take
its eigenvalues gamma_1 >= ... >= gamma_d and eigenvectors w_k, and set
A = D^{1/2} W_K (Gamma_K - I)_+^{1/2}, as for PPCA but in the scaled space.
What is left, the profile log-likelihood l(D) = max_A l(A, D), depends on d
numbers only, and its gradient is cheap (eq-lgm-profile). A quasi-Newton
method on log D with the noise floor as a bound (L-BFGS-B) reaches a
maximum on the boundary (a Heywood case, some D_i at the floor) in tens of
steps where EM crawls for tens of thousands. Each step costs one d x d
eigendecomposition, O(d^3), against O(d^2 K) for an EM iteration.
"""
import numpy as np
from scipy import linalg

from lgm.gaussian import LOG_2PI
from lgm import quasi_newton


def profile_log_likelihood(S, log_D, n_components):
    """The profile log-likelihood l(D) = max_A l(A, D), its gradient, and A.

    Implements eq-lgm-profile: with gamma_k, w_k the eigenpairs of
    S* = D^{-1/2} S D^{-1/2} and the "active" set a of the k <= K with
    gamma_k > 1,
    l(D) = -1/2 [ d log 2pi + sum_i log D_i + sum_{k in a} (log gamma_k + 1)
    + sum_{k not in a} gamma_k ],
    dl / d log D_i = -1/2 sum_{k not in a} w_ik^2 (1 - gamma_k),
    and the maximising A = D^{1/2} W_K (Gamma_K - I)_+^{1/2}.

    Parameters
    ----------
    S : ndarray, shape (d, d)
        Sample covariance (normalised by N) of the centred data.
    log_D : ndarray, shape (d,)
        Logarithms of the noise variances.
    n_components : int
        K.

    Returns
    -------
    loglik : float
        Mean log-likelihood per sample, in nats, at (A, D).
    grad : ndarray, shape (d,)
        Its gradient with respect to log D.
    A : ndarray, shape (d, K)
        The best loading matrix for this D.
    """
    K = n_components
    d = S.shape[0]
    D = np.exp(log_D)
    r = 1.0 / np.sqrt(D)
    gamma, W = linalg.eigh(S * r[:, None] * r[None, :])
    gamma, W = gamma[::-1], W[:, ::-1]
    active = (np.arange(d) < K) & (gamma > 1.0)
    loglik = -0.5 * (
        d * LOG_2PI + np.sum(log_D) + np.sum(np.log(gamma[active]) + 1.0)
        + np.sum(gamma[~active])
    )
    grad = -0.5 * (W[:, ~active] ** 2 @ (1.0 - gamma[~active]))
    A = np.sqrt(D)[:, None] * W[:, :K] * np.sqrt(
        np.maximum(gamma[:K] - 1.0, 0.0)
    )
    return float(loglik), grad, A


def maximise_profile(S, D0, n_components, *, floor, max_iter, tol,
                     on_iteration=None, progress=False):
    """Maximise the profile log-likelihood over D >= floor by L-BFGS-B.

    Through :func:`lgm.quasi_newton.maximise`. The variables are log D,
    bounded below by log floor and above by log S_ii (at a maximum
    D_i = S_ii - sum_k A_ik^2 <= S_ii), so the steps are relative changes of
    the variances and a variance heading to the floor gets there in a few
    steps.

    Parameters
    ----------
    S : ndarray, shape (d, d)
        Sample covariance of the centred data.
    D0 : ndarray, shape (d,), >= floor
        Starting noise variances (for example EM's current ones).
    n_components : int
        K.
    floor : float
        The smallest noise variance allowed, > 0.
    max_iter : int
        The most quasi-Newton iterations.
    tol : float
        Stop when no component of the projected gradient (with respect to
        log D, in nats per sample) exceeds ``tol``, or when no step gains
        any more (the limit of float64).
    on_iteration : callable, optional
        ``on_iteration(loglik)`` after each iteration.
    progress : bool
        Show a progress bar.

    Returns
    -------
    lgm.quasi_newton.Solution
        (A, D, None, loglik, converged): the mean log-likelihood per sample
        at (A, D); ``converged`` is False if ``max_iter`` stopped it.
    """
    n_iter = []

    def objective(log_D):
        loglik, grad, _ = profile_log_likelihood(S, log_D, n_components)
        return loglik, grad

    def record(loglik):
        n_iter.append(1)
        if on_iteration is not None:
            on_iteration(loglik)

    lower = np.full(len(D0), np.log(floor))
    upper = np.log(np.maximum(np.diag(S), floor))
    log_D, interrupted = quasi_newton.maximise(
        objective, np.log(D0), lower, upper, max_iter=max_iter, tol=tol,
        on_iteration=record, progress=progress,
        desc="quasi-Newton (profile likelihood)",
    )
    loglik, _, A = profile_log_likelihood(S, log_D, n_components)
    converged = interrupted or len(n_iter) < max_iter
    return quasi_newton.Solution(A, np.exp(log_D), None, loglik, converged)
