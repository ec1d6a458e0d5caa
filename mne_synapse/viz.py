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
