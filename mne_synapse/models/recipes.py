"""Which U-Net parameters Stage 2 trains: named recipes.

A recipe is a set of substrings; a U-Net parameter is trained when its name
contains one of them. The EEG adapter (:class:`~mne_synapse.models.EEGAdapter`)
is a separate module and always trainable; recipes only deal with the U-Net.
"""

# The new to_k_ip / to_v_ip live at "...attn2.processor.to_k_ip.weight", so
# "attn2" covers them in the paper recipe.
RECIPES = {
    # SYNAPSE: cross-attentions, time embedding + resnets' time_emb_proj, norm2.
    "paper": ("attn2", "time", "norm2"),
    # Only what reads the context: the new k/v and the cross-attentions' k/v.
    "lean": (".to_k_ip.", ".to_v_ip.", "attn2.to_k.", "attn2.to_v."),
}


def _recipe_names(unet, recipe):
    if recipe not in RECIPES:
        raise ValueError(f"Unknown recipe {recipe!r}; known recipes: {sorted(RECIPES)}.")
    names = [name for name, _ in unet.named_parameters()]
    # Without the EEG processors a recipe would silently train a U-Net that
    # cannot read the adapter tokens.
    if not any(".to_k_ip." in name for name in names):
        raise ValueError("The U-Net has no to_k_ip / to_v_ip: call install_eeg_processors "
                         "before applying a recipe.")
    keys = RECIPES[recipe]
    return [name for name in names if any(key in name for key in keys)]


def apply_recipe(unet, recipe):
    """Make exactly a recipe's U-Net parameters trainable.

    Parameters
    ----------
    unet : diffusers.UNet2DConditionModel
        The U-Net, with the EEG processors installed
        (:func:`~mne_synapse.models.install_eeg_processors`); modified in place.
    recipe : str
        A key of :data:`RECIPES`: ``"paper"`` (names containing ``attn2``,
        ``time`` or ``norm2``, which includes the new ``to_k_ip`` / ``to_v_ip``)
        or ``"lean"`` (the new ``to_k_ip`` / ``to_v_ip`` and the
        cross-attentions' ``to_k`` / ``to_v``).

    Returns
    -------
    names : list of str
        The names of the trainable parameters; every other U-Net parameter
        gets ``requires_grad=False``.
    """
    names = _recipe_names(unet, recipe)
    trainable = set(names)
    for name, param in unet.named_parameters():
        param.requires_grad_(name in trainable)
    return names


def count_recipe(unet, recipe):
    """Count the scalar U-Net parameters a recipe trains, without changing the U-Net.

    Parameters
    ----------
    unet : diffusers.UNet2DConditionModel
        The U-Net, with the EEG processors installed.
    recipe : str
        A key of :data:`RECIPES`.

    Returns
    -------
    n : int
        The number of trainable scalars (the adapter's are not included).
    """
    params = dict(unet.named_parameters())
    return sum(params[name].numel() for name in _recipe_names(unet, recipe))
