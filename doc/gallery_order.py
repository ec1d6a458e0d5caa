"""Order of the examples in the gallery: from the data to the real models."""

from pathlib import Path

ORDER = [
    "plot_synthetic_data.py",
    "plot_encoder_latents.py",
    "plot_decoding_cross_validation.py",
    "plot_leave_one_subject_out.py",
    "plot_generate_images.py",
    "plot_own_data.py",
    "cvpr40_sd21_recipe.py",
]


def example_order(filename):
    """sphinx-gallery ``within_subsection_order`` key; unlisted examples go last."""
    name = Path(filename).name
    return (ORDER.index(name) if name in ORDER else len(ORDER), name)
