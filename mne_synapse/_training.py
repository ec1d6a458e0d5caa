"""Stage-1 training through skorch (imported only when an encoder fits or loads).

:func:`train_encoder` wires a :class:`~mne_synapse.SynapseEncoder`'s
parameters into a skorch net (loss, optimiser, callbacks, validation split,
resumable checkpoint, accelerate) and trains it. The other ways an encoder
gets its fitted state (a saved folder, :mod:`._persistence`; the authors'
files, :mod:`.interop.official`) end in :func:`set_fitted`, with the same net.
"""

import numpy as np
import torch
from skorch import NeuralNet
from skorch.callbacks import Callback
from skorch.hf import AccelerateMixin

from . import _inputs
from .utils import LogSink, is_verbose


def module_kwargs_for(encoder, n_chans, n_times, sfreq, latent=None):
    """The ``module_kwargs_`` of a fit: the preset's network sized for the data and targets.

    Our network takes its sizes from the data and from the CLIP targets
    (``latent``: their ``n_tokens`` and ``embed_dim``; None before they are
    known or without targets). The authors' network (``preset='paper'``) has
    the sizes of their released encoder unless ``module_kwargs`` sets others;
    the data and the targets must fit them, or a ValueError says what to do.
    """
    import inspect

    from ._paper import N_ELECTRODES, N_SAMPLES
    from .models import OfficialAutoencoder

    user = dict(encoder.module_kwargs or {})
    if encoder.preset != "paper":
        from .models import PRESETS

        # Saved with the weights, so that a later change of the preset's default
        # cannot break loading this network (see _persistence.restore_encoder).
        power = dict(power_filters=PRESETS[encoder.preset].get("power_filters", 0))
        return {**dict(n_chans=n_chans, n_times=n_times, sfreq=sfreq), **(latent or {}),
                **power, **user}
    signal = ("n_outputs", "chs_info", "input_window_seconds", "sfreq")
    sizes = {name: param.default for name, param in
             inspect.signature(OfficialAutoencoder).parameters.items() if name not in signal}
    sizes.update({"n_chans": N_ELECTRODES, "n_times": N_SAMPLES, **user})
    _inputs.check_paper_input(sizes, n_chans, n_times)
    if not sizes["decoder"] and encoder.recon_weight > 0:
        raise ValueError("module_kwargs={'decoder': False} builds no decoder, so there is "
                         "no reconstruction to train: set recon_weight=0.")
    if latent and (latent["n_tokens"], latent["embed_dim"]) != (sizes["n_tokens"],
                                                                sizes["embed_dim"]):
        raise ValueError(
            f"preset='paper' makes a latent of {sizes['n_tokens']} x {sizes['embed_dim']} "
            f"(the caption token states of ViT-H-14), but clip_model="
            f"{encoder.clip_model!r} gives {latent['n_tokens']} x {latent['embed_dim']}: "
            "use clip_model='ViT-H-14' (as SynapseEncoder.paper() does), or pass "
            "module_kwargs={'n_tokens': ..., 'embed_dim': ...} for other targets.")
    return sizes


def set_fitted(encoder, module, device, **fitted):
    """Make ``encoder`` fitted with ``module`` (weights already in) and the ``fitted`` attributes.

    ``fitted`` gives ``n_chans``, ``n_times``, ``sfreq``, ``ch_names``,
    ``module_kwargs``, ``scale_mean``, ``scale_std``, ``subject_aware``, ``signal_rms`` and
    ``whiteners``, each set as the attribute of that name plus ``_``.
    """
    from .losses import SynapseLoss

    for name, value in fitted.items():
        setattr(encoder, name + "_", value)
    encoder.n_features_in_ = encoder.n_chans_ * encoder.n_times_
    encoder.net_ = SynapseNet(module, criterion=SynapseLoss, device=device).initialize()
    encoder.history_ = encoder.net_.history
    return encoder


def train_encoder(encoder, data, pair_of_epoch, unique_pairs, image_table, text_table, seed,
                  module=None):
    """Train the autoencoder of ``encoder`` (its parameters and fitted scaling) on ``data``.

    Parameters
    ----------
    encoder : SynapseEncoder
        Gives the parameters, ``module_kwargs_`` and ``scale_mean_``/``scale_std_``.
    data : ndarray | LazyEEG | AlignedEEG
        The (aligned) EEG, read a batch at a time.
    pair_of_epoch, unique_pairs : ndarray of int
        Each epoch's row of ``unique_pairs``, whose rows are (image row, caption row).
    image_table, text_table : ndarray | None
        CLIP targets by row: image embeddings and caption token states.
    seed : int
        Seed of weights, batches and dropout.
    module : torch.nn.Module | None
        A network to train further (warm start); None builds a fresh one.

    Returns
    -------
    net : SynapseNet
        The trained net, without the CLIP tables (they are only needed to train,
        and dropping them keeps the fitted estimator small to pickle).
    """
    from skorch.callbacks import EarlyStopping, GradientNormClipping

    from .losses import SynapseLoss
    from .models import build_autoencoder

    image_table = None if image_table is None else torch.as_tensor(image_table)
    text_table = None if text_table is None else torch.as_tensor(text_table)
    checkpoint = fingerprint = None
    if encoder.checkpoint_dir is not None:
        from ._checkpoint import EpochCheckpoint, checkpoint_file, restore

        checkpoint, fingerprint = checkpoint_file(
            encoder, seed, data.shape, pair_of_epoch, unique_pairs, image_table, text_table)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if module is None:
            module = build_autoencoder(encoder.preset, **encoder.module_kwargs_)
        callbacks = list(encoder.callbacks or [])
        if encoder.accelerator is None:  # else the net clips, after unscaling fp16 gradients
            callbacks.insert(0, ("grad_clip", GradientNormClipping(encoder.grad_clip or np.inf)))
        if encoder.lr_schedule == "cosine":
            callbacks.append(("lr_schedule", CosineSchedule(encoder.max_epochs)))
        train_split = None
        if encoder.validation_fraction > 0:
            column = 0 if image_table is not None else 1  # hold out images, else captions
            groups = unique_pairs[np.ravel(pair_of_epoch), column]
            train_split = ImageDisjointSplit(encoder.validation_fraction, groups, seed)
            if encoder.early_stopping:
                callbacks.append(("early_stopping", EarlyStopping(
                    patience=encoder.early_stopping, load_best=True)))
        loader_rng = torch.Generator().manual_seed(seed)
        if checkpoint is not None:
            callbacks.append(("checkpoint", EpochCheckpoint(checkpoint, fingerprint,
                                                            loader_rng)))
        # The epoch table goes through MNE's logger (verbose, log level, log file;
        # colour codes on terminals only), from the main process of a distributed run.
        sink = LogSink(encoder.verbose)
        net_class, placement = SynapseNet, dict(device=encoder.device)
        if encoder.accelerator is not None:  # it places and wraps (DDP) the modules itself
            net_class, placement = AcceleratedSynapseNet, dict(
                accelerator=encoder.accelerator, device=None, grad_clip=encoder.grad_clip)
            sink = sink if encoder.accelerator.is_main_process else LogSink(False)
        net = net_class(
            module, criterion=SynapseLoss,
            criterion__recon_weight=encoder.recon_weight,
            criterion__align_weight=encoder.align_weight,
            criterion__contrastive_weight=encoder.contrastive_weight,
            criterion__uncertainty_weighting=encoder.uncertainty_weighting,
            criterion__learn_temperature=encoder.learn_temperature,
            criterion__cosine_axis=encoder.cosine_axis,
            optimizer=torch.optim.AdamW, lr=encoder.lr,
            optimizer__weight_decay=encoder.weight_decay,
            max_epochs=encoder.max_epochs, batch_size=encoder.batch_size,
            iterator_train__shuffle=True,
            iterator_train__generator=loader_rng,
            train_split=train_split, callbacks=callbacks, **placement,
            callbacks__print_log__sink=sink, verbose=int(is_verbose(encoder.verbose)),
        )
        net.image_table_, net.text_table_ = image_table, text_table
        net.augment_noise, net.augment_shift = encoder.augment_noise, int(encoder.augment_shift)
        net.augment_channel_drop = encoder.augment_channel_drop
        net.augment_mix, net.augment_seed = encoder.augment_mix, seed
        # Same-stimulus mixing pairs an epoch with another of its image (else caption).
        net.stimulus_ = unique_pairs[np.ravel(pair_of_epoch), 0 if image_table is not None else 1]
        net.pair_image_ = torch.as_tensor(unique_pairs[:, 0])
        net.pair_text_ = torch.as_tensor(unique_pairs[:, 1])
        net.initialize()
        done = 0
        if checkpoint is not None:
            done = restore(net, checkpoint, fingerprint, loader_rng)
            if done > encoder.max_epochs:
                raise ValueError(
                    f"The checkpoint in {checkpoint.parent} has trained {done} epochs, "
                    f"more than max_epochs={encoder.max_epochs}; set max_epochs >= {done} "
                    "or use another checkpoint_dir."
                )
        if done < encoder.max_epochs:
            dataset = EEGDataset(data, encoder.scale_mean_, encoder.scale_std_,
                                 pair_of_epoch.astype(np.int64))
            net.partial_fit(dataset, None, epochs=encoder.max_epochs - done)
    net.image_table_ = net.text_table_ = net.stimulus_ = None
    if train_split is not None:
        train_split.groups = None
    return net


class CosineSchedule(Callback):
    """Cosine decay of the learning rate, per epoch: ``lr * (1 + cos(pi * e / max_epochs)) / 2``
    at epoch ``e`` (0-based), from ``net.lr`` towards 0.

    A plain function of the epoch number read off the net's history: a run
    resumed from a checkpoint (whose history is restored) continues the
    schedule where it stopped, and there is no scheduler state to save.
    """

    def __init__(self, max_epochs):
        self.max_epochs = max_epochs

    def on_epoch_begin(self, net, **kwargs):
        epoch = len(net.history) - 1  # the net opened this epoch's row before the callbacks
        lr = float(net.lr * 0.5 * (1.0 + np.cos(np.pi * epoch / self.max_epochs)))
        for group in net.optimizer_.param_groups:
            group["lr"] = lr
        net.history.record("lr", lr)


class SynapseNet(NeuralNet):
    """skorch net whose loss reads CLIP targets by stimulus index.

    ``y`` given to skorch is the index of each epoch's (image, caption) pair;
    the tables of CLIP targets stay on the net (``image_table_``,
    ``text_table_``), so batches do not copy 77 x 1024 text states per epoch.
    """

    augment_noise = 0.0
    augment_shift = 0
    augment_channel_drop = 0.0
    augment_mix = 0.0
    augment_seed = 0
    stimulus_ = None

    def _augment(self, Xi):
        # Augmentation: with ~10 trials per training image the encoder would
        # otherwise memorise the training images (held-out accuracy on the
        # synthetic set: 0.45 without, 0.57 with noise 0.5 and shifts of 4).
        # Each option draws from torch's generator only when on, so turning one
        # on leaves the others' draws, and an unaugmented run, as they were.
        if self.augment_noise:
            Xi = Xi + self.augment_noise * torch.randn_like(Xi)
        if self.augment_shift:
            shift = int(torch.randint(-self.augment_shift, self.augment_shift + 1, (1,)))
            Xi = torch.roll(Xi, shift, dims=-1)
        if self.augment_channel_drop:
            from braindecode.augmentation.functional import channels_dropout

            # braindecode draws with numpy: seed it from torch's generator, which
            # random_state and resumed checkpoints control.
            rng = np.random.RandomState(int(torch.randint(2**31 - 1, (1,))))
            Xi, _ = channels_dropout(Xi, None, self.augment_channel_drop, random_state=rng)
        return Xi

    def get_iterator(self, dataset, training=False):
        if training and self.augment_mix and self.stimulus_ is not None:
            dataset = SameStimulusMix(dataset, self.stimulus_, self.augment_mix,
                                      self.augment_seed, self.history)
        return super().get_iterator(dataset, training=training)

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


class SameStimulusMix(torch.utils.data.Dataset):
    """Training view of an :class:`EEGDataset` (or a ``Subset`` of one) that mixes
    trials of the same stimulus: with probability ``probability`` an epoch becomes
    ``lam * x + (1 - lam) * x_other``, ``lam ~ U(0, 1)``, ``x_other`` another epoch
    of its stimulus in the same view (so never a validation epoch).

    The stimulus response is kept and the trial noise averaged down (its
    variance by 1/3 on average), a cheap form of the trial averaging EEG-image
    work applies at test time. Epochs alone with their stimulus are left as they are.
    The draws of a training epoch come from ``(seed, epoch number)``, the epoch
    number read off ``history``: a run resumed from a checkpoint (which restores
    the history) mixes as the uninterrupted one, and no other draw moves.
    """

    def __init__(self, dataset, stimulus, probability, seed, history):
        from torch.utils.data import Subset

        self.dataset, self.probability = dataset, probability
        self.seed, self.history, self.epoch, self.rng = seed, history, None, None
        rows = (np.asarray(dataset.indices) if isinstance(dataset, Subset)
                else np.arange(len(dataset)))
        groups = np.asarray(stimulus)[rows]
        self.order = np.argsort(groups, kind="stable")  # positions grouped by stimulus
        _, first, count = np.unique(groups[self.order], return_index=True, return_counts=True)
        group_of = np.empty(len(groups), dtype=np.int64)
        group_of[self.order] = np.repeat(np.arange(len(first)), count)
        self.rank = np.empty(len(groups), dtype=np.int64)  # place within its group
        self.rank[self.order] = np.arange(len(groups)) - np.repeat(first, count)
        self.first, self.count = first[group_of], count[group_of]

    def __len__(self):
        return len(self.dataset)

    def __getitems__(self, positions):
        if self.epoch != len(self.history):
            self.epoch = len(self.history)
            self.rng = np.random.default_rng([int(self.seed), self.epoch])
        positions = np.asarray(positions)
        items = self.dataset.__getitems__(positions.tolist())
        count = self.count[positions]
        chosen = np.flatnonzero((self.rng.random(len(positions)) < self.probability)
                                & (count > 1))
        if len(chosen) == 0:
            return items
        # Another member of the group: a uniform draw that skips the epoch itself.
        other = self.rng.integers(count[chosen] - 1)
        other += other >= self.rank[positions[chosen]]
        partners = self.order[self.first[positions[chosen]] + other]
        lam = self.rng.random(len(chosen)).astype(np.float32)
        for i, lam_i, (x_other, _) in zip(chosen, lam,
                                          self.dataset.__getitems__(partners.tolist())):
            x, y = items[i]
            items[i] = (lam_i * x + (1 - lam_i) * x_other, y)
        return items

    def __getitem__(self, position):
        return self.__getitems__([position])[0]


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
