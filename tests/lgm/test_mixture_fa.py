"""Mixtures of factor analysers: the equations against brute force, the fit against its peers.

References: scipy.stats.multivariate_normal (densities), Bayes' rule and Gaussian conditioning
on the dense joint (posteriors), Ghahramani & Hinton's augmented regression (M-step),
lgm.LGM (one component), scikit-learn's GaussianMixture (K = d - 1), and the generating model.
"""
import warnings

import numpy as np
import pytest
from scipy import stats
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.mixture import GaussianMixture
from sklearn.model_selection import GridSearchCV
from sklearn.utils.estimator_checks import parametrize_with_checks

from lgm import LGM, MixtureFA, make_lgm_data
from lgm.completion import run
from lgm.gaussian import condition_gaussian
from lgm import mixture_fa
from lgm.mixture_fa import (
    _MixtureEM,
    mfa_em_step,
    mfa_log_likelihood,
    mfa_m_step,
    mfa_posterior,
    mfa_responsibilities,
    mfa_sample,
)


def random_mixture(rng, J=3, d=6, K=2, spread=3.0):
    weights = rng.dirichlet(np.full(J, 5.0))
    means = rng.normal(0.0, spread, (J, d))
    A = rng.standard_normal((J, d, K))
    D = rng.uniform(0.1, 1.0, (J, d))
    return weights, means, A, D


def dense_covariances(A, D):
    return np.einsum("jdk,jek->jde", A, A) + np.stack([np.diag(Dj) for Dj in D])


# max_iter bounds the EM of two components on the checks' one-blob data, which crawls
@parametrize_with_checks([MixtureFA(2, 1, max_iter=30)])
def test_scikit_learn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


# ---------------------------------------------------------------- the equations


def test_log_likelihood_and_responsibilities_match_scipy():
    rng = np.random.default_rng(0)
    for _ in range(5):
        params = random_mixture(rng)
        weights, means, A, D = params
        X, _ = mfa_sample(50, *params, rng)
        C = dense_covariances(A, D)
        joint = np.column_stack([
            weights[j] * stats.multivariate_normal(means[j], C[j]).pdf(X)
            for j in range(len(weights))
        ])
        np.testing.assert_allclose(
            mfa_log_likelihood(X, *params), np.log(joint.sum(axis=1)), rtol=1e-11
        )
        np.testing.assert_allclose(
            mfa_responsibilities(X, *params),
            joint / joint.sum(axis=1, keepdims=True), atol=1e-12,
        )


def test_far_points_get_finite_log_likelihoods():
    # every component's density underflows to 0 in float64; logsumexp does not
    params = random_mixture(np.random.default_rng(1))
    far = np.full((2, 6), 1e4)
    assert np.all(np.isfinite(mfa_log_likelihood(far, *params)))


def test_posterior_of_z_is_gaussian_conditioning_of_the_joint():
    rng = np.random.default_rng(2)
    _, means, A, D = random_mixture(rng)
    X = rng.normal(size=(4, 6))
    Z, Sigma = mfa_posterior(X, means, A, D)
    K = A.shape[2]
    for j in range(len(means)):
        # (z, x) | j ~ N((0, mu_j), [[I, A^T], [A, A A^T + D]])
        joint = np.block([[np.eye(K), A[j].T],
                          [A[j], A[j] @ A[j].T + np.diag(D[j])]])
        mu = np.concatenate([np.zeros(K), means[j]])
        for n, x in enumerate(X):
            m, S = condition_gaussian(mu, joint, np.arange(K, K + 6), x)
            np.testing.assert_allclose(Z[n, j], m, atol=1e-10)
            np.testing.assert_allclose(Sigma[j], S, atol=1e-10)


def test_m_step_is_ghahramani_hintons_augmented_regression():
    # the paper's form: regress x on (z, 1) with E[(z,1)(z,1)^T | x, j]
    rng = np.random.default_rng(3)
    params = random_mixture(rng)
    X, _ = mfa_sample(200, *params, rng)
    R = mfa_responsibilities(X, *params)
    Z, Sigma = mfa_posterior(X, *params[1:])
    weights, means, A, D = mfa_m_step(X, R, Z, Sigma)
    K = Z.shape[2]
    for j in range(len(weights)):
        r = R[:, j]
        Zt = np.column_stack([Z[:, j], np.ones(len(X))])
        Ezz = np.einsum("n,nk,nl->kl", r, Zt, Zt)
        Ezz[:K, :K] += r.sum() * Sigma[j]
        At = (X.T * r) @ Zt @ np.linalg.inv(Ezz)
        np.testing.assert_allclose(At[:, :K], A[j], rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(At[:, K], means[j], rtol=1e-9, atol=1e-10)
        Dj = (r @ X**2 - np.sum(At * ((X.T * r) @ Zt), axis=1)) / r.sum()
        np.testing.assert_allclose(Dj, D[j], rtol=1e-8)
        assert weights[j] == pytest.approx(r.mean())


def test_em_step_never_decreases_the_log_likelihood():
    rng = np.random.default_rng(4)
    for _ in range(5):
        truth = random_mixture(rng, spread=1.0)
        X, _ = mfa_sample(300, *truth, rng)
        params = random_mixture(rng, spread=1.0)
        before = mfa_log_likelihood(X, *params).sum()
        for _ in range(10):
            params = mfa_em_step(X, *params)
            after = mfa_log_likelihood(X, *params).sum()
            assert after >= before - 1e-9 * abs(before)
            before = after


# ---------------------------------------------------------------- the estimator


@pytest.fixture(scope="module")
def mixture_data():
    rng = np.random.default_rng(5)
    truth = random_mixture(rng, J=3, d=20, K=2)
    X, labels = mfa_sample(20000, *truth, rng)
    X_test, _ = mfa_sample(20000, *truth, rng)
    return truth, X, labels, X_test


@pytest.fixture(scope="module")
def fitted(mixture_data):
    _, X, _, _ = mixture_data
    return MixtureFA(3, 2, random_state=0).fit(X)


def test_held_out_log_likelihood_is_within_002_of_the_generating_model(
    mixture_data, fitted
):
    # target of issue 18: d = 20, 3 components, K = 2, N = 20000; a fit of its
    # ~240 parameters falls short of the truth by about p / 2N = 0.006
    truth, _, _, X_test = mixture_data
    gap = mfa_log_likelihood(X_test, *truth).mean() - fitted.score(X_test)
    assert gap < 0.02


def test_em_log_likelihood_never_decreases(fitted):
    assert fitted.n_iter_ >= 2
    assert np.all(np.diff(fitted.loglik_) >= -1e-10)


def test_the_components_are_found(mixture_data, fitted):
    truth, X, labels, _ = mixture_data
    predicted = fitted.predict(X)
    # each true component maps to one fitted component, almost every point
    for j in range(3):
        assert np.mean(predicted[labels == j] == np.bincount(
            predicted[labels == j]).argmax()) > 0.99
    order = [np.argmin(np.abs(fitted.means_ - m).sum(axis=1)) for m in truth[1]]
    np.testing.assert_allclose(fitted.weights_[order], truth[0], atol=0.02)


def test_one_component_is_the_lgm():
    X, _ = make_lgm_data(500, 8, 2, random_state=0)
    kwargs = dict(tol=0, max_iter=60, noise_floor=1e-4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        lgm_fit = LGM(2, solver="em", **kwargs).fit(X)
        mfa = MixtureFA(1, 2, **kwargs).fit(X)
    np.testing.assert_allclose(mfa.A_[0], lgm_fit.A_, atol=1e-8)
    np.testing.assert_allclose(mfa.D_[0], lgm_fit.D_, atol=1e-8)
    np.testing.assert_allclose(mfa.means_[0], lgm_fit.mean_, atol=1e-8)
    np.testing.assert_allclose(mfa.loglik_, lgm_fit.loglik_, atol=1e-8)
    np.testing.assert_allclose(mfa.score_samples(X), lgm_fit.score_samples(X),
                               atol=1e-8)


def test_k_up_to_d_minus_1_reaches_the_full_covariance_mixture():
    # isotropic noise with K = d - 1 represents any covariance, so the
    # mixture of PPCA is scikit-learn's full-covariance GaussianMixture; the
    # two EM runs converge to the same maximum (tolerance 1e-6 nats/sample)
    rng = np.random.default_rng(6)
    d = 4
    X = np.vstack([
        rng.multivariate_normal(rng.normal(0, 2, d),
                                np.cov(rng.normal(size=(d, 2 * d))), 400)
        for _ in range(2)
    ])
    gmm = GaussianMixture(2, covariance_type="full", tol=1e-12, reg_covar=1e-12,
                          max_iter=5000, random_state=0).fit(X)
    scores = [
        MixtureFA(2, K, noise="isotropic", tol=1e-12, max_iter=5000,
                  noise_floor=1e-10, random_state=0).fit(X).score(X)
        for K in range(1, d)
    ]
    assert np.all(np.diff(scores) > 0)
    assert scores[-1] == pytest.approx(gmm.score(X), abs=1e-6)
    assert scores[0] < gmm.score(X) - 0.01


def test_outputs_agree_with_each_other(mixture_data, fitted):
    _, X, _, _ = mixture_data
    X = X[:100]
    R, Z, Sigma = fitted.posterior(X)
    np.testing.assert_allclose(fitted.predict_proba(X), R)
    np.testing.assert_array_equal(fitted.predict(X), R.argmax(axis=1))
    np.testing.assert_allclose(fitted.transform(X),
                               Z[np.arange(100), R.argmax(axis=1)])
    assert Sigma.shape == (3, 2, 2)
    N = 100
    p = 2 + 3 * (20 + 20 * 2 - 1 + 20)
    assert fitted.bic(X) == pytest.approx(-2 * N * fitted.score(X) + p * np.log(N))


def test_samples_follow_the_fitted_mixture(fitted):
    X, labels = fitted.sample(30000, random_state=0)
    np.testing.assert_allclose(np.bincount(labels, minlength=3) / 30000,
                               fitted.weights_, atol=0.01)
    j = int(np.argmax(fitted.weights_))
    C = fitted.A_[j] @ fitted.A_[j].T + np.diag(fitted.D_[j])
    np.testing.assert_allclose(np.cov(X[labels == j].T), C, atol=0.15 * np.abs(C).max())
    first, _ = fitted.sample(5, random_state=1)
    np.testing.assert_array_equal(first, fitted.sample(5, random_state=1)[0])


def test_grid_search_over_the_number_of_mixtures(mixture_data):
    _, X, _, _ = mixture_data
    search = GridSearchCV(MixtureFA(1, 2, random_state=0),
                          {"n_mixtures": [1, 3]}, cv=2).fit(X[:3000])
    assert search.best_params_ == {"n_mixtures": 3}


def test_a_collapsing_component_is_named_and_frozen():
    # one far outlier: k-means gives it a cluster of its own, which cannot
    # determine a K = 1 plane (fewer than K + 1 = 2 points)
    X, _ = make_lgm_data(300, 5, 1, random_state=0)
    X[0] = 1e3
    with pytest.warns(UserWarning, match=r"Components \[\d\] collapsed"):
        model = MixtureFA(2, 1, random_state=0).fit(X)
    assert np.all(np.diff(model.loglik_) >= -1e-10)
    assert np.all(np.isfinite(model.score_samples(X)))


@pytest.mark.parametrize("owner, name", [
    (_MixtureEM, "reestimate"),
    # inside the E-step of the new parameters: they are not kept
    (mixture_fa, "mfa_complete"),
])
def test_interrupted_fit_keeps_the_last_scored_iteration(owner, name, ctrl_c_on_call):
    X, _ = make_lgm_data(300, 5, 1, random_state=0)
    with pytest.warns(ConvergenceWarning):
        reference = MixtureFA(2, 1, random_state=0, max_iter=2).fit(X)
    # the start computes the log-joint once, then each iteration once
    ctrl_c_on_call(owner, name, 3 if name == "reestimate" else 4)
    with pytest.warns(UserWarning, match="Interrupted after 2"):
        model = MixtureFA(2, 1, random_state=0).fit(X)
    assert model.n_iter_ == 2
    np.testing.assert_array_equal(model.A_, reference.A_)
    np.testing.assert_array_equal(model.loglik_, reference.loglik_)
    assert model.score(X) == pytest.approx(model.loglik_[-1], abs=1e-12)


def test_the_loop_is_the_books_loop(monkeypatch):
    calls = []
    import lgm.mixture_fa as module

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return run(*args, **kwargs)

    monkeypatch.setattr(module, "run", spy)
    X, _ = make_lgm_data(200, 5, 1, random_state=0)
    with pytest.warns(ConvergenceWarning):
        MixtureFA(2, 1, max_iter=5, random_state=0).fit(X)
    assert len(calls) == 1


# ---------------------------------------------------------------- hostile input


@pytest.fixture(scope="module")
def small():
    X, _ = make_lgm_data(200, 6, 2, random_state=1)
    return X


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(n_mixtures=0), ValueError, "n_mixtures must be a positive integer"),
    (dict(n_mixtures=2.5), ValueError, "n_mixtures must be a positive integer"),
    (dict(n_mixtures=True), ValueError, "n_mixtures must be a positive integer"),
    (dict(n_components=0), ValueError, "n_components must be an integer between 1 and d - 1 = 5"),
    (dict(n_components=6), ValueError, "n_components must be an integer between 1 and d - 1 = 5"),
    (dict(n_components=1.0), ValueError, "n_components must be an integer"),
    (dict(noise="full"), ValueError, "noise must be one of"),
    (dict(max_iter=0), ValueError, "max_iter must be a positive integer"),
    (dict(tol=-1.0), ValueError, "tol must be a finite non-negative"),
    (dict(noise_floor=0.0), ValueError, "noise_floor must be a finite positive"),
    (dict(random_state=-1), ValueError, "random_state must be a non-negative"),
    (dict(progress="yes"), TypeError, "progress must be True or False"),
])
def test_bad_arguments_are_named(kwargs, error, match, small):
    with pytest.raises(error, match=match):
        MixtureFA(**kwargs).fit(small)


def test_bad_data_is_named(small):
    bad = small.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="X contains NaN"):
        MixtureFA().fit(bad)
    with pytest.raises(ValueError, match=r"too few for n_mixtures=4 .* N >= 12"):
        MixtureFA(4, 2).fit(small[:10])
    with pytest.raises(ValueError, match="X needs at least 2 samples"):
        MixtureFA(1, 1).fit(small[:1])
    with pytest.raises(ValueError, match="d >= 2"):
        MixtureFA(1, 1).fit(small[:, :1])
    with pytest.raises(ValueError, match="X is too large in scale"):
        MixtureFA().fit(small * 1e200)
    with pytest.raises(ValueError, match="X has no variance"):
        MixtureFA().fit(np.ones((20, 3)))


def test_fitted_model_checks_its_input(small):
    with pytest.raises(NotFittedError):
        MixtureFA().score(small)
    model = MixtureFA(2, 1, random_state=0).fit(small)
    for method in ("score", "score_samples", "predict", "predict_proba",
                   "transform", "bic"):
        with pytest.raises(ValueError, match="X has 5 features, but MixtureFA is expecting 6"):
            getattr(model, method)(small[:, :5])
    with pytest.raises(ValueError, match="n_samples must be a positive integer"):
        model.sample(0)
    with pytest.raises(ValueError, match="n_samples=1000000000000 would need"):
        model.sample(10**12)


def test_scoring_huge_data_names_X_instead_of_returning_nan(small):
    # the squares of 1e200 overflow float64: refused, not a NaN score
    model = MixtureFA(2, 1, random_state=0).fit(small)
    for method in ("score", "score_samples", "predict", "predict_proba", "bic"):
        with pytest.raises(ValueError, match="X is too large in scale"):
            getattr(model, method)(small * 1e200)
    # 1e100 is still representable: a finite (very negative) log-likelihood
    assert np.isfinite(model.score(small * 1e100))


def test_a_failed_fit_changes_nothing(small):
    model = MixtureFA(2, 1, random_state=0).fit(small)
    before = {k: np.copy(v) for k, v in vars(model).items() if k.endswith("_")}
    score = model.score(small)
    for change in (dict(n_components=6), dict(n_mixtures=0)):
        with pytest.raises(ValueError):
            model.set_params(**change).fit(small)
        model.set_params(n_components=1, n_mixtures=2)
    with pytest.raises(ValueError, match="NaN"):
        model.fit(np.where(small > 2, np.nan, small))
    after = {k: v for k, v in vars(model).items() if k.endswith("_")}
    assert before.keys() == after.keys()
    for k in before:
        np.testing.assert_array_equal(before[k], after[k])
    assert model.score(small) == score


@pytest.mark.parametrize("change, match", [
    (dict(weights=np.array([0.5, 0.6, -0.1])), "weights must be finite, non-negative and sum to 1"),
    (dict(weights=np.ones(2) / 2), r"weights must have shape \(3,\)"),
    (dict(D=np.zeros((3, 6))), "D must hold strictly positive"),
    (dict(A=np.ones((3, 6))), r"A must have shape \(J, d, K\)"),
    (dict(means=np.full((3, 6), np.nan)), "means, A and D must be finite"),
])
def test_the_functions_name_bad_parameters(change, match):
    params = dict(zip(("weights", "means", "A", "D"),
                      random_mixture(np.random.default_rng(7))))
    params.update(change)
    with pytest.raises(ValueError, match=match):
        mfa_log_likelihood(np.zeros((2, 6)), **params)
    with pytest.raises(ValueError, match="The parameters have d=6 features but the data have 5"):
        mfa_posterior(np.zeros((2, 5)), *random_mixture(np.random.default_rng(7))[1:])


@pytest.mark.parametrize("noise", ["diagonal", "isotropic"])
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # tol=0: never converges
def test_iterations_run_no_checks(noise, checker_calls):
    # X and the parameters are checked once, at the boundary: ten times the iterations, the same
    # checks (the iterations call unchecked kernels)
    X, _ = make_lgm_data(300, 6, 2, random_state=0)
    counts = {}
    for n in (3, 30):
        def fit():
            model = MixtureFA(2, 2, noise=noise, max_iter=n, tol=0.0, random_state=0).fit(X)
            assert model.n_iter_ == n
        counts[n] = checker_calls(fit)
    assert counts[3], "the spy saw no checker at all: it would pass whatever EM did"
    assert counts[30] == counts[3]
