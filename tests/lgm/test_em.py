"""EM for the linear Gaussian model against independent references: a per-sample E-step by Schur
conditioning, scikit-learn's FactorAnalysis, the PPCA closed form, and the large-sample theory of
the maximum-likelihood estimate."""
import warnings

import numpy as np
import pytest
from scipy import stats
from scipy.linalg import subspace_angles
from sklearn.decomposition import FactorAnalysis
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from threadpoolctl import threadpool_limits

import lgm.completion
import lgm.em
import lgm.linear_gaussian
from lgm.data import load_digits, make_lgm_data
from lgm.em import LGM, ExpectedCompletion, em_step, sample_covariance
from lgm.gaussian import condition_gaussian
from lgm.ppca import ppca_ml


def mean_loglik(X, mean, A, D):
    """The mean log-likelihood by a dense, independent formula (scipy.stats)."""
    return stats.multivariate_normal(mean, A @ A.T + np.diag(D)).logpdf(X).mean()


# ---------------------------------------------------------------- sufficient statistics

def test_sample_covariance_matches_numpy_across_chunks():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(10000, 7)) + 50.0  # more rows than one chunk, and a large mean
    S = sample_covariance(X, X.mean(axis=0))
    # Centring before the product keeps full accuracy despite the mean of 50.
    np.testing.assert_allclose(S, np.cov(X.T, bias=True), rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(S, S.T)


# ---------------------------------------------------------------- one step

def test_em_step_equals_a_per_sample_reference():
    rng = np.random.default_rng(0)
    N, d, K = 30, 5, 2
    X = rng.normal(size=(N, d)) @ rng.normal(size=(d, d))
    A, D = rng.normal(size=(d, K)), rng.uniform(0.5, 2.0, size=d)
    # E-step sample by sample from the joint Gaussian of (z, x); M-step from the sums; D by the
    # general formula (1/N) sum_n E[(x_n - A z)^2 | x_n], which holds for any A.
    joint = np.block([[np.eye(K), A.T], [A, A @ A.T + np.diag(D)]])
    Sxz, Szz, moments = np.zeros((d, K)), np.zeros((K, K)), []
    for x in X:
        m, V = condition_gaussian(np.zeros(K + d), joint, np.arange(K, K + d), x)
        Sxz += np.outer(x, m)
        Szz += V + np.outer(m, m)
        moments.append((m, V))
    A_ref = Sxz @ np.linalg.inv(Szz)
    D_ref = np.mean([(x - A_ref @ m) ** 2 + np.diag(A_ref @ V @ A_ref.T) for x, (m, V) in zip(X, moments)], axis=0)
    A_new, D_new = em_step(X, A, D)
    # The same exact quantities by two routes (rounding only).
    np.testing.assert_allclose(A_new, A_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(D_new, D_ref, rtol=1e-10, atol=1e-12)


def test_em_step_does_not_subtract_the_mean():
    X, _ = make_lgm_data(100, 4, 1, random_state=0)
    A, D = np.ones((4, 1)), np.ones(4)
    A1, D1 = em_step(X, A, D)
    A2, D2 = em_step(X - X.mean(0), A, D)
    assert not np.allclose(D1, D2)


# ---------------------------------------------------------------- where EM ends

@pytest.mark.parametrize("seed", range(3))
def test_diagonal_em_reaches_factor_analysis(seed):
    X, _ = make_lgm_data(1000, 12, 3, random_state=seed)
    model = LGM(3, tol=1e-9, max_iter=5000).fit(X)
    # One BLAS thread: sklearn's many small SVDs slow down 100-fold on a loaded 2-core machine.
    with threadpool_limits(1):
        fa = FactorAnalysis(3, tol=1e-8, max_iter=10000, svd_method="lapack").fit(X)
    ours = mean_loglik(X, model.mean_, model.A_, model.D_)
    theirs = mean_loglik(X, fa.mean_, fa.components_.T, fa.noise_variance_)
    # Both maximise the same likelihood; ours must be at least as high up to 1e-4 nats/sample.
    assert ours >= theirs - 1e-4
    # The score the estimator reports is the same number (its own Woodbury formula).
    np.testing.assert_allclose(model.score(X), ours, rtol=1e-10)
    np.testing.assert_allclose(model.loglik_[-1], ours, rtol=1e-10)


def test_isotropic_em_converges_to_the_ppca_closed_form():
    X, _ = make_lgm_data(2000, 8, 2, noise="isotropic", random_state=1)
    model = LGM(2, noise="isotropic", init="random", random_state=0, tol=1e-12, max_iter=20000).fit(X)
    Xc = X - X.mean(0)
    A_ml, sigma2 = ppca_ml(Xc.T @ Xc / len(X), 2)
    assert np.ptp(model.D_) == 0
    # EM converges linearly; at a change below 1e-12 nats the parameters are within ~1e-5.
    np.testing.assert_allclose(model.D_[0], sigma2, rtol=1e-4)
    assert np.max(subspace_angles(model.A_, A_ml)) < 1e-3
    np.testing.assert_allclose(model.score(X), mean_loglik(X, X.mean(0), A_ml, np.full(8, sigma2)), atol=1e-8)


def test_fixed_point_satisfies_the_stationarity_equations():
    X, _ = make_lgm_data(1000, 10, 2, random_state=3)
    model = LGM(2, tol=1e-13, max_iter=20000).fit(X)
    S = sample_covariance(X, model.mean_)
    A, D = model.A_, model.D_
    C = A @ A.T + np.diag(D)
    # S C^{-1} A = A and D = diag(S - A A^T) (the score equations of the likelihood).
    np.testing.assert_allclose(S @ np.linalg.solve(C, A), A, atol=1e-4)
    np.testing.assert_allclose(D, np.diag(S - A @ A.T), atol=1e-4)


def test_excess_log_likelihood_is_about_half_the_parameter_count_over_N():
    # Large-sample theory: 2 N (loglik at the MLE - loglik at the truth) ~ chi^2 with p degrees of
    # freedom, p = dK + d - K(K-1)/2 free parameters of (A, D) plus d for the mean.
    N, d, K, n_seeds = 2000, 8, 2, 40
    p = d * K + d - K * (K - 1) // 2 + d
    excess = []
    for seed in range(n_seeds):
        X, truth = make_lgm_data(N, d, K, random_state=seed)
        model = LGM(K, tol=1e-8, max_iter=5000).fit(X)  # 2 N * 1e-8 is negligible against p
        excess.append(2 * N * (mean_loglik(X, model.mean_, model.A_, model.D_)
                               - mean_loglik(X, truth.mean, truth.A, truth.D)))
    # The mean of n_seeds chi^2_p draws has s.d. sqrt(2 p / n_seeds) = 1.7; allow 4 s.d. plus a
    # little for the finite-N bias of the chi^2 approximation.
    assert abs(np.mean(excess) - p) < 4 * np.sqrt(2 * p / n_seeds) + 1.0
    assert min(excess) > 0  # the MLE is never worse than the truth on its own data


# ---------------------------------------------------------------- monotonicity and sampling

def test_log_likelihood_never_decreases_under_expected_completion():
    X, _ = make_lgm_data(300, 10, 3, random_state=5)
    for seed in range(20):
        model = LGM(3, init="random", random_state=seed, tol=0.0, max_iter=60)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X)
        # Rounding in a sum of ~10 terms of size ~10: 1e-10 is far below any real decrease.
        assert np.all(np.diff(model.loglik_) >= -1e-10), seed
        assert np.all(model.D_ > 0)


def test_sampled_completion_ends_near_expected_completion():
    X, _ = make_lgm_data(2000, 10, 2, random_state=2)
    expected = LGM(2, tol=1e-10, max_iter=5000).fit(X)
    sampled = LGM(2, completion="sampled", n_samples=10, max_iter=50, random_state=0).fit(X)
    assert sampled.n_iter_ == 50 and len(sampled.loglik_) == 50
    # Monte Carlo noise in the M-step costs ~1e-5 nats/sample at J = 10 (the shortfall shrinks
    # like 1/J); 0.01 is the stated tolerance.
    assert abs(sampled.score(X) - expected.score(X)) < 0.01
    assert sampled.score(X) <= expected.score(X) + 1e-9


def test_sampled_completion_is_reproducible():
    X, _ = make_lgm_data(200, 5, 1, random_state=0)
    a = LGM(1, completion="sampled", max_iter=5, random_state=3).fit(X)
    b = LGM(1, completion="sampled", max_iter=5, random_state=3).fit(X)
    c = LGM(1, completion="sampled", max_iter=5, random_state=4).fit(X)
    np.testing.assert_array_equal(a.A_, b.A_)
    assert not np.array_equal(a.A_, c.A_)


# ---------------------------------------------------------------- the estimator

def test_estimator_outputs_and_sampling():
    X, _ = make_lgm_data(500, 6, 2, random_state=0)
    model = LGM(2).fit(X)
    means, cov = model.posterior(X[:7])
    assert means.shape == (7, 2) and cov.shape == (2, 2)
    np.testing.assert_array_equal(model.transform(X[:7]), means)
    assert model.score_samples(X).shape == (500,)
    Y = model.sample(100000, random_state=0)
    # Sample covariance of 1e5 draws: entries within ~0.02 of C (s.d. ~ |C| / sqrt(N) ~ 0.01).
    np.testing.assert_allclose(np.cov(Y.T), model.A_ @ model.A_.T + np.diag(model.D_), atol=0.05)
    np.testing.assert_array_equal(Y, model.sample(100000, random_state=0))


def test_constant_features_get_the_noise_floor():
    X, _ = load_digits(dequantise=False)
    constant = np.ptp(X, axis=0) == 0
    assert constant.any()
    model = LGM(5, tol=1e-4).fit(X)
    floor = model.noise_floor * np.trace(np.cov(X.T, bias=True)) / X.shape[1]
    np.testing.assert_allclose(model.D_[constant], floor, rtol=1e-10)
    assert np.all(model.D_ >= floor * (1 - 1e-12))
    assert np.isfinite(model.score(X))


def test_max_iter_gives_a_convergence_warning():
    X, _ = make_lgm_data(200, 6, 2, random_state=0)
    with pytest.warns(ConvergenceWarning, match="max_iter=2"):
        model = LGM(2, init="random", random_state=0, max_iter=2).fit(X)
    assert model.n_iter_ == 2


def test_interrupted_fit_keeps_the_last_completed_iteration(ctrl_c_on_call):
    X, _ = make_lgm_data(200, 6, 2, random_state=0)
    reference = LGM(2, init="random", random_state=0, max_iter=2)
    with pytest.warns(ConvergenceWarning):
        reference.fit(X)
    ctrl_c_on_call(ExpectedCompletion, "reestimate", 3)
    with pytest.warns(UserWarning, match="Interrupted after 2"):
        model = LGM(2, init="random", random_state=0, max_iter=100).fit(X)
    assert model.n_iter_ == 2
    np.testing.assert_array_equal(model.A_, reference.A_)
    np.testing.assert_array_equal(model.loglik_, reference.loglik_)


def test_an_interrupted_score_keeps_the_parameters_last_scored(ctrl_c_on_call):
    # After each M-step the new (A, D) are scored by their E-step; a Ctrl-C inside that score
    # (about as long as the M-step) used to store the new parameters with loglik_ ending at
    # the old ones' value (0.07 nats per sample apart on this data). The fourth E-step is
    # the one after the third M-step (the first is the start's).
    X, _ = make_lgm_data(200, 6, 2, random_state=0)
    reference = LGM(2, init="random", random_state=0, max_iter=2)
    with pytest.warns(ConvergenceWarning):
        reference.fit(X)
    ctrl_c_on_call(lgm.linear_gaussian, "posterior_statistics", 4)
    with pytest.warns(UserWarning, match="Interrupted after 2"):
        model = LGM(2, init="random", random_state=0, max_iter=100).fit(X)
    np.testing.assert_array_equal(model.A_, reference.A_)
    np.testing.assert_array_equal(model.D_, reference.D_)
    np.testing.assert_array_equal(model.loglik_, reference.loglik_)


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"noise": "full"}, ValueError, "noise must be one of"),
        ({"completion": "mode"}, ValueError, "completion must be one of"),
        ({"n_samples": 0}, ValueError, "n_samples must be a positive integer"),
        ({"max_iter": 2.5}, ValueError, "max_iter must be a positive integer"),
        ({"tol": -1.0}, ValueError, "tol must be a finite non-negative"),
        ({"noise_floor": 0.0}, ValueError, "noise_floor must be a finite positive"),
        ({"tol": "1e-3"}, TypeError, "tol must be a number"),  # float() would take it
        ({"noise_floor": True}, TypeError, "noise_floor must be a number"),  # True is 1.0
        ({"init": "kmeans"}, ValueError, "init must be one of"),
        ({"random_state": "seed"}, TypeError, "random_state must be"),
    ],
)
def test_bad_options_are_named(kwargs, error, match):
    X, _ = make_lgm_data(50, 4, 1, random_state=0)
    model = LGM(2, **kwargs)  # scikit-learn's rule: __init__ only stores
    with pytest.raises(error, match=match):
        model.fit(X)


def test_options_set_after_construction_are_validated_at_fit():
    # set_params (what GridSearchCV does) and plain assignment must not fit
    # silently with something else
    X, _ = make_lgm_data(50, 4, 1, random_state=0)
    model = LGM(1).fit(X)
    model.noise = "full"
    with pytest.raises(ValueError, match="noise must be one of"):
        model.fit(X)
    with pytest.raises(ValueError, match="max_iter must be a positive"):
        LGM(2).set_params(max_iter=0).fit(X)


@pytest.mark.parametrize(
    "X, n_components, match",
    [
        (np.ones(5), 1, "X must be a 2-D"),
        (np.array([[1.0, np.inf], [0.0, 1.0]]), 1, "X contains NaN or infinite"),
        (np.ones((1, 3)), 1, "at least 2 samples"),
        (np.random.default_rng(0).normal(size=(10, 3)), 0, "n_components must be between 1"),
        (np.random.default_rng(0).normal(size=(10, 3)), 4, "n_components must be between 1"),
        (np.random.default_rng(0).normal(size=(10, 3)), 3, "init='ppca' needs n_components=3 < the number of features"),
        (np.ones((10, 3)), 1, "no variance"),
    ],
)
def test_bad_data_is_named(X, n_components, match):
    with pytest.raises(ValueError, match=match):
        LGM(n_components).fit(X)


def test_n_components_must_be_an_integer():
    with pytest.raises(TypeError, match="n_components must be an integer"):
        LGM(1.5).fit(np.random.default_rng(0).normal(size=(10, 3)))


def test_fitted_model_checks_its_input():
    X, _ = make_lgm_data(50, 4, 1, random_state=0)
    with pytest.raises(NotFittedError, match="not fitted"):
        LGM(1).score(X)
    model = LGM(1).fit(X)
    with pytest.raises(ValueError, match="has 3 features"):
        model.score(X[:, :3])
    with pytest.raises(ValueError, match="n_samples must be a positive integer"):
        model.sample(0)


def test_a_failed_fit_leaves_the_estimator_as_it_was():
    X, _ = make_lgm_data(200, 8, 2, random_state=0)
    model = LGM(2).fit(X)
    before = {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in vars(model).items()}
    bad_starts = [(np.ones((8, 3)), np.ones(8)), (np.ones((8, 2)), -np.ones(8))]
    for init in bad_starts:  # fails after the data were read and S was formed
        model.init = init
        with pytest.raises(ValueError, match="init|D must hold"):
            model.fit(X)
    model.init = before["init"]
    with pytest.raises(ValueError):
        model.fit(np.full((200, 8), np.nan))
    after = vars(model)
    assert after.keys() == before.keys()
    for k, v in before.items():
        np.testing.assert_array_equal(after[k], v)


# ---------------------------------------------------------------- the one loop

@pytest.mark.parametrize("kwargs, nan", [
    ({}, False), ({"noise": "isotropic"}, False), ({"completion": "sampled", "max_iter": 5}, False),
    ({"missing": "em"}, True),
])
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # EM alone crawls here
def test_every_em_goes_through_the_one_loop(monkeypatch, kwargs, nan):
    # A spy on lgm.completion.run, the module attribute that LGM.fit calls: every EM of the
    # LGM (expected, sampled, with missing entries) is that loop, and loglik_ is its history.
    calls, run = [], lgm.completion.run

    def spy(*args, **kw):
        result = run(*args, **kw)
        calls.append(list(result.history))
        return result

    monkeypatch.setattr(lgm.completion, "run", spy)
    X, _ = make_lgm_data(300, 6, 2, random_state=0)
    if nan:
        X[np.random.default_rng(0).random(X.shape) < 0.1] = np.nan
    model = LGM(2, solver="em", random_state=0, **kwargs).fit(X)
    assert len(calls) == 1 and calls[0] == list(model.loglik_)


@pytest.mark.parametrize("kwargs, nan", [
    ({}, False), ({"noise": "isotropic"}, False), ({"completion": "sampled"}, False),
    ({"missing": "em"}, True), ({"missing": "em", "solver": "auto"}, True),
])
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # tol=0: never converges
def test_iterations_run_no_checks(kwargs, nan, checker_calls):
    # The arguments are checked once, at the boundary: ten times the iterations, the same checks.
    # (With solver="auto" on missing entries, the quasi-Newton method's evaluations count too.)
    X, _ = make_lgm_data(300, 6, 2, random_state=0)
    if nan:
        X[np.random.default_rng(0).random(X.shape) < 0.1] = np.nan
    kwargs = {"solver": "em", **kwargs}
    counts = {n: checker_calls(lambda: LGM(2, max_iter=n, tol=0.0, random_state=0, **kwargs).fit(X))
              for n in (3, 30)}
    assert counts[3], "the spy saw no checker at all: it would pass whatever EM did"
    assert counts[30] == counts[3]
