"""Explain a batch of images end to end: maps, statistics, captions, PNG grid, band curve, JSON.

Shared by the training callback and `cifake explain`, so both produce the same files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..data.layout import CIFAR10_CLASSES, LABEL_NAMES, cifake_content_class
from ..utils import write_atomic, write_json
from .attributions import explain_batch
from .bands import BandAblation
from .metrics import map_statistics
from .render import band_curve_png, render_grid, save_png


@dataclass
class ExplainSettings:
    """What to compute (ExplainCallback uses ig_steps=16 to stay cheap during training).

    Attributes:
        methods: any of integrated_gradients, occlusion, grad_cam, attention, band_ablation.
        target: explain the predicted class, or always "fake" / "real".
        ig_baseline: black | blur | mean | noise.
        ig_steps: Riemann/Gauss-Legendre steps of Integrated Gradients.
        ig_noise_samples: >0 averages IG over noisy copies (SmoothGrad via captum's NoiseTunnel).
        occlusion_window, occlusion_stride: occlusion patch size and step in pixels.
        band_mode: rings | blocks; n_bands: rings; band_grid: blocks per side; dct_block: 0 or 8.
        top_fraction: fraction of pixels for the top-k IoU between methods.
    """

    methods: list[str] = field(
        default_factory=lambda: [
            "integrated_gradients",
            "occlusion",
            "grad_cam",
            "attention",
            "band_ablation",
        ]
    )
    target: str = "predicted"
    ig_baseline: str = "black"
    ig_steps: int = 32
    ig_noise_samples: int = 0
    occlusion_window: int = 8
    occlusion_stride: int = 4
    band_mode: str = "rings"
    n_bands: int = 8
    band_grid: int = 4
    dct_block: int = 0
    top_fraction: float = 0.1

    def bands(self) -> BandAblation:
        return BandAblation(self.band_mode, self.n_bands, self.band_grid, self.dct_block)


@dataclass
class Explanation:
    images: torch.Tensor
    labels: torch.Tensor
    files: list[str]
    maps: dict
    stats: dict[str, torch.Tensor]
    threshold: float = 0.5  # the classifier's validation-chosen P(fake) threshold

    @property
    def probs(self) -> torch.Tensor:
        return self.maps["prob"].cpu()

    def wrong(self) -> list[bool]:
        """Per image: misclassified at the threshold (False for unlabelled images)."""
        return [
            int(y) in (0, 1) and (float(p) >= self.threshold) != bool(int(y))
            for y, p in zip(self.labels.tolist(), self.probs)
        ]

    def label_name(self, i: int) -> str:
        y = int(self.labels[i])
        return LABEL_NAMES[y].lower() if y in (0, 1) else "unlabelled"

    def captions(self) -> list[str]:
        wrong = self.wrong()
        return [
            ("WRONG: " if wrong[i] else "") + f"{self.label_name(i)} p(fake)={float(p):.3g}"
            for i, p in enumerate(self.probs)
        ]

    def records(self) -> list[dict]:
        """One JSON-ready dict per image."""
        out = []
        for i, f in enumerate(self.files):
            r = {"file": f, "label": self.label_name(i), "p_fake": float(self.probs[i])}
            if "ig_delta" in self.maps:
                r["ig_convergence_delta"] = float(self.maps["ig_delta"][i])
                r["ig_relative_delta"] = float(self.maps["ig_relative_delta"][i])
            for k, v in self.stats.items():
                r[k] = _finite_or_none(float(v[i]))
            if "band_drop" in self.maps:
                r["band_drop"] = dict(zip(self.maps["band_names"], map(float, self.maps["band_drop"][i])))
            out.append(r)
        return out

    def summary(self) -> dict:
        """Means of every statistic by true label (the comparisons the seeds ask about); "fake - real"
        their difference; "real/<class>" the reals of each CIFAR-10 class their CIFAKE file name names
        (seed 004's per-class reading of where the detector looks)."""
        labels = self.labels.cpu()
        classes = torch.tensor([cifake_content_class(Path(f).name) for f in self.files])
        groups = [
            ("real", labels == 0),
            ("fake", labels == 1),
            ("all", torch.ones_like(labels, dtype=torch.bool)),
        ]
        groups += [(f"real/{CIFAR10_CLASSES[c]}", (labels == 0) & (classes == c))
                   for c in range(len(CIFAR10_CLASSES))]  # fmt: skip
        out: dict = {"n": len(self.files)}
        for name, sel in groups:
            if not sel.any():
                continue
            # NaN = undefined for that image (an empty map): the mean is over the maps that have one
            d = {k: _finite_or_none(float(v[sel].double().nanmean())) for k, v in self.stats.items()}
            if "ig_delta" in self.maps:
                d["ig_abs_delta"] = float(self.maps["ig_delta"].cpu()[sel].abs().mean())
                d["ig_relative_delta"] = float(self.maps["ig_relative_delta"].cpu()[sel].mean())
            if "band_drop" in self.maps:
                d["band_drop"] = dict(
                    zip(self.maps["band_names"], self.maps["band_drop"].cpu()[sel].mean(0).tolist())
                )
            d["n"] = int(sel.sum())
            out[name] = d
        if "real" in out and "fake" in out:
            out["fake - real"] = {
                k: v - out["real"][k]
                for k, v in out["fake"].items()
                if k != "n" and isinstance(v, float) and isinstance(out["real"].get(k), float)
            }
        return out


def _finite_or_none(v: float) -> float | None:
    """JSON has no NaN: an undefined statistic is written as null."""
    return v if math.isfinite(v) else None


def explain(
    classifier,
    images: torch.Tensor,
    labels: torch.Tensor,
    files: list[str],
    settings: ExplainSettings,
    batch_size: int = 32,
) -> Explanation:
    """Run every method on float [0,1] images in batches; concatenate maps and compute statistics."""
    parts: list[dict] = []
    for s in range(0, images.shape[0], batch_size):
        parts.append(
            explain_batch(
                classifier,
                images[s : s + batch_size],
                settings.methods,
                settings.target,
                settings.ig_baseline,
                settings.ig_steps,
                settings.occlusion_window,
                settings.occlusion_stride,
                settings.bands(),
                settings.ig_noise_samples,
            )
        )
    maps: dict = {}
    for k in parts[0]:
        if k == "band_names":
            maps[k] = parts[0][k]
        else:
            maps[k] = torch.cat([p[k].cpu() for p in parts])
    pixel_maps = {k: v for k, v in maps.items() if k in settings.methods and k != "band_ablation"}
    stats = map_statistics(pixel_maps, settings.top_fraction)
    cal = getattr(classifier, "calibration", None)
    threshold = float(cal.threshold) if cal is not None else 0.5
    return Explanation(images.cpu(), labels.cpu(), list(files), maps, stats, threshold)


#: most images drawn in grid.png (a row each); scores and summaries always cover every image
GRID_MAX = 64


def grid_selection(labels: torch.Tensor, k: int = GRID_MAX) -> torch.Tensor:
    """Indices of at most k images for the grid, in their order: half real, half fake where both are
    there (the rest from whichever has more), so a large sample still gives a readable picture."""
    n = int(labels.shape[0])
    if n <= k:
        return torch.arange(n)
    lab = labels.cpu()
    groups = [torch.nonzero(lab == v).flatten() for v in sorted(set(lab.tolist()))]
    take, left = [], k
    for i, g in enumerate(sorted(groups, key=len)):
        m = min(len(g), left // (len(groups) - i))
        take.append(g[:m])
        left -= m
    return torch.cat(take).sort().values


def write_outputs(
    ex: Explanation, out: Path, settings: ExplainSettings, title: str = "", ckpt: str | None = None
) -> dict[str, Path]:
    """grid.png, bands.png, scores.json and summary.json (+ summary.md) in `out`; returns the paths.
    `ckpt` (the explained checkpoint, absolute) goes into summary.json, so `cifake report` finds its run."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"scores": write_json(out / "scores.json", ex.records())}
    summary = ex.summary()
    head = {"settings": settings.__dict__, **({"ckpt": ckpt} if ckpt else {})}
    paths["summary"] = write_json(out / "summary.json", {**head, **summary})
    shown = grid_selection(ex.labels, GRID_MAX)
    n = ex.images.shape[0]
    maps = {
        k: v[shown] if isinstance(v, torch.Tensor) and v.shape[:1] == (n,) else v for k, v in ex.maps.items()
    }
    captions, wrong = ex.captions(), ex.wrong()
    paths["grid"] = save_png(
        render_grid(
            ex.images[shown], maps, [captions[i] for i in shown.tolist()], settings.methods,
            wrong=[wrong[i] for i in shown.tolist()], threshold=ex.threshold,
        ),
        out / "grid.png",
    )  # fmt: skip
    if "band_drop" in ex.maps:
        paths["bands"] = band_curve_png(
            ex.maps["band_names"], ex.maps["band_drop"], out / "bands.png", title, ex.labels
        )
    ran = [m for m in settings.methods if m in ex.maps]
    skipped = [m for m in settings.methods if m not in ran]
    lines = [
        f"# Explanations{': ' + title if title else ''}",
        "",
        f"{summary['n']} images; methods: {', '.join(ran)}"
        + (f" ({', '.join(skipped)}: not supported by this model, skipped)" if skipped else ""),
        "",
    ]
    if len(shown) < n:
        lines += [
            f"grid.png shows {len(shown)} of the {n} images (real and fake alike); scores.json has all.",
            "",
        ]
    groups = [g for g in ("real", "fake", "fake - real", "all") if g in summary]  # unlabelled images: all
    keys = sorted({k for g in groups for k in summary[g] if k not in ("band_drop", "n")})
    lines += [f"| statistic | {' | '.join(groups)} |", "|---|" + "---|" * len(groups)]
    for k in keys:
        vals = ["" if summary[g].get(k) is None else f"{summary[g][k]:.3f}" for g in groups]
        lines.append(f"| {k} | {' | '.join(vals)} |")
    paths["summary_md"] = write_atomic(out / "summary.md", "\n".join(lines) + "\n")
    return paths
