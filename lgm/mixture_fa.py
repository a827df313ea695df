"""Mixtures of factor analysers and of probabilistic PCA (chapter 7b).

A label j ~ Categorical(pi) picks one of J linear Gaussian models, then
z ~ N(0, I_K) and x = mu_j + A_j z + e with e ~ N(0, diag(D_j))
(eq-mfa-model; Ghahramani & Hinton 1996). With D_j = sigma_j^2 1 it is the
mixture of probabilistic PCA of Tipping & Bishop (1999). The model has both a
discrete latent (j) and a continuous one (z): locally linear pieces of a
curved data set.

EM completes both latents with their exact posterior: the responsibilities
r_nj = p(j | x_n) (eq-mfa-responsibilities) and, under each component, the
Gaussian posterior of z (eq-mfa-posterior); the M-step is the linear Gaussian
model's M-step on responsibility-weighted, centred moments
(eq-mfa-mstep). Each component's density is handled by
:mod:`lgm.linear_gaussian` (Woodbury identity and determinant lemma, no d x d
inverse), and the mixture by ``logsumexp``.

Shapes: X (N, d); weights (J,); means (J, d); A (J, d, K); D (J, d);
responsibilities R (N, J); posterior means (N, J, K), covariances (J, K, K).
:class:`MixtureFA` is the scikit-learn estimator, fitted through the one loop
:func:`lgm.completion.run`.
"""
import warnings

import numpy as np
from scipy.special import logsumexp
from sklearn.base import BaseEstimator, DensityMixin, TransformerMixin

from lgm.checks import (
    as_real_array,
    check_array_size,
    check_data,
    check_fitted,
    check_option,
    check_positive,
    check_positive_int,
    check_random_state,
    check_variance_scale,
)
from lgm.completion import aitken_converged, remaining_gain, run
from lgm.linear_gaussian import (
    check_log_densities,
    m_step,
    posterior_log_likelihood,
)
from lgm.ppca import ppca_ml


def check_components(means, A, D, n_features=None):
    """Return the components' parameters as float arrays, or raise a clear error.

    Parameters
    ----------
    means : array_like, shape (J, d)
    A : array_like, shape (J, d, K)
    D : array_like, shape (J, d), positive
    n_features : int, optional
        The d that is required (the width of the data).

    Returns
    -------
    means, A, D : ndarray
    """
    means = as_real_array(means, "means")
    A = as_real_array(A, "A")
    D = as_real_array(D, "D")
    if means.ndim != 2 or means.shape[0] == 0:
        raise ValueError(f"means must have shape (J, d); got {means.shape}.")
    J, d = means.shape
    if A.ndim != 3 or A.shape[:2] != (J, d) or not 1 <= A.shape[2] <= d:
        raise ValueError(
            f"A must have shape (J, d, K) = ({J}, {d}, K) with 1 <= K <= d;"
            f" got {A.shape}."
        )
    if D.shape != (J, d):
        raise ValueError(f"D must have shape ({J}, {d}); got {D.shape}.")
    if n_features is not None and d != n_features:
        raise ValueError(
            f"The parameters have d={d} features but the data have"
            f" {n_features}."
        )
    if not all(np.all(np.isfinite(v)) for v in (means, A, D)):
        raise ValueError("means, A and D must be finite.")
    if np.any(D <= 0):
        raise ValueError("D must hold strictly positive noise variances.")
    return means, A, D


def check_mixture_params(weights, means, A, D, n_features=None):
    """:func:`check_components`, and weights (J,) non-negative summing to 1.

    Returns
    -------
    weights, means, A, D : ndarray
    """
    means, A, D = check_components(means, A, D, n_features)
    weights = as_real_array(weights, "weights")
    if weights.shape != (len(means),):
        raise ValueError(
            f"weights must have shape ({len(means)},), one per component;"
            f" got {weights.shape}."
        )
    if (not np.all(np.isfinite(weights)) or np.any(weights < 0)
            or abs(weights.sum() - 1.0) > 1e-8):
        raise ValueError(
            "weights must be finite, non-negative and sum to 1; got sum"
            f" {weights.sum():.10g}."
        )
    return weights, means, A, D


def mfa_log_joint(X, weights, means, A, D):
    """log p(x_n, j) = log pi_j + log N(x_n; mu_j, A_j A_j^T + diag(D_j)).

    Checks X and the parameters, then calls :func:`mfa_complete`; refuses
    X so large in scale that a density overflows.

    Parameters
    ----------
    X : array_like, shape (N, d)
    weights : array_like, shape (J,)
    means : array_like, shape (J, d)
    A : array_like, shape (J, d, K)
    D : array_like, shape (J, d)

    Returns
    -------
    ndarray, shape (N, J)
    """
    X = check_data(X)
    weights, means, A, D = check_mixture_params(
        weights, means, A, D, n_features=X.shape[1]
    )
    log_joint = mfa_complete(X, weights, means, A, D)[0]
    # a weight of 0 gives -inf; any other non-finite value is an overflow
    check_log_densities(log_joint[:, weights > 0])
    return log_joint


def mfa_complete(X, weights, means, A, D):
    """The E-step of the mixture: log p(x_n, j) and the posterior of z given j.

    Implements the terms of eq-mfa-loglik,
    log p(x_n, j) = log pi_j + log N(x_n; mu_j, A_j A_j^T + diag(D_j)), and
    eq-mfa-posterior, p(z | x, j) = N(z; beta_j (x - mu_j), Sigma_j) with
    Sigma_j = (I + A_j^T D_j^{-1} A_j)^{-1} and
    beta_j = Sigma_j A_j^T D_j^{-1}. Each component is one call of
    :func:`lgm.linear_gaussian.posterior_log_likelihood` (eq-lgm-loglik and
    eq-lgm-posterior from one Cholesky factor of the K x K posterior
    precision), O(N d K + d K^2) per component.

    The arguments are not checked (the kernel of EM's iterations;
    :func:`mfa_log_joint` and :func:`mfa_posterior` check them).

    Parameters
    ----------
    X : ndarray, shape (N, d)
    weights : ndarray, shape (J,)
    means : ndarray, shape (J, d)
    A : ndarray, shape (J, d, K)
    D : ndarray, shape (J, d)

    Returns
    -------
    log_joint : ndarray, shape (N, J)
        log p(x_n, j).
    Z : ndarray, shape (N, J, K)
        Z[n, j] = E[z | x_n, j].
    Sigma : ndarray, shape (J, K, K)
        Cov[z | x_n, j], the same for every n.
    """
    Z, Sigma, loglik = zip(*(posterior_log_likelihood(X - means[j], A[j], D[j])
                             for j in range(len(weights))))
    with np.errstate(divide="ignore"):  # a weight of 0 gives -inf
        log_pi = np.log(weights)
    return (log_pi + np.column_stack(loglik), np.stack(Z, axis=1),
            np.stack(Sigma))


def mfa_log_likelihood(X, weights, means, A, D):
    """Log-density of every row of X under the mixture, by logsumexp.

    Implements eq-mfa-loglik,
    log p(x) = log sum_j pi_j N(x; mu_j, A_j A_j^T + diag(D_j)).

    Parameters
    ----------
    X : array_like, shape (N, d)
    weights, means, A, D : array_like
        See :func:`mfa_log_joint`.

    Returns
    -------
    ndarray, shape (N,)
        Nats.
    """
    return logsumexp(mfa_log_joint(X, weights, means, A, D), axis=1)


def mfa_responsibilities(X, weights, means, A, D):
    """The posterior over the component, r_nj = p(j | x_n).

    Implements eq-mfa-responsibilities (Bayes' rule, normalised in log space).

    Returns
    -------
    ndarray, shape (N, J)
        Each row sums to 1.
    """
    log_joint = mfa_log_joint(X, weights, means, A, D)
    return np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))


def mfa_posterior(X, means, A, D):
    """The posterior of z given x and each component j (eq-mfa-posterior).

    Checks X and the parameters, then calls :func:`mfa_complete` (the
    weights do not enter the posterior of z).

    Parameters
    ----------
    X : array_like, shape (N, d)
    means : array_like, shape (J, d)
    A : array_like, shape (J, d, K)
    D : array_like, shape (J, d)

    Returns
    -------
    Z : ndarray, shape (N, J, K)
        Z[n, j] = E[z | x_n, j].
    Sigma : ndarray, shape (J, K, K)
        Cov[z | x_n, j], the same for every n.
    """
    X = check_data(X)
    means, A, D = check_components(means, A, D, n_features=X.shape[1])
    J = len(means)
    return mfa_complete(X, np.full(J, 1.0 / J), means, A, D)[1:]


def mfa_m_step(X, R, Z, Sigma):
    """Re-estimate (weights, means, A, D) from the completed data.

    Implements eq-mfa-mstep: checks X and that every component has some
    weight, then calls :func:`mfa_reestimate`.

    Parameters
    ----------
    X : array_like, shape (N, d)
    R : array_like, shape (N, J)
        Responsibilities (rows sum to 1).
    Z : ndarray, shape (N, J, K)
        E[z | x_n, j] under the old parameters.
    Sigma : ndarray, shape (J, K, K)
        Cov[z | x_n, j] under the old parameters.

    Returns
    -------
    weights, means, A, D : ndarray
        See :func:`mfa_reestimate`.

    Raises
    ------
    ValueError
        If a component has no weight (its parameters are undefined).
    """
    X = check_data(X)
    R = np.asarray(R, dtype=float)
    Nj = R.sum(axis=0)
    if np.any(Nj <= 0):
        raise ValueError(
            f"components {np.flatnonzero(Nj <= 0).tolist()} have no weight"
            " (sum of responsibilities 0); their parameters are undefined."
        )
    return mfa_reestimate(X, R, Z, Sigma)


def mfa_reestimate(X, R, Z, Sigma):
    """Re-estimate (weights, means, A, D) from the completed data.

    Implements eq-mfa-mstep. With N_j = sum_n r_nj, the weighted means
    xbar_j = sum_n r_nj x_n / N_j and zbar_j = sum_n r_nj z_nj / N_j, and the
    weighted, centred moments
    C_xz = sum_n r_nj (x_n - xbar_j)(z_nj - zbar_j)^T / N_j,
    C_zz = Sigma_j + sum_n r_nj (z_nj - zbar_j)(z_nj - zbar_j)^T / N_j and
    c_xx = sum_n r_nj (x_n - xbar_j)^2 / N_j:
    pi_j = N_j / N, A_j = C_xz C_zz^{-1} and D_j = c_xx - diag(A_j C_xz^T)
    (the LGM's M-step, :func:`lgm.linear_gaussian.m_step`), and
    mu_j = xbar_j - A_j zbar_j. This is the joint update of (A_j, mu_j) of
    Ghahramani & Hinton (1996), written about the weighted mean so that no
    large mean cancels in the variances.

    The arguments are not checked (the kernel of EM's iterations;
    :func:`mfa_m_step` checks them): every component has N_j > 0.

    Parameters
    ----------
    X : ndarray, shape (N, d)
    R : ndarray, shape (N, J)
        Responsibilities (rows sum to 1).
    Z : ndarray, shape (N, J, K)
        E[z | x_n, j] under the old parameters.
    Sigma : ndarray, shape (J, K, K)
        Cov[z | x_n, j] under the old parameters.

    Returns
    -------
    weights : ndarray, shape (J,)
    means : ndarray, shape (J, d)
    A : ndarray, shape (J, d, K)
    D : ndarray, shape (J, d)
        Not floored: may be 0 (or, by rounding, slightly negative) where a
        component fits a coordinate exactly.
    """
    N, J = R.shape
    Nj = R.sum(axis=0)
    out = [_component_m_step(X, R[:, j] / Nj[j], Z[:, j], Sigma[j])
           for j in range(J)]
    means, A, D = (np.stack(v) for v in zip(*out))
    return Nj / N, means, A, D


def _component_m_step(X, w, Z, Sigma):
    """(mean, A, D) of one component from weights w (summing to 1)."""
    xbar, zbar = w @ X, w @ Z
    Xc, Zc = X - xbar, Z - zbar
    wZ = w[:, None] * Zc
    Cxz = Xc.T @ wZ
    Czz = Sigma + Zc.T @ wZ
    A, D = m_step(w @ Xc**2, Cxz, Czz)
    return xbar - A @ zbar, A, D


def mfa_em_step(X, weights, means, A, D):
    """One EM iteration of the mixture (no noise floor, no constraint on D).

    Implements eq-mfa-responsibilities and eq-mfa-posterior (E-step), then
    eq-mfa-mstep. The log-likelihood (eq-mfa-loglik) at the output is never
    below that at the input.

    Returns
    -------
    weights, means, A, D : ndarray
        The new parameters (shapes as the input's).
    """
    R = mfa_responsibilities(X, weights, means, A, D)
    Z, Sigma = mfa_posterior(X, means, A, D)
    return mfa_m_step(X, R, Z, Sigma)


def mfa_sample(n_samples, weights, means, A, D, rng):
    """Draw samples and their component labels from the mixture (eq-mfa-model).

    Parameters
    ----------
    n_samples : int
    weights, means, A, D : ndarray
        See :func:`mfa_log_joint`.
    rng : numpy.random.Generator

    Returns
    -------
    X : ndarray, shape (n_samples, d)
    labels : ndarray of int, shape (n_samples,)
    """
    J, d, K = A.shape
    labels = rng.choice(J, size=n_samples, p=weights)
    Z = rng.standard_normal((n_samples, K))
    E = rng.standard_normal((n_samples, d)) * np.sqrt(D[labels])
    X = means[labels] + np.einsum("ndk,nk->nd", A[labels], Z) + E
    return X, labels


class _MixtureEM:
    """The fitting state of EM for the mixture, a model of the one loop.

    ``complete`` fills in both latents (responsibilities and the posterior of
    z under each component); ``reestimate`` runs the M-step, constrains D
    (isotropic, floor), and runs the E-step at the new parameters
    (:func:`mfa_complete`, unchecked), which gives both the score the loop
    records and the next completion.
    A component whose effective number of samples N_j falls below K + 1
    cannot determine its plane: it keeps its old (mean, A, D), its weight
    still follows N_j, and its index is kept in ``collapsed`` (EM stays
    monotone: the other components still maximise).
    """

    def __init__(self, X, weights, means, A, D, *, noise, floor):
        self.noise, self.floor = noise, floor
        self.collapsed = set()
        self._store(X, weights, means, A, D)

    def _store(self, X, weights, means, A, D):
        """Store the parameters with their E-step (:func:`mfa_complete`).

        They are stored only once it is done, so an interruption (Ctrl-C)
        inside it leaves the old ones, whose log-likelihood the loop
        recorded last.
        """
        log_joint, Z, Sigma = mfa_complete(X, weights, means, A, D)
        self.weights, self.means, self.A, self.D = weights, means, A, D
        self.log_joint, self._posterior = log_joint, (Z, Sigma)
        self.loglik = float(np.mean(logsumexp(log_joint, axis=1)))

    def complete(self, X, rng):
        """Responsibilities (N, J), E[z | x, j] (N, J, K), Cov (J, K, K).

        Implements eq-mfa-responsibilities and eq-mfa-posterior under the
        current (old) parameters, from the E-step that scored them;
        ``rng`` is unused.
        """
        R = np.exp(self.log_joint
                   - logsumexp(self.log_joint, axis=1, keepdims=True))
        return (R,) + self._posterior

    def reestimate(self, X, completion):
        """The M-step (eq-mfa-mstep), then the E-step at the new parameters.

        The new parameters are stored only with their E-step, so an
        interruption (Ctrl-C) inside it leaves the old ones, whose
        log-likelihood the loop recorded last.
        """
        R, Z, Sigma = completion
        K = self.A.shape[2]
        Nj = R.sum(axis=0)
        live = Nj >= K + 1
        weights, means, A, D = (v.copy() for v in
                                (Nj / len(X), self.means, self.A, self.D))
        if live.any():
            _, means[live], A[live], D_live = mfa_reestimate(
                X, R[:, live], Z[:, live], Sigma[live]
            )
            if self.noise == "isotropic":
                D_live = np.repeat(D_live.mean(axis=1, keepdims=True),
                                   D.shape[1], axis=1)
            D[live] = np.maximum(D_live, self.floor)
        self._store(X, weights, means, A, D)
        self.collapsed |= set(np.flatnonzero(~live).tolist())


class MixtureFA(TransformerMixin, DensityMixin, BaseEstimator):
    """Mixture of factor analysers (or of probabilistic PCA), fitted by EM.

    p(x) = sum_j pi_j N(x; mu_j, A_j A_j^T + diag(D_j)) (eq-mfa-model,
    eq-mfa-loglik): J local linear Gaussian models, each with K factors.
    EM runs through the one loop :func:`lgm.completion.run`: complete each x
    with its responsibilities and, per component, the posterior of z; then
    re-estimate (eq-mfa-mstep).

    Parameters
    ----------
    n_mixtures : int
        J, the number of components.
    n_components : int
        K, the factors per component, between 1 and d - 1.
    noise : {"diagonal", "isotropic"}
        ``"diagonal"``: D_j is a vector of d variances per component (a
        mixture of factor analysers). ``"isotropic"``: D_j = sigma_j^2 1 (a
        mixture of probabilistic PCA; with K = d - 1 it can represent any
        full covariance, so it is a full-covariance Gaussian mixture).
    max_iter : int
        The most EM iterations.
    tol : float
        EM stops when Aitken's extrapolation
        (:func:`lgm.completion.remaining_gain`) leaves at most ``tol`` nats
        per sample to gain. A :class:`sklearn.exceptions.ConvergenceWarning`
        says when ``max_iter`` stopped it instead.
    noise_floor : float
        Every noise variance is kept at least ``noise_floor`` times the mean
        feature variance of X: a component that shrinks onto a few points
        would otherwise give the likelihood an infinite spike.
    random_state : None, int or numpy.random.Generator
        Seeds the k-means start.
    progress : bool
        Show a progress bar.

    The start: k-means (scikit-learn's ``KMeans``, k-means++, 3 restarts)
    assigns each row to a cluster; each component starts at its cluster's
    proportion, mean, and closed-form probabilistic PCA
    (:func:`lgm.ppca.ppca_ml`) of the cluster's covariance. With J = 1 this
    is exactly the start of :class:`lgm.LGM`, and the fit is the LGM's.

    A component whose effective number of samples falls below K + 1 while
    EM runs cannot determine its plane: it keeps its parameters from then on
    and ``fit`` warns (a ``UserWarning`` naming it); try fewer
    ``n_mixtures`` or fewer ``n_components``.

    Attributes
    ----------
    weights_ : ndarray, shape (J,)
    means_ : ndarray, shape (J, d)
    A_ : ndarray, shape (J, d, K)
        The loading matrices (each determined up to A_j -> A_j R_j).
    D_ : ndarray, shape (J, d)
        The noise variances of each component.
    loglik_ : ndarray, shape (n_iter_,)
        Mean log-likelihood per sample (nats) on the training data after
        each iteration; it never decreases.
    n_iter_ : int
    n_features_in_ : int

    Examples
    --------
    >>> from lgm import MixtureFA, make_manifold_data
    >>> X, _ = make_manifold_data(1000, kind="saddle", random_state=0)
    >>> model = MixtureFA(n_mixtures=4, n_components=2, random_state=0).fit(X)
    >>> labels = model.predict(X)   # the most probable component
    """

    def __init__(self, n_mixtures=2, n_components=1, *, noise="diagonal",
                 max_iter=1000, tol=1e-6, noise_floor=1e-4,
                 random_state=None, progress=False):
        self.n_mixtures = n_mixtures
        self.n_components = n_components
        self.noise = noise
        self.max_iter = max_iter
        self.tol = tol
        self.noise_floor = noise_floor
        self.random_state = random_state
        self.progress = progress

    def _check_params(self, N, d):
        """Validate the constructor's arguments against the data (N, d)."""
        J = check_positive_int(self.n_mixtures, "n_mixtures")
        K = self.n_components
        if isinstance(K, bool) or not isinstance(K, (int, np.integer)) or \
                not 1 <= K <= d - 1:
            raise ValueError(
                "n_components must be an integer between 1 and d - 1 ="
                f" {d - 1} (the data have d={d} features, and each"
                f" component needs some variance left for its noise); got"
                f" {K!r}."
            )
        K = int(K)
        check_option(self.noise, "noise", ("diagonal", "isotropic"))
        check_positive_int(self.max_iter, "max_iter")
        check_positive(self.tol, "tol", allow_zero=True)
        check_positive(self.noise_floor, "noise_floor")
        check_random_state(self.random_state)
        if not isinstance(self.progress, (bool, np.bool_)):
            raise TypeError(
                f"progress must be True or False; got {self.progress!r}."
            )
        if N < J * (K + 1):
            raise ValueError(
                f"X has {N} samples, too few for n_mixtures={J} components"
                f" of n_components={K} factors: each component needs at least"
                f" K + 1 = {K + 1}, so N >= {J * (K + 1)}."
            )
        return J, K

    def _start(self, X, J, K, rng, floor):
        """Weights, means, A, D from k-means and PPCA per cluster."""
        from sklearn.cluster import KMeans

        N, d = X.shape
        if J == 1:
            labels = np.zeros(N, dtype=int)
        else:
            labels = KMeans(J, n_init=3, random_state=int(
                rng.integers(2**31 - 1))).fit(X).labels_
        weights, means = np.zeros(J), np.zeros((J, d))
        A, D = np.zeros((J, d, K)), np.zeros((J, d))
        for j in range(J):
            Xj = X[labels == j]
            weights[j] = len(Xj) / N
            means[j] = Xj.mean(axis=0)
            Xc = Xj - means[j]
            S = Xc.T @ Xc / len(Xj)
            try:
                A[j], sigma2 = ppca_ml(0.5 * (S + S.T), K)
            except ValueError:  # too few points to leave any noise
                A[j], sigma2 = ppca_ml(S + floor * np.eye(d), K)
            D[j] = max(sigma2, floor)
        return weights, means, A, D

    def fit(self, X, y=None):
        """Fit the mixture to the rows of X by EM. Returns self.

        Parameters
        ----------
        X : array_like, shape (N, d)
        y : ignored
        """
        X = check_data(X, min_samples=2)
        N, d = X.shape
        if d < 2:
            raise ValueError(
                f"X has {d} feature(s); a mixture of factor analysers needs"
                " d >= 2 (K factors and noise, with 1 <= K <= d - 1)."
            )
        J, K = self._check_params(N, d)
        with np.errstate(over="ignore", invalid="ignore"):  # refused below
            variances = np.var(X, axis=0)
        check_variance_scale(np.max(variances), X)
        floor = self.noise_floor * variances.mean()
        if floor <= 0:
            raise ValueError(
                "X has no variance: every feature (column) is constant."
            )
        rng = check_random_state(self.random_state)
        state = _MixtureEM(X, *self._start(X, J, K, rng, floor),
                           noise=self.noise, floor=floor)
        history, reason = run(
            state, lambda: [X], n_iter=self.max_iter, rng=rng,
            score=lambda: state.loglik, stop=aitken_converged(self.tol),
            progress=self.progress, desc="EM (mixture of factor analysers)",
        )
        if reason == "diverged":
            raise ValueError(
                "EM diverged (non-finite log-likelihood); try a larger"
                " noise_floor."
            )
        if state.collapsed:
            warnings.warn(
                f"Components {sorted(state.collapsed)} collapsed (fewer than"
                f" K + 1 = {K + 1} effective samples) and kept their"
                " parameters from then on; try fewer n_mixtures or"
                " n_components.",
                UserWarning, stacklevel=2,
            )
        if reason == "n_iter":
            from sklearn.exceptions import ConvergenceWarning

            warnings.warn(
                f"EM did not converge in max_iter={self.max_iter} iterations"
                f" (it may still gain about {remaining_gain(history):.2e}"
                f" nats per sample > tol={self.tol}); raise max_iter or tol.",
                ConvergenceWarning, stacklevel=2,
            )
        self.weights_, self.means_ = state.weights, state.means
        self.A_, self.D_ = state.A, state.D
        self.loglik_, self.n_iter_ = np.asarray(history), len(history)
        self.n_features_in_ = d
        return self

    def _validated(self, X):
        check_fitted(self, "A_")
        return check_data(X, n_features=self.n_features_in_,
                          estimator=type(self).__name__)

    def _log_joint(self, X):
        return mfa_log_joint(self._validated(X), self.weights_, self.means_,
                             self.A_, self.D_)

    def score_samples(self, X):
        """Log-likelihood of each row of X in nats (eq-mfa-loglik), shape (N,)."""
        return logsumexp(self._log_joint(X), axis=1)

    def score(self, X, y=None):
        """Mean log-likelihood per sample of the rows of X, in nats."""
        return float(np.mean(self.score_samples(X)))

    def predict_proba(self, X):
        """Responsibilities p(j | x) (eq-mfa-responsibilities), shape (N, J)."""
        log_joint = self._log_joint(X)
        return np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))

    def predict(self, X):
        """The most probable component of each row, shape (N,)."""
        return np.argmax(self._log_joint(X), axis=1)

    def posterior(self, X):
        """Both posteriors: of the component, and of z under each component.

        Returns
        -------
        R : ndarray, shape (N, J)
            p(j | x_n) (eq-mfa-responsibilities).
        Z : ndarray, shape (N, J, K)
            E[z | x_n, j] (eq-mfa-posterior).
        Sigma : ndarray, shape (J, K, K)
            Cov[z | x_n, j].
        """
        X = self._validated(X)
        return (self.predict_proba(X),) + mfa_posterior(
            X, self.means_, self.A_, self.D_)

    def transform(self, X):
        """E[z | x, j*] under the most probable component j*, shape (N, K).

        The factors of different components live in different local
        coordinates, so they are not averaged over j; use
        :meth:`posterior` for all of them.
        """
        R, Z, _ = self.posterior(X)
        return Z[np.arange(len(Z)), np.argmax(R, axis=1)]

    def sample(self, n_samples=1, random_state=None):
        """Draw samples from the fitted mixture.

        Returns
        -------
        X : ndarray, shape (n_samples, d)
        labels : ndarray of int, shape (n_samples,)
            The component of each sample (as scikit-learn's
            ``GaussianMixture.sample``).
        """
        check_fitted(self, "A_")
        n = check_positive_int(n_samples, "n_samples")
        check_array_size(n, self.n_features_in_ + self.A_.shape[2],
                         "n_samples")
        return mfa_sample(n, self.weights_, self.means_, self.A_, self.D_,
                          check_random_state(random_state))

    def n_parameters(self):
        """Free parameters p: per component a mean, A up to rotation and D,
        plus J - 1 weights."""
        check_fitted(self, "A_")
        J, d, K = self.A_.shape
        noise = d if self.noise == "diagonal" else 1
        return J - 1 + J * (d + d * K - K * (K - 1) // 2 + noise)

    def bic(self, X):
        """Bayesian information criterion on X: -2 N score(X) + p log N.

        Lower is better (scikit-learn's ``GaussianMixture.bic`` convention).
        """
        X = self._validated(X)
        return (-2.0 * len(X) * self.score(X)
                + self.n_parameters() * np.log(len(X)))
