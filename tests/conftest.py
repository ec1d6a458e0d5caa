import os

# No network in CI: a download attempt must fail at once, not hang.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import pytest  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Tests never write into the user's cache folder."""
    if "MNE_SYNAPSE_CACHE" not in os.environ:
        os.environ["MNE_SYNAPSE_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """Tiny models run fastest on one thread, and the 2-core test machines are shared."""
    import torch

    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n_threads)


@pytest.fixture(scope="session")
def small_synthetic(_isolated_cache):
    """A small synthetic data set: 5 classes, 6 images each, 2 subjects."""
    from mne_synapse.datasets import make_synthetic

    return make_synthetic(
        n_classes=5, n_images_per_class=6, n_subjects=2, n_repetitions=2,
        n_times=64, sfreq=128.0, random_state=0,
    )
