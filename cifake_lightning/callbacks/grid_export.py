"""Split a GridClassifier run into one ordinary run per topology (same files as separate `cifake fit`s).

For each topology it writes ``<save_dir>/<grid name>-<topology>/version_0/`` holding metrics.csv
(its columns renamed to val/acc, val/loss, ...), config.yaml (the config of the equivalent single run:
ImageClassifier + BirdLotfiCNN(topology)), run_info_fit.json and checkpoints/last.ckpt that
`cifake test --ckpt` and `cifake explain --ckpt` load; and, when W&B is enabled, one W&B run per
topology (grouped under the grid's name) carrying its config and per-epoch history.
"""

from __future__ import annotations

import copy
import csv
import io
import json
from pathlib import Path

import lightning
import lightning as L
import torch
import yaml

from ..tracking.loggers import resolve_wandb_mode
from ..utils import run_dir, write_atomic, write_json


class GridExport(L.Callback):
    """Args: wandb: also create one W&B run per topology (offline without an API key)."""

    def __init__(self, wandb: bool = False) -> None:
        self.wandb = wandb
        self.exported: dict[str, Path] = {}

    def on_fit_end(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero or not hasattr(pl_module, "topologies"):
            return
        log_dir = run_dir(trainer)
        if log_dir is None:
            return
        grid_name = log_dir.parent.name
        save_dir = log_dir.parent.parent
        rows = _read_csv(log_dir / "metrics.csv")
        config = (
            yaml.safe_load((log_dir / "config.yaml").read_text())
            if (log_dir / "config.yaml").is_file()
            else {}
        )
        info = (
            json.loads((log_dir / "run_info_fit.json").read_text())
            if (log_dir / "run_info_fit.json").is_file()
            else {}
        )
        n_models = len(pl_module.topologies)
        for name in pl_module.topologies:
            out = save_dir / f"{grid_name}-{name}" / "version_0"
            out.mkdir(parents=True, exist_ok=True)
            own = _split_rows(rows, name)
            _write_csv(out / "metrics.csv", own)
            single = _single_config(config, name, pl_module.hparams)
            write_atomic(out / "config.yaml", yaml.safe_dump(single, sort_keys=False))
            backbone = pl_module.models[pl_module._key(name)]
            backbone = getattr(backbone, "_orig_mod", backbone)
            params = sum(p.numel() for p in backbone.parameters())
            write_json(
                out / "run_info_fit.json",
                {**info, "params": params, "grid": grid_name, "fit_seconds_shared_by": n_models},
            )
            self._checkpoint(trainer, pl_module, backbone, single, out / "checkpoints" / "last.ckpt", name)
            self.exported[name] = out
            if self.wandb:
                self._wandb_run(grid_name, name, single, own, params)

    @staticmethod
    def _checkpoint(trainer, pl_module, backbone, single_config: dict, path: Path, name: str = "") -> None:
        model = single_config["model"]
        hparams = {
            "_class_path": model["class_path"],
            **model.get("init_args", {}),
            "_instantiator": "lightning.pytorch.cli.instantiate_module",
        }
        state = {f"detector.backbone.{k}": v.detach().cpu() for k, v in backbone.state_dict().items()}
        ckpt = {
            "state_dict": state,
            "hyper_parameters": hparams,
            "epoch": trainer.current_epoch,
            "global_step": trainer.global_step,
            "pytorch-lightning_version": lightning.__version__,
        }
        scores = getattr(pl_module, "val_scores", {}).get(name)  # validation logits: calibration + threshold
        if scores is not None:
            ckpt["cifake_val_scores"] = {k: v.clone() for k, v in scores.items()}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(ckpt, tmp)
        tmp.replace(path)

    def _wandb_run(self, grid_name: str, name: str, config: dict, rows: list[dict], params: int) -> None:
        import wandb  # seconds to import: only with GridExport(wandb=True)

        mode = resolve_wandb_mode("auto")
        if mode == "disabled":
            return
        run = wandb.init(
            project="cifake-lightning",
            group=grid_name,
            name=f"{grid_name}-{name}",
            job_type="grid",
            config={"config": config, "run_info": {"params": params}},
            mode=mode,
            reinit="create_new",
        )
        for row in rows:
            run.log({k: float(v) for k, v in row.items() if v not in ("", None) and k != "step"})
        run.finish()


def _read_csv(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path) as f:
        return list(csv.DictReader(f))


def _split_rows(rows: list[dict], name: str) -> list[dict]:
    prefix = f"{name}/"
    out = []
    for r in rows:
        own = {k[len(prefix) :]: v for k, v in r.items() if k.startswith(prefix) and v not in ("", None)}
        if own:
            out.append({"epoch": r.get("epoch", ""), "step": r.get("step", ""), **own})
    return out


def _write_csv(path: Path, rows: list[dict]) -> None:
    keys = ["epoch", "step"] + sorted({k for r in rows for k in r} - {"epoch", "step"})
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    w.writerows(rows)
    write_atomic(path, buf.getvalue())


def _single_config(grid_config: dict, topology: str, hparams) -> dict:
    cfg = copy.deepcopy(grid_config) or {}
    grid_model = (cfg.get("model") or {}).get("init_args", {})
    cfg["model"] = {
        "class_path": "cifake_lightning.training.ImageClassifier",
        "init_args": {
            "backbone": {
                "class_path": "cifake_lightning.models.BirdLotfiCNN",
                "init_args": {"topology": topology, "init": hparams.get("init", "torch")},
            },
            "normalize": hparams.get("normalize", "cifar10"),
            "optimizer": grid_model.get(
                "optimizer", {"class_path": "torch.optim.Adam", "init_args": {"lr": 0.001}}
            ),
        },
    }
    return cfg
