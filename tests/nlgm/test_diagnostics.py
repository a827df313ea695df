"""nlgm.diagnostics against independent computations.

A linear NLGM (``hidden=()``, ``decoder="linear"``) has an affine encoder, mu = W x + b, and a linear
Gaussian decoder, so its unit activities are the quadratic forms w_k^T S w_k of the data covariance S,
and its expected log-likelihood E_q log p(x | z) has the closed form of exercise 9.2. The KL per unit
is checked against lgm's Gaussian KL; the rate decomposition against the closed-form rate (Monte
Carlo, within 4 standard errors) and its two exact cases (q = prior: both terms 0; N far-apart,
narrow posteriors: I = log N).
"""
import math

import numpy as np
import pytest
import torch

import nlgm
from lgm import kl_gaussians


def _linear(seed=0, d=6, K=3):
    model = nlgm.NLGM(d, K, hidden=(), decoder="linear", noise="diagonal", seed=seed).double()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(seed + p.numel()))
    return model


def _data(seed=0, N=40, d=6):
    return np.random.default_rng(seed).normal(size=(N, d))


def _encoder_affine(model):
    """W (2K, d) and b of the encoder's one linear layer, in x's own units (the layer sees x standardised)."""
    layer = model.encoder[0]
    scale, shift = model.encoder.x_scale.numpy(), model.encoder.x_shift.numpy()
    W = layer.weight.detach().numpy() / scale
    return W, layer.bias.detach().numpy() - W @ shift


def test_unit_rates_are_the_mean_kl_of_each_unit():
    model, X = _linear(1), _data(1)
    model.init_from_data(torch.as_tensor(X))
    W, b = _encoder_affine(model)
    K = model.latent_dim
    M, L = X @ W[:K].T + b[:K], X @ W[K:].T + b[K:]
    expected = [np.mean([kl_gaussians(M[n, [k]], np.exp(L[n, [k]])[:, None], np.zeros(1), np.eye(1))
                         for n in range(len(X))]) for k in range(K)]
    rates = nlgm.unit_rates(model, X)
    assert rates.shape == (K,)
    np.testing.assert_allclose(rates, expected, rtol=1e-10)
    rate, _ = nlgm.rate_distortion(model, X)
    assert rate == pytest.approx(rates.sum(), rel=1e-12)


def test_distortion_matches_the_closed_form_of_a_linear_decoder():
    model, X = _linear(2), _data(2, N=30)
    W, b = _encoder_affine(model)
    K = model.latent_dim
    M, V = X @ W[:K].T + b[:K], np.exp(X @ W[K:].T + b[K:])
    A, c = model.decoder.weight.detach().numpy(), model.decoder.bias.detach().numpy()
    D = model.noise_variance.numpy()
    # E_q log p(x | z) = -1/2 (d log 2 pi + sum log D + sum (x - A m - c)^2 / D + sum_k V_k (A^T D^-1 A)_kk)
    expected = np.mean(0.5 * (len(D) * np.log(2 * np.pi) + np.log(D).sum() + np.sum((X - M @ A.T - c) ** 2 / D, 1)
                              + V @ np.diag(A.T @ (A / D[:, None]))))
    J = 4000
    draws = [nlgm.rate_distortion(model, X, n_samples=1, generator=torch.Generator().manual_seed(s))[1]
             for s in range(20)]
    _, distortion = nlgm.rate_distortion(model, X, n_samples=J, generator=torch.Generator().manual_seed(99))
    se = np.std(draws) / math.sqrt(J)  # one draw per row and seed: the s.d. of a J = 1 estimate
    assert abs(distortion - expected) < 4 * se
    assert se < 0.05 * abs(expected)


@pytest.mark.parametrize("likelihood", ["gaussian", "bernoulli"])
def test_rate_and_distortion_add_up_to_the_elbo(likelihood):
    X = _data(3)
    if likelihood == "gaussian":
        model = _linear(3)
    else:  # binary data; a Bernoulli log-probability is <= 0, so the distortion is >= 0
        X = (X > 0).astype(float)
        model = nlgm.NLGM(6, 3, hidden=(8,), likelihood="bernoulli", seed=3).double()
    rate, distortion = nlgm.rate_distortion(model, X, n_samples=1, generator=torch.Generator().manual_seed(5))
    elbo = model.elbo(X, n_samples=1, generator=torch.Generator().manual_seed(5))
    assert -(rate + distortion) == pytest.approx(elbo, rel=1e-10)
    assert rate >= 0 and (distortion >= 0 or likelihood == "gaussian")


def test_unit_activity_is_the_variance_of_the_affine_encoder_means():
    model, X = _linear(4), _data(4)
    W, _ = _encoder_affine(model)
    S = np.cov(X.T, bias=True)
    K = model.latent_dim
    expected = np.einsum("kd,de,ke->k", W[:K], S, W[:K])
    np.testing.assert_allclose(nlgm.unit_activity(model, X), expected, rtol=1e-10)
    # switch unit 0 off (its mean no longer depends on x) and unit 1 nearly off
    with torch.no_grad():
        model.encoder[0].weight[0].zero_()
        model.encoder[0].weight[1] *= 1e-3
    activity = nlgm.unit_activity(model, X)
    assert activity[0] == 0.0 and activity[1] < 0.01 < activity[2]
    assert nlgm.active_units(model, X) == 1
    assert nlgm.active_units(model, X, threshold=0.5 * activity[1]) == 2


def test_rate_decomposition_is_zero_when_every_posterior_is_the_prior():
    model, X = _linear(5), _data(5)
    with torch.no_grad():
        model.encoder[0].weight.zero_()
        model.encoder[0].bias.zero_()
    info, marginal = nlgm.rate_decomposition(model, X, generator=torch.Generator().manual_seed(0))
    assert info == pytest.approx(0.0, abs=1e-12) and marginal == pytest.approx(0.0, abs=1e-12)


def test_rate_decomposition_reaches_log_n_for_separate_posteriors():
    # N posteriors with s.d. e^-5 at means 10 apart: each z_n identifies its x_n, I = log N.
    model, N = _linear(6, d=6, K=1), 8
    X = np.zeros((N, 6))
    X[:, 0] = np.arange(N)
    with torch.no_grad():
        layer = model.encoder[0]
        layer.weight.zero_()
        layer.weight[0, 0] = 10.0
        layer.bias[:] = torch.tensor([-35.0, -10.0])
    info, marginal = nlgm.rate_decomposition(model, X, generator=torch.Generator().manual_seed(0))
    assert info == pytest.approx(math.log(N), abs=1e-9)
    assert info + marginal == pytest.approx(nlgm.unit_rates(model, X).sum(), rel=1e-2)


def test_rate_decomposition_adds_up_to_the_rate():
    model, X = _linear(7), _data(7, N=200)
    rate = nlgm.unit_rates(model, X).sum()
    sums = np.array([sum(nlgm.rate_decomposition(model, X, generator=torch.Generator().manual_seed(s)))
                     for s in range(30)])
    assert abs(sums.mean() - rate) < 4 * sums.std() / math.sqrt(len(sums)) + 1e-9
    info = nlgm.rate_decomposition(model, X, generator=torch.Generator().manual_seed(0))[0]
    assert 0 <= info <= math.log(len(X))


def test_bad_arguments_are_refused():
    model, X = _linear(8), _data(8)
    with pytest.raises(TypeError, match="nlgm.NLGM"):
        nlgm.unit_rates(torch.nn.Linear(2, 2), X)
    with pytest.raises(ValueError, match="threshold"):
        nlgm.active_units(model, X, threshold=0)
    with pytest.raises(ValueError, match="n_samples"):
        nlgm.rate_distortion(model, X, n_samples=0)
    with pytest.raises(ValueError):
        nlgm.unit_activity(model, X[:, :3])
