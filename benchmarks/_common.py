"""Helpers shared by the benchmark scripts: machine description, result files, CLI runs."""

from __future__ import annotations

import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    desc = f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads)"
    if torch.cuda.is_available():
        desc += f", GPU {torch.cuda.get_device_name(0)}"
    return desc


def record(name: str, title: str, table: str, command: str | None = None, notes: str = "") -> Path:
    """Append a dated section with machine, command and table to benchmarks/results/<name>.md."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.md"
    main_spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    prog = f"python -m {main_spec.name}" if main_spec is not None else f"python {shlex.quote(sys.argv[0])}"
    cmd = command or " ".join([prog, *(shlex.quote(a) for a in sys.argv[1:])])
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    section = f"\n## {title} ({when})\n\n- machine: {machine()}\n- command: `{cmd}`\n"
    if notes:
        section += f"- notes: {notes}\n"
    section += f"\n{table}\n"
    header = (
        ""
        if path.exists()
        else f"# {name.replace('_', ' ')}\n\nEach section is one run of the script; newest last.\n"
    )
    with open(path, "a") as f:
        f.write(header + section)
    print(section)
    return path


def markdown_table(rows: list[dict], columns: list[str] | None = None) -> str:
    if not rows:
        return "(no rows)"
    columns = columns or list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(c, "")) for c in columns) + " |")
    return "\n".join(lines)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 10 else f"{v:,.1f}"
    return str(v)


def cifake(
    *args: str, cwd: Path, env: dict | None = None, timeout: int = 7200
) -> subprocess.CompletedProcess:
    e = {**os.environ, "WANDB_MODE": "disabled", **(env or {})}
    r = subprocess.run(
        [sys.executable, "-m", "cifake_lightning", *args],
        cwd=cwd,
        env=e,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if r.returncode != 0:
        raise RuntimeError(f"cifake {' '.join(args)} failed:\n{r.stderr[-3000:]}")
    return r


def latest_version(folder: Path) -> Path:
    """The newest runs/<name>/version_N (or results/<name>/version_N) folder; in a runs folder, the
    newest one holding checkpoints (older code gave each `cifake test` a version folder of its own)."""
    versions = sorted(folder.glob("version_*"), key=lambda p: int(p.name.split("_")[1]))
    fits = [v for v in versions if (v / "checkpoints").is_dir()]
    return (fits or versions)[-1]


def best_checkpoint(run: Path) -> Path:
    """The run's best-validation checkpoint, else its last one."""
    return (sorted(run.glob("checkpoints/best*.ckpt")) or [run / "checkpoints" / "last.ckpt"])[-1]


def test_ood(
    ckpt: Path,
    name: str,
    ood_config: str,
    root: str,
    workdir: Path,
    *,
    seen: list[str] | None = None,
    cache_dir: str | None = None,
    reference_real: str = "test/REAL",
    reference_fake: str = "test/FAKE",
) -> Path:
    """`cifake test` of a checkpoint on an OOD data config; returns the results folder (report.json)."""
    extra = ["--data.init_args.cache_dir", cache_dir] if cache_dir else []
    r = cifake(
        "test", "--ckpt", str(Path(ckpt).resolve()), "--name", name, "--data", str(Path(ood_config).resolve()), "--data.init_args.root", root,
        "--data.init_args.progress", "false", "--trainer.enable_progress_bar", "false",
        "--report.reference_real", reference_real, "--report.reference_fake", reference_fake,
        "--report.seen", json.dumps(seen if seen is not None else [reference_fake]), *extra, cwd=workdir,
    )  # fmt: skip
    out = next(line.split(" written to ", 1)[1].strip().rstrip("/") for line in r.stderr.splitlines()
               if "test results written to" in line)  # fmt: skip
    return Path(out) if Path(out).is_absolute() else workdir / out


def ood_row(folder: Path, reference_real: str = "test/REAL", reference_fake: str = "test/FAKE") -> dict:
    """One flat row of a test report: in-distribution accuracies (raw 0.5 and validation threshold),
    false-positive rate of every real source at the validation threshold, AUROC of every fake source
    against the reference reals (seen ones too, keyed the same) and mean/worst over the unseen ones."""
    rep = json.loads((Path(folder) / "report.json").read_text())
    src = {r["source"]: r for r in rep["sources"]}
    ind = [src[reference_real], src[reference_fake]]
    n = sum(r["n"] for r in ind)
    unseen = rep.get("unseen") or {"rows": [], "mean": {}, "worst": {}, "real_fpr": [], "unseen": []}
    row = {
        "folder": str(folder),
        "threshold": rep["threshold"]["validation"],
        "threshold_rule": rep["threshold"].get(
            "rule", ""
        ),  # "0.5" when the checkpoint kept no validation scores
        "in_acc@thr": sum(r["acc@thr"] * r["n"] for r in ind) / n,
        "in_acc@0.5": sum(r["accuracy"] * r["n"] for r in ind) / n,
        "real_acc@thr": src[reference_real]["acc@thr"],
        "fake_acc@thr": src[reference_fake]["acc@thr"],
        "unseen": unseen["unseen"],
        "seen": unseen.get("seen", []),
        "mean_auroc": unseen["mean"].get("auroc_vs_test_real", math.nan),
        "worst_auroc": unseen["worst"].get("auroc_vs_test_real", math.nan),
        "mean_auroc_vs_photos": unseen["mean"].get("auroc_vs_ood_real", math.nan),
    }
    for f in unseen["real_fpr"]:
        row[f"fpr@thr:{f['source']}"] = f["fpr@thr"]
    for u in unseen["rows"]:
        row[f"auroc:{u['source']}"] = u["auroc_vs_test_real"]
        row[f"detected@thr:{u['source']}"] = u["detected@thr"]
    for name, r in src.items():  # seen fake sources: their numbers too (marked by row["seen"])
        if name not in (reference_real, "all") and r.get("label") == "fake":
            row.setdefault(f"auroc:{name}", r["auroc"])
            row.setdefault(f"detected@thr:{name}", r["acc@thr"])
    return row


def seed_columns(rows: list[dict], fpr_at: str = "@thr", aurocs: bool = False) -> dict[str, str]:
    """Table cells (mean ± sd over `rows`, one ood_row per seed) for every real source's FPR but the
    in-distribution one, optionally every fake source's AUROC but the in-distribution one, then the
    unseen mean and worst AUROC."""
    out = {}
    for k in sorted({k for r in rows for k in r if k.startswith("fpr@thr:")} - {"fpr@thr:test/REAL"}):
        out[f"FPR {k.split(':', 1)[1]} {fpr_at}"] = mean_sd([r.get(k, math.nan) for r in rows])
    if aurocs:
        for k in sorted({k for r in rows for k in r if k.startswith("auroc:")} - {"auroc:test/FAKE"}):
            out[f"AUROC {k.split(':', 1)[1]}"] = mean_sd([r.get(k, math.nan) for r in rows])
    out["unseen mean AUROC"] = mean_sd([r["mean_auroc"] for r in rows])
    out["unseen worst AUROC"] = mean_sd([r["worst_auroc"] for r in rows])
    return out


def mean_sd(vals: list[float], digits: int = 3) -> str:
    """'mean ± sd' over seeds (sd 0 for one value); 'n/a' when there is nothing."""
    vals = [v for v in vals if v is not None and not math.isnan(v)]
    if not vals:
        return "n/a"
    sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
    return f"{statistics.mean(vals):.{digits}f} ± {sd:.{digits}f}"
