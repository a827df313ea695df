"""Missing entries in the linear Gaussian model (chapter 7): marginalise, complete, impute.

With x = mean + A z + e, the entries of a row that are missing (NaN) are latent variables like
z. Write o for the observed coordinates of a row and u for the missing (unobserved) ones, and
A_o, D_o, mean_o for the rows of A, D and the mean that belong to o (m is the posterior mean of z,
as in chapter 7). Then

- the observed entries alone are Gaussian, x_o ~ N(mean_o, A_o A_o^T + D_o), the observed-data
  likelihood (eq-missing-loglik), computed with the Woodbury identity and K x K solves;
- the posterior of z given x_o is that of the smaller model (A_o, D_o) (eq-missing-posterior),
  and the missing entries follow from z: E[x_u | x_o] = mean_u + A_u E[z | x_o]
  (eq-missing-impute);
- EM completes z *and* x_u with their joint posterior (eq-missing-estep) and re-estimates A, D
  and the mean together from the completed second moments (eq-missing-mstep), after
  Ghahramani & Jordan (1994);
- the same E-step gives the gradient of the observed-data log-likelihood (Fisher's identity,
  eq-fisher-identity), with which a quasi-Newton method takes over where EM crawls.

Rows are grouped by their missingness pattern: the K x K posterior precision, its Cholesky
factor and the log-determinant are computed once per distinct pattern (a batched O(P d K^2) for
P patterns), and each row costs O(d K) more. :class:`MissingData` holds the grouping, so that EM
computes it once rather than in every iteration.
"""
import warnings

import numpy as np

from lgm.checks import check_data
from lgm.gaussian import LOG_2PI
from lgm.linear_gaussian import check_params, m_step
from lgm import quasi_newton

#: Rows whose per-row K x K covariances are gathered at a time (bounds the memory).
_CHUNK_ROWS = 4096

#: L-BFGS-B restarts with a fresh scaling of the variables after this many iterations, and
#: its curvature estimate uses this many past steps (measured on scikit-learn's diabetes and
#: breast-cancer data with 20% missing: fewer restarts, or scipy's default memory of 10, need
#: up to twice as many iterations near a Heywood case).
_RESTART, _MEMORY = 100, 50


class MissingData:
    """Data with NaN for missing entries, grouped by missingness pattern.

    Parameters
    ----------
    X : array_like, shape (N, d)
        NaN marks a missing entry; every other entry must be finite, and every row must have at
        least one observed entry.
    name : str
        The argument's name, for error messages.
    n_features : int, optional
        The width d that is required.

    Attributes
    ----------
    X : ndarray, shape (N, d)
        The data, with NaN where missing.
    observed : ndarray of bool, shape (N, d)
        True where an entry is observed.
    patterns : ndarray of bool, shape (P, d)
        The P distinct rows of ``observed``.
    index : ndarray of int, shape (N,)
        Row n has the pattern ``patterns[index[n]]``.
    counts : ndarray of int, shape (P,)
        How many rows have each pattern.
    """

    def __init__(self, X, name="X", *, n_features=None):
        try:
            X = np.asarray(X, dtype=float)
        except (TypeError, ValueError) as err:
            raise TypeError(f"{name} must be a numeric array of shape (N, d); {err}") from None
        observed = ~np.isnan(X)
        # check_data sees the NaN as zeros: it checks the shape
        if np.isinf(X).any():
            bad = np.argwhere(np.isinf(X))[0]
            raise ValueError(
                f"{name} contains infinite values (first at row {bad[0]}, column {bad[1]}); NaN"
                " marks a missing entry, but inf is not allowed."
            )
        check_data(np.where(observed, X, 0.0), name, n_features=n_features)
        empty = np.flatnonzero(~observed.any(axis=1))
        if empty.size:
            raise ValueError(
                f"Row {empty[0]} of {name} has every entry missing (NaN)"
                + (f" ({empty.size} such rows in all)" if empty.size > 1 else "")
                + "; a row with nothing observed carries no information: drop it."
            )
        self.X, self.observed = X, observed
        self.patterns, index, self.counts = np.unique(
            observed, axis=0, return_inverse=True, return_counts=True
        )
        self.index = index.reshape(-1)

    @property
    def shape(self):
        """(N, d)."""
        return self.X.shape


def as_missing_data(X, name="X", *, n_features=None):
    """``X`` itself if it is a :class:`MissingData`, else ``MissingData(X)``."""
    if isinstance(X, MissingData):
        if n_features is not None and X.shape[1] != n_features:
            check_data(np.zeros((1, X.shape[1])), name, n_features=n_features)
        return X
    return MissingData(X, name, n_features=n_features)


def _check_model(data, A, D, mean):
    A, D = check_params(A, D, n_features=data.shape[1])
    mean = np.asarray(mean, dtype=float)
    if mean.shape != D.shape or not np.all(np.isfinite(mean)):
        raise ValueError(
            f"mean must be a finite vector of shape ({D.shape[0]},) to match A and D; got shape"
            f" {mean.shape}."
        )
    return A, D, mean


def _pattern_posteriors(patterns, A, D):
    """The posterior covariance of z and log|I + A_o^T D_o^{-1} A_o| for each pattern.

    Implements the covariance of eq-missing-posterior, Sigma_o = (I + A_o^T D_o^{-1} A_o)^{-1},
    for all P patterns at once: the precision is I + sum_{i in o} a_i a_i^T / psi_i.

    Returns
    -------
    Sigma : ndarray, shape (P, K, K)
    logdet_precision : ndarray, shape (P,)
    """
    K = A.shape[1]
    precision = np.eye(K) + np.einsum("pi,ik,il->pkl", patterns / D, A, A, optimize=True)
    L = np.linalg.cholesky(precision)
    L_inv = np.linalg.inv(L)  # K x K triangular, one per pattern
    Sigma = np.swapaxes(L_inv, 1, 2) @ L_inv
    logdet_precision = 2.0 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum(axis=1)
    return Sigma, logdet_precision


def _posterior(data, A, D, mean):
    """Posterior means, the pattern covariances and the observed-data log-likelihood.

    Returns
    -------
    means : ndarray, shape (N, K)
    Sigma : ndarray, shape (P, K, K)
    loglik : ndarray, shape (N,)
    """
    Sigma, logdet_precision = _pattern_posteriors(data.patterns, A, D)
    Xc = np.where(data.observed, data.X - mean, 0.0)  # x_o - mean_o, zeros where missing
    XcD = Xc / D
    B = XcD @ A  # row n: A_o^T D_o^{-1} (x_o - mean_o), shape (N, K)
    means = np.empty_like(B)
    for start in range(0, len(B), _CHUNK_ROWS):
        rows = slice(start, start + _CHUNK_ROWS)
        means[rows] = np.einsum("nkl,nl->nk", Sigma[data.index[rows]], B[rows])
    # Woodbury: (x_o - mean_o)^T C_o^{-1} (x_o - mean_o) = sum_o r^2/psi + m^T m with the
    # residual r = x_o - mean_o - A_o m; the equal sum_o x^2/psi - b^T Sigma_o b cancels
    # catastrophically when a psi_i is tiny (a Heywood case)
    R = np.where(data.observed, Xc - means @ A.T, 0.0)
    quad = np.einsum("nd,nd->n", R / D, R) + np.einsum("nk,nk->n", means, means)
    # determinant lemma: log|C_o| = sum_o log psi_i + log|I + A_o^T D_o^{-1} A_o|
    logdet = data.observed @ np.log(D) + logdet_precision[data.index]
    d_o = data.observed.sum(axis=1)
    return means, Sigma, -0.5 * (d_o * LOG_2PI + logdet + quad)


def observed_log_likelihood(X, A, D, mean):
    """Log-density of the observed entries of every row (the observed-data likelihood).

    Implements eq-missing-loglik: log p(x_o) = log N(x_o; mean_o, A_o A_o^T + D_o), with the
    Woodbury identity and the determinant lemma per missingness pattern (K x K solves only).
    Without NaN it is :func:`lgm.linear_gaussian.log_likelihood` of X - mean.

    Parameters
    ----------
    X : array_like, shape (N, d), or MissingData
        NaN marks a missing entry.
    A : array_like, shape (d, K)
    D : array_like, shape (d,), positive
    mean : array_like, shape (d,)

    Returns
    -------
    ndarray, shape (N,)
        log p(x_o) of each row, in nats.
    """
    data = as_missing_data(X)
    return _posterior(data, *_check_model(data, A, D, mean))[2]


def observed_posterior(X, A, D, mean):
    """Posterior of z given the observed entries of every row.

    Implements eq-missing-posterior: p(z | x_o) = N(Sigma_o A_o^T D_o^{-1} (x_o - mean_o),
    Sigma_o) with Sigma_o = (I_K + A_o^T D_o^{-1} A_o)^{-1}.

    Parameters
    ----------
    X : array_like, shape (N, d), or MissingData
    A : array_like, shape (d, K)
    D : array_like, shape (d,), positive
    mean : array_like, shape (d,)

    Returns
    -------
    means : ndarray, shape (N, K)
        E[z | x_o] for each row.
    covs : ndarray, shape (N, K, K)
        Cov[z | x_o] for each row; it depends on which entries the row has.
    """
    data = as_missing_data(X)
    means, Sigma, _ = _posterior(data, *_check_model(data, A, D, mean))
    return means, Sigma[data.index]


def impute(X, A, D, mean):
    """X with every missing entry replaced by its posterior mean E[x_u | x_o].

    Implements eq-missing-impute: E[x_u | x_o] = mean_u + A_u E[z | x_o]. Observed entries are
    returned as they are (the same floats).

    Parameters
    ----------
    X : array_like, shape (N, d), or MissingData
    A : array_like, shape (d, K)
    D : array_like, shape (d,), positive
    mean : array_like, shape (d,)

    Returns
    -------
    ndarray, shape (N, d)
        A new array without NaN.
    """
    data = as_missing_data(X)
    A, D, mean = _check_model(data, A, D, mean)
    means = _posterior(data, A, D, mean)[0]
    return np.where(data.observed, data.X, mean + means @ A.T)


def expected_moments(X, A, D, mean):
    """:func:`completed_moments` of X with its arguments checked.

    Parameters
    ----------
    X : array_like, shape (N, d), or MissingData
        NaN marks a missing entry.
    A : array_like, shape (d, K)
    D : array_like, shape (d,), positive
    mean : array_like, shape (d,)

    Returns
    -------
    sxx, Sxz, Szz, loglik
        As :func:`completed_moments`.
    """
    data = as_missing_data(X)
    return completed_moments(data, *_check_model(data, A, D, mean))


def completed_moments(data, A, D, mean):
    """The E-step with missing entries: expected second moments of the completed pairs.

    Implements eq-missing-estep. Each row is completed by the joint posterior of z and of its
    missing entries x_u given x_o, under the current (old) parameters. With the augmented latent
    z~ = (z, 1) (its last entry carries the mean) and x^ = E[x | x_o] (x_o, and the imputation
    eq-missing-impute in the missing places),

    E[z z^T] = Sigma_o + m m^T,  E[x_u z^T] = x^_u m^T + A_u Sigma_o,
    E[x_i^2] = x^_i^2 + a_i^T Sigma_o a_i + psi_i for a missing i.

    The arguments are not checked (the kernel of EM's iterations; :func:`expected_moments` checks
    them).

    Parameters
    ----------
    data : MissingData
        N rows of d features, grouped by missingness pattern.
    A : ndarray, shape (d, K)
    D : ndarray, shape (d,), positive
    mean : ndarray, shape (d,)

    Returns
    -------
    sxx : ndarray, shape (d,)
        (1/N) sum_n E[x_n * x_n] (elementwise).
    Sxz : ndarray, shape (d, K + 1)
        (1/N) sum_n E[x_n z~_n^T].
    Szz : ndarray, shape (K + 1, K + 1)
        (1/N) sum_n E[z~_n z~_n^T].
    loglik : float
        The mean observed-data log-likelihood per row under these (old) parameters, a by-product.
    """
    N, K = data.shape[0], A.shape[1]
    means, Sigma, loglik = _posterior(data, A, D, mean)
    X_hat = np.where(data.observed, data.X, mean + means @ A.T)
    # pattern p contributes counts[p] times its (missing rows of A) Sigma_p
    missing = (~data.patterns) * data.counts[:, None]  # (P, d)
    A_Sigma = np.einsum("pi,ik,pkl->il", missing, A, Sigma, optimize=True)
    a_Sigma_a = np.einsum("ik,pkl,il->pi", A, Sigma, A, optimize=True)  # a_i^T Sigma_p a_i
    Szz = np.empty((K + 1, K + 1))
    Szz[:K, :K] = (data.counts @ Sigma.reshape(len(Sigma), -1)).reshape(K, K) + means.T @ means
    Szz[:K, K] = Szz[K, :K] = means.sum(axis=0)
    Szz[K, K] = N
    Sxz = np.column_stack([X_hat.T @ means + A_Sigma, X_hat.sum(axis=0)])
    sxx = np.einsum("nd,nd->d", X_hat, X_hat) + np.sum(missing * (a_Sigma_a + D), axis=0)
    return sxx / N, Sxz / N, 0.5 * (Szz + Szz.T) / N, float(loglik.mean())


def m_step_with_mean(sxx, Sxz, Szz):
    """The M-step for (A, D, mean) from the moments of :func:`completed_moments`.

    Implements eq-missing-mstep: complete-data maximum likelihood with the augmented latent
    z~ = (z, 1) and loading matrix [A, mean], through :func:`lgm.linear_gaussian.m_step`:
    [A, mean] = Sxz Szz^{-1} and D = sxx - diag([A, mean] Sxz^T). With missing entries the mean
    must be re-estimated with A: the completed x_u depend on it.

    Parameters
    ----------
    sxx : ndarray, shape (d,)
    Sxz : ndarray, shape (d, K + 1)
    Szz : ndarray, shape (K + 1, K + 1)

    Returns
    -------
    A : ndarray, shape (d, K)
    D : ndarray, shape (d,)
    mean : ndarray, shape (d,)
    """
    A_mean, D = m_step(sxx, Sxz, Szz)
    return A_mean[:, :-1], D, A_mean[:, -1]


def observed_log_likelihood_gradient(X, A, D, mean):
    """:func:`fisher_gradient` at X with its arguments checked.

    Parameters
    ----------
    X : array_like, shape (N, d), or MissingData
        NaN marks a missing entry.
    A : array_like, shape (d, K)
    D : array_like, shape (d,), positive
    mean : array_like, shape (d,)

    Returns
    -------
    loglik, grad_A, grad_mean, grad_log_D
        As :func:`fisher_gradient`.
    """
    data = as_missing_data(X)
    return fisher_gradient(data, *_check_model(data, A, D, mean))


def fisher_gradient(data, A, D, mean):
    """The mean observed-data log-likelihood and its gradient, by Fisher's identity.

    Implements eq-fisher-identity: the gradient of the observed-data log-likelihood at theta is
    that of EM's expected complete-data log-likelihood Q(theta' | theta) at theta' = theta, so it
    comes from the E-step's moments sxx, Sxz and Szz (:func:`completed_moments`; Sxz_i^T is row
    i of Sxz). With B = [A, mean], b_i^T its row i and r_i = sxx_i - 2 b_i^T Sxz_i +
    b_i^T Szz b_i the expected squared residual of feature i, the mean observed-data
    log-likelihood per row l has

    dl/db_i = (Sxz_i - Szz b_i) / psi_i,  dl/d log psi_i = (r_i / psi_i - 1) / 2.

    The moments are sums of squares of x, so r_i cancels catastrophically if the mean is far
    from 0 in units of the spread: pass roughly centred data (:class:`lgm.LGM` does).

    The arguments are not checked (the objective of the quasi-Newton iterations;
    :func:`observed_log_likelihood_gradient` checks them).

    Parameters
    ----------
    data : MissingData
        N rows of d features, grouped by missingness pattern.
    A : ndarray, shape (d, K)
    D : ndarray, shape (d,), positive
    mean : ndarray, shape (d,)

    Returns
    -------
    loglik : float
        The mean observed-data log-likelihood per row (eq-missing-loglik).
    grad_A : ndarray, shape (d, K)
    grad_mean : ndarray, shape (d,)
    grad_log_D : ndarray, shape (d,)
        Its gradients with respect to A, the mean and log D.
    """
    sxx, Sxz, Szz, loglik = completed_moments(data, A, D, mean)
    B = np.column_stack([A, mean])
    B_Szz = B @ Szz
    grad_B = (Sxz - B_Szz) / D[:, None]
    residual = sxx - 2.0 * np.einsum("ik,ik->i", B, Sxz) + np.einsum("ik,ik->i", B_Szz, B)
    return loglik, grad_B[:, :-1], grad_B[:, -1], 0.5 * (residual / D - 1.0)


def maximise_observed_likelihood(X, A0, D0, mean0, *, floor, ceiling, max_iter, tol,
                                 on_iteration=None, progress=False):
    """Maximise the observed-data log-likelihood over (A, mean, D) by L-BFGS-B.

    Through :func:`lgm.quasi_newton.maximise`, with the gradient of
    :func:`fisher_gradient` (eq-fisher-identity); each evaluation costs one
    E-step. The variables are log D, bounded by log floor and log ceiling (so the steps of the
    variances are relative changes), and row i of A and entry i of the mean divided by s_i, the
    power of 2 nearest to sqrt(psi_i): the curvature in a_i grows like 1/psi_i, and as a
    variance heads for zero (a Heywood case) it would otherwise leave the problem too
    ill-conditioned for a quasi-Newton method. Powers of 2 divide exactly, so the parameters
    pass through the scaling unchanged. L-BFGS-B runs in rounds of at most 100 iterations, each
    restarted with s from the current D.

    Parameters
    ----------
    X : array_like, shape (N, d), or MissingData
        NaN marks a missing entry.
    A0 : ndarray, shape (d, K)
    D0 : ndarray, shape (d,), positive
    mean0 : ndarray, shape (d,)
        The start (for example EM's current parameters).
    floor, ceiling : float
        The smallest and the largest noise variance allowed, 0 < floor < ceiling.
    max_iter : int
        The most quasi-Newton iterations, all rounds together.
    tol : float
        Stop when no component of the projected gradient with respect to the scaled variables
        (in nats per row) exceeds ``tol``, or when a round gains at most ``tol`` nats per row
        (a variance creeping to the floor along a Heywood ridge, or the limit of float64).
    on_iteration : callable, optional
        ``on_iteration(loglik)`` after each iteration.
    progress : bool
        Show a progress bar (one per round).

    Returns
    -------
    lgm.quasi_newton.Solution
        (A, D, mean, loglik, converged): the mean observed-data log-likelihood per row at
        (A, D, mean), NaN if Ctrl-C came before it was first computed (A, D, mean are then the
        start); ``converged`` is False if ``max_iter`` stopped it, True if Ctrl-C did (at the
        last point accepted).
    """
    data = as_missing_data(X)
    A, D, mean = _check_model(data, A0, D0, mean0)
    d, K = A.shape
    lower = np.concatenate([np.full(d * K + d, -np.inf), np.full(d, np.log(floor))])
    upper = np.concatenate([np.full(d * K + d, np.inf), np.full(d, np.log(ceiling))])
    history = []

    def record(loglik):
        history.append(loglik)
        if on_iteration is not None:
            on_iteration(loglik)

    def unpack(theta, s):
        return theta[:d * K].reshape(d, K) * s[:, None], np.exp(theta[-d:]), theta[d * K:-d] * s

    def objective(theta, s):
        loglik, grad_A, grad_mean, grad_log_D = fisher_gradient(data, *unpack(theta, s))
        return loglik, np.concatenate([(grad_A * s[:, None]).ravel(), grad_mean * s, grad_log_D])

    theta = np.concatenate([A.ravel(), mean, np.clip(np.log(D), lower[-d:], upper[-d:])])
    s, interrupted, loglik = np.ones(d), False, np.nan
    while True:
        # rescale: a power of 2 near sqrt(psi_i), exact in both directions
        s_new = np.exp2(np.round(0.5 * theta[-d:] / np.log(2.0)))
        ratio = np.concatenate([np.repeat(s / s_new, K), s / s_new, np.ones(d)])
        theta, s = theta * ratio, s_new
        try:
            loglik, grad = objective(theta, s)
        except KeyboardInterrupt:  # Ctrl-C between rounds: keep theta, as maximise does
            warnings.warn(
                f"Interrupted after {len(history)} quasi-Newton iterations; the model keeps"
                " the parameters it had then.",
                stacklevel=2,
            )
            interrupted = True
            break
        projected = np.where(((theta <= lower) & (grad < 0)) | ((theta >= upper) & (grad > 0)),
                             0.0, grad)
        n_before = len(history)
        if np.abs(projected).max() <= tol or n_before >= max_iter:
            break
        theta, interrupted = quasi_newton.maximise(
            lambda theta: objective(theta, s), theta, lower, upper, tol=tol,
            on_iteration=record, max_iter=min(max_iter - n_before, _RESTART), memory=_MEMORY,
            progress=progress, desc="quasi-Newton (missing entries)")
        gain = history[-1] - loglik if len(history) > n_before else 0.0
        loglik += gain  # history[-1], the value at the last point accepted
        if interrupted or gain <= tol:
            break  # Ctrl-C, or the gains have stopped
    A, D, mean = unpack(theta, s)
    return quasi_newton.Solution(A, D, mean, float(loglik),
                                 interrupted or len(history) < max_iter)
