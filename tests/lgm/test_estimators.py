"""PCA, PPCA and LGM as scikit-learn estimators, and the input they refuse.

scikit-learn's own estimator checks run on all three; its model-selection
tools (clone, GridSearchCV, cross_val_score, Pipeline) are checked against
held-out log-likelihoods computed by hand and against
sklearn.decomposition.FactorAnalysis.
"""
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.decomposition import FactorAnalysis
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from lgm import LGM, PCA, PPCA, load_digits, make_lgm_data

ESTIMATORS = [PCA(1), PPCA(1), LGM(1)]


@parametrize_with_checks(ESTIMATORS)
def test_scikit_learn_estimator_checks(estimator, check):
    # every applicable check passes: none is listed as an expected failure
    check(estimator)


@pytest.fixture(scope="module")
def data():
    X, _ = make_lgm_data(400, 8, 3, random_state=0)
    return X


@pytest.mark.parametrize("estimator", [PCA(2), PPCA(2), LGM(2, tol=1e-4)])
def test_clone_gives_an_unfitted_copy_with_the_same_parameters(estimator, data):
    fitted = clone(estimator).fit(data)
    copy = clone(fitted)
    assert copy.get_params() == estimator.get_params()
    with pytest.raises(NotFittedError):
        copy.transform(data)


@pytest.mark.parametrize("Model", [PPCA, LGM])
def test_grid_search_picks_the_best_held_out_log_likelihood(Model, data):
    # reference: the same folds, fitted and scored by hand
    folds = KFold(3, shuffle=True, random_state=0)
    grid = [1, 2, 3, 4]
    search = GridSearchCV(Model(1), {"n_components": grid}, cv=folds).fit(data)
    by_hand = [
        np.mean([
            Model(K).fit(data[train]).score(data[test])
            for train, test in folds.split(data)
        ])
        for K in grid
    ]
    np.testing.assert_allclose(
        search.cv_results_["mean_test_score"], by_hand, rtol=1e-12
    )
    assert search.best_params_["n_components"] == grid[int(np.argmax(by_hand))]
    if Model is LGM:
        # three true factors, N = 400: held-out likelihood finds them
        assert search.best_params_["n_components"] == 3


def test_cross_val_score_agrees_with_factor_analysis(data):
    # both are maximum likelihood for the same model; the fits stop at
    # slightly different points (tol), so agreement to 1e-3 nats per sample
    folds = KFold(4, shuffle=True, random_state=1)
    ours = cross_val_score(LGM(3, tol=1e-9), data, cv=folds)
    theirs = cross_val_score(
        FactorAnalysis(3, tol=1e-8, max_iter=10000), data, cv=folds
    )
    np.testing.assert_allclose(ours, theirs, atol=1e-3)


def test_pipelines_with_all_three(data):
    model = make_pipeline(StandardScaler(), PCA(4), LGM(2, tol=1e-5)).fit(data)
    assert model.transform(data).shape == (len(data), 2)
    # the pipeline's score is the last step's, on the transformed data
    inner = model[:-1].transform(data)
    assert model.score(data) == pytest.approx(model[-1].score(inner))
    search = GridSearchCV(
        make_pipeline(StandardScaler(), PPCA(1)),
        {"ppca__n_components": [1, 3]}, cv=3,
    ).fit(data)
    assert search.best_params_ == {"ppca__n_components": 3}
    # PCA has no score of its own: it is tuned inside a pipeline scored by LGM
    pipeline = make_pipeline(PCA(3), LGM(1, tol=1e-5))
    folds = KFold(3, shuffle=True, random_state=0)
    scores = cross_val_score(pipeline, data, cv=folds)
    by_hand = [
        clone(pipeline).fit(data[train]).score(data[test])
        for train, test in folds.split(data)
    ]
    np.testing.assert_allclose(scores, by_hand, rtol=1e-12)
    # (a grid over PCA's K would compare densities of different spaces; the
    # grid is over the LGM's)
    search = GridSearchCV(pipeline, {"lgm__n_components": [1, 2]}, cv=folds)
    means = [
        np.mean([
            clone(pipeline).set_params(lgm__n_components=K)
            .fit(data[train]).score(data[test])
            for train, test in folds.split(data)
        ])
        for K in (1, 2)
    ]
    best = search.fit(data).best_params_["lgm__n_components"]
    assert best == (1, 2)[int(np.argmax(means))]


def test_sample_takes_n_samples_in_both_models(data):
    for model in (PPCA(2).fit(data), LGM(2, tol=1e-4).fit(data)):
        assert model.sample(n_samples=7, random_state=0).shape == (7, 8)


# ---------------------------------------------------------------- hostile input

BAD_ARRAYS = [
    (lambda X: X + 1j, ValueError, "Complex data not supported"),
    (lambda X: X.astype(str), TypeError, "strings"),
    (lambda X: np.full(X.shape, "a", dtype=object), TypeError, "str"),
    # None in an object array is read as a missing value (NaN), and refused
    (lambda X: np.where(np.arange(X.shape[1]) == 0, None, X).astype(object),
     ValueError, "NaN"),
    (lambda X: np.where(np.arange(X.shape[1]) == 0, {}, X).astype(object),
     TypeError, "real number"),
    (lambda X: [[1.0, "2"]] * len(X), TypeError, "strings"),
]


@pytest.mark.parametrize("Model", [PCA, PPCA, LGM])
@pytest.mark.parametrize("make_bad, error, match", BAD_ARRAYS)
def test_fit_refuses_complex_object_and_string_data(
    Model, make_bad, error, match, data
):
    with pytest.raises(error, match=match) as info:
        Model(1).fit(make_bad(data))
    assert "X" in str(info.value)


@pytest.mark.parametrize("Model", [PCA, PPCA, LGM])
@pytest.mark.parametrize("make_bad, error, match", BAD_ARRAYS)
def test_transform_and_score_refuse_them_too(
    Model, make_bad, error, match, data
):
    model = Model(1).fit(data)
    methods = ["transform"] + (["score", "score_samples"] if Model is not PCA else [])
    for method in methods:
        with pytest.raises(error, match=match):
            getattr(model, method)(make_bad(data))


def test_object_arrays_of_real_numbers_are_accepted(data):
    # as in scikit-learn: an object array that holds only numbers is data
    model = LGM(2, tol=1e-4).fit(data.astype(object))
    np.testing.assert_allclose(
        model.A_, LGM(2, tol=1e-4).fit(data).A_, rtol=1e-12
    )


@pytest.mark.parametrize("Model", [PCA, PPCA, LGM])
def test_huge_data_is_named_not_S(Model, data):
    with pytest.raises(ValueError, match="X is too large in scale") as info:
        Model(2).fit(data * 1e200)
    assert "S " not in str(info.value)


@pytest.mark.parametrize("Model", [PCA, PPCA, LGM])
def test_tiny_data_is_not_called_constant(Model, data):
    with pytest.raises(ValueError, match="X is too small in scale") as info:
        Model(2).fit(data * 1e-200)
    assert "feature is constant" not in str(info.value)


def test_moderate_scales_fit_to_the_same_model(data):
    # 1e-100 and 1e100 are far from the float64 limits: the fit is the
    # scaled fit (likelihood shifts by -d log c exactly)
    base = LGM(2, tol=1e-6).fit(data)
    for c in (1e-100, 1e100):
        scaled = LGM(2, tol=1e-6).fit(data * c)
        np.testing.assert_allclose(scaled.D_ / c**2, base.D_, rtol=1e-6)
        assert scaled.score(data * c) == pytest.approx(
            base.score(data) - data.shape[1] * np.log(c), abs=1e-6
        )


@pytest.mark.parametrize("Model", [PPCA, LGM])
def test_sampling_more_than_the_memory_is_refused(Model, data):
    model = Model(1).fit(data)
    with pytest.raises(ValueError, match="n_samples=1000000000000 would need"):
        model.sample(10**12)


def test_load_digits_names_a_negative_seed():
    with pytest.raises(ValueError, match="random_state must be a non-negative"):
        load_digits(random_state=-1)


def test_sparse_input_is_named():
    sparse = pytest.importorskip("scipy.sparse")
    X = sparse.random(20, 5, density=0.5, format="csr", random_state=0)
    with pytest.raises(TypeError, match="sparse input is not supported"):
        LGM(1).fit(X)


@pytest.mark.parametrize("Model", [PPCA, LGM])
def test_a_failed_refit_leaves_the_fitted_model_usable(Model, data):
    model = Model(2).fit(data)
    before = model.score(data)
    with pytest.raises(ValueError, match="n_components"):
        model.set_params(n_components=5).fit(data[:, :3])  # K > d: refused
    assert model.n_features_in_ == data.shape[1]
    assert model.score(data) == before


@pytest.mark.parametrize("Model", [PPCA, LGM])
def test_scoring_huge_data_names_X_instead_of_returning_nan(Model, data):
    # the squares of 1e200 overflow float64: refused, not a NaN score
    model = Model(2).fit(data)
    for method in ("score", "score_samples"):
        with pytest.raises(ValueError, match="X is too large in scale"):
            getattr(model, method)(data * 1e200)
    # 1e100 is still representable: a finite (very negative) log-likelihood
    assert np.isfinite(model.score(data * 1e100))


@pytest.mark.parametrize("Model", [PPCA, LGM])
def test_too_few_samples_for_the_components_name_the_data(Model, data):
    # 3 samples span at most 2 dimensions around their mean: with K = 2 the
    # other 6 eigenvalues of the sample covariance are zero
    with pytest.raises(ValueError, match="the data vary in at most") as info:
        Model(2).fit(data[:3])
    assert "n_components=2" in str(info.value)


def test_inverse_transform_names_n_components(data):
    pca = PCA(2).fit(data)
    with pytest.raises(ValueError, match="n_components=2") as info:
        pca.inverse_transform(np.zeros((5, 3)))
    assert "fitted with" not in str(info.value)


@pytest.mark.parametrize("init", [(1, 2), (np.ones((8, 2)), np.ones(7))])
def test_a_bad_starting_pair_names_init(init, data):
    with pytest.raises(ValueError, match="init must be 'ppca', 'random' or a pair"):
        LGM(2, init=init).fit(data)


@pytest.mark.parametrize("Estimator", [LGM, PPCA, PCA])
def test_every_argument_has_a_default(Estimator):
    # scikit-learn's convention: Estimator() works, so clone and GridSearchCV can build one.
    X, _ = make_lgm_data(200, 6, 2, random_state=0)
    model = Estimator().fit(X)
    assert model.get_params()["n_components"] == 2
    assert clone(model).get_params() == model.get_params()


@pytest.mark.parametrize("Estimator, noise", [(LGM, "diagonal"), (PPCA, "isotropic")])
def test_grid_search_picks_the_true_latent_dimension_by_held_out_likelihood(Estimator, noise):
    # Three latent dimensions well above the noise, of the structure the model assumes (PPCA
    # would spend extra components on a diagonal noise): the mean held-out log-likelihood per
    # sample (score) rises up to K = 3 and no larger K pays for its parameters.
    X, _ = make_lgm_data(600, 10, 3, noise=noise, random_state=1)
    search = GridSearchCV(Estimator(), {"n_components": [1, 2, 3, 4, 5]}, cv=3).fit(X)
    assert search.best_params_ == {"n_components": 3}
    scores = search.cv_results_["mean_test_score"]
    assert np.all(np.diff(scores[:3]) > 0)
