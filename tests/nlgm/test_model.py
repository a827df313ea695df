"""NLGM against exact answers: a linear decoder with an LGM's parameters has the closed-form
marginal N(b, A A^T + D) (scipy.stats) and the exact posterior (dense numpy algebra)."""
import numpy as np
import pytest
import torch
from scipy import stats

import nlgm.model
from lgm.gaussian import kl_gaussians
from nlgm import NLGM


def linear_model(mismatch=(0.0, 0.0), d=5, K=2, seed=0):
    """A linear NLGM (float64) set to an LGM (A, D, b), its encoder to the posterior (shifted).

    A is rotated so that A^T D^{-1} A is diagonal: then the exact posterior covariance
    (I + A^T D^{-1} A)^{-1} is diagonal and a diagonal-Gaussian encoder can represent it.
    """
    rng = np.random.default_rng(seed)
    A, D, b = rng.normal(size=(d, K)), rng.uniform(0.3, 1.0, d), rng.normal(size=d)
    A = A @ np.linalg.eigh(A.T @ (A / D[:, None]))[1]
    Sigma = np.linalg.inv(np.eye(K) + A.T @ (A / D[:, None]))
    beta = Sigma @ A.T / D
    model = NLGM(d, K, hidden=(), decoder="linear", noise="diagonal").double()
    with torch.no_grad():
        model.decoder.weight.copy_(torch.as_tensor(A))
        model.decoder.bias.copy_(torch.as_tensor(b))
        model.noise_raw.copy_(torch.as_tensor(np.log(D - model.noise_floor)))
        enc = model.encoder[0]
        enc.weight.zero_()
        enc.weight[:K].copy_(torch.as_tensor(beta))
        enc.bias[:K].copy_(torch.as_tensor(-beta @ b + mismatch[0]))
        enc.bias[K:].copy_(torch.as_tensor(np.log(np.diag(Sigma)) + mismatch[1]))
    X = rng.multivariate_normal(b, A @ A.T + np.diag(D), size=40)
    exact = stats.multivariate_normal(b, A @ A.T + np.diag(D)).logpdf(X)
    return model, X, exact, (A, D, b, Sigma, beta)


def gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.mark.slow  # ten seconds or more on the shared 2-core machine (make quick skips it)
def test_importance_sampling_with_the_exact_posterior_is_exact(monkeypatch):
    monkeypatch.setattr(nlgm.model, "_MAX_ELEMENTS", 50)  # force many chunks
    model, X, exact, _ = linear_model()
    got = model.log_likelihood_samples(X, 5000, generator=gen(0)).numpy()
    # p(x|z) p(z) / q(z|x) = p(x) for every z when q is the posterior: zero variance.
    np.testing.assert_allclose(got, exact, rtol=0, atol=1e-9)


def test_mc_elbo_is_log_p_minus_kl_to_the_posterior():
    model, X, exact, (A, D, b, Sigma, beta) = linear_model(mismatch=(0.4, 0.6))
    mu, logvar = (t.detach().numpy() for t in model.encode(X))
    # ELBO(x) = log p(x) - KL(q(z|x) || p(z|x)) (eq-elbo); the KL from dense Cholesky algebra.
    gap = [kl_gaussians(m, np.diag(np.exp(s)), beta @ (x - b), Sigma) for m, s, x in zip(mu, logvar, X)]
    reference = np.mean(exact - gap)
    reps = 500  # J = 1 draws, each row repeated, so the spread gives the standard error
    draws = model.elbo_samples(np.repeat(X, reps, axis=0), 1, generator=gen(1)).detach().numpy()
    se = draws.reshape(len(X), reps).std() / np.sqrt(draws.size)
    assert abs(draws.mean() - reference) < 4 * se
    # The same with J samples averaged in one call (eq-elbo-mc); 1/J keeps it unbiased.
    assert abs(model.elbo(X, 500, generator=gen(2)) - reference) < 4 * se * np.sqrt(reps / 500) * 1.5


def test_importance_weighted_estimate_matches_exact_likelihood_with_a_mismatched_encoder():
    model, X, exact, _ = linear_model(mismatch=(0.4, 0.6))
    est = model.log_likelihood_samples(X, 5000, generator=gen(3)).numpy()
    diff = est - exact
    # Per-point errors are independent across points; 4 standard errors of their mean.
    assert abs(diff.mean()) < 4 * diff.std() / np.sqrt(len(diff)) + 1e-3
    elbo = model.elbo(X, 1000, generator=gen(4))
    assert elbo < est.mean() - 0.1  # the bound is visibly below the estimate here


def test_elbo_is_below_the_importance_weighted_estimate_for_an_mlp_model():
    from lgm.data import load_digits
    X = load_digits()[1][:60]
    model = NLGM(64, 4, hidden=(32,), noise="diagonal", seed=0).init_from_data(X)
    iw = model.log_likelihood_samples(X, 500, generator=gen(0)).numpy()
    elbo = model.elbo_samples(X, 500, generator=gen(1)).detach().numpy()
    assert np.all(elbo <= iw)


def test_samples_have_the_lgm_covariance_and_means_lie_on_the_plane():
    model, _, _, (A, D, b, _, _) = linear_model()
    x = model.sample(100_000, generator=gen(5)).numpy()
    C = A @ A.T + np.diag(D)
    # Sample-covariance error ~ |C| sqrt(2/n) ~ 0.5% here; allow 3%.
    assert np.linalg.norm(np.cov(x.T) - C) < 0.03 * np.linalg.norm(C)
    means = model.sample(200, noise=False, generator=gen(6)).numpy() - b
    off_plane = means.T - A @ np.linalg.lstsq(A, means.T, rcond=None)[0]
    assert np.abs(off_plane).max() < 1e-10


def test_bernoulli_decoder_matches_scipy():
    rng = np.random.default_rng(7)
    model = NLGM(6, 2, hidden=(8,), likelihood="bernoulli", seed=1).double()
    x = rng.integers(0, 2, size=(5, 6)).astype(float)
    z = torch.as_tensor(rng.normal(size=(5, 2)))
    got = model.log_px_given_z(torch.as_tensor(x), z).detach().numpy()
    ref = stats.bernoulli.logpmf(x, model.decode(z).detach().numpy()).sum(1)
    np.testing.assert_allclose(got, ref, rtol=1e-10)
    assert model.sample(4, generator=gen(0)).unique().tolist() in ([0.0, 1.0], [0.0], [1.0])


def test_init_from_data_sets_mean_and_variances():
    rng = np.random.default_rng(8)
    X = rng.normal(loc=3.0, scale=[1.0, 2.0, 0.5], size=(500, 3))
    X[:, 2] = 7.0  # a constant feature: its variance is raised to the floor
    diag = NLGM(3, 1, hidden=(4,), noise="diagonal").double().init_from_data(X)
    var = X.var(0)
    var[2] = 2 * diag.noise_floor
    np.testing.assert_allclose(diag.noise_variance.numpy(), var, rtol=1e-12)
    np.testing.assert_allclose(diag.decoder[-1].bias.detach().numpy(), X.mean(0), rtol=1e-12)
    iso = NLGM(3, 1, hidden=(4,), noise="isotropic").double().init_from_data(X)
    np.testing.assert_allclose(iso.noise_variance.numpy(), np.full(3, var.mean()), rtol=1e-12)


def test_noise_variance_never_drops_below_the_floor():
    model = NLGM(3, 1, hidden=(4,), noise="diagonal", noise_floor=1e-3)
    with torch.no_grad():
        model.noise_raw.fill_(-1e4)
    np.testing.assert_allclose(model.noise_variance.numpy(), 1e-3, rtol=1e-6)


def test_save_then_load_gives_identical_outputs(tmp_path):
    model = NLGM(5, 2, hidden=(7, 3), noise="diagonal", activation="relu", seed=3)
    X = np.random.default_rng(9).normal(size=(10, 5))
    model.init_from_data(X)
    model.save(tmp_path / "m.pt")
    other = NLGM.load(tmp_path / "m.pt")
    assert other.config == model.config
    for a, b in zip(model.encode(X), other.encode(X)):
        assert torch.equal(a, b)
    assert model.elbo(X, 3, generator=gen(0)) == other.elbo(X, 3, generator=gen(0))
    assert torch.equal(model.sample(4, generator=gen(1)), other.sample(4, generator=gen(1)))


def test_the_seed_fixes_the_initial_weights_and_leaves_the_global_rng_alone():
    state = torch.get_rng_state()
    a, b = NLGM(4, 2, seed=11), NLGM(4, 2, seed=11)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize("kwargs, match", [
    (dict(latent_dim=0), "latent_dim"),
    (dict(latent_dim=9), "latent_dim"),
    (dict(likelihood="poisson"), "likelihood"),
    (dict(noise="full"), "noise"),
    (dict(decoder="cnn"), "decoder"),
    (dict(activation="gelu"), "activation"),
    (dict(hidden=(0,)), "hidden"),
    (dict(noise_floor=0.0), "noise_floor"),
    (dict(seed=-1), "seed"),
])
def test_bad_options_are_named(kwargs, match):
    args = dict(data_dim=8, latent_dim=2) | kwargs
    with pytest.raises(ValueError, match=match):
        NLGM(**args)


def test_bad_data_gets_a_clear_error():
    model = NLGM(3, 1, hidden=(4,))
    with pytest.raises(ValueError, match="2-D"):
        model.encode(np.zeros(3))
    with pytest.raises(ValueError, match="features"):
        model.elbo(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="NaN"):
        model.log_likelihood(np.array([[0.0, np.nan, 1.0]]))
    with pytest.raises(ValueError, match="n_importance"):
        model.log_likelihood(np.zeros((2, 3)), n_importance=0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        NLGM(3, 1, likelihood="bernoulli").elbo(np.full((2, 3), 2.0))
    with pytest.raises(ValueError, match="not a saved NLGM"):
        NLGM.load(__file__)
