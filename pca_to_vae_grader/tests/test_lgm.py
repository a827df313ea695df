"""Autograder tests of book/exercises/lgm.md (chapters 6 and 7): the linear Gaussian model, EM, imputation.

Each test calls the student's function in its own process (the ``student`` fixture) and compares
it with the package's implementation (``lgm.linear_gaussian``, ``lgm.em``, ``lgm.missing``), which
each test also checks against an independent computation (dense scipy densities, Gaussian
conditioning of the joint, least squares). Tolerances: 1e-8 relative where the inputs are well conditioned (a correct
float64 computation is about 1e-13 off, and different correct orders of operations about 1e-12);
looser only where a test says why.
"""
import numpy as np
import pytest
from scipy import linalg, stats

from pca_to_vae_grader import inputs
from pca_to_vae_grader.compare import check, check_array, check_tuple, hint_on_failure
from pca_to_vae_grader.student import StudentFailure
from lgm.em import em_step
from lgm.linear_gaussian import complete_data_ml, log_likelihood, posterior
from lgm.missing import impute

LOG_2PI = np.log(2 * np.pi)


def _model(rng, N, d, K, *, noise=(0.2, 1.5)):
    """A random zero-mean LGM (A, D) and N samples X from it."""
    A = rng.normal(size=(d, K))
    D = rng.uniform(*noise, size=d)
    X = rng.normal(size=(N, K)) @ A.T + rng.normal(size=(N, d)) * np.sqrt(D)
    return X, A, D


def _dense_loglik(X, A, D):
    return stats.multivariate_normal(np.zeros(A.shape[0]), A @ A.T + np.diag(D)).logpdf(X).reshape(-1)


def _with_shape_hint(call, hint):
    """Call the student; if their code raised a shape error, add ``hint`` to the message."""
    try:
        return call()
    except StudentFailure as failure:
        text = str(failure)
        if "mismatch" in text or "shapes" in text or "broadcast" in text:
            raise StudentFailure(f"{text}\nHint: {hint}") from None
        raise


# ---------------------------------------------------------------------------------------------
# lgm_posterior(X, A, D) -> (means (N, K), cov (K, K))


def _posterior_mistakes(X, A, D):
    """What the classic mistakes of lgm_posterior produce: (hints for means, hints for cov)."""
    K = A.shape[1]
    G = A.T @ (A / D[:, None])
    no_prior = np.linalg.inv(G)
    times_D = np.linalg.inv(np.eye(K) + A.T @ (A * D[:, None]))
    means = [("drop the prior's identity from the precision, Sigma = (A^T D^{-1} A)^{-1}",
              X @ (A / D[:, None]) @ no_prior),
             ("multiply by D instead of dividing by it", X @ (A * D[:, None]) @ times_D),
             ("forget the factor Sigma in the mean (m = A^T D^{-1} x)", X @ (A / D[:, None]))]
    covs = [("drop the prior's identity from the precision, Sigma = (A^T D^{-1} A)^{-1}", no_prior),
            ("multiply by D instead of dividing by it", times_D),
            ("return the precision I + A^T D^{-1} A instead of its inverse", np.eye(K) + G)]
    return means, covs


@pytest.mark.points(2)
@pytest.mark.parametrize("N, d, K, seed", [(20, 6, 2, 0), (1, 9, 1, 1), (15, 40, 5, 2)])
def test_lgm_posterior_matches_reference(student, N, d, K, seed):
    rng = inputs.rng(seed)
    X, A, D = _model(rng, N, d, K)
    expected_means, expected_cov = posterior(X, A, D)
    # The reference agrees with conditioning the joint Gaussian of (z, x) on x (the d x d form).
    C = A @ A.T + np.diag(D)
    assert np.allclose(expected_means, X @ np.linalg.solve(C, A), rtol=1e-9, atol=1e-12)
    assert np.allclose(expected_cov, np.eye(K) - A.T @ np.linalg.solve(C, A), rtol=1e-9, atol=1e-12)
    means, cov = check_tuple(student.lgm_posterior(X, A, D), 2, "lgm_posterior(X, A, D)", ("means", "cov"))
    mistaken_means, mistaken_covs = _posterior_mistakes(X, A, D)
    check_array(means, expected_means, f"means from lgm_posterior (N={N}, d={d}, K={K})",
                rtol=1e-8, atol=1e-10, mistakes=mistaken_means)
    check_array(cov, expected_cov, f"cov from lgm_posterior (N={N}, d={d}, K={K})",
                rtol=1e-8, atol=1e-10, mistakes=mistaken_covs)


@pytest.mark.points(1)
def test_lgm_posterior_small_noise(student):
    # Noise variances of 1e-6 (close to the PCA limit): the posterior covariance is about 1e-6 and
    # the precision I + A^T D^{-1} A has entries of 1e6. A K x K Cholesky or solve is accurate to
    # about 1e-10 relative here; the tolerance 1e-6 relative leaves room for that.
    rng = inputs.rng(3)
    X, A, D = _model(rng, 10, 8, 3, noise=(1e-6, 2e-6))
    expected_means, expected_cov = posterior(X, A, D)
    means, cov = check_tuple(student.lgm_posterior(X, A, D), 2, "lgm_posterior(X, A, D)", ("means", "cov"))
    check_array(means, expected_means, "means from lgm_posterior with noise variances of 1e-6",
                rtol=1e-6, atol=1e-9)
    cov = check_array(cov, expected_cov, "cov from lgm_posterior with noise variances of 1e-6", rtol=1e-6, atol=1e-14)
    check(np.allclose(cov, cov.T, rtol=1e-8, atol=1e-16) and np.linalg.eigvalsh(cov).min() > 0,
          "The posterior covariance must be symmetric positive definite.")


@pytest.mark.points(1)
def test_lgm_posterior_large_d(student):
    # d = 20 000: the d x d form A^T C^{-1} needs a 3.2 GB matrix and minutes; the K x K form takes
    # milliseconds. Sums of 2e4 terms round to ~1e-12 relative; the tolerance is 1e-8.
    rng = inputs.rng(4)
    X, A, D = _model(rng, 4, 20_000, 3)
    expected_means, expected_cov = posterior(X, A, D)
    with hint_on_failure(("MemoryError", "Time limit"),
                         "A d x d matrix at d = 20000 takes 3.2 GB and minutes to invert: use the K x K form. With "
                         "the Woodbury identity the posterior needs only (I + A^T D^{-1} A)^{-1}, a K x K inverse, and "
                         "D is diagonal: divide by it, never form diag(D) or A A^T + D."):
        means, cov = check_tuple(student.lgm_posterior(X, A, D), 2, "lgm_posterior(X, A, D)", ("means", "cov"))
    check_array(means, expected_means, "means from lgm_posterior with d = 20000, K = 3", rtol=1e-8, atol=1e-10)
    check_array(cov, expected_cov, "cov from lgm_posterior with d = 20000, K = 3", rtol=1e-8, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# lgm_loglik(X, A, D) -> (N,)


def _loglik_mistakes(X, A, D):
    d, K = A.shape
    means, Sigma = posterior(X, A, D)
    quad = np.sum(X**2 / D, axis=1) - np.einsum("nk,kl,nl->n", means, np.linalg.inv(Sigma), means)
    logdet_M = -np.linalg.slogdet(Sigma)[1]  # log|I + A^T D^{-1} A|
    logdet_D = np.sum(np.log(D))
    return [
        ("forget log|D| in the determinant lemma log|C| = log|D| + log|I + A^T D^{-1} A|",
         -0.5 * (d * LOG_2PI + logdet_M + quad)),
        ("add the Woodbury correction m^T Sigma^{-1} m instead of subtracting it",
         -0.5 * (d * LOG_2PI + logdet_D + logdet_M + np.sum(X**2 / D, axis=1)
                 + np.einsum("nk,kl,nl->n", means, np.linalg.inv(Sigma), means))),
        ("use +log|Sigma| instead of -log|Sigma| (log|Sigma| = -log|I + A^T D^{-1} A|)",
         -0.5 * (d * LOG_2PI + logdet_D - logdet_M + quad)),
        ("drop the constant -d/2 log 2 pi", -0.5 * (logdet_D + logdet_M + quad)),
    ]


@pytest.mark.points(2)
@pytest.mark.parametrize("N, d, K, seed", [(25, 6, 2, 0), (1, 7, 1, 1), (12, 30, 4, 2)])
def test_lgm_loglik_matches_reference(student, N, d, K, seed):
    rng = inputs.rng(10 + seed)
    X, A, D = _model(rng, N, d, K)
    expected = log_likelihood(X, A, D)
    assert np.allclose(expected, _dense_loglik(X, A, D), rtol=1e-10, atol=1e-10)  # reference vs scipy
    check_array(student.lgm_loglik(X, A, D), expected, f"lgm_loglik(X, A, D) (N={N}, d={d}, K={K})",
                rtol=1e-8, atol=1e-8, mistakes=_loglik_mistakes(X, A, D))


@pytest.mark.points(1)
def test_lgm_loglik_invariant_under_rotation(student):
    # p(x) depends on A only through A A^T, so A and A R (R orthogonal) give the same values.
    rng = inputs.rng(13)
    X, A, D = _model(rng, 10, 6, 3)
    R = linalg.qr(rng.normal(size=(3, 3)))[0]
    expected = log_likelihood(X, A, D)
    check_array(student.lgm_loglik(X, A @ R, D), expected, "lgm_loglik(X, A @ R, D) for an orthogonal R",
                rtol=1e-8, atol=1e-8, mistakes=_loglik_mistakes(X, A @ R, D))


@pytest.mark.points(2)
def test_lgm_loglik_large_d(student):
    # d = 20 000: a d x d matrix has 4e8 entries (3.2 GB) and its inverse takes minutes, so only
    # the O(N d K + d K^2) computation finishes within the time limit. Rounding in sums of 2e4
    # terms of size ~1 is ~1e-12 relative; the tolerance 1e-8 relative is far above it.
    rng = inputs.rng(14)
    X, A, D = _model(rng, 4, 20_000, 3)
    expected = log_likelihood(X, A, D)
    with hint_on_failure(("MemoryError", "Time limit"),
                         "A d x d matrix at d = 20000 takes 3.2 GB and minutes to factor: use the determinant lemma, "
                         "log|C| = log|D| + log|I + A^T D^{-1} A|, and the Woodbury identity for the quadratic form, so "
                         "that only K x K matrices are formed."), \
            hint_on_failure("NaN or infinity", "log|C| is a sum of 20000 terms here, in the thousands: det(C) "
                            "underflows to 0 (or overflows) in float64 and log(det(C)) is infinite. Compute the "
                            "log-determinant as a sum of logs (the determinant lemma, with np.linalg.slogdet for the "
                            "K x K part), never det itself."):
        check_array(student.lgm_loglik(X, A, D), expected, "lgm_loglik(X, A, D) with d = 20000, K = 3",
                    rtol=1e-8, atol=1e-6, mistakes=_loglik_mistakes(X, A, D))


# ---------------------------------------------------------------------------------------------
# complete_data_ml(X, Z) -> (A (d, K), D (d,))


def _complete_data_mistakes(X, Z):
    N = X.shape[0]
    A = X.T @ Z @ np.linalg.inv(Z.T @ Z)
    A_plain = X.T @ Z / N
    resid = lambda B: np.mean((X - Z @ B.T) ** 2, axis=0)  # noqa: E731
    As = [("forget the factor (sum z z^T)^{-1}, as if the z were orthonormal", X.T @ Z),
          ("forget the factor (sum z z^T)^{-1} and divide by N instead", A_plain)]
    Ds = [("divide by N - 1 instead of N (maximum likelihood divides by N)", resid(A) * N / (N - 1)),
          ("forget the 1/N", resid(A) * N),
          ("return the mean of x^2 without subtracting A sum z x^T", np.mean(X**2, axis=0))]
    return As, Ds


@pytest.mark.points(1)
def test_complete_data_ml_shapes(student):
    rng = inputs.rng(20)
    X, Z = rng.normal(size=(30, 5)), rng.normal(size=(30, 2))
    A, D = check_tuple(student.complete_data_ml(X, Z), 2, "complete_data_ml(X, Z)", ("A", "D"))
    A, D = np.asarray(A, dtype=float), np.asarray(D, dtype=float)
    hint = ""
    if A.shape == (2, 5):
        hint = (" This is A transposed: np.linalg.lstsq(Z, X) solves Z B = X for B = A^T (shape (K, d)); "
                "A itself maps z to x, so it is (d, K).")
    check(A.shape == (5, 2), f"A from complete_data_ml must have shape (d, K) = (5, 2); got {A.shape}.{hint}")
    check(D.shape == (5,), f"D from complete_data_ml must be the (d,) = (5,) diagonal; got shape {D.shape}. "
                           "diag(A sum z x^T) has d entries: sum z x^T is K x d, so A sum z x^T is d x d.")
    # Right shapes are not enough: A solves the normal equations A (Z^T Z) = X^T Z of least squares.
    check(np.allclose(A @ (Z.T @ Z), X.T @ Z, rtol=1e-6, atol=1e-8) and np.all(np.isfinite(D)) and np.all(D >= 0),
          "A from complete_data_ml does not solve the normal equations A (sum z z^T) = sum x z^T of least squares "
          "(or D has negative or non-finite entries).")


@pytest.mark.points(2)
@pytest.mark.parametrize("N, d, K, seed", [(40, 5, 2, 0), (12, 3, 3, 1)])
def test_complete_data_ml_matches_least_squares(student, N, d, K, seed):
    rng = inputs.rng(21 + seed)
    X, A_true, _ = _model(rng, N, d, K)
    Z = rng.normal(size=(N, K))
    expected_A, expected_D = complete_data_ml(X, Z)
    B = np.linalg.lstsq(Z, X, rcond=None)[0]  # least squares of each coordinate of x on z
    assert np.allclose(expected_A, B.T, atol=1e-10) and np.allclose(expected_D, np.mean((X - Z @ B) ** 2, axis=0))
    A, D = check_tuple(_with_shape_hint(
        lambda: student.complete_data_ml(X, Z),
        "sum_n z_n x_n^T is K x d (Z.T @ X), so A sum_n z_n x_n^T is d x d; the lecture's A sum x z^T is undefined."),
        2, "complete_data_ml(X, Z)", ("A", "D"))
    As, Ds = _complete_data_mistakes(X, Z)
    check_array(A, expected_A, f"A from complete_data_ml (N={N}, d={d}, K={K})", rtol=1e-8, atol=1e-10, mistakes=As)
    check_array(D, expected_D, f"D from complete_data_ml (N={N}, d={d}, K={K})", rtol=1e-8, atol=1e-10, mistakes=Ds)


@pytest.mark.points(1)
def test_complete_data_ml_noise_free_data(student):
    # x = A z exactly: least squares recovers A, and every residual variance is zero (up to
    # rounding, hence the absolute tolerance 1e-10 on D).
    rng = inputs.rng(23)
    Z, A_true = rng.normal(size=(25, 2)), rng.normal(size=(4, 2))
    A, D = check_tuple(student.complete_data_ml(Z @ A_true.T, Z), 2, "complete_data_ml(X, Z)", ("A", "D"))
    check_array(A, A_true, "A from complete_data_ml when x = A z exactly", rtol=1e-8, atol=1e-10)
    check_array(D, np.zeros(4), "D from complete_data_ml when x = A z exactly (no noise)", rtol=0, atol=1e-10)


# ---------------------------------------------------------------------------------------------
# em_step(X, A, D) -> (A_new, D_new)

_EM_SHAPE_HINT = ("sum_n m_n x_n^T is K x d (means.T @ X) and sum_n x_n m_n^T is d x K (X.T @ means): "
                  "check the order of each sum, and that A^{k+1} sum_n m_n x_n^T is d x d.")


def _em_mistakes(X, A, D):
    """(hints for A_new, hints for D_new) of the classic mistakes of one EM step."""
    N = X.shape[0]
    M, Sigma = posterior(X, A, D)
    Sxm = X.T @ M
    A_new = Sxm @ np.linalg.inv(N * Sigma + M.T @ M)
    xx = np.sum(X**2, axis=0)
    As = [("forget N Sigma in sum_n E[z z^T] = N Sigma + sum_n m_n m_n^T (the posterior's spread)",
           Sxm @ np.linalg.inv(M.T @ M))]
    Ds = [("use the old A^k instead of the new A^{k+1} in the D-update",
           (xx - np.sum(A * Sxm, axis=1)) / N),
          ("forget the 1/N", xx - np.sum(A_new * Sxm, axis=1))]
    if A.shape[0] == A.shape[1]:  # d = K: the transposed sum has the right shape, and wrong values
        Ds.append(("use the transposed sum A^{k+1} sum_n x_n m_n^T (d x K) where sum_n m_n x_n^T (K x d) belongs",
                   (xx - np.diag(A_new @ Sxm)) / N))
    return As, Ds


def _em_case(seed, N=60, d=6, K=2, *, scale=1.0, rng=None):
    """Data X from a random LGM, and a random start (A, D) away from the truth (A scaled by ``scale``)."""
    rng = inputs.rng(seed) if rng is None else rng
    X, _, _ = _model(rng, N, d, K)
    return X, scale * rng.normal(size=(d, K)), rng.uniform(0.5, 2.0, size=d)


def _student_em_step(student, X, A, D):
    return check_tuple(_with_shape_hint(lambda: student.em_step(X, A, D), _EM_SHAPE_HINT),
                       2, "em_step(X, A, D)", ("A_new", "D_new"))


@pytest.mark.points(2)
@pytest.mark.parametrize("N, d, K, seed", [(60, 6, 2, 0), (30, 4, 4, 1), (50, 12, 1, 2)])
def test_em_step_A_update(student, N, d, K, seed):
    X, A, D = _em_case(30 + seed, N, d, K)
    expected_A, _ = em_step(X, A, D)
    M, Sigma = posterior(X, A, D)  # the M-step from its formula: (sum x m^T)(N Sigma + sum m m^T)^{-1}
    assert np.allclose(expected_A, X.T @ M @ np.linalg.inv(N * Sigma + M.T @ M), rtol=1e-9, atol=1e-12)
    A_new, _ = _student_em_step(student, X, A, D)
    check_array(A_new, expected_A, f"A_new from em_step (N={N}, d={d}, K={K})", rtol=1e-8, atol=1e-10,
                mistakes=_em_mistakes(X, A, D)[0])


@pytest.mark.points(2)
@pytest.mark.parametrize("N, d, K, seed", [(60, 6, 2, 0), (30, 4, 4, 1), (50, 12, 1, 2)])
def test_em_step_D_update(student, N, d, K, seed):
    X, A, D = _em_case(30 + seed, N, d, K)
    expected_A, expected_D = em_step(X, A, D)
    # Valid for any A: D = (1/N) diag sum_n E[(x_n - A z)(x_n - A z)^T]; it equals the simplified
    # update at A = A^{k+1} only.
    M, Sigma = posterior(X, A, D)
    R = X - M @ expected_A.T
    general = np.mean(R**2, axis=0) + np.einsum("ik,kl,il->i", expected_A, Sigma, expected_A)
    assert np.allclose(expected_D, general, rtol=1e-9, atol=1e-12)
    _, D_new = _student_em_step(student, X, A, D)
    check_array(D_new, expected_D, f"D_new from em_step (N={N}, d={d}, K={K})", rtol=1e-8, atol=1e-10,
                mistakes=_em_mistakes(X, A, D)[1])


def _lecture_em_step(X, A, D):
    """The lecture's step: EM's A-update, and a D-update with the old A^k in it (not an EM step)."""
    return em_step(X, A, D)[0], _em_mistakes(X, A, D)[1][0][1]


def _lecture_breaks(start):
    """Whether 30 of the lecture's steps from ``start`` drive a noise variance to zero or below, or lower the
    likelihood: what EM's guarantee rules out. None where its steps degenerate before either shows (a
    singular posterior or M-step: about one run in 300 drew such a start), so the start is not used."""
    X, A, D = start
    previous = log_likelihood(X, A, D).sum()
    try:
        for _ in range(30):
            A, D = _lecture_em_step(X, A, D)
            if not (np.all(np.isfinite(D)) and D.min() > 0):
                return True
            current = log_likelihood(X, A, D).sum()
            if current < previous - 1e-9:
                return True
            previous = current
    except (ValueError, np.linalg.LinAlgError):
        return None
    return False


def _monotone_starts(count=10, broken=4):
    """``count`` starts (data and a start (A, D), loadings at 1, 2 or 3 times the data's scale), drawn anew in
    every run, at least ``broken`` of them starts from which the lecture's D-update breaks EM's guarantee
    (about half of all draws do), so that the test exposes it in every run."""
    breaking, other = [], []
    for attempt in range(400):
        scale = 1.0 + attempt % 3
        start = _em_case(40 + attempt, N=100, d=6, K=2, scale=scale)
        breaks = _lecture_breaks(start)
        if breaks is not None:
            (breaking if breaks else other).append((attempt, scale, start))
        if len(breaking) >= broken and len(breaking) + len(other) >= count:
            n_breaking = max(broken, count - len(other))
            return breaking[:n_breaking] + other[:count - n_breaking]
    raise RuntimeError("too few starts on which the lecture's D-update fails: a bug of the test")


@pytest.mark.points(2)
def test_em_step_never_decreases_loglik(student):
    # EM's guarantee: log p(X) does not decrease, and every noise variance stays positive. 30 of the
    # student's steps from each start; each change must be >= -1e-9 (rounding in a log-likelihood of
    # size ~1e3 is ~1e-12).
    for number, scale, (X, A, D) in _monotone_starts():
        start = f"from start {number} of this run (initial A scaled by {scale:g})"
        previous = initial = log_likelihood(X, A, D).sum()
        A_ref, D_ref = A, D
        for _ in range(30):  # what 30 EM steps gain from this start: real progress is asked, not only no loss
            A_ref, D_ref = em_step(X, A_ref, D_ref)
        gain = log_likelihood(X, A_ref, D_ref).sum() - initial
        for step in range(1, 31):
            A, D = _student_em_step(student, X, A, D)
            A, D = np.asarray(A, dtype=float), np.asarray(D, dtype=float)
            check(A.shape == (6, 2) and D.shape == (6,),
                  f"em_step must return A_new of shape (6, 2) and D_new of shape (6,); got {A.shape} and {D.shape}.")
            check(np.all(np.isfinite(D)) and D.min() > 0,
                  f"After {step} EM steps {start}, a noise variance is {D.min():.4g}, not positive. A correct EM "
                  "step keeps every psi_i > 0. The classic way to break this: use the old A^k instead of the new "
                  "A^{k+1} in the D-update.")
            current = log_likelihood(X, A, D).sum()
            check(current >= previous - 1e-9,
                  f"The log-likelihood decreased at EM step {step} {start}: from {previous:.10g} to "
                  f"{current:.10g}. EM never decreases it: check that the E-step uses the current (old) "
                  "parameters, and do not use the old A^k instead of the new A^{k+1} in the D-update.")
            previous = current
        # An em_step that changes nothing (or almost nothing) never decreases the likelihood either.
        check(previous - initial >= 0.5 * gain,
              f"30 of your EM steps {start} raised the log-likelihood by {previous - initial:.2g}; EM raises it by "
              f"about {gain:.1g} from there. A step must move (A, D) towards the maximum, not only avoid going down.")


# ---------------------------------------------------------------------------------------------
# mcem_step(X, A, D, eps) -> (A_new, D_new)


def _mcem_mistakes(X, A, D, eps):
    J, N, K = eps.shape
    M, Sigma = posterior(X, A, D)
    Z = (M + eps @ linalg.cholesky(Sigma, lower=True).T).reshape(J * N, K)
    Xr = np.tile(X, (J, 1))
    A_new, D_new = complete_data_ml(Xr, Z)
    Sxz = Xr.T @ Z
    xx = np.sum(Xr**2, axis=0)
    upper = complete_data_ml(Xr, (M + eps @ linalg.cholesky(Sigma, lower=True)).reshape(J * N, K))
    symmetric = complete_data_ml(Xr, (M + eps @ np.real(linalg.sqrtm(Sigma))).reshape(J * N, K))
    wrong_factor = [
        ("multiply eps by L^T instead of L (z = m + L^T eps has covariance L^T L, not Sigma)", upper),
        ("use a square root of Sigma other than its lower Cholesky factor L: the noise eps is given, so the "
         "task fixes z = m + L eps with L = np.linalg.cholesky(Sigma)", symmetric)]
    As = [(hint, value[0]) for hint, value in wrong_factor]
    Ds = [("divide by N instead of NJ, the number of completed pairs", D_new * J),
          ("use the old A^k instead of the new A^{k+1} in the D-update", (xx - np.sum(A * Sxz, axis=1)) / (N * J))]
    Ds += [(hint, value[1]) for hint, value in wrong_factor]
    return As, Ds


@pytest.mark.points(2)
@pytest.mark.parametrize("J, N, d, K, seed", [(5, 40, 6, 2, 0), (1, 30, 4, 3, 1), (20, 10, 5, 1, 2)])
def test_mcem_step_matches_reference(student, J, N, d, K, seed):
    X, A, D = _em_case(50 + seed, N, d, K)
    eps = inputs.rng(60 + seed).normal(size=(J, N, K))
    # The reference: complete-data ML (the package's) on the N J pairs (x_n, m_n + L eps_nj).
    M, Sigma = posterior(X, A, D)
    Z = (M + eps @ linalg.cholesky(Sigma, lower=True).T).reshape(J * N, K)
    expected_A, expected_D = complete_data_ml(np.tile(X, (J, 1)), Z)
    A_new, D_new = check_tuple(_with_shape_hint(lambda: student.mcem_step(X, A, D, eps), _EM_SHAPE_HINT),
                               2, "mcem_step(X, A, D, eps)", ("A_new", "D_new"))
    As, Ds = _mcem_mistakes(X, A, D, eps)
    check_array(A_new, expected_A, f"A_new from mcem_step (J={J}, N={N}, d={d}, K={K})",
                rtol=1e-8, atol=1e-10, mistakes=As)
    check_array(D_new, expected_D, f"D_new from mcem_step (J={J}, N={N}, d={d}, K={K})",
                rtol=1e-8, atol=1e-10, mistakes=Ds)


@pytest.mark.points(1)
def test_mcem_step_approaches_em_step(student):
    # With J = 1000 samples per point (N J = 1e5 pairs), the Monte Carlo sums differ from their
    # expectations by about 1/sqrt(N J) ~ 3e-3 relative, so the step is within 0.05 of EM's step.
    X, A, D = _em_case(70, N=100, d=5, K=2)
    eps = inputs.rng(71).normal(size=(1000, 100, 2))
    A_em, D_em = em_step(X, A, D)
    A_new, D_new = check_tuple(student.mcem_step(X, A, D, eps), 2, "mcem_step(X, A, D, eps)", ("A_new", "D_new"))
    check_array(A_new, A_em, "A_new from mcem_step with J = 1000, compared with the expected-completion step",
                rtol=0.05, atol=0.05)
    check_array(D_new, D_em, "D_new from mcem_step with J = 1000, compared with the expected-completion step",
                rtol=0.05, atol=0.05, mistakes=[("divide by N instead of NJ, the number of completed pairs",
                                                 D_em * 1000)])


# ---------------------------------------------------------------------------------------------
# impute_row(x, A, D, mean) -> (d,)


def _impute_case(seed, d, K, n_missing):
    """A random model with a mean, one sample from it, and n_missing of its entries set to NaN."""
    rng = inputs.rng(80 + seed)
    X, A, D = _model(rng, 1, d, K)
    mean = rng.normal(size=d)
    x = X[0] + mean
    x[rng.choice(d, size=n_missing, replace=False)] = np.nan
    return x, A, D, mean


def _impute_mistakes(x, A, D, mean):
    """What the classic mistakes of impute_row produce (the whole (d,) vector)."""
    o = ~np.isnan(x)

    def fill(m_z, rows=~o):
        out = x.copy()
        out[rows] = (mean + A @ m_z)[rows]
        return out

    def posterior_mean(A_, D_, r):
        return np.linalg.solve(np.eye(A.shape[1]) + A_.T @ (A_ / D_[:, None]), A_.T @ (r / D_))

    m = posterior_mean(A[o], D[o], x[o] - mean[o])
    zero_filled = np.where(o, x, 0.0)
    mean_filled = np.where(o, x, mean)
    return [
        ("treat each missing entry as an observed 0 and use all of A and D: the posterior given x_o uses only "
         "the observed rows A_o, D_o and x_o", fill(posterior_mean(A, D, zero_filled - mean))),
        ("fill the missing entries with the mean and use all of A and D: the posterior given x_o uses only the "
         "observed rows A_o, D_o and x_o", fill(posterior_mean(A, D, mean_filled - mean))),
        ("forget to subtract the mean mu_o from x_o before the posterior", fill(posterior_mean(A[o], D[o], x[o]))),
        ("forget to add the mean mu_u to A_u m", np.where(o, x, A @ m)),
        ("replace the observed entries too: keep them as they are and fill in only the missing ones",
         fill(m, rows=np.ones_like(o))),
    ]


@pytest.mark.points(2)
# No case without missing entries here: returning x unchanged would pass it (it is checked, together
# with a case that has missing entries, in test_impute_row_keeps_observed_entries).
@pytest.mark.parametrize("d, K, n_missing, seed", [(8, 2, 3, 0), (5, 1, 4, 1), (30, 4, 12, 2), (6, 2, 5, 3)])
def test_impute_row_matches_conditioning(student, d, K, n_missing, seed):
    x, A, D, mean = _impute_case(seed, d, K, n_missing)
    expected = impute(x[None], A, D, mean)[0]
    # The reference agrees with conditioning the dense Gaussian N(mean, C) (a Schur complement).
    o = ~np.isnan(x)
    C = A @ A.T + np.diag(D)
    dense = mean[~o] + C[np.ix_(~o, o)] @ np.linalg.solve(C[np.ix_(o, o)], x[o] - mean[o])
    assert np.allclose(expected[~o], dense, rtol=1e-9, atol=1e-12) and np.array_equal(expected[o], x[o])
    got = _with_shape_hint(lambda: student.impute_row(x, A, D, mean),
                           "A[o] is (d_o, K), D[o] and x[o] are (d_o,); the posterior mean m is (K,).")
    mistakes = _impute_mistakes(x, A, D, mean)
    check_array(got, expected, f"impute_row(x, A, D, mean) (d={d}, K={K}, {n_missing} missing)",
                rtol=1e-8, atol=1e-10, mistakes=mistakes)


@pytest.mark.points(1)
def test_impute_row_keeps_observed_entries(student):
    # The observed entries are data, not estimates: they must come back as the very same floats.
    x, A, D, mean = _impute_case(4, 10, 3, 4)
    got = check_array(student.impute_row(x.copy(), A, D, mean), impute(x[None], A, D, mean)[0],
                      "impute_row(x, A, D, mean)", rtol=1e-8, atol=1e-10, mistakes=_impute_mistakes(x, A, D, mean))
    o = ~np.isnan(x)
    check(np.array_equal(got[o], x[o]),
          "impute_row must return the observed entries of x unchanged (bit for bit); only NaN entries are filled in.")
    full = _impute_case(6, 6, 2, 0)  # nothing missing: x itself comes back
    check_array(student.impute_row(*full), full[0], "impute_row(x, A, D, mean) with no missing entry", rtol=0, atol=0)


@pytest.mark.points(1)
def test_impute_row_large_d(student):
    # d = 20 000 with half the entries missing: the dense C_oo is 10 000 x 10 000 (0.8 GB, a 1e12-flop
    # solve); the K x K form takes milliseconds. Sums of 1e4 terms round to ~1e-12; tolerance 1e-8.
    x, A, D, mean = _impute_case(5, 20_000, 3, 10_000)
    check_array(student.impute_row(x, A, D, mean), impute(x[None], A, D, mean)[0],
                "impute_row(x, A, D, mean) with d = 20000, K = 3", rtol=1e-8, atol=1e-10)
