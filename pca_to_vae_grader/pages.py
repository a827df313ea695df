"""The registry of exercise pages: the one list the grader, its zips, the Makefile and the tests read.

Each page ``book/exercises/<page>.md`` has its tests in ``tests/test_<page>.py`` of this package, and asks for the functions listed here, each under the number of its exercise on the page
(``tests/exercises/test_autograder.py`` checks this registry against the book). A test whose name
starts with ``test_<function>`` grades that function.
"""
import os
from dataclasses import dataclass
from pathlib import Path

TESTS = Path(__file__).resolve().parent / "tests"
"""The folder of the pages' tests (``test_<page>.py``), shipped with the package."""


@dataclass(frozen=True)
class Page:
    """An exercise page: its title, and its exercises as ``{function: number}`` in the page's order."""

    name: str
    title: str
    exercises: dict

    @property
    def tests(self):
        """The file of this page's tests."""
        return TESTS / f"test_{self.name}.py"

    def pytest_arguments(self):
        """pytest's arguments that grade this page with the grader's configuration alone, as ``run_autograder``
        does on Gradescope: no ini file (``-c`` the empty file), no ``conftest.py`` above the tests, no cache.
        Run them with :func:`pinned_environment`."""
        folder = str(TESTS)
        return [str(self.tests), "-q", "-c", os.devnull, "--rootdir", folder, "--confcutdir", folder,
                "-p", "no:cacheprovider"]

    def exercise_of(self, test_name):
        """The function a test grades (its name starts with ``test_<function>``), or None."""
        matches = [f for f in self.exercises if test_name == f"test_{f}" or test_name.startswith(f"test_{f}_")
                   or test_name.startswith(f"test_{f}[")]
        return max(matches, key=len) if matches else None


#: What pytest takes from the environment that a grading must not: options added to every run (a ``-k`` would
#: drop tests from the grade), plugins named, and plugins installed in the environment, loaded by entry point
#: (one that reorders the tests or reseeds numpy changes what they draw).
UNPINNED = ("PYTEST_ADDOPTS", "PYTEST_PLUGINS")


def pinned_environment(environ):
    """``environ`` without :data:`UNPINNED`, and with plugin autoloading off (the grader's plugin is named
    by its tests' ``conftest.py``)."""
    return {**{k: v for k, v in environ.items() if k not in UNPINNED}, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}


def _page(name, title, exercises):
    return name, Page(name, title, exercises)


PAGES = dict([
    _page("gaussians", "Gaussians and their toolkit", {
        "gaussian_logpdf": "1.1", "gaussian_mle": "1.2", "condition_gaussian": "2.1", "kl_gauss": "2.2",
        "lowrank_solve_logdet": "2.3"}),
    _page("em", "The ELBO and EM", {"elbo_discrete": "3.1", "gmm_em_step": "3.2"}),
    _page("pca", "PCA and its iterative estimator", {"principal_angles": "4.1", "pca_als": "4.2"}),
    _page("ppca", "Probabilistic PCA", {"ppca_ml": "5.1", "ppca_posterior": "5.2"}),
    _page("lgm", "Linear Gaussian models and EM", {
        "lgm_posterior": "6.1", "lgm_loglik": "6.2", "complete_data_ml": "7.1", "em_step": "7.2", "mcem_step": "7.3",
        "impute_row": "7.4"}),
    _page("nlgm", "Nonlinear Gaussian models", {"nlgm_logpx_quad": "8.1", "sigma2_mle": "8.2"}),
    _page("vae", "Variational inference, reparameterisation and the VAE", {
        "kl_to_standard_normal": "9.1", "elbo_lgm": "9.2", "reparam": "10.1", "pathwise_grad": "10.2",
        "gaussian_nll": "11.1", "bernoulli_nll": "11.1", "neg_elbo": "11.2"}),
    _page("collapse", "Posterior collapse and the rate–distortion view", {
        "rate_distortion": "11b.1", "active_units": "11b.2", "free_bits_grad": "11b.3"}),
    _page("evaluation", "Evaluating a latent-variable model", {"iwae_bound": "12.1", "is_log_likelihood": "12.2"}),
    _page("mixtures", "Mixtures of factor analysers and richer posteriors", {
        "mfa_responsibilities": "7b.1", "mfa_m_step": "7b.2", "bpca_m_step": "7b.3",
        "ard_update": "7b.4", "gaussian_entropy_full": "11.3",
        "kl_full_to_standard_normal": "11.3", "flow_logdet": "11.4"}),
    _page("derive_linear", "Derivations: the linear road", {
        "gaussian_loglik_grads": "D2.1", "gmm_shared_var_mstep": "D3.1", "pca_min_error": "D4.1",
        "ppca_sigma2": "D5.1", "estep_moments": "D6.1", "lgm_loglik_grads": "D6.2", "mcem_isotropic_mstep": "D7.1"}),
    _page("derive_nonlinear", "Derivations: the nonlinear road", {
        "pushforward_logpdf": "D8.1", "kl_diag_gaussians": "D9.1", "kl_std_normal_grads": "D9.2",
        "elbo_reparam_grads": "D10.1", "bernoulli_decoder_grads": "D11.1", "iwae_logw_grads": "D12.1"}),
])


def page(name):
    """The page called ``name``; a ValueError that lists the pages otherwise."""
    if name not in PAGES:
        raise ValueError(f"no exercise page {name!r}; the pages are {', '.join(PAGES)}")
    return PAGES[name]


def describe(page_name, test_name, doc=None):
    """A test's name as the book says it: ``Exercise 2.2 (kl_gauss): matches reference [0]``.

    Parameters
    ----------
    page_name, test_name : str
        The page and pytest's name of the test (with its parameters, ``[0]``).
    doc : str, optional
        The test function's docstring: its first line, when there is one, says what the test checks.
    """
    info = PAGES.get(page_name)
    function = info.exercise_of(test_name) if info else None
    if function is None:
        return test_name
    base, _, params = test_name.partition("[")
    what = doc.strip().splitlines()[0].rstrip(".") if doc and doc.strip() else \
        base[len(f"test_{function}"):].strip("_").replace("_", " ")
    case = f" [{params}" if params else ""
    return f"Exercise {info.exercises[function]} ({function}): {what or 'graded'}{case}"
