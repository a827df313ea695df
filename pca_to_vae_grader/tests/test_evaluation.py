"""Autograder tests of book/exercises/evaluation.md (chapter 12): importance-weighted log-likelihood.

The student's functions run in their own process (the ``student`` fixture) and are compared with
the package's importance weighting (``nlgm.elbo``, PyTorch in float64), which each test also checks
against scipy (``logsumexp``, ``stats.norm``), and with the exact log-likelihood of a linear
Gaussian model (``lgm.linear_gaussian.log_likelihood``). The noise is given to the student's
function, so every Monte Carlo test is deterministic; its tolerance is stated in standard errors
computed here from the same samples.
"""
import numpy as np
import pytest
import torch
from scipy import stats
from scipy.special import logsumexp

import nlgm
from pca_to_vae_grader import inputs
from pca_to_vae_grader.compare import check, check_array
from lgm.linear_gaussian import log_likelihood, posterior


def _t(a):
    return torch.as_tensor(np.asarray(a, dtype=float))


# ---------------------------------------------------------------------------------------------
# iwae_bound(logw) -> (N,)


def _iwae_mistakes(logw):
    S = logw.shape[0]
    with np.errstate(divide="ignore", over="ignore"):
        return [("average the log-weights (that is the ELBO, not the importance-weighted bound)", logw.mean(axis=0)),
                ("forget the -log S (the mean of the weights, not their sum)", logsumexp(logw, axis=0)),
                ("take the largest log-weight instead of the logsumexp", logw.max(axis=0)),
                ("reduce over axis 1 instead of axis 0 (the S samples of point n are column n)",
                 logsumexp(logw, axis=1) - np.log(logw.shape[1]) if logw.shape[1] == S else np.full(1, np.nan))]


@pytest.mark.points(2)
@pytest.mark.parametrize("S, N, seed", [(10, 4, 0), (1, 3, 1), (50, 50, 2)])
def test_iwae_bound_matches_reference(student, S, N, seed):
    logw = inputs.rng(seed).normal(loc=-5.0, scale=3.0, size=(S, N))
    expected = nlgm.importance_weighted_log_likelihood(_t(logw)).numpy()
    assert np.allclose(expected, logsumexp(logw, axis=0) - np.log(S), rtol=1e-12)
    check_array(student.iwae_bound(logw), expected, f"iwae_bound(logw) for logw of shape (S, N) = {(S, N)}",
                rtol=1e-10, atol=1e-10, mistakes=_iwae_mistakes(logw))


@pytest.mark.points(1)
def test_iwae_bound_between_mean_and_max_logweight(student):
    # Jensen: the log of the mean weight is at least the mean log-weight, and at most the largest.
    logw = inputs.rng(3).normal(scale=2.0, size=(30, 8))
    bound = check_array(student.iwae_bound(logw), logsumexp(logw, axis=0) - np.log(30), "iwae_bound(logw)",
                        rtol=1e-10, atol=1e-10, mistakes=_iwae_mistakes(logw))
    check(np.all(bound >= logw.mean(axis=0) - 1e-12) and np.all(bound <= logw.max(axis=0) + 1e-12),
          "iwae_bound must lie between the mean and the largest log-weight of each column.")


@pytest.mark.points(2)
@pytest.mark.parametrize("offset", [-1e4, 1e3], ids=["log-w-near--1e4", "log-w-near-1e3"])
def test_iwae_bound_stable_for_extreme_logweights(student, offset):
    # exp(-1e4) is 0 and exp(1e3) is inf in float64, so exp-then-log gives -inf or inf; logsumexp
    # subtracts the largest log-weight first and is exact.
    logw = offset + inputs.rng(4).normal(size=(20, 3))
    expected = logsumexp(logw, axis=0) - np.log(20)
    got = np.asarray(student.iwae_bound(logw), dtype=float)
    check(got.shape != expected.shape or np.all(np.isfinite(got)),
          f"iwae_bound returned {got} for log-weights near {offset:g}, not finite numbers: exp({offset:g}) is "
          f"{'0' if offset < 0 else 'inf'} in float64. Use scipy.special.logsumexp, or subtract the largest log-weight of each "
          "column before exponentiating and add it back after the log.")
    check_array(got, expected, f"iwae_bound(logw) for log-weights near {offset:g}", rtol=1e-12, atol=1e-9,
                mistakes=_iwae_mistakes(logw))


# ---------------------------------------------------------------------------------------------
# is_log_likelihood(X, A, D, mu, logvar, eps) -> (N,)


def _model(rng, N, d, K):
    A, D = rng.normal(size=(d, K)), rng.uniform(0.2, 1.5, size=d)
    X = rng.normal(size=(N, K)) @ A.T + rng.normal(size=(N, d)) * np.sqrt(D)
    return X, A, D


def _log_weights(X, A, D, mu, logvar, eps):
    """log w_ns with scipy densities: shape (S, N)."""
    sigma = np.exp(logvar / 2)
    Z = mu + sigma * eps
    return (stats.norm(Z @ A.T, np.sqrt(D)).logpdf(X).sum(axis=-1) + stats.norm.logpdf(Z).sum(axis=-1)
            - stats.norm(mu, sigma).logpdf(Z).sum(axis=-1))


def _is_reference(X, A, D, mu, logvar, eps):
    z = nlgm.reparameterise(_t(mu), _t(logvar), _t(eps))
    log_px_given_z = nlgm.gaussian_log_likelihood(_t(X), z @ _t(A).T, torch.log(_t(D)))
    log_w = nlgm.importance_log_weights(log_px_given_z, z, _t(mu), _t(logvar))
    return nlgm.importance_weighted_log_likelihood(log_w).numpy()


def _is_mistakes(X, A, D, mu, logvar, eps):
    S = eps.shape[0]
    logw = _log_weights(X, A, D, mu, logvar, eps)
    sigma = np.exp(logvar / 2)
    Z = mu + sigma * eps
    log_q = stats.norm(mu, sigma).logpdf(Z).sum(axis=-1)
    log_prior = stats.norm.logpdf(Z).sum(axis=-1)
    return [("average the log-weights: that is the Monte Carlo ELBO, which stays below log p(x) by about "
             "KL(q || p(z | x)); the estimate is the log of the average weight", logw.mean(axis=0)),
            ("forget to subtract log q(z | x) from the log-weights", logsumexp(logw + log_q, axis=0) - np.log(S)),
            ("forget the prior log N(z; 0, I) in the log-weights", logsumexp(logw - log_prior, axis=0) - np.log(S)),
            ("forget the -log S", logsumexp(logw, axis=0))]


def _case(seed, N=4, d=5, K=2, shift=0.3, rng=None):
    """An LGM and a mismatched diagonal proposal: the posterior's mean shifted, its diagonal variances."""
    rng = inputs.rng(seed) if rng is None else rng
    X, A, D = _model(rng, N, d, K)
    M, Sigma = posterior(X, A, D)
    mu, logvar = M + shift, np.tile(np.log(np.diag(Sigma)), (N, 1))
    return rng, X, A, D, mu, logvar


@pytest.mark.points(2)
@pytest.mark.parametrize("S, seed", [(10, 0), (1, 1)])
def test_is_log_likelihood_matches_reference(student, S, seed):
    rng, X, A, D, mu, logvar = _case(10 + seed)
    eps = rng.normal(size=(S, X.shape[0], A.shape[1]))
    expected = _is_reference(X, A, D, mu, logvar, eps)
    assert np.allclose(expected, logsumexp(_log_weights(X, A, D, mu, logvar, eps), axis=0) - np.log(S), rtol=1e-10)
    check_array(student.is_log_likelihood(X, A, D, mu, logvar, eps), expected,
                f"is_log_likelihood with S = {S} samples", rtol=1e-8, atol=1e-8,
                mistakes=_is_mistakes(X, A, D, mu, logvar, eps))


@pytest.mark.points(1)
def test_is_log_likelihood_exact_with_true_posterior(student):
    # With A = D^{1/2} U diag(s) (U orthonormal), A^T D^{-1} A = diag(s^2) is diagonal, so the exact
    # posterior is a diagonal Gaussian. As proposal it makes every weight equal p(x): the estimate
    # is exact for any S (tolerance 1e-8, rounding only).
    rng = inputs.rng(20)
    d, K, N = 6, 2, 5
    D = rng.uniform(0.3, 1.2, size=d)
    U = np.linalg.qr(rng.normal(size=(d, K)))[0]
    A = np.sqrt(D)[:, None] * U * np.array([2.0, 0.7])
    X = rng.normal(size=(N, K)) @ A.T + rng.normal(size=(N, d)) * np.sqrt(D)
    M, Sigma = posterior(X, A, D)
    assert np.allclose(Sigma, np.diag(np.diag(Sigma)), atol=1e-12)
    mu, logvar = M, np.tile(np.log(np.diag(Sigma)), (N, 1))
    eps = rng.normal(size=(3, N, K))
    check_array(student.is_log_likelihood(X, A, D, mu, logvar, eps), log_likelihood(X, A, D),
                "is_log_likelihood with the exact posterior as proposal (S = 3), which must equal log p(x)",
                rtol=1e-8, atol=1e-8, mistakes=_is_mistakes(X, A, D, mu, logvar, eps))
    # An estimator uses what it is given: with a proposal that is not the posterior (wider by e^0.5 in
    # each coordinate) the same samples give another estimate, below log p(x) on average. Returning
    # log p(x) itself, whatever the proposal, passes the check above and not this one.
    wider = logvar + 0.5
    check_array(student.is_log_likelihood(X, A, D, mu, wider, eps), _is_reference(X, A, D, mu, wider, eps),
                "is_log_likelihood with a proposal wider than the posterior (S = 3): the estimate must follow the "
                "proposal and the samples it is given", rtol=1e-8, atol=1e-8,
                mistakes=_is_mistakes(X, A, D, mu, wider, eps) + [
                    ("return log p(x) whatever the proposal: the estimator must use the proposal and the samples",
                     log_likelihood(X, A, D))])


def _three_se_case(rng):
    """A case for the 3-standard-error check, with the exact log p(x) and the standard errors."""
    rng, X, A, D, mu, logvar = _case(30, N=6, rng=rng)
    eps = rng.normal(size=(2000, X.shape[0], A.shape[1]))
    exact = log_likelihood(X, A, D)
    w = np.exp(_log_weights(X, A, D, mu, logvar, eps) - exact)  # weights divided by p(x)
    se = w.std(axis=0) / (np.sqrt(len(eps)) * w.mean(axis=0))
    return X, A, D, mu, logvar, eps, exact, se


@pytest.mark.points(2)
def test_is_log_likelihood_within_three_standard_errors(student):
    # A mismatched proposal and S = 2000: the estimate must be within 3 standard errors of the exact
    # log p(x). The standard error of the log of a mean of weights is sd(w) / (sqrt(S) mean(w)) (delta
    # method), computed here from the same samples; the O(1/S) bias is far smaller. The inputs change
    # with every run (so an answer cannot be learned from feedback); among them only those where the
    # package's estimate is within 2.5 standard errors are used, so a correct estimate never fails.
    X, A, D, mu, logvar, eps, exact, se = inputs.case_where(
        lambda case: np.all(np.abs(_is_reference(*case[:6]) - case[6]) < 2.5 * case[7]), _three_se_case, 30)
    got = check_array(student.is_log_likelihood(X, A, D, mu, logvar, eps), exact,
                      "is_log_likelihood with S = 2000, compared with the exact LGM log-likelihood",
                      rtol=0, atol=3 * se.max(), mistakes=_is_mistakes(X, A, D, mu, logvar, eps))
    check(np.all(np.abs(got - exact) < 3 * se),
          f"is_log_likelihood is {np.round(np.abs(got - exact) / se, 1)} standard errors from the exact log p(x); "
          "a correct estimate is within 3.")
    # Within 3 standard errors is not enough (log p(x) itself is within 0): it must be this sample's
    # estimate, which differs from log p(x) by its own Monte Carlo error.
    check_array(got, _is_reference(X, A, D, mu, logvar, eps), "is_log_likelihood with S = 2000, compared with the "
                "estimate of these samples", rtol=1e-8, atol=1e-8, mistakes=_is_mistakes(X, A, D, mu, logvar, eps) + [
                    ("return log p(x) itself: the estimator must use the proposal and the samples it is given", exact)])
