"""skorch pieces of Stage-1 training (imported only when an estimator fits)."""

import numpy as np
import torch
from skorch import NeuralNet
from skorch.hf import AccelerateMixin


class SynapseNet(NeuralNet):
    """skorch net whose loss reads CLIP targets by stimulus index.

    ``y`` given to skorch is the index of each epoch's (image, caption) pair;
    the tables of CLIP targets stay on the net (``image_table_``,
    ``text_table_``), so batches do not copy 77 x 1024 text states per epoch.
    """

    augment_noise = 0.0
    augment_shift = 0

    def _augment(self, Xi):
        # Augmentation: with ~10 trials per training image the encoder would
        # otherwise memorise the training images (held-out accuracy on the
        # synthetic set: 0.45 without, 0.57 with noise 0.5 and shifts of 4).
        if self.augment_noise:
            Xi = Xi + self.augment_noise * torch.randn_like(Xi)
        if self.augment_shift:
            shift = int(torch.randint(-self.augment_shift, self.augment_shift + 1, (1,)))
            Xi = torch.roll(Xi, shift, dims=-1)
        return Xi

    def train_step_single(self, batch, **fit_params):
        Xi, yi = batch
        return super().train_step_single((self._augment(Xi), yi), **fit_params)

    def get_loss(self, y_pred, y_true, X=None, training=False):
        z, x_hat = y_pred
        pair = y_true.long().cpu()
        image_idx = self.pair_image_[pair]
        text_idx = self.pair_text_[pair]
        device = z.device
        image = None if self.image_table_ is None else self.image_table_[image_idx].to(device)
        text = None if self.text_table_ is None else self.text_table_[text_idx].to(device)
        return self.criterion_(z, x_hat, X.to(device), text, image, image_idx.to(device))


class EEGDataset(torch.utils.data.Dataset):
    """Standardised EEG epochs and their stimulus-pair index, read a batch at a time.

    ``data`` is an array or a :class:`~mne_synapse._inputs.LazyEEG`; batches
    are read and scaled on demand (``__getitems__``), so neither a scaled copy
    of the whole data set nor, for lazy data, the data itself is held in memory.
    """

    def __init__(self, data, mean, std, pairs):
        self.data, self.mean, self.std, self.pairs = data, mean, std, pairs

    def __len__(self):
        return len(self.pairs)

    def __getitems__(self, indices):
        x = (np.asarray(self.data[np.asarray(indices)]) - self.mean) / self.std
        return [(xi, yi) for xi, yi in zip(x, self.pairs[indices])]

    def __getitem__(self, index):
        return self.__getitems__([index])[0]


class AcceleratedSynapseNet(AccelerateMixin, SynapseNet):
    """SynapseNet trained on an ``accelerate.Accelerator``: DDP, mixed precision, accumulation.

    ``grad_clip`` (max gradient norm, 0: none) replaces skorch's
    ``GradientNormClipping`` callback, which would clip the still-scaled
    gradients of fp16 training.
    """

    def __init__(self, *args, grad_clip=0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.grad_clip = grad_clip

    def train_step_single(self, batch, **fit_params):
        # AccelerateMixin's step does not call SynapseNet's: augment here.
        Xi, yi = batch
        step = super().train_step_single((self._augment(Xi), yi), **fit_params)
        if self.grad_clip and self.accelerator.sync_gradients:
            self.accelerator.clip_grad_norm_(
                [p for _, p in self.get_all_learnable_params()], self.grad_clip)
        return step

    def train_step(self, batch, **fit_params):
        # Every process records the mean batch loss over processes, so that all
        # histories, and the callbacks reading them, agree (accelerate gives
        # each process as many batches, of equal size).
        step = super().train_step(batch, **fit_params)
        step["loss"] = self.accelerator.reduce(step["loss"].detach(), reduction="mean")
        return step

    def validation_step(self, batch, **fit_params):
        step = super().validation_step(batch, **fit_params)
        step["loss"] = self.accelerator.reduce(step["loss"], reduction="mean")
        return step

    def notify(self, method_name, **cb_kwargs):
        if method_name != "on_train_end":
            return super().notify(method_name, **cb_kwargs)
        # Callbacks end first, the net (which unwraps its DDP modules) last:
        # EarlyStopping(load_best=True) restores weights saved from the wrapped module.
        for _, callback in self.callbacks_:
            callback.on_train_end(self, **cb_kwargs)
        return self.on_train_end(self, **cb_kwargs)


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
