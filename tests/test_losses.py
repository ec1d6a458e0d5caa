"""Tests of the Stage-1 losses."""

import math

import pytest
import torch

from mne_synapse.losses import (SynapseLoss, alignment_loss, info_nce,
                                reconstruction_loss, soft_signal_dice,
                                token_cosine_distance)



def _batch(seed=0, b=6, n_tokens=5, dim=8, n_chans=4, n_times=20):
    g = torch.Generator().manual_seed(seed)
    return dict(z=torch.randn(b, n_tokens, dim, generator=g),
                x=torch.randn(b, n_chans, n_times, generator=g),
                text=torch.randn(b, n_tokens, dim, generator=g),
                img=torch.randn(b, dim, generator=g),
                ids=torch.arange(b))


def test_sdsc_identical_and_flipped():
    x = _batch()["x"]
    same = soft_signal_dice(x, x)
    flipped = soft_signal_dice(-x, x)
    other = soft_signal_dice(torch.randn_like(x), x)
    assert 0.97 < same <= 1.0
    assert 0.0 <= flipped < 0.03
    assert flipped < other < same
    with pytest.raises(ValueError, match="same shape"):
        soft_signal_dice(x[:, :2], x)


def test_reconstruction_loss():
    x = _batch()["x"]
    assert reconstruction_loss(x, x) < 0.03
    assert reconstruction_loss(torch.randn_like(x), x) > 1.0


def test_alignment_loss_and_scale_invariant_cosine():
    d = _batch()
    z, text = d["z"], d["text"]
    assert alignment_loss(text, text).item() == pytest.approx(0.0, abs=1e-6)
    assert alignment_loss(z, text) > 1.0
    cos = token_cosine_distance(z, text)
    torch.testing.assert_close(token_cosine_distance(3.7 * z, 0.2 * text), cos)
    # MSE is not scale invariant, so the full loss changes with scale.
    assert alignment_loss(3.7 * z, text) > alignment_loss(z, text)
    with pytest.raises(ValueError, match="same shape"):
        alignment_loss(z, text[:, :-1])


def test_info_nce_matched_vs_shuffled():
    d = _batch()
    img = d["img"]
    z = img + 0.1 * torch.randn_like(img)
    matched = info_nce(z, img, math.log(1 / 0.07))
    shuffled = info_nce(z[torch.randperm(len(z), generator=torch.Generator().manual_seed(1))],
                        img, math.log(1 / 0.07))
    assert matched < shuffled
    # A 3-D latent is mean-pooled over tokens.
    torch.testing.assert_close(info_nce(z[:, None].expand(-1, 3, -1), img, 2.0),
                               info_nce(z, img, 2.0))
    with pytest.raises(ValueError, match="must match"):
        info_nce(z[:, :4], img, 2.0)


def test_info_nce_same_image_not_penalised():
    # Rows 0 and 1 are two trials of the same image, perfectly aligned.
    img = torch.eye(4) * 5
    img[1] = img[0]
    z = img.clone()
    distinct = info_nce(z, img, math.log(100), same_image=torch.tensor([0, 1, 2, 3]))
    grouped = info_nce(z, img, math.log(100), same_image=torch.tensor([7, 7, 2, 3]))
    assert grouped.item() == pytest.approx(0.0, abs=1e-4)
    # With distinct ids two of four rows (each direction) cannot be told apart.
    assert distinct.item() == pytest.approx(0.5 * math.log(2), rel=1e-3)
    # With exactly identical image embeddings the ids change the value only:
    # standard InfoNCE already treats identical columns alike (see docstring).
    z_off = z.clone()
    z_off[0, 2] += 0.5
    z_off[1, 3] += 1.5
    grads = []
    for ids in ([0, 1, 2, 3], [7, 7, 2, 3]):
        zz = z_off.clone().requires_grad_(True)
        info_nce(zz, img, math.log(10), same_image=torch.tensor(ids)).backward()
        grads.append(zz.grad)
    assert grads[0].abs().max() > 1e-3
    torch.testing.assert_close(grads[0], grads[1])
    # Ids do change the objective when one id's embeddings differ (e.g.
    # augmented views): distinct targets are met here, grouped ones are not.
    img2 = torch.eye(4) * 5
    grouped2 = info_nce(img2, img2, math.log(100), same_image=torch.tensor([7, 7, 2, 3]))
    distinct2 = info_nce(img2, img2, math.log(100), same_image=torch.tensor([0, 1, 2, 3]))
    assert distinct2.item() < 1e-4 and grouped2.item() > 0.1
    with pytest.raises(ValueError, match="same_image"):
        info_nce(z, img, 1.0, same_image=torch.tensor([0, 1]))


def test_synapse_loss_terms_and_logit_scale():
    d = _batch()
    crit = SynapseLoss()
    assert crit.logit_scale.item() == pytest.approx(math.log(1 / 0.07), abs=1e-4)
    assert crit.logit_scale.requires_grad and crit.log_vars is None
    assert not SynapseLoss(learn_temperature=False).logit_scale.requires_grad
    x_hat = d["x"] + 0.1
    total = crit(d["z"], x_hat, d["x"], d["text"], d["img"], d["ids"])
    terms = crit.last_terms
    assert set(terms) == {"recon", "align", "contrastive", "total"}
    assert all(isinstance(v, float) for v in terms.values())
    assert terms["recon"] == pytest.approx(reconstruction_loss(x_hat, d["x"]).item())
    assert total.item() == pytest.approx(terms["recon"] + terms["align"]
                                         + terms["contrastive"], rel=1e-5)
    # The scale is capped at 100 when used.
    crit.logit_scale.data.fill_(10.0)
    capped = info_nce(d["z"], d["img"], math.log(100), d["ids"]).item()
    crit(d["z"], x_hat, d["x"], d["text"], d["img"], d["ids"])
    assert crit.last_terms["contrastive"] == pytest.approx(capped, rel=1e-5)


def test_synapse_loss_zero_weight_and_none_targets():
    d = _batch()
    crit = SynapseLoss(align_weight=0, contrastive_weight=0)
    loss = crit(None, d["x"] + 0.1, d["x"], None, None)
    assert torch.isfinite(loss)
    assert math.isnan(crit.last_terms["align"]) and math.isnan(crit.last_terms["contrastive"])
    with pytest.raises(ValueError, match="'align' term has weight"):
        SynapseLoss()(d["z"], d["x"], d["x"], None, d["img"])
    with pytest.raises(ValueError, match="At least one"):
        SynapseLoss(0, 0, 0)
    with pytest.raises(ValueError, match=">= 0"):
        SynapseLoss(recon_weight=-1)


def test_uncertainty_weighting_parameters_train():
    d = _batch()
    crit = SynapseLoss(uncertainty_weighting=True)
    names = {n for n, _ in crit.named_parameters()}
    assert names == {"logit_scale", "log_vars"}
    before = crit.log_vars.detach().clone()
    opt = torch.optim.SGD(crit.parameters(), lr=0.1)
    loss = crit(d["z"], d["x"] + 0.5, d["x"], d["text"], d["img"], d["ids"])
    loss.backward()
    assert crit.log_vars.grad is not None and (crit.log_vars.grad != 0).all()
    assert crit.logit_scale.grad is not None
    opt.step()
    assert not torch.equal(before, crit.log_vars.detach())
    # Kendall weighting at s = 0 equals the plain sum.
    plain = SynapseLoss()(d["z"], d["x"] + 0.5, d["x"], d["text"], d["img"], d["ids"])
    assert loss.item() == pytest.approx(plain.item(), rel=1e-5)


def test_each_term_decreases_on_toy_problem():
    d = _batch()
    z = torch.zeros_like(d["text"]).normal_(generator=torch.Generator().manual_seed(3))
    z.requires_grad_(True)
    x_hat = torch.zeros_like(d["x"], requires_grad=True)
    crit = SynapseLoss()
    opt = torch.optim.Adam([z, x_hat, *crit.parameters()], lr=0.05)
    history = []
    for _ in range(60):
        opt.zero_grad()
        crit(z, x_hat, d["x"], d["text"], d["img"], d["ids"]).backward()
        opt.step()
        history.append(dict(crit.last_terms))
    for name in ("recon", "align", "contrastive", "total"):
        assert history[-1][name] < 0.7 * history[0][name], (name, history[0], history[-1])
