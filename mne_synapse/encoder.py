"""Stage 1 of SYNAPSE as a scikit-learn transformer: ``SynapseEncoder``."""

import json
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from . import _inputs
from .utils import atomic_write, hash_file, is_verbose

_FORMAT_VERSION = 1
DEFAULT_CLIP_WEIGHTS = {"tiny": "synthetic", "ViT-H-14": "laion2b_s32b_b79k"}


class SynapseEncoder(TransformerMixin, BaseEstimator):
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
    validation_fraction : float
        Fraction of the *images* held out for validation (image-disjoint);
        0 trains on everything.
    early_stopping : int | None
        Patience in epochs on the validation loss (needs validation_fraction > 0).
    callbacks : list of (name, skorch.callbacks.Callback) | None
        Extra skorch callbacks, e.g. ``[("ckpt", Checkpoint(dirname=...)),
        ("lr", LRScheduler("CosineAnnealingLR", T_max=40))]``. Gradient
        clipping and early stopping are already set by the parameters above.
    device : str
        Torch device, e.g. ``'cuda'``.
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
        Per-channel standardisation learned in fit.
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
                 augment_noise=0.5, augment_shift=4, validation_fraction=0.0,
                 early_stopping=None, callbacks=None,
                 device="cpu", cache_dir=None, random_state=None, verbose=None):
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
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.callbacks = callbacks
        self.device = device
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

        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {self.preset!r}.")
        if self.output not in ("pooled", "tokens"):
            raise ValueError(f"output must be 'pooled' or 'tokens', got {self.output!r}.")
        for name in ("recon_weight", "align_weight", "contrastive_weight", "lr",
                     "weight_decay", "grad_clip", "augment_noise", "augment_shift"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}.")
        if self.recon_weight + self.align_weight + self.contrastive_weight == 0:
            raise ValueError("At least one of the loss weights must be > 0.")
        for name in ("max_epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}.")
        if not 0 <= self.validation_fraction < 1:
            raise ValueError("validation_fraction must be in [0, 1).")
        if self.early_stopping is not None and self.validation_fraction == 0:
            raise ValueError("early_stopping needs validation_fraction > 0.")

    def _clip(self):
        from .clip import CLIPEmbedder

        pretrained = self.clip_pretrained
        if pretrained == "auto":
            if self.clip_model not in DEFAULT_CLIP_WEIGHTS:
                raise ValueError(
                    f"No default weights for CLIP model {self.clip_model!r}; pass "
                    "clip_pretrained= (an OpenCLIP tag or a checkpoint path)."
                )
            pretrained = DEFAULT_CLIP_WEIGHTS[self.clip_model]
        return CLIPEmbedder(self.clip_model, pretrained, device=self.device,
                            cache_dir=self.cache_dir)

    def _scale(self, data):
        return (data - self.scale_mean_) / self.scale_std_

    # -- fit -------------------------------------------------------------------
    def fit(self, X, y=None, images=None, captions=None):
        """Fit the autoencoder.

        Parameters
        ----------
        X : mne.Epochs | ndarray, shape (n_epochs, n_chans, n_times)
            EEG. With Epochs, stimuli come from ``X.metadata`` (image paths in
            ``image_column``, captions in ``caption_column`` or from the class
            name).
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
        from skorch.callbacks import EarlyStopping, GradientNormClipping

        from .losses import SynapseLoss
        from .models import SynapseAutoencoder

        self._validate_params()
        data, info, metadata = _inputs.get_data(X)
        n_epochs, n_chans, n_times = data.shape
        if y is not None:
            y = np.asarray(y)
        if y is not None and len(y) != n_epochs:
            raise ValueError(f"y has {len(y)} labels for {n_epochs} epochs.")
        images, captions = _inputs.resolve_stimuli(
            n_epochs, metadata, images, captions, y, self.image_column,
            self.caption_column, self.caption_template,
            need_images=self.contrastive_weight > 0, need_captions=self.align_weight > 0,
        )
        self.n_chans_, self.n_times_ = n_chans, n_times
        self.n_features_in_ = n_chans * n_times
        self.sfreq_ = None if info is None else float(info["sfreq"])
        self.ch_names_ = None if info is None else list(info["ch_names"])

        import torch

        from ._training import ImageDisjointSplit, SynapseNet

        seed = int(np.random.RandomState(self.random_state).randint(2**31 - 1))
        clip = self._clip()
        image_table, image_idx = self._embed(images, clip.embed_images, n_epochs, torch)
        text_table, text_idx = self._embed(captions, clip.embed_caption_tokens, n_epochs, torch)
        if image_table is not None or text_table is not None:
            n_tokens, embed_dim = clip.context_length, clip.text_width
            if image_table is not None and clip.embed_dim != embed_dim:
                raise ValueError(
                    f"CLIP model {self.clip_model} has image embeddings of size "
                    f"{clip.embed_dim} but text states of size {embed_dim}; "
                    "SYNAPSE needs them equal (e.g. ViT-H-14: 1024 and 1024)."
                )
            sizes = dict(n_tokens=n_tokens, embed_dim=embed_dim)
        else:
            sizes = {}
        pairs = np.stack([image_idx, text_idx], axis=1)
        unique_pairs, pair_of_epoch = np.unique(pairs, axis=0, return_inverse=True)

        self.scale_mean_ = data.mean(axis=(0, 2), keepdims=True)[0]
        self.scale_std_ = data.std(axis=(0, 2), keepdims=True)[0] + np.float32(1e-12)
        self.module_kwargs_ = dict(n_chans=n_chans, n_times=n_times, sfreq=self.sfreq_,
                                   **sizes, **(self.module_kwargs or {}))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = SynapseAutoencoder.from_preset(self.preset, **self.module_kwargs_)
            callbacks = [("grad_clip", GradientNormClipping(self.grad_clip or np.inf)),
                         *(self.callbacks or [])]
            train_split = None
            if self.validation_fraction > 0:
                groups = image_idx if image_table is not None else text_idx
                train_split = ImageDisjointSplit(self.validation_fraction, groups, seed)
                if self.early_stopping:
                    callbacks.append(("early_stopping", EarlyStopping(
                        patience=self.early_stopping, load_best=True)))
            net = SynapseNet(
                module, criterion=SynapseLoss,
                criterion__recon_weight=self.recon_weight,
                criterion__align_weight=self.align_weight,
                criterion__contrastive_weight=self.contrastive_weight,
                criterion__uncertainty_weighting=self.uncertainty_weighting,
                optimizer=torch.optim.AdamW, lr=self.lr,
                optimizer__weight_decay=self.weight_decay,
                max_epochs=self.max_epochs, batch_size=self.batch_size,
                iterator_train__shuffle=True,
                iterator_train__generator=torch.Generator().manual_seed(seed),
                train_split=train_split, callbacks=callbacks, device=self.device,
                verbose=int(is_verbose(self.verbose)),
            )
            net.image_table_, net.text_table_ = image_table, text_table
            net.augment_noise, net.augment_shift = self.augment_noise, int(self.augment_shift)
            net.pair_image_ = torch.as_tensor(unique_pairs[:, 0])
            net.pair_text_ = torch.as_tensor(unique_pairs[:, 1])
            net.fit(self._scale(data), pair_of_epoch.astype(np.int64))
        # The CLIP tables are only needed to train; dropping them keeps the
        # fitted estimator small to pickle.
        net.image_table_ = net.text_table_ = None
        if train_split is not None:
            train_split.groups = None
        self.net_ = net
        self.history_ = net.history
        self.random_state_ = seed
        return self

    @staticmethod
    def _embed(items, embed_fn, n_epochs, torch):
        """Unique-item table of embeddings and each epoch's row in it."""
        if items is None:
            return None, np.zeros(n_epochs, dtype=np.int64)
        from .clip import _content_hash, read_image

        keys = [str(v) if isinstance(v, (str, Path)) else _content_hash(read_image(v))
                for v in items]
        _, first, inverse = np.unique(np.asarray(keys), return_index=True,
                                      return_inverse=True)
        table = embed_fn([items[i] for i in first])
        return torch.as_tensor(table, dtype=torch.float32), inverse.astype(np.int64)

    # -- inference ---------------------------------------------------------------
    def _forward(self, X, run):
        check_is_fitted(self, "net_")
        data, info, _ = _inputs.get_data(X)
        _inputs.check_same_signal(data, info, dict(
            n_chans=self.n_chans_, n_times=self.n_times_, sfreq=self.sfreq_,
            ch_names=self.ch_names_))
        import torch

        module = self.net_.module_.eval()
        device = next(module.parameters()).device
        x = torch.as_tensor(self._scale(data))
        outputs = []
        with torch.no_grad():
            for start in range(0, len(x), max(self.batch_size, 64)):
                batch = x[start:start + max(self.batch_size, 64)].to(device)
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
        x_hat = self._forward(X, lambda module, x: module.decode(module.encode(x)))
        return x_hat * self.scale_std_ + self.scale_mean_

    # -- persistence ---------------------------------------------------------------
    def save(self, path):
        """Save the fitted encoder to a folder: ``config.json`` + ``model.safetensors``.

        Weights are written first and the config (which stores their SHA-256)
        last, each atomically, so an interrupted save never yields a folder
        that loads with mismatched parts.
        """
        from safetensors.torch import save

        check_is_fitted(self, "net_")
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.net_.module_.state_dict().items()}
        atomic_write(path / "model.safetensors", lambda fid: fid.write(save(state)))
        config = dict(
            format_version=_FORMAT_VERSION, estimator="SynapseEncoder",
            params={k: v for k, v in self.get_params().items() if k != "cache_dir"},
            module_kwargs=self.module_kwargs_, n_chans=self.n_chans_, n_times=self.n_times_,
            sfreq=self.sfreq_, ch_names=self.ch_names_,
            scale_mean=self.scale_mean_.ravel().tolist(),
            scale_std=self.scale_std_.ravel().tolist(),
            weights_sha256=hash_file(path / "model.safetensors"),
        )
        atomic_write(path / "config.json", lambda fid: fid.write(json.dumps(config, indent=1)),
                     mode="w")
        return path

    @classmethod
    def load(cls, path, device="cpu"):
        """Load an encoder saved with :meth:`save` (no unpickling involved)."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        from .models import SynapseAutoencoder

        path = Path(path)
        for name in ("config.json", "model.safetensors"):
            if not (path / name).is_file():
                raise FileNotFoundError(f"{path / name} does not exist; is {path} a saved encoder?")
        try:
            config = json.loads((path / "config.json").read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path / 'config.json'} is corrupt: {err}") from err
        if config.get("estimator") != "SynapseEncoder" or config.get("format_version") != _FORMAT_VERSION:
            raise ValueError(
                f"{path} holds a {config.get('estimator')} saved in format "
                f"{config.get('format_version')}; this version reads SynapseEncoder "
                f"format {_FORMAT_VERSION}."
            )
        if hash_file(path / "model.safetensors") != config["weights_sha256"]:
            raise ValueError(
                f"{path / 'model.safetensors'} does not match the hash in config.json "
                "(truncated or overwritten); save the encoder again."
            )
        params = dict(config["params"], device=device)
        self = cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in params.items()})
        module = SynapseAutoencoder.from_preset(self.preset, **config["module_kwargs"])
        try:
            module.load_state_dict(load_file(path / "model.safetensors"))
        except (SafetensorError, RuntimeError) as err:
            raise ValueError(f"Weights in {path} do not fit the saved architecture: {err}") from err
        from ._training import SynapseNet
        from .losses import SynapseLoss

        self.net_ = SynapseNet(module, criterion=SynapseLoss, device=device).initialize()
        self.n_chans_, self.n_times_ = config["n_chans"], config["n_times"]
        self.n_features_in_ = self.n_chans_ * self.n_times_
        self.sfreq_, self.ch_names_ = config["sfreq"], config["ch_names"]
        self.module_kwargs_ = config["module_kwargs"]
        self.scale_mean_ = np.asarray(config["scale_mean"], np.float32)[:, None]
        self.scale_std_ = np.asarray(config["scale_std"], np.float32)[:, None]
        self.history_ = self.net_.history
        return self
