"""The Gaussian toolkit (chapter 2): densities, conditioning, KL, Woodbury.

Every later model of the book is built from these few operations. Covariances
are handled through Cholesky factors, never explicit inverses, and a covariance
of the form ``A A^T + D`` is solved through the Woodbury identity and the
determinant lemma, which cost O(d K^2) instead of O(d^3).
"""
import numpy as np
from scipy import linalg

from lgm.checks import as_real_array, check_data, check_symmetric

LOG_2PI = np.log(2.0 * np.pi)


def _cholesky(Sigma, name="Sigma"):
    """Lower Cholesky factor of a positive definite matrix, or an error."""
    Sigma = check_symmetric(Sigma, name)
    try:
        return linalg.cholesky(Sigma, lower=True)
    except linalg.LinAlgError:
        raise ValueError(
            f"{name} must be positive definite (its Cholesky factorisation"
            " failed); add a small multiple of the identity if it is only"
            " semi-definite."
        ) from None


def _vector(v, name, n):
    """``v`` as a finite float vector of shape (n,), or a clear error."""
    v = as_real_array(v, name)
    if v.shape != (n,):
        raise ValueError(
            f"{name} must have shape ({n},); got shape {v.shape}."
        )
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name} contains NaN or infinite values.")
    return v


def gaussian_logpdf(X, mu, Sigma):
    """Log-density of N(mu, Sigma) at each row of X, through a Cholesky factor.

    Implements eq-gauss-logpdf:
    log N(x; mu, Sigma)
        = -1/2 [ d log 2pi + log|Sigma| + (x - mu)^T Sigma^{-1} (x - mu) ].

    Parameters
    ----------
    X : ndarray, shape (N, d)
        One point per row (a single point of shape (d,) is read as one row).
    mu : ndarray, shape (d,)
    Sigma : ndarray, shape (d, d), symmetric positive definite

    Returns
    -------
    ndarray, shape (N,)

    Raises
    ------
    ValueError
        If the shapes disagree, an input is not finite, or Sigma is not
        symmetric positive definite.
    """
    X = check_data(np.reshape(X, (1, -1)) if np.ndim(X) == 1 else X)
    L = _cholesky(Sigma)
    d = L.shape[0]
    if X.shape[1] != d:
        raise ValueError(
            f"X must have shape (N, {d}) to match Sigma (d, d); got X"
            f" {X.shape}."
        )
    mu = _vector(mu, "mu", d)
    # Solve L y = (x - mu)^T for all rows at once: the Mahalanobis term
    # is |y|^2.
    Y = linalg.solve_triangular(L, (X - mu).T, lower=True)
    logdet = 2.0 * np.sum(np.log(np.diag(L)))
    return -0.5 * (d * LOG_2PI + logdet + np.sum(Y**2, axis=0))


def condition_gaussian(mu, Sigma, obs_idx, x_obs):
    """Mean and covariance of a Gaussian's unobserved block given the rest.

    Implements eq-gauss-condition (the Schur complement):
    m = mu_u + S_uo S_oo^{-1} (x_o - mu_o),  S = S_uu - S_uo S_oo^{-1} S_ou.

    Parameters
    ----------
    mu : ndarray, shape (n,)
        Mean of the joint Gaussian.
    Sigma : ndarray, shape (n, n)
        Covariance of the joint Gaussian.
    obs_idx : sequence of int
        Indices of the observed coordinates (the rest are unobserved, kept in
        order).
    x_obs : ndarray, shape (len(obs_idx),)
        The observed values.

    Returns
    -------
    m : ndarray, shape (n - len(obs_idx),)
    S : ndarray, shape (n - len(obs_idx), n - len(obs_idx))
    """
    Sigma = check_symmetric(Sigma, "Sigma")
    n = Sigma.shape[0]
    mu = _vector(mu, "mu", n)
    o = np.asarray(obs_idx)
    if (o.ndim != 1 or (o.size and not np.issubdtype(o.dtype, np.integer))
            or len(np.unique(o)) != len(o) or np.any((o < 0) | (o >= n))):
        raise ValueError(
            "obs_idx must be a 1-D sequence of distinct integers in"
            f" 0..{n - 1}; got {obs_idx!r}."
        )
    o = o.astype(int)
    u = np.setdiff1d(np.arange(n), o)
    x_obs = _vector(x_obs, "x_obs", len(o))
    L = _cholesky(Sigma[np.ix_(o, o)], name="Sigma[obs, obs]")
    # G = S_oo^{-1} S_ou through two triangular solves.
    G = linalg.cho_solve((L, True), Sigma[np.ix_(o, u)])
    m = mu[u] + G.T @ (x_obs - mu[o])
    S = Sigma[np.ix_(u, u)] - Sigma[np.ix_(u, o)] @ G
    return m, 0.5 * (S + S.T)


def kl_gaussians(m0, S0, m1, S1):
    """KL( N(m0, S0) || N(m1, S1) ) in nats.

    Implements eq-gauss-kl:
    1/2 [ tr(S1^{-1} S0) + (m1 - m0)^T S1^{-1} (m1 - m0) - n
          + log|S1| - log|S0| ].

    Parameters
    ----------
    m0, m1 : ndarray, shape (n,)
    S0, S1 : ndarray, shape (n, n), symmetric positive definite

    Returns
    -------
    float
    """
    L0, L1 = _cholesky(S0, "S0"), _cholesky(S1, "S1")
    n = L0.shape[0]
    if L1.shape != (n, n):
        raise ValueError(
            f"S0 and S1 must have the same shape; got {L0.shape} and"
            f" {L1.shape}."
        )
    m0, m1 = _vector(m0, "m0", n), _vector(m1, "m1", n)
    # L1^{-1} L0: tr(S1^{-1} S0) = |M|_F^2
    M = linalg.solve_triangular(L1, L0, lower=True)
    y = linalg.solve_triangular(L1, m1 - m0, lower=True)
    logdet0 = 2.0 * np.sum(np.log(np.diag(L0)))
    logdet1 = 2.0 * np.sum(np.log(np.diag(L1)))
    return float(0.5 * (np.sum(M**2) + y @ y - n + logdet1 - logdet0))


def lowrank_solve_logdet(A, D, B=None):
    """Solve C Y = B and compute log|C| for C = A A^T + diag(D), in O(d K^2)
    (plus O(d K m) for B).

    Implements eq-woodbury,
    C^{-1} = D^{-1} - D^{-1} A (I + A^T D^{-1} A)^{-1} A^T D^{-1},
    and eq-det-lemma, log|C| = log|D| + log|I + A^T D^{-1} A|.

    Parameters
    ----------
    A : ndarray, shape (d, K)
    D : ndarray, shape (d,), positive
        The diagonal of the diagonal part.
    B : ndarray, shape (d,) or (d, m), optional
        Right-hand side(s).

    Returns
    -------
    Y : ndarray, shape of B, or None when B is None
        C^{-1} B.
    logdet : float
        log|C|.
    """
    A = np.asarray(A, dtype=float)
    if A.ndim != 2:
        raise ValueError(f"A must have shape (d, K); got shape {A.shape}.")
    if not np.all(np.isfinite(A)):
        raise ValueError("A contains NaN or infinite values.")
    D = _vector(D, "D", A.shape[0])
    if np.any(D <= 0):
        raise ValueError(
            "D must be strictly positive for the Woodbury identity."
        )
    K = A.shape[1]
    AD = A / D[:, None]  # D^{-1} A, shape (d, K)
    M = np.eye(K) + A.T @ AD  # I + A^T D^{-1} A
    Lm = linalg.cholesky(M, lower=True)
    logdet = np.sum(np.log(D)) + 2.0 * np.sum(np.log(np.diag(Lm)))
    if B is None:
        return None, logdet
    B = np.asarray(B, dtype=float)
    if B.ndim not in (1, 2) or B.shape[0] != A.shape[0]:
        raise ValueError(
            f"B must have shape ({A.shape[0]},) or ({A.shape[0]}, m); got"
            f" shape {B.shape}."
        )
    if not np.all(np.isfinite(B)):
        raise ValueError("B contains NaN or infinite values.")
    DB = B / D.reshape((-1,) + (1,) * (B.ndim - 1))
    Y = DB - AD @ linalg.cho_solve((Lm, True), AD.T @ B)
    return Y, logdet
