"""Collect finished runs for comparison: from local run folders (CSV logs) or the W&B API.

A local run is ``<save_dir>/<name>/version_N/`` with metrics.csv (CSVLogger), config.yaml (the resolved
config) and run_info_fit.json (parameters, wall time). Test results written by `cifake test` for a
checkpoint of that run (results/<run>/version_N/<checkpoint>/<data>/metrics.json) are attached to it.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml


@dataclass
class RunRecord:
    name: str
    path: str
    model: str
    topology: str | None
    params: int | None
    epochs: int
    fit_seconds: float | None
    best: dict = field(default_factory=dict)  # val metrics at the epoch with the lowest val/loss
    test: dict = field(default_factory=dict)
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)

    def row(self) -> dict:
        r = {
            "run": self.name,
            "model": self.model,
            "topology": self.topology or "",
            "params": self.params,
            "epochs": self.epochs,
            "fit_s": self.fit_seconds,
        }
        for k in ("acc", "f1", "auroc", "loss"):
            r[f"val_{k}"] = self.best.get(f"val/{k}")
        for k in ("acc", "f1", "auroc"):
            r[f"test_{k}"] = self.test.get(f"test/{k}")
        return r


def _read_metrics(path: Path) -> dict[str, list[tuple[int, float]]]:
    curves: dict[str, list[tuple[int, float]]] = {}
    with open(path) as f:
        for row in csv.DictReader(f):
            if not row.get("epoch"):
                continue
            epoch = int(float(row["epoch"]))
            for k, v in row.items():
                if k in ("epoch", "step") or v in ("", None) or k.endswith("_step"):
                    continue
                curves.setdefault(k, []).append((epoch, float(v)))
    return curves


def _model_name(config: dict) -> tuple[str, str | None]:
    model = (config or {}).get("model") or {}
    init = model.get("init_args", {}) or {}
    backbone = init.get("backbone") or {}
    cls = (backbone.get("class_path") or model.get("class_path") or "?").rsplit(".", 1)[-1]
    topo = (backbone.get("init_args") or {}).get("topology") or (backbone.get("init_args") or {}).get(
        "model_name"
    )
    return cls, topo


def _tests_by_checkpoint(results_dir: Path) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for m in sorted(results_dir.glob("**/metrics.json"), key=lambda p: p.stat().st_mtime):
        try:
            data = json.loads(m.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        ckpt = data.get("ckpt_path")
        if ckpt:
            out[str(Path(ckpt).resolve().parent.parent)] = data.get("metrics", {})
    return out


def collect_local(save_dirs: list[str | Path], results_dir: str | Path = "results") -> list[RunRecord]:
    """Every fit run (a version folder with metrics.csv and config.yaml) under the given folders."""
    tests = _tests_by_checkpoint(Path(results_dir))
    runs = []
    for base in map(Path, save_dirs):
        for metrics in sorted(base.glob("**/version_*/metrics.csv")):
            d = metrics.parent
            cfg_path = d / "config.yaml"
            if not cfg_path.is_file() or not (d / "checkpoints").is_dir():
                continue  # test/validate runs have no checkpoints
            config = yaml.safe_load(cfg_path.read_text()) or {}
            info = (
                json.loads((d / "run_info_fit.json").read_text())
                if (d / "run_info_fit.json").is_file()
                else {}
            )
            curves = _read_metrics(metrics)
            model, topo = _model_name(config)
            epochs = 1 + max((e for c in curves.values() for e, _ in c), default=-1)
            best = {}
            if curves.get("val/loss"):
                best_epoch = min(curves["val/loss"], key=lambda t: t[1])[0]
                best = {
                    k: v for k, c in curves.items() if k.startswith("val/") for e, v in c if e == best_epoch
                }
                best["epoch"] = best_epoch
            runs.append(
                RunRecord(
                    name=f"{d.parent.name}/{d.name}",
                    path=str(d),
                    model=model,
                    topology=topo,
                    params=info.get("params"),
                    epochs=epochs,
                    fit_seconds=info.get("fit_seconds"),
                    best=best,
                    test=tests.get(str(d.resolve()), {}),
                    curves=curves,
                )
            )
    return runs


def collect_wandb(project: str, entity: str | None = None, limit: int = 500) -> list[RunRecord]:
    """Runs of a W&B project through the public API (needs network and an API key)."""
    import wandb

    api = wandb.Api(timeout=30)
    runs = []
    for r in api.runs(f"{entity}/{project}" if entity else project, per_page=min(limit, 200))[:limit]:
        cfg = {k: v for k, v in r.config.items()}
        model, topo = _model_name(cfg.get("config", cfg))
        hist = r.history(keys=["epoch", "val/acc", "val/loss"], pandas=False)
        curves: dict[str, list[tuple[int, float]]] = {}
        for row in hist:
            for k in ("val/acc", "val/loss"):
                if row.get(k) is not None and row.get("epoch") is not None:
                    curves.setdefault(k, []).append((int(row["epoch"]), float(row[k])))
        summary = dict(r.summary)
        runs.append(
            RunRecord(
                name=r.name,
                path=r.url,
                model=model,
                topology=topo,
                params=(cfg.get("run_info") or {}).get("params"),
                epochs=int(summary.get("epoch", 0)) + 1,
                fit_seconds=summary.get("_runtime"),
                best={k: summary[k] for k in ("val/acc", "val/f1", "val/auroc", "val/loss") if k in summary},
                test={k: summary[k] for k in ("test/acc", "test/f1", "test/auroc") if k in summary},
                curves=curves,
            )
        )
    return runs


def finite(v) -> bool:
    return isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v))
