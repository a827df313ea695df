"""Autograder tests of book/exercises/collapse.md (chapter 11b): rate, distortion, active units, free bits.

The student's functions run in their own process (the ``student`` fixture) and are compared with
the package (``nlgm.kl_to_standard_normal``, ``nlgm.monte_carlo_elbo``, ``nlgm.weighted_kl`` under
torch autograd, float64), which each test also checks against an independent computation: lgm's
Gaussian KL, the closed-form derivatives of the KL, and the variance of the means by numpy. The
inputs are drawn afresh in every run; where a comparison with a threshold decides the answer
(active units, the free-bits floor), the inputs keep every unit away from the threshold, so
rounding never decides a point. Tolerances: 1e-8 relative (float64 rounding is about 1e-13).
"""
import numpy as np
import pytest
import torch

import nlgm
from pca_to_vae_grader import inputs
from pca_to_vae_grader.compare import check, check_array, check_tuple
from lgm import kl_gaussians


def _t(a):
    return torch.as_tensor(np.asarray(a, dtype=float))


def _kl(mu, logvar):
    """KL_nk of each unit of each row, (N, K), closed form."""
    return 0.5 * (np.exp(logvar) + mu**2 - 1 - logvar)


# ---------------------------------------------------------------------------------------------
# rate_distortion(mu, logvar, log_px_given_z) -> (rate, distortion)


def _rd_case(rng, N, K, J):
    mu, logvar = rng.normal(scale=1.5, size=(N, K)), rng.normal(size=(N, K))
    return mu, logvar, rng.normal(loc=-30.0, scale=8.0, size=(J, N))


def _rd_reference(mu, logvar, log_px):
    rate = nlgm.kl_to_standard_normal(_t(mu), _t(logvar)).mean().item()
    elbo = nlgm.monte_carlo_elbo(_t(log_px), nlgm.kl_to_standard_normal(_t(mu), _t(logvar))).mean().item()
    return rate, -elbo - rate  # ELBO = -(D + R)


def _rate_mistakes(mu, logvar, log_px):
    kl = _kl(mu, logvar)
    return [("sum the KL over the rows of the batch instead of averaging (R is per data point)", kl.sum()),
            ("average the KL over the K units instead of summing them (R sums the units)", kl.sum(1).mean() / kl.shape[1]),
            ("forget the factor 1/2 of the KL", 2 * kl.sum(1).mean())]


def _distortion_mistakes(mu, logvar, log_px):
    J = log_px.shape[0]
    return [("return E log p(x | z) itself: the distortion is its negative, -E_q log p(x | z)", log_px.mean()),
            ("sum the J samples of each row instead of averaging them", -J * log_px.mean()),
            ("sum over the rows of the batch instead of averaging", -log_px.mean(0).sum()),
            ("include the KL in the distortion (that is -ELBO, which is D + R)",
             -log_px.mean() + _kl(mu, logvar).sum(1).mean())]


def _check_rd(student, mu, logvar, log_px, what):
    rate, distortion = _rd_reference(mu, logvar, log_px)
    independent = np.mean([kl_gaussians(m, np.diag(np.exp(s)), np.zeros(len(m)), np.eye(len(m)))
                           for m, s in zip(mu, logvar)])
    assert np.isclose(rate, independent, rtol=1e-10) and np.isclose(distortion, -log_px.mean(), rtol=1e-10)
    got_r, got_d = check_tuple(student.rate_distortion(mu, logvar, log_px), 2, what, ("rate", "distortion"))
    check_array(got_r, rate, f"the rate from {what}", rtol=1e-8, atol=1e-10,
                mistakes=_rate_mistakes(mu, logvar, log_px))
    check_array(got_d, distortion, f"the distortion from {what}", rtol=1e-8, atol=1e-10,
                mistakes=_distortion_mistakes(mu, logvar, log_px))


@pytest.mark.points(2)
@pytest.mark.parametrize("N, K, J, seed", [(8, 3, 1, 0), (5, 6, 4, 1), (1, 1, 3, 2)])
def test_rate_distortion_matches_reference(student, N, K, J, seed):
    mu, logvar, log_px = _rd_case(inputs.rng(seed), N, K, J)
    _check_rd(student, mu, logvar, log_px, f"rate_distortion(mu, logvar, log_px_given_z) for N={N}, K={K}, J={J}")


@pytest.mark.points(1)
def test_rate_distortion_rate_zero_at_the_prior(student):
    # q(z | x) = N(0, I) for every row: no rate, and the distortion is all of -ELBO.
    rng = inputs.rng(3)
    mu, logvar, log_px = np.zeros((6, 4)), np.zeros((6, 4)), rng.normal(loc=20.0, size=(2, 6))
    _check_rd(student, mu, logvar, log_px, "rate_distortion at the prior (mu = 0, logvar = 0)")


# ---------------------------------------------------------------------------------------------
# active_units(mu, logvar, threshold=0.01) -> (K,) booleans


def _au_case(rng, N=300, K=8):
    """Encoder outputs of K units, every activity at least a factor 3 from 0.01 either way. The inactive
    units alternate between collapsed ones (q = the prior: mean near 0, variance near 1) and idle confident
    ones (a mean that does not move with x, a small variance); the active ones have small variances or
    variances near 1 at random."""
    active = rng.permutation(np.arange(K) < K // 2)
    confident = np.where(active, rng.random(K) < 0.5, np.cumsum(~active) % 2 == 0)
    spread = np.where(active, rng.uniform(0.2, 2.0, K), rng.uniform(0.0, 0.05, K))
    mu = rng.normal(size=(N, K)) * spread + rng.normal(scale=0.5, size=K) * (active | confident)
    logvar = np.where(confident, rng.uniform(-4.0, -1.0, (N, K)), rng.normal(scale=0.05, size=(N, K)))
    return mu, logvar


def _au_mistakes(mu, logvar, threshold):
    return [("use the variance of samples z of q(z | x), Var(mu) + E[sigma^2], instead of the variance of the "
             "means E_q[z | x]: a collapsed unit has sigma^2 = 1, so its samples vary although they say nothing "
             "about x", mu.var(0) + np.exp(logvar).mean(0) > threshold),
            ("take the variance over the units (axis 1) instead of over the data points (axis 0)",
             np.broadcast_to(mu.var(1).mean() > threshold, mu.shape[1:])),
            ("call a unit active when its posterior variance is small, sigma^2 < 1 - threshold, instead of "
             "when its posterior mean varies with x", np.exp(logvar).mean(0) < 1 - threshold),
            ("compare the mean of the means, not their variance, with the threshold", mu.mean(0) > threshold)]


@pytest.mark.points(2)
@pytest.mark.parametrize("N, K, seed", [(300, 8, 0), (50, 3, 1)])
def test_active_units_matches_reference(student, N, K, seed):
    mu, logvar = inputs.case_where(
        lambda c: np.all(np.abs(np.log(c[0].var(0) / 0.01)) > np.log(3)), lambda r: _au_case(r, N, K), 10, seed)
    expected = mu.var(0) > 0.01
    # the definition (eq-active-units) by torch's variance too, an implementation independent of numpy's
    assert np.array_equal(expected, torch.var(_t(mu), dim=0, unbiased=False).numpy() > 0.01)
    got = np.asarray(student.active_units(mu, logvar), dtype=float)
    check_array(got, expected, f"active_units(mu, logvar) for N={N}, K={K} (1 = active)", rtol=0, atol=0,
                mistakes=_au_mistakes(mu, logvar, 0.01))


@pytest.mark.points(1)
def test_active_units_threshold_argument(student):
    # activities 10^-4 .. 10^1, one per unit: each threshold between them splits the units differently.
    rng = inputs.rng(11)
    K = 6
    mu = rng.normal(size=(400, K))
    mu = (mu - mu.mean(0)) / mu.std(0) * np.sqrt(np.logspace(-4, 1, K)) + rng.normal(size=K)
    logvar = rng.normal(scale=0.1, size=(400, K))
    for threshold in (3e-4, 3e-2, 3.0):
        check_array(np.asarray(student.active_units(mu, logvar, threshold=threshold), dtype=float),
                    mu.var(0) > threshold, f"active_units(mu, logvar, threshold={threshold:g})", rtol=0, atol=0,
                    mistakes=_au_mistakes(mu, logvar, threshold))


@pytest.mark.points(1)
def test_active_units_all_collapsed(student):
    # every unit's posterior is the prior (mu = 0, logvar = 0): no unit is active.
    mu, logvar = np.zeros((20, 5)), np.zeros((20, 5))
    check_array(np.asarray(student.active_units(mu, logvar), dtype=float), np.zeros(5),
                "active_units at the prior (mu = 0, logvar = 0)", rtol=0, atol=0,
                mistakes=_au_mistakes(mu, logvar, 0.01))


# ---------------------------------------------------------------------------------------------
# free_bits_grad(mu, logvar, free_bits) -> (grad_mu, grad_logvar)


def _fb_case(rng, N=12, K=5):
    """Units with mean KLs spread around lambda: some below, some above, none within 0.05 nats of it."""
    scale = rng.uniform(0.05, 2.0, K)
    mu = rng.normal(size=(N, K)) * scale
    logvar = rng.normal(scale=0.5, size=(N, K)) * scale
    rates = np.sort(_kl(mu, logvar).mean(0))
    widest = np.argmax(np.diff(rates))  # lambda in the widest gap between two units' mean KLs
    return mu, logvar, float(rates[widest] + rng.uniform(0.3, 0.7) * (rates[widest + 1] - rates[widest]))


def _fb_ok(case):
    mu, logvar, lam = case
    rates = _kl(mu, logvar).mean(0)
    return np.all(np.abs(rates - lam) > 0.05) and rates.min() < lam < rates.max()


def _fb_autograd(mu, logvar, lam):
    mu_t, logvar_t = _t(mu).requires_grad_(), _t(logvar).requires_grad_()
    nlgm.weighted_kl(mu_t, logvar_t, free_bits=lam).backward()
    return mu_t.grad.numpy(), logvar_t.grad.numpy()


def _fb_mistakes(mu, logvar, lam):
    N, K = mu.shape
    kl = _kl(mu, logvar)
    g_mu, g_s = mu / N, 0.5 * (np.exp(logvar) - 1) / N
    above_total = float(kl.sum(1).mean() > K * lam)
    above_each = kl > lam
    return ([("apply the floor to the KL summed over the units, max(K lambda, sum_k KL_k), instead of to each unit",
              above_total * g_mu),
             ("take the mean over the batch after the max, mean_n max(lambda, KL_nk), instead of before it",
              above_each * g_mu),
             ("forget the 1/N of the mean over the batch", (kl.mean(0) > lam) * mu),
             ("ignore the floor (the gradient of the plain mean KL)", g_mu)],
            [("apply the floor to the KL summed over the units, max(K lambda, sum_k KL_k), instead of to each unit",
              above_total * g_s),
             ("take the mean over the batch after the max, mean_n max(lambda, KL_nk), instead of before it",
              above_each * g_s),
             ("use d KL / d logvar = exp(logvar) - 1 without the 1/2", 2 * (kl.mean(0) > lam) * g_s),
             ("forget the 1/N of the mean over the batch", N * (kl.mean(0) > lam) * g_s),
             ("ignore the floor (the gradient of the plain mean KL)", g_s)])


def _check_fb(student, mu, logvar, lam, what):
    expected = _fb_autograd(mu, logvar, lam)
    N = len(mu)
    on = _kl(mu, logvar).mean(0) > lam  # units above the floor: the gradient of the mean KL; the others 0
    assert np.allclose(expected[0], on * mu / N, rtol=1e-12, atol=1e-15)
    assert np.allclose(expected[1], on * 0.5 * (np.exp(logvar) - 1) / N, rtol=1e-12, atol=1e-15)
    got = check_tuple(student.free_bits_grad(mu, logvar, lam), 2, what, ("grad_mu", "grad_logvar"))
    mistakes = _fb_mistakes(mu, logvar, lam)
    for name, g, e, m in zip(("grad_mu", "grad_logvar"), got, expected, mistakes):
        check_array(g, e, f"{name} from {what}", rtol=1e-8, atol=1e-12, mistakes=m)


@pytest.mark.points(3)
@pytest.mark.parametrize("N, K, seed", [(12, 5, 0), (40, 8, 1)])
def test_free_bits_grad_matches_autograd(student, N, K, seed):
    mu, logvar, lam = inputs.case_where(_fb_ok, lambda r: _fb_case(r, N, K), 20, seed)
    _check_fb(student, mu, logvar, lam, f"free_bits_grad(mu, logvar, free_bits={lam:.3g}) for N={N}, K={K}")


@pytest.mark.points(1)
def test_free_bits_grad_without_a_floor_is_the_kl_gradient(student):
    # lambda = 0: every unit's mean KL is above the floor, so this is the gradient of the mean KL.
    mu, logvar, _ = _fb_case(inputs.rng(22), 7, 3)
    _check_fb(student, mu, logvar, 0.0, "free_bits_grad(mu, logvar, free_bits=0)")


@pytest.mark.points(1)
def test_free_bits_grad_zero_below_the_floor(student):
    # lambda above every unit's mean KL: the objective is the constant K lambda, its gradient 0.
    mu, logvar, _ = _fb_case(inputs.rng(23), 9, 4)
    lam = float(_kl(mu, logvar).mean(0).max()) + 1.0
    g_mu, g_s = check_tuple(student.free_bits_grad(mu, logvar, lam), 2, "free_bits_grad with a floor above every unit",
                            ("grad_mu", "grad_logvar"))
    for name, g in (("grad_mu", g_mu), ("grad_logvar", g_s)):
        g = np.asarray(g, dtype=float)
        check(g.shape == mu.shape and np.all(g == 0),
              f"{name} must be an (N, K) = {mu.shape} array of zeros when the floor lambda = {lam:.3g} is above "
              "every unit's mean KL: the objective is then the constant K lambda. "
              f"Got shape {g.shape} with largest |entry| {np.max(np.abs(g)) if g.size else 0:.3g}.")
