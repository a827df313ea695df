"""Autograder tests of book/exercises/nlgm.md (chapter 8): the nonlinear Gaussian model.

The student's functions run in their own process (the ``student`` fixture). The grid quadrature
is compared with the closed-form marginal of a linear decoder (scipy.stats) and, on a curved
decoder, with scipy's adaptive quadrature of the integral; the noise variance with its formula and
with the stationarity of the loss. Tolerances are stated at each test.

The rectangle rule on an evenly spaced grid is exact to about exp(-2 pi^2 (w / h)^2) for a Gaussian-
shaped integrand of width w and spacing h (it is the trapezoid rule, whose error for smooth
integrands that vanish at the ends decays that fast). Every test keeps w / h >= 1.5, so the grid
sum equals the integral to far better than the tolerance 1e-6.
"""
import numpy as np
import pytest
from scipy import integrate, stats
from scipy.special import logsumexp

from pca_to_vae_grader import inputs
from pca_to_vae_grader.compare import check, check_array

LOG_2PI = np.log(2 * np.pi)
GRID = np.linspace(-10.0, 10.0, 4001)  # spacing h = 0.005


def _spiral(z):
    t = 3.0 + 1.2 * np.asarray(z, dtype=float)
    return 0.25 * np.stack([t * np.cos(t), t * np.sin(t)], axis=-1)


def _log_marginal(f, x, sigma2):
    """log of the integral of N(x; f(z), sigma2 I) N(z; 0, 1) over z, by adaptive quadrature.

    The integrand is divided by its largest value (found on a fine grid) before integrating, and
    each of its peaks is passed to scipy.integrate.quad as a breakpoint.
    """
    d = len(x)

    def log_integrand(z):
        z = np.atleast_1d(z)
        return (-0.5 * (d * np.log(2 * np.pi * sigma2) + np.sum((x - f(z)) ** 2, axis=-1) / sigma2)
                - 0.5 * (LOG_2PI + z**2))

    fine = np.linspace(-12.0, 12.0, 24001)
    v = log_integrand(fine)
    c = v.max()
    peaks = fine[1:-1][(v[1:-1] >= v[:-2]) & (v[1:-1] >= v[2:]) & (v[1:-1] > c - 50)]
    value, _ = integrate.quad(lambda z: np.exp(log_integrand(z)[0] - c), -12.0, 12.0, points=peaks,
                              limit=1000, epsabs=0, epsrel=1e-11)
    return c + np.log(value)


def _quad_mistakes(f_grid, x, sigma2, grid):
    """What the classic mistakes of nlgm_logpx_quad produce."""
    d = x.shape[1]
    h = grid[1] - grid[0]
    sq = np.sum((x[:, None, :] - f_grid[None, :, :]) ** 2, axis=-1)
    log_lik = -0.5 * (d * np.log(2 * np.pi * sigma2) + sq / sigma2)
    return [
        ("use the noise variance for the prior, N(z; 0, sigma^2) (the lecture's N(z; 0, D)); the prior is N(z; 0, 1)",
         logsumexp(log_lik + stats.norm(0, np.sqrt(sigma2)).logpdf(grid), axis=1) + np.log(h)),
        ("forget the grid spacing h (the dz of the integral)", logsumexp(log_lik + stats.norm.logpdf(grid), axis=1)),
        ("forget the prior density N(z_g; 0, 1)", logsumexp(log_lik, axis=1) + np.log(h)),
        ("use log(2 pi sigma^2) once instead of d times (the noise is d-dimensional)",
         logsumexp(log_lik + 0.5 * (d - 1) * np.log(2 * np.pi * sigma2) + stats.norm.logpdf(grid), axis=1)
         + np.log(h)),
    ]


# ---------------------------------------------------------------------------------------------
# nlgm_logpx_quad(f_grid, x, sigma2, grid) -> (N,)


@pytest.mark.points(2)
@pytest.mark.parametrize("sigma2, seed", [(0.3, 0), (0.05, 1)])
def test_nlgm_logpx_quad_linear_decoder_matches_closed_form(student, sigma2, seed):
    # f(z) = a z + b makes the model linear Gaussian: x ~ N(b, a a^T + sigma^2 I). The rectangle rule
    # on a grid of spacing 0.005 over [-10, 10] is accurate to far better than 1e-9 for these
    # Gaussian integrands (posterior widths >= 0.1, 20 grid steps); the tolerance is 1e-6 absolute.
    rng = inputs.rng(seed)
    a, b = np.array([1.5, -0.7]), np.array([0.3, 0.2])
    x = b + rng.normal(size=(6, 2)) * 1.5
    f_grid = np.outer(GRID, a) + b
    expected = stats.multivariate_normal(b, np.outer(a, a) + sigma2 * np.eye(2)).logpdf(x)
    check_array(student.nlgm_logpx_quad(f_grid, x, sigma2, GRID), expected,
                f"nlgm_logpx_quad for f(z) = a z + b, sigma2 = {sigma2}", rtol=0, atol=1e-6,
                mistakes=_quad_mistakes(f_grid, x, sigma2, GRID))


@pytest.mark.points(1)
def test_nlgm_logpx_quad_one_dimensional_data(student):
    # d = 1, N = 1: x = a z + e with e ~ N(0, v), so x ~ N(0, a^2 + v).
    rng = inputs.rng(11)
    a, v = rng.uniform(1.0, 3.0), rng.uniform(0.3, 1.0)
    x, f_grid = np.array([[rng.normal(scale=np.sqrt(a**2 + v))]]), a * GRID[:, None]
    expected = stats.norm(0, np.sqrt(a**2 + v)).logpdf(x[0])
    check_array(student.nlgm_logpx_quad(f_grid, x, v, GRID), expected, "nlgm_logpx_quad for d = 1, N = 1",
                rtol=0, atol=1e-6, mistakes=_quad_mistakes(f_grid, x, v, GRID))


@pytest.mark.points(2)
def test_nlgm_logpx_quad_spiral_matches_adaptive_quadrature(student):
    # A curved decoder (a spiral), compared with scipy's adaptive quadrature; tolerance 1e-6 absolute.
    rng = inputs.rng(2)
    f_grid = _spiral(GRID)
    x = _spiral(rng.normal(size=5)) + 0.2 * rng.normal(size=(5, 2))
    expected = [_log_marginal(_spiral, xn, 0.04) for xn in x]
    check_array(student.nlgm_logpx_quad(f_grid, x, 0.04, GRID), expected, "nlgm_logpx_quad on the spiral, sigma2 = 0.04",
                rtol=0, atol=1e-6, mistakes=_quad_mistakes(f_grid, x, 0.04, GRID))


@pytest.mark.points(1)
def test_nlgm_logpx_quad_small_noise_stays_finite(student):
    # sigma2 = 1e-4 and points shifted by (0.5, 0.5) off the spiral: for two of them every term
    # N(x; f(z_g), sigma2 I) is below exp(-1000), which is 0 in float64, so exp-then-log gives -inf;
    # logsumexp is exact.
    f_grid = _spiral(GRID)
    z = np.array([-0.5, 0.4, 1.1]) + inputs.rng(13).uniform(-0.05, 0.05, size=3)  # drawn anew in every run
    x = _spiral(z) + 0.5
    expected = np.array([_log_marginal(_spiral, xn, 1e-4) for xn in x])  # about -1089, -170, -1270
    got = check_array(student.nlgm_logpx_quad(f_grid, x, 1e-4, GRID), expected,
                      "nlgm_logpx_quad with sigma2 = 1e-4, points shifted by (0.5, 0.5) off the spiral",
                      rtol=0, atol=1e-6, mistakes=_quad_mistakes(f_grid, x, 1e-4, GRID))
    check(np.all(np.isfinite(got)), "Work in logarithms and combine the terms with scipy.special.logsumexp.")


# ---------------------------------------------------------------------------------------------
# sigma2_mle(X, FZ) -> float


def _sigma2_mistakes(X, FZ):
    M, d = X.shape
    rss = np.sum((X - FZ) ** 2)
    return [("forget the count M (the lecture's d log sigma^2 instead of M d log sigma^2), i.e. divide by d only",
             rss / d),
            ("divide by M only: sigma^2 is the mean squared error per coordinate, so divide by M d", rss / M),
            ("take the mean of the norms ||x - f|| instead of the squared norms",
             np.mean(np.linalg.norm(X - FZ, axis=1)) / d),
            ("divide by M d - 1 instead of M d", rss / (M * d - 1))]


@pytest.mark.points(2)
@pytest.mark.parametrize("M, d, seed", [(500, 2, 0), (40, 7, 1)])
def test_sigma2_mle_matches_formula(student, M, d, seed):
    rng = inputs.rng(10 + seed)
    FZ = rng.normal(size=(M, d))
    X = FZ + 0.3 * rng.normal(size=(M, d))
    expected = np.sum((X - FZ) ** 2) / (M * d)
    check_array(student.sigma2_mle(X, FZ), expected, f"sigma2_mle(X, FZ) with M = {M}, d = {d}",
                rtol=1e-10, atol=1e-14, mistakes=_sigma2_mistakes(X, FZ))


@pytest.mark.points(1)
def test_sigma2_mle_zero_gradient_of_loss(student):
    # L(s) = M d log s + RSS / s has dL/ds = M d / s - RSS / s^2, zero at the MLE. Relative to the
    # size M d / s of either term, the derivative at the student's value must be below 1e-8.
    rng = inputs.rng(12)
    M, d = 300, 3
    FZ = _spiral(rng.normal(size=M))[:, :2] @ rng.normal(size=(2, d))
    X = FZ + 0.1 * rng.normal(size=(M, d))
    rss = np.sum((X - FZ) ** 2)
    s = float(np.asarray(student.sigma2_mle(X, FZ), dtype=float).reshape(-1)[0])
    check(np.isfinite(s) and s > 0, f"sigma2_mle returned {s}; a variance must be a positive number.")
    gradient = (M * d / s - rss / s**2) / (M * d / s)
    check(abs(gradient) < 1e-8,
          f"At your sigma2 = {s:.6g} the loss L = M d log sigma2 + RSS / sigma2 is not stationary: dL/dsigma2 "
          f"is {gradient:+.3g} times M d / sigma2. Its zero is RSS / (M d), about {rss / (M * d):.2g}."
          + (" You are M times too large: each of the M pairs contributes its own d log sigma2."
             if abs(s - rss / d) < 1e-9 * rss else ""))


@pytest.mark.points(1)
def test_sigma2_mle_single_pair(student):
    rng = inputs.rng(14)
    X, FZ = rng.normal(size=(1, 4)), rng.normal(size=(1, 4))
    check_array(student.sigma2_mle(X, FZ), sum((X[0, i] - FZ[0, i]) ** 2 for i in range(4)) / 4,
                "sigma2_mle for one pair (M = 1, d = 4)", rtol=1e-12, atol=1e-14, mistakes=_sigma2_mistakes(X, FZ))
