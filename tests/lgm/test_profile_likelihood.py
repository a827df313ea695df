"""The profile-likelihood solver, the Aitken stopping rule, and the Heywood
case of scikit-learn's breast-cancer data.

References: finite differences for the gradient; the stationarity condition
S C^{-1} A = A (eq-lgm-stationary-A) for the best A; scikit-learn's
FactorAnalysis for the log-likelihood formula and for the optimum on the
breast-cancer data (-16.546377 nats per sample after 100000 of its EM
iterations, 188 s; measured when the issue was filed, too slow to rerun).
"""
import math
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.decomposition import FactorAnalysis
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import StandardScaler

from lgm import LGM, make_lgm_data, mean_log_likelihood
from lgm.completion import aitken_converged, converged, remaining_gain
from lgm.em import sample_covariance
from lgm.profile_likelihood import profile_log_likelihood

#: FactorAnalysis(5, tol=1e-10, max_iter=100000) on the standardized data.
FACTOR_ANALYSIS_OPTIMUM = -16.546377


@pytest.fixture(scope="module")
def cancer():
    return StandardScaler().fit_transform(load_breast_cancer().data)


@pytest.fixture(scope="module")
def S():
    X, _ = make_lgm_data(500, 7, 2, random_state=3)
    return sample_covariance(X, X.mean(axis=0))


def test_profile_gradient_matches_finite_differences(S):
    log_D = np.log(np.random.default_rng(0).uniform(0.2, 1.5, 7))
    _, grad, _ = profile_log_likelihood(S, log_D, 2)
    h = 1e-6
    fd = np.array([
        (profile_log_likelihood(S, log_D + h * e, 2)[0]
         - profile_log_likelihood(S, log_D - h * e, 2)[0]) / (2 * h)
        for e in np.eye(7)
    ])
    # central differences: O(h^2) truncation plus ~1e-16 / h rounding
    np.testing.assert_allclose(grad, fd, atol=1e-8)


def test_profile_A_is_the_best_A_for_its_D(S):
    D = np.random.default_rng(1).uniform(0.2, 1.5, 7)
    loglik, _, A = profile_log_likelihood(S, np.log(D), 2)
    # the value is the log-likelihood at (A, D), by the package's other formula
    assert loglik == pytest.approx(mean_log_likelihood(S, A, D), abs=1e-12)
    # stationarity in A for fixed D: S C^{-1} A = A
    C = A @ A.T + np.diag(D)
    np.testing.assert_allclose(S @ np.linalg.solve(C, A), A, atol=1e-10)
    # and no other A does better
    rng = np.random.default_rng(2)
    for _ in range(20):
        other = A + 0.1 * rng.normal(size=A.shape)
        assert mean_log_likelihood(S, other, D) < loglik


def test_remaining_gain_is_exact_for_a_geometric_sequence():
    r, g = 0.9, 1e-3
    history = [-(g * r**k) / (1 - r) for k in range(10)]  # rises to 0
    assert remaining_gain(history) == pytest.approx(-history[-1], rel=1e-9)


def test_aitken_rule_does_not_stop_a_crawl():
    # l_k = -1/k: each step gains ~1/k^2, but 1/k is still to come
    history = [-1.0 / k for k in range(1, 2001)]
    assert converged(1e-6)(history)  # the per-step rule is fooled
    assert not aitken_converged(1e-6)(history)
    assert remaining_gain(history) > 100 * (history[-1] - history[-2])


def test_heywood_target_on_breast_cancer(cancer):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        model = LGM(5).fit(cancer)
    # within 1e-5 nats per sample of (or above) FactorAnalysis's optimum
    assert model.score(cancer) >= FACTOR_ANALYSIS_OPTIMUM - 1e-5
    # scikit-learn's dense formula agrees on the value of these parameters
    fa = FactorAnalysis(5)
    fa.components_, fa.noise_variance_ = model.A_.T, model.D_
    fa.mean_, fa.n_features_in_ = model.mean_, cancer.shape[1]
    assert fa.score(cancer) == pytest.approx(model.score(cancer), abs=1e-6)
    # a Heywood case: some variance at the floor
    floor = model.noise_floor * cancer.var(axis=0).mean()
    assert model.D_.min() == pytest.approx(floor, rel=1e-6)
    assert np.all(np.diff(model.loglik_) >= -1e-9)


def test_plain_em_crawls_but_never_goes_down(cancer):
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        model = LGM(5, solver="em", max_iter=1500).fit(cancer)
    # 1e-9: the accuracy of the log-likelihood formula this close to the
    # boundary (1e-10 measured against 40-digit arithmetic)
    assert np.all(np.diff(model.loglik_) >= -1e-9)
    assert model.loglik_[-1] < FACTOR_ANALYSIS_OPTIMUM - 1e-4  # still far


def test_profile_solver_alone_reaches_the_same_optimum(cancer):
    auto = LGM(5).fit(cancer)
    profile = LGM(5, solver="profile").fit(cancer)
    assert profile.score(cancer) == pytest.approx(auto.score(cancer), abs=1e-6)


def test_profile_solver_needs_diagonal_expected():
    X, _ = make_lgm_data(50, 4, 1, random_state=0)
    for kwargs in ({"noise": "isotropic"}, {"completion": "sampled"}):
        with pytest.raises(ValueError, match="solver='profile' needs"):
            LGM(1, solver="profile", **kwargs).fit(X)
    with pytest.raises(ValueError, match="solver must be one of"):
        LGM(1, solver="newton").fit(X)


def test_a_well_posed_fit_never_switches_and_matches_em(S):
    X, _ = make_lgm_data(2000, 10, 3, random_state=0)
    auto = LGM(3, tol=1e-10).fit(X)
    em = LGM(3, solver="em", tol=1e-10, max_iter=5000).fit(X)
    assert auto.n_iter_ == em.n_iter_  # fast EM: no hand-over
    assert auto.score(X) == pytest.approx(em.score(X), abs=1e-10)
    assert math.isfinite(auto.score(X))


def test_ctrl_c_in_the_profile_solver_keeps_what_was_done(cancer, ctrl_c_on_call):
    # Ctrl-C during the quasi-Newton method on the profile likelihood (simulated by a
    # KeyboardInterrupt from its 15th evaluation): the fit keeps the last point accepted, warns,
    # and loglik_ matches the parameters stored.
    import lgm.profile_likelihood as profile

    ctrl_c_on_call(profile, "profile_log_likelihood", 15)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        with pytest.warns(UserWarning, match="Interrupted after"):
            model = LGM(5, solver="profile").fit(cancer)
    assert 2 < model.n_iter_ < 15
    assert np.diff(model.loglik_).min() >= 0
    assert model.loglik_[-1] == pytest.approx(model.score(cancer), abs=1e-10)
