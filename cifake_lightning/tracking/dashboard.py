"""The run-comparison dashboard of `cifake report`: one self-contained HTML page plus its PNGs.

Sections: a sortable table of runs (model/topology, parameters, epochs, validation and test accuracy,
F1, AUROC, wall time); per-epoch learning curves of all runs on shared axes (seed 002 asks for learning
progress per epoch); the paper's 12 feature extractors as a filters x conv-layers heat map beside the
accuracies Bird & Lotfi published; accuracy against parameter count.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from datetime import datetime, timezone
from pathlib import Path

from ..utils import write_atomic
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
COLUMNS = [
    "run",
    "model",
    "topology",
    "params",
    "epochs",
    "fit_s",
    "val_acc",
    "val_f1",
    "val_auroc",
    "val_loss",
    "test_acc",
    "test_f1",
    "test_auroc",
    "test_data",
    "other_tests",
]


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _val_accuracy(r: RunRecord) -> float | None:
    """Best-epoch validation accuracy: the one number every run has and that is measured alike
    (figures never mix it with test accuracies on whatever data a run happened to be tested on)."""
    v = r.best.get("val/acc")
    return v if finite(v) else None


def learning_curves_png(runs: list[RunRecord]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), dpi=100)
    for ax, key, title in zip(
        axes,
        ("val/acc", "val/loss", "train/loss_epoch"),
        ("validation accuracy", "validation loss", "training loss"),
    ):
        for r in runs:
            pts = sorted(r.curves.get(key, []))
            if pts:
                ax.plot(
                    [e + 1 for e, _ in pts],
                    [v for _, v in pts],
                    lw=1,
                    marker=".",
                    ms=3,
                    label=r.topology or r.name,
                )
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    if len(runs) <= 12:
        axes[0].legend(fontsize=6)
    fig.tight_layout()
    return _png(fig)


def extractor_heatmap_png(runs: list[RunRecord]) -> tuple[bytes | None, list[dict]]:
    """Ours vs the paper for conv{F}x{L} topologies (no dense head); None when no such runs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from ..models.bird_lotfi import CONV_LAYERS, FILTERS, parse_topology

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
        (axes[0], "ours", "these runs: best-epoch validation accuracy, %, mean over repeats"),
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
                    ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", color="white", fontsize=8)
        ax.set_xticks(range(len(CONV_LAYERS)), [str(c) for c in CONV_LAYERS])
        ax.set_yticks(range(len(FILTERS)), [str(f) for f in FILTERS])
        ax.set_xlabel("conv layers")
        ax.set_ylabel("filters")
        ax.set_title(title, fontsize=9)
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.tight_layout()
    return _png(fig), rows


def accuracy_vs_params_png(runs: list[RunRecord]) -> bytes | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [
        (r.params, _val_accuracy(r), r.topology or r.model)
        for r in runs
        if r.params and _val_accuracy(r) is not None
    ]
    if not pts:
        return None
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.scatter([p for p, _, _ in pts], [100 * a for _, a, _ in pts], s=18)
    for p, a, label in pts:
        ax.annotate(label, (p, 100 * a), fontsize=5, alpha=0.7)
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("best-epoch validation accuracy (%)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def _cell(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 10 else f"{v:.1f}"
    if isinstance(v, int):
        return f"{v:,d}"
    return html.escape(str(v))


_SCRIPT = """
document.querySelectorAll('table.sortable th').forEach(function (th, col) {
  th.addEventListener('click', function () {
    var table = th.closest('table'), body = table.tBodies[0];
    var asc = th.dataset.dir !== 'asc'; th.dataset.dir = asc ? 'asc' : 'desc';
    var rows = Array.from(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[col].dataset.v, y = b.cells[col].dataset.v;
      var nx = parseFloat(x), ny = parseFloat(y);
      if (!isNaN(nx) && !isNaN(ny)) return asc ? nx - ny : ny - nx;
      return asc ? x.localeCompare(y) : y.localeCompare(x);
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
"""


def write_dashboard(
    runs: list[RunRecord], out: str | Path, title: str = "cifake-lightning runs", source: str = ""
) -> dict[str, Path]:
    """Write index.html (self-contained) + PNGs + runs.json/csv into `out`; returns the paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    rows = [r.row() for r in runs]
    paths["json"] = write_atomic(out / "runs.json", json.dumps(rows, indent=1, default=str))
    buf = io.StringIO()
    buf.write(",".join(COLUMNS) + "\n")
    for r in rows:
        buf.write(",".join("" if r.get(c) is None else str(r.get(c)) for c in COLUMNS) + "\n")
    paths["csv"] = write_atomic(out / "runs.csv", buf.getvalue())
    figures: list[tuple[str, str, bytes]] = []
    if runs:
        figures.append(("learning_curves", "Learning curves (all runs)", learning_curves_png(runs)))
    heat, heat_rows = extractor_heatmap_png(runs)
    if heat:
        figures.append(
            ("extractors_vs_paper", "The paper's 12 feature extractors: this run set vs published", heat)
        )
        paths["extractors_json"] = write_atomic(out / "extractors.json", json.dumps(heat_rows, indent=1))
    scatter = accuracy_vs_params_png(runs)
    if scatter:
        figures.append(("accuracy_vs_params", "Accuracy vs parameters", scatter))
    for key, _, data in figures:
        paths[key] = write_atomic(out / f"{key}.png", data)

    head = "".join(f"<th>{c}</th>" for c in COLUMNS)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td data-v="{html.escape("" if r.get(c) is None else str(r.get(c)))}">{_cell(r.get(c))}</td>'
            for c in COLUMNS
        )
        + "</tr>"
        for r in sorted(rows, key=lambda r: -(r.get("val_acc") or 0))
    )
    imgs = "".join(
        f'<h2>{html.escape(t)}</h2><img alt="{k}" src="data:image/png;base64,{base64.b64encode(d).decode()}">'
        for k, t, d in figures
    )
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; font-size: 12px; }}
th, td {{ border: 1px solid #ccc; padding: 3px 6px; text-align: right; }}
th {{ background: #f0f0f0; cursor: pointer; position: sticky; top: 0; }}
td:nth-child(-n+3) {{ text-align: left; }}
img {{ max-width: 100%; border: 1px solid #eee; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{len(runs)} runs{(" from " + html.escape(source)) if source else ""}; generated {when}.
Validation metrics are taken at the epoch with the lowest validation loss; test metrics come from
<code>cifake test</code> on a checkpoint of the run. Click a column header to sort.</p>
<table class="sortable" id="runs"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
{imgs}
<script>{_SCRIPT}</script>
</body></html>
"""
    paths["html"] = write_atomic(out / "index.html", page)
    return paths


def wandb_report(project: str, entity: str | None, title: str):
    """A W&B Report with the same views (needs `wandb-workspaces`; `.save()` needs network + API key)."""
    import wandb_workspaces.reports.v2 as wr

    runset = wr.Runset(entity=entity or "", project=project, name="all runs")
    return wr.Report(
        project=project,
        entity=entity or "",
        title=title,
        description="Generated by `cifake report --wandb-report`: learning curves, accuracy vs parameters, "
        "and the hyper-parameters of every run.",
        blocks=[
            wr.H1(text="Learning progress"),
            wr.PanelGrid(
                runsets=[runset],
                panels=[
                    wr.LinePlot(title="validation accuracy", x="epoch", y=["val/acc"]),
                    wr.LinePlot(title="validation loss", x="epoch", y=["val/loss"]),
                    wr.LinePlot(title="training loss", x="epoch", y=["train/loss_epoch"]),
                ],
            ),
            wr.H1(text="Comparison"),
            wr.PanelGrid(
                runsets=[runset],
                panels=[
                    wr.ScatterPlot(
                        title="accuracy vs parameters",
                        x=wr.Config("run_info.params"),
                        y=wr.SummaryMetric("val/acc"),
                        log_x=True,
                    ),
                    wr.ParallelCoordinatesPlot(
                        columns=[
                            wr.ParallelCoordinatesPlotColumn(
                                metric=wr.Config("config.model.init_args.backbone.init_args.topology")
                            ),
                            wr.ParallelCoordinatesPlotColumn(metric=wr.SummaryMetric("val/acc")),
                            wr.ParallelCoordinatesPlotColumn(metric=wr.SummaryMetric("val/auroc")),
                        ]
                    ),
                ],
            ),
        ],
    )
