"""The run-comparison dashboard of `cifake report`: one self-contained HTML page plus its PNGs.

Figures are drawn in tracking/figures.py and the W&B Report variant is tracking/wandb_report.py; this
module writes the table, CSV/JSON and the HTML page. Sections: a sortable table of runs (model/topology, parameters, epochs, validation and test accuracy,
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
from .figures import accuracy_vs_params_png, extractor_heatmap_png, learning_curves_png
from .runs import RunRecord

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
