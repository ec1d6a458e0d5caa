"""Figures (matplotlib; each function returns the Figure, MNE style)."""

import numpy as np


def plot_generated_grid(stimuli, generated, titles=None, show=True):
    """Stimulus next to its generated images, one row per epoch (paper Fig. 1).

    Parameters
    ----------
    stimuli : array, shape (n_rows, H, W, 3) | list of images
        The image each epoch saw.
    generated : array, shape (n_rows, n_images, H', W', 3) | list of lists of images
        The output of :meth:`EEGImageGenerator.generate`.
    titles : list of str | None
        A label per row (e.g. the class name).
    show : bool
        Show the figure.

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    stimuli = [np.asarray(s) for s in stimuli]
    generated = [[np.asarray(g) for g in row] for row in generated]
    if len(stimuli) != len(generated):
        raise ValueError(f"Got {len(stimuli)} stimuli for {len(generated)} rows of images.")
    n_rows, n_cols = len(stimuli), 1 + max(len(row) for row in generated)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.3 * n_cols, 1.3 * n_rows),
                             squeeze=False, layout="constrained")
    for r, (stimulus, row) in enumerate(zip(stimuli, generated)):
        for c, image in enumerate([stimulus, *row]):
            axes[r, c].imshow(image, interpolation="nearest")
        if titles is not None:
            axes[r, 0].set_ylabel(titles[r], fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_title("seen", fontsize=8)
    for c in range(1, n_cols):
        axes[0, c].set_title(f"generated {c}", fontsize=8)
    if show:
        plt.show()
    return fig


def _tsne(x, perplexity, random_state):
    from sklearn.manifold import TSNE

    # sklearn needs perplexity < n_samples; small sets get a smaller one.
    perplexity = min(perplexity, max(1.0, (len(x) - 1) / 3))
    return TSNE(n_components=2, perplexity=perplexity, init="pca",
                random_state=random_state).fit_transform(x)


def plot_latent_tsne(latents, labels, subjects=None, class_names=None, perplexity=30.0,
                     random_state=0, show=True):
    """t-SNE of encoder latents by class, per subject and across subjects (paper Figs. 4-5).

    Parameters
    ----------
    latents : array, shape (n_epochs, ...)
        E.g. ``SynapseEncoder.transform`` (pooled) or ``.latent`` (tokens);
        trailing dimensions are flattened.
    labels : array, shape (n_epochs,)
        Class of each epoch.
    subjects : array, shape (n_epochs,) | None
        Subject of each epoch: one panel per subject (its own t-SNE) and a
        panel of all subjects together (markers by subject).
    class_names : dict | list | None
        Legend name of each label (indexed by label).
    perplexity : float
        t-SNE perplexity (lowered for small sets).
    random_state : int
        Seed of t-SNE.
    show : bool
        Show the figure.

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    x = np.asarray(latents, dtype=float)
    x = x.reshape(len(x), -1)
    labels = np.asarray(labels)
    if len(labels) != len(x):
        raise ValueError(f"Got {len(labels)} labels for {len(x)} latents.")
    if len(x) < 5:
        raise ValueError(f"t-SNE needs at least 5 epochs, got {len(x)}.")
    panels = [("all subjects" if subjects is not None else "all epochs", np.arange(len(x)))]
    if subjects is not None:
        subjects = np.asarray(subjects)
        if len(subjects) != len(x):
            raise ValueError(f"Got {len(subjects)} subjects for {len(x)} latents.")
        panels += [(f"subject {s}", np.flatnonzero(subjects == s)) for s in np.unique(subjects)]
        small = [title for title, idx in panels if len(idx) < 5]
        if small:
            raise ValueError(f"t-SNE needs at least 5 epochs per subject; too few in {small}.")
    classes = np.unique(labels)
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20" if len(classes) <= 20
                        else "turbo")
    colours = [cmap(i if len(classes) <= 20 else i / len(classes)) for i in range(len(classes))]
    markers = "osD^vP*X<>"
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4), squeeze=False,
                             layout="constrained")
    for p, (ax, (title, idx)) in enumerate(zip(axes[0], panels)):
        xy = _tsne(x[idx], perplexity, random_state)
        # Across subjects, the marker tells the subject.
        marker_of = np.zeros(len(idx), int)
        if subjects is not None and p == 0:
            marker_of = np.unique(subjects, return_inverse=True)[1]
            title += " (marker: subject)"
        for c, cls in enumerate(classes):
            name = str(class_names[cls]) if class_names is not None else str(cls)
            for j, m in enumerate(np.unique(marker_of)):
                sel = (labels[idx] == cls) & (marker_of == m)
                ax.scatter(*xy[sel].T, s=10, color=colours[c], marker=markers[m % len(markers)],
                           label=name if j == 0 else None, alpha=0.8, linewidths=0)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    if len(classes) <= 20:
        axes[0, 0].legend(fontsize=6, markerscale=1.5, loc="best", frameon=False)
    if show:
        plt.show()
    return fig


def _history_curves(history):
    """(epochs, train loss, valid loss or None) from a skorch History or list of dicts."""
    rows = list(history)
    if not rows or not all(isinstance(r, dict) for r in rows):
        raise ValueError("A skorch history is a non-empty list of per-epoch dicts.")
    epochs = [r.get("epoch", i + 1) for i, r in enumerate(rows)]
    train = [r.get("train_loss", np.nan) for r in rows]
    valid = [r.get("valid_loss", np.nan) for r in rows]
    return epochs, train, None if np.all(np.isnan(valid)) else valid


def plot_training_curves(estimator, smooth=20, show=True):
    """Training curves: Stage-1 loss per epoch (skorch history), Stage-2 loss per step.

    Parameters
    ----------
    estimator : SynapseEncoder | EEGImageGenerator | skorch net | skorch History | list
        A fitted encoder (its ``history_``: train and validation loss per
        epoch), a fitted generator (its encoder's history and its
        ``loss_curve_``), a skorch net or History, or a list of diffusion
        losses per step.
    smooth : int
        Window of the moving average drawn over the per-step losses.
    show : bool
        Show the figure.

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    history, steps = None, None
    if hasattr(estimator, "get_params") and not any(
            hasattr(estimator, a) for a in ("loss_curve_", "history_", "history")):
        raise ValueError(f"{type(estimator).__name__} is not fitted: nothing to plot yet.")
    if hasattr(estimator, "loss_curve_"):  # EEGImageGenerator
        steps = list(estimator.loss_curve_)
        history = getattr(getattr(estimator, "encoder_", None), "history_", None)
    elif hasattr(estimator, "history_"):  # SynapseEncoder
        history = estimator.history_
    elif hasattr(estimator, "history"):  # skorch NeuralNet
        history = estimator.history
    elif len(estimator) and np.isscalar(estimator[0]):  # losses per step
        steps = list(estimator)
    else:  # skorch History or list of per-epoch dicts
        history = estimator
    if not history and not steps:
        raise ValueError("Nothing to plot: the history and the loss curve are empty.")
    panels = (["history"] if history else []) + (["steps"] if steps else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3), squeeze=False,
                             layout="constrained")
    for ax, panel in zip(axes[0], panels):
        if panel == "history":
            epochs, train, valid = _history_curves(history)
            ax.plot(epochs, train, marker=".", label="train")
            if valid is not None:
                ax.plot(epochs, valid, marker=".", label="validation")
            ax.set(xlabel="epoch", ylabel="loss", title="Stage 1 (encoder)")
        else:
            steps = np.asarray(steps, dtype=float)
            ax.plot(np.arange(1, len(steps) + 1), steps, alpha=0.3, label="per step")
            window = max(1, min(smooth, len(steps)))
            if window > 1:
                ax.plot(np.arange(window, len(steps) + 1),
                        np.convolve(steps, np.ones(window) / window, mode="valid"),
                        label=f"mean of {window}")
            ax.set(xlabel="optimisation step", ylabel="diffusion loss", title="Stage 2 (generator)")
        ax.legend(fontsize=7, frameon=False)
    if show:
        plt.show()
    return fig
