"""Run a W&B sweep file without a W&B server: serially or with K concurrent worker processes.

Each run is the same `cifake fit` the W&B agent would start, given its own run name
(``<sweep>-<params>``); a sweep's runs live together under ``<save_dir>/<sweep>/`` (one run is
``runs/<sweep>/<name>/version_N``, so `cifake report runs/<sweep>` reports one sweep). A manifest
(``runs/<sweep>/manifest.json``) records every run's command, exit status, wall time and final metric
and is rewritten atomically after each run, so an interrupted sweep keeps its record and ``--resume``
skips what already finished. GPU machines can spread workers over devices with ``--gpus 0,1,...``
(CUDA_VISIBLE_DEVICES per worker).

Relative ``--config`` paths in the sweep's command are found as the W&B agent would (from the working
folder) and, failing that, beside the sweep file or in a folder above it (a repository's
``wandb_sweeps/x.yaml`` naming ``configs/y.yaml``), so a sweep runs from any folder. When
`MAX_SAME_FAILURES` runs in a row fail with the same last line, the sweep stops instead of repeating a
mistake in the arguments for every run; it ends with a table of its best runs.
"""

from __future__ import annotations

import csv
import ctypes
import fcntl
import hashlib
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..errors import ConfigError
from ..resolve import newest_checkpoint
from ..utils import write_json
from .spec import command_for, describe, grid_runs, load_sweep, propose

MAX_SAME_FAILURES = 3


def resolve_config_paths(command: list[str], sweep_file: Path, cwd: Path | None = None) -> list[str]:
    """`command` with each relative `--config` file made absolute where it is not found from the
    working folder but is beside the sweep file or below one of the folders above it."""
    cwd = cwd or Path.cwd()
    out, i = [], 0
    while i < len(command):
        tok = command[i]
        if tok == "--config" and i + 1 < len(command):
            out += [tok, _find(command[i + 1], sweep_file, cwd)]
            i += 2
            continue
        if tok.startswith("--config="):
            tok = "--config=" + _find(tok.split("=", 1)[1], sweep_file, cwd)
        out.append(tok)
        i += 1
    return out


def _find(path: str, sweep_file: Path, cwd: Path) -> str:
    p = Path(path)
    if p.is_absolute() or (cwd / p).is_file():
        return path
    for base in [sweep_file.resolve().parent, *sweep_file.resolve().parent.parents]:
        if (base / p).is_file():
            return str(base / p)
    return path  # not found anywhere: cifake fit names it


def last_line(log_path: Path) -> str:
    """The last non-empty line of a run's log (the one-line error of a failed `cifake` run)."""
    try:
        lines = [ln.strip() for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:300] if lines else ""


def run_slug(params: dict) -> str:
    """A readable, unique run name part for one set of parameters: `conv32x2` or `lr=0.001-batch=64`.

    Where the readable form loses information (two keys ending alike, characters replaced, over 80
    characters), a hash of the full parameters is appended, so two different runs of any sweep file
    never share a name, a folder or a manifest entry."""
    parts, lossy = [], len({k.split(".")[-1] for k in params}) < len(params)
    for k, v in params.items():
        key = k.split(".")[-1]
        # a config file as a parameter (variants as partial configs): its stem, not its path
        shown = Path(v).stem if isinstance(v, str) and v.endswith((".yaml", ".yml")) else str(v)
        val = re.sub(r"[^A-Za-z0-9.+-]+", "_", shown)
        lossy |= val != str(v)
        parts.append(val if key in ("topology",) else f"{key}={val}")
    slug = "-".join(parts)
    if lossy or len(slug) > 80:
        digest = hashlib.blake2b(json.dumps(params, sort_keys=True, default=str).encode(), digest_size=3)
        slug = f"{slug[:72]}-{digest.hexdigest()}"
    return slug


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


def followed_checkpoints(sweep_dir: Path, run_name: str) -> list[Path]:
    """What a finished run's tests and explanations score: its best (else last) checkpoint, or, for a
    GridClassifier run, the checkpoint of each topology run it exported (callbacks/grid_export.py), so
    a grid of topologies is tested as the separate runs it stands for."""
    exported = []
    for info in sorted(sweep_dir.glob(f"{run_name}-*/version_*/run_info_fit.json")):
        if json.loads(info.read_text()).get("grid") == run_name:
            exported.append(info.parent / "checkpoints" / "last.ckpt")
    if exported:
        return exported
    run_dir = sweep_dir / run_name
    ckpt = newest_checkpoint(run_dir, "best-*.ckpt") or newest_checkpoint(run_dir, "last.ckpt")
    return [ckpt] if ckpt else []


def _claim(path: Path):
    """An open lock file held with flock, or None when another process holds it. The child run inherits
    the descriptor, so the lock stays held while the run lives, even if this sweep process is killed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    f = open(path, "a")  # noqa: SIM115 - closed by the caller's `with`
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        return None
    return f


try:  # loaded here, not in the forked child (no imports between fork and exec)
    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux: the run's lock still keeps --resume off it
    _PRCTL = None


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the sweep's worker thread dies with its process
    (Linux PR_SET_PDEATHSIG = 1), so a killed sweep never leaves its run training on."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGTERM)


class LocalSweep:
    """Args:
    path: W&B sweep YAML.
    workers: concurrent runs.
    count: number of runs for random/bayes sweeps (grid: all combinations, or the first `count`).
    extra: arguments appended to every run (e.g. --trainer.max_epochs=2 --data.root=...).
    gpus: device ids to round-robin over workers (sets CUDA_VISIBLE_DEVICES).
    save_dir: where runs write (tracking.save_dir).
    resume: skip runs the manifest records as finished.
    tests: `cifake test` configs (data + report options, e.g. configs/test/pubgen_dev_png.yaml) run on
        each finished run's best checkpoint, results under results/ as `cifake test` writes them, so
        `cifake report SAVE_DIR/<sweep>` has every run's OOD numbers (and repeats.md over seeds).
    explains: `cifake explain` configs (e.g. configs/explain/isitcap.yaml) run on the same checkpoint
        after the tests; `cifake report` reads their summaries as `explain: ...` columns.
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
        tests: list[str] | None = None,
        explains: list[str] | None = None,
    ) -> None:
        self.path = Path(path)
        self.cfg = load_sweep(path)
        self.name = self.path.stem
        self.workers, self.count, self.extra = max(1, workers), count, list(extra or [])
        self.gpus, self.save_dir, self.resume, self.quiet = gpus or [], Path(save_dir), resume, quiet
        self.tests = [_find(t, self.path, Path.cwd()) for t in tests or []]
        self.explains = [_find(t, self.path, Path.cwd()) for t in explains or []]
        for option, files in (("--test", self.tests), ("--explain", self.explains)):
            for t in files:
                if not Path(t).is_file():
                    raise ConfigError(option, f"{t} not found (from here, beside the sweep file or above it)")
        #: what runs on each finished run's checkpoint: (command, config)
        self.followups = [("test", t) for t in self.tests] + [("explain", e) for e in self.explains]
        self.sweep_dir = self.save_dir / self.name
        self.manifest_path = self.sweep_dir / "manifest.json"
        self.records: list[dict] = []
        self.skipped: list[str] = []  # runs another process was running
        self._lock = threading.Lock()
        self.metric = self.cfg.get("metric", {}).get("name")
        self.goal = self.cfg.get("metric", {}).get("goal", "minimize")
        self._failures: list[str] = []  # last lines of the failures since the last success
        self.stopped: str | None = None  # why the sweep stopped early

    def _load_manifest(self) -> None:
        if not (self.resume and self.manifest_path.is_file()):
            return
        try:
            manifest = json.loads(self.manifest_path.read_text())
            records = manifest["runs"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ConfigError(
                "--resume", f"{self.manifest_path} is unreadable ({e}); rerun without --resume"
            ) from None
        then = {"config": manifest.get("config"), "extra": manifest.get("extra", [])}
        now = json.loads(json.dumps({"config": self.cfg, "extra": self.extra}, default=str))
        if manifest.get("tests", []) != self.tests or manifest.get("explains", []) != self.explains:
            # other tests or explanations: rerun them on the finished runs
            records = [
                {**r, "returncode": None}
                if (r.get("tests"), r.get("explains", [])) != (self.tests, self.explains)
                else r
                for r in records
            ]
        if then != now:
            why = "the sweep file changed" if then["config"] != now["config"] else ""
            if then["extra"] != now["extra"]:
                why += ("; " if why else "") + f"run arguments then {then['extra']}, now {now['extra']}"
            raise ConfigError(
                "--resume",
                f"{self.manifest_path} records a sweep with other settings ({why}): its finished runs are not "
                "runs of this one. Resume with the same sweep file and arguments, or drop --resume to run it again",
            )
        self.records = records

    def _save(self) -> None:
        write_json(
            self.manifest_path,
            {
                "sweep": str(self.path),
                "config": self.cfg,
                "extra": self.extra,
                "tests": self.tests,
                "explains": self.explains,
                "runs": self.records,
            },  # fmt: skip
        )

    def _run_one(self, params: dict, slot: int) -> dict:
        run_name = self.run_name(params)
        if self.stopped:
            return {"name": run_name, "params": params, "returncode": None}
        cmd = resolve_config_paths(command_for(self.cfg, params), self.path) + [
            f"--name={run_name}",
            f"--tracking.save_dir={self.sweep_dir}",
            f"--tracking.group={self.name}",
            f"--tracking.tags=[sweep:{self.name}]",  # W&B's runs table filters a local sweep by tag
            *self.extra,
        ]
        env = dict(os.environ)
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = self.gpus[slot % len(self.gpus)]
        t0 = time.perf_counter()
        log_path = self.sweep_dir / "logs" / f"{run_name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        lock = _claim(self.sweep_dir / "locks" / f"{run_name}.lock")
        if lock is None:
            print(f"[skip] {run_name}: another process is running it (its lock is held)", flush=True)
            with self._lock:
                self.skipped.append(run_name)
            return {"name": run_name, "params": params, "returncode": None}
        tests: list[dict] = []
        with lock, open(log_path, "w") as log:
            rc = subprocess.run(
                cmd, env=env, stdout=log, stderr=subprocess.STDOUT, pass_fds=(lock.fileno(),),
                preexec_fn=_die_with_parent,
            ).returncode  # fmt: skip
            ckpts = followed_checkpoints(self.sweep_dir, run_name) if rc == 0 else []
            for ckpt, (command, config) in itertools.product(ckpts, self.followups):
                follow = [sys.executable, "-m", "cifake_lightning", command, "--ckpt", str(ckpt), "--config", config]  # fmt: skip
                if command == "test":  # logged beside the run it tests, with its tracking options
                    tracking = [a for a in cmd if a.startswith("--tracking.")]
                    follow += ["--trainer.enable_progress_bar=false", "--data.progress=false", *tracking]
                log.write(f"\n$ {describe(follow)}\n")
                log.flush()
                trc = subprocess.run(
                    follow, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
                ).returncode
                tests.append({"command": command, "config": config, "returncode": trc})
        rec = {
            "name": run_name,
            "params": params,
            "command": describe(cmd),
            "returncode": rc,
            "seconds": round(time.perf_counter() - t0, 2),
            "log": str(log_path),
            "metric": final_metric(self.sweep_dir, run_name, self.metric),
        }
        if self.followups:
            rec["tests"] = self.tests if rc == 0 else []
            rec["explains"] = self.explains if rc == 0 else []
            failed = [f"cifake {t['command']} {t['config']}" for t in tests if t["returncode"] != 0]
            # a run whose tests or explanations failed is not finished: --resume reruns it
            if rc == 0 and failed:
                rc = rec["returncode"] = 1
                rec["error"] = f"failed: {', '.join(failed)}: {last_line(log_path)}"
        if rc != 0 and "error" not in rec:
            rec["error"] = last_line(log_path)
        with self._lock:
            self.records = [r for r in self.records if r["name"] != run_name] + [rec]
            self._save()
            self._failures = [] if rc == 0 else [*self._failures, rec["error"]]
            same = self._failures[-MAX_SAME_FAILURES:]
            if len(same) == MAX_SAME_FAILURES and len(set(same)) == 1 and not self.stopped:
                self.stopped = f"{MAX_SAME_FAILURES} runs in a row failed with: {same[0]}"
        status = "ok" if rc == 0 else f"FAILED (exit {rc}: {rec['error']}; log {log_path})"
        print(
            f"[{len(self.records)}] {run_name}: {status} in {rec['seconds']:.1f}s"
            + (f", {self.metric}={rec['metric']:.4f}" if rec["metric"] is not None else ""),
            flush=True,
        )
        return rec

    def best(self, n: int = 5) -> list[dict]:
        """The finished runs with the best final metric (the sweep file's metric and goal)."""
        done = [r for r in self.records if r["returncode"] == 0 and r.get("metric") is not None]
        return sorted(done, key=lambda r: r["metric"], reverse=self.goal == "maximize")[:n]

    def best_table(self, n: int = 5) -> str:
        rows = self.best(n)
        if not rows:
            return ""
        width = max(len(r["name"]) for r in rows)
        lines = [
            f"best runs by {self.metric} ({self.goal}):",
            f"  {'run':<{width}}  {self.metric:>12}  seconds",
        ]
        lines += [f"  {r['name']:<{width}}  {r['metric']:>12.4f}  {r['seconds']:>7.1f}" for r in rows]
        lines.append(f"  runs: {self.sweep_dir}  (cifake report {self.sweep_dir})")
        return "\n".join(lines)

    def run_name(self, params: dict) -> str:
        """`<sweep>-<slug of the parameters that vary>`: a sweep's fixed values (`value:`) are left out
        of the name (they are in the manifest and each run's config), so names stay short and readable."""
        fixed = {
            k for k, spec in self.cfg["parameters"].items() if isinstance(spec, dict) and "value" in spec
        }
        varying = {k: v for k, v in params.items() if k not in fixed}
        return f"{self.name}-{run_slug(varying)}" if varying else self.name

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
            todo = [p for p in self.plan() if self.run_name(p) not in done]
            with ThreadPoolExecutor(self.workers) as pool:
                list(pool.map(lambda a: self._run_one(a[1], a[0]), enumerate(todo)))
        else:
            remaining = self.count - len(done)
            slot = 0
            while remaining > 0 and not self.stopped:
                finished = [(r["params"], r["metric"]) for r in self.records if r["returncode"] == 0]
                batch = propose(self.cfg, finished, n=min(self.workers, remaining))
                with ThreadPoolExecutor(self.workers) as pool:
                    list(pool.map(lambda a: self._run_one(a[1], a[0]), enumerate(batch, start=slot)))
                slot += len(batch)
                remaining -= len(batch)
        if self.stopped:
            print(f"sweep stopped: {self.stopped}", file=sys.stderr)
        failed = [r for r in self.records if r["returncode"] != 0]
        if failed:
            print(
                f"{len(failed)} run(s) failed; logs: {', '.join(r['log'] for r in failed[:5])}",
                file=sys.stderr,
            )
        return self.records
