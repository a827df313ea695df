"""A 1-D Gaussian mixture: the smallest latent-variable model (chapter 3).

It is the first model the book fits by EM.

The latent variable of a data point x is the label z in {0, ..., K-1} of the
component that made it: z ~ Categorical(pi), then x | z ~ N(mu_z, var_z). The
posterior over z is exact and cheap, so the mixture shows EM with nothing
hidden: complete each point with its responsibilities (or with labels drawn
from them), then re-estimate (pi, mu, var) from the completed data.
:class:`GaussianMixture1D` runs through the same loop,
:func:`lgm.completion.run`, as the linear Gaussian model and the VAE.

Shapes: x is (N,), one scalar sample per entry; pi, mu and var are (K,);
responsibilities are (N, K).
"""
import numpy as np
from scipy.special import logsumexp

from lgm.checks import check_option, check_positive, check_positive_int
from lgm.gaussian import LOG_2PI

PI_TOLERANCE = 1e-8
"""How far ``sum(pi)`` may be from 1 (rounding) before it is rejected."""


def _check_x(x):
    """``x`` as a finite float vector of shape (N,), N >= 1, or an error."""
    try:
        x = np.asarray(x, dtype=float)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"x must be a numeric array of shape (N,); {err}"
        ) from None
    if x.ndim != 1 or x.size == 0:
        raise ValueError(
            "x must be a non-empty 1-D array of shape (N,), one scalar per"
            f" sample; got shape {x.shape}."
        )
    if not np.all(np.isfinite(x)):
        raise ValueError("x contains NaN or infinite values.")
    return x


def _check_params(pi, mu, var):
    """(pi, mu, var) as float vectors (K,), pi a probability, var > 0."""
    pi, mu, var = (np.asarray(v, dtype=float) for v in (pi, mu, var))
    if (
        pi.ndim != 1
        or pi.size == 0
        or mu.shape != pi.shape
        or var.shape != pi.shape
    ):
        raise ValueError(
            "pi, mu and var must be 1-D arrays of the same shape (K,), one"
            f" entry per component; got shapes {pi.shape}, {mu.shape} and"
            f" {var.shape}."
        )
    if not all(np.all(np.isfinite(v)) for v in (pi, mu, var)):
        raise ValueError("pi, mu and var must be finite.")
    if np.any(pi < 0) or abs(pi.sum() - 1.0) > PI_TOLERANCE:
        raise ValueError(
            f"pi must be non-negative and sum to 1; got {pi} (sum"
            f" {pi.sum():.10g})."
        )
    if np.any(var <= 0):
        raise ValueError(f"var must be strictly positive; got {var}.")
    return pi, mu, var


def gmm_log_joint(x, pi, mu, var):
    """log p(x_n, z_n = k) = log pi_k + log N(x_n; mu_k, var_k), all n and k.

    Parameters
    ----------
    x : ndarray, shape (N,)
    pi, mu, var : ndarray, shape (K,)
        Mixing proportions (summing to 1), means and variances (positive).

    Returns
    -------
    ndarray, shape (N, K)
    """
    x = _check_x(x)
    pi, mu, var = _check_params(pi, mu, var)
    # a component with pi_k = 0 has log-joint -inf
    with np.errstate(divide="ignore"):
        log_pi = np.log(pi)
    return log_pi - 0.5 * (
        LOG_2PI + np.log(var) + (x[:, None] - mu) ** 2 / var
    )


def gmm_log_likelihood(x, pi, mu, var):
    """Log-likelihood sum_n log sum_k pi_k N(x_n; mu_k, var_k), by logsumexp.

    Implements eq-gmm-loglik. The inner sum is taken in log space (logsumexp),
    so points far from every component give a finite, accurate value instead of
    log(0).

    Parameters
    ----------
    x : ndarray, shape (N,)
    pi, mu, var : ndarray, shape (K,)

    Returns
    -------
    float
        The total over the N samples, in nats (divide by N for the mean per
        sample).
    """
    return float(np.sum(logsumexp(gmm_log_joint(x, pi, mu, var), axis=1)))


def gmm_responsibilities(x, pi, mu, var):
    """The exact posterior over the component, r_nk = p(z_n = k | x_n).

    Implements eq-gmm-responsibilities (Bayes' rule, normalised in log space).

    Parameters
    ----------
    x : ndarray, shape (N,)
    pi, mu, var : ndarray, shape (K,)

    Returns
    -------
    ndarray, shape (N, K)
        Each row is a probability vector.
    """
    log_joint = gmm_log_joint(x, pi, mu, var)
    return np.exp(log_joint - logsumexp(log_joint, axis=1, keepdims=True))


def gmm_m_step(x, R, *, var_floor=1e-6):
    """Re-estimate (pi, mu, var) from completed data: weighted ML.

    Implements eq-gmm-mstep. ``R[n, k]`` is the weight with which point n is
    assigned to component k: the responsibilities (expected completion) or the
    fraction of J sampled labels that equal k (sampled completion). With
    one-hot rows this is the complete-data maximum likelihood estimate.

    Parameters
    ----------
    x : ndarray, shape (N,)
    R : ndarray, shape (N, K)
        Non-negative weights, each row summing to 1.
    var_floor : float
        The smallest variance returned. A component that sits on a single point
        would otherwise shrink to variance 0 and the likelihood to +infinity;
        maximising over var >= var_floor keeps the monotonicity of EM.

    Returns
    -------
    pi, mu, var : ndarray, shape (K,)

    Raises
    ------
    ValueError
        If a component receives no weight at all (its mean would be undefined).
    """
    x = _check_x(x)
    var_floor = check_positive(var_floor, "var_floor")
    R = np.asarray(R, dtype=float)
    if R.ndim != 2 or R.shape[0] != x.shape[0]:
        raise ValueError(
            f"R must have shape (N, K) with N={x.shape[0]}; got shape"
            f" {R.shape}."
        )
    if (
        not np.all(np.isfinite(R))
        or np.any(R < 0)
        or not np.allclose(R.sum(axis=1), 1.0)
    ):
        raise ValueError(
            "R must be finite and non-negative, with each row summing to 1."
        )
    Nk = R.sum(axis=0)  # effective number of points in each component
    if np.any(Nk <= 0):
        raise ValueError(
            f"components {np.flatnonzero(Nk <= 0).tolist()} received no"
            " weight; their means are undefined."
        )
    pi = Nk / x.shape[0]
    mu = (R.T @ x) / Nk
    var = np.sum(R * (x[:, None] - mu) ** 2, axis=0) / Nk
    return pi, mu, np.maximum(var, var_floor)


def gmm_em_step(x, pi, mu, var, *, var_floor=1e-6):
    """One EM iteration for the mixture: responsibilities, then weighted ML.

    Implements eq-gmm-responsibilities followed by eq-gmm-mstep. The
    log-likelihood (eq-gmm-loglik) at the output is never below that at the
    input.

    Parameters
    ----------
    x : ndarray, shape (N,)
    pi, mu, var : ndarray, shape (K,)
        The current parameters.
    var_floor : float
        See :func:`gmm_m_step`.

    Returns
    -------
    pi, mu, var : ndarray, shape (K,)
        The new parameters.
    """
    return gmm_m_step(
        x, gmm_responsibilities(x, pi, mu, var), var_floor=var_floor
    )


class GaussianMixture1D:
    """A 1-D Gaussian mixture as a model of the "complete, then re-estimate"
    loop.

    ``complete`` fills in the missing labels, ``reestimate`` fits (pi, mu, var)
    to the completed data (eq-complete-reestimate), so
    :func:`lgm.completion.run` fits it by EM.

    Parameters
    ----------
    pi, mu, var : array_like, shape (K,)
        The starting parameters.
    completion : {"expected", "sampled"}
        "expected": complete each point with its responsibilities (exact EM,
        eq-gmm-responsibilities). "sampled": draw ``n_samples`` labels per
        point from the responsibilities and use their frequencies (Monte Carlo
        EM; the log-likelihood may then go down).
    n_samples : int
        J, the labels drawn per point for sampled completion.
    var_floor : float
        See :func:`gmm_m_step`.

    Attributes
    ----------
    pi, mu, var : ndarray, shape (K,)
        The current parameters.

    Examples
    --------
    >>> import numpy as np
    >>> from lgm.completion import run
    >>> rng = np.random.default_rng(0)
    >>> x = np.concatenate([rng.normal(-2, 1, 100), rng.normal(2, 1, 100)])
    >>> model = GaussianMixture1D([0.5, 0.5], [-1.0, 1.0], [1.0, 1.0])
    >>> history, _ = run(model, lambda: [x], n_iter=50, rng=rng,
    ...                  score=lambda: model.log_likelihood(x) / len(x))
    """

    def __init__(self, pi, mu, var, *, completion="expected", n_samples=1,
                 var_floor=1e-6):
        self.pi, self.mu, self.var = _check_params(pi, mu, var)
        self.completion = check_option(
            completion, "completion", ("expected", "sampled")
        )
        self.n_samples = check_positive_int(n_samples, "n_samples")
        self.var_floor = check_positive(var_floor, "var_floor")

    def complete(self, x, rng):
        """Fill in the labels: weights R (N, K) on the components per point.

        Parameters
        ----------
        x : ndarray, shape (N,)
        rng : numpy.random.Generator
            Used only by sampled completion.

        Returns
        -------
        R : ndarray, shape (N, K)
            The responsibilities, or the frequencies of J labels drawn from
            them.
        """
        R = gmm_responsibilities(x, self.pi, self.mu, self.var)
        if self.completion == "expected":
            return R
        # exact unit rows for the multinomial draw
        R = R / R.sum(axis=1, keepdims=True)
        return rng.multinomial(self.n_samples, R) / self.n_samples

    def reestimate(self, x, R):
        """Set (pi, mu, var) to the weighted ML estimate (eq-gmm-mstep).

        Parameters
        ----------
        x : ndarray, shape (N,)
        R : ndarray, shape (N, K)
            A completion from :meth:`complete`.
        """
        self.pi, self.mu, self.var = gmm_m_step(x, R, var_floor=self.var_floor)

    def log_likelihood(self, x):
        """Total log-likelihood of ``x`` in nats (eq-gmm-loglik)."""
        return gmm_log_likelihood(x, self.pi, self.mu, self.var)
