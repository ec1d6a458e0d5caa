"""U-Net configurations of the Stable Diffusion releases SYNAPSE builds on.

Shipped as the ``unet/config.json`` files of the public checkpoints, so that
the architectures can be built (with random weights) without a download.
"""

import json
from importlib import resources

# Short name -> (shipped file, the checkpoint whose unet/config.json it copies).
UNET_CONFIGS = {
    "sd21": ("sd21_unet.json", "stabilityai/stable-diffusion-2-1"),
    "sd15": ("sd15_unet.json", "runwayml/stable-diffusion-v1-5"),
}


def load_unet_config(name):
    """Read the ``UNet2DConditionModel`` configuration of a Stable Diffusion release.

    Parameters
    ----------
    name : str
        ``"sd21"`` (Stable Diffusion 2.1, the paper's base) or ``"sd15"``.

    Returns
    -------
    config : dict
        The configuration, for ``UNet2DConditionModel.from_config(config)``
        (random weights; load the checkpoint's weights separately).
    """
    if name not in UNET_CONFIGS:
        raise ValueError(f"Unknown U-Net configuration {name!r}; known: {sorted(UNET_CONFIGS)}.")
    path = resources.files("mne_synapse").joinpath("configs", UNET_CONFIGS[name][0])
    return json.loads(path.read_text(encoding="utf-8"))
