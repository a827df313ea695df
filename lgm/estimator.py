"""What every fitted linear Gaussian model does, written once (chapters 5-7).

A fitted model x = mean + A z + e, z ~ N(0, I_K), e ~ N(0, diag(D)), scores
data, infers z and draws samples the same way whether it was fitted in closed
form (:class:`lgm.PPCA`, D = sigma^2 1) or by EM (:class:`lgm.LGM`). Those
methods live here, on :class:`LinearGaussianEstimator`; a subclass only fits
and says what its noise variances D are (:meth:`_noise`). The algebra itself is
in :mod:`lgm.linear_gaussian`.

The estimators are scikit-learn estimators: ``__init__`` only stores its
arguments, ``fit`` validates them, and ``clone``, ``GridSearchCV``,
``cross_val_score`` and ``Pipeline`` work. ``score`` is the mean
log-likelihood per sample, so model selection by held-out likelihood is a
plain ``GridSearchCV``.
"""
import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from lgm.checks import (
    check_array_size,
    check_data,
    check_fitted,
    check_positive_int,
    check_random_state,
)
from lgm.linear_gaussian import log_likelihood, posterior


class LinearGaussianEstimator(TransformerMixin, BaseEstimator):
    """Base class: scoring, posterior, transform and sampling of a fitted LGM.

    A subclass's ``fit`` sets ``A_`` (d, K), ``mean_`` (d,) and
    ``n_features_in_`` (all at the end) and implements :meth:`_noise`.
    """

    def _noise(self):
        """The fitted noise variances D, shape (d,)."""
        raise NotImplementedError

    def _validate_X(self, X, *, reset, min_samples=1, finite=None):
        """X as a finite float array (N, d): the one entry point for data.

        ``reset=True`` (in ``fit``) accepts any width d; ``fit`` records it
        in ``n_features_in_`` with the other fitted attributes, at the end,
        so a fit that fails leaves a fitted model as it was. Otherwise X must
        have the fitted width.
        """
        if reset:
            return check_data(X, min_samples=min_samples, finite=finite)
        check_fitted(self, "A_")
        return check_data(
            X, min_samples=min_samples, n_features=self.n_features_in_,
            estimator=type(self).__name__,
        )

    def _centred(self, X):
        """X (validated against the fit) minus the fitted mean."""
        return self._validate_X(X, reset=False) - self.mean_

    def score_samples(self, X):
        """Log-likelihood of each row of X in nats (eq-lgm-loglik).

        Parameters
        ----------
        X : array_like, shape (N, d)

        Returns
        -------
        ndarray, shape (N,)
        """
        return log_likelihood(self._centred(X), self.A_, self._noise())

    def score(self, X, y=None):
        """Mean log-likelihood per sample of the rows of X, in nats.

        ``y`` is ignored (it is there for scikit-learn's model selection).
        """
        return float(np.mean(self.score_samples(X)))

    def posterior(self, X):
        """Posterior of z for each row of X (eq-lgm-posterior).

        Parameters
        ----------
        X : array_like, shape (N, d)

        Returns
        -------
        means : ndarray, shape (N, K)
        cov : ndarray, shape (K, K)
            The same for every row.
        """
        return posterior(self._centred(X), self.A_, self._noise())

    def transform(self, X):
        """Posterior means E[z | x], shape (N, K)."""
        return self.posterior(X)[0]

    def sample(self, n_samples, random_state=None):
        """Draw samples x = mean + A z + e from the fitted model.

        Parameters
        ----------
        n_samples : int
            How many samples to draw.
        random_state : None, int or numpy.random.Generator

        Returns
        -------
        X : ndarray, shape (n_samples, d)
        """
        check_fitted(self, "A_")
        n = check_positive_int(n_samples, "n_samples")
        rng = check_random_state(random_state)
        d, K = self.A_.shape
        check_array_size(n, d + K, "n_samples")
        Z = rng.standard_normal((n, K))
        E = rng.standard_normal((n, d)) * np.sqrt(self._noise())
        return self.mean_ + Z @ self.A_.T + E
