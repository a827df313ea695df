"""Pictures of linear latent-variable models for chapters 4-7 (matplotlib).

Three pictures recur in the book: the data cloud with the model's line or plane and its
Gaussian (:func:`plot_model`); the "attachments", a segment from each sample to the point where
the model places it on the plane (the orthogonal projection for PCA, mean + A E[z | x] for
PPCA and the LGM; the caller computes them and passes them in); and a fit in progress as a row
of small frames, one per iterate (:func:`plot_frames`). The functions only draw: they take
arrays, return the figure or axes, and never call ``plt.show``. Figures are at most
``MAX_WIDTH`` inches wide, so that a book page shows them at full size, and 2-D axes have an
equal aspect ratio, so that orthogonal projections look perpendicular.
"""
import matplotlib.pyplot as plt
import numpy as np
from scipy import linalg

from lgm.checks import check_data, check_positive

MAX_WIDTH = 7.0  # inches: wider figures are shrunk to the book's text column


def plot_model(X, A, *, mean=None, D=None, attachments=None, n_std=2.0, latent_contour=True, ax=None,
               title=None):
    """Draw 2-D or 3-D data, the subspace mean + span(A), and the model's Gaussian.

    Parameters
    ----------
    X : ndarray, shape (N, d), d = 2 or 3
        The data.
    A : ndarray, shape (d, K), K < d
        The loading matrix (or any basis of the subspace). The image of the latent n_std-circle
        {A z : |z| = n_std}, the contour of the latent N(0, I_K) mapped onto the subspace, is drawn
        on the line or plane.
    mean : ndarray, shape (d,), optional
        The model's mean (default: the data mean).
    D : ndarray, shape (d,), optional
        Noise variances; for d = 2 the n_std contour of the model's marginal N(mean, A A^T + diag(D))
        is drawn as well.
    attachments : ndarray, shape (N, d), optional
        The point where the model places each sample; a grey segment joins x_n to it.
    n_std : float
        The radius of the drawn contours, in standard deviations.
    latent_contour : bool
        Draw the image of the latent contour (off for a bare basis W, whose scale means nothing).
    ax : matplotlib Axes, optional
        Where to draw (a 3-D Axes for d = 3); a new figure is made if None.
    title : str, optional

    Returns
    -------
    matplotlib Axes
    """
    X = check_data(X)
    d = X.shape[1]
    if d not in (2, 3):
        raise ValueError(f"X must have 2 or 3 columns to be drawn; got {d}.")
    A = check_data(A, "A")
    if A.shape[0] != d or not 1 <= A.shape[1] < d:
        raise ValueError(f"A must have shape ({d}, K) with 1 <= K < {d}; got {A.shape}.")
    n_std = check_positive(n_std, "n_std")
    mean = X.mean(axis=0) if mean is None else np.asarray(mean, dtype=float).reshape(d)
    if ax is None:
        fig = plt.figure(figsize=(4.2, 3.6))
        ax = fig.add_subplot(projection="3d" if d == 3 else None)
    ax.scatter(*X.T, s=6, color="tab:blue", alpha=0.6, linewidths=0)
    if attachments is not None:
        P = check_data(attachments, "attachments", n_features=d)
        for x, p in zip(X, P):
            ax.plot(*np.column_stack([x, p]), color="0.5", lw=0.5)
    _draw_subspace(ax, X, A, mean)
    if latent_contour:
        _draw_latent_contour(ax, A, mean, n_std)
    if D is not None and d == 2:
        C = A @ A.T + np.diag(np.asarray(D, dtype=float).reshape(d))
        ax.plot(*_ellipse(mean, C, n_std), color="tab:orange", lw=1.2)
    if d == 2:
        ax.set_aspect("equal", adjustable="datalim")
    ax.tick_params(labelsize=9)
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def plot_frames(X, As, *, mean=None, Ds=None, attachments=None, titles=None, latent_contour=True, ncols=4,
                size=2.2):
    """Small multiples: one :func:`plot_model` frame per iterate, e.g. EM rotating the plane.

    Parameters
    ----------
    X : ndarray, shape (N, d), d = 2 or 3
    As : sequence of ndarray, shape (d, K)
        The loading matrices, one per frame.
    mean : ndarray, shape (d,), optional
    Ds : sequence of ndarray, shape (d,), optional
        Noise variances per frame.
    attachments : sequence of ndarray, shape (N, d), optional
        Attachments per frame.
    titles : sequence of str, optional
        Default: "iteration i".
    latent_contour : bool
        Passed to :func:`plot_model`.
    ncols : int
    size : float
        Width and height of one frame, in inches; reduced if the row of frames would be wider
        than ``MAX_WIDTH``. The frames show no tick labels: every frame draws the same data.

    Returns
    -------
    fig : matplotlib Figure
    axes : ndarray of Axes, one per frame
    """
    As = list(As)
    n = len(As)
    if n == 0:
        raise ValueError("As must contain at least one loading matrix.")
    X = check_data(X)
    d = X.shape[1]
    ncols = min(int(ncols), n)
    nrows = -(-n // ncols)
    size = min(float(size), MAX_WIDTH / ncols)
    fig = plt.figure(figsize=(size * ncols, size * nrows))
    axes = []
    for i, A in enumerate(As):
        ax = fig.add_subplot(nrows, ncols, i + 1, projection="3d" if d == 3 else None)
        plot_model(
            X, A, mean=mean,
            D=None if Ds is None else Ds[i],
            attachments=None if attachments is None else attachments[i],
            latent_contour=latent_contour,
            ax=ax,
            title=f"iteration {i}" if titles is None else titles[i],
        )
        ax.set_xticklabels([])
        ax.set_yticklabels([])
        if d == 3:
            ax.set_zticklabels([])
        axes.append(ax)
    fig.tight_layout()
    return fig, np.array(axes)


def _draw_subspace(ax, X, A, mean):
    """The line (K = 1) or plane patch (K = 2) mean + span(A), as wide as the data."""
    Q = linalg.orth(A)
    coords = (X - mean) @ Q
    lo, hi = coords.min(axis=0), coords.max(axis=0)
    if Q.shape[1] == 1:
        ends = mean + np.outer([lo[0], hi[0]], Q[:, 0])
        ax.plot(*ends.T, color="k", lw=1.2)
    else:
        s, t = np.meshgrid(np.linspace(lo[0], hi[0], 2), np.linspace(lo[1], hi[1], 2))
        P = mean + s[..., None] * Q[:, 0] + t[..., None] * Q[:, 1]
        ax.plot_surface(P[..., 0], P[..., 1], P[..., 2], color="0.6", alpha=0.25)


def _draw_latent_contour(ax, A, mean, n_std):
    """The image mean + A z of the latent contour |z| = n_std (two points for K = 1)."""
    K = A.shape[1]
    if K == 1:
        P = mean + np.outer([-n_std, n_std], A[:, 0])
        ax.plot(*P.T, "o", color="tab:red", ms=4)
    else:
        angle = np.linspace(0, 2 * np.pi, 100)
        P = mean + n_std * np.column_stack([np.cos(angle), np.sin(angle)]) @ A[:, :2].T
        ax.plot(*P.T, color="tab:red", lw=1.2)


def _ellipse(mean, C, n_std):
    """Points of the 2-D contour {x : (x - mean)^T C^{-1} (x - mean) = n_std^2}, shape (2, 100)."""
    angle = np.linspace(0, 2 * np.pi, 100)
    L = linalg.cholesky(C, lower=True)
    return (mean[:, None] + n_std * L @ np.vstack([np.cos(angle), np.sin(angle)]))
