"""What the Stage-1 autoencoders share as braindecode models.

Both autoencoders (ours, :class:`~mne_synapse.models.SynapseAutoencoder`, and
the authors', :class:`~mne_synapse.models.OfficialAutoencoder`) are
braindecode citizens through :class:`EEGLatentModule`: braindecode's
``EEGModuleMixin`` (signal properties ``n_chans``, ``n_times``, ``sfreq``,
``chs_info``, ``input_window_seconds`` inferred as braindecode infers them,
``n_outputs``, the Hugging Face hub mixin) and, with ``n_outputs``, a
classification head on the pooled latent, so that
``braindecode.EEGClassifier`` trains a CLIP-aligned encoder end to end.
"""

import warnings

from torch import nn

with warnings.catch_warnings():
    # Importing braindecode's model zoo makes some of its models warn about
    # MNE's montage names; nothing the user of our models can act on.
    warnings.filterwarnings("ignore", message="Montage name", category=FutureWarning)
    from braindecode.models.base import EEGModuleMixin

from ._checks import check_int

_DOCS_URL = "https://github.com/mne-tools/mne-synapse"


class EEGLatentModule(EEGModuleMixin, nn.Module):
    """A braindecode model whose input goes through ``Z_latent`` (base class).

    A subclass calls ``super().__init__`` with the signal properties first,
    defines ``encode(x) -> Z_latent (batch, n_tokens, embed_dim)`` and
    ``decode(z)``, and calls :meth:`_build_head` with ``embed_dim`` last.

    ``forward(x)`` is then:

    - without ``n_outputs``: ``(z, x_hat)``, the autoencoder (Stage 1 trains this;
      ``x_hat`` is None for a network without decoder, ``reconstructs = False``);
    - with ``n_outputs``: class scores ``(batch, n_outputs)`` from a linear
      head on the token mean of ``Z_latent`` (the CLIP-space embedding);
    - with ``return_features=True``: braindecode's feature dict,
      ``{"features": pooled latent (batch, embed_dim), "latent": z,
      "cls_token": None}``.
    """

    # False for a network without decoder (the authors' encoder file holds none).
    reconstructs = True

    _HUB_NOTES_TEMPLATE = """
    .. rubric:: Sharing

    braindecode's hub mixin saves and loads it:
    ``model.save_pretrained(folder)``, ``{name}.from_pretrained(folder or
    "user/repo")`` (strict: every weight must fit), ``model.push_to_hub("user/repo")``;
    ``{name}.from_pretrained(folder, n_outputs=k)`` puts a new head for ``k``
    classes on the loaded model. See :doc:`/sharing`.
    """

    def __init_subclass__(cls, **kwargs):
        # braindecode would label every subclass's hub card "library_name: braindecode".
        kwargs.setdefault("library_name", "mne-synapse")
        kwargs.setdefault("tags", ["eeg", "mne-synapse", "clip"])
        kwargs.setdefault("docs_url", _DOCS_URL)
        kwargs.setdefault("repo_url", _DOCS_URL)
        super().__init_subclass__(**kwargs)

    def _build_head(self, embed_dim):
        """Add the classification head when ``n_outputs`` is set (last, so other weights
        draw the same random numbers with or without it)."""
        if self._n_outputs is not None:
            check_int(self._n_outputs, "n_outputs")
        self._head_in = embed_dim
        self.final_layer = (None if self._n_outputs is None
                            else nn.Linear(embed_dim, self._n_outputs))

    def reset_head(self, n_outputs):
        """Replace the classification head by a new one for ``n_outputs`` classes.

        Parameters
        ----------
        n_outputs : int
            Number of classes.
        """
        check_int(n_outputs, "n_outputs")
        self._set_n_outputs(n_outputs)
        param = next(self.parameters())
        self.final_layer = nn.Linear(self._head_in, n_outputs, device=param.device,
                                     dtype=param.dtype)

    def forward(self, x, return_features=False):
        """Autoencode, classify, or return features (see the class description).

        Parameters
        ----------
        x : torch.Tensor, shape (batch, n_chans, n_times)
            The EEG windows.
        return_features : bool
            Return braindecode's feature dict instead.

        Returns
        -------
        out : tuple of torch.Tensor | torch.Tensor | dict
            ``(z, x_hat)`` without a head, class scores ``(batch, n_outputs)``
            with one, or the feature dict.
        """
        z = self.encode(x)
        if return_features:
            return {"features": z.mean(dim=1), "latent": z, "cls_token": None}
        if self.final_layer is None:
            return z, self.decode(z) if self.reconstructs else None
        return self.final_layer(z.mean(dim=1))

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *, n_outputs=None, **kwargs):
        """Load a model saved with ``save_pretrained`` (a folder or a hub id), strictly.

        Parameters
        ----------
        pretrained_model_name_or_path : path-like | str
            The folder, or a Hugging Face hub id (``'user/repo'``).
        n_outputs : int | None
            Classes of a new head put on the loaded model (e.g. to finetune a
            saved autoencoder as a classifier); None keeps the saved one.
        **kwargs
            Passed to :meth:`huggingface_hub.ModelHubMixin.from_pretrained`.

        Returns
        -------
        model : EEGLatentModule
            The model, in eval mode.
        """
        # Load exactly what was saved, with every weight required, then change the head:
        # braindecode's own loader ignores missing or unexpected weights by default.
        kwargs.setdefault("strict", True)
        model = super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        if n_outputs is not None and n_outputs != model._n_outputs:
            model.reset_head(n_outputs)
        return model
