"""Bayesian PCA with automatic relevance determination (Bishop 1999).

References: the true subspace of synthetic PPCA data (principal angles), the maximum-likelihood
M-step of lgm.em (alpha = 0), finite differences of the log-posterior at the fixed point, and
the EM guarantee between switch-offs.
"""
import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import parametrize_with_checks

from lgm import PPCA, BayesianPCA, make_lgm_data, principal_angles
from lgm.bayesian_pca import _ARDState, ard_update, bpca_m_step, bpca_objective
from lgm.em import ExpectedCompletion, sample_covariance
from lgm.linear_gaussian import posterior_statistics
from tests.lgm.calls import count_calls


@parametrize_with_checks([BayesianPCA()])
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize("seed", range(5))
def test_three_true_directions_stay_out_of_nineteen(seed):
    # target of issue 18: PPCA data with 3 directions in d = 20; start from 19
    X, truth = make_lgm_data(500, 20, 3, noise="isotropic", random_state=seed)
    model = BayesianPCA().fit(X)
    assert model.n_active_ == 3
    assert np.sum(np.isfinite(model.alpha_)) == 3 and len(model.alpha_) == 19
    # the active subspace is the truth's, as closely as the ML fit's
    angles = principal_angles(model.A_, truth.A)
    ml = principal_angles(PPCA(3).fit(X).A_, truth.A)
    assert angles.max() < 0.1
    assert angles.max() < ml.max() + 0.01
    assert model.noise_variance_ == pytest.approx(truth.D[0], rel=0.05)


def test_pure_noise_keeps_no_direction():
    X = np.random.default_rng(0).standard_normal((500, 10))
    model = BayesianPCA().fit(X)
    assert model.n_active_ == 0
    assert np.all(model.A_ == 0)
    assert model.noise_variance_ == pytest.approx(X.var(axis=0).mean(), rel=1e-6)


def test_m_step_with_no_prior_is_the_maximum_likelihood_m_step():
    X, _ = make_lgm_data(300, 8, 3, noise="isotropic", random_state=1)
    S = sample_covariance(X, X.mean(axis=0))
    A0, sigma2 = np.random.default_rng(1).standard_normal((8, 3)), 0.7
    reference = ExpectedCompletion(A0, np.full(8, sigma2), noise="isotropic")
    moments = _ARDState(A0, sigma2, len(X), off=0.0).complete(S, None)
    reference.reestimate(S, reference.complete(S, None))
    A, s2 = bpca_m_step(S, *moments, sigma2, np.zeros(3), len(X))
    np.testing.assert_allclose(A, reference.A, rtol=1e-10)
    assert s2 == pytest.approx(reference.D[0], rel=1e-10)


def test_the_fixed_point_maximises_the_log_posterior():
    # at convergence, with alpha held, the gradient of eq-bpca-objective in A
    # and sigma^2 is zero (central differences)
    X, _ = make_lgm_data(400, 10, 2, noise="isotropic", random_state=2)
    model = BayesianPCA(tol=0, max_iter=3000).fit(X)
    S = sample_covariance(X, model.mean_)
    alpha = ard_update(model.A_)
    A, s2 = model.A_, model.noise_variance_

    def f(A_, s2_):
        return bpca_objective(S, A_, s2_, alpha, len(X))

    h = 1e-5
    for i, k in [(0, 0), (3, 1), (9, 0)]:
        E = np.zeros_like(A)
        E[i, k] = h
        assert (f(A + E, s2) - f(A - E, s2)) / (2 * h) == pytest.approx(0, abs=1e-6)
    assert (f(A, s2 + h) - f(A, s2 - h)) / (2 * h) == pytest.approx(0, abs=1e-6)
    # and alpha_k = d / |a_k|^2 maximises it in alpha with A held
    for factor in (0.9, 1.1):
        assert f(A, s2) > bpca_objective(S, A, s2, alpha * factor, len(X))


def test_log_posterior_never_decreases_between_switch_offs():
    X, _ = make_lgm_data(300, 12, 2, noise="isotropic", random_state=3)
    S = sample_covariance(X, X.mean(axis=0))
    from lgm.ppca import ppca_ml

    state = _ARDState(*ppca_ml(S, 11), len(X), off=1e-6)
    before, n_off = state.objective(S), state.A.shape[1]
    switched = 0
    for _ in range(300):
        state.reestimate(S, state.complete(S, None))
        after = state.objective(S)
        if state.A.shape[1] == n_off:
            assert after >= before - 1e-10
        else:
            switched += 1
        before, n_off = after, state.A.shape[1]
    assert switched >= 1 and state.A.shape[1] == 2


def test_ard_update():
    A = np.array([[3.0, 0.0], [4.0, 0.0]])
    np.testing.assert_array_equal(ard_update(A), [2 / 25, np.inf])


def test_scores_are_those_of_the_active_ppca():
    X, _ = make_lgm_data(300, 8, 2, noise="isotropic", random_state=4)
    model = BayesianPCA().fit(X)
    from lgm.linear_gaussian import log_likelihood

    np.testing.assert_allclose(
        model.score_samples(X),
        log_likelihood(X - model.mean_, model.A_, np.full(8, model.noise_variance_)),
    )
    assert model.transform(X).shape == (300, model.n_active_)
    assert np.all(np.diff(np.sum(model.A_**2, axis=0)) <= 0)


# ---------------------------------------------------------------- hostile input


@pytest.fixture(scope="module")
def data():
    X, _ = make_lgm_data(200, 6, 2, noise="isotropic", random_state=5)
    return X


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_components=0), "n_components must be None or an integer between 1 and d - 1 = 5"),
    (dict(n_components=6), "n_components must be None or an integer between 1 and d - 1 = 5"),
    (dict(n_components=2.0), "n_components must be None or an integer"),
    (dict(n_components=True), "n_components must be None or an integer"),
    (dict(max_iter=0), "max_iter must be a positive integer"),
    (dict(tol=-1.0), "tol must be a finite non-negative"),
    (dict(switch_off=0.0), "switch_off must be a finite positive"),
])
def test_bad_arguments_are_named(kwargs, match, data):
    with pytest.raises(ValueError, match=match):
        BayesianPCA(**kwargs).fit(data)


def test_bad_data_is_named(data):
    bad = data.copy()
    bad[1, 1] = np.inf
    with pytest.raises(ValueError, match="X contains NaN or infinite"):
        BayesianPCA().fit(bad)
    with pytest.raises(ValueError, match="X needs at least 2 samples"):
        BayesianPCA().fit(data[:1])
    with pytest.raises(ValueError, match="d >= 2"):
        BayesianPCA().fit(data[:, :1])
    with pytest.raises(ValueError, match="X is too large in scale"):
        BayesianPCA().fit(data * 1e200)
    with pytest.raises(NotFittedError):
        BayesianPCA().score(data)


def test_a_failed_fit_changes_nothing(data):
    model = BayesianPCA().fit(data)
    before = {k: np.copy(v) for k, v in vars(model).items() if k.endswith("_")}
    with pytest.raises(ValueError, match="n_components"):
        model.set_params(n_components=9).fit(data)
    with pytest.raises(ValueError, match="NaN"):
        model.set_params(n_components=None).fit(np.where(data > 1, np.nan, data))
    for k, v in vars(model).items():
        if k.endswith("_"):
            np.testing.assert_array_equal(v, before[k])


def test_iterations_run_no_checks(checker_calls):
    # X is checked once, at the boundary: ten times the iterations, the same checks
    X, _ = make_lgm_data(300, 12, 2, noise="isotropic", random_state=3)
    counts = {}
    for n in (3, 30):
        def fit():
            assert BayesianPCA(max_iter=n, tol=0.0).fit(X).n_iter_ == n
        counts[n] = checker_calls(fit)
    assert counts[3], "the spy saw no checker at all: it would pass whatever EM did"
    assert counts[30] == counts[3]


def test_one_e_step_per_iteration():
    # The score of an iteration's parameters and the next iteration's E-step need the same
    # posterior statistics: they are computed once (the start's, then one per iteration).
    X, _ = make_lgm_data(300, 12, 2, noise="isotropic", random_state=3)
    for n in (3, 30):
        fitted = []
        calls = count_calls(lambda: fitted.append(BayesianPCA(max_iter=n, tol=0.0).fit(X)),
                            [posterior_statistics])
        assert fitted[0].n_iter_ == n
        assert calls["posterior_statistics"] == n + 1


def test_the_loops_objective_is_eq_bpca_objective():
    # the state's score, from the E-step it keeps, is bpca_objective of its parameters, also
    # right after columns are switched off (which changes A between the E-step and the score)
    X, _ = make_lgm_data(300, 12, 2, noise="isotropic", random_state=3)
    S = sample_covariance(X, X.mean(axis=0))
    from lgm.ppca import ppca_ml

    state = _ARDState(*ppca_ml(S, 11), len(X), off=1e-6)
    widths = set()
    for _ in range(60):
        state.reestimate(S, state.complete(S, None))
        widths.add(state.A.shape[1])
        direct = bpca_objective(S, state.A, state.sigma2, state.alpha, len(X))
        assert state.objective(S) == pytest.approx(direct, rel=1e-13, abs=0)
    assert len(widths) > 1, "no column was switched off: the test saw only one case"
