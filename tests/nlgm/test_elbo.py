"""The ELBO's pure functions against independent references (scipy.stats, dense Gaussian algebra,
Monte Carlo, finite differences). float64 throughout, so exact identities are checked to 1e-10."""
import numpy as np
import pytest
import torch
from scipy import special, stats

from lgm.gaussian import kl_gaussians
from nlgm import (
    bernoulli_log_likelihood,
    gaussian_log_likelihood,
    importance_weighted_log_likelihood,
    kl_to_standard_normal,
    monte_carlo_elbo,
    reparameterise,
    weighted_kl,
)

T = torch.float64


def _t(a):
    return torch.as_tensor(np.asarray(a), dtype=T)


def test_kl_is_zero_at_the_prior_and_matches_the_dense_formula():
    rng = np.random.default_rng(0)
    assert float(kl_to_standard_normal(torch.zeros(1, 4, dtype=T), torch.zeros(1, 4, dtype=T))) == 0.0
    mu, logvar = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    got = kl_to_standard_normal(_t(mu), _t(logvar)).numpy()
    # lgm.gaussian.kl_gaussians works with full covariance matrices and Cholesky factors.
    ref = [kl_gaussians(m, np.diag(np.exp(s)), np.zeros(3), np.eye(3)) for m, s in zip(mu, logvar)]
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)


def test_kl_matches_monte_carlo_with_scipy_densities():
    rng = np.random.default_rng(1)
    mu, logvar = np.array([0.5, -1.0, 0.2]), np.array([-0.7, 0.3, 0.0])
    sd = np.exp(0.5 * logvar)
    z = mu + sd * rng.standard_normal((200_000, 3))
    log_ratio = (stats.norm.logpdf(z, mu, sd) - stats.norm.logpdf(z)).sum(axis=1)
    se = log_ratio.std() / np.sqrt(len(log_ratio))
    got = float(kl_to_standard_normal(_t(mu[None]), _t(logvar[None])))
    # The MC mean is within 4 standard errors of the truth with probability > 0.9999.
    assert abs(got - log_ratio.mean()) < 4 * se


def test_gaussian_log_likelihood_matches_scipy_diagonal_and_isotropic():
    rng = np.random.default_rng(2)
    x, mean, logvar = rng.normal(size=(6, 4)), rng.normal(size=(6, 4)), rng.normal(size=4)
    got = gaussian_log_likelihood(_t(x), _t(mean), _t(logvar)).numpy()
    ref = [stats.multivariate_normal(m, np.diag(np.exp(logvar))).logpdf(xi) for xi, m in zip(x, mean)]
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    iso = gaussian_log_likelihood(_t(x), _t(mean), _t([0.4])).numpy()
    np.testing.assert_allclose(iso, stats.norm.logpdf(x, mean, np.exp(0.2)).sum(1), rtol=1e-12)


def test_gaussian_log_likelihood_broadcasts_over_samples():
    rng = np.random.default_rng(3)
    x, means = rng.normal(size=(5, 2)), rng.normal(size=(7, 5, 2))
    got = gaussian_log_likelihood(_t(x), _t(means), _t([0.0, 0.0])).numpy()
    assert got.shape == (7, 5)
    np.testing.assert_allclose(got, stats.norm.logpdf(x, means).sum(-1), rtol=1e-12)


def test_bernoulli_log_likelihood_matches_scipy_and_is_stable():
    rng = np.random.default_rng(4)
    x = rng.integers(0, 2, size=(8, 5)).astype(float)
    logits = rng.normal(scale=3, size=(8, 5))
    got = bernoulli_log_likelihood(_t(x), _t(logits)).numpy()
    ref = stats.bernoulli.logpmf(x, special.expit(logits)).sum(1)
    np.testing.assert_allclose(got, ref, rtol=1e-10)
    # Logits of +-50: sigmoid rounds to 1 in float64, but the log-probabilities stay exact.
    big = bernoulli_log_likelihood(_t([[1.0, 0.0, 1.0, 0.0]]), _t([[50.0, 50.0, -50.0, -50.0]]))
    expected = -(np.log1p(np.exp(-50.0)) * 2 + 50.0 * 2)
    np.testing.assert_allclose(float(big), expected, rtol=1e-14)


def test_bernoulli_gradient_is_x_minus_sigmoid_for_large_logits():
    # d/dl [x l - softplus(l)] = x - sigmoid(l). For l between 20 and 37 the exact 1 - sigmoid(l)
    # (2e-9 down to 1e-16) is representable: a softplus that returns l itself there (torch's
    # default threshold of 20) would give x - 1 instead. Reference: scipy's expit in float64.
    logits = np.array([-800.0, -41.0, -23.0, 0.0, 5.0, 21.0, 23.0, 30.0, 36.0, 41.0, 800.0])
    for x in (0.0, 1.0):
        l = _t(logits).requires_grad_()
        bernoulli_log_likelihood(_t(np.full_like(logits, x)), l).backward()
        # rounding of x - sigmoid(l): below 1e-16 absolute
        np.testing.assert_allclose(l.grad.numpy(), x - special.expit(logits), rtol=1e-12, atol=2e-16)


@pytest.mark.slow  # ten seconds or more on the shared 2-core machine (make quick skips it)
def test_reparameterisation_gradient_matches_finite_differences():
    rng = np.random.default_rng(5)
    mu = _t(rng.normal(size=(4, 3))).requires_grad_()
    logvar = _t(rng.normal(size=(4, 3))).requires_grad_()
    eps = _t(rng.normal(size=(2, 4, 3)))

    def g(mu, logvar):  # any smooth function of the samples
        return torch.sin(reparameterise(mu, logvar, eps)).sum()

    assert torch.autograd.gradcheck(g, (mu, logvar), eps=1e-6, atol=1e-8)
    # The pathwise Jacobian of the audit: dz/dmu = 1, dz/dlogvar = (1/2) sigma eps.
    z = reparameterise(mu, logvar, eps)
    gmu, glv = torch.autograd.grad(z.sum(), (mu, logvar))
    np.testing.assert_allclose(gmu.numpy(), 2.0, rtol=1e-14)
    expected = (0.5 * torch.exp(0.5 * logvar) * eps).sum(0).detach().numpy()
    np.testing.assert_allclose(glv.numpy(), expected, rtol=1e-12)


def test_reparameterised_samples_have_the_right_moments():
    mu, logvar = _t([[1.0, -2.0]]), _t([[0.5, -1.0]])
    z = reparameterise(mu, logvar, torch.randn(400_000, 1, 2, dtype=T, generator=torch.Generator().manual_seed(0)))
    se_mean = np.exp(0.5 * logvar.numpy()) / np.sqrt(4e5)
    assert np.all(np.abs(z.mean(0).numpy() - mu.numpy()) < 5 * se_mean)
    np.testing.assert_allclose(z.var(0).numpy(), np.exp(logvar.numpy()), rtol=0.01)  # ~ 5 s.e. at n = 4e5


def test_monte_carlo_elbo_averages_the_reconstruction_over_samples():
    # J copies of the same value must give that value, not J times it (audit L34).
    log_p = _t([[-3.0, -1.0]]).repeat(5, 1)
    kl = _t([0.5, 0.25])
    np.testing.assert_allclose(monte_carlo_elbo(log_p, kl).numpy(), [-3.5, -1.25])


def test_importance_weighted_log_likelihood_is_logsumexp_minus_log_s_and_stable():
    rng = np.random.default_rng(6)
    log_w = rng.normal(loc=-1e4, scale=3.0, size=(1000, 4))
    got = importance_weighted_log_likelihood(_t(log_w)).numpy()
    np.testing.assert_allclose(got, special.logsumexp(log_w, axis=0) - np.log(1000), rtol=1e-14)
    assert np.all(np.isfinite(got))
    # It is at least the mean log weight (Jensen), i.e. the one-sample ELBO estimate's average.
    assert np.all(got >= log_w.mean(0))


@pytest.mark.parametrize("fn, args", [
    (kl_to_standard_normal, (torch.zeros(2, 3), torch.zeros(2, 3))),
    (gaussian_log_likelihood, (torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(3))),
    (bernoulli_log_likelihood, (torch.zeros(2, 3), torch.zeros(2, 3))),
])
def test_functions_return_one_value_per_row(fn, args):
    assert fn(*args).shape == (2,)


@pytest.mark.parametrize("beta, free_bits", [(1.0, 0.0), (0.3, 0.0), (1.0, 0.4), (2.0, 0.4)])
def test_weighted_kl_and_its_gradient_by_hand(beta, free_bits):
    # KL_nk = (exp(l) + mu^2 - 1 - l) / 2 for each unit; with free bits lambda the term is
    # beta sum_k max(lambda, m_k), m_k = mean_n KL_nk, whose gradient is beta [m_k > lambda]
    # d m_k: mu_nk / N and (exp(l_nk) - 1) / (2 N); without, beta sum_k m_k.
    rng = np.random.default_rng(0)
    N, K = 6, 4
    mu = rng.normal(scale=[0.1, 1.0, 0.05, 2.0], size=(N, K))
    logvar = rng.normal(scale=0.3, size=(N, K))
    KL = 0.5 * (np.exp(logvar) + mu**2 - 1 - logvar)
    m = KL.mean(axis=0)
    active = m > free_bits
    assert active.any() and (free_bits == 0 or not active.all())  # both kinds of unit
    expected = beta * np.maximum(free_bits, m).sum()
    mu_t = torch.tensor(mu, requires_grad=True)
    logvar_t = torch.tensor(logvar, requires_grad=True)
    term = weighted_kl(mu_t, logvar_t, beta=beta, free_bits=free_bits)
    term.backward()
    assert term.item() == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(mu_t.grad.numpy(), beta * active * mu / N, rtol=1e-12)
    np.testing.assert_allclose(logvar_t.grad.numpy(), beta * active * (np.exp(logvar) - 1) / (2 * N),
                               rtol=1e-12, atol=1e-15)
