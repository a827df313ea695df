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

import numpy as np
from scipy import linalg

from lgm._checks import (
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
    run,
)
from lgm.estimator import LinearGaussianEstimator
from lgm.linear_gaussian import (
    check_params,
    m_step,
    mean_log_likelihood,
    posterior_map,
)
from lgm.missing import (
    MissingData,
    expected_moments,
    impute,
    m_step_with_mean,
    maximise_observed_likelihood,
    observed_log_likelihood,
    observed_posterior,
)
from lgm.pca import orient_columns
from lgm.ppca import ppca_ml
from lgm.profile_likelihood import maximise_profile
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
    # (lgm._checks.check_variance_scale) with a message naming the data
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
    """

    def __init__(self, A, D, *, noise="diagonal", floor=0.0):
        self.A, self.D = A, D
        self.noise, self.floor = noise, floor

    def _constrain(self, D):
        """The M-step's D, averaged if isotropic, then floored."""
        if self.noise == "isotropic":
            # the M-step for sigma^2 is the mean of the psi_i
            D = np.full_like(D, D.mean())
        return np.maximum(D, self.floor)

    def _update(self, A, D):
        """Store A and the M-step's D (constrained)."""
        self.A, self.D = A, self._constrain(D)


class ExpectedCompletion(_EMState):
    """EM with expected completion: z is filled in by its posterior's moments.

    The batch is the sample covariance S = (1/N) sum_n x_n x_n^T of the
    (centred) data.
    """

    def complete(self, S, rng):
        """The posterior under the current (old) parameters.

        E[z | x] = beta x and Cov[z | x] = Sigma.

        Implements eq-em-estep (the per-sample moments are m_n = beta x_n and
        E[z z^T | x_n] = Sigma + m_n m_n^T). ``rng`` is unused: nothing is
        drawn.
        """
        return posterior_map(self.A, self.D)

    def reestimate(self, S, completion):
        """Closed-form M-step from the expected sufficient statistics.

        Implements eq-em-mstep: with (1/N) sum_n x_n m_n^T = S beta^T and
        (1/N) sum_n E[z z^T | x_n] = Sigma + beta S beta^T,
        A^{k+1} = S beta^T (Sigma + beta S beta^T)^{-1} and
        D^{k+1} = diag(S - A^{k+1} beta S).
        """
        beta, Sigma = completion
        Sxz = S @ beta.T  # (1/N) sum_n x_n m_n^T, shape (d, K)
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

    def __init__(self, A, D, *, n_samples=1, noise="diagonal", floor=0.0):
        super().__init__(A, D, noise=noise, floor=floor)
        self.n_samples = n_samples

    def complete(self, X, rng):
        """Draw z_nj ~ p(z | x_n) under the current (old) parameters, j = 1..J.

        Returns
        -------
        Z : ndarray, shape (J, N, K)
        """
        beta, Sigma = posterior_map(self.A, self.D)
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

    The E-step at new parameters also gives their observed-data
    log-likelihood, which the loop records after each iteration: so
    ``reestimate`` ends by computing it (in ``loglik``) and keeps it for the
    next ``complete``, rather than computing the posteriors twice.

    Parameters
    ----------
    mean : ndarray, shape (d,)
        The starting mean.

    Attributes
    ----------
    loglik : float
        Mean observed-data log-likelihood per row at the current parameters
        (eq-missing-loglik), after a ``reestimate``.
    """

    def __init__(self, A, D, mean, *, noise="diagonal", floor=0.0):
        super().__init__(A, D, noise=noise, floor=floor)
        self.mean = mean
        self._next = None  # expected_moments at the current parameters

    def complete(self, data, rng):
        """Expected moments of (z, x) given the observed entries (old parameters).

        Implements eq-missing-estep through
        :func:`lgm.missing.expected_moments`. ``rng`` is unused.
        """
        if self._next is None:
            self._next = expected_moments(data, self.A, self.D, self.mean)
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
        self._next = expected_moments(data, A, D, mean)
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


class LGM(LinearGaussianEstimator):
    """Linear Gaussian model (factor analysis) x = mean + A z + e, fit by EM.

    z ~ N(0, I_K), e ~ N(0, diag(D)) independent of z (eq-lgm-marginal). Fitted
    through the one loop :func:`lgm.completion.run`. Scoring, posterior,
    transform and sampling are inherited from
    :class:`lgm.estimator.LinearGaussianEstimator`.

    Parameters
    ----------
    n_components : int
        K, the latent dimension, between 1 and d.
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

    def __init__(self, n_components, *, noise="diagonal",
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
        check_random_state(self.random_state)
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
        if is_dask_array(X):
            mean, S = self._dask_statistics(X)
        elif (data := self._missing_data(X, reset=True)) is not None:
            A, D, mean, history, converged = self._fit_missing(data)
            if not converged:
                _warn_not_converged(self.max_iter, history, self.tol)
            return self._store(A, D, mean, history)
        else:
            X = self._validate_X(X, reset=True, min_samples=2)
            self._check_params(X.shape[1])
            mean = X.mean(axis=0)
            S = sample_covariance(X, mean)
        check_variance_scale(np.max(np.diag(S)), X)
        d = S.shape[0]
        K = self._check_params(d)
        rng = check_random_state(self.random_state)
        floor = self.noise_floor * np.trace(S) / d
        if floor <= 0:
            raise ValueError(
                "X has no variance: every feature (column) is constant."
            )
        A, D = self._start(S, K, rng, floor)
        history, converged = [], False
        if self.solver != "profile":
            A, D, history, converged = self._em(X, mean, S, A, D, rng, floor)
        if (self.noise == "diagonal" and self.completion == "expected"
                and self.solver != "em" and not converged):
            n_before, budget = len(history), self.max_iter - len(history)
            if budget > 0:
                A, D, last, interrupted = maximise_profile(
                    S, D, K, floor=floor, max_iter=budget, tol=self.tol,
                    on_iteration=history.append, progress=self.progress,
                )
                A = orient_columns(A)
                converged = interrupted or len(history) - n_before < budget
                if len(history) == n_before:  # already at the maximum
                    history.append(last)
        if not converged and self.completion == "expected":
            _warn_not_converged(self.max_iter, history, self.tol)
        return self._store(A, D, mean, history)

    def _store(self, A, D, mean, history):
        """Store the fit (every fitted attribute at the end); return self."""
        self.A_, self.D_, self.mean_ = A, D, mean
        self.n_features_in_ = A.shape[0]
        self.loglik_, self.n_iter_ = np.asarray(history), len(history)
        return self

    def _dask_statistics(self, X):
        """The mean and S of a dask array, in one pass, or a clear refusal."""
        self._check_params(check_dask_array(X)[1])
        if self.completion == "sampled":
            raise ValueError(
                "completion='sampled' draws completions of every row in every"
                " iteration, so it does not take a dask array; use"
                " completion='expected' (it needs only the mean and the sample"
                " covariance, which dask computes in one pass), or X.compute()."
            )
        if self.missing == "em":
            raise ValueError(
                "missing='em' needs every row in every iteration, so it does"
                " not take a dask array; pass a numpy array (X.compute()), or"
                " missing='error' for data without NaN."
            )
        _, mean, S = dask_statistics(X)
        return mean, S

    def _fit_missing(self, data):
        """EM with missing entries, then quasi-Newton if ``solver`` asks.

        EM is eq-missing-estep and eq-missing-mstep; the quasi-Newton method
        is L-BFGS-B on the observed-data log-likelihood with its gradient by
        Fisher's identity (:func:`lgm.missing.maximise_observed_likelihood`,
        eq-fisher-identity).

        Returns
        -------
        A, D, mean : ndarray
        history : list of float
            The mean observed-data log-likelihood per row after each
            iteration.
        converged : bool
            Whether the stopping rule (not max_iter) ended it, or the user
            interrupted EM.
        """
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
        rng = check_random_state(self.random_state)
        # EM's moments and the gradient's residuals are sums of squares and
        # products of x (eq-missing-estep), which cancel catastrophically
        # about a mean far from 0: the fit runs on the data minus the mean of
        # each column's observed entries, and adds it back at the end
        offset = np.nanmean(data.X, axis=0)
        data = MissingData(data.X - offset)
        # start: mean 0, and S of the data with every missing entry set to 0
        mean = np.zeros(d)
        X0 = np.where(data.observed, data.X, 0.0)
        S0 = sample_covariance(X0, mean)
        check_variance_scale(np.max(np.diag(S0)), X0)
        floor = self.noise_floor * np.trace(S0) / d
        if floor <= 0:
            raise ValueError(
                "X has no variance: every feature (column) is constant over"
                " its observed entries (or has only one observed entry)."
            )
        A, D = self._start(S0, K, rng, floor)
        quasi_newton = self.noise == "diagonal" and self.solver != "em"
        history, converged = [], False
        if self.solver != "profile":
            done = aitken_converged(self.tol)

            def stop(history):
                # an EM iteration and a quasi-Newton one cost an E-step
                # each; the quasi-Newton needed 100-600 iterations on
                # scikit-learn's diabetes and breast-cancer data with 20%
                # missing, handing over at a predicted 10 K d the fewest
                return done(history) or (
                    quasi_newton and self.solver == "auto"
                    and _em_crawls(history, self.tol, 10 * K * d)
                )

            state = MissingCompletion(A, D, mean, noise=self.noise,
                                      floor=floor)
            history, stopped = run(
                state, lambda: [data], n_iter=self.max_iter, rng=rng,
                stop=stop, score=lambda: state.loglik,
                progress=self.progress, desc="EM (missing entries)",
            )
            A, D, mean = state.A, state.D, state.mean
            if not (np.all(np.isfinite(A)) and np.all(np.isfinite(history))):
                raise ValueError(
                    "EM diverged (non-finite parameters); try a larger"
                    " noise_floor."
                )
            interrupted = not stopped and len(history) < self.max_iter
            converged = interrupted or (stopped and done(history))
        budget = self.max_iter - len(history)
        if quasi_newton and not converged and budget > 0:
            n_before = len(history)
            # no noise variance above the total variance of the observed
            # entries: only to keep the line search from overflowing exp
            ceiling = max(np.sum(np.nanvar(data.X, axis=0)), 2.0 * floor)
            A, D, mean, last, converged = maximise_observed_likelihood(
                data, A, D, mean, floor=floor, ceiling=ceiling,
                max_iter=budget, tol=self.tol, on_iteration=history.append,
                progress=self.progress,
            )
            A = orient_columns(A)
            # already at the maximum (last is NaN if Ctrl-C came first)
            if len(history) == n_before and not np.isnan(last):
                history.append(last)
        return A, D, mean + offset, history, converged

    def _em(self, X, mean, S, A, D, rng, floor):
        """EM through the one loop from (A, D).

        Returns
        -------
        A, D : ndarray
        history : list of float
            The mean log-likelihood per sample after each iteration.
        converged : bool
            Whether the stopping rule (not max_iter, not a crawl) ended it,
            or the user interrupted it (then nothing else runs).
        """
        crawls = (
            self.solver == "auto" and self.noise == "diagonal"
            and self.completion == "expected"
        )
        d, K = A.shape
        if self.completion == "expected":
            state = ExpectedCompletion(A, D, noise=self.noise, floor=floor)
            batch, done = S, aitken_converged(self.tol)

            def stop(history):
                return done(history) or (
                    crawls and _em_crawls(history, self.tol, 30 * d / K)
                )
        else:
            state = SampledCompletion(
                A, D, n_samples=self.n_samples, noise=self.noise, floor=floor
            )
            batch, done, stop = X - mean, None, None
        scored = [A, D]  # the parameters of the last score computed

        def score():
            # a Ctrl-C inside it leaves A, D re-estimated but not scored:
            # the fit keeps those last scored, matching loglik_[-1]
            value = mean_log_likelihood(S, state.A, state.D)
            scored[:] = state.A, state.D
            return value

        history, stopped = run(
            state, lambda: [batch], n_iter=self.max_iter, rng=rng, stop=stop,
            score=score, progress=self.progress,
            desc=f"EM ({self.completion} completion)",
        )
        A, D = scored
        if not (np.all(np.isfinite(A)) and np.all(np.isfinite(history))):
            raise ValueError(
                "EM diverged (non-finite parameters); try a larger"
                " noise_floor."
            )
        interrupted = not stopped and len(history) < self.max_iter
        converged = done is None or interrupted or (stopped and done(history))
        return A, D, history, converged

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
