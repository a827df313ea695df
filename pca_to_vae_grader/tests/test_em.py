"""Autograder tests of book/exercises/em.md (chapter 3: the ELBO and EM).

References: the ELBO is compared with its definition computed here with scipy.special.xlogy, and
with log p(x) = logsumexp of the log-joint (eq-elbo-decomposition); the EM step with
lgm.gmm_em_step, itself tested against scikit-learn in tests/lgm. Tolerances: 1e-8 relative, as
all of these are a few float64 sums of well-scaled numbers (about 1e-14 off when correct).
"""
import numpy as np
import pytest
from scipy.special import log_softmax, logsumexp, softmax, xlogy

import lgm
from pca_to_vae_grader import inputs
from pca_to_vae_grader.compare import check, check_array, check_tuple


def _elbo(log_joint, q):
    return np.sum(np.where(q > 0, q * log_joint, 0.0) - xlogy(q, q), axis=1)


def _random_case(rng, N=6, M=4):
    log_joint = rng.normal(scale=3.0, size=(N, M)) - 5.0
    q = rng.dirichlet(np.ones(M), size=N)
    return log_joint, q


# ---------------------------------------------------------------------------------------------
# elbo_discrete(log_joint, q) -> (N,)


@pytest.mark.points(2)
@pytest.mark.parametrize("seed", [0, 1])
def test_elbo_discrete_matches_definition(student, seed):
    log_joint, q = _random_case(inputs.rng(seed))
    expected = _elbo(log_joint, q)
    entropy = -np.sum(xlogy(q, q), axis=1)
    check_array(student.elbo_discrete(log_joint, q), expected, "elbo_discrete(log_joint, q)", rtol=1e-8, atol=1e-10,
                mistakes=[
                    ("leave out the entropy term -sum_z q(z) log q(z) (that is the Q-function, not the ELBO)",
                     expected - entropy),
                    ("add sum_z q(z) log q(z) instead of subtracting it (the sign of the entropy)", expected - 2 * entropy),
                    ("sum over the samples (axis=0) instead of over z (axis=1)", _elbo(log_joint.T, q.T)),
                ])


@pytest.mark.points(1)
def test_elbo_discrete_equals_log_evidence_at_the_posterior(student):
    rng = inputs.rng(2)
    log_joint, _ = _random_case(rng)
    log_joint[0] -= 800.0  # p(x, z) = exp(-800) underflows: work with logs throughout
    posterior = softmax(log_joint, axis=1)
    got = check_array(student.elbo_discrete(log_joint, posterior), logsumexp(log_joint, axis=1),
                      "elbo_discrete(log_joint, q) with q the exact posterior (it should equal log p(x))",
                      rtol=1e-10, atol=1e-10)
    q = rng.dirichlet(np.ones(log_joint.shape[1]), size=log_joint.shape[0])
    other = np.asarray(student.elbo_discrete(log_joint, q), dtype=float)
    check(np.all(other <= logsumexp(log_joint, axis=1) + 1e-10) and np.all(got >= other - 1e-10),
          "For a q other than the posterior, the ELBO must be below log p(x) = logsumexp(log_joint): "
          "the gap is KL(q || posterior) >= 0.")
    # Below is not enough (log p(x) itself, ignoring q, is not above it): the gap is KL(q || posterior).
    kl = np.sum(q * (np.log(q) - log_softmax(log_joint, axis=1)), axis=1)
    check(np.all(logsumexp(log_joint, axis=1) - other >= 0.5 * kl),
          f"For a q other than the posterior your ELBO is below log p(x) by {np.round(got - other, 3)}, but the gap "
          f"is KL(q || posterior), here {np.round(kl, 2)}: does your ELBO depend on q?")


@pytest.mark.points(1)
def test_elbo_discrete_zero_probabilities(student):
    # q(z) = 0 for some z: the term q log q is 0 (its limit), not NaN. np.log(0) = -inf and 0 * -inf = nan.
    log_joint, q = _random_case(inputs.rng(3))
    q[:, 0] = 0.0
    q[0] = [0.0, 1.0, 0.0, 0.0]
    q /= q.sum(axis=1, keepdims=True)
    check_array(student.elbo_discrete(log_joint, q), _elbo(log_joint, q),
                "elbo_discrete(log_joint, q) when some q(z) are exactly 0", rtol=1e-8, atol=1e-10)


# ---------------------------------------------------------------------------------------------
# gmm_em_step(x, pi, mu, var) -> (pi, mu, var)


def _mixture_case(rng, N=200, K=3):
    """Data from three well-separated components, and random starting parameters for K components."""
    z = rng.integers(3, size=N)
    x = rng.normal(loc=np.array([-3.0, 0.0, 4.0])[z], scale=np.array([1.0, 0.5, 1.5])[z])
    return x, rng.dirichlet(np.ones(K)), rng.normal(scale=2.0, size=K), rng.uniform(0.5, 3.0, size=K)


def _em_step_mistakes(x, pi, mu, var):
    R = lgm.gmm_responsibilities(x, pi, mu, var)
    Nk = R.sum(axis=0)
    joint = np.exp(lgm.gmm_log_joint(x, pi, mu, var))  # unnormalised responsibilities
    return {
        "var": [("compute the new variances around the old means mu instead of the new ones",
                 np.sum(R * (x[:, None] - mu) ** 2, axis=0) / Nk)],
        "mu": [("forget to normalise the responsibilities (divide by sum_j pi_j N(x_n; mu_j, var_j))",
                (joint.T @ x) / joint.sum(axis=0))],
        "pi": [("forget to divide N_k by N", Nk)],
    }


@pytest.mark.points(2)
@pytest.mark.parametrize("seed", [0, 1])
def test_gmm_em_step_matches_reference(student, seed):
    x, pi, mu, var = _mixture_case(inputs.rng(10 + seed))
    got = check_tuple(student.gmm_em_step(x, pi, mu, var), 3, "gmm_em_step(x, pi, mu, var)", ("pi", "mu", "var"))
    expected = lgm.gmm_em_step(x, pi, mu, var)
    mistakes = _em_step_mistakes(x, pi, mu, var)
    for name, value, reference in zip(("pi", "mu", "var"), got, expected):
        check_array(value, reference, f"the new {name}", rtol=1e-8, atol=1e-12, mistakes=mistakes[name])


@pytest.mark.points(1)
def test_gmm_em_step_never_lowers_the_likelihood(student):
    rng = inputs.rng(12)
    for case in range(25):
        x, pi, mu, var = _mixture_case(rng, N=50, K=2 + case % 3)
        before = lgm.gmm_log_likelihood(x, pi, mu, var)
        new = check_tuple(student.gmm_em_step(x, pi, mu, var), 3, "gmm_em_step(x, pi, mu, var)", ("pi", "mu", "var"))
        new = [np.asarray(v, dtype=float) for v in new]
        check(all(v.shape == mu.shape for v in new) and np.all(new[2] > 0) and np.isclose(new[0].sum(), 1.0),
              "gmm_em_step must return pi (summing to 1), mu and var (positive), each of shape (K,).")
        after = lgm.gmm_log_likelihood(x, *new)
        check(after >= before - 1e-9 * abs(before),
              f"An EM step lowered the log-likelihood from {before:.6f} to {after:.6f} (case {case}, K = {len(mu)}). "
              "EM never does: check the E-step (responsibilities) and the M-step (eq-gmm-mstep) against each other.")
        # Real progress, not only no loss: a step that returns its inputs never lowers the likelihood either.
        gain = lgm.gmm_log_likelihood(x, *lgm.gmm_em_step(x, pi, mu, var)) - before
        check(after - before >= 0.5 * gain,
              f"Your EM step raised the log-likelihood by {after - before:.2g} (case {case}, K = {len(mu)}); one EM step "
              f"from there raises it by about {gain:.1g}. A step must move the parameters towards the maximum.")
