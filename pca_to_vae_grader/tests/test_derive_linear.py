"""Autograder tests of book/exercises/derive_linear.md (chapters 2-7): quantities the student derives.

The page states each quantity and asks for a derivation, not a transcription, so no test compares
with a formula the page gives. Every expected value comes from an independent computation:
central finite differences of the log-likelihood (gradients), scipy.optimize run on the objective
itself (maximisers), scikit-learn's PCA reconstruction (the PCA error), brute-force conditioning of
the (K + d)-dimensional joint Gaussian (posterior moments), and least squares (the M-step's A).
The inputs are drawn afresh on every run (``rng`` below, from the run's seed; ``--seed`` reproduces a
run), so a value copied from a run or a
formula fitted to a few inputs does not pass. Tolerances are stated at each test.
"""
import numpy as np
import pytest
import torch
from scipy import linalg, optimize, stats

import lgm
from pca_to_vae_grader import inputs
from pca_to_vae_grader.compare import check, check_array, check_tuple
from lgm.em import sample_covariance

# Automatic or symbolic differentiation in the submission would do the derivation: the grader refuses
# these imports on this page (pca_to_vae_grader.sandboxed.guard, BANNED_MODULES), with a message that says why.
BANNED_MODULES = ("torch", "sympy", "jax", "autograd")

# Numerical differentiation by the student (the page itself gives a finite-difference helper and the
# log-likelihoods, for the self-checks) is not refused, and at small d it meets the tolerances below.
# The grader tells it apart by size: each gradient exercise has a d = 200 case that the derived formula
# computes in milliseconds and that finite differences, 2 evaluations per entry of a 200 x 200 or
# 200 x 20 matrix, each a 200 x 200 log-determinant and solve, cannot finish within the time limit
# (10 s; about 4 minutes here). Finite differences would be too slow for the test's own reference there
# too, so the large cases compare with torch's autograd of the same log-likelihood (float64, exact to
# rounding).


def _numerical_gradient(f, M):
    """Central differences of the scalar f at M, step 1e-5 relative to each entry.

    Truncation error ~ h^2 |f'''| and rounding ~ 1e-16 |f| / h: with |f| ~ 1e2-1e3 both stay
    below ~1e-7 of the gradient's scale, so the tests compare with rtol = atol = 1e-5 (relative to
    the largest entry). The classic mistakes differ by factors of order 1.
    """
    M = np.array(M, dtype=float)
    G = np.zeros_like(M)
    for i in np.ndindex(M.shape):
        h = 1e-5 * max(1.0, abs(M[i]))
        E = np.zeros_like(M)
        E[i] = h
        G[i] = (f(M + E) - f(M - E)) / (2 * h)
    return G


def _autograd(f, *arrays):
    """Gradients of the scalar torch function f with respect to each numpy argument (float64)."""
    tensors = [torch.tensor(np.asarray(a, dtype=float), dtype=torch.float64, requires_grad=True) for a in arrays]
    f(*tensors).backward()
    return [t.grad.numpy() for t in tensors]


def _gradient_tolerance(expected):
    return dict(rtol=1e-5, atol=1e-5 * max(1.0, np.abs(expected).max()))


# ---------------------------------------------------------------------------------------------
# gaussian_loglik_grads(X, mu, Sigma) -> (grad_mu (d,), grad_Sigma (d, d))


def _gauss_case(rng, N, d):
    X = rng.normal(size=(N, d)) @ rng.normal(size=(d, d)) + rng.normal(size=d)
    return X, rng.normal(size=d), inputs.spd_matrix(rng, d)


def _gauss_loglik(X, mu, Sigma):
    """sum_n log N(x_n; mu, Sigma) by its definition, for any invertible Sigma (not symmetrised)."""
    R = X - mu
    sign, logdet = np.linalg.slogdet(Sigma)
    return -0.5 * (len(X) * (X.shape[1] * np.log(2 * np.pi) + logdet) + np.sum(R * np.linalg.solve(Sigma, R.T).T))


def _gauss_mistakes(X, mu, Sigma):
    N, R = len(X), X - mu
    P = np.linalg.inv(Sigma)
    G = -0.5 * (N * P - P @ R.T @ R @ P)
    mu_hints = [("forget Sigma^{-1}: the gradient of -1/2 r^T Sigma^{-1} r in mu is Sigma^{-1} r",
                 R.sum(axis=0)),
                ("average over the N samples instead of summing", P @ R.mean(axis=0))]
    Sigma_hints = [
        ("forget the minus sign in d(Sigma^{-1}) = -Sigma^{-1} dSigma Sigma^{-1}", -0.5 * (N * P + P @ R.T @ R @ P)),
        ("forget the factor 1/2 in front of log|Sigma| and of the quadratic term", 2 * G),
        ("forget the N in front of log|Sigma| (it appears once per sample)", -0.5 * (P - P @ R.T @ R @ P)),
        ("double the off-diagonal entries: that is the derivative when Sigma_ij and Sigma_ji move together, "
         "but the task treats each entry separately", 2 * G - np.diag(np.diag(G))),
    ]
    return mu_hints, Sigma_hints


# Points: the small cases (which finite differences also pass) 1 each, the d = 200 case the most.
@pytest.mark.points(1)
@pytest.mark.parametrize("N, d", [(20, 3), (7, 1)])
def test_gaussian_loglik_grads_mu(student, rng, N, d):
    X, mu, Sigma = _gauss_case(rng, N, d)
    expected = _numerical_gradient(lambda m: _gauss_loglik(X, m, Sigma), mu)
    grad_mu, _ = check_tuple(student.gaussian_loglik_grads(X, mu, Sigma), 2, "gaussian_loglik_grads(X, mu, Sigma)",
                             ("grad_mu", "grad_Sigma"))
    check_array(grad_mu, expected, f"grad_mu from gaussian_loglik_grads (N={N}, d={d}), compared with finite "
                "differences of the log-likelihood", **_gradient_tolerance(expected),
                mistakes=_gauss_mistakes(X, mu, Sigma)[0])


@pytest.mark.points(1)
@pytest.mark.parametrize("N, d", [(20, 3), (7, 1)])
def test_gaussian_loglik_grads_Sigma(student, rng, N, d):
    X, mu, Sigma = _gauss_case(rng, N, d)
    assert np.isclose(_gauss_loglik(X, mu, Sigma), stats.multivariate_normal(mu, Sigma).logpdf(X).sum())
    expected = _numerical_gradient(lambda S: _gauss_loglik(X, mu, S), Sigma)
    _, grad_Sigma = check_tuple(student.gaussian_loglik_grads(X, mu, Sigma), 2,
                                "gaussian_loglik_grads(X, mu, Sigma)", ("grad_mu", "grad_Sigma"))
    check_array(grad_Sigma, expected, f"grad_Sigma from gaussian_loglik_grads (N={N}, d={d}), compared with finite "
                "differences of the log-likelihood in each entry of Sigma", **_gradient_tolerance(expected),
                mistakes=_gauss_mistakes(X, mu, Sigma)[1])


def _gauss_loglik_torch(X):
    """sum_n log N(x_n; mu, Sigma) as a torch function of (mu, Sigma), each entry of Sigma on its own."""
    X = torch.as_tensor(X)

    def loglik(mu, Sigma):
        R = X - mu
        quadratic = torch.sum(R * torch.linalg.solve(Sigma, R.T).T)
        return -0.5 * (len(X) * (X.shape[1] * np.log(2 * np.pi) + torch.linalg.slogdet(Sigma)[1]) + quadratic)

    return loglik


@pytest.mark.points(6)
def test_gaussian_loglik_grads_large_d(student, rng):
    # d = 200: finite differences of the log-likelihood cannot finish in time (see BANNED_MODULES).
    # Exact formula vs autograd: rounding of 200 x 200 solves with condition ~6, ~1e-12; 1e-8.
    X, mu, Sigma = _gauss_case(rng, 400, 200)
    ref_mu, ref_Sigma = _autograd(_gauss_loglik_torch(X), mu, Sigma)
    grad_mu, grad_Sigma = check_tuple(student.gaussian_loglik_grads(X, mu, Sigma), 2,
                                      "gaussian_loglik_grads(X, mu, Sigma)", ("grad_mu", "grad_Sigma"))
    mu_hints, Sigma_hints = _gauss_mistakes(X, mu, Sigma)
    check_array(grad_mu, ref_mu, "grad_mu from gaussian_loglik_grads with N=400, d=200, compared with autograd",
                rtol=1e-8, atol=1e-8 * np.abs(ref_mu).max(), mistakes=mu_hints)
    check_array(grad_Sigma, ref_Sigma, "grad_Sigma from gaussian_loglik_grads with N=400, d=200 (a derived formula "
                "takes milliseconds; differentiating numerically entry by entry does not finish in time), compared "
                "with autograd", rtol=1e-8, atol=1e-8 * np.abs(ref_Sigma).max(), mistakes=Sigma_hints)


@pytest.mark.points(1)
def test_gaussian_loglik_grads_vanish_at_the_mle(student, rng):
    # At the sample mean and the sample covariance (normalised by N) the likelihood is maximal:
    # both gradients are zero up to rounding (1e-8 of the scale N * ||Sigma^{-1}||). The data's
    # covariance has eigenvalues in [0.5, 3], so Sigma is well conditioned (a product of two normal
    # matrices, as before, gave condition numbers up to ~1e6 in about 8% of draws).
    X = rng.normal(size=(50, 4)) @ np.linalg.cholesky(inputs.spd_matrix(rng, 4)).T + rng.normal(size=4)
    mu = X.mean(axis=0)
    Sigma = sample_covariance(X, mu)
    grad_mu, grad_Sigma = check_tuple(student.gaussian_loglik_grads(X, mu, Sigma), 2,
                                      "gaussian_loglik_grads(X, mu, Sigma)", ("grad_mu", "grad_Sigma"))
    scale = len(X) * np.abs(np.linalg.inv(Sigma)).max()
    check_array(grad_mu, np.zeros(4), "grad_mu at the maximum-likelihood (mu, Sigma)", rtol=0, atol=1e-8 * scale)
    check_array(grad_Sigma, np.zeros((4, 4)), "grad_Sigma at the maximum-likelihood (mu, Sigma), which must vanish",
                rtol=0, atol=1e-8 * scale, mistakes=_gauss_mistakes(X, mu, Sigma)[1])
    # Zeros alone prove nothing (a function that returns zeros passes): away from the maximum the
    # gradient must be the exact one (autograd; tolerance as in the small tests above).
    mu_off, Sigma_off = mu + rng.normal(scale=0.5, size=4), 1.3 * Sigma
    expected = _autograd(_gauss_loglik_torch(X), mu_off, Sigma_off)[1]
    _, grad_Sigma = check_tuple(student.gaussian_loglik_grads(X, mu_off, Sigma_off), 2,
                                "gaussian_loglik_grads(X, mu, Sigma)", ("grad_mu", "grad_Sigma"))
    check_array(grad_Sigma, expected, "grad_Sigma away from the maximum", **_gradient_tolerance(expected),
                mistakes=_gauss_mistakes(X, mu_off, Sigma_off)[1])


# ---------------------------------------------------------------------------------------------
# gmm_shared_var_mstep(x, R) -> (pi (K,), mu (K,), var)


def _gmm_case(rng, N, K):
    x = rng.normal(size=N) * 1.5 + rng.choice(rng.normal(scale=3, size=K), size=N)
    R = rng.dirichlet(np.full(K, 0.7), size=N)
    return x, R


def _gmm_optimum(x, R):
    """The maximiser of Q by BFGS on (softmax logits, means, log-variance), started at the data's moments."""
    K = R.shape[1]

    def negative_Q(theta):
        a, m, b = theta[:K], theta[K:2 * K], theta[-1]
        log_pi = a - np.logaddexp.reduce(a)
        return -np.sum(R * (log_pi - 0.5 * (np.log(2 * np.pi) + b) - 0.5 * (x[:, None] - m) ** 2 * np.exp(-b)))

    start = np.r_[np.zeros(K), np.full(K, x.mean()) + np.linspace(-1, 1, K), np.log(x.var())]
    result = optimize.minimize(negative_Q, start, method="BFGS", options={"gtol": 1e-10, "maxiter": 10_000})
    theta = result.x
    a = theta[:K]
    return np.exp(a - np.logaddexp.reduce(a)), theta[K:2 * K], np.exp(theta[-1])


def _gmm_mistakes(x, R):
    N = len(x)
    Nk = R.sum(axis=0)
    mu = R.T @ x / Nk
    var = np.sum(R * (x[:, None] - mu) ** 2) / N
    var_k = np.sum(R * (x[:, None] - mu) ** 2, axis=0) / Nk
    return ([("divide by K instead of N: pi_k = N_k / N, where N_k = sum_n r_nk", Nk / len(Nk))],
            [("use the unweighted mean of all points for every component", np.full(len(Nk), x.mean()))],
            [("average the K per-component variances: the shared variance weights each by N_k / N, "
              "it is one average over all N K weighted squared residuals", var_k.mean()),
             ("divide by N - 1 instead of N", var * N / (N - 1)),
             ("divide by N K instead of N (each point's responsibilities already sum to 1)", var / len(Nk))])


# Points: the small cases (which a numerical optimiser also passes) 1 each, the K = 60 case the most.
@pytest.mark.points(1)
@pytest.mark.parametrize("N, K", [(60, 3), (25, 2)])
def test_gmm_shared_var_mstep_maximises_Q(student, rng, N, K):
    x, R = _gmm_case(rng, N, K)
    pi_opt, mu_opt, var_opt = _gmm_optimum(x, R)
    pi, mu, var = check_tuple(student.gmm_shared_var_mstep(x, R), 3, "gmm_shared_var_mstep(x, R)", ("pi", "mu", "var"))
    hints = _gmm_mistakes(x, R)
    # BFGS with gtol 1e-10 on this smooth, well-scaled objective reaches ~1e-8; 1e-5 leaves room.
    what = f"(N={N}, K={K}), compared with scipy.optimize's maximiser of Q"
    check_array(pi, pi_opt, f"pi from gmm_shared_var_mstep {what}", rtol=1e-5, atol=1e-6, mistakes=hints[0])
    check_array(mu, mu_opt, f"mu from gmm_shared_var_mstep {what}", rtol=1e-5, atol=1e-5, mistakes=hints[1])
    check_array(var, var_opt, f"var from gmm_shared_var_mstep {what}", rtol=1e-5, atol=1e-8, mistakes=hints[2])


def _negative_Q_along(x, R, pi, mu, var):
    """-Q(pi + t a, mu + t b, var e^{t c}) as a function of t, for a direction (a, b, c) with sum(a) = 0."""
    def f(t, a, b, c):
        p, m, v = pi + t * a, mu + t * b, var * np.exp(t * c)
        return -np.sum(R * (np.log(p) - 0.5 * np.log(2 * np.pi * v) - 0.5 * (x[:, None] - m) ** 2 / v))
    return f


@pytest.mark.points(4)
def test_gmm_shared_var_mstep_large_K(student, rng):
    # Running a numerical optimiser on Q (as the page's self-check does) passes the small cases above.
    # With K = 60 components and N = 4000 points it cannot finish in the time limit (10 s): BFGS on
    # 121 parameters with a finite-difference gradient needs ~120 evaluations of Q (each ~5 ms) per
    # step and many steps, while the derived maximiser is a few weighted sums. Too large for the test's
    # own optimiser as well, so the test checks the definition of a maximiser instead: pi in the
    # simplex, and Q stationary along random feasible directions (central differences of Q, step
    # 1e-5; Q is concave in (pi, mu) and unimodal in v, so its stationary point is the maximiser).
    # At the maximiser the slope is ~1e-6 (rounding of Q ~ 1e4 over the step); the classic mistakes
    # give slopes of order 1 to N.
    N, K = 4000, 60
    x, R = _gmm_case(rng, N, K)
    pi, mu, var = check_tuple(student.gmm_shared_var_mstep(x, R), 3, "gmm_shared_var_mstep(x, R)", ("pi", "mu", "var"))
    pi, mu, var = (np.asarray(v, dtype=float) for v in (pi, mu, var))
    check(pi.shape == (K,) and mu.shape == (K,) and var.shape == () and np.all(pi > 0) and np.isfinite(var)
          and var > 0 and abs(pi.sum() - 1) < 1e-10 and np.all(np.isfinite(mu)),
          f"gmm_shared_var_mstep(x, R) with N={N}, K={K} must return pi of shape ({K},) with positive entries that "
          f"sum to 1, mu of shape ({K},) and a positive var.")
    f = _negative_Q_along(x, R, pi, mu, var)
    h = 1e-5
    for name, direction in [("pi", 0), ("mu", 1), ("var", 2)]:
        a = rng.normal(size=K) * pi if direction == 0 else np.zeros(K)
        a -= a.sum() * pi  # sum(a) = 0: stay in the simplex
        b = rng.normal(size=K) if direction == 1 else np.zeros(K)
        c = 1.0 if direction == 2 else 0.0
        slope = (f(h, a, b, c) - f(-h, a, b, c)) / (2 * h)
        check(abs(slope) < 1e-3, f"gmm_shared_var_mstep(x, R) with N={N}, K={K} (a derived maximiser takes "
              f"milliseconds here; a numerical optimiser does not finish in time): Q is not at its maximum along "
              f"{name}, it changes with slope {slope:.2g} there. Check your {name} against the stationarity "
              "condition of Q.")


@pytest.mark.points(1)
def test_gmm_shared_var_mstep_hard_labels(student, rng):
    # One-hot responsibilities: the complete-data ML, the pooled within-class variance, which the
    # test computes by brute force over the classes (1e-10: float64 sums).
    labels = np.r_[0, 1, 2, rng.integers(0, 3, size=37)]
    x = rng.normal(size=40) + 4 * labels
    R = np.eye(3)[labels]
    pooled = sum(np.sum((x[labels == k] - x[labels == k].mean()) ** 2) for k in range(3)) / 40
    _, _, var = check_tuple(student.gmm_shared_var_mstep(x, R), 3, "gmm_shared_var_mstep(x, R)", ("pi", "mu", "var"))
    check_array(var, pooled, "var from gmm_shared_var_mstep with one-hot responsibilities (the pooled within-class "
                "variance)", rtol=1e-10, atol=1e-12, mistakes=_gmm_mistakes(x, R)[2])


# ---------------------------------------------------------------------------------------------
# pca_min_error(X, K) -> float


def _pca_error_by_reconstruction(X, K):
    """Mean squared distance of each point to its reconstruction by scikit-learn's K-component PCA."""
    from sklearn.decomposition import PCA

    if K == 0:
        return np.mean(np.sum((X - X.mean(axis=0)) ** 2, axis=1))
    pca = PCA(n_components=K, svd_solver="full").fit(X)
    return np.mean(np.sum((X - pca.inverse_transform(pca.transform(X))) ** 2, axis=1))


def _pca_mistakes(X, K):
    N, d = X.shape
    Xc = X - X.mean(axis=0)
    lam = np.linalg.eigvalsh(Xc.T @ Xc / N)[::-1]
    raw = np.linalg.eigvalsh(X.T @ X / N)[::-1]
    return [("sum the K largest eigenvalues (the variance PCA keeps) instead of the d - K smallest (the variance it loses)",
             lam[:K].sum()),
            ("normalise the covariance by N - 1 (np.cov's default) instead of N", lam[K:].sum() * N / (N - 1)),
            ("forget to centre the data: the best affine subspace passes through the mean", raw[K:].sum()),
            ("sum the squared errors over the N points instead of averaging", N * lam[K:].sum())]


@pytest.mark.points(3)
@pytest.mark.parametrize("N, d, K", [(120, 6, 2), (40, 3, 1), (15, 8, 5)])
def test_pca_min_error_matches_reconstruction(student, rng, N, d, K):
    X = rng.normal(size=(N, d)) @ rng.normal(size=(d, d)) + 3 * rng.normal(size=d)
    expected = _pca_error_by_reconstruction(X, K)
    # Both sides are float64 sums of ~N d terms of size ~10: agreement to ~1e-12 relative; 1e-8.
    check_array(student.pca_min_error(X, K), expected, f"pca_min_error(X, K={K}) for N={N}, d={d}, compared with the "
                "error of scikit-learn's PCA reconstruction", rtol=1e-8, atol=1e-10, mistakes=_pca_mistakes(X, K))


@pytest.mark.points(1)
def test_pca_min_error_extreme_K(student, rng):
    # K = 0 keeps only the mean: the error is the total variance; K = d reconstructs exactly.
    X = rng.normal(size=(30, 4)) + 2
    check_array(student.pca_min_error(X, 0), _pca_error_by_reconstruction(X, 0),
                "pca_min_error(X, K=0), the mean squared distance to the mean", rtol=1e-8, atol=1e-10,
                mistakes=_pca_mistakes(X, 0))
    check_array(student.pca_min_error(X, 4), 0.0, "pca_min_error(X, K=d), where the subspace is all of R^d",
                rtol=0, atol=1e-10, mistakes=_pca_mistakes(X, 4))


# ---------------------------------------------------------------------------------------------
# ppca_sigma2(S, W) -> float


def _ppca_case(rng, d, K):
    """A covariance with K large eigenvalues and an orthonormal W tilted away from their span.

    The tilt shrinks like 1/sqrt(d), so W stays near the top eigenvectors at any d. Redrawn until
    the page's assumption holds with a margin: every eigenvalue of W^T S W exceeds 1.2 times the
    variance per dimension outside span(W). Without it the constraint BB^T >= 0 binds at the
    optimum and sigma^2 is another quantity (about 2% of plain draws at d = 5).
    """
    while True:
        U = linalg.qr(rng.normal(size=(d, d)))[0]
        lam = np.r_[rng.uniform(4, 8, size=K), rng.uniform(0.2, 1.2, size=d - K)]
        S = 0.5 * ((U * lam) @ U.T + ((U * lam) @ U.T).T)
        W = linalg.qr(U[:, :K] + 0.25 * np.sqrt(5 / d) * rng.normal(size=(d, K)), mode="economic")[0]
        inside = np.linalg.eigvalsh(W.T @ S @ W)
        if inside.min() > 1.2 * (np.trace(S) - inside.sum()) / (d - K):
            return S, W


def _ppca_optimum(S, W):
    """Maximise the likelihood over B (K x K) and log sigma^2 numerically, from B = I, sigma^2 = 1.

    L-BFGS with the exact gradient (torch's autograd of the same likelihood, float64): on these
    well-scaled problems it reaches sigma^2 to ~1e-8 relative in a few dozen iterations, in well
    under a second at d = 200, K = 20 (401 variables).
    """
    d, K = W.shape
    S_t, W_t, I_t = torch.tensor(S), torch.tensor(W), torch.eye(d, dtype=torch.float64)

    def negative_loglik(theta):
        theta = torch.tensor(theta, requires_grad=True)
        B = theta[:-1].reshape(K, K)
        C = W_t @ B @ B.T @ W_t.T + torch.exp(theta[-1]) * I_t
        value = 0.5 * (torch.linalg.slogdet(C)[1] + torch.trace(torch.linalg.solve(C, S_t)))
        value.backward()
        return value.item(), theta.grad.numpy().copy()

    start = np.r_[np.eye(K).ravel(), 0.0]
    result = optimize.minimize(negative_loglik, start, jac=True, method="L-BFGS-B",
                               options={"maxiter": 10_000, "ftol": 0.0, "gtol": 1e-12, "maxcor": 30})
    return np.exp(result.x[-1])


def _ppca_mistakes(S, W):
    d, K = W.shape
    outside = np.trace(S) - np.trace(W.T @ S @ W)
    lam = np.linalg.eigvalsh(S)
    return [("divide by d instead of d - K, the dimension of the complement of span(W)", outside / d),
            ("use chapter 5's mean of the d - K smallest eigenvalues of S: that is the answer for the best "
             "subspace, and W here is a given one", lam[: d - K].mean()),
            ("forget to divide the variance outside span(W) by d - K", outside)]


# Points: the small cases 1 each (a numerical maximisation of the likelihood over (B, log sigma^2),
# as in the page's self-check, also passes them), the d = 200 case the most: there B has 400 entries,
# and an optimiser with finite-difference gradients needs ~800 likelihoods of a 200 x 200 matrix per
# step and dozens of steps, well past the time limit (10 s), while the derived formula takes
# milliseconds. The test's own optimiser uses autograd's exact gradient instead (see _ppca_optimum).
@pytest.mark.points(1)
@pytest.mark.parametrize("d, K", [(5, 2), (4, 1)])
def test_ppca_sigma2_maximises_the_likelihood(student, rng, d, K):
    S, W = _ppca_case(rng, d, K)
    expected = _ppca_optimum(S, W)
    # L-BFGS reaches the optimum's sigma^2 to ~1e-8 relative on these small, well-scaled problems.
    check_array(student.ppca_sigma2(S, W), expected, f"ppca_sigma2(S, W) for d={d}, K={K}, compared with "
                "scipy.optimize's maximiser of the likelihood", rtol=1e-5, atol=1e-8, mistakes=_ppca_mistakes(S, W))


@pytest.mark.points(4)
def test_ppca_sigma2_large_d(student, rng):
    S, W = _ppca_case(rng, 200, 20)
    expected = _ppca_optimum(S, W)
    check_array(student.ppca_sigma2(S, W), expected, "ppca_sigma2(S, W) for d=200, K=20 (a derived formula takes "
                "milliseconds; maximising the likelihood numerically does not finish in time), compared with "
                "scipy.optimize's maximiser of the likelihood", rtol=1e-5, atol=1e-8, mistakes=_ppca_mistakes(S, W))


@pytest.mark.points(1)
def test_ppca_sigma2_principal_subspace(student, rng):
    # With W the top K eigenvectors, the answer is the PPCA maximum likelihood of chapter 5
    # (lgm.ppca_ml, itself tested against scikit-learn in tests/lgm); 1e-8 relative.
    d, K = 6, 2
    S, _ = _ppca_case(rng, d, K)
    W = np.linalg.eigh(S)[1][:, ::-1][:, :K]
    _, expected = lgm.ppca_ml(S, K)
    check_array(student.ppca_sigma2(S, W), expected, "ppca_sigma2(S, W) with W the top two eigenvectors of S",
                rtol=1e-8, atol=1e-12, mistakes=_ppca_mistakes(S, W))


# ---------------------------------------------------------------------------------------------
# estep_moments(X, mu, A, D) -> (means (N, K), second (N, K, K))


def _joint_conditioning(X, mu, A, D):
    """E[z | x] and Cov[z | x] by conditioning the (K + d)-dimensional joint Gaussian of (z, x)."""
    K = A.shape[1]
    cov = np.block([[np.eye(K), A.T], [A, A @ A.T + np.diag(D)]])
    gain = np.linalg.solve(cov[K:, K:], cov[K:, :K]).T  # Sigma_zx Sigma_xx^{-1}, (K, d)
    return (X - mu) @ gain.T, np.eye(K) - gain @ cov[K:, :K]


def _estep_mistakes(X, mu, A, D):
    means, cov = _joint_conditioning(X, mu, A, D)
    outer = lambda M: M[:, :, None] * M[:, None, :]
    uncentred, _ = _joint_conditioning(X, np.zeros_like(mu), A, D)
    mean_hints = [("forget to subtract the mean mu from x before conditioning", uncentred)]
    second_hints = [("forget the posterior covariance in E[z z^T | x] = Cov[z | x] + E[z | x] E[z | x]^T",
                     outer(means)),
                    ("use the prior covariance I instead of the posterior covariance", outer(means) + np.eye(len(cov))),
                    ("forget to subtract the mean mu from x before conditioning", outer(uncentred) + cov)]
    return mean_hints, second_hints


@pytest.mark.points(3)
@pytest.mark.parametrize("N, d, K", [(10, 5, 2), (4, 3, 3), (6, 7, 1)])
def test_estep_moments_match_joint_conditioning(student, rng, N, d, K):
    A, D, mu = rng.normal(size=(d, K)), rng.uniform(0.2, 1.5, size=d), rng.normal(size=d)
    X = mu + rng.normal(size=(N, K)) @ A.T + rng.normal(size=(N, d)) * np.sqrt(D)
    means, cov = _joint_conditioning(X, mu, A, D)
    got_means, got_second = check_tuple(student.estep_moments(X, mu, A, D), 2, "estep_moments(X, mu, A, D)",
                                        ("means", "second"))
    mean_hints, second_hints = _estep_mistakes(X, mu, A, D)
    # Exact linear algebra on well-conditioned matrices: 1e-8 relative.
    what = f"(N={N}, d={d}, K={K}), compared with conditioning the joint Gaussian of (z, x)"
    check_array(got_means, means, f"means from estep_moments {what}", rtol=1e-8, atol=1e-10, mistakes=mean_hints)
    check_array(got_second, cov + means[:, :, None] * means[:, None, :], f"second from estep_moments {what}",
                rtol=1e-8, atol=1e-10, mistakes=second_hints)


# ---------------------------------------------------------------------------------------------
# lgm_loglik_grads(X, A, D) -> (grad_A (d, K), grad_D (d,))


def _lgm_loglik(X, A, D):
    return stats.multivariate_normal(np.zeros(X.shape[1]), A @ A.T + np.diag(D)).logpdf(X).sum()


def _lgm_case(rng, N, d, K):
    A_true, D_true = rng.normal(size=(d, K)), rng.uniform(0.3, 1.0, size=d)
    X = rng.normal(size=(N, K)) @ A_true.T + rng.normal(size=(N, d)) * np.sqrt(D_true)
    return X, rng.normal(size=(d, K)), rng.uniform(0.5, 2.0, size=d)  # the gradient at a point away from the truth


def _lgm_mistakes(X, A, D):
    N = len(X)
    Cinv = np.linalg.inv(A @ A.T + np.diag(D))
    S = X.T @ X / N
    G = Cinv @ S @ Cinv - Cinv
    A_hints = [("forget that A appears twice in C = A A^T: d(A A^T) = dA A^T + A dA^T", 0.5 * N * G @ A),
               ("leave out a factor C^{-1}: d tr(C^{-1} S) = -tr(C^{-1} dC C^{-1} S) has one on each side of dC",
                N * (S @ Cinv @ A - A)),
               ("forget the N (the gradient of the mean log-likelihood, not of the sum)", G @ A)]
    D_hints = [("forget the factor 1/2 of -1/2 (log|C| + tr(C^{-1} S))", N * np.diag(G)),
               ("forget the N (the gradient of the mean log-likelihood, not of the sum)", 0.5 * np.diag(G)),
               ("forget the minus sign in d(C^{-1}) = -C^{-1} dC C^{-1}", -0.5 * N * np.diag(Cinv @ S @ Cinv + Cinv))]
    return A_hints, D_hints


# Points: the small cases (which finite differences also pass) 1 each, the d = 200 case the most.
@pytest.mark.points(1)
@pytest.mark.parametrize("N, d, K", [(50, 5, 2), (20, 3, 1)])
def test_lgm_loglik_grads_A(student, rng, N, d, K):
    X, A, D = _lgm_case(rng, N, d, K)
    expected = _numerical_gradient(lambda M: _lgm_loglik(X, M, D), A)
    grad_A, _ = check_tuple(student.lgm_loglik_grads(X, A, D), 2, "lgm_loglik_grads(X, A, D)", ("grad_A", "grad_D"))
    check_array(grad_A, expected, f"grad_A from lgm_loglik_grads (N={N}, d={d}, K={K}), compared with finite "
                "differences of the log-likelihood", **_gradient_tolerance(expected), mistakes=_lgm_mistakes(X, A, D)[0])


@pytest.mark.points(1)
@pytest.mark.parametrize("N, d, K", [(50, 5, 2), (20, 3, 1)])
def test_lgm_loglik_grads_D(student, rng, N, d, K):
    X, A, D = _lgm_case(rng, N, d, K)
    expected = _numerical_gradient(lambda v: _lgm_loglik(X, A, v), D)
    _, grad_D = check_tuple(student.lgm_loglik_grads(X, A, D), 2, "lgm_loglik_grads(X, A, D)", ("grad_A", "grad_D"))
    check_array(grad_D, expected, f"grad_D from lgm_loglik_grads (N={N}, d={d}, K={K}), compared with finite "
                "differences of the log-likelihood", **_gradient_tolerance(expected), mistakes=_lgm_mistakes(X, A, D)[1])


@pytest.mark.points(6)
def test_lgm_loglik_grads_large_d(student, rng):
    # d = 200, K = 20: finite differences in the 4000 entries of A cannot finish in time (see
    # BANNED_MODULES). Exact formula vs autograd: rounding of 200 x 200 solves, ~1e-11; 1e-8.
    X, A, D = _lgm_case(rng, 1000, 200, 20)
    Xt = torch.as_tensor(X)

    def loglik(A, D):
        C = A @ A.T + torch.diag(D)
        return -0.5 * (len(X) * (X.shape[1] * np.log(2 * np.pi) + torch.linalg.slogdet(C)[1])
                       + torch.sum(Xt * torch.linalg.solve(C, Xt.T).T))

    ref_A, ref_D = _autograd(loglik, A, D)
    grad_A, grad_D = check_tuple(student.lgm_loglik_grads(X, A, D), 2, "lgm_loglik_grads(X, A, D)",
                                 ("grad_A", "grad_D"))
    A_hints, D_hints = _lgm_mistakes(X, A, D)
    check_array(grad_A, ref_A, "grad_A from lgm_loglik_grads with N=1000, d=200, K=20 (a derived formula takes "
                "milliseconds; differentiating numerically entry by entry does not finish in time), compared with "
                "autograd", rtol=1e-8, atol=1e-8 * np.abs(ref_A).max(), mistakes=A_hints)
    check_array(grad_D, ref_D, "grad_D from lgm_loglik_grads with N=1000, d=200, K=20, compared with autograd",
                rtol=1e-8, atol=1e-8 * np.abs(ref_D).max(), mistakes=D_hints)


# ---------------------------------------------------------------------------------------------
# mcem_isotropic_mstep(X, Z) -> (A (d, K), sigma2)


def _mcem_reference(X, Z):
    """A by least squares on the N J pairs; sigma^2 by maximising the completed log-likelihood at that A."""
    J, N, K = Z.shape
    Zs, Xs = Z.reshape(J * N, K), np.tile(X, (J, 1))
    A = np.linalg.lstsq(Zs, Xs, rcond=None)[0].T
    residual = Xs - Zs @ A.T
    # The completed log-likelihood in s = log sigma^2, maximised by a bounded scalar search (xatol 1e-12).
    f = lambda s: -np.sum(stats.norm(0, np.exp(s / 2)).logpdf(residual))
    s = optimize.minimize_scalar(f, bounds=(-20, 20), method="bounded", options={"xatol": 1e-12}).x
    return A, np.exp(s)


def _mcem_mistakes(X, Z):
    J, N, K = Z.shape
    A, sigma2 = _mcem_reference(X, Z)
    Zbar = Z.mean(axis=0)
    A_avg = np.linalg.lstsq(Zbar, X, rcond=None)[0].T
    A_hints = [("average the J draws of each row before fitting: the M-step fits all N J pairs (x_n, z_nj)", A_avg)]
    s_hints = [("divide by N d instead of N J d (the sum runs over the N J completed pairs)", J * sigma2),
               ("divide by N J instead of N J d: sigma^2 is shared by the d coordinates of every pair", X.shape[1] * sigma2),
               ("divide by N instead of N J d", J * X.shape[1] * sigma2)]
    return A_hints, s_hints


# A scalar search for sigma^2 at the least-squares A (as the reference does) also passes, at any size:
# A by least squares on the N J pairs is the derivation's content; the exercise's point is counting.
@pytest.mark.points(3)
@pytest.mark.parametrize("J, N, d, K", [(4, 30, 5, 2), (1, 20, 3, 1), (10, 8, 4, 3)])
def test_mcem_isotropic_mstep_maximises_completed_loglik(student, rng, J, N, d, K):
    X, Z = rng.normal(size=(N, d)) * 2, rng.normal(size=(J, N, K))
    A, sigma2 = _mcem_reference(X, Z)
    got_A, got_s = check_tuple(student.mcem_isotropic_mstep(X, Z), 2, "mcem_isotropic_mstep(X, Z)", ("A", "sigma2"))
    A_hints, s_hints = _mcem_mistakes(X, Z)
    what = f"(J={J}, N={N}, d={d}, K={K})"
    check_array(got_A, A, f"A from mcem_isotropic_mstep {what}, compared with least squares on the N J pairs",
                rtol=1e-8, atol=1e-10, mistakes=A_hints)
    # sigma^2 from a scalar search: rounding in the flat log-likelihood near its maximum limits it to
    # ~1e-8 relative; 1e-6.
    check_array(got_s, sigma2, f"sigma2 from mcem_isotropic_mstep {what}, compared with scipy.optimize's maximiser",
                rtol=1e-6, atol=1e-12, mistakes=s_hints)
