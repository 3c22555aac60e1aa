"""Run a W&B sweep file without a W&B server: serially or with K concurrent worker processes.

Each run is the same `cifake fit` the W&B agent would start, given its own run name
(``<sweep>-<params>``) so its outputs land in ``runs/<name>/version_N`` exactly like a single run.
A manifest (``runs/sweeps/<sweep>/manifest.json``) records every run's command, exit status, wall
time and final metric and is rewritten atomically after each run, so an interrupted sweep keeps its
record and ``--resume`` skips what already finished. GPU machines can spread workers over devices with
``--gpus 0,1,...`` (CUDA_VISIBLE_DEVICES per worker).
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..utils import write_json
from .spec import command_for, describe, grid_runs, load_sweep, propose


def run_slug(params: dict) -> str:
    parts = []
    for k, v in params.items():
        key = k.split(".")[-1]
        val = re.sub(r"[^A-Za-z0-9.+-]+", "_", str(v))
        parts.append(val if key in ("topology",) else f"{key}={val}")
    return "-".join(parts)[:80]


def final_metric(save_dir: Path, name: str, metric: str | None) -> float | None:
    """Last logged value of `metric` in the newest version of run `name` (best for early-stopped runs)."""
    if not metric:
        return None
    versions = sorted(
        (save_dir / name).glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[1])
    )
    if not versions:
        return None
    vals = []
    with open(versions[-1]) as f:
        for row in csv.DictReader(f):
            if row.get(metric):
                vals.append(float(row[metric]))
    return vals[-1] if vals else None


class LocalSweep:
    """Args:
    path: W&B sweep YAML.
    workers: concurrent runs.
    count: number of runs for random/bayes sweeps (grid: all combinations, or the first `count`).
    extra: arguments appended to every run (e.g. --trainer.max_epochs=2 --data.root=...).
    gpus: device ids to round-robin over workers (sets CUDA_VISIBLE_DEVICES).
    save_dir: where runs write (tracking.save_dir).
    resume: skip runs the manifest records as finished.
    """

    def __init__(
        self,
        path: str | Path,
        workers: int = 1,
        count: int | None = None,
        extra: list[str] | None = None,
        gpus: list[str] | None = None,
        save_dir: str = "runs",
        resume: bool = False,
        quiet: bool = True,
    ) -> None:
        self.path = Path(path)
        self.cfg = load_sweep(path)
        self.name = self.path.stem
        self.workers, self.count, self.extra = max(1, workers), count, list(extra or [])
        self.gpus, self.save_dir, self.resume, self.quiet = gpus or [], Path(save_dir), resume, quiet
        self.manifest_path = self.save_dir / "sweeps" / self.name / "manifest.json"
        self.records: list[dict] = []
        self._lock = threading.Lock()
        self.metric = self.cfg.get("metric", {}).get("name")

    def _load_manifest(self) -> None:
        import json

        if self.resume and self.manifest_path.is_file():
            self.records = json.loads(self.manifest_path.read_text())["runs"]

    def _save(self) -> None:
        write_json(self.manifest_path, {"sweep": str(self.path), "config": self.cfg, "runs": self.records})

    def _run_one(self, params: dict, slot: int) -> dict:
        run_name = f"{self.name}-{run_slug(params)}"
        cmd = command_for(self.cfg, params) + [
            f"--name={run_name}",
            f"--tracking.save_dir={self.save_dir}",
            f"--tracking.group={self.name}",
            *self.extra,
        ]
        env = dict(os.environ)
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = self.gpus[slot % len(self.gpus)]
        t0 = time.perf_counter()
        log_path = self.save_dir / "sweeps" / self.name / "logs" / f"{run_name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "w") as log:
            rc = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
        rec = {
            "name": run_name,
            "params": params,
            "command": describe(cmd),
            "returncode": rc,
            "seconds": round(time.perf_counter() - t0, 2),
            "log": str(log_path),
            "metric": final_metric(self.save_dir, run_name, self.metric),
        }
        with self._lock:
            self.records = [r for r in self.records if r["name"] != run_name] + [rec]
            self._save()
        status = "ok" if rc == 0 else f"FAILED (exit {rc}, see {log_path})"
        print(
            f"[{len(self.records)}] {run_name}: {status} in {rec['seconds']:.1f}s"
            + (f", {self.metric}={rec['metric']:.4f}" if rec["metric"] is not None else ""),
            flush=True,
        )
        return rec

    def plan(self) -> list[dict]:
        if self.cfg["method"] == "grid":
            runs = grid_runs(self.cfg)
            return runs[: self.count] if self.count else runs
        if not self.count:
            raise ValueError(f"method {self.cfg['method']!r} needs --count")
        return []

    def run(self) -> list[dict]:
        self._load_manifest()
        done = {r["name"] for r in self.records if r["returncode"] == 0}
        if self.cfg["method"] == "grid":
            todo = [p for p in self.plan() if f"{self.name}-{run_slug(p)}" not in done]
            with ThreadPoolExecutor(self.workers) as pool:
                list(pool.map(lambda a: self._run_one(a[1], a[0]), enumerate(todo)))
        else:
            remaining = self.count - len(done)
            slot = 0
            while remaining > 0:
                finished = [(r["params"], r["metric"]) for r in self.records if r["returncode"] == 0]
                batch = propose(self.cfg, finished, n=min(self.workers, remaining))
                with ThreadPoolExecutor(self.workers) as pool:
                    list(pool.map(lambda a: self._run_one(a[1], a[0]), enumerate(batch, start=slot)))
                slot += len(batch)
                remaining -= len(batch)
        failed = [r for r in self.records if r["returncode"] != 0]
        if failed:
            print(
                f"{len(failed)} run(s) failed; logs: {', '.join(r['log'] for r in failed[:5])}",
                file=sys.stderr,
            )
        return self.records
