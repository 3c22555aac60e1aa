"""PNG figures of test reports: reliability diagram and galleries of confident mistakes."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window: before pyplot is imported
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from ..utils import write_atomic


def fig_png(fig) -> bytes:
    """A matplotlib figure as PNG bytes (the figure is closed)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def reliability_png(
    prob: torch.Tensor,
    label: torch.Tensor,
    source: torch.Tensor,
    source_names: list[str],
    path: str | Path,
    bins: int = 10,
    title: str = "",
    threshold: float | None = None,
) -> Path:
    """Left: reliability curves (fraction of fakes vs mean P(fake) per bin, the ECE's binning) of every
    group that holds both classes: all images, and two-class sources. A one-class source has no such
    curve (its fraction of fakes is 0 or 1 in every bin), so the right panel shows instead where each
    source's P(fake) lies (quartile boxes, 5-95% whiskers), with the validation threshold."""
    prob, label, source = prob.float().cpu(), label.long().cpu(), source.long().cpu()
    present = sorted(set(source.tolist()))
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10.5, 4.4), dpi=110, gridspec_kw={"width_ratios": [1, 1.15]})
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="calibrated")
    edges = torch.linspace(0, 1, bins + 1)
    groups = [("all", torch.ones_like(label, dtype=torch.bool))]
    groups += [(source_names[s], source == s) for s in present if len(set(label[source == s].tolist())) == 2]
    for name, sel in groups:
        p, y = prob[sel], label[sel].float()
        xs, ys, ns = [], [], []
        for i in range(bins):
            m = (p >= edges[i]) & ((p < edges[i + 1]) if i < bins - 1 else (p <= edges[i + 1]))
            n = int(m.sum())
            # bins with fewer than 3 images break the line (NaN) instead of joining across the gap
            xs.append(float(p[m].mean()) if n >= 3 else np.nan)
            ys.append(float(y[m].mean()) if n >= 3 else np.nan)
            ns.append(n)
        if not np.all(np.isnan(xs)):
            ax.plot(
                xs,
                ys,
                marker="o",
                ms=3,
                lw=2.2 if name == "all" else 1.0,
                label=f"{name} (n={int(sel.sum())})",
            )
            if name == "all":  # how many images each point of the main curve stands for
                for x, yv, n in zip(xs, ys, ns):
                    if not np.isnan(x):
                        ax.annotate(f"{n}", (x, yv), textcoords="offset points", xytext=(0, 5), fontsize=6,
                                    ha="center", color="#444")  # fmt: skip
    ax.set_xlabel("mean predicted P(fake) in bin")
    ax.set_ylabel("fraction of fakes in bin")
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.03, 1.08)
    ax.set_title("reliability (groups holding both classes; numbers: images per bin)", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", framealpha=0.9)
    data, names, colours = [], [], []
    for s in present:
        sel = source == s
        data.append(prob[sel].numpy())
        lab = set(label[sel].tolist())
        kind = "fake" if lab == {1} else "real" if lab == {0} else "mixed"
        names.append(f"{source_names[s]} ({kind}, n={int(sel.sum())})")
        colours.append({"fake": "#d62728", "real": "#1f77b4", "mixed": "#7f7f7f"}[kind])
    parts = bx.boxplot(
        data, orientation="horizontal", whis=(5, 95), showfliers=False, patch_artist=True, widths=0.6
    )
    for patch, c in zip(parts["boxes"], colours):
        patch.set_facecolor(c)
        patch.set_alpha(0.45)
    bx.set_yticks(range(1, len(names) + 1), names, fontsize=7)
    bx.invert_yaxis()
    bx.set_xlim(0, 1)
    bx.set_xlabel("P(fake) of the source's images")
    if threshold is not None:
        bx.axvline(threshold, color="black", ls=":", lw=1.2, label=f"validation threshold {threshold:.3g}")
        bx.legend(fontsize=7, loc="lower right", framealpha=0.9)
    bx.set_title("P(fake) per source (box: quartiles, whiskers: 5-95%)", fontsize=9)
    fig.suptitle(title or "calibration", fontsize=10)
    fig.tight_layout()
    return write_atomic(path, fig_png(fig))


def _fit_text(draw, text: str, font, width: int) -> str:
    """`text` shortened in the middle (with an ellipsis) until it fits `width` pixels: the start and the
    end of a file name both stay readable, no word is cut off at the edge."""
    if draw.textlength(text, font=font) <= width:
        return text
    keep = len(text)
    while keep > 2:
        keep -= 1
        short = text[: (keep + 1) // 2] + "\u2026" + text[len(text) - keep // 2 :]
        if draw.textlength(short, font=font) <= width:
            return short
    return text[:1] + "\u2026"


def gallery_png(
    images: torch.Tensor, captions: list[str], path: str | Path, title: str, cols: int = 8, scale: int = 4
) -> Path:
    """Grid of uint8 (N, 3, H, W) images with a caption (up to two lines) under each, in a 12 px font."""
    n = images.shape[0]
    side = images.shape[-1] * scale
    font, title_font = ImageFont.load_default(size=12), ImageFont.load_default(size=14)
    line_h, cap = 15, 32
    cols = max(1, min(cols, n))
    rows = max(1, (n + cols - 1) // cols)
    canvas = Image.new("RGB", (cols * (side + 8) + 8, 26 + rows * (side + cap + 8)), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((8, 5), _fit_text(draw, title, title_font, canvas.width - 16), fill="black", font=title_font)
    for i in range(n):
        r, c = divmod(i, cols)
        arr = images[i].permute(1, 2, 0).cpu().numpy().astype(np.uint8)
        tile = Image.fromarray(arr).resize((side, side), Image.Resampling.NEAREST)
        x, y = 8 + c * (side + 8), 26 + r * (side + cap + 8)
        canvas.paste(tile, (x, y))
        for j, line in enumerate(captions[i].split("\n")[:2]):
            draw.text(
                (x, y + side + 2 + line_h * j), _fit_text(draw, line, font, side), fill="black", font=font
            )
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return write_atomic(path, buf.getvalue())
