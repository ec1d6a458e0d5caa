"""Schematic of SYNAPSE's two stages, drawn with matplotlib when the docs build.

Used by ``method.rst`` through the ``.. plot::`` directive; run it alone to
look at the figure (``python doc/architecture.py``).
"""

import matplotlib.pyplot as plt
from matplotlib.patches import FancyBboxPatch

STYLE = {  # kind -> (face colour, edge colour)
    "data": ("#ffffff", "#444444"),
    "trained": ("#fdd9a0", "#c77700"),
    "frozen": ("#d5e3f0", "#4a6f94"),
    "loss": ("#fbe0e0", "#b02a2a"),
}


def box(ax, x, y, w, h, text, kind, size=7.5):
    """A rounded box centred at (x, y); returns its centre and half-sizes."""
    face, edge = STYLE[kind]
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.3",
                                facecolor=face, edgecolor=edge, linewidth=1.2))
    ax.text(x, y, text, ha="center", va="center", fontsize=size, linespacing=1.25)
    return x, y, w / 2, h / 2


def arrow(ax, a, b, text=None, side="h", **kwargs):
    """An arrow from box ``a`` to box ``b``, leaving horizontally or vertically."""
    (xa, ya, wa, ha), (xb, yb, wb, hb) = a, b
    if side == "h":
        start = (xa + wa + 0.4, ya) if xb > xa else (xa - wa - 0.4, ya)
        end = (xb - wb - 0.4, yb) if xb > xa else (xb + wb + 0.4, yb)
    else:
        start = (xa, ya - ha - 0.4) if yb < ya else (xa, ya + ha + 0.4)
        end = (xb, yb + hb + 0.4) if yb < ya else (xb, yb - hb - 0.4)
    ax.annotate("", end, start, arrowprops=dict(arrowstyle="-|>", color="#333333",
                                                lw=1.1, shrinkA=0, shrinkB=0, **kwargs))
    if text:
        x, y = (start[0] + end[0]) / 2, (start[1] + end[1]) / 2
        x, y, ha = (x, y + 0.9, "center") if side == "h" else (x + 0.8, y, "left")
        ax.text(x, y, text, ha=ha, va="bottom" if side == "h" else "center", fontsize=6.5,
                color="#333333")


def draw_stage1(ax):
    ax.set_title("Stage 1: CLIP-aligned hybrid EEG autoencoder (SynapseEncoder)",
                 loc="left", fontsize=9, fontweight="bold")
    eeg = box(ax, 6, 20, 8, 5, "EEG\n128 ch x 440", "data")
    proj = box(ax, 19, 20, 9, 5, "temporal\nprojection\n440 -> 64", "trained")
    enc = box(ax, 35, 20, 14, 9, "5 levels, widths 64-1024:\nresidual blocks (features)\n"
              "+ transformer across\nelectrodes\n128 -> 64 -> 16 -> 4 -> 1", "trained", 7)
    skip = box(ax, 52, 20, 10, 7, "U-Net skips:\n214 tokens\nMLP -> 77\n+ transformer",
               "trained", 7)
    z = box(ax, 66, 20, 9, 5, "$Z_{latent}$\n77 x 1024", "data")
    dec = box(ax, 66, 33, 12, 4, "decoder (mirror) -> $\\hat{x}$", "trained")
    rec = box(ax, 88, 33, 17, 4, "reconstruction\nMSE + (1 - SDSC)", "loss")
    text = box(ax, 84, 20, 13, 5, "CLIP ViT-H-14 text\ncaption tokens T\n77 x 1024",
               "frozen", 7)
    align = box(ax, 84, 27.5, 17, 3.2, "alignment: MSE + (1 - cos)", "loss", 7)
    image = box(ax, 84, 7, 13, 5, "CLIP ViT-H-14 image\nembedding 1024", "frozen", 7)
    info = box(ax, 66, 7, 12, 4, "InfoNCE (symmetric)\ntemperature 0.07", "loss", 7)
    for a, b in ((eeg, proj), (proj, enc), (enc, skip), (skip, z)):
        arrow(ax, a, b)
    arrow(ax, z, dec, side="v")
    arrow(ax, dec, rec)
    arrow(ax, z, info, "token mean", side="v")
    arrow(ax, image, info)
    ax.annotate("", (75.5, 27.5), (70.5, 20),
                arrowprops=dict(arrowstyle="-|>", color="#333333", lw=1.1,
                                connectionstyle="angle,angleA=0,angleB=90"))
    arrow(ax, text, align, side="v")


def draw_stage2(ax):
    ax.set_title("Stage 2: adapter + finetuning of Stable Diffusion 2.1 (EEGImageGenerator)",
                 loc="left", fontsize=9, fontweight="bold")
    eeg = box(ax, 6, 28, 8, 5, "EEG", "data")
    enc = box(ax, 19, 28, 10, 5, "Stage-1\nencoder", "frozen")
    z = box(ax, 33, 28, 9, 5, "$Z_{latent}$\n77 x 1024", "data")
    adapt = box(ax, 33, 15, 12, 7, "$f_{adapt}$: token mean\nLinear 1024 -> 4x1024\n"
                "LayerNorm", "trained", 7)
    zadapt = box(ax, 33, 4.5, 9, 4, "$Z_{adapt}$ 4 x 1024", "data", 7)
    unet = box(ax, 62, 18, 22, 17, "SD 2.1 U-Net (v-prediction)\n\ncross-attention:\n"
               "Attn(Q, K, V) + Attn(Q, $K_{ip}$, $V_{ip}$)\n\ntrained: attn2, time, norm2,\n"
               "new $K_{ip}$ / $V_{ip}$ (about 108 M);\nthe rest frozen", "trained", 7)
    vae = box(ax, 62, 37, 25, 3.5, "stimulus -> VAE encoder -> noisy latent $z_t$",
              "frozen", 7)
    loss = box(ax, 89, 27, 14, 6, "min-SNR v-loss\n(gamma 0.5)\ncondition dropout 0.1",
               "loss", 7)
    out = box(ax, 89, 10, 14, 7, "inference: DDIM,\nguidance 7.5 (zeros\nunconditional)\n"
              "-> VAE decoder -> image", "frozen", 7)
    arrow(ax, eeg, enc)
    arrow(ax, enc, z)
    arrow(ax, z, adapt, side="v")
    arrow(ax, adapt, zadapt, side="v")
    arrow(ax, z, unet, "K, V")
    ax.annotate("", (50.6, 8), (38.2, 4.5), arrowprops=dict(
        arrowstyle="-|>", color="#333333", lw=1.1, connectionstyle="angle,angleA=0,angleB=90"))
    ax.text(44, 5.4, "$K_{ip}$, $V_{ip}$", fontsize=6.5)
    arrow(ax, vae, unet, side="v")
    arrow(ax, (73, 22, 0.2, 0), loss)
    arrow(ax, (73, 13, 0.2, 0), out)


def plot_architecture():
    """Both stages, one panel each; returns the Figure."""
    fig, axes = plt.subplots(2, 1, figsize=(10, 8.4), layout="constrained")
    for ax, draw, height in zip(axes, (draw_stage1, draw_stage2), (38, 41)):
        ax.set_xlim(0, 97)
        ax.set_ylim(0, height)
        ax.axis("off")
        draw(ax)
    handles = [FancyBboxPatch((0, 0), 1, 1, facecolor=f, edgecolor=e, label=k)
               for k, (f, e) in STYLE.items()]
    fig.legend(handles=handles, labels=["data / tensor", "trained", "frozen", "loss"],
               loc="lower center", ncols=4, fontsize=8, frameon=False)
    return fig


if __name__ == "__main__":
    plot_architecture()
    plt.show()
