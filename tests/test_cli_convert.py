"""``mne-synapse convert-official`` (cli/convert.py)."""

from mne_synapse.cli import main


def test_convert_official_writes_an_encoder_folder(tmp_path, capsys):
    import numpy as np
    import torch

    from mne_synapse import SynapseEncoder
    from mne_synapse.models import OfficialEncoder

    torch.manual_seed(0)
    theirs = OfficialEncoder().eval()
    torch.save({"net": theirs.state_dict()}, tmp_path / "EEGEncoder_BLIP2_69000.pth")
    assert main(["convert-official", "--checkpoint",
                 str(tmp_path / "EEGEncoder_BLIP2_69000.pth"), "--output", str(tmp_path / "enc")]) == 0
    out = capsys.readouterr().out
    assert "n_layer=2, n_head=64, 27,590,878 parameters, 128 x 440 EEG -> 77 x 1024" in out
    encoder = SynapseEncoder.load(tmp_path / "enc")
    x = torch.randn(2, 128, 440)
    with torch.no_grad():
        np.testing.assert_allclose(encoder.latent(x.numpy()), theirs(x).numpy(), atol=1e-6)
    torch.save({"net": {}}, tmp_path / "empty.pth")
    assert main(["convert-official", "--checkpoint", str(tmp_path / "empty.pth"),
                 "--output", str(tmp_path / "bad")]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "does not hold the authors'" in err
    assert not (tmp_path / "bad").exists()
    assert main(["convert-official", "--checkpoint", str(tmp_path / "empty.pth"),
                 "--encoder", str(tmp_path / "enc"), "--output", str(tmp_path / "bad")]) == 2
    assert "--encoder goes with a Stage-2 checkpoint-N folder" in capsys.readouterr().err
