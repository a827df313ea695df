"""Autograder tests of book/exercises/vae.md (chapters 9-11): KL, ELBO, reparameterisation, decoders.

The student's functions run in their own process (the ``student`` fixture) and are compared with
the package's ELBO pieces (``nlgm.elbo``, in PyTorch, float64), which each test also checks
against an independent computation: scipy.stats densities, the Gaussian KL of ``lgm``, the
identity log p(x) = ELBO + KL(q || p(z | x)) on a linear Gaussian model, and analytic gradients.
Tolerances: 1e-8 relative for closed forms (float64 rounding is about 1e-13); Monte Carlo tests
use the standard error the test computes itself from the same samples, and are deterministic
because the noise is given.
"""
import numpy as np
import pytest
import torch
from scipy import stats
from scipy.special import expit

import nlgm
from pca_to_vae_grader import inputs
from pca_to_vae_grader.compare import check, check_array, check_tuple
from pca_to_vae_grader.inputs import spd_matrix
from lgm import kl_gaussians
from lgm.linear_gaussian import log_likelihood, posterior


def _t(a):
    return torch.as_tensor(np.asarray(a, dtype=float))


def _encoder_output(rng, N, K):
    return rng.normal(scale=1.5, size=(N, K)), rng.normal(size=(N, K))


def _model(rng, N, d, K):
    A, D = rng.normal(size=(d, K)), rng.uniform(0.2, 1.5, size=d)
    X = rng.normal(size=(N, K)) @ A.T + rng.normal(size=(N, d)) * np.sqrt(D)
    return X, A, D


# ---------------------------------------------------------------------------------------------
# kl_to_standard_normal(mu, logvar) -> (N,)


def _kl_mistakes(mu, logvar):
    K = mu.shape[1]
    var = np.exp(logvar)
    kl = 0.5 * np.sum(var + mu**2 - 1 - logvar, axis=1)
    return [
        ("use the lecture's garbled formula 1/2 (tr Sigma + mu^T (mu - d - log|Sigma|)) (with K for d)",
         0.5 * (var.sum(axis=1) + np.sum(mu**2, axis=1) - (K + logvar.sum(axis=1)) * mu.sum(axis=1))),
        ("flip the sign: KL(q || p) is >= 0", -kl),
        ("forget the factor 1/2", 2 * kl),
        ("use the standard deviation exp(logvar / 2) where the variance exp(logvar) belongs",
         0.5 * np.sum(np.exp(logvar / 2) + mu**2 - 1 - logvar, axis=1)),
        ("forget the -1 inside the sum (it makes the KL zero at the prior)", kl + K / 2),
        ("sum over all rows instead of one value per row", np.full(mu.shape[0], kl.sum())),
    ]


@pytest.mark.points(2)
@pytest.mark.parametrize("N, K, seed", [(6, 3, 0), (1, 1, 1), (10, 8, 2)])
def test_kl_to_standard_normal_matches_reference(student, N, K, seed):
    mu, logvar = _encoder_output(inputs.rng(seed), N, K)
    expected = nlgm.kl_to_standard_normal(_t(mu), _t(logvar)).numpy()
    independent = [kl_gaussians(m, np.diag(np.exp(s)), np.zeros(K), np.eye(K)) for m, s in zip(mu, logvar)]
    assert np.allclose(expected, independent, rtol=1e-10, atol=1e-12)
    check_array(student.kl_to_standard_normal(mu, logvar), expected,
                f"kl_to_standard_normal(mu, logvar) for N={N}, K={K}", rtol=1e-8, atol=1e-10,
                mistakes=_kl_mistakes(mu, logvar))


@pytest.mark.points(1)
def test_kl_to_standard_normal_zero_at_prior_positive_elsewhere(student):
    mu, logvar = np.zeros((3, 4)), np.zeros((3, 4))
    check_array(student.kl_to_standard_normal(mu, logvar), np.zeros(3),
                "kl_to_standard_normal at the prior itself (mu = 0, logvar = 0)", rtol=0, atol=1e-12,
                mistakes=_kl_mistakes(mu, logvar))
    mu, logvar = _encoder_output(inputs.rng(3), 5, 4)
    kl = np.asarray(student.kl_to_standard_normal(mu, logvar), dtype=float)
    check(kl.shape == (5,) and np.all(kl > 0),
          f"kl_to_standard_normal returned {np.round(kl, 4)} for five Gaussians that differ from the prior: "
          "each KL must be positive, one value per row (shape (5,)).")
    # Positive is not enough (any positive constant is): the values must be the KL divergences.
    check_array(kl, nlgm.kl_to_standard_normal(_t(mu), _t(logvar)).numpy(),
                "kl_to_standard_normal away from the prior", rtol=1e-6, atol=1e-8, mistakes=_kl_mistakes(mu, logvar))


@pytest.mark.points(1)
def test_kl_to_standard_normal_extreme_logvar(student):
    # Variances from about e^-30 to e^20: every term is finite in float64; 1e-10 relative tolerance.
    rng = inputs.rng(13)
    mu = np.array([[0.0, 3.0, -40.0], [1.0, 0.0, 0.0]]) * rng.uniform(0.5, 1.5)
    logvar = np.array([[-30.0, 20.0, 0.0], [5.0, -10.0, 1e-8]]) * rng.uniform(0.8, 1.0, size=(2, 3))
    expected = nlgm.kl_to_standard_normal(_t(mu), _t(logvar)).numpy()
    check_array(student.kl_to_standard_normal(mu, logvar), expected,
                "kl_to_standard_normal with log-variances from -30 to 20", rtol=1e-10, atol=1e-10,
                mistakes=_kl_mistakes(mu, logvar))


# ---------------------------------------------------------------------------------------------
# elbo_lgm(X, A, D, means, cov) -> (N,)


def _elbo_case(seed, N=6, d=5, K=2):
    rng = inputs.rng(seed)
    X, A, D = _model(rng, N, d, K)
    M, Sigma = posterior(X, A, D)
    means, cov = M + rng.normal(scale=0.5, size=M.shape), spd_matrix(rng, K) * 0.3
    # The reference: ELBO = log p(x) - KL(q || p(z | x)), the identity of chapter 9, with the
    # exact log-likelihood and posterior of lgm and its Gaussian KL.
    expected = log_likelihood(X, A, D) - np.array([kl_gaussians(m, cov, p, Sigma) for m, p in zip(means, M)])
    return X, A, D, means, cov, expected


def _elbo_mistakes(X, A, D, means, cov):
    d, K = A.shape
    R = X - means @ A.T
    spread = np.trace((A.T / D) @ A @ cov)
    rec = -0.5 * (d * np.log(2 * np.pi) + np.sum(np.log(D)) + np.sum(R**2 / D, axis=1))
    kl = 0.5 * (np.trace(cov) + np.sum(means**2, axis=1) - K - np.linalg.slogdet(cov)[1])
    return [("forget the trace term tr(A^T D^{-1} A S): plugging in the mean m alone ignores the spread of q",
             rec - kl),
            ("add the KL instead of subtracting it", rec - 0.5 * spread + kl),
            ("forget the KL term", rec - 0.5 * spread),
            ("use tr(A^T A S) without D^{-1}", rec - 0.5 * np.trace(A.T @ A @ cov) - kl)]


@pytest.mark.points(2)
@pytest.mark.parametrize("seed", [0, 1])
def test_elbo_lgm_matches_identity(student, seed):
    X, A, D, means, cov, expected = _elbo_case(10 + seed)
    check_array(student.elbo_lgm(X, A, D, means, cov), expected, "elbo_lgm(X, A, D, means, cov)",
                rtol=1e-8, atol=1e-8, mistakes=_elbo_mistakes(X, A, D, means, cov))


@pytest.mark.points(1)
def test_elbo_lgm_equals_loglik_at_exact_posterior(student):
    # With q the exact posterior the bound is tight: ELBO = log p(x) (to rounding, 1e-8).
    X, A, D = _model(inputs.rng(12), 8, 6, 3)
    M, Sigma = posterior(X, A, D)
    check_array(student.elbo_lgm(X, A, D, M, Sigma), log_likelihood(X, A, D),
                "elbo_lgm at the exact posterior, which must equal log p(x)", rtol=1e-8, atol=1e-8,
                mistakes=_elbo_mistakes(X, A, D, M, Sigma))


@pytest.mark.points(1)
def test_elbo_lgm_below_loglik(student):
    rng = inputs.rng(13)
    X, A, D = _model(rng, 5, 4, 2)
    log_p = log_likelihood(X, A, D)
    for _ in range(5):
        means, cov = rng.normal(size=(5, 2)), spd_matrix(rng, 2)
        elbo = np.asarray(student.elbo_lgm(X, A, D, means, cov), dtype=float)
        check(elbo.shape == (5,), f"elbo_lgm must return one value per row of X, shape (5,); got {elbo.shape}.")
        check(np.all(elbo <= log_p + 1e-10),
              f"Your ELBO exceeds log p(x) by up to {np.max(elbo - log_p):.1g}: a lower bound never does. "
              "A missing trace term tr(A^T D^{-1} A S) is the usual cause.")
        # A bound of -inf or -1e300 is below log p(x) too: the gap must be KL(q || p(z | x)), no more.
        M, Sigma = posterior(X, A, D)
        kl = np.array([kl_gaussians(m, cov, mp, Sigma) for m, mp in zip(means, M)])
        check(np.all(np.isfinite(elbo)) and np.all(log_p - elbo <= 1.5 * kl + 1e-6 * (1 + np.abs(log_p))),
              f"Your ELBO is below log p(x) by up to {np.max(log_p - elbo):.1g}, more than the gap KL(q || p(z | x)) "
              "allows: the ELBO equals log p(x) - KL(q || p(z | x)), so it is a tight bound, not any small number.")
        # And log p(x) itself, which ignores q, is not a bound that is "below" it: the gap is the KL.
        check(np.all(log_p - elbo >= 0.5 * kl - 1e-6 * (1 + np.abs(log_p))),
              f"Your ELBO is below log p(x) by only {np.min(log_p - elbo):.1g} where the gap KL(q || p(z | x)) is "
              f"{kl[np.argmin(log_p - elbo - kl)]:.1g}: does your ELBO depend on the means and cov of q?")


# ---------------------------------------------------------------------------------------------
# reparam(mu, logvar, eps) -> shape of eps


def _reparam_mistakes(mu, logvar, eps):
    return [("scale the noise by the variance exp(logvar) instead of the standard deviation exp(logvar / 2)",
             mu + np.exp(logvar) * eps),
            ("scale the noise by logvar itself", mu + logvar * eps),
            ("scale by exp(-logvar / 2) (the inverse standard deviation)", mu + np.exp(-logvar / 2) * eps)]


@pytest.mark.points(2)
@pytest.mark.parametrize("shape", [(7, 3), (4, 7, 3)], ids=["N-K", "J-N-K"])
def test_reparam_matches_reference(student, shape):
    rng = inputs.rng(20)
    mu, logvar = _encoder_output(rng, 7, 3)
    eps = rng.normal(size=shape)
    expected = nlgm.reparameterise(_t(mu), _t(logvar), _t(eps)).numpy()
    assert np.allclose(expected, mu + np.sqrt(np.exp(logvar)) * eps, rtol=1e-12, atol=1e-14)
    check_array(student.reparam(mu, logvar, eps), expected, f"reparam(mu, logvar, eps) with eps of shape {shape}",
                rtol=1e-10, atol=1e-12, mistakes=_reparam_mistakes(mu, logvar, eps))


@pytest.mark.points(1)
def test_reparam_tiny_and_large_variance(student):
    # logvar about -60: sigma ~ 1e-13, so z = mu to within 1e-12; logvar about 8: sigma ~ e^4.
    rng = inputs.rng(14)
    mu, logvar = rng.normal(scale=2.0, size=(1, 2)), np.array([[-60.0, 8.0]]) + rng.uniform(-1, 1, size=(1, 2))
    eps = rng.normal(size=(2, 1, 2))
    check_array(student.reparam(mu, logvar, eps), mu + np.exp(logvar / 2) * eps,
                "reparam with log-variances -60 and 8", rtol=1e-10, atol=1e-12, mistakes=_reparam_mistakes(mu, logvar, eps))


# ---------------------------------------------------------------------------------------------
# pathwise_grad(logvar, eps, grad_z) -> (grad_mu, grad_logvar)


def _autograd(mu, logvar, eps, grad_z):
    """Back-propagate grad_z through the package's reparameterisation: the pathwise estimate."""
    mu_t, logvar_t = _t(mu).requires_grad_(), _t(logvar).requires_grad_()
    z = nlgm.reparameterise(mu_t, logvar_t, _t(eps))
    (torch.sum(z * _t(grad_z)) / eps.shape[0]).backward()
    return mu_t.grad.numpy(), logvar_t.grad.numpy()


def _pathwise_mistakes(logvar, eps, grad_z):
    J = eps.shape[0]
    sigma = np.exp(logvar / 2)
    g_mu = grad_z.mean(axis=0)
    g_s = np.mean(grad_z * eps, axis=0) * sigma / 2
    return ([("sum over the J samples instead of averaging", J * g_mu)],
            [("use d z / d logvar = sigma eps without the 1/2 (the lecture's diag(eps) Sigma^{1/2})", 2 * g_s),
             ("forget the factor sigma from d sigma / d logvar = sigma / 2", np.mean(grad_z * eps, axis=0) / 2),
             ("sum over the J samples instead of averaging", J * g_s),
             ("differentiate with respect to sigma instead of logvar", np.mean(grad_z * eps, axis=0))])


@pytest.mark.points(2)
@pytest.mark.parametrize("J, N, K, seed", [(50, 4, 3, 0), (1, 2, 1, 1)])
def test_pathwise_grad_matches_autograd(student, J, N, K, seed):
    rng = inputs.rng(30 + seed)
    mu, logvar = _encoder_output(rng, N, K)
    eps = rng.normal(size=(J, N, K))
    grad_z = np.cos(mu + np.exp(logvar / 2) * eps)  # the gradient of g(z) = sum_k sin(z_k)
    expected_mu, expected_s = _autograd(mu, logvar, eps, grad_z)
    g_mu, g_s = check_tuple(student.pathwise_grad(logvar, eps, grad_z), 2, "pathwise_grad(logvar, eps, grad_z)",
                            ("grad_mu", "grad_logvar"))
    mistakes_mu, mistakes_s = _pathwise_mistakes(logvar, eps, grad_z)
    check_array(g_mu, expected_mu, f"grad_mu from pathwise_grad (J={J}, N={N}, K={K})", rtol=1e-8, atol=1e-12,
                mistakes=mistakes_mu)
    check_array(g_s, expected_s, f"grad_logvar from pathwise_grad (J={J}, N={N}, K={K})", rtol=1e-8, atol=1e-12,
                mistakes=mistakes_s)


def _sine_case(rng):
    """g(z) = sum_k sin z_k at random (mu, logvar), 20000 samples: the inputs, the exact gradients of E_q[g]
    and the standard errors of the pathwise estimates."""
    mu, logvar = rng.uniform(-2.0, 2.0, size=(1, 3)), rng.uniform(-1.0, 0.5, size=(1, 3))
    eps = rng.normal(size=(20_000, 1, 3))
    sigma = np.exp(logvar / 2)
    grad_z = np.cos(mu + sigma * eps)
    exact = (np.cos(mu) * np.exp(-sigma**2 / 2), -0.5 * sigma**2 * np.sin(mu) * np.exp(-sigma**2 / 2))
    se = (grad_z.std(axis=0) / np.sqrt(len(eps)), (grad_z * eps * sigma / 2).std(axis=0) / np.sqrt(len(eps)))
    return mu, logvar, eps, grad_z, exact, se


def _within(estimates, exact, se, bound):
    return all(np.all(np.abs(g - e) < bound * s) for g, e, s in zip(estimates, exact, se))


@pytest.mark.points(1)
def test_pathwise_grad_unbiased_for_sine(student):
    # g(z) = sum_k sin z_k has E_q[g] = sum_k sin(mu_k) exp(-sigma_k^2 / 2), so the exact gradients
    # are cos(mu) exp(-sigma^2/2) and -sigma^2/2 sin(mu) exp(-sigma^2/2). With J = 20000 samples the
    # estimate must lie within 4 standard errors (computed here from the same samples). The inputs
    # change with every run (an answer learned from feedback does not carry over); only those on which
    # the package's estimate is within 3 standard errors are used, so a correct estimate never fails.
    mu, logvar, eps, grad_z, exact, se = inputs.case_where(
        lambda case: _within(_autograd(*case[:4]), *case[4:], 3.0), _sine_case, 32)
    g_mu, g_s = check_tuple(student.pathwise_grad(logvar, eps, grad_z), 2, "pathwise_grad(logvar, eps, grad_z)",
                            ("grad_mu", "grad_logvar"))
    g_mu, g_s = np.asarray(g_mu, dtype=float), np.asarray(g_s, dtype=float)
    check(g_mu.shape == (1, 3) and g_s.shape == (1, 3),
          f"pathwise_grad must return two (N, K) = (1, 3) arrays; got {g_mu.shape} and {g_s.shape}.")
    for name, got, exact_, se_ in (("grad_mu", g_mu, exact[0], se[0]), ("grad_logvar", g_s, exact[1], se[1])):
        z_scores = np.abs(got - exact_) / se_
        check(np.all(z_scores < 4),
              f"{name} is {np.round(z_scores, 1)} standard errors from the exact gradient of E_q[sum sin z]; an "
              "unbiased estimate with 20000 samples is within 4."
              + (" Check the chain rule: d z / d logvar = sigma eps / 2." if name == "grad_logvar" else ""))


# ---------------------------------------------------------------------------------------------
# gaussian_nll(x, mean, logvar) and bernoulli_nll(x, logits)


def _gaussian_nll_mistakes(x, mean, logvar):
    sq = (x - mean) ** 2
    return [("drop the normalising terms log 2 pi + logvar (the squared error alone is not the NLL)",
             0.5 * np.sum(sq / np.exp(logvar), axis=-1)),
            ("use the standard deviation exp(logvar / 2) where the variance belongs",
             0.5 * np.sum(np.log(2 * np.pi) + logvar + sq / np.exp(logvar / 2), axis=-1)),
            ("forget the factor 1/2", np.sum(np.log(2 * np.pi) + logvar + sq / np.exp(logvar), axis=-1)),
            ("return log p instead of -log p", -0.5 * np.sum(np.log(2 * np.pi) + logvar + sq / np.exp(logvar), axis=-1))]


@pytest.mark.points(2)
@pytest.mark.parametrize("mean_shape", [(6, 4), (3, 6, 4)], ids=["N-d", "J-N-d"])
def test_gaussian_nll_matches_scipy(student, mean_shape):
    rng = inputs.rng(40)
    x, mean, logvar = rng.normal(size=(6, 4)), rng.normal(size=mean_shape), rng.normal(scale=0.7, size=4)
    expected = -nlgm.gaussian_log_likelihood(_t(x), _t(mean), _t(logvar)).numpy()
    assert np.allclose(expected, -stats.norm(mean, np.exp(logvar / 2)).logpdf(x).sum(axis=-1), rtol=1e-12)
    check_array(student.gaussian_nll(x, mean, logvar), expected,
                f"gaussian_nll(x, mean, logvar) with mean of shape {mean_shape}", rtol=1e-8, atol=1e-10,
                mistakes=_gaussian_nll_mistakes(x, mean, logvar))


def _bernoulli_mistakes(x, logits):
    y = expit(logits)
    with np.errstate(divide="ignore", invalid="ignore"):
        return [("forget the (1 - x) log(1 - y) term", -np.sum(x * np.log(y), axis=-1)),
                ("return log p instead of -log p", np.sum(x * logits - np.logaddexp(0, logits), axis=-1)),
                ("average over the coordinates instead of summing",
                 np.mean(np.logaddexp(0, logits) - x * logits, axis=-1))]


@pytest.mark.points(2)
@pytest.mark.parametrize("logits_shape", [(6, 5), (2, 6, 5)], ids=["N-d", "J-N-d"])
def test_bernoulli_nll_matches_scipy(student, logits_shape):
    rng = inputs.rng(41)
    x, logits = rng.integers(0, 2, size=(6, 5)).astype(float), rng.normal(scale=3.0, size=logits_shape)
    expected = -nlgm.bernoulli_log_likelihood(_t(x), _t(logits)).numpy()
    assert np.allclose(expected, -stats.bernoulli(expit(logits)).logpmf(x).sum(axis=-1), rtol=1e-10)
    check_array(student.bernoulli_nll(x, logits), expected,
                f"bernoulli_nll(x, logits) with logits of shape {logits_shape}", rtol=1e-8, atol=1e-10,
                mistakes=_bernoulli_mistakes(x, logits))


@pytest.mark.points(1)
def test_bernoulli_nll_stable_for_large_logits(student):
    # softplus(l) - x l for l = +-50, +-500: the exact values are 50 or 500 when the data
    # disagree with the logit, and e^-50 ~ 2e-22 (or 0) when they agree. sigmoid(50) rounds to 1
    # in float64, so log(1 - sigmoid(50)) = log 0: the naive formula gives inf or nan.
    x = np.array([[1.0, 0.0, 1.0, 0.0], [1.0, 0.0, 1.0, 0.0]])
    size = inputs.rng(15).uniform(1.0, 1.2, size=(2, 1))  # drawn anew in every run
    logits = np.array([[50.0, 50.0, -50.0, -50.0], [500.0, 500.0, -500.0, -500.0]]) * size
    expected = -nlgm.bernoulli_log_likelihood(_t(x), _t(logits)).numpy()
    assert np.allclose(expected, 2 * np.array([50.0, 500.0]) * size[:, 0], rtol=1e-12)
    for column in range(4):  # one entry at a time, so the message names the case
        xc, lc = x[:, column:column + 1], logits[:, column:column + 1]
        what = f"bernoulli_nll for x = {xc[0, 0]:g} and logits {lc[0, 0]:g} and {lc[1, 0]:g}"
        got = np.asarray(student.bernoulli_nll(xc, lc), dtype=float)
        check(np.all(np.isfinite(got)),
              f"{what} returned {got}, not finite numbers. sigmoid(50) rounds to 1 in float64, so log(1 - y) "
              "is log 0, and 0 * log 0 is nan. Use the stable form softplus(l) - x l, with softplus(l) = "
              "np.logaddexp(0, l).")
        check_array(got, np.logaddexp(0, lc[:, 0]) - xc[:, 0] * lc[:, 0], what, rtol=1e-8, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# neg_elbo(X, mu, logvar, eps, A, logvar_x) -> (N,)


def _reconstruction(X, mu, logvar, eps, A, logvar_x):
    """-log p(x_n | z_nj) for every sample: shape (J, N), through the package."""
    z = nlgm.reparameterise(_t(mu), _t(logvar), _t(eps))
    return -nlgm.gaussian_log_likelihood(_t(X), z @ _t(A).T, _t(logvar_x)).numpy()


def _neg_elbo_reference(X, mu, logvar, eps, A, logvar_x):
    rec = nlgm.gaussian_log_likelihood(_t(X), nlgm.reparameterise(_t(mu), _t(logvar), _t(eps)) @ _t(A).T,
                                       _t(logvar_x))
    return -nlgm.monte_carlo_elbo(rec, nlgm.kl_to_standard_normal(_t(mu), _t(logvar))).numpy()


def _neg_elbo_mistakes(X, mu, logvar, eps, A, logvar_x):
    J = eps.shape[0]
    rec = _reconstruction(X, mu, logvar, eps, A, logvar_x).mean(axis=0)
    kl = 0.5 * np.sum(np.exp(logvar) + mu**2 - 1 - logvar, axis=1)
    return [("sum the reconstruction terms over the J samples instead of averaging them (the KL then weighs "
             "J times too little)", J * rec + kl),
            ("subtract the KL instead of adding it", rec - kl),
            ("divide the KL by J as well", rec + kl / J),
            ("decode the means mu instead of the samples z", -nlgm.gaussian_log_likelihood(
                _t(X), _t(mu) @ _t(A).T, _t(logvar_x)).numpy() + kl)]


@pytest.mark.points(2)
@pytest.mark.parametrize("J, seed", [(1, 0), (6, 1)])
def test_neg_elbo_matches_reference(student, J, seed):
    rng = inputs.rng(50 + seed)
    N, d, K = 5, 4, 2
    X, A, D = _model(rng, N, d, K)
    mu, logvar = rng.normal(size=(N, K)), rng.normal(scale=0.5, size=(N, K))
    eps, logvar_x = rng.normal(size=(J, N, K)), np.log(D)
    expected = _neg_elbo_reference(X, mu, logvar, eps, A, logvar_x)
    # the same from scipy: mean over j of -log N(x; A z_j, D), plus the closed-form KL
    Z = mu + np.exp(logvar / 2) * eps
    by_scipy = (-stats.norm(Z @ A.T, np.sqrt(D)).logpdf(X).sum(axis=-1).mean(axis=0)
                + 0.5 * np.sum(np.exp(logvar) + mu**2 - 1 - logvar, axis=1))
    assert np.allclose(expected, by_scipy, rtol=1e-10)
    check_array(student.neg_elbo(X, mu, logvar, eps, A, logvar_x), expected,
                f"neg_elbo(X, mu, logvar, eps, A, logvar_x) with J = {J}", rtol=1e-8, atol=1e-8,
                mistakes=_neg_elbo_mistakes(X, mu, logvar, eps, A, logvar_x))


def _closed_form_case(rng):
    """An LGM, a diagonal q and J = 4000 samples: the inputs, the closed-form negative ELBO and the
    standard errors of the Monte Carlo estimate."""
    N, d, K, J = 3, 5, 2, 4000
    X, A, D = _model(rng, N, d, K)
    mu, logvar = rng.normal(size=(N, K)), rng.normal(scale=0.3, size=(N, K))
    eps = rng.normal(size=(J, N, K))
    M, Sigma = posterior(X, A, D)
    exact = -(log_likelihood(X, A, D) - np.array(
        [kl_gaussians(m, np.diag(np.exp(s)), p, Sigma) for m, s, p in zip(mu, logvar, M)]))
    se = _reconstruction(X, mu, logvar, eps, A, np.log(D)).std(axis=0) / np.sqrt(J)
    return X, mu, logvar, eps, A, np.log(D), exact, se


@pytest.mark.points(1)
def test_neg_elbo_many_samples_match_closed_form(student):
    # A linear decoder has a closed-form ELBO (exercise 9.2, here as log p - KL(q || posterior)).
    # With J = 4000 samples the Monte Carlo estimate is within 4 standard errors of it; the
    # standard error is computed here from the same samples. The inputs change with every run; only
    # those on which the package's estimate is within 3 standard errors are used, so a correct
    # estimate never fails.
    *case, exact, se = inputs.case_where(
        lambda c: np.all(np.abs(_neg_elbo_reference(*c[:6]) - c[6]) < 3 * c[7]), _closed_form_case, 52)
    got = check_array(student.neg_elbo(*case), exact,
                      "neg_elbo with J = 4000 samples, compared with the closed-form negative ELBO",
                      rtol=0, atol=4 * se.max(), mistakes=_neg_elbo_mistakes(*case))
    check(np.all(np.abs(got - exact) < 4 * se),
          f"neg_elbo is {np.round(np.abs(got - exact) / se, 1)} standard errors from the closed form; "
          "an unbiased estimate is within 4.")
