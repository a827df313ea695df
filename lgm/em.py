"""EM for the linear Gaussian model, expected or sampled completion (ch. 7).

Both versions run through the one loop of :mod:`lgm.completion`: a small
fitting state holds the current parameters (A, D) and has the loop's two
methods,

- ``complete(batch, rng)``: fill in z under the current (old) parameters,
  either with the exact posterior's moments (expected completion,
  eq-em-estep) or with J draws from it per sample (sampled completion);
- ``reestimate(batch, completion)``: the closed-form complete-data maximum
  likelihood on the completed data (eq-em-mstep, eq-mcem-mstep), with the
  new A inside the update of D.

Expected completion works from the sample covariance S, computed once, so an
iteration costs O(d^2 K) however many samples there are, and S of a dask array
is computed chunk by chunk (:mod:`lgm.sufficient_statistics`). With missing
entries (NaN) the loop completes z and the missing x together
(:class:`MissingCompletion`, :mod:`lgm.missing`), and where EM crawls a
quasi-Newton method takes over (:mod:`lgm.quasi_newton`). :class:`LGM` is the
scikit-learn estimator.
"""
import warnings
from typing import NamedTuple

import numpy as np
from scipy import linalg

from lgm import completion, linear_gaussian, profile_likelihood
from lgm import missing as missing_entries
from lgm.checks import (
    as_real_array,
    check_data,
    check_fitted,
    check_n_components,
    check_option,
    check_positive,
    check_positive_int,
    check_random_state,
    check_variance_scale,
)
from lgm.completion import (
    aitken_converged,
    complete_then_reestimate,
    remaining_gain,
)
from lgm.estimator import LinearGaussianEstimator
from lgm.linear_gaussian import (
    check_params,
    m_step,
    posterior_map,
)
from lgm.missing import (
    MissingData,
    impute,
    m_step_with_mean,
    observed_log_likelihood,
    observed_posterior,
)
from lgm.pca import orient_columns
from lgm.ppca import ppca_ml
from lgm.sufficient_statistics import (
    check_dask_array,
    dask_statistics,
    is_dask_array,
)

#: Rows of X centred and accumulated at a time by :func:`sample_covariance`
#: (bounds the memory).
_CHUNK_ROWS = 4096


def sample_covariance(X, mean):
    """S = (1/N) sum_n (x_n - mean)(x_n - mean)^T, one BLAS product per chunk.

    Centring a chunk at a time keeps the extra memory to a few tens of
    megabytes and avoids the cancellation of X^T X / N - mean mean^T. (A
    symmetric rank-k update, ``dsyrk``, does half the flops in theory, but with
    the OpenBLAS that numpy and scipy ship it measured slower than the general
    product; see ``benchmarks/RESULTS.md``.)

    Parameters
    ----------
    X : ndarray, shape (N, d), float64
    mean : ndarray, shape (d,)

    Returns
    -------
    S : ndarray, shape (d, d), symmetric
    """
    N, d = X.shape
    S = np.zeros((d, d))
    # data too large for float64 squares give inf, which callers refuse
    # (lgm.checks.check_variance_scale) with a message naming the data
    with np.errstate(over="ignore", invalid="ignore"):
        for start in range(0, N, _CHUNK_ROWS):
            Xc = X[start:start + _CHUNK_ROWS] - mean
            S += Xc.T @ Xc
    S /= N
    return 0.5 * (S + S.T)


class _EMState:
    """Parameters (A, D) being fitted, and how a re-estimated D is constrained.

    Parameters
    ----------
    A : ndarray, shape (d, K)
    D : ndarray, shape (d,)
    noise : {"diagonal", "isotropic"}
        Isotropic noise keeps D = sigma^2 * 1 (probabilistic PCA fitted by EM).
    floor : float
        Every re-estimated noise variance is at least this (``-numpy.inf``: no
        floor, so a variance that rounding makes zero or negative is returned
        as it is).
    S : ndarray, shape (d, d), optional
        The sample covariance to score new parameters on: each re-estimate
        then ends with the E-step at the new parameters
        (:func:`lgm.linear_gaussian.posterior_statistics`), which gives
        their mean log-likelihood (``loglik``) and the next iteration's
        completion. None (:func:`em_step`): nothing is scored.

    Attributes
    ----------
    loglik : float
        The mean log-likelihood per sample at (A, D), after a re-estimate
        (with ``S``).
    """

    def __init__(self, A, D, *, noise="diagonal", floor=0.0, S=None):
        self.A, self.D = A, D
        self.noise, self.floor, self.S = noise, floor, S
        self.loglik, self._next = None, None

    def _constrain(self, D):
        """The M-step's D, averaged if isotropic, then floored."""
        if self.noise == "isotropic":
            # the M-step for sigma^2 is the mean of the psi_i
            D = np.full_like(D, D.mean())
        return np.maximum(D, self.floor)

    def _update(self, A, D):
        """Store A and the M-step's D (constrained), with their E-step.

        They are stored only once their E-step is done, so an interruption
        (Ctrl-C) inside it leaves the old ones, whose log-likelihood the
        loop recorded last.
        """
        D = self._constrain(D)
        if self.S is not None:
            self._next = linear_gaussian.posterior_statistics(self.S, A, D)
            self.loglik = self._next[3]
        self.A, self.D = A, D


class ExpectedCompletion(_EMState):
    """EM with expected completion: z is filled in by its posterior's moments.

    The batch is the sample covariance S = (1/N) sum_n x_n x_n^T of the
    (centred) data.
    """

    def complete(self, S, rng):
        """The posterior under the current (old) parameters, summed over the data.

        E[z | x] = beta x and Cov[z | x] = Sigma, and S beta^T.

        Implements eq-em-estep (the per-sample moments are m_n = beta x_n and
        E[z z^T | x_n] = Sigma + m_n m_n^T), through
        :func:`lgm.linear_gaussian.posterior_statistics`; the E-step that
        scored the current parameters already did it. ``rng`` is unused:
        nothing is drawn.
        """
        if self._next is None:
            self._next = linear_gaussian.posterior_statistics(
                S, self.A, self.D)
        completion, self._next = self._next[:3], None
        return completion

    def reestimate(self, S, completion):
        """Closed-form M-step from the expected sufficient statistics.

        Implements eq-em-mstep: with (1/N) sum_n x_n m_n^T = S beta^T and
        (1/N) sum_n E[z z^T | x_n] = Sigma + beta S beta^T,
        A^{k+1} = S beta^T (Sigma + beta S beta^T)^{-1} and
        D^{k+1} = diag(S - A^{k+1} beta S).
        """
        beta, Sigma, Sxz = completion  # Sxz = S beta^T, shape (d, K)
        Szz = Sigma + beta @ Sxz  # (1/N) sum_n E[z z^T | x_n], shape (K, K)
        self._update(*m_step(np.diag(S), Sxz, Szz))


class SampledCompletion(_EMState):
    """EM with sampled completion (Monte Carlo EM): J draws of z per sample.

    The batch is the centred data X (N, d).

    Parameters
    ----------
    n_samples : int
        J, the number of completions drawn for each x_n.
    """

    def __init__(self, A, D, *, n_samples=1, noise="diagonal", floor=0.0,
                 S=None):
        super().__init__(A, D, noise=noise, floor=floor, S=S)
        self.n_samples = n_samples

    def complete(self, X, rng):
        """Draw z_nj ~ p(z | x_n) under the current (old) parameters, j = 1..J.

        The posterior map (beta, Sigma) comes from the E-step that scored the
        current parameters, where there was one (``S``).

        Returns
        -------
        Z : ndarray, shape (J, N, K)
        """
        if self._next is None:
            beta, Sigma = posterior_map(self.A, self.D)
        else:
            (beta, Sigma), self._next = self._next[:2], None
        L = linalg.cholesky(Sigma, lower=True)
        eps = rng.standard_normal((self.n_samples, X.shape[0], Sigma.shape[0]))
        return X @ beta.T + eps @ L.T

    def reestimate(self, X, Z):
        """Complete-data maximum likelihood on the N J pairs (x_n, z_nj).

        Implements eq-mcem-mstep:
        A^{k+1} = (sum_nj x_n z_nj^T)(sum_nj z_nj z_nj^T)^{-1} and
        D^{k+1} = (1/(N J)) diag(sum_nj x_n x_n^T - A^{k+1} sum_nj z_nj x_n^T).
        """
        J, N, K = Z.shape
        M = N * J  # the number of completed pairs
        Sxz = X.T @ Z.sum(axis=0) / M
        Zf = Z.reshape(M, K)
        Szz = Zf.T @ Zf / M
        # each x_n appears in J pairs: J/(NJ) = 1/N
        sxx = np.einsum("nd,nd->d", X, X) / N
        self._update(*m_step(sxx, Sxz, Szz))


class MissingCompletion(_EMState):
    """EM with missing entries: z and the missing x are completed together.

    The batch is a :class:`lgm.missing.MissingData` (X with NaN, grouped by
    missingness pattern); the mean is re-estimated with A and D.

    As with the other completions, the E-step at new parameters also gives
    their observed-data log-likelihood (eq-missing-loglik), which the loop
    records after each iteration: so ``reestimate`` ends by computing it (in
    ``loglik``) and keeps it for the next ``complete``.

    Parameters
    ----------
    mean : ndarray, shape (d,)
        The starting mean.
    """

    def __init__(self, A, D, mean, *, noise="diagonal", floor=0.0):
        super().__init__(A, D, noise=noise, floor=floor)
        self.mean = mean

    def complete(self, data, rng):
        """Expected moments of (z, x) given the observed entries (old parameters).

        Implements eq-missing-estep through
        :func:`lgm.missing.completed_moments`. ``rng`` is unused.
        """
        if self._next is None:
            self._next = missing_entries.completed_moments(
                data, self.A, self.D, self.mean)
        moments, self._next = self._next[:3], None
        return moments

    def reestimate(self, data, moments):
        """[A, mean] and D from the completed moments (eq-missing-mstep).

        The new parameters are stored only once their E-step is done, so an
        interruption (Ctrl-C) inside it leaves the old ones, whose
        log-likelihood the loop recorded last.
        """
        A, D, mean = m_step_with_mean(*moments)
        D = self._constrain(D)
        self._next = missing_entries.completed_moments(data, A, D, mean)
        self.A, self.D, self.mean, self.loglik = A, D, mean, self._next[3]


def em_step(X, A, D):
    """One EM iteration (expected completion), zero-mean LGM, diagonal noise.

    Implements eq-em-estep and eq-em-mstep, through
    :func:`lgm.completion.complete_then_reestimate`. X is used as it is (no
    mean is subtracted) and no noise floor is applied.

    Parameters
    ----------
    X : array_like, shape (N, d)
    A : array_like, shape (d, K)
        The current loading matrix A^k.
    D : array_like, shape (d,), positive
        The current noise variances D^k.

    Returns
    -------
    A_new : ndarray, shape (d, K)
    D_new : ndarray, shape (d,)
    """
    X = check_data(X)
    A, D = check_params(A, D, n_features=X.shape[1])
    state = ExpectedCompletion(A, D, floor=-np.inf)
    complete_then_reestimate(state, [X.T @ X / X.shape[0]], rng=None)
    return state.A, state.D


class _Problem(NamedTuple):
    """The data as :meth:`LGM._fit` sees them, made once by :meth:`LGM._problem`.

    Attributes
    ----------
    K : int
        ``n_components``, checked against d.
    S : ndarray, shape (d, d)
        The sample covariance about ``mean``; with missing entries, that of
        the rows with every missing entry set to 0, about 0 (for the start).
    mean : ndarray, shape (d,)
        The sample mean; with missing entries, the starting mean, 0.
    offset : ndarray, shape (d,)
        Added to the fitted mean at the end: with missing entries, the mean
        of each column's observed entries, which ``data`` are centred on;
        otherwise 0.
    X : ndarray, shape (N, d), optional
        The centred rows, for sampled completion.
    data : lgm.missing.MissingData, optional
        The centred rows with NaN, grouped by missingness pattern.
    """

    K: int
    S: np.ndarray
    mean: np.ndarray
    offset: np.ndarray
    X: "np.ndarray | None" = None
    data: "MissingData | None" = None


class LGM(LinearGaussianEstimator):
    """Linear Gaussian model (factor analysis) x = mean + A z + e, fit by EM.

    z ~ N(0, I_K), e ~ N(0, diag(D)) independent of z (eq-lgm-marginal). Fitted
    through the one loop :func:`lgm.completion.run`. Scoring, posterior,
    transform and sampling are inherited from
    :class:`lgm.estimator.LinearGaussianEstimator`.

    Parameters
    ----------
    n_components : int, default 2
        K, the latent dimension, between 1 and d (a default, as scikit-learn
        expects of every argument, so that ``GridSearchCV(LGM(), ...)``
        works; choose K by held-out likelihood, ``score``).
    noise : {"diagonal", "isotropic"}
        ``"diagonal"``: one variance per feature (factor analysis).
        ``"isotropic"``: D = sigma^2 * 1 (probabilistic PCA fitted by EM).
    completion : {"expected", "sampled"}
        ``"expected"``: classical EM from the sample covariance, O(d^2 K) per
        iteration; the log-likelihood never decreases. ``"sampled"``: Monte
        Carlo EM with ``n_samples`` draws from the exact posterior per sample,
        O(N J K^2 + N d K) per iteration; the log-likelihood fluctuates, so
        ``tol`` is not used and exactly ``max_iter`` iterations run.
    n_samples : int
        J, the completions per sample for ``completion="sampled"``.
    solver : {"auto", "em", "profile"}
        How expected completion with diagonal noise maximises the likelihood.
        ``"em"``: EM only. ``"profile"``: a quasi-Newton method (L-BFGS-B) on
        the profile log-likelihood in the noise variances
        (:mod:`lgm.profile_likelihood`, eq-lgm-profile) from the start.
        ``"auto"``: EM, switching to the profile solver when EM crawls (when
        finishing by EM is predicted to cost more than about 30 d / K
        further iterations, as near a Heywood case; never with ``tol=0``).
        With missing entries A has no closed form, so there is no profile
        likelihood: the quasi-Newton method then runs on the observed-data
        log-likelihood in (A, mean, log D) together, its gradient from the
        E-step by Fisher's identity (eq-fisher-identity,
        :func:`lgm.missing.maximise_observed_likelihood`); ``"profile"``
        runs it from the start, ``"auto"`` hands over to it when EM is
        predicted to need more than about 10 K d further iterations (each
        of its iterations costs about one E-step). Other settings always use
        EM.
    missing : {"error", "em"}
        What ``fit`` does with NaN in X. ``"error"``: refuse them.
        ``"em"``: NaN entries are missing at random; EM completes z and the
        missing entries together from their posterior given the observed ones
        (eq-missing-estep) and re-estimates the mean with A and D
        (eq-missing-mstep), with expected completion, O(N d K + P d K^2) per
        iteration for P missingness patterns. ``loglik_`` is then the
        observed-data log-likelihood (eq-missing-loglik), and ``score``,
        ``score_samples``, ``posterior`` and ``transform`` accept NaN and use
        the observed entries of each row. Data without NaN are fitted exactly
        as with ``"error"``. With diagonal noise EM with missing entries
        often crawls as plain EM does (near a Heywood case), and
        ``solver="auto"`` hands over to a quasi-Newton method (see
        ``solver``): on scikit-learn's breast-cancer data, standardised, with
        20% of the entries missing and K = 5, about 300 iterations in all
        (a second), where EM alone still gains after 20000.
    max_iter : int
        The most iterations (EM and quasi-Newton together).
    tol : float
        EM stops when Aitken's extrapolation of the mean log-likelihood per
        sample (:func:`lgm.completion.remaining_gain`) leaves at most
        ``tol`` nats to gain (``tol=0``: when an iteration gains nothing), so
        a slow crawl is not taken for convergence;
        the quasi-Newton solvers stop when their projected gradient is
        below ``tol`` (with missing entries also when a round of at most
        100 of their iterations gains at most ``tol``). A
        :class:`sklearn.exceptions.ConvergenceWarning` is issued when
        ``max_iter`` stops the fit instead.
    init : {"ppca", "random"} or tuple (A0, D0)
        ``"ppca"``: the closed-form probabilistic PCA fit
        (:func:`lgm.ppca.ppca_ml`), a good start that needs few iterations.
        ``"random"``: standard normal A scaled to the data and D = the feature
        variances (far more iterations, and EM can stall on a plateau). Or
        explicit starting values of shapes (d, K) and (d,).
    noise_floor : float
        Every noise variance is kept at least ``noise_floor`` times the mean
        feature variance (tr S / d), so a constant feature (the digits have
        three) gets a small, finite variance and a finite likelihood instead of
        an infinitely tall density. Small enough that the likelihood at the
        floor is within a few 1e-6 nats per sample of its supremum in a
        Heywood case.
    random_state : None, int or numpy.random.Generator
        Seeds the random start and the sampled completions.
    progress : bool
        Show a progress bar.

    ``fit`` also takes a ``dask.array`` (expected completion, no NaN): N, the
    mean and S are computed chunk by chunk with dask, in one pass
    (:func:`lgm.sufficient_statistics.dask_statistics`), and the fit runs from
    them, so the data never have to fit in memory.

    Attributes
    ----------
    A_ : ndarray, shape (d, K)
        Loading matrix (determined up to A -> A R with R orthogonal).
    D_ : ndarray, shape (d,)
        Noise variances.
    mean_ : ndarray, shape (d,)
        The sample mean (with missing entries: the maximum-likelihood mean,
        fitted by EM).
    loglik_ : ndarray, shape (n_iter_,)
        Mean log-likelihood per sample (nats) on the training data after each
        iteration (EM, then quasi-Newton if a quasi-Newton solver ran; of
        the observed entries, with missing entries); it never decreases with
        expected completion.
    n_iter_ : int
        Iterations run.
    n_features_in_ : int
        d.
    """

    def __init__(self, n_components=2, *, noise="diagonal",
                 completion="expected", n_samples=1, solver="auto",
                 missing="error", max_iter=1000, tol=1e-7, init="ppca",
                 noise_floor=1e-8, random_state=None, progress=False):
        self.n_components = n_components
        self.noise = noise
        self.completion = completion
        self.n_samples = n_samples
        self.solver = solver
        self.missing = missing
        self.max_iter = max_iter
        self.tol = tol
        self.init = init
        self.noise_floor = noise_floor
        self.random_state = random_state
        self.progress = progress

    def _check_params(self, d):
        """Validate the constructor's arguments (at fit, as scikit-learn does).

        Returns
        -------
        K : int
            ``n_components``, checked against the data width d.
        """
        check_option(self.noise, "noise", ("diagonal", "isotropic"))
        check_option(self.completion, "completion", ("expected", "sampled"))
        check_positive_int(self.n_samples, "n_samples")
        check_option(self.solver, "solver", ("auto", "em", "profile"))
        check_option(self.missing, "missing", ("error", "em"))
        if self.solver == "profile" and (
            self.noise != "diagonal" or self.completion != "expected"
        ):
            raise ValueError(
                "solver='profile' needs noise='diagonal' and"
                f" completion='expected'; got noise={self.noise!r} and"
                f" completion={self.completion!r}."
            )
        check_positive_int(self.max_iter, "max_iter")
        check_positive(self.tol, "tol", allow_zero=True)
        if not (isinstance(self.init, tuple) and len(self.init) == 2):
            check_option(self.init, "init", ("ppca", "random"))
        check_positive(self.noise_floor, "noise_floor")
        if not isinstance(self.progress, (bool, np.bool_)):
            raise TypeError(
                f"progress must be True or False; got {self.progress!r}."
            )
        return check_n_components(self.n_components, d)

    def _start(self, S, K, rng, floor):
        """Starting (A, D) for EM."""
        d = S.shape[0]
        if isinstance(self.init, tuple):
            try:
                A, D = check_params(*self.init, n_features=d)
            except (TypeError, ValueError) as err:
                raise type(err)(
                    "init must be 'ppca', 'random' or a pair (A0, D0) of"
                    f" shapes ({d}, {K}) and ({d},); {err}"
                ) from None
            if A.shape[1] != K:
                raise ValueError(
                    f"init: A0 must have shape ({d}, {K}); got {A.shape}."
                )
            A, D = A.copy(), np.maximum(D, floor)
        elif self.init == "random":
            A = rng.standard_normal((d, K)) * np.sqrt(np.trace(S) / (d * K))
            D = np.maximum(np.diag(S).copy(), floor)
        elif K == d:
            raise ValueError(
                f"init='ppca' needs n_components={K} < the number of features"
                f" (n_features={d}): PPCA leaves no variance for the noise"
                " otherwise; pass init='random' or explicit (A0, D0)."
            )
        else:
            A, sigma2 = ppca_ml(S, K)
            D = np.full(d, max(sigma2, floor))
        if self.noise == "isotropic":
            D = np.full(d, D.mean())
        return A, D

    def fit(self, X, y=None):
        """Fit A, D and the mean to the rows of X by maximum likelihood.

        EM, and a quasi-Newton solver when ``solver`` asks for it.

        Parameters
        ----------
        X : array_like or dask.array.Array, shape (N, d), N >= 2
            NaN marks a missing entry if ``missing="em"``.
        y : ignored
            There for scikit-learn's pipelines.

        Returns
        -------
        self
        """
        problem = self._problem(X)
        A, D, mean, history, converged = self._fit(problem)
        if not converged:
            _warn_not_converged(self.max_iter, history, self.tol)
        # every fitted attribute at the end: a failed fit leaves the model
        self.A_, self.D_, self.mean_ = A, D, mean + problem.offset
        self.n_features_in_ = A.shape[0]
        self.loglik_, self.n_iter_ = np.asarray(history), len(history)
        return self

    def _problem(self, X):
        """X, validated with the parameters, as the fit sees it (once).

        Complete data become their mean and S (a dask array: both from one
        pass, :func:`lgm.sufficient_statistics.dask_statistics`); data with
        missing entries become their rows minus each column's observed mean,
        grouped by missingness pattern (:class:`lgm.missing.MissingData`).
        """
        if is_dask_array(X):
            if self.completion == "sampled":
                raise ValueError(
                    "completion='sampled' draws completions of every row in"
                    " every iteration, so it does not take a dask array; use"
                    " completion='expected' (it needs only the mean and the"
                    " sample covariance, which dask computes in one pass), or"
                    " X.compute()."
                )
            if self.missing == "em":
                raise ValueError(
                    "missing='em' needs every row in every iteration, so it"
                    " does not take a dask array; pass a numpy array"
                    " (X.compute()), or missing='error' for data without NaN."
                )
            K = self._check_params(check_dask_array(X)[1])
            _, mean, S = dask_statistics(X)
            check_variance_scale(np.max(np.diag(S)), X)
            return _Problem(K, S, mean, np.zeros_like(mean))
        X = as_real_array(X, "X")
        # a finite mean proves every entry finite, so X is scanned only once;
        # otherwise NaN (missing entries) and inf are found and named
        finite = (X.ndim == 2 and X.shape[0] > 0
                  and np.all(np.isfinite(mean := X.mean(axis=0))))
        data = None if finite else self._missing_data(X, reset=True)
        if data is None:
            X = self._validate_X(X, reset=True, min_samples=2, finite=finite)
            K = self._check_params(X.shape[1])
            if not finite:  # entries too large to sum: refused below
                mean = X.mean(axis=0)
            S = sample_covariance(X, mean)
            check_variance_scale(np.max(np.diag(S)), X)
            centred = X - mean if self.completion == "sampled" else None
            return _Problem(K, S, mean, np.zeros_like(mean), X=centred)
        N, d = data.shape
        K = self._check_params(d)
        if self.completion == "sampled":
            raise ValueError(
                "missing='em' runs EM with expected completion; with"
                " completion='sampled' X must not contain NaN."
            )
        if N < 2:
            raise ValueError(f"X needs at least 2 samples (rows); got {N}.")
        empty = np.flatnonzero(~data.observed.any(axis=0))
        if empty.size:
            raise ValueError(
                f"Column {empty[0]} of X is missing (NaN) in every row; nothing"
                " can be learnt about that feature: drop it."
            )
        # EM's moments and the gradient's residuals are sums of squares and
        # products of x (eq-missing-estep), which cancel catastrophically
        # about a mean far from 0: the fit runs on the data minus the mean of
        # each column's observed entries, and adds it back at the end
        offset = np.nanmean(data.X, axis=0)
        data = MissingData(data.X - offset)
        # the start's S: of the data with every missing entry set to 0
        X0 = np.where(data.observed, data.X, 0.0)
        S0 = sample_covariance(X0, np.zeros(d))
        check_variance_scale(np.max(np.diag(S0)), X0)
        return _Problem(K, S0, np.zeros(d), offset, data=data)

    def _fit(self, problem):
        """The one fit: floor, start, EM, hand-over to quasi-Newton.

        Which options combine (``_check_params`` and :meth:`_problem` refuse
        the others: ``solver="profile"`` needs diagonal noise and expected
        completion; a dask array or NaN need expected completion; a dask
        array needs ``missing="error"``):

        ============  ==========  =========  ===================  ==========================
        X             completion  noise      EM (model of run)    quasi-Newton (solver)
        ============  ==========  =========  ===================  ==========================
        array, dask   expected    diagonal   ExpectedCompletion   profile likelihood
        array, dask   expected    isotropic  ExpectedCompletion   none
        array         sampled     either     SampledCompletion    none (tol unused)
        with NaN      expected    diagonal   MissingCompletion    observed likelihood
        with NaN      expected    isotropic  MissingCompletion    none
        ============  ==========  =========  ===================  ==========================

        ``solver="em"`` runs EM only; ``"profile"`` the quasi-Newton method
        only; ``"auto"`` EM, then the quasi-Newton method if EM crawls
        (:func:`_em_crawls`; a budget of 30 d / K further EM iterations on
        complete data, 10 K d with missing entries, where each quasi-Newton
        iteration costs an E-step too).

        Returns
        -------
        A, D, mean : ndarray
            ``mean`` without the problem's offset.
        history : list of float
            The mean (observed-data) log-likelihood per sample after each
            iteration, EM's and then the quasi-Newton method's.
        converged : bool
            Whether a stopping rule (not max_iter, not a crawl) ended the
            fit, or the user interrupted it (then nothing else runs).
        """
        S, mean, K = problem.S, problem.mean, problem.K
        d = S.shape[0]
        rng = check_random_state(self.random_state)
        floor = self.noise_floor * np.trace(S) / d
        if floor <= 0:
            raise ValueError(
                "X has no variance: every feature (column) is constant"
                + ("." if problem.data is None else " over its observed"
                   " entries (or has only one observed entry).")
            )
        A, D = self._start(S, K, rng, floor)
        quasi_newton = (self.noise == "diagonal" and self.solver != "em"
                        and self.completion == "expected")
        history, converged = [], self.completion == "sampled"
        if self.solver != "profile":
            state, batch, desc = self._em_state(problem, A, D, floor)
            done = aitken_converged(self.tol)
            budget = 30 * d / K if problem.data is None else 10 * K * d

            def stop(history):
                return done(history) or (
                    quasi_newton and self.solver == "auto"
                    and _em_crawls(history, self.tol, budget)
                )

            history, reason = completion.run(
                state, lambda: [batch], n_iter=self.max_iter, rng=rng,
                score=lambda: state.loglik,
                stop=None if self.completion == "sampled" else stop,
                progress=self.progress, desc=desc,
            )
            if reason == "diverged" or not np.all(np.isfinite(state.A)):
                raise ValueError(
                    "EM diverged (non-finite parameters); try a larger"
                    " noise_floor."
                )
            A, D = state.A, state.D
            if problem.data is not None:  # re-estimated with A and D
                mean = state.mean
            converged = converged or reason == "interrupted" or (
                reason == "stop" and done(history))
        budget = self.max_iter - len(history)
        if quasi_newton and not converged and budget > 0:
            n_before = len(history)
            if problem.data is None:
                solution = profile_likelihood.maximise_profile(
                    S, D, K, floor=floor, max_iter=budget, tol=self.tol,
                    on_iteration=history.append, progress=self.progress,
                )
            else:
                # no noise variance above the total variance of the observed
                # entries: only to keep the line search from overflowing exp
                ceiling = max(np.sum(np.nanvar(problem.data.X, axis=0)),
                              2.0 * floor)
                solution = missing_entries.maximise_observed_likelihood(
                    problem.data, A, D, mean, floor=floor, ceiling=ceiling,
                    max_iter=budget, tol=self.tol,
                    on_iteration=history.append, progress=self.progress,
                )
                mean = solution.mean
            A, D = orient_columns(solution.A), solution.D
            converged = solution.converged
            # already at the maximum (loglik is NaN if Ctrl-C came first)
            if len(history) == n_before and not np.isnan(solution.loglik):
                history.append(solution.loglik)
        return A, D, mean, history, converged

    def _em_state(self, problem, A, D, floor):
        """The model that :func:`lgm.completion.run` completes and
        re-estimates from (A, D), its one batch, and the progress bar's label.
        """
        if problem.data is not None:
            state = MissingCompletion(A, D, problem.mean, noise=self.noise,
                                      floor=floor)
            return state, problem.data, "EM (missing entries)"
        desc = f"EM ({self.completion} completion)"
        if self.completion == "expected":
            state = ExpectedCompletion(A, D, noise=self.noise, floor=floor,
                                       S=problem.S)
            return state, problem.S, desc
        state = SampledCompletion(A, D, n_samples=self.n_samples,
                                  noise=self.noise, floor=floor, S=problem.S)
        return state, problem.X, desc

    def _missing_data(self, X, *, reset=False, always=False):
        """X grouped by missingness pattern if it is a 2-D array with NaN.

        Returns None if X has no NaN (the caller treats it as complete data);
        NaN are an error unless ``missing="em"`` (or ``always``).
        """
        if not reset:
            check_fitted(self, "A_")
        check_option(self.missing, "missing", ("error", "em"))
        arr = as_real_array(X, "X")
        if arr.ndim != 2 or not np.isnan(arr).any():
            return None
        if not (always or self.missing == "em"):
            row, column = np.argwhere(np.isnan(arr))[0]
            raise ValueError(
                f"X contains NaN (first at row {row}, column {column}), and"
                " this LGM has missing='error'. Pass missing='em' to fit NaN"
                " as entries missing at random, or remove or impute them."
            )
        return MissingData(
            arr, n_features=None if reset else self.n_features_in_
        )

    def score_samples(self, X):
        """Log-likelihood of each row of X in nats (eq-lgm-loglik).

        With ``missing="em"``, rows with NaN get the log-likelihood of their
        observed entries (eq-missing-loglik).

        Parameters
        ----------
        X : array_like, shape (N, d)

        Returns
        -------
        ndarray, shape (N,)
        """
        data = self._missing_data(X)
        if data is None:
            return super().score_samples(X)
        return observed_log_likelihood(data, self.A_, self.D_, self.mean_)

    def posterior(self, X):
        """Posterior of z for each row of X (eq-lgm-posterior).

        With ``missing="em"`` and NaN in X, the posterior given the observed
        entries of each row (eq-missing-posterior).

        Parameters
        ----------
        X : array_like, shape (N, d)

        Returns
        -------
        means : ndarray, shape (N, K)
        cov : ndarray, shape (K, K), the same for every row; or (N, K, K)
            when X has NaN (it depends on which entries a row has).
        """
        data = self._missing_data(X)
        if data is None:
            return super().posterior(X)
        return observed_posterior(data, self.A_, self.D_, self.mean_)

    def impute(self, X):
        """X with each missing (NaN) entry replaced by its posterior mean.

        Implements eq-missing-impute, E[x_u | x_o] = mean_u + A_u E[z | x_o],
        whatever ``missing`` is (it says how ``fit`` treats NaN). Observed
        entries are returned as they are.

        Parameters
        ----------
        X : array_like, shape (N, d)
            NaN where an entry is missing; every row needs an observed entry.

        Returns
        -------
        ndarray, shape (N, d)
            A new array without NaN.
        """
        data = self._missing_data(X, always=True)
        if data is None:
            return self._validate_X(X, reset=False).copy()
        return impute(data, self.A_, self.D_, self.mean_)

    def _noise(self):
        return self.D_


def _em_crawls(history, tol, budget):
    """Whether EM is predicted to need more than ``budget`` more iterations.

    The gains shrink by about r = (g_k / g_{k-3})^{1/3} per iteration, so
    :func:`lgm.completion.remaining_gain` falls below tol after about
    log(tol (1 - r) / (g_k r)) / log r more; r >= 1 is a crawl.
    """
    if len(history) < 10:
        return False
    gains = np.diff(history[-5:])
    if np.any(gains <= 0):
        return False
    r = (gains[-1] / gains[0]) ** (1.0 / 3.0)
    if tol <= 0:  # asked for EM until no gain at all: never hand over
        return False
    if r >= 1.0:
        return True
    if remaining_gain(history) <= tol or r < 1e-3:
        return False
    left = np.log(tol * (1.0 - r) / (gains[-1] * r)) / np.log(r)
    return left > budget


def _warn_not_converged(max_iter, history, tol):
    """Warn (ConvergenceWarning) that max_iter, not tol, stopped the fit."""
    # scikit-learn's class, so one filter silences both; imported here
    # because it is slow.
    from sklearn.exceptions import ConvergenceWarning

    left = remaining_gain(history)
    how_much = (
        "its gains are not yet shrinking" if np.isinf(left) else
        f"it may still rise by about {left:.2e} nats per sample > tol={tol}"
    )
    warnings.warn(
        f"The fit did not converge in max_iter={max_iter} iterations (the"
        f" mean log-likelihood: {how_much}); raise max_iter or tol.",
        ConvergenceWarning,
        stacklevel=3,
    )
