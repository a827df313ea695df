"""The linear Gaussian model (factor analysis) in equations (chapter 6).

The model is z ~ N(0, I_K), e ~ N(0, diag(D)) independent of z, and x = A z +
e, so that x ~ N(0, C) with C = A A^T + diag(D) (eq-lgm-marginal). Data X are
(N, d) with one sample per row, A is (d, K) and D is the (d,) diagonal of the
noise covariance. Every function here costs O(d K^2) plus O(N d K) for the data
(or O(d^2 K) for a sample covariance): no d x d matrix is ever inverted,
because C is handled through the Woodbury identity and the determinant lemma,
from one Cholesky factor of the K x K posterior precision
(:func:`posterior_map_logdet`). Functions assume a zero-mean model; subtract
the mean from the data first.

The public functions check their arguments; the kernels that EM's iterations
call (:func:`posterior_map_logdet`, :func:`posterior_log_likelihood`,
:func:`posterior_statistics`) do not.
"""
import numpy as np
from scipy import linalg

from lgm.checks import as_real_array, check_data
from lgm.gaussian import LOG_2PI


def check_params(A, D, n_features=None):
    """Return (A, D) as finite float arrays, A (d, K) and D (d,) > 0, or raise.

    Parameters
    ----------
    A : array_like, shape (d, K)
        Loading matrix.
    D : array_like, shape (d,)
        Noise variances, all strictly positive.
    n_features : int, optional
        The d that is required (the width of the data the parameters meet).

    Returns
    -------
    A : ndarray, shape (d, K)
    D : ndarray, shape (d,)
    """
    A = check_data(A, "A")
    d = A.shape[0]
    if A.shape[1] > d:
        raise ValueError(
            f"A must have shape (d, K) with K <= d; got shape {A.shape}."
        )
    if n_features is not None and d != n_features:
        raise ValueError(
            f"A has {d} rows but the data have {n_features} features; A must"
            " be (d, K)."
        )
    D = as_real_array(D, "D")
    if D.shape != (d,):
        raise ValueError(
            f"D must be the (d,) diagonal of the noise covariance with d={d}"
            f" to match A; got shape {D.shape}."
        )
    if not np.all(np.isfinite(D)) or np.any(D <= 0):
        raise ValueError(
            "D must hold finite, strictly positive noise variances."
        )
    return A, D


def posterior_map(A, D):
    """The posterior of z given x as a linear map and a covariance.

    The posterior mean is m(x) = beta x and the covariance is Sigma
    (eq-lgm-posterior): checks (A, D) with :func:`check_params`, then calls
    :func:`posterior_map_logdet`.

    Parameters
    ----------
    A : array_like, shape (d, K)
    D : array_like, shape (d,), positive

    Returns
    -------
    beta : ndarray, shape (K, d)
        The posterior mean of z given x is beta @ x.
    Sigma : ndarray, shape (K, K)
        The posterior covariance, the same for every x.
    """
    beta, Sigma, _ = posterior_map_logdet(*check_params(A, D))
    return beta, Sigma


def posterior_map_logdet(A, D):
    """The posterior map (beta, Sigma) and log|C|, from one Cholesky factor.

    Implements eq-lgm-posterior in its K x K form,
    Sigma = (I_K + A^T D^{-1} A)^{-1} and beta = Sigma A^T D^{-1},
    and the determinant lemma (eq-det-lemma) for C = A A^T + diag(D),
    log|C| = log|D| + log|I_K + A^T D^{-1} A|: both from the Cholesky
    factor of the posterior precision I_K + A^T D^{-1} A, O(d K^2).
    Sigma does not depend on x.

    The arguments are not checked (the kernel of EM's iterations;
    :func:`posterior_map` checks them).

    Parameters
    ----------
    A : ndarray, shape (d, K)
    D : ndarray, shape (d,), positive

    Returns
    -------
    beta : ndarray, shape (K, d)
        The posterior mean of z given x is beta @ x.
    Sigma : ndarray, shape (K, K)
        The posterior covariance, the same for every x.
    logdet : float
        log|C|.
    """
    K = A.shape[1]
    AD = A / D[:, None]  # D^{-1} A
    # the posterior precision
    L = linalg.cholesky(np.eye(K) + A.T @ AD, lower=True)
    Sigma = linalg.cho_solve((L, True), np.eye(K))
    beta = linalg.cho_solve((L, True), AD.T)
    logdet = np.sum(np.log(D)) + 2.0 * np.sum(np.log(np.diag(L)))
    return beta, 0.5 * (Sigma + Sigma.T), float(logdet)


def posterior(X, A, D):
    """Posterior means and covariance of z for every row of X (zero mean).

    Implements eq-lgm-posterior: p(z | x) = N(z; Sigma A^T D^{-1} x, Sigma)
    with Sigma = (I_K + A^T D^{-1} A)^{-1}, in O(N d K + d K^2).

    Parameters
    ----------
    X : array_like, shape (N, d)
    A : array_like, shape (d, K)
    D : array_like, shape (d,), positive

    Returns
    -------
    means : ndarray, shape (N, K)
        Row n is E[z | x_n].
    cov : ndarray, shape (K, K)
        Cov[z | x_n], the same for every n.
    """
    X = check_data(X)
    A, D = check_params(A, D, n_features=X.shape[1])
    beta, Sigma, _ = posterior_map_logdet(A, D)
    return X @ beta.T, Sigma


def log_likelihood(X, A, D):
    """Log-density of every row of X under the model N(0, A A^T + diag(D)).

    Implements eq-lgm-loglik: checks X, A and D, then calls
    :func:`posterior_log_likelihood` (O(N d K + d K^2), no d x d inverse)
    and refuses X so large in scale that x^T C^{-1} x overflows.

    Parameters
    ----------
    X : array_like, shape (N, d)
    A : array_like, shape (d, K)
    D : array_like, shape (d,), positive

    Returns
    -------
    ndarray, shape (N,)
        Log-densities in nats.
    """
    X = check_data(X)
    A, D = check_params(A, D, n_features=X.shape[1])
    return check_log_densities(posterior_log_likelihood(X, A, D)[2])


def check_log_densities(loglik):
    """Return the log-densities, or raise if x^T C^{-1} x overflowed.

    Parameters
    ----------
    loglik : ndarray
        Log-densities of (checked, finite) data; -inf or NaN where the data
        were too large in scale for the model.

    Returns
    -------
    ndarray
        ``loglik``.
    """
    if not np.all(np.isfinite(loglik)):
        raise ValueError(
            "X is too large in scale for this model: x^T C^{-1} x overflows"
            " float64. Scale X as the model's own (training) data were."
        )
    return loglik


def posterior_log_likelihood(X, A, D):
    """The posterior of z for every row of X, and the log-density of the row.

    Implements eq-lgm-posterior, E[z | x_n] = beta x_n and Cov = Sigma, and
    eq-lgm-loglik,
    log p(x) = -1/2 [ d log 2pi + log|C| + x^T C^{-1} x ],
    C = A A^T + diag(D), in the form
    x^T C^{-1} x = sum_i x_i^2 / D_i - u^T Sigma u with u = A^T D^{-1} x,
    and the determinant lemma: O(N d K + d K^2), no d x d inverse. Both come
    from one Cholesky factor (:func:`posterior_map_logdet`). The subtracted
    term is u^T (Sigma u) = u^T E[z | x] (no Woodbury subtraction inside it),
    which keeps the result accurate when a noise variance D_i is tiny (a
    Heywood case).

    The arguments are not checked (the kernel of EM's iterations;
    :func:`log_likelihood` and :func:`posterior` check them). Data too
    large in scale give a log-density of -inf or NaN.

    Parameters
    ----------
    X : ndarray, shape (N, d)
    A : ndarray, shape (d, K)
    D : ndarray, shape (d,), positive

    Returns
    -------
    means : ndarray, shape (N, K)
        Row n is E[z | x_n].
    Sigma : ndarray, shape (K, K)
        Cov[z | x_n], the same for every n.
    loglik : ndarray, shape (N,)
        Log-densities in nats.
    """
    _, Sigma, logdet = posterior_map_logdet(A, D)
    with np.errstate(over="ignore", invalid="ignore"):  # left to the caller
        U = X @ (A / D[:, None])  # rows u_n = A^T D^{-1} x_n, shape (N, K)
        M = U @ Sigma  # E[z | x_n] = Sigma u_n (= beta x_n), O(N K^2)
        quad = np.einsum("nd,nd->n", X, X / D) - np.einsum("nk,nk->n", U, M)
    return M, Sigma, -0.5 * (X.shape[1] * LOG_2PI + logdet + quad)


def mean_log_likelihood(S, A, D):
    """Mean log-likelihood per sample from the sample covariance S = X^T X / N
    (zero-mean model).

    Implements eq-lgm-loglik averaged over the data:
    (1/N) sum_n log p(x_n) = -1/2 [ d log 2pi + log|C| + tr(C^{-1} S) ],
    which costs O(d^2 K) whatever N is. The trace is that of eq-lgm-loglik,
    tr(C^{-1} S) = sum_i S_ii / D_i - sum_ij (S D^{-1} A)_ij (C^{-1} A)_ij,
    with C^{-1} A = D^{-1} A Sigma = beta^T from the posterior map. (Computing
    C^{-1} A by the Woodbury identity instead subtracts two numbers that grow
    like 1/D_i, and loses about 1e-5 nats per sample when a noise variance
    heads to 0, as in a Heywood case.)

    Parameters
    ----------
    S : ndarray, shape (d, d)
        Sample covariance of data with the model's mean subtracted (normalised
        by N).
    A : ndarray, shape (d, K)
    D : ndarray, shape (d,), positive

    Returns
    -------
    float
        Nats per sample.
    """
    S = check_data(S, "S")
    A, D = check_params(A, D, n_features=S.shape[1])
    if S.shape[0] != S.shape[1]:
        raise ValueError(
            "S must be a square (d, d) sample covariance; got shape"
            f" {S.shape}."
        )
    return posterior_statistics(S, A, D)[3]


def posterior_statistics(S, A, D):
    """The E-step of all the data from S, and the log-likelihood it gives.

    Implements eq-em-estep summed over the data: the posterior map
    (beta, Sigma) of :func:`posterior_map_logdet` and the expected cross moment
    (1/N) sum_n x_n m_n^T = S beta^T; and eq-lgm-loglik averaged over the
    data, as :func:`mean_log_likelihood` documents. S D^{-1} A, the one
    O(d^2 K) product, gives both: S beta^T = (S D^{-1} A) Sigma, and the
    trace term. The K x K posterior precision is factorised once, by
    :func:`posterior_map_logdet`, which also gives log|C|.

    The arguments are not checked (the kernel of EM's iterations): A (d, K)
    and D (d,) > 0 finite as :func:`check_params` returns them, S (d, d).

    Returns
    -------
    beta : ndarray, shape (K, d)
    Sigma : ndarray, shape (K, K)
    Sxz : ndarray, shape (d, K)
        S beta^T.
    loglik : float
        Mean log-likelihood per sample, nats.
    """
    d = A.shape[0]
    beta, Sigma, logdet = posterior_map_logdet(A, D)  # beta^T = C^{-1} A
    SAD = S @ (A / D[:, None])  # S D^{-1} A
    trace = np.sum(np.diag(S) / D) - np.sum(SAD * beta.T)
    loglik = -0.5 * (d * LOG_2PI + logdet + trace)
    return beta, Sigma, SAD @ Sigma, float(loglik)


def m_step(sxx, Sxz, Szz):
    """ML A and D from (expected) second moments of completed pairs (x, z).

    Implements eq-complete-data-ml in terms of normalised sums over the
    completed pairs, A = Sxz Szz^{-1} and D = diag(Sxx) - diag(A Sxz^T), where
    the second formula uses this A (it is the simplified form of
    (1/M) sum (x - A z)^2, valid only at the maximising A). With expected
    moments it is eq-em-mstep; with sampled completions, eq-mcem-mstep.

    Parameters
    ----------
    sxx : ndarray, shape (d,)
        diag(Sxx) = (1/M) sum over pairs of x * x (elementwise).
    Sxz : ndarray, shape (d, K)
        (1/M) sum over pairs of x z^T.
    Szz : ndarray, shape (K, K), positive definite
        (1/M) sum over pairs of z z^T.

    Returns
    -------
    A : ndarray, shape (d, K)
    D : ndarray, shape (d,)
        May be zero or (by rounding) slightly negative when a coordinate is
        fitted exactly; callers floor it.
    """
    try:
        L = linalg.cholesky(Szz, lower=True)
    except linalg.LinAlgError:
        raise ValueError(
            "The completed latents are degenerate (sum of z z^T is singular): "
            "need at least K linearly independent latent vectors."
        ) from None
    A = linalg.cho_solve((L, True), Sxz.T).T
    D = sxx - np.sum(A * Sxz, axis=1)
    return A, D


def complete_data_ml(X, Z):
    """Maximum-likelihood (A, D) of the zero-mean model when Z is observed.

    Implements eq-complete-data-ml: A = (sum x z^T)(sum z z^T)^{-1} and
    D = (1/N) diag(sum x x^T - A sum z x^T), through :func:`m_step`.

    Parameters
    ----------
    X : array_like, shape (N, d)
    Z : array_like, shape (N, K)
        The latent vector of each row of X, with N >= K and Z of full column
        rank.

    Returns
    -------
    A : ndarray, shape (d, K)
    D : ndarray, shape (d,)
        Mean squared residual of each coordinate (zero where x_i is an exact
        linear function of z).
    """
    X = check_data(X)
    Z = check_data(Z, "Z")
    N = X.shape[0]
    if Z.shape[0] != N:
        raise ValueError(
            f"Z must have one row per row of X ({N}); got shape {Z.shape}."
        )
    if Z.shape[1] > N:
        raise ValueError(
            "Z must have at least as many rows as columns (N >= K); got shape"
            f" {Z.shape}."
        )
    A, D = m_step(np.einsum("nd,nd->d", X, X) / N, X.T @ Z / N, Z.T @ Z / N)
    return A, np.maximum(D, 0.0)
