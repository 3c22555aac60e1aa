"""Save a run's provenance next to its metrics: versions, git commit, machine, data manifests.

Together with the resolved config that LightningCLI writes (config.yaml), this is what is needed to
tell whether two runs are comparable, or why a metric changed.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import lightning as L
import torch

from ..utils import run_dir, write_json


def git_commit(cwd: str | Path | None = None) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd or Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
        if out.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd or Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def package_versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for pkg in (
        "cifake-lightning",
        "torch",
        "torchvision",
        "lightning",
        "timm",
        "torchmetrics",
        "captum",
        "wandb",
        "jsonargparse",
        "kornia",
        "numpy",
        "pillow",
    ):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def machine_info() -> dict:
    info = {
        "host": platform.node(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_count"] = torch.cuda.device_count()
    return info


def fit_banner(trainer, pl_module) -> str:
    """One line saying what is trained on what: model, data, split sizes, epochs, precision, run folder."""
    backbone = type(getattr(pl_module, "backbone", pl_module)).__name__
    params = sum(p.numel() for p in getattr(pl_module, "backbone", pl_module).parameters())
    what = f"training {type(pl_module).__name__}({backbone}, {params / 1e6:.2f}M parameters)"
    dm = trainer.datamodule
    data = ""
    if dm is not None and hasattr(dm, "summary"):
        try:
            s = dm.summary()
            root = getattr(dm, "root", None) or (dm._root() if hasattr(dm, "_root") else "")
            parts = [
                f"{name} {d['n']:,} ({d['real']:,} real / {d['fake']:,} fake)"
                for name, d in s.items()
                if name in ("train", "val")
            ]
            data = f" on {type(dm).__name__} {root}: " + ", ".join(parts)
        except Exception:  # noqa: BLE001 - a banner must never stop a run
            data = f" on {type(dm).__name__}"
    folder = run_dir(trainer)
    return f"{what}{data}; {trainer.max_epochs} epoch(s) at most, precision {trainer.precision}" + (
        f"; run folder {folder}" if folder is not None else ""
    )


class RunInfo(L.Callback):
    """Writes ``run_info.json`` into the run's log dir at setup and adds it to the loggers' config."""

    def on_fit_start(self, trainer, pl_module) -> None:
        self._t0 = time.perf_counter()
        if trainer.is_global_zero:
            print(f"cifake: {fit_banner(trainer, pl_module)}", file=sys.stderr, flush=True)

    def on_fit_end(self, trainer, pl_module) -> None:
        """Record wall time and epochs of the fit (read by `cifake report`)."""
        info = dict(getattr(pl_module, "run_info", {}))
        info["fit_seconds"] = round(time.perf_counter() - getattr(self, "_t0", time.perf_counter()), 2)
        info["epochs_completed"] = trainer.current_epoch
        self._write(trainer, info, "fit")

    def _write(self, trainer, info: dict, stage: str) -> None:
        folder = run_dir(
            trainer
        )  # not trainer.log_dir: it is a collective call, and only rank zero gets here
        if trainer.is_global_zero and folder is not None:
            write_json(folder / f"run_info_{stage}.json", info)

    def setup(self, trainer, pl_module, stage: str) -> None:
        info = {
            "stage": stage,
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "git_commit": git_commit(),
            "versions": package_versions(),
            "machine": machine_info(),
            "precision": str(trainer.precision),
            "world_size": trainer.world_size,
            "argv": sys.argv,
        }
        dm = trainer.datamodule
        if dm is not None and hasattr(dm, "summary"):
            try:
                info["data"] = dm.summary()
            except Exception as e:  # noqa: BLE001 - provenance must never stop a run
                info["data"] = {"error": str(e)}
        if hasattr(pl_module, "backbone"):
            info["params"] = sum(p.numel() for p in pl_module.backbone.parameters())
        pl_module.run_info = info
        self._write(trainer, info, getattr(stage, "value", stage))
        for lg in trainer.loggers:
            if type(lg).__name__ == "WandbLogger":
                lg.experiment.config.update({"run_info": info}, allow_val_change=True)
