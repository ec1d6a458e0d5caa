"""skorch pieces of Stage-1 training (imported only when an estimator fits)."""

import numpy as np
import torch
from skorch import NeuralNet


class SynapseNet(NeuralNet):
    """skorch net whose loss reads CLIP targets by stimulus index.

    ``y`` given to skorch is the index of each epoch's (image, caption) pair;
    the tables of CLIP targets stay on the net (``image_table_``,
    ``text_table_``), so batches do not copy 77 x 1024 text states per epoch.
    """

    augment_noise = 0.0
    augment_shift = 0

    def train_step_single(self, batch, **fit_params):
        # Augmentation: with ~10 trials per training image the encoder would
        # otherwise memorise the training images (held-out accuracy on the
        # synthetic set: 0.45 without, 0.57 with noise 0.5 and shifts of 4).
        Xi, yi = batch
        if self.augment_noise:
            Xi = Xi + self.augment_noise * torch.randn_like(Xi)
        if self.augment_shift:
            shift = int(torch.randint(-self.augment_shift, self.augment_shift + 1, (1,)))
            Xi = torch.roll(Xi, shift, dims=-1)
        return super().train_step_single((Xi, yi), **fit_params)

    def get_loss(self, y_pred, y_true, X=None, training=False):
        z, x_hat = y_pred
        pair = y_true.long().cpu()
        image_idx = self.pair_image_[pair]
        text_idx = self.pair_text_[pair]
        device = z.device
        image = None if self.image_table_ is None else self.image_table_[image_idx].to(device)
        text = None if self.text_table_ is None else self.text_table_[text_idx].to(device)
        return self.criterion_(z, x_hat, X.to(device), text, image, image_idx.to(device))


class ImageDisjointSplit:
    """skorch ``train_split`` holding out whole images, never one image in both parts.

    Parameters
    ----------
    fraction : float
        Fraction of the distinct images held out for validation.
    groups : array of int
        The image of each training sample.
    seed : int
        Seed of the draw.
    """

    def __init__(self, fraction, groups, seed):
        self.fraction = fraction
        self.groups = groups
        self.seed = seed

    def __call__(self, dataset, y=None, **fit_params):
        from torch.utils.data import Subset

        groups = np.asarray(self.groups)
        unique = np.unique(groups)
        rng = np.random.default_rng(self.seed)
        n_valid = max(1, int(round(self.fraction * len(unique))))
        valid = np.isin(groups, rng.choice(unique, n_valid, replace=False))
        return Subset(dataset, np.flatnonzero(~valid)), Subset(dataset, np.flatnonzero(valid))
