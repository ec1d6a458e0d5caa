"""Procedural stimulus images for the synthetic EEG-image data set.

Each class is a (shape, colour) pair; each image of a class varies in
position, size, rotation, texture, hue and background, so that images within a
class differ and per-image detail is worth decoding. Drawing is pure numpy
(4x super-sampled for anti-aliased edges), deterministic for a given seed.
"""

import numpy as np

SHAPES = (
    "circle", "square", "triangle", "cross", "ring",
    "star", "diamond", "bar", "crescent", "heart",
)
# (name, hue in [0, 1)) - hues spaced so that neighbouring classes differ.
COLOURS = (
    ("red", 0.0), ("green", 0.33), ("blue", 0.62), ("yellow", 0.15),
    ("purple", 0.78), ("orange", 0.08), ("cyan", 0.5), ("pink", 0.9),
    ("lime", 0.25), ("teal", 0.45),
)
TEXTURES = ("plain", "stripes", "dots", "checks")
_SUPERSAMPLE = 4


def class_table(n_classes):
    """Return the (shape, colour name, hue) of each class.

    The first ``len(SHAPES)`` classes have distinct shapes and distinct
    colours; further classes reuse shapes with other colours.
    """
    max_classes = len(SHAPES) * len(COLOURS)
    if not 2 <= n_classes <= max_classes:
        raise ValueError(
            f"n_classes must be between 2 and {max_classes}, got {n_classes}."
        )
    table = []
    for k in range(n_classes):
        shape = SHAPES[k % len(SHAPES)]
        colour, hue = COLOURS[(k + 3 * (k // len(SHAPES))) % len(COLOURS)]
        table.append((shape, colour, hue))
    return table


def _shape_mask(shape, u, v):
    """Inside-test of a unit-size shape on centred, rotated coordinates."""
    r = np.hypot(u, v)
    theta = np.arctan2(v, u)
    if shape == "circle":
        return r <= 1.0
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 0.8
    if shape == "triangle":
        return (v >= -0.7) & (v <= 0.9 - 1.8 * np.abs(u) / 1.1)
    if shape == "cross":
        return ((np.abs(u) <= 0.3) & (np.abs(v) <= 1.0)) | (
            (np.abs(v) <= 0.3) & (np.abs(u) <= 1.0)
        )
    if shape == "ring":
        return (r <= 1.0) & (r >= 0.55)
    if shape == "star":
        return r <= 0.5 + 0.45 * np.cos(5 * theta) ** 2
    if shape == "diamond":
        return np.abs(u) + np.abs(v) <= 1.0
    if shape == "bar":
        return (np.abs(u) <= 1.0) & (np.abs(v) <= 0.35)
    if shape == "crescent":
        return (r <= 1.0) & (np.hypot(u - 0.45, v) >= 0.75)
    if shape == "heart":
        x, y = u * 1.1, -v * 1.1 + 0.2
        return (x**2 + y**2 - 0.6) ** 3 - x**2 * y**3 <= 0
    raise ValueError(f"Unknown shape {shape!r}; choose from {SHAPES}.")


def _hsv_to_rgb(h, s, v):
    i = int(h * 6.0) % 6
    f = h * 6.0 - int(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return np.array(
        [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    )


def sample_image_params(class_index, n_classes, rng):
    """Draw the per-image parameters of one stimulus of a class."""
    shape, colour, hue = class_table(n_classes)[class_index]
    return dict(
        class_index=int(class_index),
        shape=shape,
        colour=colour,
        hue=float((hue + rng.uniform(-0.03, 0.03)) % 1.0),
        saturation=float(rng.uniform(0.65, 1.0)),
        value=float(rng.uniform(0.7, 1.0)),
        texture=TEXTURES[rng.integers(len(TEXTURES))],
        x=float(rng.uniform(-0.25, 0.25)),
        y=float(rng.uniform(-0.25, 0.25)),
        size=float(rng.uniform(0.45, 0.8)),
        rotation=float(rng.uniform(-np.pi / 6, np.pi / 6)),
        background=float(rng.uniform(0.05, 0.45)),
    )


def draw_image(params, image_size=32):
    """Render one stimulus as an (image_size, image_size, 3) uint8 array."""
    n = image_size * _SUPERSAMPLE
    grid = (np.arange(n) + 0.5) / n * 2 - 1  # pixel centres in [-1, 1]
    xx, yy = np.meshgrid(grid, grid)
    cos, sin = np.cos(params["rotation"]), np.sin(params["rotation"])
    dx, dy = xx - params["x"], yy - params["y"]
    u = (cos * dx + sin * dy) / params["size"]
    v = (-sin * dx + cos * dy) / params["size"]
    inside = _shape_mask(params["shape"], u, v)

    texture = params["texture"]
    shade = np.ones_like(u)
    if texture == "stripes":
        shade = np.where(np.sin(u * 9.0) > 0, 1.0, 0.55)
    elif texture == "dots":
        shade = np.where(np.hypot((u * 3) % 1 - 0.5, (v * 3) % 1 - 0.5) < 0.25, 0.5, 1.0)
    elif texture == "checks":
        shade = np.where((np.floor(u * 2.5) + np.floor(v * 2.5)) % 2 == 0, 1.0, 0.6)

    rgb = _hsv_to_rgb(params["hue"], params["saturation"], params["value"])
    background = np.full(3, params["background"])
    image = np.where(inside[..., None], shade[..., None] * rgb, background)
    image = image.reshape(image_size, _SUPERSAMPLE, image_size, _SUPERSAMPLE, 3)
    image = image.mean(axis=(1, 3))
    return np.clip(np.round(image * 255), 0, 255).astype(np.uint8)


def caption(params):
    """A short caption in the style of BLIP-2 captions used by the paper."""
    size = "large" if params["size"] > 0.65 else "small" if params["size"] < 0.55 else ""
    where = []
    if params["y"] < -0.1:
        where.append("top")
    elif params["y"] > 0.1:
        where.append("bottom")
    if params["x"] < -0.1:
        where.append("left")
    elif params["x"] > 0.1:
        where.append("right")
    place = " ".join(where) if where else "centre"
    texture = "" if params["texture"] == "plain" else f" with {params['texture']}"
    background = "dark" if params["background"] < 0.25 else "grey"
    words = " ".join(w for w in ("a", size, params["colour"], params["shape"]) if w)
    return f"{words}{texture} at the {place} on a {background} background"


def image_features(params):
    """Numeric visual features of a stimulus, the drive of the simulated cortex.

    Returns a 1-D float array: shape one-hot, colour (hue on the circle,
    saturation, value), texture one-hot, position, size, rotation and
    background luminance.
    """
    shape = np.eye(len(SHAPES))[SHAPES.index(params["shape"])]
    texture = np.eye(len(TEXTURES))[TEXTURES.index(params["texture"])]
    hue = 2 * np.pi * params["hue"]
    colour = [np.cos(hue), np.sin(hue), params["saturation"], params["value"]]
    geometry = [
        params["x"] * 3, params["y"] * 3, (params["size"] - 0.6) * 6,
        params["rotation"] * 2, (params["background"] - 0.25) * 5,
    ]
    return np.concatenate([shape, colour, texture, geometry]).astype(float)
