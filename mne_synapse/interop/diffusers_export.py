"""Export a fitted ``EEGImageGenerator`` to a folder stock diffusers uses without mne-synapse.

Our Stage 2 is an IP-Adapter in all but name: ``f_adapt`` (mean over the
tokens of ``Z_latent``, ``Linear(D, 4 D)``, reshape to 4 tokens, LayerNorm) is
diffusers' ``ImageProjection`` fed with the token mean, and the decoupled
cross-attention ``Attn(Q, K, V) + scale * Attn(Q, K_ip, V_ip)`` is its
``IPAdapterAttnProcessor2_0``. So the export is a plain Stable Diffusion
folder (the finetuned U-Net, the VAE, the scheduler, no text encoder) plus
``ip_adapter.safetensors`` in diffusers' IP-Adapter file layout:

- ``image_proj.proj.weight`` / ``.bias``, ``image_proj.norm.weight`` / ``.bias``:
  ``f_adapt`` (diffusers renames ``proj`` to ``image_embeds`` on load, and
  reads 4 tokens whenever ``proj.weight`` is there);
- ``ip_adapter.{i}.to_k_ip.weight``, ``ip_adapter.{i}.to_v_ip.weight``: the new
  key/value projections, ``i = 1, 3, 5, ...`` over the cross-attention layers
  in ``unet.attn_processors`` order (how ``UNet2DConditionModel`` numbers
  them when it loads IP-Adapter weights).

With the authors' unconditional context ``[0, f_adapt(0)]``
(``unconditional_context='zero_latent'``) the stock pipeline, given
``prompt_embeds=Z_latent``, a zero negative, and the token mean as image
embedding (zeros for the negative), one epoch per call, computes what
:meth:`~mne_synapse.EEGImageGenerator.generate` computes.
"""

from pathlib import Path

IP_ADAPTER_WEIGHTS = "ip_adapter.safetensors"
# diffusers' IP-Adapter loader reads this many tokens from an `image_proj.proj` layout.
_DIFFUSERS_IP_TOKENS = 4

SNIPPET = '''import torch
from diffusers import StableDiffusionPipeline

pipe = StableDiffusionPipeline.from_pretrained(
    folder, text_encoder=None, tokenizer=None, safety_checker=None,
    requires_safety_checker=False)
pipe.load_ip_adapter(folder, subfolder="", weight_name="ip_adapter.safetensors",
                     image_encoder_folder=None){scale}
z = torch.as_tensor(encoder.latent(epochs))  # Z_latent, (n_epochs, {n_tokens}, {dim})
generator = torch.Generator().manual_seed(0)
images = []
for z_i in z.split(1):  # one epoch per call (see below)
    pooled = z_i.mean(1)
    images += pipe(prompt_embeds=z_i, negative_prompt_embeds=torch.zeros_like(z_i),
                   ip_adapter_image_embeds=[torch.cat([torch.zeros_like(pooled), pooled])[:, None]],
                   generator=generator, num_images_per_prompt=1, num_inference_steps={steps},
                   guidance_scale={guidance}, height={size}, width={size}).images'''
ONE_EPOCH_PER_CALL = (
    "One epoch per call: diffusers' pipeline repeats `ip_adapter_image_embeds` for every "
    "prompt of a call (it expects one image prompt per call), so a call with several "
    "epochs would mix their adapter tokens. With one `torch.Generator` passed to every "
    "call, the images are those of `EEGImageGenerator.generate(epochs, n_images=k, "
    "random_state=0)` (with `num_images_per_prompt=k`), to float precision.")


def ip_adapter_state(unet, adapter):
    """``f_adapt`` and the decoupled k/v of a finetuned U-Net, in diffusers' IP-Adapter layout.

    Parameters
    ----------
    unet : diffusers.UNet2DConditionModel
        The U-Net with :class:`~mne_synapse.models.EEGAttnProcessor` s installed.
    adapter : EEGAdapter
        ``f_adapt``.

    Returns
    -------
    state : dict of str to torch.Tensor
        The tensors of ``ip_adapter.safetensors`` (CPU, contiguous).

    Raises
    ------
    ValueError
        If diffusers' IP-Adapter cannot compute what these modules compute
        (another token count, biases, normalised cross-attention inputs, a
        cross-attention without an EEG processor).
    """
    from ..models import EEGAttnProcessor

    if adapter.n_adapt_tokens != _DIFFUSERS_IP_TOKENS:
        raise ValueError(f"diffusers' IP-Adapter reads {_DIFFUSERS_IP_TOKENS} adapter tokens; "
                         f"this generator has n_adapt_tokens={adapter.n_adapt_tokens}, which "
                         "stock diffusers cannot load.")
    state = {f"image_proj.{k}": v for k, v in adapter.state_dict().items()}
    key_id = 1
    for name, proc in unet.attn_processors.items():
        if name.endswith("attn1.processor"):
            continue  # diffusers numbers every other layer: the cross-attentions
        layer = unet.get_submodule(name.rsplit(".", 1)[0])
        if not isinstance(proc, EEGAttnProcessor):
            raise ValueError(f"{name} is a {type(proc).__name__}, not an EEGAttnProcessor; "
                             "export a U-Net prepared by EEGImageGenerator.")
        if proc.to_k_ip.bias is not None or proc.to_v_ip.bias is not None or layer.norm_cross:
            raise ValueError(f"{name} has biased k/v projections or normalises its context; "
                             "diffusers' IP-Adapter processor has neither.")
        width = _block_width(unet, name)
        if proc.to_k_ip.out_features != width:
            raise ValueError(f"{name} projects to {proc.to_k_ip.out_features} features but "
                             f"diffusers' loader builds it with its block's width {width}.")
        state[f"ip_adapter.{key_id}.to_k_ip.weight"] = proc.to_k_ip.weight
        state[f"ip_adapter.{key_id}.to_v_ip.weight"] = proc.to_v_ip.weight
        key_id += 2
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


def _block_width(unet, name):
    """The width diffusers' IP-Adapter loader gives the new k/v of the layer ``name``."""
    widths = unet.config.block_out_channels
    block, _, rest = name.partition(".")
    if block == "mid_block":
        return widths[-1]
    index = int(rest.split(".")[0])
    return widths[index] if block == "down_blocks" else widths[::-1][index]


def stock_unet(unet):
    """The finetuned U-Net with diffusers' own attention processors, sharing its weights."""
    import torch

    state = {k: v for k, v in unet.state_dict().items() if ".processor." not in k}
    with torch.device("meta"):  # no memory for a second copy of the weights
        stock = type(unet).from_config(unet.config)
    stock.load_state_dict(state, strict=True, assign=True)
    return stock.eval()


def export_diffusers(generator, folder, overwrite=False):
    """Write a folder that stock diffusers uses without mne-synapse.

    The folder holds ``model_index.json``, ``unet/`` (the U-Net with the
    finetuned recipe weights), ``vae/``, ``scheduler/`` (the generator's
    sampling scheduler), ``ip_adapter.safetensors`` (``f_adapt`` and the
    decoupled k/v in diffusers' IP-Adapter layout, see the module
    description) and a ``README.md`` with the calls that use it. It is
    written in a temporary folder beside ``folder`` and renamed into place:
    nothing half written is ever at ``folder``.

    Parameters
    ----------
    generator : EEGImageGenerator
        A fitted generator, with ``n_adapt_tokens=4``.
    folder : path-like
        The folder to write; it must not exist or be empty, unless ``overwrite``.
    overwrite : bool
        Replace an existing folder (as a whole, once the new one is written).

    Returns
    -------
    folder : pathlib.Path
        The folder (on the main process of a distributed run; others write nothing).

    Raises
    ------
    FileExistsError
        If ``folder`` holds files and ``overwrite`` is False.
    ValueError
        If stock diffusers cannot compute what the generator computes (see
        :func:`ip_adapter_state`).

    Notes
    -----
    The stock pipeline reproduces :meth:`~mne_synapse.EEGImageGenerator.generate`
    when the generator uses ``unconditional_context='zero_latent'`` (the
    authors' ``[0, f_adapt(0)]``): with ``'zeros'`` the negative branch of
    guidance differs. ``generate(epochs, random_state=s)`` draws its noise from
    ``torch.Generator().manual_seed(s)``, so the same seed gives the same
    images, when the stock pipeline is called one epoch at a time with that
    one generator (its ``ip_adapter_image_embeds`` hold one image prompt per
    call: it repeats them for every prompt of a call).
    """
    from safetensors.torch import save_file
    from sklearn.utils.validation import check_is_fitted

    from .._finetuning import sampling_pipeline
    from ..utils import is_main_process, write_folder

    check_is_fitted(generator, "unet_")
    folder = Path(folder)
    ip_state = ip_adapter_state(generator.unet_, generator.adapter_)  # refuses before writing
    if not is_main_process():
        return folder
    n_tokens = getattr(generator.encoder_, "module_kwargs_", {}).get("n_tokens")
    dim = ip_state["image_proj.norm.weight"].shape[0]
    scales = {proc.scale for proc in generator.unet_.attn_processors.values()
              if hasattr(proc, "to_k_ip")}
    scale = scales.pop() if len(scales) == 1 else None

    def write(tmp):
        pipe = sampling_pipeline(generator.vae_, stock_unet(generator.unet_),
                                 generator.noise_scheduler_, generator.scheduler)
        pipe.save_pretrained(tmp, safe_serialization=True)
        save_file(ip_state, str(tmp / IP_ADAPTER_WEIGHTS))
        (tmp / "README.md").write_text(_readme(generator, n_tokens, dim, scale))

    return write_folder(folder, write, overwrite=overwrite)


def _readme(generator, n_tokens, dim, scale):
    from huggingface_hub import ModelCardData

    from .. import __version__
    from .._model_card import hub_id

    data = ModelCardData(library_name="diffusers", base_model=hub_id(generator.base_id_),
                         tags=["eeg", "eeg-to-image", "stable-diffusion", "ip-adapter",
                               "mne-synapse"])
    set_scale = "" if scale == 1.0 else (
        f"\npipe.set_ip_adapter_scale({scale})  # the generator's adapter_scale"
        if scale is not None else "\n# set each layer's IP scale as in the generator")
    snippet = SNIPPET.format(
        scale=set_scale, n_tokens=n_tokens or "n_tokens", dim=dim,
        steps=generator.num_inference_steps, guidance=generator.guidance_scale,
        size=generator.image_size_)
    warning = [] if generator.unconditional_context == "zero_latent" else [
        "This generator was finetuned with an all-zero unconditional context; the stock "
        "pipeline's is `[0, f_adapt(0)]` (a zero image embedding), so its guided images "
        "differ from `generate`'s.", ""]
    return "\n".join([
        "---", data.to_yaml(), "---", "",
        "# SYNAPSE EEG-to-image generator, for stock diffusers", "",
        f"Exported by mne-synapse {__version__} from an `EEGImageGenerator` finetuned from "
        f"{generator.base_id_} (recipe {generator.recipe!r}, unconditional context "
        f"{generator.unconditional_context!r}). The EEG encoder is not in this folder: "
        "`encoder.latent(epochs)` (a fitted mne-synapse `SynapseEncoder`) gives `Z_latent`.",
        "", "```python", snippet, "```", "", ONE_EPOCH_PER_CALL, "", *warning])
