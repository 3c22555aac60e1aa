"""Collect finished runs for comparison: from local run folders (CSV logs) or the W&B API.

A local run is ``<save_dir>/<name>/version_N/`` with metrics.csv (CSVLogger), config.yaml (the resolved
config) and run_info_fit.json (parameters, wall time). Test results written by `cifake test` for a
checkpoint of that run (results/<run>/version_N/<checkpoint>/<data>/metrics.json) are attached to it.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

log = logging.getLogger(__name__)


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
    test: dict = field(default_factory=dict)  # test metrics on the run's own test split (see test_data)
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    test_data: str = ""  # what `test` was measured on: "<data module> <split> (<content hash>)"
    other_tests: list[str] = field(default_factory=list)  # tests on other data (OOD), by name
    hparams: dict = field(default_factory=dict)  # lr, batch size, seed, ... from the run's config
    tags: list[str] = field(default_factory=list)
    train_data: str = ""  # what the run was trained on: "<data module> <root folder name>"
    links: dict[str, str] = field(default_factory=dict)  # label -> path of test reports, explanation maps
    ood: dict[str, dict] = field(default_factory=dict)  # OOD test tag -> its summary (see ood_summary)
    explain: dict[str, float] = field(default_factory=dict)  # `cifake explain` summary (see explain_summary)
    variant: str = ""  # hash of the config without its seed: runs that differ only in seed share it

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
        r["test_data"] = self.test_data
        for tag, summary in self.ood.items():
            r.update({f"{tag}: {k}": v for k, v in summary.items()})
        r.update({f"explain: {k}": v for k, v in self.explain.items()})
        r["other_tests"] = "; ".join(self.other_tests)
        r["train_data"] = self.train_data
        r["tags"] = ", ".join(self.tags)
        r.update({f"hp.{k}": v for k, v in self.hparams.items()})
        return r


def best_epoch_metrics(curves: dict[str, list[tuple[int, float]]], prefix: str = "val/") -> dict:
    """The `prefix` metrics at the epoch with the lowest val/loss (the checkpoint callback's "best"),
    the same rule for local and W&B runs; {} without a validation loss."""
    if not curves.get("val/loss"):
        return {}
    best_epoch = min(curves["val/loss"], key=lambda t: t[1])[0]
    best = {k: v for k, c in curves.items() if k.startswith(prefix) for e, v in c if e == best_epoch}
    best["epoch"] = best_epoch
    return best


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


def _tests_by_run(results_dirs: list[Path]) -> dict[str, list[dict]]:
    """Every `cifake test` result, grouped by the run folder of the checkpoint it scored (each with
    `_folder`, where its report lives). A relative checkpoint path is taken from the folder holding
    results/ (where `cifake test` ran, runs/ beside results/)."""
    out: dict[str, list[dict]] = {}
    found = [(m, d) for d in results_dirs for m in d.glob("**/metrics.json")]
    for m, results_dir in sorted(found, key=lambda t: t[0].stat().st_mtime):
        try:
            data = json.loads(m.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        ckpt = data.get("ckpt_path")
        if ckpt:
            data["_folder"] = str(m.parent)
            ckpt = Path(ckpt) if Path(ckpt).is_absolute() else results_dir.resolve().parent / ckpt
            out.setdefault(str(ckpt.resolve().parent.parent), []).append(data)
    return out


def _explains_by_run(results_dirs: list[Path]) -> dict[str, dict]:
    """The newest `cifake explain` summary.json of each run folder (found by the checkpoint it names)."""
    out: dict[str, dict] = {}
    found = [m for d in results_dirs for m in d.glob("**/summary.json")]
    for m in sorted(found, key=lambda p: p.stat().st_mtime):
        try:
            data = json.loads(m.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(data, dict) and data.get("ckpt"):
            out[str(Path(data["ckpt"]).resolve().parent.parent)] = explain_summary(data)
    return out


def explain_summary(summary: dict) -> dict[str, float]:
    """summary.json of `cifake explain` -> flat columns "<group> <statistic>" (group: real, fake, all,
    fake - real, real/<class>; e.g. "fake integrated_gradients/centre_fraction", "all band_drop/ring 0")."""
    out: dict[str, float] = {}
    for group, stats in summary.items():
        if group == "settings" or not isinstance(stats, dict):
            continue
        for k, v in stats.items():
            if isinstance(v, dict):
                out.update({f"{group} {k}/{band}": float(x) for band, x in v.items()})
            elif k != "n" and isinstance(v, int | float):
                out[f"{group} {k}"] = float(v)
    return out


def _hparams(config: dict) -> dict:
    """The hyper-parameters a comparison table shows, from a resolved run config."""
    model = ((config or {}).get("model") or {}).get("init_args") or {}
    opt = (model.get("optimizer") or {}).get("init_args") or {}
    data = ((config or {}).get("data") or {}).get("init_args") or {}
    trainer = (config or {}).get("trainer") or {}
    aug = data.get("augment") or {}
    on = [k for k in ("hflip", "pad_crop", "resized_crop", "color_jitter", "blur", "jpeg", "rot90", "patch_mask")
          if aug.get(k)]  # fmt: skip
    pre = model.get("preprocess") or {}
    return {
        "lr": opt.get("lr"),
        "batch": data.get("batch_size"),
        "seed": (config or {}).get("seed_everything"),
        "max_epochs": trainer.get("max_epochs"),
        "precision": trainer.get("precision"),
        "augment": "+".join(on) or "none",
        "preprocess": str(pre.get("class_path", "")).rsplit(".", 1)[-1] if isinstance(pre, dict) else "",
        "aligned_fakes": "+".join(
            str(a.get("kind", "")) for a in (data.get("aligned_fakes") or []) if isinstance(a, dict)
        ),
    }


#: config keys that do not make a different experiment: the seed and where or how a run is logged
_NOT_VARIANT = {
    (): ("seed_everything", "name", "ckpt_path"),
    ("data", "init_args"): ("seed", "progress", "cache_dir"),
    ("trainer",): ("default_root_dir", "enable_progress_bar", "logger"),
    ("tracking",): ("save_dir", "group", "tags", "wandb", "project", "entity", "offline"),
}


def variant_key(config: dict) -> str:
    """A short hash of a run's config without its seed and logging places: repeats of one experiment
    with other seeds share it (`cifake report` summarises them as mean +- sd)."""
    c = copy.deepcopy(config or {})
    for path, keys in _NOT_VARIANT.items():
        node = c
        for p in path:
            node = node.get(p) if isinstance(node, dict) else None
        if isinstance(node, dict):
            for k in keys:
                node.pop(k, None)
    return hashlib.sha1(json.dumps(c, sort_keys=True, default=str).encode()).hexdigest()[:10]


def _data_label(data: dict) -> str:
    if not data:
        return "unknown data"
    root = Path(str(data.get("root", ""))).name
    return (
        f"{data.get('data', '?')} {root} {data.get('split', '?')} ({str(data.get('content_hash', ''))[:8]})"
    )


def ood_tag(data: dict) -> str:
    """A short name for the data an OOD test ran on: its root folder's name, plus the first folder of
    its sources when they all share one (pubgen-dev's png/ and jpg75/ variants are two tags)."""
    root = Path(str(data.get("root", ""))).name or "?"
    first = {str(s).split("/", 1)[0] for s in data.get("sources") or [] if "/" in str(s)}
    heads = {str(s).split("/", 1)[0] for s in data.get("sources") or []}
    return f"{root}/{first.pop()}" if len(first) == 1 and len(heads) == 1 else root


def ood_summary(report: dict) -> dict:
    """The numbers an OOD test exists for, from its report.json: unseen mean/worst AUROC (against the
    test reals), the share of unseen fakes detected at the validation threshold, the FPR at that
    threshold of every real source, and the AUROC of every fake source ("AUROC <source>")."""
    unseen = report.get("unseen") or {}
    if not unseen.get("unseen"):
        return {}
    mean, worst = unseen.get("mean") or {}, unseen.get("worst") or {}
    out = {
        "unseen mean AUROC": mean.get("auroc_vs_test_real"),
        "unseen worst AUROC": worst.get("auroc_vs_test_real"),
        "detected@thr": mean.get("detected@thr"),
    }
    for row in (
        unseen.get("by_kind") or []
    ):  # generator kinds (diffusion, GAN, ...) where the data declares them
        out[f"{row['kind']} AUROC"] = row.get("mean_auroc")
    for row in unseen.get("real_fpr") or []:
        out[f"FPR@thr {row['source']}"] = row.get("fpr@thr")
    for row in report.get("sources") or []:  # per fake source (runs.json and `--columns` only)
        if row.get("label") == "fake":
            out[f"AUROC {row['source']}"] = row.get("auroc")
    return out


def _ood_tests(tests: list[dict]) -> dict[str, dict]:
    """tag -> summary of the newest OOD test on each data (tests are in time order)."""
    out: dict[str, dict] = {}
    for t in tests:
        rep = Path(t["_folder"]) / "report.json"
        if not rep.is_file():
            continue
        try:
            summary = ood_summary(json.loads(rep.read_text()))
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            continue
        if summary:
            out[ood_tag(t.get("data") or {})] = summary
    return out


def _own_test(tests: list[dict], config: dict) -> tuple[dict, str, list[str]]:
    """The newest test on the run's own data module and root (its in-distribution test split), and
    labels of the others; a test on other data (an OOD set) is never shown as the run's test accuracy."""
    own_cfg = (config or {}).get("data") or {}
    own_class = str(own_cfg.get("class_path", "")).rsplit(".", 1)[-1]
    own_root = (own_cfg.get("init_args") or {}).get("root")
    own, label, others = {}, "", []
    for t in tests:
        d = t.get("data") or {}
        same = d.get("data") == own_class and d.get("split") == "test"
        if same and own_root:
            same = Path(str(d.get("root", ""))).resolve() == Path(str(own_root)).expanduser().resolve()
        if same:
            own, label = t.get("metrics", {}), _data_label(d)
        else:
            others.append(_data_label(d))
    return own, label, others


def collect_local(
    save_dirs: list[str | Path], results_dirs: str | Path | list[str | Path] = "results"
) -> list[RunRecord]:
    """Every fit run (a version folder with metrics.csv and config.yaml) under the given folders, with
    the `cifake test` results found under `results_dirs` attached."""
    dirs = results_dirs if isinstance(results_dirs, list) else [results_dirs]
    tests = _tests_by_run([Path(d) for d in dirs])
    explains = _explains_by_run([Path(d) for d in dirs])
    runs = []
    for base in map(Path, save_dirs):
        for metrics in sorted(base.glob("**/version_*/metrics.csv")):
            d = metrics.parent
            if not (d / "config.yaml").is_file() or not (d / "checkpoints").is_dir():
                continue  # test/validate runs have no checkpoints
            try:
                runs.append(_local_run(d, tests, explains))
            except (OSError, ValueError, KeyError, TypeError, AttributeError, yaml.YAMLError) as e:
                # one damaged run (a truncated run_info_fit.json, a hand-edited config.yaml) must not
                # take the whole comparison down: skip it and say which and why
                first = (str(e).splitlines() or [""])[0][:160]
                log.warning("skipping run %s: %s: %s", d, type(e).__name__, first)
    return runs


def _local_run(d: Path, tests: dict[str, list[dict]], explains: dict[str, dict]) -> RunRecord:
    """The RunRecord of one version folder (raises on unreadable files; collect_local skips those)."""
    config = yaml.safe_load((d / "config.yaml").read_text()) or {}
    if not isinstance(config, dict):
        raise ValueError("config.yaml does not hold a mapping")
    info = json.loads((d / "run_info_fit.json").read_text()) if (d / "run_info_fit.json").is_file() else {}
    curves = _read_metrics(d / "metrics.csv")
    model, topo = _model_name(config)
    epochs = 1 + max((e for c in curves.values() for e, _ in c), default=-1)
    best = best_epoch_metrics(curves)
    run_tests = tests.get(str(d.resolve()), [])
    test, test_data, others = _own_test(run_tests, config)
    links = {}
    for t in run_tests:
        rep = Path(t["_folder"]) / "report.html"
        if rep.is_file():
            links[f"test: {_data_label(t.get('data') or {})}"] = str(rep)
    explain = sorted(d.glob("explain/epoch_*"))
    if explain:
        links["explanation maps"] = str(explain[-1])
    data_cfg = config.get("data") or {}
    root = (data_cfg.get("init_args") or {}).get("root") or ""
    tags = ((config.get("tracking") or {}).get("tags")) or []
    return RunRecord(
        name=f"{d.parent.name}/{d.name}",
        path=str(d),
        model=model,
        topology=topo,
        params=info.get("params"),
        epochs=epochs,
        fit_seconds=info.get("fit_seconds"),
        best=best,
        test=test,
        curves=curves,
        test_data=test_data,
        other_tests=others,
        hparams=_hparams(config),
        tags=list(tags),
        train_data=f"{str(data_cfg.get('class_path', '')).rsplit('.', 1)[-1]} {Path(str(root)).name}".strip(),
        links=links,
        ood=_ood_tests(run_tests),
        explain=explains.get(str(d.resolve()), {}),
        variant=variant_key(config),
    )


def collect_wandb(project: str, entity: str | None = None, limit: int = 500) -> list[RunRecord]:
    """Runs of a W&B project through the public API (needs network and an API key)."""
    import wandb  # seconds to import: only to read a W&B project

    api = wandb.Api(timeout=30)
    runs = []
    for r in api.runs(f"{entity}/{project}" if entity else project, per_page=min(limit, 200))[:limit]:
        cfg = {k: v for k, v in r.config.items()}
        model, topo = _model_name(cfg.get("config", cfg))
        keys = ["val/acc", "val/loss", "val/f1", "val/auroc"]
        hist = r.history(keys=["epoch", *keys], pandas=False)
        curves: dict[str, list[tuple[int, float]]] = {}
        for row in hist:
            for k in keys:
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
                best=best_epoch_metrics(curves),  # same rule as local runs, not the last logged value
                test={k: summary[k] for k in ("test/acc", "test/f1", "test/auroc") if k in summary},
                curves=curves,
                test_data="W&B summary (data not recorded)" if "test/acc" in summary else "",
                variant=variant_key(cfg.get("config", cfg)),
            )
        )
    return runs


# a seed in a run name (sweep names, `_s0` suffixes) and a local sweep's hash of a too-long name
_SEED_IN_NAME = re.compile(r"(^|[-_])(seed_everything|seed)=\d+|[-_]s\d+$|-[0-9a-f]{6}$")


def repeat_groups(runs: list[RunRecord]) -> list[tuple[str, list[RunRecord]]]:
    """Repeats of one experiment with other seeds, in first-seen order, each with a label.

    Runs whose names differ only in a seed token (`seed_everything=N`, `seed=N`, a final `_sN`; a
    local sweep's hash of a long name) form one variant labelled by the name without it, when their
    seeds are all different; otherwise (e.g. version_0 and version_1 of one name, same seed) they are
    told apart by their configs without the seed (`variant`).
    """
    by_label: dict[str, list[RunRecord]] = {}
    for r in runs:
        by_label.setdefault(_SEED_IN_NAME.sub("", r.name.split("/")[0]), []).append(r)
    out = []
    for label, members in by_label.items():
        seeds = [m.hparams.get("seed") for m in members]
        if None not in seeds and len(set(seeds)) == len(seeds):
            out.append((label, members))
            continue
        split: dict[str, list[RunRecord]] = {}
        for m in members:
            split.setdefault(m.variant or m.name, []).append(m)
        out += [(label if len(split) == 1 else f"{label} ({key})", group) for key, group in split.items()]
    return out


def finite(v) -> bool:
    return isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v))
