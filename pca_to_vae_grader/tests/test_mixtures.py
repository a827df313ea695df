"""Autograder tests of book/exercises/mixtures.md (chapter 7b and richer posteriors for chapter 11).

References: the responsibilities are compared with dense Gaussian densities from scipy.stats
(a brute-force Bayes' rule, exact for small d) and, at large d where densities underflow, with
lgm.mfa_responsibilities; the M-step with lgm.mfa_m_step and, independently, with Ghahramani and
Hinton's augmented regression on (z, 1) computed here with a generic inverse; the ARD update with
lgm.bayesian_pca.ard_update and its M-step with lgm.bayesian_pca.bpca_m_step (and, independently,
with a finite-difference gradient of its penalised objective, which must vanish); the entropy with scipy.stats.multivariate_normal(...).entropy(); the
KL with the cross-entropy identity KL = E_q[-log N(z; 0, I)] - H(q) and a Monte Carlo estimate; the
flow layer's log-determinant with log|det J| of a Jacobian computed by central finite differences.
Tolerances: 1e-8 relative for closed forms (float64 rounding is about 1e-13); finite-difference
Jacobians are accurate to about 1e-8, so their log-determinants are compared to 1e-5.
"""
import numpy as np
import pytest
from scipy import stats
from scipy.special import expit, logsumexp

import lgm
from lgm.bayesian_pca import ard_update, bpca_m_step
from lgm.linear_gaussian import posterior_map
from pca_to_vae_grader import inputs
from pca_to_vae_grader.compare import check, check_array, check_tuple


# ---------------------------------------------------------------------------------------------
# mfa_responsibilities(X, pi, mu, A, D) -> (N, J)


def _mixture(rng, J=3, d=5, K=2, spread=3.0):
    pi = rng.dirichlet(np.full(J, 3.0))
    mu = rng.normal(scale=spread, size=(J, d))
    A = rng.normal(size=(J, d, K))
    D = rng.uniform(0.2, 1.0, size=(J, d))
    return pi, mu, A, D


def _dense_joint(X, pi, mu, A, D):
    """pi_j N(x_n; mu_j, A_j A_j^T + D_j) from scipy's dense densities (brute force)."""
    return np.column_stack([pi[j] * stats.multivariate_normal(mu[j], A[j] @ A[j].T + np.diag(D[j])).pdf(X)
                            for j in range(len(pi))])


@pytest.mark.points(2)
@pytest.mark.parametrize("seed", [0, 1])
def test_mfa_responsibilities_matches_bayes_rule(student, seed):
    rng = inputs.rng(seed)
    pi, mu, A, D = _mixture(rng)
    X, _ = lgm.mixture_fa.mfa_sample(40, pi, mu, A, D, rng)
    X[:5] = rng.normal(scale=3.0, size=(5, X.shape[1]))  # a few points between the components
    joint = _dense_joint(X, pi, mu, A, D)
    expected = joint / joint.sum(axis=1, keepdims=True)
    unweighted = joint / pi
    check_array(student.mfa_responsibilities(X, pi, mu, A, D), expected, "mfa_responsibilities(X, pi, mu, A, D)",
                rtol=1e-7, atol=1e-10, mistakes=[
                    ("forget the mixing weights pi_j in Bayes' rule (eq-mfa-responsibilities)",
                     unweighted / unweighted.sum(axis=1, keepdims=True)),
                    ("use D_j alone as the covariance of x given j (it is A_j A_j^T + D_j)",
                     (lambda g: g / g.sum(axis=1, keepdims=True))(np.column_stack([
                         pi[j] * stats.multivariate_normal(mu[j], np.diag(D[j])).pdf(X) for j in range(len(pi))]))),
                ])


@pytest.mark.points(1)
def test_mfa_responsibilities_in_high_dimension(student):
    # In d = 300 every density is below 1e-300 and exp of the log-joint underflows to 0 (0/0 = nan):
    # normalise in log space (subtract logsumexp over j).
    rng = inputs.rng(2)
    pi, mu, A, D = _mixture(rng, d=300, K=3, spread=0.3)
    X, _ = lgm.mixture_fa.mfa_sample(20, pi, mu, A, D, rng)
    X += rng.normal(scale=2.0, size=X.shape)
    expected = lgm.mfa_responsibilities(X, pi, mu, A, D)
    log_joint = lgm.mixture_fa.mfa_log_joint(X, pi, mu, A, D)
    assert np.exp(log_joint).max() == 0.0  # the test's premise: every density underflows
    got = check_array(student.mfa_responsibilities(X, pi, mu, A, D), expected,
                      "mfa_responsibilities(X, pi, mu, A, D) with d = 300 (every density underflows to 0: "
                      "normalise the log-joint with logsumexp, without exponentiating it first)",
                      rtol=1e-6, atol=1e-9)
    check(np.allclose(got.sum(axis=1), 1.0), "Each row of the responsibilities must sum to 1.")


# ---------------------------------------------------------------------------------------------
# mfa_m_step(X, R, Z, Sigma) -> (pi, mu, A, D)


def _completed(rng, N=60, J=3, d=5, K=2):
    pi, mu, A, D = _mixture(rng, J=J, d=d, K=K)
    X, _ = lgm.mixture_fa.mfa_sample(N, pi, mu, A, D, rng)
    old = _mixture(rng, J=J, d=d, K=K)  # the E-step under other (old) parameters
    R = lgm.mfa_responsibilities(X, *old)
    R = 0.8 * R + 0.2 * rng.dirichlet(np.ones(J), size=N)  # every component has some weight
    Z, Sigma = lgm.mfa_posterior(X, *old[1:])
    return X, R, Z, Sigma


def _augmented_regression(X, r, Z, Sigma):
    """Ghahramani & Hinton's joint update of [A_j, mu_j]: regression of x on E[(z, 1)], generic inverse."""
    K = Z.shape[1]
    Zt = np.column_stack([Z, np.ones(len(X))])
    Ezz = np.einsum("n,nk,nl->kl", r, Zt, Zt)
    Ezz[:K, :K] += r.sum() * Sigma
    At = (X.T * r) @ Zt @ np.linalg.inv(Ezz)
    A, mu = At[:, :K], At[:, K]
    D = (r @ (X * X) - np.sum(At * ((X.T * r) @ Zt), axis=1)) / r.sum()
    return mu, A, D


def _m_step_mistakes(X, R, Z, Sigma):
    N, J = R.shape
    uniform = np.ones_like(R) / J  # every point counts for every component with the same weight
    no_sigma = lgm.mfa_m_step(X, R, Z, np.zeros_like(Sigma))
    unweighted = lgm.mfa_m_step(X, uniform, Z, Sigma)
    Nj = R.sum(axis=0)
    return {
        "pi": [("forget to divide N_j = sum_n r_nj by N", Nj)],
        "mu": [("use the weighted mean xbar_j as mu_j (it is xbar_j - A_j zbar_j)", (R.T @ X) / Nj[:, None]),
               ("leave out the posterior covariance Sigma_j from C_zz (E[z z^T] = Sigma + m m^T)", no_sigma[1]),
               ("use unweighted moments (weight point n by r_nj in component j's sums)", unweighted[1])],
        "A": [("leave out the posterior covariance Sigma_j from C_zz (E[z z^T] = Sigma + m m^T)", no_sigma[2]),
              ("use unweighted moments (weight point n by r_nj in component j's sums)", unweighted[2])],
        "D": [("leave out the posterior covariance Sigma_j from C_zz (E[z z^T] = Sigma + m m^T)", no_sigma[3])],
    }


@pytest.mark.points(3)
@pytest.mark.parametrize("seed", [0, 1])
def test_mfa_m_step_matches_reference(student, seed):
    X, R, Z, Sigma = _completed(inputs.rng(10 + seed))
    got = check_tuple(student.mfa_m_step(X, R, Z, Sigma), 4, "mfa_m_step(X, R, Z, Sigma)", ("pi", "mu", "A", "D"))
    expected = lgm.mfa_m_step(X, R, Z, Sigma)
    # Independent of the package: the augmented regression, component by component.
    for j in range(R.shape[1]):
        mu, A, D = _augmented_regression(X, R[:, j], Z[:, j], Sigma[j])
        assert np.allclose(expected[1][j], mu) and np.allclose(expected[2][j], A) and np.allclose(expected[3][j], D)
    mistakes = _m_step_mistakes(X, R, Z, Sigma)
    # 1e-7 relative: the moments are sums of 60 well-scaled products; A solves a K x K system.
    # A first: mu_j = xbar_j - A_j zbar_j and D_j inherit a wrong A_j.
    for i, name in ((0, "pi"), (2, "A"), (1, "mu"), (3, "D")):
        check_array(got[i], expected[i], f"the new {name}", rtol=1e-7, atol=1e-9, mistakes=mistakes[name])


@pytest.mark.points(1)
def test_mfa_m_step_never_lowers_the_likelihood(student):
    rng = inputs.rng(12)
    for case in range(5):
        pi, mu, A, D = _mixture(rng)
        X, _ = lgm.mixture_fa.mfa_sample(200, pi, mu, A, D, rng)
        # Start near the truth (any rough fit beats random parameters, so a wrong M-step could still gain).
        old = (0.5 * pi + 0.5 * rng.dirichlet(np.ones(len(pi))), mu + rng.normal(scale=0.5, size=mu.shape),
               A + rng.normal(scale=0.3, size=A.shape), D * rng.uniform(0.5, 2.0, size=D.shape))
        before = lgm.mfa_log_likelihood(X, *old).sum()
        R = lgm.mfa_responsibilities(X, *old)
        Z, Sigma = lgm.mfa_posterior(X, *old[1:])
        new = check_tuple(student.mfa_m_step(X, R, Z, Sigma), 4, "mfa_m_step(X, R, Z, Sigma)", ("pi", "mu", "A", "D"))
        new = [np.asarray(v, dtype=float) for v in new]
        check([v.shape for v in new] == [v.shape for v in old],
              "mfa_m_step must return pi (J,), mu (J, d), A (J, d, K) and D (J, d).")
        check(np.all(new[3] > 0) and np.isclose(new[0].sum(), 1.0),
              "The new weights must sum to 1 and the new noise variances D must be positive.")
        after = lgm.mfa_log_likelihood(X, *new).sum()
        gain = lgm.mfa_log_likelihood(X, *lgm.mfa_m_step(X, R, Z, Sigma)).sum() - before
        check(after >= before + 0.5 * gain,
              f"After the E-step and your M-step the log-likelihood went from {before:.4f} to {after:.4f} "
              f"(case {case}); one EM step raises it by {gain:.3g}. EM never lowers it, and your step should gain at "
              "least half as much: check eq-mfa-mstep.")


# ---------------------------------------------------------------------------------------------
# bpca_m_step(S, Sxz, Szz, sigma2, alpha, n_samples) -> (A, sigma2)


def _bpca_case(rng, N=50, d=8, K=3):
    """Moments of a PPCA E-step at random old parameters, and precisions for which the ridge matters."""
    X = rng.normal(size=(N, K)) @ rng.normal(size=(K, d)) + rng.normal(scale=0.7, size=(N, d))
    Xc = X - X.mean(axis=0)
    S = Xc.T @ Xc / N
    A_old, sigma2 = rng.normal(size=(d, K)), rng.uniform(0.3, 1.0)
    beta, Sigma = posterior_map(A_old, np.full(d, sigma2))
    Sxz = S @ beta.T
    alpha = rng.uniform(1.0, 100.0, size=K)  # sigma^2 alpha_k / N up to about 2: comparable to S_zz
    return S, Sxz, Sigma + beta @ Sxz, sigma2, alpha, N


def _penalised_q(A, S, Sxz, Szz, sigma2, alpha, N):
    """The M-step's objective in A (per sample, sigma^2 held): eq-bpca-objective's expected form."""
    return (-0.5 * np.trace(S - 2 * A @ Sxz.T + A @ Szz @ A.T) / sigma2
            - 0.5 * np.sum(alpha * np.sum(A**2, axis=0)) / N)


@pytest.mark.points(2)
@pytest.mark.parametrize("seed", [0, 1])
def test_bpca_m_step_matches_reference(student, seed):
    S, Sxz, Szz, sigma2, alpha, N = _bpca_case(inputs.rng(50 + seed))
    got = check_tuple(student.bpca_m_step(S, Sxz, Szz, sigma2, alpha, N), 2,
                      "bpca_m_step(S, Sxz, Szz, sigma2, alpha, n_samples)", ("A", "sigma2"))
    A, s2 = bpca_m_step(S, Sxz, Szz, sigma2, alpha, N)
    # Independent of the package: the gradient of the penalised objective in A vanishes at A
    # (central differences, accurate to about 1e-8).
    h, grad = 1e-5, np.zeros_like(A)
    for index in np.ndindex(*A.shape):
        E = np.zeros_like(A)
        E[index] = h
        grad[index] = (_penalised_q(A + E, S, Sxz, Szz, sigma2, alpha, N)
                       - _penalised_q(A - E, S, Sxz, Szz, sigma2, alpha, N)) / (2 * h)
    assert np.abs(grad).max() < 1e-6
    d = S.shape[0]

    def residual(B):
        return np.trace(S - 2 * B @ Sxz.T + B @ Szz @ B.T) / d

    no_n = Sxz @ np.linalg.inv(Szz + sigma2 * np.diag(alpha))
    no_sigma = Sxz @ np.linalg.inv(Szz + np.diag(alpha) / N)
    # 1e-8 relative: a K x K solve of a well-conditioned system and a few traces.
    check_array(got[0], A, "the new A", rtol=1e-8, atol=1e-10, mistakes=[
        ("use the ridge sigma^2 diag(alpha) without the 1/N: the moments are per sample, the prior is not",
         no_n),
        ("leave out sigma^2 from the ridge (it is S_zz + sigma^2 diag(alpha) / N)", no_sigma),
        ("leave out the prior (the ridge): that is the maximum-likelihood M-step", Sxz @ np.linalg.inv(Szz)),
    ])
    check_array(got[1], s2, "the new sigma2", rtol=1e-8, atol=1e-12, mistakes=[
        ("use the shortcut tr(S - A S_xz^T) / d, which holds only without the ridge", np.trace(S - A @ Sxz.T) / d),
        ("use tr(S - 2 A S_xz^T + A S_zz A^T) without dividing by d", d * residual(A)),
    ])


@pytest.mark.points(1)
def test_bpca_m_step_with_a_switched_off_column(student):
    # alpha_k = inf holds a_k at exactly 0 (no nan from inf * 0 or a Cholesky solve with an infinite entry),
    # and the other columns are the ridge regression on the columns that are left.
    S, Sxz, Szz, sigma2, alpha, N = _bpca_case(inputs.rng(52))
    alpha[1] = np.inf
    A, s2 = bpca_m_step(S, Sxz, Szz, sigma2, alpha, N)
    got = check_tuple(student.bpca_m_step(S, Sxz, Szz, sigma2, alpha, N), 2,
                      "bpca_m_step(S, Sxz, Szz, sigma2, alpha, n_samples)", ("A", "sigma2"))
    check_array(got[0], A, "the new A with alpha_1 = inf (column 1 must be exactly 0; solve for the others alone)",
                rtol=1e-8, atol=1e-10)
    check_array(got[1], s2, "the new sigma2 with alpha_1 = inf", rtol=1e-8, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# ard_update(A) -> (K,)


@pytest.mark.points(1)
def test_ard_update_matches_reference(student):
    rng = inputs.rng(20)
    d, K = 12, 4
    A = rng.normal(size=(d, K)) * rng.uniform(0.1, 3.0, size=K)
    norms2 = np.sum(A**2, axis=0)
    check_array(student.ard_update(A), ard_update(A), "ard_update(A)", rtol=1e-10, atol=0, mistakes=[
        ("forget the d in alpha_k = d / ||a_k||^2 (eq-bpca-alpha)", 1.0 / norms2),
        ("divide by the norm ||a_k|| instead of its square", d / np.sqrt(norms2)),
        ("use the rows of A (one per feature) instead of its columns a_k", d / np.sum(A**2, axis=1)),
    ])


@pytest.mark.points(1)
def test_ard_update_maximises_the_prior_term(student):
    # eq-bpca-alpha maximises (d/2) log alpha_k - (alpha_k/2) ||a_k||^2: compare with a grid search,
    # and a switched-off column (exactly zero) gets alpha_k = inf.
    rng = inputs.rng(21)
    d, K = 7, 3
    A = rng.normal(size=(d, K))
    A[:, 1] = 0.0
    got = np.asarray(student.ard_update(A), dtype=float)
    check(got.shape == (K,), f"ard_update(A) must return one alpha_k per column, shape ({K},); got {got.shape}.")
    check(np.isposinf(got[1]), "A column of zeros (switched off) must get alpha_k = inf, not nan or a number.")
    for k in (0, 2):
        grid = np.exp(np.linspace(-8, 8, 20001))
        objective = 0.5 * d * np.log(grid) - 0.5 * grid * np.sum(A[:, k] ** 2)
        best = grid[np.argmax(objective)]
        check(abs(got[k] - best) <= 2e-3 * best,
              f"alpha_{k} = {got[k]:.4g}, but (d/2) log alpha - (alpha/2) ||a_k||^2 is largest near {best:.4g}.")


# ---------------------------------------------------------------------------------------------
# gaussian_entropy_full(L) -> (N,); kl_full_to_standard_normal(mu, L) -> (N,)


def _cholesky_factors(rng, N=4, K=3):
    L = np.tril(rng.normal(scale=0.7, size=(N, K, K)), k=-1)
    L[:, np.arange(K), np.arange(K)] = rng.uniform(0.2, 2.0, size=(N, K))
    return L


@pytest.mark.points(2)
def test_gaussian_entropy_full_matches_scipy(student):
    rng = inputs.rng(30)
    N, K = 5, 4
    L = _cholesky_factors(rng, N, K)
    expected = np.array([stats.multivariate_normal(np.zeros(K), l @ l.T).entropy() for l in L])
    logdiag = np.log(np.diagonal(L, axis1=1, axis2=2)).sum(axis=1)
    const = 0.5 * K * np.log(2 * np.pi * np.e)
    check_array(student.gaussian_entropy_full(L), expected, "gaussian_entropy_full(L)", rtol=1e-9, atol=1e-10,
                mistakes=[
                    ("take half the sum of log L_kk: log|Sigma| = 2 sum_k log L_kk, so the entropy has sum_k log L_kk",
                     const + 0.5 * logdiag),
                    ("leave out the constant (K/2) log(2 pi e)", logdiag),
                    ("use (K/2) log(2 pi) without the e (the 1/2 from E[z^T Sigma^{-1} z] = K)",
                     0.5 * K * np.log(2 * np.pi) + logdiag),
                ])


def _kl_reference(mu, L):
    """KL(q || N(0, I)) = E_q[-log N(z; 0, I)] - H(q), with H from scipy."""
    K = mu.shape[1]
    cross = 0.5 * (K * np.log(2 * np.pi) + np.sum(L**2, axis=(1, 2)) + np.sum(mu**2, axis=1))
    return cross - np.array([stats.multivariate_normal(np.zeros(K), l @ l.T).entropy() for l in L])


@pytest.mark.points(2)
def test_kl_full_to_standard_normal_matches_reference(student):
    rng = inputs.rng(31)
    N, K = 6, 3
    mu = rng.normal(size=(N, K))
    L = _cholesky_factors(rng, N, K)
    expected = _kl_reference(mu, L)
    logdiag = np.log(np.diagonal(L, axis1=1, axis2=2)).sum(axis=1)
    trace = np.sum(L**2, axis=(1, 2))
    diag_trace = np.sum(np.diagonal(L, axis1=1, axis2=2) ** 2, axis=1)
    mm = np.sum(mu**2, axis=1)
    check_array(student.kl_full_to_standard_normal(mu, L), expected, "kl_full_to_standard_normal(mu, L)",
                rtol=1e-9, atol=1e-10, mistakes=[
                    ("take tr(Sigma) as sum_k L_kk^2: Sigma = L L^T, so tr(Sigma) = sum of all L_ij^2",
                     0.5 * (diag_trace + mm - K) - logdiag),
                    ("use sum_k log L_kk as log|Sigma| (it is 2 sum_k log L_kk)", 0.5 * (trace + mm - K) - 0.5 * logdiag),
                    ("forget the -K", 0.5 * (trace + mm) - logdiag),
                ])


@pytest.mark.points(1)
def test_kl_full_to_standard_normal_by_monte_carlo(student):
    # An independent check of the closed form: the average of log q(z) - log N(z; 0, I) over samples
    # z = mu + L eps; five standard errors (estimated from the same samples) of tolerance.
    rng = inputs.rng(32)
    K = 3
    mu = rng.normal(size=(1, K))
    L = _cholesky_factors(rng, 1, K)
    z = mu[0] + rng.standard_normal((200_000, K)) @ L[0].T
    logw = stats.multivariate_normal(mu[0], L[0] @ L[0].T).logpdf(z) - stats.multivariate_normal(np.zeros(K)).logpdf(z)
    got = float(np.asarray(student.kl_full_to_standard_normal(mu, L), dtype=float).ravel()[0])
    se = logw.std() / np.sqrt(len(logw))
    check(abs(got - logw.mean()) <= 5 * se + 1e-9,
          f"kl_full_to_standard_normal gives {got:.4f}; a Monte Carlo estimate of E_q[log q(z) - log p(z)] is "
          f"{logw.mean():.4f} +- {se:.1g}.")
    check(abs(float(np.asarray(student.kl_full_to_standard_normal(np.zeros((1, K)), np.eye(K)[None])).ravel()[0]))
          < 1e-12, "KL(N(0, I) || N(0, I)) must be 0.")


# ---------------------------------------------------------------------------------------------
# flow_logdet(z, W_m, b_m, W_s, b_s) -> (z_new, logdet)


def _iaf_layer(rng, N=4, K=5, scale=1.0):
    z = rng.normal(size=(N, K))
    W_m, W_s = (np.tril(rng.normal(scale=scale, size=(K, K)), k=-1) for _ in range(2))
    b_m, b_s = rng.normal(size=K), rng.normal(scale=1.5, size=K)
    return z, W_m, b_m, W_s, b_s


def _layer(z, W_m, b_m, W_s, b_s):
    m, s = z @ W_m.T + b_m, z @ W_s.T + b_s
    sigma = expit(s)
    return sigma * z + (1 - sigma) * m


def _fd_logdet(z, *params, h=1e-6):
    """log |det dz_new/dz| of one sample, from a Jacobian by central differences."""
    K = len(z)
    J = np.column_stack([(_layer(z + h * e, *params) - _layer(z - h * e, *params)) / (2 * h) for e in np.eye(K)])
    return np.linalg.slogdet(J)[1]


@pytest.mark.points(3)
@pytest.mark.parametrize("seed", [0, 1])
def test_flow_logdet_matches_the_jacobian(student, seed):
    rng = inputs.rng(40 + seed)
    z, W_m, b_m, W_s, b_s = _iaf_layer(rng)
    got = check_tuple(student.flow_logdet(z, W_m, b_m, W_s, b_s), 2, "flow_logdet(z, W_m, b_m, W_s, b_s)",
                      ("z_new", "logdet"))
    check_array(got[0], _layer(z, W_m, b_m, W_s, b_s), "z_new", rtol=1e-10, atol=1e-12)
    expected = np.array([_fd_logdet(zn, W_m, b_m, W_s, b_s) for zn in z])
    s = z @ W_s.T + b_s
    # 1e-5: the finite-difference Jacobian is accurate to about 1e-8 per entry.
    check_array(got[1], expected, "logdet, log|det dz_new/dz| per sample", rtol=1e-5, atol=1e-5, mistakes=[
        ("use log(1 - sigma) instead of log(sigma): the diagonal of the Jacobian is sigma_i "
         "(m_i depends only on z_1..z_{i-1})", np.sum(np.log1p(-expit(s)), axis=1)),
        ("sum the log-determinant over the batch instead of one value per sample",
         np.full(len(z), np.sum(np.log(expit(s))))),
        ("take log sigma = s: sigma = sigmoid(s), so log sigma = -log(1 + exp(-s))", np.sum(s, axis=1)),
    ])


@pytest.mark.points(1)
def test_flow_logdet_with_large_negative_pre_activations(student):
    # s_i near -800: sigmoid(s) underflows to 0 and log(sigmoid(s)) = -inf; log sigma = -logaddexp(0, -s)
    # stays finite (about s).
    rng = inputs.rng(42)
    z, W_m, b_m, W_s, b_s = _iaf_layer(rng, scale=0.1)
    b_s = np.full_like(b_s, -800.0)
    s = z @ W_s.T + b_s
    got = check_tuple(student.flow_logdet(z, W_m, b_m, W_s, b_s), 2, "flow_logdet(z, W_m, b_m, W_s, b_s)",
                      ("z_new", "logdet"))
    check_array(got[1], -np.logaddexp(0.0, -s).sum(axis=1),
                "logdet with pre-activations s near -800 (compute log sigmoid(s) as -logaddexp(0, -s), "
                "not np.log(expit(s)), which is -inf there)", rtol=1e-10, atol=1e-8)
