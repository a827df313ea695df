"""The 1-D Gaussian mixture against scipy.stats, brute force, scikit-learn and the EM guarantee."""
import numpy as np
import pytest
from scipy import stats
from sklearn.mixture import GaussianMixture

from lgm.completion import converged, run
from lgm.mixture import (
    GaussianMixture1D,
    gmm_em_step,
    gmm_log_likelihood,
    gmm_m_step,
    gmm_responsibilities,
)


def random_case(rng):
    """Data from a random mixture and random (different) starting parameters."""
    K = int(rng.integers(1, 5))
    N = int(rng.integers(5, 80))
    x = rng.normal(rng.normal(0, 3, size=K)[rng.integers(0, K, size=N)], rng.uniform(0.2, 2))
    pi = rng.dirichlet(np.ones(K))
    mu = rng.normal(0, 3, size=K)
    var = rng.uniform(0.1, 5, size=K)
    return x, pi, mu, var


def direct_density(x, pi, mu, var):
    """sum_k pi_k N(x; mu_k, var_k) with scipy.stats.norm, shape (N, K) before the sum."""
    return pi * stats.norm.pdf(x[:, None], loc=mu, scale=np.sqrt(var))


def test_log_likelihood_matches_scipy_sum():
    rng = np.random.default_rng(0)
    for _ in range(20):
        x, pi, mu, var = random_case(rng)
        ref = np.sum(np.log(direct_density(x, pi, mu, var).sum(axis=1)))
        # Same quantity by two routes (logsumexp vs. a direct sum); rounding only.
        np.testing.assert_allclose(gmm_log_likelihood(x, pi, mu, var), ref, rtol=1e-12)


def test_log_likelihood_is_finite_far_from_every_component():
    # At x = 1000 the densities underflow to 0 and log(0) = -inf; logsumexp stays exact.
    x, pi, mu, var = np.array([1000.0]), np.array([0.3, 0.7]), np.array([0.0, 1.0]), np.ones(2)
    with np.errstate(divide="ignore"):
        assert np.log(direct_density(x, pi, mu, var).sum()) == -np.inf
    ref = np.logaddexp(np.log(0.3) + stats.norm.logpdf(1000.0, 0, 1), np.log(0.7) + stats.norm.logpdf(1000.0, 1, 1))
    np.testing.assert_allclose(gmm_log_likelihood(x, pi, mu, var), ref, rtol=1e-12)


def test_responsibilities_are_bayes_rule_and_sum_to_one():
    rng = np.random.default_rng(1)
    for _ in range(20):
        x, pi, mu, var = random_case(rng)
        R = gmm_responsibilities(x, pi, mu, var)
        joint = direct_density(x, pi, mu, var)
        np.testing.assert_allclose(R.sum(axis=1), 1.0, rtol=1e-12)
        np.testing.assert_allclose(R, joint / joint.sum(axis=1, keepdims=True), rtol=1e-9, atol=1e-300)


def test_em_step_never_decreases_the_log_likelihood():
    # The EM guarantee, over 100 random cases. A decrease of a few ulps of |log p| is rounding.
    rng = np.random.default_rng(2)
    for _ in range(100):
        x, pi, mu, var = random_case(rng)
        before = gmm_log_likelihood(x, pi, mu, var)
        after = gmm_log_likelihood(x, *gmm_em_step(x, pi, mu, var))
        assert after >= before - 1e-10 * abs(before)


def test_m_step_with_hard_labels_is_the_per_group_mean_and_variance():
    rng = np.random.default_rng(3)
    x = rng.normal(size=30)
    z = np.arange(30) % 3
    R = np.eye(3)[z]
    pi, mu, var = gmm_m_step(x, R)
    for k in range(3):
        assert pi[k] == pytest.approx(np.mean(z == k), rel=1e-12)
        assert mu[k] == pytest.approx(np.mean(x[z == k]), rel=1e-12)
        assert var[k] == pytest.approx(np.var(x[z == k]), rel=1e-12)  # 1/N_k, the ML variance


def test_m_step_maximises_the_expected_complete_data_log_likelihood():
    # Q(theta) = sum_nk R_nk log(pi_k N(x_n; mu_k, var_k)), maximised over pi on the simplex:
    # finite differences of Q in mu, log var and the softmax logits of pi vanish at the M-step output.
    rng = np.random.default_rng(4)
    x, pi0, mu0, var0 = random_case(rng)
    while len(pi0) < 2:
        x, pi0, mu0, var0 = random_case(rng)
    R = gmm_responsibilities(x, pi0, mu0, var0)
    pi, mu, var = gmm_m_step(x, R)

    def Q(theta):
        K = len(pi)
        logits, m, logv = theta[:K], theta[K:2 * K], theta[2 * K:]
        p = np.exp(logits - logits.max())
        p /= p.sum()
        return np.sum(R * (np.log(p) + stats.norm.logpdf(x[:, None], m, np.exp(logv / 2))))

    theta = np.concatenate([np.log(pi), mu, np.log(var)])
    h = 1e-5
    grad = [(Q(theta + h * e) - Q(theta - h * e)) / (2 * h) for e in np.eye(len(theta))]
    # Central differences have error O(h^2) in the third derivative plus rounding |Q| eps / h ~ 4e-9
    # (|Q| ~ 170 here); 1e-6 is far above both and far below the gradient away from the optimum.
    np.testing.assert_allclose(grad, 0.0, atol=1e-6)


def test_em_matches_scikit_learn_from_the_same_start():
    # scikit-learn's GaussianMixture runs the same EM; from the same start both reach the same fixed
    # point. reg_covar=0 turns off its variance regulariser; both stop at changes below 1e-12.
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.normal(-2, 0.7, 150), rng.normal(1.5, 1.2, 250)])
    pi, mu, var = np.array([0.5, 0.5]), np.array([-1.0, 0.5]), np.array([1.0, 1.0])
    model = GaussianMixture1D(pi, mu, var)
    run(model, lambda: [x], n_iter=2000, rng=rng, score=lambda: model.log_likelihood(x),
        stop=converged(1e-12))
    sk = GaussianMixture(2, covariance_type="full", reg_covar=0.0, tol=1e-12, max_iter=2000,
                         weights_init=pi, means_init=mu[:, None], precisions_init=(1 / var)[:, None, None])
    sk.fit(x[:, None])
    np.testing.assert_allclose(model.pi, sk.weights_, atol=1e-5)
    np.testing.assert_allclose(model.mu, sk.means_[:, 0], atol=1e-5)
    np.testing.assert_allclose(model.var, sk.covariances_[:, 0, 0], atol=1e-5)


def test_model_through_the_loop_equals_repeated_em_steps():
    rng = np.random.default_rng(6)
    x, pi, mu, var = random_case(rng)
    model = GaussianMixture1D(pi, mu, var)
    history, _ = run(model, lambda: [x], n_iter=10, rng=rng, score=lambda: model.log_likelihood(x))
    params = (pi, mu, var)
    for _ in range(10):
        params = gmm_em_step(x, *params)
    for got, want in zip((model.pi, model.mu, model.var), params):
        np.testing.assert_allclose(got, want, rtol=1e-12)
    assert np.all(np.diff(history) >= -1e-10 * abs(history[0]))


@pytest.mark.slow  # ten seconds or more on the shared 2-core machine (make quick skips it)
def test_sampled_completion_is_label_frequencies_with_the_right_mean():
    rng = np.random.default_rng(7)
    x = np.array([-1.0, 0.0, 0.3, 2.0])
    model = GaussianMixture1D([0.4, 0.6], [-1.0, 1.0], [1.0, 0.5], completion="sampled", n_samples=5)
    Rhat = model.complete(x, rng)
    assert np.all(np.isin(Rhat * 5, np.arange(6)))  # multiples of 1/J
    np.testing.assert_allclose(Rhat.sum(axis=1), 1.0)
    # Averaged over 4000 completions, the frequencies estimate the responsibilities; each entry has
    # standard error at most 0.5 / sqrt(5 * 4000) ~ 3.5e-3, so 0.02 is more than 5 standard errors.
    mean = np.mean([model.complete(x, rng) for _ in range(4000)], axis=0)
    np.testing.assert_allclose(mean, gmm_responsibilities(x, model.pi, model.mu, model.var), atol=0.02)


def test_sampled_em_is_not_monotone_but_stays_near_the_em_solution():
    rng = np.random.default_rng(8)
    x = np.concatenate([rng.normal(-2, 1, 100), rng.normal(2, 1, 100)])
    model = GaussianMixture1D([0.5, 0.5], [-1.0, 1.0], [1.0, 1.0], completion="sampled", n_samples=1)
    history, _ = run(model, lambda: [x], n_iter=60, rng=rng, score=lambda: model.log_likelihood(x))
    assert np.any(np.diff(history) < 0)
    exact = GaussianMixture1D([0.5, 0.5], [-1.0, 1.0], [1.0, 1.0])
    run(exact, lambda: [x], n_iter=200, rng=rng, score=lambda: exact.log_likelihood(x))
    # Fluctuations of order 1/sqrt(N) in the parameters cost O(1) nats of total log-likelihood here.
    assert exact.log_likelihood(x) - 5 < history[-1] <= exact.log_likelihood(x) + 1e-9


@pytest.mark.parametrize(
    "args, match",
    [
        ((np.zeros((3, 1)), [1.0], [0.0], [1.0]), "1-D array"),
        (([0.0, np.nan], [1.0], [0.0], [1.0]), "NaN"),
        (([0.0], [0.5, 0.4], [0.0, 1.0], [1.0, 1.0]), "sum to 1"),
        (([0.0], [0.5, 0.5], [0.0, 1.0], [1.0, 0.0]), "var must be strictly positive"),
        (([0.0], [0.5, 0.5], [0.0], [1.0, 1.0]), "same shape"),
    ],
)
def test_bad_input_is_rejected(args, match):
    with pytest.raises(ValueError, match=match):
        gmm_log_likelihood(*args)


def test_m_step_rejects_bad_weights():
    x = np.zeros(3)
    with pytest.raises(ValueError, match="received no weight"):
        gmm_m_step(x, np.array([[1.0, 0.0]] * 3))
    with pytest.raises(ValueError, match="summing to 1"):
        gmm_m_step(x, np.full((3, 2), 0.3))
    with pytest.raises(ValueError, match="R must have shape"):
        gmm_m_step(x, np.full((2, 2), 0.5))
    with pytest.raises(ValueError, match="completion"):
        GaussianMixture1D([1.0], [0.0], [1.0], completion="mean")
