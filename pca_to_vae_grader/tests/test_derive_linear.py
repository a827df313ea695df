"""Autograder tests of book/exercises/derive_linear.md (chapters 2-7): quantities the student derives.

The page states each quantity and asks for a derivation, not a transcription, so no test compares
with a formula the page gives. Every expected value comes from an independent computation:
autograd of the log-likelihood in float64 (gradients), scipy.optimize run on the objective itself and
refined by Newton's method, or autograd's gradient of the objective at the answer (maximisers),
scikit-learn's PCA reconstruction (the PCA error), brute-force conditioning of the (K + d)-dimensional
joint Gaussian (posterior moments), least squares (the M-step's A) and the root of autograd's
derivative (its sigma^2). The inputs are drawn afresh on every run (``rng`` below, from the run's
seed; ``--seed`` reproduces a run), so a value copied from a run or a formula fitted to a few inputs
does not pass. Tolerances are stated at each test.
"""
import numpy as np
import pytest
import torch
from scipy import linalg, optimize, stats

import lgm
from pca_to_vae_grader import inputs
from pca_to_vae_grader.compare import as_array, as_number, check, check_array, check_tuple, hint_on_failure
from lgm.em import sample_covariance
from lgm.linear_gaussian import posterior

# Automatic or symbolic differentiation in the submission would do the derivation: the grader refuses
# these imports on this page (pca_to_vae_grader.sandboxed.guard, BANNED_MODULES), with a message that says why. Because the
# page bans modules, the grader also reads the submission's source before it runs (pca_to_vae_grader.audit) and
# refuses, in a graded function and in every helper it reaches, complex numbers (the complex-step trick),
# optimisers (scipy.optimize) and scikit-learn.
BANNED_MODULES = ("torch", "sympy", "jax", "autograd", "sklearn", "numdifftools", "mpmath")

# What the audit cannot see, a numerical method written by hand (the page itself gives a finite-difference
# helper for the self-checks), the tests refuse in two ways:
# - precision: every reference is exact (autograd of the log-likelihood in float64; a maximiser checked by
#   autograd's gradient at the answer, or polished by Newton's method with autograd's Hessian), and the
#   tolerance is 1e-11 of the value's scale (EXACT). A derived formula meets it with a wide margin (its
#   rounding is ~1e-15 on these well-conditioned inputs); a central difference with step h is off by
#   ~eps |f| / h + h^2 |f^(3)| / 6, 1e-10 of the scale at best, and a maximiser found with such gradients
#   no closer.
# - size: each gradient, maximiser and E-step exercise has a case that a derived formula computes in
#   milliseconds and a numerical method cannot finish within the time limit (10 s): a derivative by
#   differences costs one log-likelihood per entry of a 300 x 300 or 300 x 30 matrix (2 to 20 ms each, so
#   minutes), an optimiser hundreds of objective values per step, and conditioning the joint Gaussian
#   of (z, x) a d x d matrix that does not fit in memory at d = 30000.
# tests/exercises/test_derivations.py grades a submission that derives nothing, with library tools and with
# hand-written ones: it must earn at most 10% of the page.
EXACT = 1e-11


def _exact(expected, rtol=EXACT):
    """The tolerance for an exact formula: ``rtol`` relative to each entry and to the largest one."""
    return dict(rtol=rtol, atol=rtol * max(1.0, float(np.abs(expected).max(initial=0.0))))


def _autograd(f, *arrays):
    """Gradients of the scalar torch function f with respect to each numpy argument (float64)."""
    tensors = [torch.tensor(np.asarray(a, dtype=float), dtype=torch.float64, requires_grad=True) for a in arrays]
    f(*tensors).backward()
    return [t.grad.numpy() for t in tensors]


# ---------------------------------------------------------------------------------------------
# gaussian_loglik_grads(X, mu, Sigma) -> (grad_mu (d,), grad_Sigma (d, d))


def _gauss_case(rng, N, d):
    X = rng.normal(size=(N, d)) @ rng.normal(size=(d, d)) + rng.normal(size=d)
    return X, rng.normal(size=d), inputs.spd_matrix(rng, d)


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


# Points: the small cases 1 each, the d = 300 case the most.
@pytest.mark.points(1)
@pytest.mark.parametrize("N, d", [(20, 3), (7, 2)])
def test_gaussian_loglik_grads_mu(student, rng, N, d):
    X, mu, Sigma = _gauss_case(rng, N, d)
    expected = _autograd(_gauss_loglik_torch(X), mu, Sigma)[0]
    grad_mu, _ = check_tuple(student.gaussian_loglik_grads(X, mu, Sigma), 2, "gaussian_loglik_grads(X, mu, Sigma)",
                             ("grad_mu", "grad_Sigma"))
    check_array(grad_mu, expected, f"grad_mu from gaussian_loglik_grads (N={N}, d={d}), compared with autograd of "
                "the log-likelihood", **_exact(expected), mistakes=_gauss_mistakes(X, mu, Sigma)[0])


@pytest.mark.points(1)
@pytest.mark.parametrize("N, d", [(20, 3), (7, 2)])
def test_gaussian_loglik_grads_Sigma(student, rng, N, d):
    X, mu, Sigma = _gauss_case(rng, N, d)
    loglik = _gauss_loglik_torch(X)
    assert np.isclose(loglik(torch.as_tensor(mu), torch.as_tensor(Sigma)).item(),
                      stats.multivariate_normal(mu, Sigma).logpdf(X).sum())
    expected = _autograd(loglik, mu, Sigma)[1]
    _, grad_Sigma = check_tuple(student.gaussian_loglik_grads(X, mu, Sigma), 2,
                                "gaussian_loglik_grads(X, mu, Sigma)", ("grad_mu", "grad_Sigma"))
    check_array(grad_Sigma, expected, f"grad_Sigma from gaussian_loglik_grads (N={N}, d={d}), compared with autograd "
                "of the log-likelihood in each entry of Sigma", **_exact(expected),
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
    # d = 300: differences of the log-likelihood (90000 entries of Sigma) cannot finish in time (see
    # EXACT). Exact formula vs autograd: rounding of 300 x 300 solves with condition ~6, ~1e-13; 1e-10.
    X, mu, Sigma = _gauss_case(rng, 600, 300)
    ref_mu, ref_Sigma = _autograd(_gauss_loglik_torch(X), mu, Sigma)
    grad_mu, grad_Sigma = check_tuple(student.gaussian_loglik_grads(X, mu, Sigma), 2,
                                      "gaussian_loglik_grads(X, mu, Sigma)", ("grad_mu", "grad_Sigma"))
    mu_hints, Sigma_hints = _gauss_mistakes(X, mu, Sigma)
    check_array(grad_mu, ref_mu, "grad_mu from gaussian_loglik_grads with N=600, d=300, compared with autograd",
                **_exact(ref_mu, 1e-10), mistakes=mu_hints)
    check_array(grad_Sigma, ref_Sigma, "grad_Sigma from gaussian_loglik_grads with N=600, d=300 (a derived formula "
                "takes milliseconds; differentiating numerically entry by entry does not finish in time), compared "
                "with autograd", **_exact(ref_Sigma, 1e-10), mistakes=Sigma_hints)


@pytest.mark.points(1)
def test_gaussian_loglik_grads_vanish_at_the_mle(student, rng):
    # At the sample mean and the sample covariance (normalised by N) the likelihood is maximal:
    # both gradients are zero up to rounding (1e-11 of the scale N * ||Sigma^{-1}||: a formula's rounding is
    # ~1e-15 of it, a finite difference's ~1e-9). The data's
    # covariance has eigenvalues in [0.5, 3], so Sigma is well conditioned (a product of two normal
    # matrices, as before, gave condition numbers up to ~1e6 in about 8% of draws).
    X = rng.normal(size=(50, 4)) @ np.linalg.cholesky(inputs.spd_matrix(rng, 4)).T + rng.normal(size=4)
    mu = X.mean(axis=0)
    Sigma = sample_covariance(X, mu)
    grad_mu, grad_Sigma = check_tuple(student.gaussian_loglik_grads(X, mu, Sigma), 2,
                                      "gaussian_loglik_grads(X, mu, Sigma)", ("grad_mu", "grad_Sigma"))
    scale = len(X) * np.abs(np.linalg.inv(Sigma)).max()
    check_array(grad_mu, np.zeros(4), "grad_mu at the maximum-likelihood (mu, Sigma)", rtol=0, atol=EXACT * scale)
    check_array(grad_Sigma, np.zeros((4, 4)), "grad_Sigma at the maximum-likelihood (mu, Sigma), which must vanish",
                rtol=0, atol=EXACT * scale, mistakes=_gauss_mistakes(X, mu, Sigma)[1])
    # Zeros alone prove nothing (a function that returns zeros passes): away from the maximum the
    # gradient must be the exact one (autograd; tolerance as in the small tests above).
    mu_off, Sigma_off = mu + rng.normal(scale=0.5, size=4), 1.3 * Sigma
    expected = _autograd(_gauss_loglik_torch(X), mu_off, Sigma_off)[1]
    _, grad_Sigma = check_tuple(student.gaussian_loglik_grads(X, mu_off, Sigma_off), 2,
                                "gaussian_loglik_grads(X, mu, Sigma)", ("grad_mu", "grad_Sigma"))
    check_array(grad_Sigma, expected, "grad_Sigma away from the maximum", **_exact(expected),
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


def _check_stationary(x, R, pi, mu, var, what):
    """Q is at its maximum: autograd's exact gradient of Q vanishes in mu and v, and is constant in pi.

    Q is concave in (pi, mu) and unimodal in v, so its stationary point in the simplex is the
    maximiser; at an interior maximiser the gradient in pi is the Lagrange multiplier times (1, ..., 1).
    Each gradient is compared with the size of the terms it sums (so ~1e-16 is rounding): a derived
    maximiser leaves ~1e-15 of that scale, one found numerically (with differences or an optimiser) ~1e-9.
    """
    pi, mu = as_array(pi, f"pi from {what}"), as_array(mu, f"mu from {what}")
    check(pi.shape == mu.shape == (R.shape[1],) and np.all(pi > 0) and np.all(np.isfinite(mu)) and var > 0,
          f"{what} must return pi and mu of shape ({R.shape[1]},), pi positive, and a positive var.")
    p, m, v = (_t(a).requires_grad_() for a in (pi, mu, var))
    x_t, R_t = _t(x)[:, None], _t(R)
    Q = torch.sum(R_t * (torch.log(p) - 0.5 * torch.log(2 * np.pi * v) - 0.5 * (x_t - m) ** 2 / v))
    Q.backward()
    with torch.no_grad():
        scales = {"pi": (R_t / p).sum(0).max().item(), "mu": (R_t * torch.abs(x_t - m)).sum(0).max().item() / v.item(),
                  "var": torch.sum(R_t * (1 + (x_t - m) ** 2 / v)).item() / (2 * v.item())}
    slopes = {"pi": np.ptp(p.grad.numpy()), "mu": np.abs(m.grad.numpy()).max(), "var": abs(v.grad.item())}
    for name, slope in slopes.items():
        check(slope <= EXACT * scales[name], f"{what}: Q is not at its maximum along {name}: autograd's gradient of "
              f"Q there is {slope / scales[name]:.1e} of the size of its terms (a derived maximiser leaves rounding, "
              f"about 1e-15; at most {EXACT:g} is accepted). Check your {name} against the stationarity condition of Q: a "
              "maximiser found numerically, with differences or an optimiser, is not accurate enough; derive it.")


def _t(a):
    return torch.tensor(np.asarray(a, dtype=float), dtype=torch.float64)


# Points: the small cases 1 each, the large case the most.
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
    var = check_array(var, var_opt, f"var from gmm_shared_var_mstep {what}", rtol=1e-5, atol=1e-8, mistakes=hints[2])
    _check_stationary(x, R, pi, mu, var, f"gmm_shared_var_mstep(x, R) with N={N}, K={K}")


@pytest.mark.points(4)
def test_gmm_shared_var_mstep_large_K(student, rng):
    # A numerical optimiser on Q (as the page's self-check runs) meets the small cases' 1e-5 but not their
    # stationarity check. Here it cannot finish either: with K = 150 components and N = 8000 points, Q has
    # 301 parameters and one evaluation of it takes tens of milliseconds (64 ms measured on a busy 2-core
    # machine), so BFGS with difference gradients (~600 evaluations) needs ~40 s per step, and an optimiser
    # run one component at a time (which finished the former K = 60, N = 4000 case in about 1.2 s) ~10
    # evaluations per component, over a minute per sweep; the derived maximiser is a few weighted sums. Too
    # large for the test's own optimiser too, so the test checks the definition of a maximiser (see
    # _check_stationary) with autograd's exact gradient.
    N, K = 8000, 150
    x, R = _gmm_case(rng, N, K)
    pi, mu, var = check_tuple(student.gmm_shared_var_mstep(x, R), 3, "gmm_shared_var_mstep(x, R)", ("pi", "mu", "var"))
    what = f"gmm_shared_var_mstep(x, R) with N={N}, K={K}"
    pi, mu, var = as_array(pi, f"pi from {what}"), as_array(mu, f"mu from {what}"), as_number(var, f"var from {what}")
    check(pi.shape == (K,) and mu.shape == (K,) and np.all(pi > 0) and np.isfinite(var) and var > 0
          and abs(pi.sum() - 1) < 1e-10 and np.all(np.isfinite(mu)),
          f"{what} must return pi of shape ({K},) with positive entries that sum to 1, mu of shape ({K},) and a "
          "positive var.")
    _check_stationary(x, R, pi, mu, var, f"{what} (a derived maximiser takes milliseconds here; a numerical "
                      "optimiser does not finish in time)")


@pytest.mark.points(1)
def test_gmm_shared_var_mstep_hard_labels(student, rng):
    # One-hot responsibilities: the complete-data ML, the pooled within-class variance, which the
    # test computes by brute force over the classes (EXACT: float64 sums agree to ~1e-15).
    labels = np.r_[0, 1, 2, rng.integers(0, 3, size=37)]
    x = rng.normal(size=40) + 4 * labels
    R = np.eye(3)[labels]
    pooled = sum(np.sum((x[labels == k] - x[labels == k].mean()) ** 2) for k in range(3)) / 40
    pi, mu, var = check_tuple(student.gmm_shared_var_mstep(x, R), 3, "gmm_shared_var_mstep(x, R)", ("pi", "mu", "var"))
    var = check_array(var, pooled, "var from gmm_shared_var_mstep with one-hot responsibilities (the pooled "
                      "within-class variance)", rtol=EXACT, atol=1e-14, mistakes=_gmm_mistakes(x, R)[2])
    _check_stationary(x, R, pi, mu, var, "gmm_shared_var_mstep(x, R) with one-hot responsibilities")


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


def _ppca_optimum(S, W, polish=False):
    """Maximise the likelihood over B (K x K) and log sigma^2 numerically, from B = I, sigma^2 = 1.

    L-BFGS with the exact gradient (torch's autograd of the same likelihood, float64): on these
    well-scaled problems it reaches sigma^2 to ~1e-8 relative in a few dozen iterations, in well
    under a second at d = 200, K = 20 (401 variables). With ``polish`` (small K), Newton steps with
    autograd's exact Hessian follow (least squares: the likelihood does not change when B turns into
    B Q for an orthogonal Q, so the Hessian is singular along those directions); Newton converges
    quadratically, to ~1e-15 relative.
    """
    d, K = W.shape
    S_t, W_t, I_t = torch.tensor(S), torch.tensor(W), torch.eye(d, dtype=torch.float64)

    def value(theta):
        B = theta[:-1].reshape(K, K)
        C = W_t @ B @ B.T @ W_t.T + torch.exp(theta[-1]) * I_t
        return 0.5 * (torch.linalg.slogdet(C)[1] + torch.trace(torch.linalg.solve(C, S_t)))

    def negative_loglik(theta):
        theta = torch.tensor(theta, requires_grad=True)
        f = value(theta)
        f.backward()
        return f.item(), theta.grad.numpy().copy()

    start = np.r_[np.eye(K).ravel(), 0.0]
    theta = optimize.minimize(negative_loglik, start, jac=True, method="L-BFGS-B",
                              options={"maxiter": 10_000, "ftol": 0.0, "gtol": 1e-12, "maxcor": 30}).x
    for _ in range(6 if polish else 0):
        hessian = torch.autograd.functional.hessian(value, torch.tensor(theta)).numpy()
        theta = theta - np.linalg.lstsq(hessian, negative_loglik(theta)[1], rcond=1e-10)[0]
    return np.exp(theta[-1])


def _ppca_mistakes(S, W):
    d, K = W.shape
    outside = np.trace(S) - np.trace(W.T @ S @ W)
    lam = np.linalg.eigvalsh(S)
    return [("divide by d instead of d - K, the dimension of the complement of span(W)", outside / d),
            ("use chapter 5's mean of the d - K smallest eigenvalues of S: that is the answer for the best "
             "subspace, and W here is a given one", lam[: d - K].mean()),
            ("forget to divide the variance outside span(W) by d - K", outside)]


# Points: the small cases 1 each, the d = 200 case the most: there B has 400 entries,
# and an optimiser with finite-difference gradients needs ~800 likelihoods of a 200 x 200 matrix per
# step and dozens of steps, well past the time limit (10 s), while the derived formula takes
# milliseconds. The test's own optimiser uses autograd's exact gradient instead (see _ppca_optimum).
@pytest.mark.points(1)
@pytest.mark.parametrize("d, K", [(5, 2), (4, 1)])
def test_ppca_sigma2_maximises_the_likelihood(student, rng, d, K):
    S, W = _ppca_case(rng, d, K)
    expected = _ppca_optimum(S, W, polish=True)
    # Newton's polish reaches the optimum's sigma^2 to ~1e-15 relative; a maximiser found numerically
    # (difference gradients) stops near 1e-9, a derived formula's rounding is ~1e-15.
    check_array(student.ppca_sigma2(S, W), expected, f"ppca_sigma2(S, W) for d={d}, K={K}, compared with "
                "the maximiser of the likelihood (scipy.optimize, then Newton's method with autograd's Hessian)",
                rtol=EXACT, atol=1e-14, mistakes=_ppca_mistakes(S, W))


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
    # (lgm.ppca_ml, itself tested against scikit-learn in tests/lgm); EXACT relative.
    d, K = 6, 2
    S, _ = _ppca_case(rng, d, K)
    W = np.linalg.eigh(S)[1][:, ::-1][:, :K]
    _, expected = lgm.ppca_ml(S, K)
    check_array(student.ppca_sigma2(S, W), expected, "ppca_sigma2(S, W) with W the top two eigenvectors of S",
                rtol=EXACT, atol=1e-14, mistakes=_ppca_mistakes(S, W))


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


# Points: the small cases 1 each (conditioning the joint Gaussian as the test does, with a d x d matrix,
# passes them: that is half the derivation), the d = 30000 case, which needs the K x K form, the most.
@pytest.mark.points(1)
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


@pytest.mark.points(6)
def test_estep_moments_large_d_needs_the_K_by_K_form(student, rng):
    # d = 30000: the covariance of x (d x d) would take 7.2 GB, more than the worker's memory (6 GiB), and a
    # d x d solve hours; the K x K form costs O(N d K + d K^2). The reference is the package's posterior in
    # that form (lgm.linear_gaussian.posterior, tested against the joint conditioning in tests/lgm).
    N, d, K = 4, 30_000, 3
    A, D, mu = rng.normal(size=(d, K)) / np.sqrt(d), rng.uniform(0.2, 1.5, size=d), rng.normal(size=d)
    X = mu + rng.normal(size=(N, K)) @ A.T + rng.normal(size=(N, d)) * np.sqrt(D)
    means, cov = posterior(X - mu, A, D)
    with hint_on_failure(("MemoryError", "Time limit"),
                         "A d x d matrix (the covariance of x, or its inverse) takes 7.2 GB at d = 30000, more than "
                         "the grader's memory, and hours to solve: turn the posterior into the K x K form with the "
                         "Woodbury identity, so that only K x K matrices are inverted and nothing d x d is formed (D is "
                         "diagonal: divide by it)."):
        got_means, got_second = check_tuple(student.estep_moments(X, mu, A, D), 2, "estep_moments(X, mu, A, D)",
                                            ("means", "second"))
    what = f"(N={N}, d={d}, K={K}), compared with the posterior in its K x K form"
    # K x K algebra on well-conditioned matrices: 1e-8 relative.
    check_array(got_means, means, f"means from estep_moments {what}", rtol=1e-8, atol=1e-10)
    check_array(got_second, cov + means[:, :, None] * means[:, None, :], f"second from estep_moments {what}",
                rtol=1e-8, atol=1e-10)


# ---------------------------------------------------------------------------------------------
# lgm_loglik_grads(X, A, D) -> (grad_A (d, K), grad_D (d,))


def _lgm_loglik_torch(X):
    """sum_n log N(x_n; 0, A A^T + diag(D)) as a torch function of (A, D)."""
    Xt = torch.as_tensor(X)

    def loglik(A, D):
        C = A @ A.T + torch.diag(D)
        return -0.5 * (len(X) * (X.shape[1] * np.log(2 * np.pi) + torch.linalg.slogdet(C)[1])
                       + torch.sum(Xt * torch.linalg.solve(C, Xt.T).T))

    return loglik


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


# Points: the small cases 1 each, the d = 300 case the most.
@pytest.mark.points(1)
@pytest.mark.parametrize("N, d, K", [(50, 5, 2), (20, 3, 1)])
def test_lgm_loglik_grads_A(student, rng, N, d, K):
    X, A, D = _lgm_case(rng, N, d, K)
    loglik = _lgm_loglik_torch(X)
    assert np.isclose(loglik(torch.as_tensor(A), torch.as_tensor(D)).item(),
                      stats.multivariate_normal(np.zeros(d), A @ A.T + np.diag(D)).logpdf(X).sum())
    expected = _autograd(loglik, A, D)[0]
    grad_A, _ = check_tuple(student.lgm_loglik_grads(X, A, D), 2, "lgm_loglik_grads(X, A, D)", ("grad_A", "grad_D"))
    check_array(grad_A, expected, f"grad_A from lgm_loglik_grads (N={N}, d={d}, K={K}), compared with autograd of "
                "the log-likelihood", **_exact(expected), mistakes=_lgm_mistakes(X, A, D)[0])


@pytest.mark.points(1)
@pytest.mark.parametrize("N, d, K", [(50, 5, 2), (20, 3, 1)])
def test_lgm_loglik_grads_D(student, rng, N, d, K):
    X, A, D = _lgm_case(rng, N, d, K)
    expected = _autograd(_lgm_loglik_torch(X), A, D)[1]
    _, grad_D = check_tuple(student.lgm_loglik_grads(X, A, D), 2, "lgm_loglik_grads(X, A, D)", ("grad_A", "grad_D"))
    check_array(grad_D, expected, f"grad_D from lgm_loglik_grads (N={N}, d={d}, K={K}), compared with autograd of "
                "the log-likelihood", **_exact(expected), mistakes=_lgm_mistakes(X, A, D)[1])


@pytest.mark.points(6)
def test_lgm_loglik_grads_large_d(student, rng):
    # d = 300, K = 30: differences in the 9000 entries of A cannot finish in time (see EXACT). Exact
    # formula vs autograd: rounding of 300 x 300 solves, ~1e-12; 1e-10.
    X, A, D = _lgm_case(rng, 1000, 300, 30)
    ref_A, ref_D = _autograd(_lgm_loglik_torch(X), A, D)
    grad_A, grad_D = check_tuple(student.lgm_loglik_grads(X, A, D), 2, "lgm_loglik_grads(X, A, D)",
                                 ("grad_A", "grad_D"))
    A_hints, D_hints = _lgm_mistakes(X, A, D)
    check_array(grad_A, ref_A, "grad_A from lgm_loglik_grads with N=1000, d=300, K=30 (a derived formula takes "
                "milliseconds; differentiating numerically entry by entry does not finish in time), compared with "
                "autograd", **_exact(ref_A, 1e-10), mistakes=A_hints)
    check_array(grad_D, ref_D, "grad_D from lgm_loglik_grads with N=1000, d=300, K=30, compared with autograd",
                **_exact(ref_D, 1e-10), mistakes=D_hints)


# ---------------------------------------------------------------------------------------------
# mcem_isotropic_mstep(X, Z) -> (A (d, K), sigma2)


def _mcem_reference(X, Z):
    """A by least squares on the N J pairs; sigma^2 maximises the completed log-likelihood at that A.

    The maximiser in s = log sigma^2 is the root of the log-likelihood's derivative, taken exactly by
    autograd (torch.distributions.Normal) and found by Brent's method to 1e-15 in s: the root of an
    exact derivative is exact to rounding, where a search on the values of the flat log-likelihood
    stops near 1e-8.
    """
    J, N, K = Z.shape
    Zs, Xs = Z.reshape(J * N, K), np.tile(X, (J, 1))
    A = np.linalg.lstsq(Zs, Xs, rcond=None)[0].T
    residual = torch.as_tensor(Xs - Zs @ A.T)

    def slope(s):
        s = torch.tensor(s, dtype=torch.float64, requires_grad=True)
        torch.distributions.Normal(0.0, torch.exp(s / 2)).log_prob(residual).sum().backward()
        return s.grad.item()

    return A, np.exp(optimize.brentq(slope, -30.0, 30.0, xtol=1e-15, rtol=4 * np.finfo(float).eps))


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


# A by least squares on the N J pairs is the derivation's content; the exercise's point is counting, which
# a numerical search for sigma^2 at the least-squares A would skip: it does not reach the tolerance.
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
    # sigma^2 exact to ~1e-15 (see _mcem_reference); a derived formula's rounding is ~1e-15 too, a search
    # for the maximum of the log-likelihood by its values stops near 1e-8, one with difference derivatives
    # between 1e-12 and 1e-10 (a one-dimensional problem): 1e-13.
    check_array(got_s, sigma2, f"sigma2 from mcem_isotropic_mstep {what}, compared with the root of autograd's "
                "derivative of the completed log-likelihood", rtol=1e-13, atol=1e-15, mistakes=s_hints)
