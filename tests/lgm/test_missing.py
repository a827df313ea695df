"""The LGM with missing entries against independent references: scipy.stats on the observed
sub-vector, Schur conditioning of the joint Gaussian of (z, x), complete-data EM, and a generic
optimiser of the observed-data likelihood."""
import warnings

import numpy as np
import pytest
from scipy import optimize, stats
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer

import lgm.completion
import lgm.em
import lgm.missing
import lgm.quasi_newton
from lgm.data import make_lgm_data
from lgm.em import LGM, em_step
from lgm.gaussian import condition_gaussian
from lgm.linear_gaussian import log_likelihood
from lgm.missing import (
    MissingData,
    expected_moments,
    impute,
    m_step_with_mean,
    observed_log_likelihood,
    observed_log_likelihood_gradient,
    observed_posterior,
)
from lgm.pca import principal_angles


def random_problem(seed, N=60, d=6, K=2, share=0.3):
    """A random model, N samples from it, and a copy with about ``share`` of the entries NaN
    (every row keeps at least one entry; rows 0 and 1 keep all of them and only one)."""
    rng = np.random.default_rng(seed)
    A, D, mean = rng.normal(size=(d, K)), rng.uniform(0.2, 1.5, size=d), rng.normal(size=d)
    X = mean + rng.normal(size=(N, K)) @ A.T + rng.normal(size=(N, d)) * np.sqrt(D)
    hidden = rng.random((N, d)) < share
    hidden[0] = False
    hidden[1] = np.arange(d) != 2
    hidden[hidden.all(axis=1), 0] = False
    return np.where(hidden, np.nan, X), X, A, D, mean


def joint_covariance(A, D):
    """Covariance of (z, x) under z ~ N(0, I), x = A z + e: the dense reference."""
    K = A.shape[1]
    return np.block([[np.eye(K), A.T], [A, A @ A.T + np.diag(D)]])


# ---------------------------------------------------------------- likelihood, posterior, imputation

@pytest.mark.parametrize("seed", range(3))
def test_observed_log_likelihood_marginalises_the_missing_entries(seed):
    Xm, _, A, D, mean = random_problem(seed)
    C = A @ A.T + np.diag(D)
    reference = []
    for x in Xm:
        o = ~np.isnan(x)
        reference.append(stats.multivariate_normal(mean[o], C[np.ix_(o, o)]).logpdf(x[o]))
    # Woodbury per pattern vs a dense Cholesky of each C_oo: rounding only (entries ~ 1..10).
    np.testing.assert_allclose(observed_log_likelihood(Xm, A, D, mean), reference, rtol=1e-11, atol=1e-11)


def test_without_missing_entries_it_is_the_ordinary_likelihood():
    _, X, A, D, mean = random_problem(3)
    np.testing.assert_allclose(observed_log_likelihood(X, A, D, mean), log_likelihood(X - mean, A, D),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", range(2))
def test_posterior_and_imputation_equal_conditioning_of_the_joint(seed):
    Xm, _, A, D, mean = random_problem(seed, N=20)
    d, K = A.shape
    means, covs = observed_posterior(Xm, A, D, mean)
    X_hat = impute(Xm, A, D, mean)
    joint = joint_covariance(A, D)
    for n, x in enumerate(Xm):
        o = np.flatnonzero(~np.isnan(x))
        # condition (z, x) on x_o: what is left is (z, x_m)
        m, V = condition_gaussian(np.concatenate([np.zeros(K), mean]), joint, K + o, x[o])
        np.testing.assert_allclose(means[n], m[:K], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(covs[n], V[:K, :K], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(X_hat[n, np.isnan(x)], m[K:], rtol=1e-10, atol=1e-12)


def test_imputation_leaves_observed_entries_untouched_bit_for_bit():
    Xm, _, A, D, mean = random_problem(4)
    X_hat = impute(Xm, A, D, mean)
    observed = ~np.isnan(Xm)
    assert not np.isnan(X_hat).any()
    np.testing.assert_array_equal(X_hat[observed], Xm[observed])


def test_rows_are_grouped_by_pattern():
    Xm = np.array([[1.0, np.nan, 2.0], [3.0, np.nan, 4.0], [1.0, 2.0, 3.0], [np.nan, 1.0, 1.0]])
    data = MissingData(Xm)
    assert len(data.patterns) == 3 and data.counts.sum() == 4
    np.testing.assert_array_equal(data.patterns[data.index], ~np.isnan(Xm))


# ---------------------------------------------------------------- E-step and M-step

@pytest.mark.parametrize("seed", range(2))
def test_expected_moments_equal_per_row_conditioning(seed):
    Xm, _, A, D, mean = random_problem(seed, N=25, d=5, K=2)
    d, K = A.shape
    joint = joint_covariance(A, D)
    # Brute force: for every row, the joint posterior of w = (z, x) given x_o by Schur complements;
    # E[w w^T] = Cov + E[w] E[w]^T, the observed x entries being fixed (zero variance).
    sxx, Sxz, Szz = np.zeros(d), np.zeros((d, K + 1)), np.zeros((K + 1, K + 1))
    for x in Xm:
        o, u = np.flatnonzero(~np.isnan(x)), np.isnan(x)
        m, V = condition_gaussian(np.concatenate([np.zeros(K), mean]), joint, K + o, x[o])
        w, W = np.concatenate([m[:K], x]), np.zeros((K + d, K + d))
        w[K:][u] = m[K:]
        hidden = np.concatenate([np.ones(K, bool), u])
        W[np.ix_(hidden, hidden)] = V
        second = W + np.outer(w, w)  # E[(z, x)(z, x)^T | x_o]
        sxx += np.diag(second)[K:]
        Sxz[:, :K] += second[K:, :K]
        Sxz[:, K] += w[K:]
        Szz[:K, :K] += second[:K, :K]
        Szz[:K, K] += w[:K]
        Szz[K, :K] += w[:K]
        Szz[K, K] += 1
    N = len(Xm)
    got = expected_moments(Xm, A, D, mean)
    for value, reference in zip(got[:3], (sxx / N, Sxz / N, Szz / N)):
        np.testing.assert_allclose(value, reference, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got[3], observed_log_likelihood(Xm, A, D, mean).mean(), rtol=1e-12)


def test_without_missing_entries_the_step_is_complete_data_em():
    _, X, A, D, _ = random_problem(5)
    mean = X.mean(axis=0)
    A_ref, D_ref = em_step(X - mean, A, D)
    A_new, D_new, mean_new = m_step_with_mean(*expected_moments(X, A, D, mean)[:3])
    # With every entry observed and the sample mean, the augmented M-step decouples: the same
    # update by another order of operations (rounding only).
    np.testing.assert_allclose(A_new, A_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(D_new, D_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(mean_new, mean, rtol=1e-12, atol=1e-12)


def run_em(Xm, A, D, mean, n_iter):
    data, history = MissingData(Xm), []
    for _ in range(n_iter):
        *moments, loglik = expected_moments(data, A, D, mean)
        history.append(loglik)
        A, D, mean = m_step_with_mean(*moments)
    return A, D, mean, np.array(history)


@pytest.mark.parametrize("seed", range(3))
def test_em_never_decreases_the_observed_data_likelihood(seed):
    Xm, _, A, D, _ = random_problem(seed, N=80, share=0.4)
    rng = np.random.default_rng(seed)
    *_, history = run_em(Xm, rng.normal(size=A.shape), np.ones_like(D), np.zeros_like(D), 150)
    # exact EM: every change >= 0 up to rounding of a mean log-likelihood of size ~10
    assert np.diff(history).min() > -1e-12
    assert history[-1] > history[0]  # and it moved


@pytest.mark.slow  # ten seconds or more on the shared 2-core machine (make quick skips it)
def test_em_optimum_equals_a_generic_optimiser():
    # A small problem: d = 4, K = 1, 30% missing. L-BFGS on (A, log psi, mean) with numerical
    # gradients of the observed-data likelihood must find the point EM converges to.
    Xm, _, _, _, _ = random_problem(8, N=150, d=4, K=1, share=0.3)
    d = Xm.shape[1]
    mean0 = np.nanmean(Xm, axis=0)
    A, D, mean, history = run_em(Xm, np.ones((d, 1)), np.nanvar(Xm, axis=0), mean0, 1000)
    assert history[-1] - history[-2] < 1e-11

    def negative(theta):
        return -observed_log_likelihood(Xm, theta[:d, None], np.exp(theta[d:2 * d]), theta[2 * d:]).mean()

    start = np.concatenate([np.ones(d), np.log(np.nanvar(Xm, axis=0)), mean0])
    result = optimize.minimize(negative, start, method="L-BFGS-B", options={"gtol": 1e-10, "maxiter": 5000})
    ours = observed_log_likelihood(Xm, A, D, mean).mean()
    # EM at least as high (L-BFGS with finite differences stops ~1e-9 short).
    assert ours >= -result.fun - 1e-9
    assert ours - (-result.fun) < 1e-6
    # The same point: A up to its sign (K = 1), D and the mean (flat directions are ~1e-4 wide).
    sign = np.sign(A[:, 0] @ result.x[:d])
    np.testing.assert_allclose(sign * A[:, 0], result.x[:d], atol=2e-3)
    np.testing.assert_allclose(D, np.exp(result.x[d:2 * d]), atol=2e-3)
    np.testing.assert_allclose(mean, result.x[2 * d:], atol=2e-3)


# ---------------------------------------------------------------- bad input

def test_a_row_with_every_entry_missing_is_refused():
    Xm, _, A, D, mean = random_problem(0)
    Xm[5] = np.nan
    with pytest.raises(ValueError, match=r"Row 5 of X has every entry missing \(NaN\); a row"):
        observed_log_likelihood(Xm, A, D, mean)  # one such row: no "(1 such rows in all)"
    Xm[7] = np.nan
    with pytest.raises(ValueError, match=r"Row 5 .* \(2 such rows in all\)"):
        observed_log_likelihood(Xm, A, D, mean)


@pytest.mark.parametrize("bad, match", [
    (lambda X: np.where(np.isnan(X), np.inf, X), "infinite values"),
    (lambda X: X[:, :3], "features"),
    (lambda X: X[0], "2-D"),
])
def test_bad_data_is_named(bad, match):
    Xm, _, A, D, mean = random_problem(0)
    with pytest.raises(ValueError, match=match):
        impute(bad(Xm), A, D, mean)


def test_bad_mean_is_named():
    Xm, _, A, D, mean = random_problem(0)
    with pytest.raises(ValueError, match="mean must be a finite vector of shape"):
        impute(Xm, A, D, mean[:3])


# ---------------------------------------------------------------- the estimator: LGM(missing="em")

def test_without_nan_missing_em_fits_exactly_as_today():
    X, _ = make_lgm_data(300, 8, 2, random_state=0)
    for kwargs in ({}, {"noise": "isotropic"}, {"completion": "sampled", "max_iter": 20, "random_state": 0}):
        today, em = LGM(2, **kwargs).fit(X), LGM(2, missing="em", **kwargs).fit(X)
        for name in ("A_", "D_", "mean_", "loglik_"):
            np.testing.assert_array_equal(getattr(em, name), getattr(today, name))
        np.testing.assert_array_equal(em.transform(X), today.transform(X))
        np.testing.assert_array_equal(em.impute(X), X)


def test_fit_with_nan_climbs_the_observed_data_likelihood():
    Xm, X, A, D, mean = random_problem(11, N=300, d=8, K=2, share=0.3)
    model = LGM(2, missing="em", tol=1e-9, max_iter=3000).fit(Xm)
    assert np.diff(model.loglik_).min() > -1e-12  # exact EM: rounding only
    # loglik_ is the observed-data log-likelihood, by scipy on each row's observed sub-vector
    C = model.A_ @ model.A_.T + np.diag(model.D_)
    dense = [stats.multivariate_normal(model.mean_[o], C[np.ix_(o, o)]).logpdf(x[o])
             for x in Xm for o in [~np.isnan(x)]]
    np.testing.assert_allclose(model.score_samples(Xm), dense, rtol=1e-10)
    np.testing.assert_allclose(model.loglik_[-1], np.mean(dense), rtol=1e-10)
    np.testing.assert_allclose(model.score(Xm), np.mean(dense), rtol=1e-10)
    # The fit beats the truth on the data it was fitted to (it is a maximum).
    assert model.score(Xm) >= observed_log_likelihood(Xm, A, D, mean).mean()


def test_transform_and_impute_use_the_observed_entries():
    Xm, X, *_ = random_problem(12, N=200, d=6, K=2)
    model = LGM(2, missing="em", tol=1e-3).fit(Xm)
    means, covs = model.posterior(Xm)
    assert covs.shape == (200, 2, 2)
    np.testing.assert_array_equal(model.transform(Xm), means)
    complete = ~np.isnan(Xm).any(axis=1)
    # rows without NaN: the usual posterior (another formula, so rounding only)
    np.testing.assert_allclose(means[complete], model.transform(X[complete]), rtol=1e-10, atol=1e-12)
    filled = model.impute(Xm)
    observed = ~np.isnan(Xm)
    np.testing.assert_array_equal(filled[observed], Xm[observed])
    np.testing.assert_allclose(filled, impute(Xm, model.A_, model.D_, model.mean_), rtol=0, atol=0)


def test_missing_entries_are_refused_clearly():
    Xm, *_ = random_problem(13)
    with pytest.raises(ValueError, match="NaN"):
        LGM(2).fit(Xm)
    with pytest.raises(ValueError, match="missing must be one of"):
        LGM(2, missing="drop").fit(Xm)
    with pytest.raises(ValueError, match="with completion='sampled'.*must not contain NaN"):
        LGM(2, missing="em", completion="sampled").fit(Xm)
    all_missing = Xm.copy()
    all_missing[3] = np.nan
    with pytest.raises(ValueError, match="Row 3 of X has every entry missing"):
        LGM(2, missing="em").fit(all_missing)
    column = Xm.copy()
    column[:, 4] = np.nan
    with pytest.raises(ValueError, match="Column 4 of X is missing"):
        LGM(2, missing="em").fit(column)
    # each column has one observed entry: not constant, but nothing varies
    with pytest.raises(ValueError, match="or has only one observed entry"):
        LGM(1, missing="em").fit([[1.0, np.nan], [np.nan, 2.0]])
    model = LGM(2, missing="em", tol=1e-3).fit(Xm)
    for method in (model.score_samples, model.transform, model.impute):
        with pytest.raises(ValueError, match="Row 3 of X has every entry missing"):
            method(all_missing)
    with pytest.raises(ValueError, match="expecting 6 features"):
        model.impute(Xm[:, :5])
    # a model fitted with missing="error" still refuses NaN when scoring, but imputes
    plain = LGM(2).fit(np.where(np.isnan(Xm), 0.0, Xm))
    with pytest.raises(ValueError, match="NaN"):
        plain.score(Xm)
    assert not np.isnan(plain.impute(Xm)).any()


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # 100 iterations suffice here
@pytest.mark.parametrize("loader, K", [(load_diabetes, 3), (load_breast_cancer, 6)])
def test_imputation_on_real_data_beats_the_column_means(loader, K):
    # Hide 20% of the entries (completely at random) of a bundled data set, standardised so that
    # every column counts alike in the RMSE. The LGM uses the correlations between the columns, so
    # it must be closer to the hidden values than each column's mean; benchmarks/lgm_missing.py
    # reports it against IterativeImputer too.
    X = loader().data
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    rng = np.random.default_rng(0)
    hidden = rng.random(X.shape) < 0.2
    hidden[hidden.all(axis=1), 0] = False
    Xm = np.where(hidden, np.nan, X)
    ours = LGM(K, missing="em", max_iter=100).fit(Xm).impute(Xm)
    means = SimpleImputer().fit_transform(Xm)

    def rmse(X_hat):
        return np.sqrt(np.mean((X_hat[hidden] - X[hidden]) ** 2))

    assert rmse(ours) < 0.9 * rmse(means)


def test_a_failed_refit_with_missing_entries_leaves_the_model_as_it_was():
    Xm, *_ = random_problem(14)
    model = LGM(2, missing="em", tol=1e-3).fit(Xm)
    before = {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in vars(model).items()}
    wider = np.column_stack([Xm, np.full(len(Xm), np.nan)])  # a column with nothing observed
    with pytest.raises(ValueError, match="Column 6 of X is missing"):
        model.fit(wider)
    for k, v in before.items():
        np.testing.assert_array_equal(vars(model)[k], v)
    np.testing.assert_array_equal(model.impute(Xm), impute(Xm, model.A_, model.D_, model.mean_))


# ---------------------------------------------------------------- gradient, quasi-Newton hand-over

def central_differences(f, x, h):
    """The gradient of f at the vector x by central differences with step h."""
    grad = np.empty_like(x)
    for j in range(len(x)):
        e = np.zeros_like(x)
        e[j] = h
        grad[j] = (f(x + e) - f(x - e)) / (2 * h)
    return grad


@pytest.mark.parametrize("seed", range(3))
def test_fishers_identity_gives_the_gradient_of_the_observed_data_likelihood(seed):
    # A point that is no maximum (the truth, moved), 30% NaN: the gradient of the mean
    # observed-data log-likelihood in A, mean and log D against central differences of
    # observed_log_likelihood (no E-step moments involved).
    Xm, _, A, D, mean = random_problem(seed, N=60, d=6, K=2, share=0.3)
    rng = np.random.default_rng(100 + seed)
    A, D, mean = (A + 0.3 * rng.normal(size=A.shape), D * np.exp(0.3 * rng.normal(size=6)),
                  mean + 0.2)
    d, K = A.shape

    def f(theta):
        return observed_log_likelihood(Xm, theta[:d * K].reshape(d, K), np.exp(theta[-d:]),
                                       theta[d * K:-d]).mean()

    theta = np.concatenate([A.ravel(), mean, np.log(D)])
    loglik, grad_A, grad_mean, grad_log_D = observed_log_likelihood_gradient(Xm, A, D, mean)
    fd = central_differences(f, theta, 1e-5)
    assert loglik == pytest.approx(f(theta), rel=1e-13)
    assert np.abs(fd).max() > 0.05  # not a stationary point: the check has teeth
    # h = 1e-5: truncation h^2 f''' / 6 ~ 1e-11 and rounding ~ 1e-16 * |f| / h ~ 1e-10 for
    # |f| ~ 10, so 1e-8 leaves a hundredfold margin (measured: ~2e-10).
    np.testing.assert_allclose(grad_A.ravel(), fd[:d * K], atol=1e-8)
    np.testing.assert_allclose(grad_mean, fd[d * K:-d], atol=1e-8)
    np.testing.assert_allclose(grad_log_D, fd[-d:], atol=1e-8)


def test_the_gradient_names_bad_parameters():
    Xm, _, A, D, mean = random_problem(0)
    with pytest.raises(ValueError, match="mean must be a finite vector of shape"):
        observed_log_likelihood_gradient(Xm, A, D, mean[:3])
    with pytest.raises(ValueError, match="D must hold finite, strictly positive"):
        observed_log_likelihood_gradient(Xm, A, -D, mean)


@pytest.mark.slow  # ten seconds or more on the shared 2-core machine (make quick skips it)
def test_the_gradient_vanishes_where_em_converges():
    # EM's fixed point is a stationary point of the observed-data likelihood: the small
    # problem of test_em_optimum_equals_a_generic_optimiser, EM run to a gain < 1e-11.
    Xm, *_ = random_problem(8, N=150, d=4, K=1, share=0.3)
    A, D, mean, history = run_em(Xm, np.ones((4, 1)), np.nanvar(Xm, axis=0),
                                 np.nanmean(Xm, axis=0), 1000)
    assert history[-1] - history[-2] < 1e-11
    _, grad_A, grad_mean, grad_log_D = observed_log_likelihood_gradient(Xm, A, D, mean)
    # EM has stopped moving (gain < 1e-11, about 1e-16 measured), so the gradient must be
    # rounding: at a point 0.3 away from the maximum it is ~0.1 (the test above)
    assert max(np.abs(grad_A).max(), np.abs(grad_mean).max(), np.abs(grad_log_D).max()) < 1e-8


@pytest.mark.slow  # ten seconds or more on the shared 2-core machine (make quick skips it)
def test_the_quasi_newton_solver_reaches_ems_maximum():
    # A regular problem (no Heywood case): L-BFGS-B on the observed-data likelihood from the
    # start (solver="profile") and plain EM run long find the same maximum.
    Xm, *_ = random_problem(11, N=300, d=8, K=2, share=0.3)
    em = LGM(2, missing="em", solver="em", tol=1e-11, max_iter=5000).fit(Xm)
    qn = LGM(2, missing="em", solver="profile").fit(Xm)
    assert qn.n_iter_ < em.n_iter_ / 3
    # both stop within ~1e-9 nats of the maximum (tol 1e-11 for EM; a gradient below 1e-7
    # for L-BFGS-B, which leaves about its square)
    assert qn.loglik_[-1] == pytest.approx(em.loglik_[-1], abs=1e-8)
    assert np.diff(qn.loglik_).min() >= 0
    assert np.degrees(principal_angles(qn.A_, em.A_).max()) < 0.01
    # the same point, up to the flat directions of a maximum stopped ~1e-9 short (~1e-4 wide;
    # measured: D within 5e-5)
    np.testing.assert_allclose(qn.A_ @ qn.A_.T, em.A_ @ em.A_.T, atol=3e-4)
    np.testing.assert_allclose(qn.D_, em.D_, atol=3e-4)
    np.testing.assert_allclose(qn.mean_, em.mean_, atol=3e-4)
    # A's columns oriented as elsewhere: the largest-magnitude entry of each is positive
    assert np.all(qn.A_[np.abs(qn.A_).argmax(axis=0), [0, 1]] > 0)


def hidden_20_percent(loader):
    """A bundled data set, standardised, with 20% of its entries NaN (seed 0)."""
    X = loader().data
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    return np.where(np.random.default_rng(0).random(X.shape) < 0.2, np.nan, X)


def spy_on_the_hand_over(monkeypatch):
    """Record each call LGM makes of the quasi-Newton solver: how many iterations came before."""
    calls, solver = [], lgm.missing.maximise_observed_likelihood

    def spy(*args, on_iteration, **kwargs):
        calls.append(len(on_iteration.__self__))  # on_iteration is history.append
        return solver(*args, on_iteration=on_iteration, **kwargs)

    monkeypatch.setattr(lgm.missing, "maximise_observed_likelihood", spy)
    return calls


@pytest.mark.slow  # ten seconds or more on the shared 2-core machine (make quick skips it)
def test_em_hands_over_to_quasi_newton_on_diabetes(monkeypatch):
    # Diabetes, K = 3, 20% missing: EM alone crawls to a Heywood case (two noise variances
    # heading for zero) and has not converged after 1000 iterations.
    Xm = hidden_20_percent(load_diabetes)
    with pytest.warns(ConvergenceWarning):
        em = LGM(3, missing="em", solver="em").fit(Xm)
    calls = spy_on_the_hand_over(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        model = LGM(3, missing="em").fit(Xm)
    assert len(calls) == 1 and 10 <= calls[0] < model.n_iter_ < 1000  # EM first, then L-BFGS-B
    # never down, across the hand-over too (L-BFGS-B accepts only steps that gain)
    assert np.diff(model.loglik_).min() >= 0
    assert model.loglik_[-1] > em.loglik_[-1] + 1e-4
    # loglik_ is the observed-data log-likelihood of the parameters stored (the fit works on
    # data centred on the observed means: 1.4e-11 apart by rounding with one BLAS thread)
    assert model.loglik_[-1] == pytest.approx(model.score(Xm), abs=1e-10)


def test_without_nan_the_missing_data_solver_is_not_used(monkeypatch):
    calls = spy_on_the_hand_over(monkeypatch)
    X, _ = make_lgm_data(300, 8, 2, random_state=0)
    for solver in ("auto", "profile"):
        today, em = LGM(2, solver=solver).fit(X), LGM(2, solver=solver, missing="em").fit(X)
        np.testing.assert_array_equal(em.loglik_, today.loglik_)
        np.testing.assert_array_equal(em.A_, today.A_)
    assert calls == []


def test_a_failure_in_the_quasi_newton_solver_leaves_the_model_as_it_was(monkeypatch):
    Xm = hidden_20_percent(load_diabetes)
    model = LGM(3, missing="em", solver="em", max_iter=50)
    with pytest.warns(ConvergenceWarning):
        model.fit(Xm)
    before = {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in vars(model).items()}

    def broken(*args, **kwargs):
        raise FloatingPointError("a hostile failure")

    monkeypatch.setattr(lgm.missing, "maximise_observed_likelihood", broken)
    model.set_params(solver="profile")
    with pytest.raises(FloatingPointError, match="hostile"):
        model.fit(Xm)
    for k, v in before.items():
        if k != "solver":
            np.testing.assert_array_equal(vars(model)[k], v)


@pytest.mark.slow
def test_breast_cancer_with_missing_entries_converges_past_em():
    # The crawl that motivated the hand-over: breast cancer, 20% NaN, K = 5. EM alone stops at
    # max_iter = 1000 with a ConvergenceWarning; the default must converge without one, end
    # higher, and end at a stationary point by an independent check: central differences of
    # observed_log_likelihood (not the Fisher-identity gradient the solver used).
    Xm = hidden_20_percent(load_breast_cancer)
    with pytest.warns(ConvergenceWarning):
        em = LGM(5, missing="em", solver="em").fit(Xm)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        model = LGM(5, missing="em").fit(Xm)
    assert model.n_iter_ < 1000
    assert np.diff(model.loglik_).min() >= 0
    assert model.loglik_[-1] >= em.loglik_[-1] + 1e-3  # EM alone still gains 1e-5 per step
    A, D, mean = model.A_, model.D_, model.mean_
    d, K = A.shape
    assert D.min() > 1e-7  # no variance at the floor (~1e-8): the gradient itself must vanish
    # Variables in which the curvature is about 1 (row i of A and the mean in units of
    # sqrt(psi_i), and log D), so that a gradient g leaves about g^2 / 2 to gain.
    s = np.sqrt(D)

    def f(theta):
        return observed_log_likelihood(Xm, theta[:d * K].reshape(d, K) * s[:, None],
                                       np.exp(theta[-d:]), theta[d * K:-d] * s).mean()

    theta = np.concatenate([(A / s[:, None]).ravel(), mean / s, np.log(D)])
    fd = central_differences(f, theta, 1e-4)
    # below 1e-4: about 1e-8 nats per row left to gain (measured 1.4e-5; where EM alone stops,
    # 2.8e-3); the differences round to ~1e-16 * 14 / 1e-4 ~ 1e-11
    assert np.abs(fd).max() < 1e-4


def test_ctrl_c_in_the_quasi_newton_solver_keeps_what_was_done(ctrl_c_on_call):
    # A user who presses Ctrl-C while the quasi-Newton method runs: the fit returns with a
    # warning and keeps the last point it accepted, with loglik_ up to that point; no
    # ConvergenceWarning (the user stopped it). Simulated by a KeyboardInterrupt raised from
    # inside L-BFGS-B's 30th evaluation of the gradient.
    Xm = hidden_20_percent(load_diabetes)
    ctrl_c_on_call(lgm.missing, "fisher_gradient", 30)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        with pytest.warns(UserWarning, match="Interrupted after"):
            model = LGM(3, missing="em", solver="profile").fit(Xm)
    assert 5 < model.n_iter_ < 30  # some iterations were accepted before the 30th evaluation
    assert np.diff(model.loglik_).min() >= 0
    # the parameters stored are those of the last iteration recorded
    assert model.loglik_[-1] == pytest.approx(model.score(Xm), abs=1e-12)
    assert model.loglik_[-1] > model.loglik_[0] + 1e-3  # it got somewhere


def test_ctrl_c_during_an_em_iteration_keeps_a_consistent_model(monkeypatch, ctrl_c_on_call):
    # Most of an EM iteration with missing entries is its E-step, which MissingCompletion runs
    # at the end of reestimate (for the log-likelihood it records). A Ctrl-C there must leave
    # the parameters whose log-likelihood was recorded last (it used to store the new ones,
    # 0.08 nats per row away from loglik_[-1]), and the quasi-Newton method must not start.
    Xm = hidden_20_percent(load_diabetes)
    ctrl_c_on_call(lgm.missing, "completed_moments", 6)
    hand_over = spy_on_the_hand_over(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        with pytest.warns(UserWarning, match="Interrupted after 4 sweeps"):
            model = LGM(3, missing="em").fit(Xm)
    assert model.n_iter_ == 4 and hand_over == []
    assert model.loglik_[-1] == pytest.approx(model.score(Xm), abs=1e-12)


def test_ctrl_c_between_rounds_of_the_quasi_newton_solver_keeps_what_was_done(monkeypatch):
    # Between its rounds of L-BFGS-B the solver evaluates the gradient once, outside
    # quasi_newton.maximise, to rescale; a Ctrl-C there used to escape fit and lose every
    # iteration (EM's too). Rounds of 5 iterations; the key is pressed at the evaluation after
    # the second round.
    Xm = hidden_20_percent(load_diabetes)
    monkeypatch.setattr(lgm.missing, "_RESTART", 5)
    rounds, maximise, gradient = [], lgm.quasi_newton.maximise, lgm.missing.fisher_gradient

    def counted(*args, **kwargs):
        result = maximise(*args, **kwargs)
        rounds.append(1)  # a round done
        return result

    def pressed_after_two_rounds(*args):
        if len(rounds) == 2:
            rounds.append(1)  # only once
            raise KeyboardInterrupt
        return gradient(*args)

    monkeypatch.setattr(lgm.quasi_newton, "maximise", counted)
    monkeypatch.setattr(lgm.missing, "fisher_gradient", pressed_after_two_rounds)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        with pytest.warns(UserWarning, match="Interrupted after 10 quasi-Newton iterations"):
            model = LGM(3, missing="em", solver="profile").fit(Xm)
    assert model.n_iter_ == 10 and np.diff(model.loglik_).min() >= 0
    assert model.loglik_[-1] == pytest.approx(model.score(Xm), abs=1e-12)


def test_ctrl_c_while_the_progress_bar_redraws_keeps_a_consistent_model(monkeypatch):
    # With progress=True the bar redraws after each quasi-Newton iteration; a Ctrl-C there
    # (simulated on the 10th redraw) used to keep that iteration's point without its
    # log-likelihood in loglik_.
    Xm = hidden_20_percent(load_diabetes)
    redraws, tqdm = [], lgm.completion.tqdm

    class Bar:
        def __init__(self, *args, **kwargs):
            self.bar = tqdm(*args, **{**kwargs, "disable": True})

        def update(self):
            redraws.append(1)
            if len(redraws) == 10:
                raise KeyboardInterrupt

        def set_postfix(self, **kwargs):
            pass

        def close(self):
            self.bar.close()

    monkeypatch.setattr(lgm.completion, "tqdm", Bar)  # the bars of the loop and of L-BFGS-B
    with pytest.warns(UserWarning, match="Interrupted after"):
        model = LGM(3, missing="em", solver="profile", progress=True).fit(Xm)
    assert model.n_iter_ == 10
    assert model.loglik_[-1] == pytest.approx(model.score(Xm), abs=1e-12)


@pytest.mark.slow  # ten seconds or more on the shared 2-core machine (make quick skips it)
@pytest.mark.parametrize("solver", ["auto", "profile"])
def test_a_large_offset_changes_nothing(solver):
    # The likelihood is invariant to shifting the data (the mean follows). EM's moments and
    # the gradient's residuals are sums of squares of x, which cancelled catastrophically
    # about a mean of 1e6: the quasi-Newton method stalled 0.02 (auto) and 0.05 (profile)
    # nats per row short. Tolerance: both fits stop within about tol = 1e-7 of the maximum.
    Xm = hidden_20_percent(load_diabetes)
    plain = LGM(3, missing="em", solver=solver).fit(Xm)
    shifted = LGM(3, missing="em", solver=solver).fit(Xm + 1e6)
    assert shifted.loglik_[-1] == pytest.approx(plain.loglik_[-1], abs=1e-6)
    np.testing.assert_allclose(shifted.mean_ - 1e6, plain.mean_, atol=1e-3)
    # rounding of x - mean at 1e6 (~1e-10 per entry), not the fit
    assert shifted.loglik_[-1] == pytest.approx(shifted.score(Xm + 1e6), abs=1e-9)
