"""The stimulus of each epoch (image, caption), from the metadata or the arguments.

Shared by both estimators, so a missing stimulus gets the same clear error,
ending with the estimator's own way of doing without it.
"""

import numpy as np


def resolve_stimuli(n_epochs, metadata, images, captions, y, image_column,
                    caption_column, caption_template, need_images, need_captions,
                    without_images="", without_captions=""):
    """Per-epoch stimulus images (arrays or paths) and captions.

    Explicit ``images``/``captions`` win over ``metadata`` columns; captions
    fall back to ``caption_template`` over the class name (metadata column
    ``class_name``, else ``y``). ``without_images`` / ``without_captions`` end
    the error messages with the estimator's own way of doing without them
    (e.g. ``'set contrastive_weight=0'``).
    """
    if y is not None:  # class labels, which only name the classes of captions
        y = np.asarray(y)
        if len(y) != n_epochs:
            raise ValueError(f"y has {len(y)} labels for {n_epochs} epochs; pass one "
                             "label per epoch (or y=None).")

    def per_epoch(values, what):
        values = list(values) if not isinstance(values, np.ndarray) else values
        if len(values) != n_epochs:
            raise ValueError(
                f"Got {len(values)} {what} for {n_epochs} epochs; pass one per epoch."
            )
        return values

    def otherwise(fix):
        return f", or {fix}" if fix else ""

    columns = [] if metadata is None else list(metadata.columns)
    if images is None and need_images:
        if metadata is None:
            raise ValueError(
                "No stimulus images: X is an array, which has no metadata. Pass images="
                "... (one image path or uint8 (H, W, 3) array per epoch), or mne.Epochs "
                f"whose metadata has an {image_column!r} column{otherwise(without_images)}.")
        if image_column not in columns:
            raise ValueError(
                f"No stimulus images: epochs.metadata has no {image_column!r} column "
                f"(columns: {columns}). Add a column of image paths (or set image_column "
                f"to the column that has them), pass images=...{otherwise(without_images)}."
            )
        images = metadata[image_column].to_numpy()
        missing = [i for i, v in enumerate(images) if not isinstance(v, str)]
        if missing:
            raise ValueError(
                f"{len(missing)} epochs have no image path in metadata[{image_column!r}] "
                f"(first: epoch {missing[0]}); drop them or pass images=..."
            )
    if images is not None:
        images = per_epoch(images, "images")

    if captions is None and need_captions:
        if caption_column in columns:
            captions = metadata[caption_column].astype(str).to_numpy()
        elif "class_name" in columns:
            captions = [caption_template.format(c) for c in metadata["class_name"]]
        elif y is not None:
            captions = [caption_template.format(c) for c in np.asarray(y)]
        else:
            where = ("X is an array, which has no metadata: pass captions=... or class "
                     "labels y" if metadata is None else
                     f"epochs.metadata has neither {caption_column!r} nor 'class_name' "
                     f"(columns: {columns}): add one, pass captions=... or class labels y")
            raise ValueError(f"No captions: {where}{otherwise(without_captions)}.")
    if captions is not None:
        captions = per_epoch(captions, "captions")
    return images, captions
