"""Stage 1 of SYNAPSE as a scikit-learn transformer: ``SynapseEncoder``."""

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from . import _inputs, _persistence
from ._alignment import AlignedEEG
from .utils import is_verbose

# Alignment matrices are stored beside the weights under this key prefix.
_WHITENER_PREFIX = "alignment_whitener."
# Parameters that are not saved: folders of this machine, live objects.
_NOT_SAVED = ("cache_dir", "checkpoint_dir", "callbacks", "accelerator")


class SynapseEncoder(_persistence.HubMixin, TransformerMixin, BaseEstimator):
    """CLIP-aligned hybrid EEG autoencoder (Stage 1 of SYNAPSE).

    Fits :class:`~mne_synapse.models.SynapseAutoencoder` so that its latent
    ``Z_latent`` reconstructs the EEG, matches the CLIP token states of each
    epoch's caption and, pooled, retrieves the CLIP embedding of the epoch's
    stimulus image (symmetric InfoNCE). Training runs through skorch.

    Parameters
    ----------
    preset : ``'tiny'`` | ``'paper'``
        Model sizes (see ``mne_synapse.models.PRESETS``); ``n_chans`` and
        ``n_times`` are taken from the data, ``n_tokens`` and ``embed_dim``
        from the CLIP model.
    module_kwargs : dict | None
        Overrides of the preset (e.g. ``{'widths': (32, 64, 128)}``).
    clip_model, clip_pretrained : str, str | path | None
        The CLIP model giving the targets (see :class:`~mne_synapse.clip.CLIPEmbedder`):
        ``'ViT-H-14'`` / ``'laion2b_s32b_b79k'`` for the paper, ``'tiny'`` /
        ``'synthetic'`` for the miniature world. ``'auto'`` picks those
        defaults (and requires an explicit tag for other models).
    recon_weight, align_weight, contrastive_weight : float
        Weights of the loss terms; 0 disables a term (and its data needs).
    uncertainty_weighting : bool
        Learn the term weights (Kendall et al. 2018) instead.
    caption_template : str
        Caption of an epoch without a ``caption`` metadata column, formatted
        with its class name.
    image_column, caption_column : str
        Metadata columns holding the stimulus image path and the caption.
    output : ``'pooled'`` | ``'tokens'``
        What :meth:`transform` returns: the token mean (n_epochs, embed_dim),
        a CLIP-space embedding, or all tokens (n_epochs, n_tokens, embed_dim).
    max_epochs, batch_size, lr, weight_decay, grad_clip : int, int, float, float, float
        AdamW training. The defaults suit the tiny preset on a CPU; the paper
        trained up to 1000 epochs with batch 32, lr 1e-4, clip 1.0.
    augment_noise : float
        Standard deviation of Gaussian noise added to the training batches,
        in units of the per-channel standardised signal (0 disables it).
    augment_shift : int
        Largest circular shift of training batches along time, in samples
        (0 disables it). Not in the paper: on the synthetic benchmark these
        two raise held-out decoding from 0.45 to 0.57.
    alignment : ``'euclidean'`` | None
        Input layer that makes subjects alike: each subject's epochs are
        multiplied by the inverse square root of that subject's mean spatial
        covariance (Euclidean alignment, He & Wu 2019), which whitens the
        background EEG and removes subject-specific mixing before the network
        sees the data. Subjects come from ``metadata[subject_column]``;
        without it all epochs count as one subject (plain spatial whitening
        learned in fit). A subject not seen in fit is aligned at transform
        time from the epochs passed with it (no labels needed), so pass all
        of a new subject's epochs in one call. None: per-channel
        standardisation only, as in the paper. On the synthetic benchmark
        alignment raises held-out decoding and leave-one-subject-out transfer
        (see ``benchmarks/RESULTS.md``).
    alignment_shrinkage : float
        Shrinkage of each subject's covariance towards a scaled identity,
        in [0, 1]; keeps the inverse stable with few epochs or a
        rank-deficient (e.g. average-referenced) montage.
    subject_column : str
        Metadata column naming the subject of each epoch.
    validation_fraction : float
        Fraction of the *images* held out for validation (image-disjoint);
        0 trains on everything.
    early_stopping : int | None
        Patience in epochs on the validation loss (needs validation_fraction > 0).
    callbacks : list of (name, skorch.callbacks.Callback) | None
        Extra skorch callbacks, e.g. ``[("ckpt", Checkpoint(dirname=...)),
        ("lr", LRScheduler("CosineAnnealingLR", T_max=40))]``. Gradient
        clipping and early stopping are already set by the parameters above.
    checkpoint_dir : path-like | None
        Folder for resumable training. After every epoch the whole training
        state (weights, optimizer, history, random generators) is saved there
        atomically, under a sub-folder named by a hash of the parameters and
        data; a later ``fit`` with the same parameters and data (``max_epochs``,
        ``verbose``, ``device``, ``callbacks`` may differ) continues from it
        and ends with the same weights as a run that was never stopped. A
        finished run is kept, so fitting again restores it without training;
        delete the folder to start over. Needs an integer ``random_state``.
        Early stopping restarts its patience count on resume, and extra
        ``callbacks`` must keep their own state.
    device : str
        Torch device, e.g. ``'cuda'``.
    accelerator : accelerate.Accelerator | None
        Train through Hugging Face ``accelerate`` (skorch's ``AccelerateMixin``):
        data-parallel (DDP) over the processes of ``accelerate launch``, with the
        accelerator's mixed precision and gradient accumulation. It also places
        the model, so ``device`` is then ignored. Each process trains on its share
        of every epoch; the losses in ``history_`` are averaged over processes, so
        every process records, and stops, alike. See :doc:`/distributed`.
    cache_dir : path-like | None
        Folder for on-disk caching of CLIP embeddings.
    random_state : int | None
        Seed of weights, batches and dropout: equal seeds give equal outputs.
    verbose : bool | str | int | None
        MNE-style verbosity; at ``'info'`` or above, a line per training epoch.

    Attributes
    ----------
    net_ : skorch.NeuralNet
        The fitted network (``net_.module_`` is the autoencoder).
    n_chans_, n_times_, sfreq_, ch_names_ : int, int, float | None, list | None
        The signal seen in fit.
    n_features_in_ : int
        ``n_chans_ * n_times_`` (scikit-learn's name for the input size).
    scale_mean_, scale_std_ : ndarray, shape (n_chans, 1)
        Per-channel standardisation learned in fit (after alignment).
    whiteners_ : dict | None
        Alignment matrix (n_chans, n_chans) of each subject seen in fit (key:
        the subject as a string; ``''`` when fit had no subjects), or None
        with ``alignment=None``.
    history_ : skorch History
        Loss per epoch.

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.linear_model import LogisticRegression
    >>> from mne_synapse import SynapseEncoder
    >>> clf = make_pipeline(SynapseEncoder(max_epochs=20), LogisticRegression())
    >>> clf.fit(epochs, epochs.metadata["label"])  # doctest: +SKIP
    """

    def __init__(self, preset="tiny", module_kwargs=None, clip_model="tiny",
                 clip_pretrained="auto", recon_weight=1.0, align_weight=1.0,
                 contrastive_weight=1.0, uncertainty_weighting=False,
                 caption_template="a photo of a {}", image_column="image_path",
                 caption_column="caption", output="pooled", max_epochs=40,
                 batch_size=32, lr=3e-3, weight_decay=1e-2, grad_clip=1.0,
                 augment_noise=0.5, augment_shift=4, alignment="euclidean",
                 alignment_shrinkage=0.1, subject_column="subject", validation_fraction=0.0,
                 early_stopping=None, callbacks=None, checkpoint_dir=None,
                 device="cpu", accelerator=None, cache_dir=None, random_state=None,
                 verbose=None):
        self.preset = preset
        self.module_kwargs = module_kwargs
        self.clip_model = clip_model
        self.clip_pretrained = clip_pretrained
        self.recon_weight = recon_weight
        self.align_weight = align_weight
        self.contrastive_weight = contrastive_weight
        self.uncertainty_weighting = uncertainty_weighting
        self.caption_template = caption_template
        self.image_column = image_column
        self.caption_column = caption_column
        self.output = output
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.grad_clip = grad_clip
        self.augment_noise = augment_noise
        self.augment_shift = augment_shift
        self.alignment = alignment
        self.alignment_shrinkage = alignment_shrinkage
        self.subject_column = subject_column
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.callbacks = callbacks
        self.checkpoint_dir = checkpoint_dir
        self.device = device
        self.accelerator = accelerator
        self.cache_dir = cache_dir
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.target_tags.required = False
        tags.non_deterministic = self.random_state is None
        return tags

    # -- helpers -------------------------------------------------------------
    def _validate_params(self):
        from .models import PRESETS

        _inputs.check_option(self.preset, "preset", PRESETS)
        _inputs.check_option(self.output, "output", ("pooled", "tokens"))
        for name in ("recon_weight", "align_weight", "contrastive_weight", "lr",
                     "weight_decay", "grad_clip", "augment_noise", "augment_shift"):
            _inputs.check_number(getattr(self, name), name)
        _inputs.check_option(self.alignment, "alignment", ("euclidean", None))
        _inputs.check_number(self.alignment_shrinkage, "alignment_shrinkage", "[0, 1]")
        if not isinstance(self.subject_column, str):
            raise TypeError(f"subject_column must be a str, got {self.subject_column!r}.")
        if self.recon_weight + self.align_weight + self.contrastive_weight == 0:
            raise ValueError("At least one of the loss weights must be > 0.")
        for name in ("max_epochs", "batch_size"):
            _inputs.check_int(getattr(self, name), name)
        _inputs.check_number(self.validation_fraction, "validation_fraction", "[0, 1)")
        if self.early_stopping is not None and self.validation_fraction == 0:
            raise ValueError("early_stopping needs validation_fraction > 0.")
        if self.checkpoint_dir is not None and not isinstance(self.random_state,
                                                              (int, np.integer)):
            raise ValueError(
                "checkpoint_dir needs an integer random_state: a run with a random "
                f"seed cannot be continued identically (got {self.random_state!r})."
            )
        if self.module_kwargs is not None:
            from .models import SynapseAutoencoder

            _inputs.check_module_kwargs(
                self.module_kwargs, SynapseAutoencoder,
                from_data=("n_chans", "n_times", "sfreq", "chs_info"), refused=dict(
                    n_outputs="SynapseEncoder trains the autoencoder; for a classifier use "
                    "braindecode.EEGClassifier(SynapseAutoencoder.from_preset(..., n_outputs=k))"))
        _inputs.check_device(self.device)
        _inputs.check_accelerator(self.accelerator)
        if self.accelerator is not None and self.checkpoint_dir is not None:
            raise ValueError("checkpoint_dir cannot be combined with accelerator yet; "
                             "pass one of them.")

    def _clip(self):
        from .clip import CLIPEmbedder, default_pretrained

        device = self.device if self.accelerator is None else str(self.accelerator.device)
        return CLIPEmbedder(self.clip_model, default_pretrained(self.clip_model,
                                                                self.clip_pretrained),
                            device=device, cache_dir=self.cache_dir)

    def _scale(self, data):
        return (data - self.scale_mean_) / self.scale_std_

    def _align(self, data, metadata, fitting=False):
        """``data`` seen through each subject's whitener (unchanged without alignment)."""
        from ._alignment import align, fit_whiteners, subject_keys

        subjects = (None if metadata is None or self.subject_column not in metadata
                    else metadata[self.subject_column].astype(str).to_numpy())
        if fitting:
            self.subject_aware_ = subjects is not None
            self.whiteners_ = None if self.alignment is None else fit_whiteners(
                data, subject_keys(subjects, len(data), self.subject_aware_),
                self.alignment_shrinkage)
        if self.whiteners_ is None:
            return data
        return align(data, subject_keys(subjects, len(data), self.subject_aware_),
                     self.whiteners_, self.alignment_shrinkage, is_verbose(self.verbose))

    # -- fit -------------------------------------------------------------------
    def fit(self, X, y=None, images=None, captions=None):
        """Fit the autoencoder.

        Parameters
        ----------
        X : mne.Epochs | ndarray, shape (n_epochs, n_chans, n_times)
            EEG. With Epochs, stimuli come from ``X.metadata`` (image paths in
            ``image_column``, captions in ``caption_column`` or from the class
            name). ``mne.Epochs(preload=False)`` (e.g. ``mne.read_epochs(fname,
            preload=False)``) and memory-mapped arrays (``np.load(fname,
            mmap_mode='r')``) are read a batch at a time, never as a whole,
            so the EEG may be larger than memory; what stays in memory is the
            model, the metadata and one CLIP target per distinct image and
            caption.
        y : array-like | None
            Class labels; used only to build captions when there are none
            (so the estimator works in a classification Pipeline).
        images : sequence | None
            One stimulus per epoch (uint8 (H, W, 3) arrays or paths); overrides
            the metadata.
        captions : sequence of str | None
            One caption per epoch; overrides the metadata.

        Returns
        -------
        self : SynapseEncoder
        """
        self._validate_params()
        data, info, metadata = _inputs.get_data(X, lazy=True)
        n_epochs, n_chans, n_times = data.shape
        if y is not None:
            y = np.asarray(y)
        if y is not None and len(y) != n_epochs:
            raise ValueError(f"y has {len(y)} labels for {n_epochs} epochs; pass one "
                             "label per epoch (or y=None).")
        images, captions = _inputs.resolve_stimuli(
            n_epochs, metadata, images, captions, y, self.image_column,
            self.caption_column, self.caption_template,
            need_images=self.contrastive_weight > 0, need_captions=self.align_weight > 0,
        )
        self.n_chans_, self.n_times_ = n_chans, n_times
        self.n_features_in_ = n_chans * n_times
        self.sfreq_ = None if info is None else float(info["sfreq"])
        self.ch_names_ = None if info is None else list(info["ch_names"])

        from ._training import train_encoder
        from .clip import clip_targets

        seed = int(np.random.RandomState(self.random_state).randint(2**31 - 1))
        image_table, text_table, unique_pairs, pair_of_epoch, sizes = clip_targets(
            self._clip(), images, captions, n_epochs)
        # Read in chunks (the same way for arrays and lazy data, so both give
        # the same numbers); this pass also checks lazy data for NaN.
        data = self._align(data, metadata, fitting=True)
        self.scale_mean_, self.scale_std_ = _inputs.channel_stats(data)
        self.module_kwargs_ = dict(n_chans=n_chans, n_times=n_times, sfreq=self.sfreq_,
                                   **sizes, **(self.module_kwargs or {}))
        self.net_ = train_encoder(self, data, pair_of_epoch, unique_pairs, image_table,
                                  text_table, seed)
        self.history_ = self.net_.history
        self.random_state_ = seed
        return self

    # -- inference ---------------------------------------------------------------
    def _prepare(self, X):
        """Checked and aligned EEG of ``X``, read lazily."""
        check_is_fitted(self, "net_")
        data, info, metadata = _inputs.get_data(X, lazy=True)
        _inputs.check_same_signal(data, info, dict(
            n_chans=self.n_chans_, n_times=self.n_times_, sfreq=self.sfreq_,
            ch_names=self.ch_names_))
        return self._align(data, metadata)

    def _forward(self, X, run):
        data = X if isinstance(X, AlignedEEG) else self._prepare(X)
        import torch

        module = self.net_.module_.eval()
        device = next(module.parameters()).device
        step = max(self.batch_size, 64)
        outputs = []
        with torch.no_grad():
            for start in range(0, len(data), step):  # lazy data: read a batch at a time
                batch = torch.as_tensor(self._scale(data[start:start + step])).to(device)
                outputs.append(run(module, batch).cpu().numpy())
        return np.concatenate(outputs)

    def transform(self, X):
        """Embed EEG in CLIP space.

        Parameters
        ----------
        X : mne.Epochs | ndarray, shape (n_epochs, n_chans, n_times)
            EEG with the channels and times seen in fit.

        Returns
        -------
        Z : ndarray
            ``Z_latent`` averaged over tokens, shape (n_epochs, embed_dim), or
            all tokens, (n_epochs, n_tokens, embed_dim), if ``output='tokens'``.
        """
        z = self.latent(X)
        return z.mean(axis=1) if self.output == "pooled" else z

    def latent(self, X):
        """Return ``Z_latent``, all tokens: (n_epochs, n_tokens, embed_dim).

        This is the conditioning Stage 2 gives to the diffusion U-Net.
        """
        return self._forward(X, lambda module, x: module.encode(x))

    def reconstruct(self, X):
        """Decode the EEG from its latent; same shape and units as ``X``."""
        data = self._prepare(X)
        x_hat = self._forward(data, lambda module, x: module.decode(module.encode(x)))
        x_hat = x_hat * self.scale_std_ + self.scale_mean_
        if isinstance(data, AlignedEEG):  # back from the aligned space
            x_hat = np.linalg.solve(data.matrices[data.codes], x_hat)
        return x_hat.astype(np.float32)

    # -- persistence (save_pretrained, from_pretrained, push_to_hub: HubMixin) -----
    def _saved_params(self):
        return {k: v for k, v in self.get_params().items() if k not in _NOT_SAVED}

    def _saved_files(self):
        """The files of a save, by name (the generator saves them too): config + weights."""
        import torch

        state = dict(self.net_.module_.state_dict())
        for subject, matrix in (self.whiteners_ or {}).items():
            state[_WHITENER_PREFIX + subject] = torch.as_tensor(matrix)
        return _persistence.estimator_files(
            "SynapseEncoder", self._saved_params(),
            state, module_kwargs=self.module_kwargs_, n_chans=self.n_chans_,
            n_times=self.n_times_, sfreq=self.sfreq_, ch_names=self.ch_names_,
            subject_aware=self.subject_aware_, aligned=self.whiteners_ is not None,
            scale_mean=self.scale_mean_.ravel().tolist(),
            scale_std=self.scale_std_.ravel().tolist())

    def _card(self):
        from .models import count_parameters

        rate = "" if self.sfreq_ is None else f" at {self.sfreq_:g} Hz"
        return dict(
            summary=(f"A Stage-1 SYNAPSE encoder: EEG of {self.n_chans_} channels x "
                     f"{self.n_times_} samples{rate} -> CLIP space ({self.clip_model})."),
            params=self._saved_params(), tags=["eeg", "mne", "braindecode", "clip"],
            n_trainable=(f"{count_parameters(self.net_.module_):,} trainable parameters "
                         "(the autoencoder, encoder and decoder)."),
            load_lines=["Z = model.transform(epochs)  # CLIP-space embedding of each epoch"])

    @classmethod
    def _load_folder(cls, path, device="cpu"):
        from ._training import SynapseNet
        from .losses import SynapseLoss
        from .models import SynapseAutoencoder

        _inputs.check_device(device)
        self, config, state = _persistence.load_estimator(
            cls, path, device, required=("module_kwargs", "n_chans", "n_times", "sfreq",
                                         "ch_names", "scale_mean", "scale_std"))
        whiteners = {k[len(_WHITENER_PREFIX):]: state.pop(k).numpy()
                     for k in list(state) if k.startswith(_WHITENER_PREFIX)}
        try:
            module = SynapseAutoencoder.from_preset(self.preset, **config["module_kwargs"])
            module.load_state_dict(state)
        except (RuntimeError, TypeError, ValueError) as err:
            raise ValueError(f"Weights in {path} do not fit the saved architecture "
                             f"({_persistence.mismatch_reason(err)}); save the encoder "
                             "again with this version.") from err
        self.net_ = SynapseNet(module, criterion=SynapseLoss, device=device).initialize()
        self.n_chans_, self.n_times_ = config["n_chans"], config["n_times"]
        self.n_features_in_ = self.n_chans_ * self.n_times_
        self.sfreq_, self.ch_names_ = config["sfreq"], config["ch_names"]
        self.module_kwargs_ = config["module_kwargs"]
        self.scale_mean_ = np.asarray(config["scale_mean"], np.float32)[:, None]
        self.scale_std_ = np.asarray(config["scale_std"], np.float32)[:, None]
        self.subject_aware_ = bool(config.get("subject_aware", False))
        self.whiteners_ = whiteners if config.get("aligned", False) else None
        self.history_ = self.net_.history
        return self
