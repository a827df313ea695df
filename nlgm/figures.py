"""Pictures of a trained NLGM: samples, reconstructions, a latent traversal, the ELBO curve.

Each function returns a matplotlib figure. Rows of square length (64 = 8 x 8 digits,
784 = 28 x 28 MNIST) are drawn as grey images; other data as profiles (feature value against
feature index).
"""
import math

import matplotlib.pyplot as plt
import numpy as np
import torch


def image_shape(d):
    """(h, w) if d is a perfect square, else None."""
    side = math.isqrt(d)
    return (side, side) if side * side == d else None


def _draw_rows(axes, rows, shape, vmin, vmax):
    for ax, row in zip(np.ravel(axes), rows):
        if shape is None:
            ax.plot(row, lw=0.8)
            ax.set_ylim(vmin, vmax)
        else:
            ax.imshow(row.reshape(shape), cmap="gray_r", vmin=vmin, vmax=vmax)
        ax.set_xticks([])
        ax.set_yticks([])


def _numpy(t):
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


def plot_samples(model, n=36, *, generator=None, noise=False):
    """A grid of n draws f(z), z ~ N(0, I) (``noise=True`` adds the decoder noise e ~ N(0, D))."""
    x = _numpy(model.sample(n, noise=noise, generator=generator))
    cols = math.ceil(math.sqrt(n))
    fig, axes = plt.subplots(math.ceil(n / cols), cols, figsize=(0.7 * cols, 0.7 * math.ceil(n / cols)),
                             squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    _draw_rows(axes.ravel()[:n], x, image_shape(model.data_dim), x.min(), x.max())
    fig.suptitle("samples f(z), z ~ N(0, I)" if not noise else "samples f(z) + e", fontsize=9)
    return fig


def plot_reconstructions(model, X, n=10):
    """Top row: n data points x; bottom row: their reconstructions decode(mu(x))."""
    X = np.asarray(X)[:n]
    R = _numpy(model.reconstruction(X))
    fig, axes = plt.subplots(2, len(X), figsize=(0.8 * len(X), 1.8), squeeze=False)
    lo, hi = min(X.min(), R.min()), max(X.max(), R.max())
    _draw_rows(axes[0], X, image_shape(model.data_dim), lo, hi)
    _draw_rows(axes[1], R, image_shape(model.data_dim), lo, hi)
    axes[0, 0].set_ylabel("x", fontsize=8)
    axes[1, 0].set_ylabel("f(mu(x))", fontsize=8)
    return fig


def plot_latent_traversal(model, *, dims=None, steps=9, span=2.5):
    """f(z) as one latent coordinate z_k runs over [-span, span] with the others at 0.

    One row per coordinate in ``dims`` (default: the first min(K, 8)).
    """
    dims = list(range(min(model.latent_dim, 8))) if dims is None else list(dims)
    values = np.linspace(-span, span, steps)
    Z = np.zeros((len(dims), steps, model.latent_dim))
    for row, k in enumerate(dims):
        Z[row, :, k] = values
    x = _numpy(model.decode(torch.as_tensor(Z)))
    fig, axes = plt.subplots(len(dims), steps, figsize=(0.7 * steps, 0.7 * len(dims)), squeeze=False)
    _draw_rows(axes, x.reshape(-1, model.data_dim), image_shape(model.data_dim), x.min(), x.max())
    for row, k in enumerate(dims):
        axes[row, 0].set_ylabel(f"z{k + 1}", fontsize=8)
    fig.suptitle(f"latent traversal, z_k from {-span} to {span}", fontsize=9)
    return fig


def plot_elbo_curve(history):
    """Training and validation ELBO (nats per sample) per epoch, the kept epoch marked."""
    fig, ax = plt.subplots(figsize=(4.5, 3))
    epochs = history["epoch"]
    ax.plot(epochs, history["train_elbo"], label="training ELBO")
    if not np.all(np.isnan(history["val_elbo"])):
        ax.plot(epochs, history["val_elbo"], label="validation ELBO")
    if history.get("best_epoch"):
        ax.axvline(history["best_epoch"], color="gray", ls=":", label="kept")
    values = np.concatenate([history["train_elbo"], history["val_elbo"]])
    values = values[np.isfinite(values)]
    if values.size:  # the first epochs can be far below the rest; show the interesting range
        ax.set_ylim(np.percentile(values, 5) - 1, values.max() + 1)
    ax.set_xlabel("epoch")
    ax.set_ylabel("ELBO (nats per sample)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
