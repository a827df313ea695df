"""lgm: the linear road of the book, in numpy and scipy (no torch).

Closed-form and iterative PCA, probabilistic PCA, and linear Gaussian models (factor analysis)
fitted by EM with expected or sampled completion, all through the one loop of
:mod:`lgm.completion`.
"""
from lgm.completion import complete_then_reestimate, converged, run
from lgm.gaussian import condition_gaussian, gaussian_logpdf, kl_gaussians, lowrank_solve_logdet
from lgm.mixture import (
    GaussianMixture1D,
    gmm_em_step,
    gmm_log_joint,
    gmm_log_likelihood,
    gmm_m_step,
    gmm_responsibilities,
)
from lgm.data import load_digits, make_lgm_data, make_manifold_data
from lgm.pca import PCA, pca_als, principal_angles, rayleigh_ritz
from lgm.ppca import PPCA, ppca_ml
from lgm.linear_gaussian import complete_data_ml, log_likelihood, mean_log_likelihood, posterior
from lgm.em import LGM, em_step
from lgm.mixture_fa import (
    MixtureFA,
    mfa_em_step,
    mfa_log_likelihood,
    mfa_m_step,
    mfa_posterior,
    mfa_responsibilities,
)
from lgm.bayesian_pca import BayesianPCA, ard_update, bpca_m_step

__all__ = [
    "complete_then_reestimate",
    "converged",
    "run",
    "condition_gaussian",
    "gaussian_logpdf",
    "kl_gaussians",
    "lowrank_solve_logdet",
    "GaussianMixture1D",
    "gmm_em_step",
    "gmm_log_joint",
    "gmm_log_likelihood",
    "gmm_m_step",
    "gmm_responsibilities",
    "load_digits",
    "make_lgm_data",
    "make_manifold_data",
    "PCA",
    "pca_als",
    "principal_angles",
    "rayleigh_ritz",
    "PPCA",
    "ppca_ml",
    "complete_data_ml",
    "log_likelihood",
    "mean_log_likelihood",
    "posterior",
    "LGM",
    "em_step",
    "MixtureFA",
    "mfa_em_step",
    "mfa_log_likelihood",
    "mfa_m_step",
    "mfa_posterior",
    "mfa_responsibilities",
    "BayesianPCA",
    "ard_update",
    "bpca_m_step",
]
