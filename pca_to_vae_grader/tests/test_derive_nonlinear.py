"""Autograder tests of book/exercises/derive_nonlinear.md (chapters 8-12): quantities the student derives.

The page states each quantity and asks for a derivation, so no test compares with a formula the
page gives. The expected values come from independent computations: scipy's Johnson SU
distribution (the law of s sinh(z)), PyTorch's own KL divergences and log-probabilities
differentiated by autograd (torch.distributions, not the package), and autograd of torch.logsumexp.
Inputs are drawn afresh on every run (``rng`` below, from the run's seed; ``--seed`` reproduces a run).
Autograd in float64 is exact to rounding, so every test uses tolerances of about 1e-11 of the value's
scale (``EXACT``), which a derived formula meets and numerical differences do not.
"""
import numpy as np
import pytest
import torch
from scipy import stats

from pca_to_vae_grader.compare import check, check_array, check_tuple
from lgm import kl_gaussians

_dist = torch.distributions

# torch's autograd and distributions (and symbolic differentiation) in the submission would do the
# derivations: the grader refuses these imports on this page (pca_to_vae_grader.sandboxed.guard), with a message that
# says why. Because the page bans modules, the grader also reads the submission's source before it runs
# (pca_to_vae_grader.audit) and refuses, in a graded function and in every helper it reaches, complex numbers
# (the complex-step trick), quadrature (scipy.integrate, Gauss-Hermite nodes from numpy.polynomial or
# scipy.special), optimisers and scipy.stats.johnsonsu (the law of D8.1). What the audit cannot see, a
# numerical method written by hand, the tests refuse by precision: every reference is exact (autograd in
# float64, torch's closed forms), and the tolerances, about 1e-11 of the value's scale, sit well above
# the rounding of a derived formula (~1e-15) and well below what differences reach (a central difference
# with step h is off by ~eps |f| / h + h^2 |f^(3)| / 6, 1e-10 of the scale at best). The KL test adds a
# very narrow q0, where a quadrature of the definition loses the digits of z - mu0 to rounding.
# tests/exercises/test_derivations.py grades a submission that derives nothing, with library tools and
# with hand-written ones.
BANNED_MODULES = ("torch", "sympy", "jax", "autograd", "sklearn", "numdifftools", "mpmath")

# A derived formula agrees with the exact reference to ~1e-15 of the scale; numerical differences do not
# get below ~1e-10 (see above).
EXACT = 1e-11


def _exact(expected):
    """The tolerance for an exact formula: EXACT relative to each entry and to the largest one."""
    return dict(rtol=EXACT, atol=EXACT * max(1.0, float(np.abs(expected).max(initial=0.0))))


def _t(a):
    return torch.tensor(np.asarray(a, dtype=float), dtype=torch.float64)


def _autograd(f, *arrays):
    """Gradients of the scalar torch function f with respect to each numpy argument (float64)."""
    tensors = [_t(a).requires_grad_() for a in arrays]
    f(*tensors).backward()
    return [t.grad.numpy() for t in tensors]


def _standard_normal():
    return _dist.Normal(torch.tensor(0.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64))


# ---------------------------------------------------------------------------------------------
# pushforward_logpdf(x, s) -> shape of x


def _pushforward_mistakes(x, s):
    z = np.arcsinh(x / s)
    prior = -0.5 * (np.log(2 * np.pi) + z**2)
    return [("forget the Jacobian: p(x) = N(f^{-1}(x); 0, 1) |d f^{-1}(x) / dx|, and the map stretches the line",
             prior),
            ("multiply by |dx/dz| instead of |dz/dx|", prior + 0.5 * np.log(s**2 + x**2)),
            ("forget the scale s in the derivative of arsinh(x / s)", prior - 0.5 * np.log(1 + x**2))]


@pytest.mark.points(3)
@pytest.mark.parametrize("shape", [(50,), (4, 3)])
def test_pushforward_logpdf_matches_johnson_su(student, rng, shape):
    s = rng.uniform(0.3, 3.0)
    x = s * np.sinh(rng.normal(scale=1.5, size=shape))
    # x = s sinh(z), z ~ N(0, 1) is Johnson's SU law with a = 0, b = 1, scale s (scipy's own code).
    expected = stats.johnsonsu(0.0, 1.0, loc=0.0, scale=s).logpdf(x)
    check_array(student.pushforward_logpdf(x, s), expected, f"pushforward_logpdf(x, s={s:.3g}), compared with "
                "scipy.stats.johnsonsu", **_exact(expected), mistakes=_pushforward_mistakes(x, s))


@pytest.mark.points(1)
def test_pushforward_logpdf_far_tails(student, rng):
    # |x| up to 1e8: log p is about -(log x)^2 / 2 - log x; float64 keeps ~1e-12 relative.
    s = rng.uniform(0.5, 2.0)
    x = np.array([-1e8, -3e4, 1e-9, 2e5, 1e8]) * rng.uniform(0.5, 1.0)
    expected = stats.johnsonsu(0.0, 1.0, loc=0.0, scale=s).logpdf(x)
    check_array(student.pushforward_logpdf(x, s), expected, "pushforward_logpdf far in the tails (|x| up to 1e8)",
                **_exact(expected), mistakes=_pushforward_mistakes(x, s))


# ---------------------------------------------------------------------------------------------
# kl_diag_gaussians(mu0, logvar0, mu1, logvar1) -> (N,)


def _kl_torch(mu0, s0, mu1, s1):
    q0 = _dist.Normal(_t(mu0), torch.exp(_t(s0) / 2))
    q1 = _dist.Normal(_t(mu1), torch.exp(_t(s1) / 2))
    return _dist.kl_divergence(q0, q1).sum(-1).numpy()


def _kl_mistakes(mu0, s0, mu1, s1):
    kl = _kl_torch(mu0, s0, mu1, s1)
    K = mu0.shape[1]
    return [("swap the two Gaussians: KL(q0 || q1) takes the expectation under q0, and it is not symmetric",
             _kl_torch(mu1, s1, mu0, s0)),
            ("forget the factor 1/2", 2 * kl),
            ("forget the -1 in each coordinate's term (the KL of a Gaussian to itself must be 0)", kl + K / 2),
            ("use the standard deviations exp(logvar / 2) where the variances exp(logvar) belong",
             0.5 * np.sum(np.exp((s0 - s1) / 2) + (mu0 - mu1) ** 2 / np.exp(s1 / 2) - 1 - s0 + s1, axis=1)),
            ("sum over all rows instead of one value per row", np.full(len(kl), kl.sum()))]


# Points: ordinary Gaussians 1 each (a quadrature of the definition is exact there: the integrand is a
# quadratic in z), the narrow q0 that only the closed form gets right the most.
@pytest.mark.points(1)
@pytest.mark.parametrize("N, K", [(6, 3), (1, 1), (4, 8)])
def test_kl_diag_gaussians_matches_torch(student, rng, N, K):
    mu0, s0, mu1, s1 = rng.normal(size=(4, N, K)) * np.array([1.5, 1.0, 1.5, 1.0])[:, None, None]
    expected = _kl_torch(mu0, s0, mu1, s1)
    # Cross-check torch's KL with lgm's general Gaussian KL on the first row.
    assert np.isclose(expected[0], kl_gaussians(mu0[0], np.diag(np.exp(s0[0])), mu1[0], np.diag(np.exp(s1[0]))))
    check_array(student.kl_diag_gaussians(mu0, s0, mu1, s1), expected, f"kl_diag_gaussians for N={N}, K={K}, "
                "compared with torch.distributions.kl_divergence", **_exact(expected),
                mistakes=_kl_mistakes(mu0, s0, mu1, s1))


@pytest.mark.points(6)
def test_kl_diag_gaussians_narrow_q0(student, rng):
    # A posterior that has nearly collapsed: variances exp(logvar0) of 1e-26 to 1e-17, means of size ~3.
    # The closed form has no trouble (its terms are exp(s0 - s1), (mu0 - mu1)^2 exp(-s1), s0, s1); a
    # quadrature or Monte Carlo average of log q0(z) - log q1(z) at z = mu0 + sigma0 t loses the digits of
    # z - mu0 = sigma0 t to rounding (sigma0 ~ 1e-12 |mu0|), and with them the KL's first term.
    mu0, mu1, s1 = rng.normal(scale=3.0, size=(3, 5, 4))
    s0 = rng.uniform(-60.0, -40.0, size=(5, 4))
    expected = _kl_torch(mu0, s0, mu1, s1)
    check_array(student.kl_diag_gaussians(mu0, s0, mu1, s1), expected, "kl_diag_gaussians with a very narrow q0 "
                "(logvar0 between -60 and -40), compared with torch.distributions.kl_divergence", **_exact(expected),
                mistakes=_kl_mistakes(mu0, s0, mu1, s1))


@pytest.mark.points(1)
def test_kl_diag_gaussians_zero_only_for_equal_gaussians(student, rng):
    mu, s = rng.normal(size=(2, 3, 4))
    check_array(student.kl_diag_gaussians(mu, s, mu, s), np.zeros(3),
                "kl_diag_gaussians of each Gaussian to itself", rtol=0, atol=1e-12, mistakes=_kl_mistakes(mu, s, mu, s))
    other, other_s = mu + rng.normal(scale=0.1, size=mu.shape), s + rng.normal(scale=0.1, size=s.shape)
    kl = np.asarray(student.kl_diag_gaussians(mu, s, other, other_s), dtype=float)
    check(kl.shape == (3,) and np.all(kl > 0), "kl_diag_gaussians returned a value <= 0 (or not one per row) for "
          "three pairs of different Gaussians: a KL divergence between different distributions is positive.")
    # Positive is not enough (any positive function of the difference is): the values must be the KL.
    check_array(kl, _kl_torch(mu, s, other, other_s), "kl_diag_gaussians of two nearby Gaussians", rtol=EXACT,
                atol=1e-14, mistakes=_kl_mistakes(mu, s, other, other_s))


# ---------------------------------------------------------------------------------------------
# kl_std_normal_grads(mu, logvar) -> (grad_mu, grad_logvar)


def _kl_prior(m, s):
    return _dist.kl_divergence(_dist.Normal(m, torch.exp(s / 2)), _standard_normal()).sum()


def _kl_grad_mistakes(mu, s):
    var = np.exp(s)
    return ([("differentiate -mu^2 / 2 instead of +mu^2 / 2: the KL grows as mu leaves 0", -mu)],
            [("differentiate with respect to sigma^2 instead of log sigma^2 (the chain rule brings a factor sigma^2)",
              0.5 * (1 - 1 / var)),
             ("forget the factor 1/2", var - 1),
             ("differentiate with respect to sigma instead of log sigma^2", np.exp(s / 2) - np.exp(-s / 2))])


@pytest.mark.points(3)
@pytest.mark.parametrize("N, K", [(5, 3), (1, 6)])  # several entries in each case: one can match by chance
def test_kl_std_normal_grads_match_autograd(student, rng, N, K):
    mu, s = rng.normal(scale=1.5, size=(N, K)), rng.normal(size=(N, K))
    ref_mu, ref_s = _autograd(_kl_prior, mu, s)
    g_mu, g_s = check_tuple(student.kl_std_normal_grads(mu, s), 2, "kl_std_normal_grads(mu, logvar)",
                            ("grad_mu", "grad_logvar"))
    hints = _kl_grad_mistakes(mu, s)
    what = f"(N={N}, K={K}), compared with autograd of torch.distributions.kl_divergence"
    check_array(g_mu, ref_mu, f"grad_mu from kl_std_normal_grads {what}", **_exact(ref_mu), mistakes=hints[0])
    check_array(g_s, ref_s, f"grad_logvar from kl_std_normal_grads {what}", **_exact(ref_s), mistakes=hints[1])


@pytest.mark.points(1)
def test_kl_std_normal_grads_vanish_at_the_prior(student, rng):
    zeros = np.zeros((2, 3))
    g_mu, g_s = check_tuple(student.kl_std_normal_grads(zeros, zeros), 2, "kl_std_normal_grads(mu, logvar)",
                            ("grad_mu", "grad_logvar"))
    check_array(g_mu, zeros, "grad_mu at the prior (mu = 0, logvar = 0), the KL's minimum", rtol=0, atol=1e-12)
    check_array(g_s, zeros, "grad_logvar at the prior (mu = 0, logvar = 0), the KL's minimum", rtol=0, atol=1e-12,
                mistakes=_kl_grad_mistakes(zeros, zeros)[1])
    # Zeros alone prove nothing (a function that returns zeros passes): near the prior the gradients
    # must be autograd's.
    mu, s = rng.normal(scale=0.1, size=(2, 3)), rng.normal(scale=0.1, size=(2, 3))
    ref_mu, ref_s = _autograd(_kl_prior, mu, s)
    g_mu, g_s = check_tuple(student.kl_std_normal_grads(mu, s), 2, "kl_std_normal_grads(mu, logvar)",
                            ("grad_mu", "grad_logvar"))
    hints = _kl_grad_mistakes(mu, s)
    check_array(g_mu, ref_mu, "grad_mu near the prior", rtol=EXACT, atol=1e-14, mistakes=hints[0])
    check_array(g_s, ref_s, "grad_logvar near the prior", rtol=EXACT, atol=1e-14, mistakes=hints[1])


# ---------------------------------------------------------------------------------------------
# elbo_reparam_grads(X, mu, logvar, eps, A, D) -> (grad_mu, grad_logvar)


def _mc_elbo(X, eps, A, D):
    """The J-sample ELBO estimate as a torch function of (mu, logvar), from torch.distributions."""
    J = eps.shape[0]

    def elbo(m, s):
        z = m + torch.exp(s / 2) * _t(eps)
        log_px = _dist.Normal(z @ _t(A).T, _t(np.sqrt(D))).log_prob(_t(X)).sum()
        return log_px / J - _dist.kl_divergence(_dist.Normal(m, torch.exp(s / 2)), _standard_normal()).sum()

    return elbo


def _elbo_grad_mistakes(X, mu, s, eps, A, D):
    J = eps.shape[0]
    sigma = np.exp(s / 2)
    g = ((X - (mu + sigma * eps) @ A.T) / D) @ A  # (J, N, K): the gradient of log p(x | z) at each sample
    kl_mu, kl_s = mu, 0.5 * (np.exp(s) - 1)
    mu_hints = [("forget the KL's gradient", g.mean(axis=0)),
                ("sum over the J samples instead of averaging", g.sum(axis=0) - kl_mu),
                ("forget D^{-1} in the gradient of log p(x | z)", ((X - (mu + sigma * eps) @ A.T) @ A).mean(axis=0) - kl_mu)]
    s_hints = [("forget the 1/2 in d sigma / d log sigma^2 = sigma / 2 (the lecture's Jacobian)",
                (g * sigma * eps).mean(axis=0) - kl_s),
               ("forget the KL's gradient", (g * 0.5 * sigma * eps).mean(axis=0)),
               ("sum over the J samples instead of averaging", (g * 0.5 * sigma * eps).sum(axis=0) - kl_s),
               ("forget the noise eps in d z / d log sigma^2 = eps sigma / 2", (g * 0.5 * sigma).mean(axis=0) - kl_s)]
    return mu_hints, s_hints


@pytest.mark.points(3)
@pytest.mark.parametrize("J, N, d, K", [(5, 4, 6, 2), (1, 3, 3, 1), (20, 2, 5, 3)])
def test_elbo_reparam_grads_match_autograd(student, rng, J, N, d, K):
    X, A, D = rng.normal(size=(N, d)), rng.normal(size=(d, K)), rng.uniform(0.3, 1.5, size=d)
    mu, s, eps = rng.normal(size=(N, K)), rng.normal(scale=0.7, size=(N, K)), rng.normal(size=(J, N, K))
    ref_mu, ref_s = _autograd(_mc_elbo(X, eps, A, D), mu, s)
    g_mu, g_s = check_tuple(student.elbo_reparam_grads(X, mu, s, eps, A, D), 2,
                            "elbo_reparam_grads(X, mu, logvar, eps, A, D)", ("grad_mu", "grad_logvar"))
    mu_hints, s_hints = _elbo_grad_mistakes(X, mu, s, eps, A, D)
    what = f"(J={J}, N={N}, d={d}, K={K}), compared with autograd of the same Monte Carlo ELBO"
    check_array(g_mu, ref_mu, f"grad_mu from elbo_reparam_grads {what}", **_exact(ref_mu), mistakes=mu_hints)
    check_array(g_s, ref_s, f"grad_logvar from elbo_reparam_grads {what}", **_exact(ref_s), mistakes=s_hints)


# ---------------------------------------------------------------------------------------------
# bernoulli_decoder_grads(X, Z, W, b) -> (grad_W (d, K), grad_b (d,))


def _bernoulli_loglik(X, Z):
    return lambda W, b: _dist.Bernoulli(logits=_t(Z) @ W.T + b).log_prob(_t(X)).sum()


def _bernoulli_mistakes(X, Z, W, b):
    L = Z @ W.T + b
    Y = np.where(L >= 0, 1 / (1 + np.exp(-np.abs(L))), np.exp(-np.abs(L)) / (1 + np.exp(-np.abs(L))))
    return ([("use sigmoid(l) - x, the gradient of the negative log-likelihood: the sign is flipped", (Y - X).T @ Z),
             ("forget the sigmoid: d/dl [x l - softplus(l)] = x - sigmoid(l), not x - l", (X - L).T @ Z)],
            [("use sigmoid(l) - x, the gradient of the negative log-likelihood: the sign is flipped", (Y - X).sum(0)),
             ("forget the sigmoid: d/dl [x l - softplus(l)] = x - sigmoid(l), not x - l", (X - L).sum(0))])


def _bernoulli_case(rng, N, d, K, scale=1.0):
    X = rng.integers(0, 2, size=(N, d)).astype(float)
    return X, rng.normal(size=(N, K)), scale * rng.normal(size=(d, K)), scale * rng.normal(size=d)


@pytest.mark.points(3)
@pytest.mark.parametrize("N, d, K", [(8, 5, 2), (1, 3, 1), (20, 4, 3)])
def test_bernoulli_decoder_grads_match_autograd(student, rng, N, d, K):
    X, Z, W, b = _bernoulli_case(rng, N, d, K)
    ref_W, ref_b = _autograd(_bernoulli_loglik(X, Z), W, b)
    g_W, g_b = check_tuple(student.bernoulli_decoder_grads(X, Z, W, b), 2, "bernoulli_decoder_grads(X, Z, W, b)",
                           ("grad_W", "grad_b"))
    hints = _bernoulli_mistakes(X, Z, W, b)
    what = f"(N={N}, d={d}, K={K}), compared with autograd of torch's Bernoulli log-probability"
    check_array(g_W, ref_W, f"grad_W from bernoulli_decoder_grads {what}", **_exact(ref_W), mistakes=hints[0])
    check_array(g_b, ref_b, f"grad_b from bernoulli_decoder_grads {what}", **_exact(ref_b), mistakes=hints[1])


@pytest.mark.points(1)
def test_bernoulli_decoder_grads_huge_logits(student, rng):
    # Logits of size ~1000: sigmoid must be computed without exp overflowing to inf / inf.
    X, Z, W, b = _bernoulli_case(rng, 6, 4, 2, scale=500.0)
    ref_W, ref_b = _autograd(_bernoulli_loglik(X, Z), W, b)
    g_W, g_b = check_tuple(student.bernoulli_decoder_grads(X, Z, W, b), 2, "bernoulli_decoder_grads(X, Z, W, b)",
                           ("grad_W", "grad_b"))
    hints = _bernoulli_mistakes(X, Z, W, b)
    check_array(g_W, ref_W, "grad_W from bernoulli_decoder_grads with logits of size ~1000", **_exact(ref_W),
                mistakes=hints[0])
    check_array(g_b, ref_b, "grad_b from bernoulli_decoder_grads with logits of size ~1000", **_exact(ref_b),
                mistakes=hints[1])


# ---------------------------------------------------------------------------------------------
# iwae_logw_grads(log_w) -> (S, N)


def _iwae_reference(log_w):
    S = log_w.shape[0]
    return _autograd(lambda t: (torch.logsumexp(t, dim=0) - np.log(S)).sum(), log_w)[0]


def _iwae_mistakes(log_w):
    S = log_w.shape[0]
    w_tilde = _iwae_reference(log_w)
    return [("weight every sample by 1/S: that is the gradient of (1/S) sum_s log w_s, the ELBO's estimate, "
             "not of log (1/S) sum_s w_s", np.full(log_w.shape, 1.0 / S)),
            ("divide the normalised weights by S again (the 1/S inside the log is a constant and drops out)",
             w_tilde / S),
            ("forget to normalise: the log in front of the sum contributes a factor when you apply the chain rule",
             np.exp(log_w))]


@pytest.mark.points(3)
@pytest.mark.parametrize("S, N", [(10, 4), (3, 3), (50, 2)])  # S = 1 (all ones) alone would reward a constant
def test_iwae_logw_grads_match_autograd(student, rng, S, N):
    log_w = rng.normal(scale=2.0, size=(S, N))
    check_array(student.iwae_logw_grads(log_w), _iwae_reference(log_w), f"iwae_logw_grads(log_w) for S={S}, N={N}, "
                "compared with autograd of torch.logsumexp", rtol=EXACT, atol=1e-14, mistakes=_iwae_mistakes(log_w))


@pytest.mark.points(1)
def test_iwae_logw_grads_very_negative_log_weights(student, rng):
    # log w ~ -1000, as in high dimension: exp underflows to 0, so the weights must be normalised
    # in log space (subtract the largest log-weight first). The exact gradient is unaffected.
    log_w = rng.normal(scale=3.0, size=(20, 3)) - 1000.0
    check_array(student.iwae_logw_grads(log_w), _iwae_reference(log_w), "iwae_logw_grads with log-weights near -1000",
                rtol=EXACT, atol=1e-14, mistakes=_iwae_mistakes(log_w))
    # S = 1 checked here, with a case that a constant does not pass: the gradient is then 1.
    log_w = rng.normal(scale=3.0, size=(1, 4)) - 1000.0
    check_array(student.iwae_logw_grads(log_w), _iwae_reference(log_w), "iwae_logw_grads with S = 1",
                rtol=EXACT, atol=1e-14, mistakes=_iwae_mistakes(log_w))
