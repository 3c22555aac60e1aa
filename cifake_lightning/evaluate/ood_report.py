"""Everything `cifake test` writes besides metrics.json: per-source table, calibration, bias, galleries,
robustness, predictions — as JSON + Markdown + PNG in one folder, and to W&B when a run is attached."""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path

import torch

from ..utils import write_atomic, write_json
from .ood import COLUMNS, markdown, per_class_accuracy, source_table
from .plots import gallery_png, reliability_png
from .robustness import PERTURBATIONS, predict_perturbed

log = logging.getLogger(__name__)


def _split(dm):
    splits = getattr(dm, "splits", None) or {}
    return splits.get("test")


def write_source_report(
    out: Path,
    preds: dict[str, torch.Tensor],
    dm,
    model=None,
    trainer=None,
    robustness: bool = False,
    gallery_size: int = 16,
    ece_bins: int = 15,
    reference_real: str | None = None,
    reference_fake: str | None = None,
) -> dict:
    """Write the report files into `out`; returns the report dict (also saved as report.json)."""
    split = _split(dm)
    names = split.source_names if split is not None else ["test"]
    prob, label = preds["prob"].float(), preds["label"].long()
    source = preds.get("source", torch.zeros_like(label))
    order = torch.argsort(preds["index"]) if "index" in preds else torch.arange(len(label))
    prob, label, source = prob[order], label[order], source[order]
    index = preds["index"][order] if "index" in preds else order
    cc = preds["content_class"][order] if "content_class" in preds else torch.full_like(label, -1)

    refs = {"reference_real": reference_real, "reference_fake": reference_fake}
    report: dict = {"sources": source_table(prob, label, source, names, ece_bins, **refs), "references": refs}
    against = {c: refs[f"reference_{c}"] or f"all {c} test images" for c in ("real", "fake")}
    md = [
        "# Test report",
        "",
        f"{len(label)} images from {len(set(source.tolist()))} source(s).",
        "",
        f"AUROC, AP and TPR@FPR of a one-class source rank it against the other class: fake sources against "
        f"{against['real']}, real sources against {against['fake']}.",
        "",
        markdown(report["sources"], COLUMNS),
    ]
    if (cc >= 0).any():
        report["per_class"] = per_class_accuracy(prob, label, cc)
        md += ["## Accuracy per content class", "", markdown(report["per_class"])]
    out.mkdir(parents=True, exist_ok=True)
    reliability_png(prob, label, source, names, out / "reliability.png", title="reliability of P(fake)")
    md += ["## Calibration", "", "![reliability](reliability.png)", ""]

    files = split.files if split is not None else [str(i) for i in range(len(label))]
    if split is not None and gallery_size > 0:
        for kind, sel, key, desc in (
            ("false_positives", label == 0, -prob, "real images judged fake"),
            ("false_negatives", label == 1, prob, "fakes judged real"),
        ):
            wrong = torch.nonzero(sel & ((prob >= 0.5).long() != label), as_tuple=False).flatten()
            wrong = wrong[torch.argsort(key[wrong])][:gallery_size]
            report[kind] = [
                {"file": files[int(index[i])], "source": names[int(source[i])], "p_fake": float(prob[i])}
                for i in wrong
            ]
            if len(wrong):
                imgs = split.images[index[wrong]]
                caps = [f"{Path(r['file']).name}\np={r['p_fake']:.3f}" for r in report[kind]]
                gallery_png(
                    imgs, caps, out / f"{kind}.png", f"most confident {kind.replace('_', ' ')}: {desc}"
                )
                md += [
                    f"## Most confident {kind.replace('_', ' ')} ({desc})",
                    "",
                    f"![{kind}]({kind}.png)",
                    "",
                ]

    if robustness and model is not None and split is not None:
        report["robustness"] = {}
        acc_rows, auc_rows = [], []
        for name in PERTURBATIONS:
            p = predict_perturbed(model, split.images[index], name)
            rows = source_table(p, label, source, names, ece_bins, **refs)
            report["robustness"][name] = rows
            acc_rows.append({"perturbation": name, **{r["source"]: r["accuracy"] for r in rows}})
            auc_rows.append({"perturbation": name, **{r["source"]: r["auroc"] for r in rows}})
        clean_acc = {"perturbation": "none", **{r["source"]: r["accuracy"] for r in report["sources"]}}
        clean_auc = {"perturbation": "none", **{r["source"]: r["auroc"] for r in report["sources"]}}
        md += [
            "## Robustness: accuracy",
            "",
            markdown([clean_acc, *acc_rows]),
            "## Robustness: AUROC",
            "",
            markdown([clean_auc, *auc_rows]),
        ]

    write_json(out / "report.json", report)
    write_atomic(out / "report.md", "\n".join(md) + "\n")
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["file", "source", "label", "p_fake", "content_class"])
    for i in range(len(label)):
        w.writerow(
            [files[int(index[i])], names[int(source[i])], int(label[i]), f"{float(prob[i]):.6f}", int(cc[i])]
        )
    write_atomic(out / "predictions.csv", buf.getvalue())
    _print_table(report["sources"])
    if trainer is not None:
        _to_wandb(trainer, report, out)
    return report


def _print_table(rows: list[dict]) -> None:
    import math

    from rich.console import Console
    from rich.table import Table

    t = Table(title="per-source test metrics")
    for c in COLUMNS:
        t.add_column(c, justify="left" if c in ("source", "label") else "right")
    for r in rows:
        t.add_row(
            *[
                "n/a"
                if isinstance(r.get(c), float) and math.isnan(r[c])
                else f"{r[c]:.4f}"
                if isinstance(r.get(c), float)
                else str(r.get(c, ""))
                for c in COLUMNS
            ]
        )
    Console(width=200).print(t)


def _to_wandb(trainer, report: dict, out: Path) -> None:
    loggers = [lg for lg in trainer.loggers if type(lg).__name__ == "WandbLogger"]
    if not loggers:
        return
    import wandb

    table = wandb.Table(columns=COLUMNS, data=[[r.get(c) for c in COLUMNS] for r in report["sources"]])
    payload = {"test/sources": table}
    for name in ("reliability", "false_positives", "false_negatives"):
        if (out / f"{name}.png").is_file():
            payload[f"test/{name}"] = wandb.Image(str(out / f"{name}.png"))
    for lg in loggers:
        lg.experiment.log(payload)
