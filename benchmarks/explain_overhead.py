"""What does ExplainCallback cost per epoch at default settings? (issue: at most a few percent)

Trains the same model twice for the same epochs on the same data, without and with the callback
(8 probe images; IG 16 steps, occlusion 8x8/4, Grad-CAM, band ablation 8 rings), and reports the
callback's own time per call next to the epoch time.

    python -m benchmarks.explain_overhead --root data/genset-v1 --config configs/baseline.yaml
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _fit(config: str, root: str, epochs: int, explain: bool, extra: list[str]) -> tuple[float, list[float]]:
    from cifake_lightning.cli import CifakeCLI
    from cifake_lightning.explain.callbacks import ExplainCallback

    args = [
        "--config",
        config,
        "--data.root",
        root,
        "--trainer.max_epochs",
        str(epochs),
        "--trainer.logger",
        "false",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.enable_model_summary",
        "false",
        "--trainer.callbacks",
        "[]",
        "--early_stopping.patience",
        "null",
        "--data.progress",
        "false",
        *extra,
    ]
    cli = CifakeCLI(args=args, run=False)
    cb = ExplainCallback() if explain else None
    if cb is not None:
        cli.trainer.callbacks.append(cb)
    t = time.perf_counter()
    cli.trainer.fit(cli.model, cli.datamodule)
    return time.perf_counter() - t, (cb.seconds if cb else [])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True)
    ap.add_argument("--config", default=str(REPO / "configs" / "baseline.yaml"))
    ap.add_argument("--epochs", type=int, default=2)
    args, extra = ap.parse_known_args()  # anything else is passed on to cifake, e.g. --data.val_size=2000
    args.extra = extra
    from ._common import markdown_table, record

    plain_s, _ = _fit(args.config, args.root, args.epochs, False, args.extra)
    with_s, calls = _fit(args.config, args.root, args.epochs, True, args.extra)
    epoch_s = plain_s / args.epochs
    per_call = sum(calls) / len(calls)
    rows = [
        {
            "config": Path(args.config).name,
            "epochs": args.epochs,
            "fit without callback (s)": plain_s,
            "fit with callback (s)": with_s,
            "callback per epoch (s)": per_call,
            "callback / epoch time": f"{100 * per_call / epoch_s:.1f}%",
        }
    ]
    record(
        "explain_overhead",
        "ExplainCallback cost at default settings",
        markdown_table(rows),
        notes=f"data: {args.root} {' '.join(args.extra)}",
    )


if __name__ == "__main__":
    main()
