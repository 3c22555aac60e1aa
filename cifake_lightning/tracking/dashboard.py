"""The run-comparison dashboard of `cifake report`: one self-contained HTML page plus its PNGs.

Figures are drawn in tracking/figures.py and the W&B Report variant is tracking/wandb_report.py; this
module writes the table, CSV/JSON and the HTML page. Sections: a sortable table of runs (model/topology, parameters, epochs, validation and test accuracy,
F1, AUROC, wall time); per-epoch learning curves of all runs on shared axes (seed 002 asks for learning
progress per epoch); the paper's 12 feature extractors as a filters x conv-layers heat map beside the
accuracies Bird & Lotfi published; accuracy against parameter count.
"""

from __future__ import annotations

import base64
import fnmatch
import html
import io
import json
import math
import os
import statistics
from datetime import datetime, timezone
from pathlib import Path

from ..utils import write_atomic
from .figures import accuracy_vs_params_png, extractor_heatmap_png, learning_curves_png
from .runs import RunRecord, repeat_groups

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


def _ood_order(col: str) -> tuple:
    """OOD columns grouped by test data, then mean, worst, detected, FPRs."""
    tag, metric = col.split(": ", 1)
    rank = ["unseen mean AUROC", "unseen worst AUROC", "detected@thr"]
    if metric in rank:
        return (tag, rank.index(metric), metric)
    return (tag, len(rank) + metric.startswith("FPR"), metric)  # per-kind AUROCs, then FPRs


def _percent(column: str) -> bool:
    """Whether a column holds a share shown as a percentage (FPRs, detected shares)."""
    return "FPR" in column or "detected" in column


def _cell(v, column: str = "") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if column == "fit_s" and isinstance(v, int | float):
        return f"{v:,.0f}"
    if isinstance(v, float) and _percent(column):
        return f"{100 * v:.1f}%"
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 10 else f"{v:.1f}"
    if isinstance(v, int):
        return f"{v:,d}"
    return html.escape(str(v))


_SCRIPT = """
(function () {
  var table = document.getElementById('runs'), body = table.tBodies[0];
  var heads = Array.from(table.tHead.rows[0].cells);
  heads.forEach(function (th, col) {
    th.addEventListener('click', function () {
      var asc = th.dataset.dir !== 'asc';
      heads.forEach(function (h) { h.dataset.dir = ''; h.querySelector('.arrow').textContent = ''; });
      th.dataset.dir = asc ? 'asc' : 'desc';
      th.querySelector('.arrow').textContent = asc ? ' \u25b2' : ' \u25bc';
      var rows = Array.from(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col].dataset.v, y = b.cells[col].dataset.v;
        var nx = parseFloat(x), ny = parseFloat(y);
        if (x === '' && y !== '') return 1;
        if (y === '' && x !== '') return -1;
        if (!isNaN(nx) && !isNaN(ny)) return asc ? nx - ny : ny - nx;
        return asc ? x.localeCompare(y) : y.localeCompare(x);
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
  var filters = Array.from(document.querySelectorAll('.filter'));
  function apply() {
    var shown = {};
    Array.from(body.rows).forEach(function (r) {
      var ok = filters.every(function (f) {
        var v = f.value.trim().toLowerCase();
        if (!v) return true;
        var have = (r.dataset[f.dataset.key] || '').toLowerCase();
        return f.dataset.key === 'text' ? r.textContent.toLowerCase().indexOf(v) >= 0
             : have.split(', ').indexOf(v) >= 0 || have === v;
      });
      r.style.display = ok ? '' : 'none';
      shown[r.dataset.run] = ok;
    });
    document.querySelectorAll('[data-curve]').forEach(function (el) {
      var on = shown[el.dataset.curve] && !el.closest('svg').dataset['off_' + el.dataset.idx];
      el.style.display = on ? '' : 'none';
    });
    document.querySelectorAll('.legend-item').forEach(function (li) {  // filtered-out runs leave the legend too
      li.style.display = shown[li.dataset.run] ? '' : 'none';
    });
    document.getElementById('count').textContent =
      Object.values(shown).filter(function (x) { return x; }).length + ' of ' + body.rows.length + ' runs shown';
  }
  filters.forEach(function (f) { f.addEventListener('input', apply); f.addEventListener('change', apply); });
  // index.html#model=X&text=Y pre-sets the filters (links that open a filtered view)
  location.hash.replace(/^#/, '').split('&').forEach(function (kv) {
    var i = kv.indexOf('='); if (i < 0) return;
    var key = decodeURIComponent(kv.slice(0, i)), val = decodeURIComponent(kv.slice(i + 1));
    filters.forEach(function (f) { if (f.dataset.key === key) f.value = val; });
  });
  document.querySelectorAll('.legend-item').forEach(function (li) {
    li.addEventListener('click', function () {
      var svg = document.getElementById(li.dataset.svg), key = 'off_' + li.dataset.idx;
      if (svg.dataset[key]) { delete svg.dataset[key]; li.classList.remove('off'); }
      else { svg.dataset[key] = '1'; li.classList.add('off'); }
      apply();
    });
  });
  document.getElementById('metric').addEventListener('change', function (e) {
    document.querySelectorAll('.curves').forEach(function (d) {
      d.style.display = d.dataset.metric === e.target.value ? '' : 'none';
    });
  });
  apply();
  document.body.dataset.ready = '1';
})();
"""

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf"]  # fmt: skip
CURVE_METRICS = ("val/acc", "val/loss", "train/loss_epoch", "val/auroc")


def tick_labels(values: list[float]) -> list[str]:
    """The shortest labels (3 to 9 significant digits) that tell distinct axis ticks apart: accuracies
    between 0.998 and 1 must not all read "1"."""
    for digits in range(3, 10):
        labels = [f"{v:.{digits}g}" for v in values]
        if len(set(labels)) == len(set(values)):
            return labels
    return labels


def _svg_curves(runs: list[tuple[int, RunRecord]], metric: str, sid: str) -> str:
    """An inline SVG of `metric` per epoch for every (colour index, run) (hover a point), or ''."""
    series = [(i, r, r.curves.get(metric) or []) for i, r in runs]
    series = [(i, r, c) for i, r, c in series if c]
    if not series:
        return ""
    xs = [e for _, _, c in series for e, _ in c]
    ys = [v for _, _, c in series for _, v in c if math.isfinite(v)]
    if not ys:
        return ""
    x0, x1 = min(xs), max(max(xs), min(xs) + 1)
    y0, y1 = min(ys), max(ys)
    if y1 - y0 < 1e-9:
        y0, y1 = y0 - 0.5, y1 + 0.5
    w, h, m = 720, 320, 48

    def px(e):
        return m + (e - x0) / (x1 - x0) * (w - 2 * m)

    def py(v):
        return h - m + -(v - y0) / (y1 - y0) * (h - 2 * m)

    parts = [
        f'<svg id="{sid}" width="{w}" height="{h}" role="img" aria-label="{html.escape(metric)} per epoch">'
    ]
    parts.append(
        f'<rect x="{m}" y="{m}" width="{w - 2 * m}" height="{h - 2 * m}" fill="none" stroke="#ccc"/>'
    )
    ticks = [y0 + (y1 - y0) * k / 4 for k in range(5)]
    for v, label in zip(ticks, tick_labels(ticks)):
        parts.append(f'<text x="{m - 4}" y="{py(v) + 4:.1f}" font-size="10" text-anchor="end">{label}</text>')
    for e in sorted(set(xs)):
        parts.append(
            f'<text x="{px(e):.1f}" y="{h - m + 14}" font-size="10" text-anchor="middle">{e + 1}</text>'
        )  # 1-based, as the static figure
    parts.append(f'<text x="{w / 2}" y="{h - 8}" font-size="11" text-anchor="middle">epoch</text>')
    parts.append(f'<text x="12" y="{m - 12}" font-size="11">{html.escape(metric)}</text>')
    for i, r, c in series:
        col = PALETTE[i % len(PALETTE)]
        pts = " ".join(f"{px(e):.1f},{py(v):.1f}" for e, v in c if math.isfinite(v))
        name = html.escape(r.name)
        parts.append(
            f'<g data-curve="{name}" data-idx="{i}"><polyline points="{pts}" fill="none" stroke="{col}" stroke-width="1.5"/>'
        )
        for e, v in c:
            if math.isfinite(v):
                parts.append(
                    f'<circle cx="{px(e):.1f}" cy="{py(v):.1f}" r="3" fill="{col}">'
                    f"<title>{name}, epoch {e + 1}: {html.escape(metric)} = {v:.4f}</title></circle>"
                )
        parts.append("</g>")
    parts.append("</svg>")
    legend = "".join(
        f'<span class="legend-item" data-svg="{sid}" data-idx="{i}" data-run="{html.escape(r.name)}" '
        'title="click to hide/show">'
        f'<span class="swatch" style="background:{PALETTE[i % len(PALETTE)]}"></span>{html.escape(r.name)}</span>'
        for i, r, _ in series
    )
    return "".join(parts) + f'<div class="legend">{legend}</div>'


def _breakable(text: str) -> str:
    """Escaped text that may wrap after / _ . and @ (long OOD column names in a narrow header)."""
    out = html.escape(text)
    for ch in ("/", "_", "@", "."):
        out = out.replace(ch, ch + "<wbr>")
    return out


def _mean_sd(values: list, column: str) -> str:
    """'mean ± sd' of a column's finite values, formatted like its cells ('' when there are none); a
    cell from fewer runs than the variant has (a run not yet tested, still training or failed) says how
    many: '0.747 (1 of 2)'."""
    v = [float(x) for x in values if isinstance(x, int | float) and math.isfinite(x)]
    if not v:
        return ""
    ints = [x for x in values if isinstance(x, int) and not isinstance(x, bool)]
    if ints and len(ints) == len(v) and len(set(ints)) == 1:  # a count every repeat shares (params, epochs)
        text = str(ints[0])
    else:
        pct = _percent(column)
        scale = 100.0 if pct else 1.0
        digits = 1 if pct else 0 if column == "fit_s" else 3  # seconds need no decimals
        text = f"{scale * statistics.fmean(v):.{digits}f}" + ("%" if pct else "")
        if len(v) > 1:
            text += f" ± {scale * statistics.stdev(v):.{digits}f}"
    return text if len(v) == len(values) else f"{text} ({len(v)} of {len(values)})"


def repeats_table(
    groups: list[tuple[str, list[RunRecord]]], columns: list[str]
) -> tuple[list[str], list[list[str]]]:
    """One row per variant (runs that differ only in seed): n, seeds, mean ± sd of every column. A
    variant with no value in any column (a grid run, whose results are its exported topologies') is
    left out."""
    head = ["variant", "n", "seeds", *columns]
    body = []
    for label, members in groups:
        rows = [m.row() for m in members]
        seeds = sorted({str(r.get("hp.seed")) for r in rows if r.get("hp.seed") is not None})
        cells = [_mean_sd([r.get(c) for r in rows], c) for c in columns]
        if columns and not any(cells):
            continue
        body.append([label, str(len(members)), ",".join(seeds), *cells])
    return head, body


def repeats_markdown(head: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines) + "\n"


def _select(key: str, label: str, values: list[str]) -> str:
    opts = "".join(f'<option value="{html.escape(v)}">{html.escape(v)}</option>' for v in values)
    return f'<label>{label} <select class="filter" data-key="{key}"><option value="">(all)</option>{opts}</select></label>'


def _links(r: RunRecord, out: Path) -> str:
    items = []
    for label, target in r.links.items():
        rel = os.path.relpath(target, out)
        items.append(f'<a href="{html.escape(Path(rel).as_posix())}">{html.escape(label)}</a>')
    return "<br>".join(items)


def write_dashboard(
    runs: list[RunRecord],
    out: str | Path,
    title: str = "cifake-lightning runs",
    source: str = "",
    repeat_columns: list[str] | None = None,
) -> dict[str, Path]:
    """Write index.html (one page, no network needed) + PNGs + runs.json/csv into `out`; repeats.md
    (mean ± sd over seeds) with the columns matching `repeat_columns` (fnmatch patterns; default: the
    validation accuracy/AUROC and every OOD column)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = [r.row() for r in runs]
    columns, ood_cols = _columns(runs, rows)
    paths = _write_tables(out, rows, columns)
    repeat_html = _repeats(out, runs, rows, ood_cols, repeat_columns, paths)
    figures = _figures(out, runs, paths)
    head, body = _runs_table(runs, rows, columns, out)
    curves, options = _curves(runs)
    imgs = "".join(
        f'<h2>{html.escape(t)}</h2><img alt="{k}" src="data:image/png;base64,{base64.b64encode(d).decode()}">'
        for k, t, d in figures
    )
    filters = (
        _select("model", "model", sorted({r.model for r in runs}))
        + _select("data", "trained on", sorted({r.train_data for r in runs if r.train_data}))
        + _select("tag", "tag", sorted({t for r in runs for t in r.tags}))
        + '<label>text <input class="filter" data-key="text" placeholder="any cell"></label>'
    )
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    page = PAGE.format(
        title=html.escape(title),
        intro=f"{len(runs)} runs{(' from ' + html.escape(source)) if source else ''}; generated {when}.",
        filters=filters,
        head=head,
        body=body,
        repeats=repeat_html,
        options=options,
        curves=curves,
        images=imgs,
        script=_SCRIPT,
    )
    paths["html"] = write_atomic(out / "index.html", page)
    return paths


def _columns(runs: list[RunRecord], rows: list[dict]) -> tuple[list[str], list[str]]:
    """The table's columns (those some run fills, OOD summaries after the tests, hyper-parameters last)
    and the OOD ones among them."""
    hp_cols = sorted({k for r in rows for k in r if k.startswith("hp.")})
    # per-source AUROCs stay in runs.json and `--columns`; the page and runs.csv show the summaries
    ood_cols = sorted({f"{tag}: {m}" for run in runs for tag, summary in run.ood.items() for m in summary
                       if not m.startswith("AUROC ")}, key=_ood_order)  # fmt: skip
    filled = [c for c in COLUMNS if c in ("run", "model") or any(r.get(c) not in (None, "") for r in rows)]
    tail = ["other_tests"] if "other_tests" in filled else []
    columns = [*(c for c in filled if c != "other_tests"), *ood_cols, *tail, "train_data", "tags", *hp_cols]
    return columns, ood_cols


def _write_tables(out: Path, rows: list[dict], columns: list[str]) -> dict[str, Path]:
    paths = {"json": write_atomic(out / "runs.json", json.dumps(rows, indent=1, default=str))}
    buf = io.StringIO()
    buf.write(",".join(columns) + "\n")
    for r in rows:
        buf.write(
            ",".join("" if r.get(c) is None else str(r.get(c)).replace(",", ";") for c in columns) + "\n"
        )
    paths["csv"] = write_atomic(out / "runs.csv", buf.getvalue())
    return paths


def _repeats(out, runs, rows, ood_cols, repeat_columns, paths) -> str:
    """repeats.md and its HTML table: mean ± sd per variant of runs that differ only in seed (the form
    every README comparison takes); '' when no variant has repeats."""
    groups = repeat_groups(runs)
    if not any(len(members) > 1 for _, members in groups):
        return ""
    summary_cols = [c for c in ("val_acc", "val_auroc", *ood_cols) if any(r.get(c) is not None for r in rows)]
    if repeat_columns:
        every = list(dict.fromkeys(k for r in rows for k in r))
        summary_cols = [c for p in repeat_columns for c in every if fnmatch.fnmatchcase(c, p)]
    rhead, rbody = repeats_table(groups, summary_cols)
    paths["repeats"] = write_atomic(out / "repeats.md", repeats_markdown(rhead, rbody))
    return (
        "<h2>Repeats: mean ± sd over seeds</h2><p>Runs whose names differ only in their seed, one row per "
        "variant (also in repeats.md); a cell from fewer of the variant's runs says how many.</p>"
        '<table id="repeats"><thead><tr>'
        + "".join(f"<th>{_breakable(c)}</th>" for c in rhead)
        + "</tr></thead><tbody>"
        + "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>" for row in rbody)
        + "</tbody></table>"
    )


def _figures(out: Path, runs: list[RunRecord], paths: dict) -> list[tuple[str, str, bytes]]:
    """(key, title, PNG) of the static figures, each also written as <key>.png."""
    figures: list[tuple[str, str, bytes]] = []
    if runs:
        figures.append(
            ("learning_curves", "Learning curves (all runs, static copy)", learning_curves_png(runs))
        )
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
    return figures


HEADER_NOTES = {
    "val_acc": "validation split carved from the run's training data, at the lowest-val-loss epoch",
    "test_acc": "the run's own test split (see test_data); OOD tests are under other_tests and links",
    "fit_s": "wall time of cifake fit, seconds",
}


def _runs_table(runs: list[RunRecord], rows: list[dict], columns: list[str], out: Path) -> tuple[str, str]:
    """The sortable table's header and body rows (best validation accuracy first), cells titled with
    the data they were measured on."""
    head = "".join(
        f'<th title="{html.escape(HEADER_NOTES.get(c, c))}">{_breakable(c)}<span class="arrow"></span></th>'
        for c in [*columns, "links"]
    )
    body = []
    for run, r in sorted(zip(runs, rows), key=lambda t: -(t[1].get("val_acc") or 0)):
        cells = []
        for c in columns:
            v = r.get(c)
            tip = ""
            if c.startswith("val_") and c != "val_loss":
                tip = f' title="on the validation split of {html.escape(r.get("train_data") or "the training data")}"'
            elif c.startswith("test_") and c != "test_data":
                tip = f' title="on {html.escape(r.get("test_data") or "no test recorded")}"'
            elif ": " in c:
                tip = f' title="{html.escape(c)}: cifake test of this run on {html.escape(c.split(": ")[0])}"'
            elif c == "other_tests":
                tip = ' class="wide"'
            cells.append(f'<td data-v="{html.escape("" if v is None else str(v))}"{tip}>{_cell(v, c)}</td>')
        cells.append(f'<td data-v="">{_links(run, out)}</td>')
        attrs = (
            f'data-run="{html.escape(run.name)}" data-model="{html.escape(run.model)}" '
            f'data-data="{html.escape(run.train_data)}" data-tag="{html.escape(", ".join(run.tags))}"'
        )
        body.append(f"<tr {attrs}>{''.join(cells)}</tr>")
    return head, "".join(body)


def _curves(runs: list[RunRecord]) -> tuple[str, str]:
    """The interactive learning curves (one chart per training set and metric: runs trained on
    different data do not share an accuracy axis) and the metric chooser's options."""
    facets: dict[str, list[tuple[int, RunRecord]]] = {}
    for i, r in enumerate(runs):
        facets.setdefault(r.train_data, []).append((i, r))
    curves, shown_first = [], None
    for k, metric in enumerate(CURVE_METRICS):
        charts = []
        for f, (data, members) in enumerate(sorted(facets.items())):
            svg = _svg_curves(members, metric, f"curve{k}-{f}")
            if svg:
                caption = f"<h3>trained on {html.escape(data or '(unknown)')}</h3>" if len(facets) > 1 else ""
                charts.append(caption + svg)
        if charts:
            shown_first = shown_first or metric
            hidden = "" if metric == shown_first else ' style="display:none"'
            curves.append(f'<div class="curves" data-metric="{metric}"{hidden}>{"".join(charts)}</div>')
    options = "".join(
        f'<option value="{html.escape(m)}">{html.escape(m)}</option>'
        for m in CURVE_METRICS
        if any(r.curves.get(m) for r in runs)
    )
    return "".join(curves), options


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; font-size: 12px; }}
th, td {{ border: 1px solid #ccc; padding: 3px 6px; text-align: right; vertical-align: top; }}
th {{ background: #f0f0f0; cursor: pointer; position: sticky; top: 0; min-width: 4em; max-width: 9em; }}
td {{ max-width: 24em; overflow-wrap: break-word; }}
td:first-child {{ min-width: 20em; }}
td:nth-child(2), td:nth-child(3) {{ min-width: 8em; }}
td.wide {{ min-width: 18em; text-align: left; }}
td:nth-child(-n+3) {{ text-align: left; }}
td:last-child {{ text-align: left; white-space: nowrap; }}
.filters label {{ margin-right: 1em; font-size: 13px; }}
.legend {{ font-size: 12px; max-width: 720px; }}
.legend-item {{ cursor: pointer; margin-right: 1em; white-space: nowrap; }}
.legend-item.off {{ opacity: 0.35; text-decoration: line-through; }}
.swatch {{ display: inline-block; width: 10px; height: 10px; margin-right: 4px; }}
img {{ max-width: 100%; border: 1px solid #eee; }}
</style></head><body>
<h1>{title}</h1>
<p>{intro}
Validation metrics are taken at the epoch with the lowest validation loss, on the validation split carved
from each run's training data (<code>train_data</code>); test metrics come from <code>cifake test</code> on a
checkpoint of the run, on the data named in <code>test_data</code> (hover a cell to see it). Click a column
header to sort; filters hide runs from the table and the curves alike.</p>
<div class="filters">{filters} <span id="count"></span></div>
<table class="sortable" id="runs"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
{repeats}
<h2>Learning curves <select id="metric">{options}</select></h2>
<p style="font-size:12px">Hover a point for its value; click a run in the legend to hide or show it.</p>
{curves}
{images}
<script>{script}</script>
</body></html>
"""
