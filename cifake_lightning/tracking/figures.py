"""Figures of the run-comparison dashboard (PNG bytes): learning curves, the paper's feature-extractor
heat map beside the published accuracies, accuracy against parameters. Every figure plots best-epoch
validation accuracy, the one number all runs have and measure alike."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")  # files only, never a window: before pyplot is imported
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np
from matplotlib.ticker import MaxNLocator, StrMethodFormatter  # noqa: E402

from ..evaluate.plots import fig_png
from ..models.bird_lotfi import CONV_LAYERS, FILTERS, parse_topology
from .runs import RunRecord, finite

#: Bird & Lotfi (2024), feature-extractor accuracies (%) by filters x conv layers (seed 004's table).
PAPER_EXTRACTORS = {
    (16, 1): 90.06,
    (16, 2): 91.46,
    (16, 3): 91.63,
    (32, 1): 90.38,
    (32, 2): 92.93,
    (32, 3): 92.54,
    (64, 1): 90.94,
    (64, 2): 92.71,
    (64, 3): 92.38,
    (128, 1): 91.39,
    (128, 2): 92.98,
    (128, 3): 92.07,
}


#: most labels in the accuracy-vs-parameters scatter
MAX_LABELS = 12


def _val_accuracy(r: RunRecord) -> float | None:
    """Best-epoch validation accuracy: the one number every run has and that is measured alike
    (figures never mix it with test accuracies on whatever data a run happened to be tested on)."""
    v = r.best.get("val/acc")
    return v if finite(v) else None


def learning_curves_png(runs: list[RunRecord]) -> bytes:

    # one colour and marker per run (tab20 x 4 markers: 80 distinct styles), the same run in every panel;
    # the legend sits under the panels, in columns, for any number of runs
    colours = plt.get_cmap("tab20").colors
    markers = ("o", "s", "^", "D")
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), dpi=100)
    datas = {r.train_data for r in runs}
    shared = len(datas) == 1  # one training set: said once in the title, not in every legend entry
    if shared and next(iter(datas)):
        fig.suptitle(f"all runs trained on {next(iter(datas))}", fontsize=10)
    for ax, key, title in zip(
        axes,
        ("val/acc", "val/loss", "train/loss_epoch"),
        ("validation accuracy", "validation loss", "training loss"),
    ):
        for i, r in enumerate(runs):
            pts = sorted(r.curves.get(key, []))
            if pts:
                ax.plot(
                    [e + 1 for e, _ in pts],
                    [v for _, v in pts],
                    lw=1,
                    marker=markers[(i // len(colours)) % len(markers)],
                    ms=3,
                    color=colours[i % len(colours)],
                    label=f"{r.name} ({r.train_data})" if r.train_data and not shared else r.name,
                )
        ax.set_title(
            title + (" (each run on its own validation split)" if key == "val/acc" else ""), fontsize=10
        )
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs 1, 2, 3: never 1.2
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        # as many columns as the longest label allows (about 4.4 px per character at font size 7)
        longest = max(len(lab) for lab in labels)
        ncol = max(1, min(3, len(handles), int(1450 // (4.4 * longest + 40))))
        fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=7, frameon=False)
        rows = (len(handles) + ncol - 1) // ncol
        fig.set_size_inches(15, 4.2 + 0.16 * rows)
        fig.tight_layout(rect=(0, (0.16 * rows + 0.1) / (4.2 + 0.16 * rows), 1, 1))
    else:
        fig.tight_layout()
    return fig_png(fig)


def extractor_heatmap_png(runs: list[RunRecord]) -> tuple[bytes | None, list[dict]]:
    """Ours vs the paper for conv{F}x{L} topologies (no dense head); None when no such runs."""
    cells: dict[tuple[int, int], list[float]] = {}
    for r in runs:
        if not r.topology or "-dense" in r.topology:
            continue
        try:
            p = parse_topology(r.topology)
        except ValueError:
            continue
        acc = _val_accuracy(r)
        if acc is not None:
            cells.setdefault((p["filters"], p["conv_layers"]), []).append(100 * acc)
    if not cells:
        return None, []
    ours = {k: sum(v) / len(v) for k, v in cells.items()}  # mean over repeats, never the best of them
    rows = [
        {
            "filters": f,
            "conv_layers": c,
            "ours": ours.get((f, c)),
            "runs": len(cells.get((f, c), [])),
            "paper": PAPER_EXTRACTORS[(f, c)],
        }
        for f in FILTERS
        for c in CONV_LAYERS
    ]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), dpi=100)
    for ax, key, title in (
        (axes[0], "ours", "these runs: best-epoch val. accuracy, %\n(mean over repeats)"),
        (axes[1], "paper", "Bird & Lotfi 2024 (CIFAKE, %)"),
    ):
        grid = np.full((len(FILTERS), len(CONV_LAYERS)), np.nan)
        for row in rows:
            if row[key] is not None:
                grid[FILTERS.index(row["filters"]), CONV_LAYERS.index(row["conv_layers"])] = row[key]
        im = ax.imshow(grid, cmap="viridis", aspect="auto")
        for i in range(len(FILTERS)):
            for j in range(len(CONV_LAYERS)):
                if not math.isnan(grid[i, j]):
                    r, g, b, _ = im.cmap(im.norm(grid[i, j]))  # dark text on light cells (viridis' yellow)
                    ink = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"
                    ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", color=ink, fontsize=8)
        ax.set_xticks(range(len(CONV_LAYERS)), [str(c) for c in CONV_LAYERS])
        ax.set_yticks(range(len(FILTERS)), [str(f) for f in FILTERS])
        ax.set_xlabel("conv layers")
        ax.set_ylabel("filters")
        ax.set_title(title, fontsize=9)
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.tight_layout()
    return fig_png(fig), rows


def params_axis(ax, counts: list[int]) -> None:
    """A log x axis for model sizes that span a factor of 3 or more; else plain whole-number ticks (on a
    log axis, variants of one size, e.g. 289,194 and 289,195 parameters, print overlapping labels)."""
    if max(counts) >= 3 * min(counts):
        ax.set_xscale("log")
    else:
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
        ax.xaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))


def accuracy_vs_params_png(runs: list[RunRecord]) -> bytes | None:
    pts = [
        (r.params, _val_accuracy(r), r.topology or r.model)
        for r in runs
        if r.params and _val_accuracy(r) is not None
    ]
    if not pts:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    ax.scatter([p for p, _, _ in pts], [100 * a for _, a, _ in pts], s=18, alpha=0.7)
    groups: dict[tuple[int, str], list[float]] = {}
    for p, a, label in pts:
        groups.setdefault((p, label), []).append(100 * a)
    # one label per model (not one per repeat); with many models only the most accurate are labelled,
    # since labels of models with equal accuracy would print on top of each other
    ranked = sorted(groups.items(), key=lambda kv: -max(kv[1]))
    shown = ranked if len(ranked) <= MAX_LABELS else ranked[:MAX_LABELS]
    params_axis(ax, [p for p, _, _ in pts])
    ax.autoscale_view()
    low, high = ax.get_ylim()
    if high > 100:  # no accuracy above 100%: keep the margin below the top
        ax.set_ylim(min(low, 100 - 2 * (high - 100)), 100.5)
    placed: list[
        tuple[float, float, float]
    ] = []  # labels' (x, y, width) in pixels: an overlapping one moves up
    for (p, label), accs in shown:
        text = label if len(accs) == 1 else f"{label} ({len(accs)} runs)"
        x, y = ax.transData.transform((p, max(accs)))
        dy = 4
        width = 6.2 * len(text) + 8  # about 6 px per character at font size 7, plus the offset
        while any(px - width < x < px + pw and abs(y + dy - py) < 10 for px, py, pw in placed):
            dy += 10
        placed.append((x, y + dy, width))
        ax.annotate(text, (p, max(accs)), xytext=(5, dy), textcoords="offset points", fontsize=7,
                    arrowprops={"arrowstyle": "-", "lw": 0.4, "color": "grey"} if dy > 4 else None)  # fmt: skip
    if len(shown) < len(ranked):
        ax.set_title(
            f"the {MAX_LABELS} most accurate of {len(ranked)} models labelled (all in runs.csv)", fontsize=9
        )
    ax.set_xlabel("parameters")
    ax.set_ylabel("best-epoch validation accuracy (%)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig_png(fig)
