"""Stage 1 of SYNAPSE as a scikit-learn transformer: ``SynapseEncoder``."""

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from . import _hub, _inputs, _model_card, _param_checks, _persistence, _stimuli
from ._alignment import AlignedEEG, SubjectAlignment


# Parameters that are not saved: folders of this machine, live objects.
_NOT_SAVED = ("cache_dir", "checkpoint_dir", "callbacks", "accelerator")


class SynapseEncoder(_hub.HubMixin, SubjectAlignment, TransformerMixin, BaseEstimator):
    """CLIP-aligned EEG autoencoder (Stage 1 of SYNAPSE).

    Fits an autoencoder so that its latent ``Z_latent`` reconstructs the EEG,
    matches the CLIP token states of each epoch's caption and, pooled,
    retrieves the CLIP embedding of the epoch's stimulus image (symmetric
    InfoNCE). Training runs through skorch. :meth:`paper` gives the authors'
    configuration; :meth:`from_official` reads their trained files.

    Parameters
    ----------
    preset : ``'tiny'`` | ``'hybrid'`` | ``'paper'``
        The network (:func:`~mne_synapse.models.build_autoencoder`). ``'tiny'``,
        ``'hybrid'``: ours (:class:`~mne_synapse.models.SynapseAutoencoder`), small or
        full size, ``n_chans``/``n_times`` from the data, ``n_tokens``/``embed_dim``
        from CLIP. ``'paper'``: the authors' network as released
        (:class:`~mne_synapse.models.OfficialAutoencoder`): 128 x 440 EEG in, 77 x
        1024 out (ViT-H-14 targets).
    module_kwargs : dict | None
        Overrides of the preset (e.g. ``{'widths': (32, 64, 128)}``, or
        ``{'power_filters': 0}`` for no band-power tokens; for ``'paper'`` e.g.
        ``Train_AE.json``'s ``{'n_layer': 3, 'n_head': 16}``).
    clip_model, clip_pretrained : str, str | path | None
        The CLIP model giving the targets (see :class:`~mne_synapse.clip.CLIPEmbedder`):
        ``'ViT-H-14'`` / ``'laion2b_s32b_b79k'`` for the paper, ``'tiny'`` /
        ``'synthetic'`` for the miniature world. ``'auto'`` picks those
        defaults (and requires an explicit tag for other models).
    text_layer : ``'penultimate'`` | ``'last'``
        The caption token states aligned to (see :class:`~mne_synapse.CLIPEmbedder`):
        the penultimate layer, which SD 2.x reads, or the authors' last layer
        without causal mask.
    recon_weight, align_weight, contrastive_weight : float
        Weights of the loss terms; 0 disables a term (and its data needs).
    learn_temperature : bool
        Learn the InfoNCE temperature (from 0.07) or keep it at 0.07 (the authors').
    cosine_axis : ``'features'`` | ``'tokens'``
        The alignment's cosine term: per token, across features, or per
        feature, across the tokens (the authors').
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
    lr_schedule : None | ``'cosine'``
        Constant ``lr`` (None, as the paper) or, per epoch,
        ``lr * (1 + cos(pi * epoch / max_epochs)) / 2``.
    augment_noise, augment_shift, augment_channel_drop, augment_mix : float, int, float, float
        Augmentation of the training epochs (0 disables each; not in the paper):
        Gaussian noise of this standard deviation (standardised units); circular
        time shifts of up to this many samples; the probability of zeroing each
        channel (braindecode's ``channels_dropout``); the probability of mixing an
        epoch with another of its stimulus image (caption, without images),
        ``lam * x + (1 - lam) * x_other``, ``lam ~ U(0, 1)``. Each measured on
        validation images in ``benchmarks/bench_encoder_levers.py``.
    alignment : ``'euclidean'`` | None
        Input layer that makes subjects alike: each subject's epochs are
        multiplied by the inverse square root of that subject's mean spatial
        covariance (Euclidean alignment, He & Wu 2019). Subjects come from
        ``metadata[subject_column]`` or ``subjects=``. An epoch's embedding
        depends on the epoch and its subject only, never on the epochs passed
        with it: subjects seen in fit or :meth:`calibrate`-d use their own
        whitener; anything else (a new subject, an array without subjects)
        the subject-agnostic one of all training epochs, with a warning if
        fit had subjects (see :doc:`/own_data`). None: per-channel
        standardisation only, as in the paper.
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
    warm_start : bool
        If the encoder is fitted (e.g. by :meth:`from_official`), ``fit``
        trains its network further, keeping its input scaling and alignment,
        instead of starting afresh.
    callbacks : list of (name, skorch.callbacks.Callback) | None
        Extra skorch callbacks, e.g. ``[("ckpt", Checkpoint(dirname=...))]``.
        Gradient clipping, early stopping and the learning-rate schedule are
        already set by the parameters above.
    checkpoint_dir : path-like | None
        Folder for resumable training: after every epoch the whole training state
        is saved there atomically, in a sub-folder named by a hash of parameters and
        data; a later ``fit`` with the same ones (``max_epochs`` unless
        ``lr_schedule`` is set, ``verbose``, ``device``, ``callbacks`` may differ)
        continues and ends with the weights of a run never stopped (a finished run
        is restored; delete the folder to start over). Needs an integer ``random_state``; early stopping restarts its
        patience on resume, and extra ``callbacks`` must keep their own state.
    device : str
        Torch device, e.g. ``'cuda'``.
    accelerator : accelerate.Accelerator | None
        Train through Hugging Face ``accelerate`` (skorch's ``AccelerateMixin``):
        DDP over the processes of ``accelerate launch``, with its mixed precision
        and gradient accumulation; it places the model (``device`` is ignored).
        Each process trains on its share of every epoch; ``history_`` holds losses
        averaged over processes, so all record, and stop, alike. See :doc:`/distributed`.
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
        Alignment matrix (n_chans, n_chans) of each subject seen in fit or
        calibrated (key: the subject as a string) and the subject-agnostic
        one (key ``''``), or None with ``alignment=None``.
    subject_aware_ : bool
        Whether fit knew the subject of each epoch.
    signal_rms_ : float | None
        Amplitude of the EEG seen in fit (to warn of other units later).
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
                 clip_pretrained="auto", text_layer="penultimate", recon_weight=1.0,
                 align_weight=1.0, contrastive_weight=1.0, uncertainty_weighting=False,
                 learn_temperature=True, cosine_axis="features",
                 caption_template="a photo of a {}", image_column="image_path",
                 caption_column="caption", output="pooled", max_epochs=40,
                 batch_size=32, lr=3e-3, lr_schedule=None, weight_decay=1e-2, grad_clip=1.0,
                 augment_noise=0.5, augment_shift=4, augment_channel_drop=0.0, augment_mix=0.0,
                 alignment="euclidean", alignment_shrinkage=0.1, subject_column="subject",
                 validation_fraction=0.0, early_stopping=None, warm_start=False, callbacks=None,
                 checkpoint_dir=None, device="cpu", accelerator=None, cache_dir=None,
                 random_state=None, verbose=None):
        self.preset = preset
        self.module_kwargs = module_kwargs
        self.clip_model = clip_model
        self.clip_pretrained = clip_pretrained
        self.text_layer = text_layer
        self.recon_weight = recon_weight
        self.align_weight = align_weight
        self.contrastive_weight = contrastive_weight
        self.uncertainty_weighting = uncertainty_weighting
        self.learn_temperature = learn_temperature
        self.cosine_axis = cosine_axis
        self.caption_template = caption_template
        self.image_column = image_column
        self.caption_column = caption_column
        self.output = output
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.lr_schedule = lr_schedule
        self.weight_decay = weight_decay
        self.grad_clip = grad_clip
        self.augment_noise = augment_noise
        self.augment_shift = augment_shift
        self.augment_channel_drop = augment_channel_drop
        self.augment_mix = augment_mix
        self.alignment = alignment
        self.alignment_shrinkage = alignment_shrinkage
        self.subject_column = subject_column
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.warm_start = warm_start
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
        _param_checks.check_encoder_params(self)

    def _clip(self):
        from .clip import CLIPEmbedder, default_pretrained

        device = self.device if self.accelerator is None else str(self.accelerator.device)
        return CLIPEmbedder(self.clip_model, default_pretrained(self.clip_model,
                                                                self.clip_pretrained),
                            text_layer=self.text_layer, device=device, cache_dir=self.cache_dir)

    # -- fit -------------------------------------------------------------------
    def fit(self, X, y=None, images=None, captions=None, subjects=None):
        """Fit the autoencoder.

        Parameters
        ----------
        X : mne.Epochs | ndarray, shape (n_epochs, n_chans, n_times)
            EEG. With Epochs, stimuli come from ``X.metadata`` (image paths in
            ``image_column``, captions in ``caption_column`` or from the class name).
            Epochs not preloaded (``mne.read_epochs(fname, preload=False)``) and
            memory-mapped arrays (``np.load(fname, mmap_mode='r')``) are read a batch
            at a time, so the EEG may be larger than memory; what stays in memory is
            the model, the metadata and one CLIP target per distinct image and caption.
        y : array-like | None
            Class labels; used only to build captions when there are none
            (so the estimator works in a classification Pipeline).
        images : sequence | None
            One stimulus per epoch (uint8 (H, W, 3) arrays or paths); overrides
            the metadata.
        captions : sequence of str | None
            One caption per epoch; overrides the metadata.
        subjects : array-like | None
            Subject of each epoch (or one for all); overrides ``metadata[subject_column]``.

        Returns
        -------
        self : SynapseEncoder
        """
        self._validate_params()
        data, info, metadata = _inputs.get_data(X, lazy=True)
        n_epochs, n_chans, n_times = data.shape
        images, captions = _stimuli.resolve_stimuli(
            n_epochs, metadata, images, captions, y, self.image_column,
            self.caption_column, self.caption_template,
            need_images=self.contrastive_weight > 0, need_captions=self.align_weight > 0,
            without_images="set contrastive_weight=0 to train without images",
            without_captions="set align_weight=0")
        from ._training import module_kwargs_for, train_encoder
        from .clip import clip_targets

        warm = self.warm_start and hasattr(self, "net_")
        if warm:  # the fitted signal, scaling, alignment and network stay
            data = self._prepare(X, subjects)
        else:
            module_kwargs_for(self, n_chans, n_times, None)  # size errors before CLIP's work
            self.n_chans_, self.n_times_ = n_chans, n_times
            self.n_features_in_ = n_chans * n_times
            self.sfreq_ = None if info is None else float(info["sfreq"])
            self.ch_names_ = None if info is None else list(info["ch_names"])
        seed = int(np.random.RandomState(self.random_state).randint(2**31 - 1))
        image_table, text_table, unique_pairs, pair_of_epoch, sizes = clip_targets(
            self._clip(), images, captions, n_epochs)
        if not warm:
            self.signal_rms_ = _inputs.signal_rms(data)
            # Alignment and scaling read in chunks (the same way for arrays and lazy
            # data, so both give the same numbers); these passes also check for NaN.
            data = self._fit_alignment(data, metadata, subjects)
            self.scale_mean_, self.scale_std_ = _inputs.channel_stats(data)
            self.module_kwargs_ = module_kwargs_for(self, n_chans, n_times, self.sfreq_, sizes)
        self.net_ = train_encoder(self, data, pair_of_epoch, unique_pairs, image_table,
                                  text_table, seed, self.net_.module_ if warm else None)
        self.history_ = self.net_.history
        self.random_state_ = seed
        return self

    # -- inference ---------------------------------------------------------------
    def _forward(self, X, run, subjects=None):
        data = X if isinstance(X, AlignedEEG) else self._prepare(X, subjects)
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

    def transform(self, X, subjects=None):
        """Embed EEG in CLIP space.

        Parameters
        ----------
        X : mne.Epochs | ndarray, shape (n_epochs, n_chans, n_times)
            EEG with the channels and times seen in fit.
        subjects : array-like | str | int | None
            Subject of each epoch, or one for all (default:
            ``X.metadata[subject_column]``); see ``alignment``.

        Returns
        -------
        Z : ndarray
            ``Z_latent`` averaged over tokens, shape (n_epochs, embed_dim), or
            all tokens, (n_epochs, n_tokens, embed_dim), if ``output='tokens'``.
        """
        z = self.latent(X, subjects)
        return z.mean(axis=1) if self.output == "pooled" else z

    def latent(self, X, subjects=None):
        """Return ``Z_latent``, all tokens: (n_epochs, n_tokens, embed_dim).

        This is the conditioning Stage 2 gives to the diffusion U-Net.
        """
        return self._forward(X, lambda module, x: module.encode(x), subjects)

    def reconstruct(self, X, subjects=None):
        """Decode the EEG from its latent; same shape and units as ``X``."""
        data = self._prepare(X, subjects)
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
        return _persistence.encoder_files(self)

    def _card(self):
        return _model_card.encoder_card(self)

    @classmethod
    def _load_folder(cls, path, device="cpu"):
        return _persistence.restore_encoder(cls, path, device)

    @classmethod
    def paper(cls, **overrides):
        """The authors' Stage-1 configuration, with ``overrides``: their network,
        ViT-H-14 targets, losses and training, unaligned input, no augmentation.
        :doc:`/method` lists every value with the file of their code it comes from.
        """
        from ._paper import PAPER_STAGE1

        return cls(**{**PAPER_STAGE1, **overrides})

    @classmethod
    def from_official(cls, fname, n_head=64, device="cpu", verbose=None, **params):
        """A fitted encoder from the authors' Stage-1 file (their network and weights).

        Parameters
        ----------
        fname : path-like
            Their released encoder (``{"net": encoder state}``, e.g.
            ``EEGEncoder_BLIP2_69000.pth``) or their Stage-1 trainer's checkpoint
            (``{"net": autoencoder state, ...}``); read with ``weights_only=True``
            and strictly (see :func:`~mne_synapse.interop.official.load_official_stage1`).
        n_head : int
            Attention heads, which the weights do not reveal (64 for the released encoder).
        device, verbose
            As for the estimator.
        **params
            Parameters instead of :meth:`paper`'s (e.g. ``output``, or for training further).

        Returns
        -------
        encoder : SynapseEncoder
            Fitted on EEG of 128 electrodes x 440 samples, without standardisation
            or alignment (their network saw the stored values): :meth:`latent` is
            their encoder's output and, from a trainer's checkpoint,
            :meth:`reconstruct` their decoder's. Their encoder file holds no
            decoder (so ``recon_weight=0``). ``warm_start=True`` trains it further.
        """
        from .interop.official import official_encoder

        return official_encoder(cls, fname, n_head, device, verbose, params)
