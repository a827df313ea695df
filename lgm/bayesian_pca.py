"""Bayesian PCA: automatic relevance determination finds K (chapter 7b).

Probabilistic PCA, x = mu + A z + e with z ~ N(0, I_K) and
e ~ N(0, sigma^2 I), with a Gaussian prior on each column a_k of A,
a_k ~ N(0, alpha_k^{-1} I_d) (eq-bpca-prior; Bishop 1999). The precisions
alpha_k are re-estimated with A: a column that the data do not need gets an
ever larger alpha_k, which pulls it to zero, so that only as many columns
stay switched on as the data support.

EM for the posterior mode of (A, sigma^2) completes z as probabilistic PCA
does (eq-lgm-posterior with D = sigma^2 1); its M-step is a ridge regression
of x on z, one ridge per column (eq-bpca-mstep); then alpha_k = d / |a_k|^2
(eq-bpca-alpha). Together the steps never decrease the log-posterior per
sample (eq-bpca-objective). Everything is computed from the sample
covariance S, O(d^2 K) per iteration.
"""
import numpy as np
from scipy import linalg

from lgm.checks import (
    check_data,
    check_positive,
    check_positive_int,
    check_variance_scale,
)
from lgm.completion import remaining_gain, run
from lgm.em import sample_covariance
from lgm.estimator import LinearGaussianEstimator
from lgm.gaussian import LOG_2PI
from lgm.linear_gaussian import posterior_statistics
from lgm.ppca import ppca_ml


def bpca_m_step(S, Sxz, Szz, sigma2, alpha, n_samples):
    """The M-step of Bayesian PCA: ridge regression of x on the completed z.

    Implements eq-bpca-mstep,
    A = S_xz (S_zz + sigma^2 diag(alpha) / N)^{-1} and
    sigma^2 = (1/d) tr(S - 2 A S_xz^T + A S_zz A^T),
    with the expected moments S_xz = (1/N) sum_n x_n E[z | x_n]^T and
    S_zz = (1/N) sum_n E[z z^T | x_n] of the E-step (old sigma^2 in the
    ridge, as in Bishop 1999). With alpha = 0 it is the maximum-likelihood
    M-step of probabilistic PCA.

    Parameters
    ----------
    S : ndarray, shape (d, d)
        Sample covariance (centred, normalised by N).
    Sxz : ndarray, shape (d, K)
    Szz : ndarray, shape (K, K)
    sigma2 : float
        The current noise variance.
    alpha : ndarray, shape (K,)
        The prior precisions of the columns, >= 0 (inf: the column is 0).
    n_samples : int
        N.

    Returns
    -------
    A : ndarray, shape (d, K)
    sigma2 : float
    """
    on = np.isfinite(alpha)  # alpha_k = inf holds a_k at 0
    G = Szz[np.ix_(on, on)] + np.diag(sigma2 * alpha[on] / n_samples)
    A = np.zeros_like(Sxz)
    A[:, on] = linalg.solve(G, Sxz[:, on].T, assume_a="pos").T
    d = S.shape[0]
    sigma2 = (np.trace(S) - 2.0 * np.sum(A * Sxz)
              + np.sum((A @ Szz) * A)) / d
    return A, float(sigma2)


def ard_update(A):
    """Re-estimated prior precisions alpha_k = d / |a_k|^2, shape (K,).

    Implements eq-bpca-alpha. A zero column gets alpha_k = inf.
    """
    with np.errstate(divide="ignore", over="ignore"):
        return A.shape[0] / np.sum(A**2, axis=0)


def bpca_objective(S, A, sigma2, alpha, n_samples):
    """Log-posterior of (A, sigma^2) per sample, up to a constant.

    Implements eq-bpca-objective:
    (1/N) [ sum_n log p(x_n | A, sigma^2)
            + sum_k (d/2 log(alpha_k / 2pi) - alpha_k |a_k|^2 / 2) ],
    the sum over the columns with a finite alpha_k; the log-likelihood is
    that of :func:`lgm.linear_gaussian.posterior_statistics`, the prior
    that of :func:`bpca_log_prior`.

    The arguments are not checked (the kernel of EM's iterations): S (d, d),
    A (d, K) finite, sigma2 > 0, alpha (K,) > 0 (inf: the column is 0).
    """
    loglik = posterior_statistics(S, A, np.full(A.shape[0], sigma2))[3]
    return loglik + bpca_log_prior(A, alpha) / n_samples


def bpca_log_prior(A, alpha):
    """The log-prior of A, sum_k (d/2 log(alpha_k / 2pi) - alpha_k |a_k|^2 / 2).

    The prior term of eq-bpca-objective, summed over the columns with a
    finite alpha_k (a column held at 0 is not in the model). Unchecked:
    A (d, K), alpha (K,) > 0.
    """
    d = A.shape[0]
    on = np.isfinite(alpha)
    prior = 0.5 * d * (np.log(alpha[on]) - LOG_2PI) - 0.5 * alpha[on] * np.sum(
        A[:, on]**2, axis=0)
    return float(np.sum(prior))


class _ARDState:
    """(A, sigma^2, alpha) of the active columns, as a model of the loop.

    A column whose |a_k|^2 falls below ``off`` times sigma^2 is switched off:
    removed from A (alpha_k = inf, a_k = 0 for ever). ``since_off`` counts
    the iterations since a column was last switched off.
    """

    def __init__(self, A, sigma2, n_samples, off):
        self.active = np.arange(A.shape[1])
        self.A, self.sigma2, self.N, self.off = A, sigma2, n_samples, off
        self.since_off = 0
        self._switch_off()
        self._posterior = None  # posterior_statistics of (A, sigma^2), once computed

    def _switch_off(self):
        off = np.sum(self.A**2, axis=0) <= self.off * self.sigma2
        if np.any(self.A[:, off]):
            self.since_off = 0
        if off.all():
            # an isotropic Gaussian: one zero column (alpha = inf) stays, so
            # that A keeps a shape (d, 1)
            self.active, self.A = self.active[:1], np.zeros_like(self.A[:, :1])
        else:
            self.active, self.A = self.active[~off], self.A[:, ~off]
        self.alpha = ard_update(self.A)

    def posterior(self, S):
        """:func:`lgm.linear_gaussian.posterior_statistics` of (A, sigma^2 1),
        unchecked: computed once per iteration, by the score, and used again
        by the next E-step."""
        if self._posterior is None:
            self._posterior = posterior_statistics(
                S, self.A, np.full(S.shape[0], self.sigma2))
        return self._posterior

    def complete(self, S, rng):
        """Posterior moments of z (eq-lgm-posterior, D = sigma^2 1)."""
        beta, Sigma, Sxz, _ = self.posterior(S)
        return Sxz, Sigma + beta @ Sxz

    def reestimate(self, S, moments):
        self.A, self.sigma2 = bpca_m_step(S, *moments, self.sigma2,
                                          self.alpha, self.N)
        self.since_off += 1
        self._switch_off()
        self._posterior = None

    def objective(self, S):
        """eq-bpca-objective (:func:`bpca_objective`) from the cached E-step."""
        return self.posterior(S)[3] + bpca_log_prior(self.A, self.alpha) / self.N


class BayesianPCA(LinearGaussianEstimator):
    """Bayesian PCA (Bishop 1999): probabilistic PCA that finds K itself.

    Each column a_k of A has the prior N(0, alpha_k^{-1} I) (eq-bpca-prior),
    with alpha_k re-estimated (eq-bpca-alpha) inside EM for the posterior
    mode (eq-bpca-mstep). Columns the data do not need shrink to zero and are
    switched off; ``n_active_`` of the ``n_components`` stay. Scoring,
    posterior, transform and sampling are those of the fitted probabilistic
    PCA with the active columns (:class:`lgm.estimator.LinearGaussianEstimator`).

    Parameters
    ----------
    n_components : int or None
        The number of columns to start from, between 1 and d - 1; None:
        d - 1, the most probabilistic PCA allows.
    max_iter : int
        The most EM iterations.
    tol : float
        EM stops when no column has been switched off for three iterations
        and Aitken's extrapolation of the log-posterior per sample since
        then (:func:`lgm.completion.remaining_gain`) leaves at most ``tol``.
    switch_off : float
        A column with |a_k|^2 below ``switch_off`` times sigma^2 is switched
        off (its variance is a negligible part of the noise's).

    Attributes
    ----------
    A_ : ndarray, shape (d, max(n_active_, 1))
        The active columns, in decreasing |a_k| (one zero column when
        none is active: the data are then an isotropic Gaussian).
    noise_variance_ : float
    alpha_ : ndarray, shape (n_components,)
        The prior precision of every starting column (inf: switched off).
    active_components_ : ndarray of int
        Which starting columns (of the PPCA start, in decreasing variance)
        are active.
    n_active_ : int
    mean_ : ndarray, shape (d,)
    objective_ : ndarray, shape (n_iter_,)
        Log-posterior per sample (eq-bpca-objective) after each iteration;
        it never decreases between switch-offs.
    n_iter_, n_features_in_ : int
    """

    def __init__(self, n_components=None, *, max_iter=2000, tol=1e-7,
                 switch_off=1e-6):
        self.n_components = n_components
        self.max_iter = max_iter
        self.tol = tol
        self.switch_off = switch_off

    def fit(self, X, y=None):
        """Fit (A, sigma^2, alpha) to the rows of X. Returns self."""
        X = self._validate_X(X, reset=True, min_samples=2)
        N, d = X.shape
        if d < 2:
            raise ValueError(
                f"X has {d} feature(s); Bayesian PCA needs d >= 2."
            )
        K = d - 1 if self.n_components is None else self.n_components
        if isinstance(K, bool) or not isinstance(K, (int, np.integer)) or \
                not 1 <= K <= d - 1:
            raise ValueError(
                "n_components must be None or an integer between 1 and"
                f" d - 1 = {d - 1}; got {self.n_components!r}."
            )
        check_positive_int(self.max_iter, "max_iter")
        check_positive(self.tol, "tol", allow_zero=True)
        check_positive(self.switch_off, "switch_off")
        mean = X.mean(axis=0)
        S = sample_covariance(X, mean)
        check_variance_scale(np.max(np.diag(S)), X)
        A, sigma2 = ppca_ml(S, int(K))
        state = _ARDState(A, sigma2, N, self.switch_off)

        def stop(history):
            n = state.since_off
            return n >= 3 and remaining_gain(history[-n:]) <= self.tol

        history, _ = run(state, lambda: [S], n_iter=self.max_iter, rng=None,
                         score=lambda: state.objective(S), stop=stop)
        order = np.argsort(-np.sum(state.A**2, axis=0))
        on = np.isfinite(state.alpha[order])
        alpha = np.full(int(K), np.inf)
        alpha[state.active] = state.alpha
        self.A_, self.noise_variance_ = state.A[:, order], state.sigma2
        self.alpha_ = alpha
        self.active_components_ = state.active[order][on]
        self.n_active_ = int(on.sum())
        self.mean_, self.objective_ = mean, np.asarray(history)
        self.n_iter_, self.n_features_in_ = len(history), d
        return self

    def _noise(self):
        return np.full(self.n_features_in_, self.noise_variance_)
