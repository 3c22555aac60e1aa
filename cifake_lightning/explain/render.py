"""Turn images and maps into PNG grids: one row per image, columns image | overlay per method."""

from __future__ import annotations

import io
import math
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window: before pyplot is imported
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np
import torch
from PIL import Image, ImageDraw

from ..evaluate.plots import fig_png
from ..utils import write_atomic
from .attributions import normalise_map

SCALE = 4  # 32 px -> 128 px tiles


def heat_rgb(m: torch.Tensor, cmap: str = "inferno") -> np.ndarray:
    """(H, W) map in [0, 1] -> (H, W, 3) uint8 through a matplotlib colormap."""
    rgba = matplotlib.colormaps[cmap](m.clamp(0, 1).cpu().numpy())
    return (rgba[..., :3] * 255).astype(np.uint8)


def overlay(image: torch.Tensor, m: torch.Tensor, alpha: float = 0.55, cmap: str = "inferno") -> np.ndarray:
    """Blend a (3, H, W) [0, 1] image with a (H, W) [0, 1] map."""
    img = (image.permute(1, 2, 0).clamp(0, 1).cpu().numpy() * 255).astype(np.float32)
    heat = heat_rgb(m, cmap).astype(np.float32)
    return ((1 - alpha) * img + alpha * heat).astype(np.uint8)


def _tile(arr: np.ndarray) -> Image.Image:
    return Image.fromarray(arr).resize((arr.shape[1] * SCALE, arr.shape[0] * SCALE), Image.Resampling.NEAREST)


def render_grid(
    images: torch.Tensor,
    maps: dict[str, torch.Tensor],
    captions: list[str],
    methods: list[str],
    spectrum_methods: tuple[str, ...] = ("band_ablation",),
    wrong: list[bool] | None = None,
    threshold: float | None = None,
) -> Image.Image:
    """A PIL image: header row of method names, then per image its picture, caption and each map,
    then a key: the colour bar of the maps and how to read the band-ablation column.

    Pixel methods are overlaid on the image; spectrum methods (band ablation lives in the DCT plane)
    are shown as plain heat maps, low frequencies top-left. Misclassified images (`wrong`, at the
    classifier's threshold) get a red frame and "WRONG" in their caption.
    """
    methods = [m for m in methods if m in maps]
    n = images.shape[0]
    tile = images.shape[-1] * SCALE
    cap_h, head_h = 28, 18
    cols = 1 + len(methods)
    group_w = cols * (tile + 4) + 4
    groups = max(1, round(math.sqrt(n / 4)))  # blocks side by side (16 images: 2 of 8), not one tall strip
    rows = -(-n // groups)
    width = max(groups * group_w + (groups - 1) * 12, 420)
    key_h = 34 + 12 * len(_key_lines(width, any(m in spectrum_methods for m in methods), threshold))
    canvas = Image.new("RGB", (width, head_h + rows * (tile + cap_h + 4) + 4 + key_h), "white")
    draw = ImageDraw.Draw(canvas)
    for g in range(groups):
        for j, name in enumerate(["image", *methods]):
            draw.text((g * (group_w + 12) + 4 + j * (tile + 4), 3), name.replace("_", " ")[:22], fill="black")
    norm = {m: normalise_map(maps[m].float()) for m in methods}
    for i in range(n):
        x0 = (i // rows) * (group_w + 12)
        y = head_h + (i % rows) * (tile + cap_h + 4)
        img = (images[i].permute(1, 2, 0).clamp(0, 1).cpu().numpy() * 255).astype(np.uint8)
        canvas.paste(_tile(img), (x0 + 4, y))
        if wrong is not None and wrong[i]:
            draw.rectangle((x0 + 2, y - 2, x0 + 5 + tile, y + tile + 1), outline=(220, 0, 0), width=3)
        for j, m in enumerate(methods):
            arr = heat_rgb(norm[m][i]) if m in spectrum_methods else overlay(images[i], norm[m][i])
            canvas.paste(_tile(arr), (x0 + 4 + (j + 1) * (tile + 4), y))
        colour = (200, 0, 0) if wrong is not None and wrong[i] else (0, 0, 0)
        draw.text((x0 + 4, y + tile + 2), captions[i][: 12 * cols], fill=colour)
    _draw_key(
        canvas,
        draw,
        head_h + rows * (tile + cap_h + 4) + 4,
        any(m in spectrum_methods for m in methods),
        threshold,
    )
    return canvas


def _draw_key(
    canvas: Image.Image, draw: ImageDraw.ImageDraw, y: int, bands: bool, threshold: float | None
) -> None:
    """Colour bar of the maps (each map is scaled to its own 0-1 range) and the band-ablation legend."""
    bar_w = 160
    bar = heat_rgb(torch.linspace(0, 1, bar_w)[None].repeat(10, 1))
    canvas.paste(Image.fromarray(bar), (4, y + 4))
    draw.text((4, y + 16), "0", fill="black")
    draw.text((bar_w - 20, y + 16), "max", fill="black")
    draw.text((bar_w + 12, y + 2), "|attribution| for the predicted class,", fill="black")
    draw.text((bar_w + 12, y + 14), "scaled per image and method", fill="black")
    for k, line in enumerate(_key_lines(canvas.width, bands, threshold)):
        draw.text((4, y + 30 + 12 * k), line, fill="black")


def _key_lines(width: int, bands: bool, threshold: float | None) -> list[str]:
    """The key's text, wrapped to the canvas (about 6 px per character of the default font)."""
    lines = []
    if bands:
        lines.append(
            "band ablation: DCT plane, low frequencies top-left; bright = removing that band changes P(fake) most"
        )
    lines.append(
        "red frame / WRONG: misclassified"
        + (f" at the validation threshold P(fake) >= {threshold:.3g}" if threshold is not None else "")
    )
    return [w for line in lines for w in textwrap.wrap(line, max(20, (width - 8) // 6))]


def save_png(img: Image.Image, path: str | Path) -> Path:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return write_atomic(path, buf.getvalue())


def band_curve_png(
    names: list[str],
    drops: torch.Tensor,
    path: str | Path,
    title: str = "",
    labels: torch.Tensor | None = None,
) -> Path:
    """Mean drop in P(fake) per band, one line per true label (removing a band from a real image can
    *raise* P(fake), so real and fake images are not averaged together), with the 25-75% spread."""
    d = drops.float().cpu().numpy()
    groups = [("all", np.ones(len(d), dtype=bool))]
    if labels is not None and set(labels.tolist()) & {0, 1}:
        lab = labels.cpu().numpy()
        groups = [(n, lab == v) for n, v in (("real", 0), ("fake", 1)) if (lab == v).any()]
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=110)
    x = np.arange(len(names))
    for name, sel in groups:
        g = d[sel]
        (line,) = ax.plot(x, g.mean(0), marker="o", label=f"{name} (n={len(g)})")
        if len(g) > 1:
            ax.fill_between(
                x, np.percentile(g, 25, 0), np.percentile(g, 75, 0), alpha=0.2, color=line.get_color(),
                label=f"{name}: middle 50% of images",
            )  # fmt: skip
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xticks(x, names, rotation=45, ha="right", fontsize=7)
    ax.set_xlabel("DCT band (normalised radius, low -> high frequency)")
    ax.set_ylabel("drop in P(fake) when removed\n(< 0: removing it raises P(fake))", fontsize=8)
    # a run name can be longer than the plot: wrapped, never cut off at the figure's edge
    ax.set_title(textwrap.fill(title or "frequency-band ablation", 90), fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return write_atomic(path, fig_png(fig))
