"""Everything `cifake test` writes besides metrics.json: per-source table, calibration, bias, galleries,
robustness, predictions — as JSON + Markdown + PNG in one folder, and to W&B when a run is attached.

Every output is a function of PredictionTables (evaluate/table.py): the clean pass, and one table per
robustness perturbation, each produced by the same Lightning predict path."""

from __future__ import annotations

import html
import logging
import math
import sys
from pathlib import Path

import torch
from markdown_it import MarkdownIt
from rich.console import Console
from rich.table import Table

from ..data.layout import CIFAR10_CLASSES
from ..models.calibration import ece
from ..utils import write_atomic, write_json
from .metrics import (
    COLUMNS,
    UNSEEN_COLUMNS,
    cell,
    markdown,
    nll,
    per_class_accuracy,
    real_bias_by_class,
    source_table,
    unseen_summary,
)
from .plots import gallery_png, reliability_png
from .table import PredictionTable

log = logging.getLogger(__name__)


def write_source_report(
    out: Path,
    table: PredictionTable,
    images: torch.Tensor | None = None,
    robustness: dict[str, PredictionTable] | None = None,
    gallery_size: int = 16,
    ece_bins: int = 15,
    reference_real: str | None = None,
    reference_fake: str | None = None,
    loggers: list | None = None,
    seen: list[str] | None = None,
    ood_real: list[str] | None = None,
) -> dict:
    """Write the report files of one predictions table into `out`; returns the report (also report.json).

    A pure function of the table (and, for galleries, the split's uint8 `images` in manifest row order,
    and the tables of robustness passes, keyed by perturbation): no data module, no Lightning. The
    pieces each take the table: `report_metrics` (numbers), `report_figures` (PNGs), `report_markdown`
    (report.md), `_to_wandb` (W&B).
    """
    if seen is None and reference_fake is not None:
        seen = [reference_fake]
    report = report_metrics(
        table, robustness, ece_bins, gallery_size, reference_real, reference_fake, seen, ood_real
    )
    out.mkdir(parents=True, exist_ok=True)
    figures = report_figures(out, table, report, images if gallery_size > 0 else None, ece_bins)
    write_json(out / "report.json", report)
    md = report_markdown(report, table, figures)
    write_atomic(out / "report.md", md)
    write_atomic(out / "report.html", report_html(md, f"Test report: {table.checkpoint}"))
    write_atomic(out / "predictions.csv", table.to_csv())
    _print_table(report["sources"], report.get("unseen"))
    if loggers:
        _to_wandb(loggers, report, out)
    return report


GALLERIES = {
    "false_positives": "real images judged fake at the validation threshold",
    "false_negatives": "fakes judged real at the validation threshold",
}


def report_metrics(
    table: PredictionTable,
    robustness: dict[str, PredictionTable] | None = None,
    ece_bins: int = 15,
    gallery_size: int = 16,
    reference_real: str | None = None,
    reference_fake: str | None = None,
    seen: list[str] | None = None,
    ood_real: list[str] | None = None,
) -> dict:
    """Every number of a test report (what report.json holds), from the table alone."""
    names, prob, label, cal = list(table.manifest.source_names), table.prob, table.label, table.calibration
    refs = {"reference_real": reference_real, "reference_fake": reference_fake}
    report: dict = {
        "checkpoint": table.checkpoint,
        "data": table.manifest.describe(),
        "threshold": {"validation": cal.threshold, "rule": cal.rule, "fixed": 0.5},
        "calibration": {
            **cal.to_dict(),
            "test_nll_raw": nll(table.raw_prob, label),
            "test_nll": nll(prob, label),
            "test_ece_raw": ece(table.raw_prob, label, ece_bins),
            "test_ece": ece(prob, label, ece_bins),
        },
        "sources": source_table(table, ece_bins, **refs),
        "references": refs,
        "seen": list(seen or []),
    }
    unseen = unseen_summary(table, seen, reference_real, ood_real)
    if unseen is not None:
        report["unseen"] = unseen
    if (table.content_class >= 0).any():
        report["per_class"] = per_class_accuracy(table)
        report["real_bias_by_class"] = real_bias_by_class(table)
    files, source = table.files, table.source
    for kind in GALLERIES:
        report[kind] = [
            {"file": files[int(i)], "source": names[int(source[i])], "p_fake": float(prob[i])}
            for i in most_confident_mistakes(table, kind, gallery_size)
        ]
    if robustness:
        report["robustness"] = {name: source_table(t, ece_bins, **refs) for name, t in robustness.items()}
        keys = ("auroc", "ap", "real_acc", "fake_acc", "real_acc@thr", "fake_acc@thr")
        report["robustness_all"] = [
            {"perturbation": "none", **{k: report["sources"][-1][k] for k in keys}},
            *(
                {"perturbation": n, **{k: rows[-1][k] for k in keys}}
                for n, rows in report["robustness"].items()
            ),
        ]
    return report


def most_confident_mistakes(table: PredictionTable, kind: str, n: int) -> torch.Tensor:
    """Table positions of the `n` most confident false positives (reals called fake at the validation
    threshold, highest logit first) or false negatives (fakes called real, lowest first)."""
    label = table.label
    sel, key = (label == 0, -table.logit) if kind == "false_positives" else (label == 1, table.logit)
    wrong = torch.nonzero(sel & (table.decision != label), as_tuple=False).flatten()
    return wrong[torch.argsort(key[wrong])][:n]


def report_figures(
    out: Path, table: PredictionTable, report: dict, images: torch.Tensor | None, ece_bins: int = 15
) -> list[str]:
    """The report's PNGs (reliability diagram; galleries and per-class false positives when the
    split's `images` are given); returns the names of the files written."""
    names, written = list(table.manifest.source_names), []
    reliability_png(
        table.prob, table.label, table.source, names, out / "reliability.png", bins=ece_bins,
        title="calibrated P(fake): reliability and spread per source", threshold=table.threshold,
    )  # fmt: skip
    written.append("reliability")
    if images is None:
        return written
    if report.get("real_bias_by_class"):
        _class_gallery(out / "false_positives_by_class.png", table, images, per_class=4)
        written.append("false_positives_by_class")
    for kind, desc in GALLERIES.items():
        rows = report.get(kind) or []
        if rows:
            imgs = images[table.index[most_confident_mistakes(table, kind, len(rows))]]
            caps = [f"p={r['p_fake']:.3f} {r['source']}\n{Path(r['file']).name}" for r in rows]
            gallery_png(imgs, caps, out / f"{kind}.png", f"most confident {kind.replace('_', ' ')}: {desc}")
            written.append(kind)
    return written


def report_html(md: str, title: str) -> str:
    """report.md as one HTML page that opens offline beside its PNGs (the comparison page links it)."""
    body = MarkdownIt("commonmark").enable("table").render(md)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; color: #222; max-width: 1400px; }}
table {{ border-collapse: collapse; font-size: 12px; margin: 0.5em 0 1.2em; }}
th, td {{ border: 1px solid #ccc; padding: 2px 6px; text-align: right; }}
th {{ background: #f0f0f0; }} td:first-child, th:first-child {{ text-align: left; }}
img {{ max-width: 100%; border: 1px solid #eee; }} code {{ background: #f5f5f5; padding: 0 3px; }}
</style></head><body>
{body}</body></html>
"""


def report_markdown(report: dict, table: PredictionTable, figures: list[str]) -> str:
    """report.md: the report's tables in reading order, with the figures that were written."""
    m, cal, refs = table.manifest, table.calibration, report["references"]
    against = {c: refs[f"reference_{c}"] or f"all {c} test images" for c in ("real", "fake")}
    md = [
        "# Test report",
        "",
        f"Checkpoint: `{table.checkpoint}`",
        "",
        f"Data: {m.data} `{m.root}`, split `{m.split}` (content hash {m.content_hash[:10]}): {len(table)} images "
        f"from {len(set(table.source.tolist()))} source(s).",
        "",
        f"AUROC, AP and TPR@FPR of a one-class source rank it against the other class: fake sources against "
        f"{against['real']}, real sources against {against['fake']}.",
        "",
        "Thresholds: `accuracy`, `real_acc`, `fake_acc` call an image fake at raw P(fake) >= 0.5; the `@thr` "
        f"columns use the threshold chosen on validation data at fit time: {cal.describe()}. ECE, NLL and "
        "mean P(fake) are of the calibrated P(fake).",
        "",
        markdown(report["sources"], COLUMNS),
    ]
    unseen = report.get("unseen")
    if unseen is None and report["seen"]:
        md += [
            f"Seen (a generator of this kind made training fakes): {', '.join(report['seen'])}; no fake "
            "source of an unseen kind in this data.",
            "",
        ]
    if unseen is not None:
        md += [
            "## Generalisation: fake sources of unseen generator kinds",
            "",
            f"Seen (a generator of this kind made training fakes): {', '.join(unseen['seen']) or 'none declared'}. "
            f"Unseen: {', '.join(unseen['unseen'])}. Real photographs never seen in training (OOD reals): "
            f"{', '.join(unseen['ood_real']) or 'none'}; in-distribution test reals: {unseen['test_real']}.",
            "",
            markdown([*unseen["rows"], unseen["mean"], unseen["worst"]], UNSEEN_COLUMNS),
            *(
                [
                    "Per generator kind (AUROC against the test reals; detected share at the validation threshold):",
                    "",
                    markdown(unseen["by_kind"]),
                ]
                if unseen["by_kind"]
                else []
            ),  # fmt: skip
            "False-positive rate of each real source, at the validation threshold and at 0.5:",
            "",
            markdown(unseen["real_fpr"]),
        ]
    c = report["calibration"]
    md += [
        "## Calibration",
        "",
        f"{cal.describe()}.",
        "",
        "| data | NLL raw | NLL calibrated | ECE raw | ECE calibrated |",
        "|---|---|---|---|---|",
        f"| validation (fit) | {c['val_nll_raw']:.4f} | {c['val_nll']:.4f} | {c['val_ece_raw']:.4f} | {c['val_ece']:.4f} |",
        f"| this test data | {c['test_nll_raw']:.4f} | {c['test_nll']:.4f} | {c['test_ece_raw']:.4f} | {c['test_ece']:.4f} |",
        "",
    ]
    if "per_class" in report:
        md += ["## Accuracy per content class", "", markdown(report["per_class"])]
    if report.get("real_bias_by_class"):
        md += [
            "## False positives on real images, per content class",
            "",
            "Share of real images of each class called fake at raw P(fake) >= 0.5 (`fpr`) and at the "
            "validation threshold (`fpr@thr`), and their mean calibrated P(fake).",
            "",
            markdown(report["real_bias_by_class"]),
        ]
        if "false_positives_by_class" in figures:
            md += ["![false positives by class](false_positives_by_class.png)", ""]
    md += ["![reliability](reliability.png)", ""]
    for kind, desc in GALLERIES.items():
        if kind in figures:
            md += [f"## Most confident {kind.replace('_', ' ')} ({desc})", "", f"![{kind}]({kind}.png)", ""]
    if "robustness" in report:
        src = report["sources"]
        acc = [{"perturbation": "none", **{r["source"]: r["accuracy"] for r in src}}]
        auc = [{"perturbation": "none", **{r["source"]: r["auroc"] for r in src}}]
        for name, rows in report["robustness"].items():
            acc.append({"perturbation": name, **{r["source"]: r["accuracy"] for r in rows}})
            auc.append({"perturbation": name, **{r["source"]: r["auroc"] for r in rows}})
        md += [
            "## Robustness: all images (both classes perturbed; accuracies at 0.5 and at the validation threshold)",
            "",
            markdown(report["robustness_all"]),
            "## Robustness: accuracy",
            "",
            markdown(acc),
            "## Robustness: AUROC",
            "",
            markdown(auc),
        ]
    return "\n".join(md) + "\n"


def _class_gallery(path: Path, table: PredictionTable, images: torch.Tensor, per_class: int = 4) -> None:
    """One row per content class: its most confidently wrong real images (blank where fewer are wrong)."""
    prob, label, cc = table.prob, table.label, table.content_class
    tiles, caps = [], []
    blank = torch.full_like(images[0], 255)
    for c in sorted(v for v in set(cc[label == 0].tolist()) if v >= 0):
        wrong = torch.nonzero((cc == c) & (label == 0) & (table.decision == 1), as_tuple=False).flatten()
        wrong = wrong[torch.argsort(-table.logit[wrong])][:per_class]
        if not len(wrong):
            continue  # a class without false positives gets no row
        name = CIFAR10_CLASSES[c] if c < len(CIFAR10_CLASSES) else str(c)
        for k in range(per_class):
            if k < len(wrong):
                i = int(wrong[k])
                tiles.append(images[table.index[i]])
                caps.append(f"{name}\np={float(prob[i]):.3f}")
            else:
                tiles.append(blank)
                caps.append("")
    if tiles:
        title = "reals judged fake, by class"  # the canvas is only per_class tiles wide
        gallery_png(torch.stack(tiles), caps, path, title, cols=per_class)


TERMINAL_COLUMNS = ["source", "label", "n", "acc@thr", "auroc", "tpr@5%fpr", "mean_p_fake"]


def _print_table(rows: list[dict], unseen: dict | None = None) -> None:
    """The terminal's share of the report: a few columns that fit a 100-column terminal (every column is
    in report.md), then one line of the generalisation summary. Piped to a file or a log, the table keeps
    its natural width (rich would otherwise fold the source names to 80 columns)."""
    t = Table(title="per-source test metrics (all columns: report.md)")
    for c in TERMINAL_COLUMNS:
        t.add_column(c, justify="left" if c in ("source", "label") else "right", overflow="fold")
    for r in rows:
        t.add_row(*(cell(r.get(c, "")) for c in TERMINAL_COLUMNS))
    console = Console(stderr=False, width=None if sys.stdout.isatty() else 200)
    console.print(t)
    if unseen and unseen.get("unseen"):
        mean, worst = unseen.get("mean") or {}, unseen.get("worst") or {}
        fpr = ", ".join(f"{r['source']} {100 * r['fpr@thr']:.1f}%" for r in unseen.get("real_fpr") or [])
        console.print(
            f"unseen fakes ({len(unseen['unseen'])} sources): mean AUROC {mean.get('auroc_vs_test_real', math.nan):.4f}, "
            f"worst {worst.get('auroc_vs_test_real', math.nan):.4f}, detected at the validation threshold "
            f"{100 * mean.get('detected@thr', math.nan):.1f}%; FPR at that threshold: {fpr}",
            soft_wrap=True,
        )


def ood_scalars(report: dict) -> dict[str, float]:
    """The report's per-source and unseen-summary numbers as flat scalars (W&B summary keys), so a W&B
    runs table can be sorted by, e.g., `ood/unseen_worst_auroc` or `ood/png/fake_sd1/auroc`."""
    out: dict[str, float] = {}

    def put(key: str, v) -> None:
        if isinstance(v, int | float) and math.isfinite(v):
            out[key] = float(v)

    for r in report.get("sources") or []:
        for k in ("auroc", "acc@thr", "real_acc@thr", "fake_acc@thr", "tpr@1%fpr", "tpr@5%fpr"):
            put(f"ood/{r['source']}/{k}", r.get(k))
    unseen = report.get("unseen") or {}
    for which in ("mean", "worst"):
        row = unseen.get(which) or {}
        put(f"ood/unseen_{which}_auroc", row.get("auroc_vs_test_real"))
        put(f"ood/unseen_{which}_detected@thr", row.get("detected@thr"))
    for row in unseen.get("real_fpr") or []:
        put(f"ood/{row['source']}/fpr@thr", row.get("fpr@thr"))
    for row in unseen.get("by_kind") or []:
        kind = str(row.get("kind", "")).replace(" ", "_")
        put(f"ood/kind/{kind}/mean_auroc", row.get("mean_auroc"))
        put(f"ood/kind/{kind}/worst_auroc", row.get("worst_auroc"))
    return out


def _to_wandb(loggers: list, report: dict, out: Path) -> None:
    loggers = [lg for lg in loggers if type(lg).__name__ == "WandbLogger"]
    if not loggers:
        return
    import wandb  # seconds to import: only when a W&B logger is attached

    table = wandb.Table(columns=COLUMNS, data=[[r.get(c) for c in COLUMNS] for r in report["sources"]])
    payload = {"test/sources": table, **ood_scalars(report)}
    for name in ("reliability", "false_positives", "false_negatives"):
        if (out / f"{name}.png").is_file():
            payload[f"test/{name}"] = wandb.Image(str(out / f"{name}.png"))
    for lg in loggers:
        lg.experiment.log(payload)
