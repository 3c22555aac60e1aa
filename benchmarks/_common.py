"""Helpers shared by the benchmark scripts: machine description, result files, CLI runs."""

from __future__ import annotations

import os
import platform
import shlex
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
