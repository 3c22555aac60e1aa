"""Many generators (Community Forensics): leave one fake source out, over several seeds (issue 16).

Runs `cifake loso` once per seed (skipped when that seed's summary is already in --work/out), then
summarises every run over seeds: for each left-out source its AUROC against test/REAL and its share
detected at the validation threshold, and for each run the in-distribution accuracy and the FPR of every
real source at that threshold (from the run's test report). Appends the table to
benchmarks/results/loso.md.

    python -m benchmarks.loso --root data/genset-v2 --seeds 0 1 2 --work /tmp/loso \\
        --sources ood/gan_upsample_conv ood/vae_samples ood/ae_f4_recon_test
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path

from ._common import markdown_table, mean_sd, ood_row, record

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True)
    ap.add_argument("--sources", nargs="+", required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--config", default=str(REPO / "configs" / "baseline_fast.yaml"))
    ap.add_argument("--test-data", default=str(REPO / "configs" / "data" / "ood_genset_v2.yaml"))
    ap.add_argument("--max-epochs", default="3")
    ap.add_argument("--work", default="/tmp/cifake-loso")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    per_source: dict[str, list[dict]] = {}
    for seed in args.seeds:
        summary = work / "out" / f"loso-s{seed}.json"
        if not summary.is_file():
            subprocess.run(
                [sys.executable, "-m", "cifake_lightning", "loso", "--config", args.config, "--root", args.root,
                 "--sources", *args.sources, "--test-data", str(Path(args.test_data).resolve()),
                 "--out", str(work / "out"), "--seed", str(seed), "--", "--trainer.max_epochs", args.max_epochs,
                 "--trainer.precision", "32-true", "--trainer.enable_progress_bar", "false"],
                cwd=work, check=True, env={**os.environ, "WANDB_MODE": "disabled"},
            )  # fmt: skip
        for r in json.loads(summary.read_text())["rows"]:
            if r.get("results"):
                per_source.setdefault(r["left out"], []).append({**r, **ood_row(Path(r["results"]))})
    rows = []
    for src, rs in per_source.items():
        row = {
            "left out (unseen)": src,
            "trained with (seen)": rs[0]["trained with"],
            "seeds": len(rs),
            "in-dist acc @thr": mean_sd([r["in_acc@thr"] for r in rs]),
            "AUROC vs test real": mean_sd([r["auroc vs test real"] for r in rs]),
            "AUROC vs unseen photos": mean_sd([r["auroc vs ood real"] for r in rs]),
            "detected @thr": mean_sd([r["detected@thr"] for r in rs]),
        }
        for k in sorted({k for r in rs for k in r if k.startswith("fpr@thr:")} - {"fpr@thr:test/REAL"}):
            row[f"FPR {k.split(':', 1)[1]} @thr"] = mean_sd([r.get(k, math.nan) for r in rs])
        rows.append(row)
    by_seed: dict[int, list[float]] = {}
    for rs in per_source.values():
        for i, r in enumerate(rs):  # rs is in seed order, one run per seed
            by_seed.setdefault(i, []).append(r["auroc vs test real"])
    summary_rows = [
        {
            "over the left-out sources": "mean AUROC vs test real",
            "per seed": " ".join(f"{sum(v) / len(v):.3f}" for v in by_seed.values()),
            "mean ± sd": mean_sd([sum(v) / len(v) for v in by_seed.values()]),
        },
        {
            "over the left-out sources": "worst AUROC vs test real",
            "per seed": " ".join(f"{min(v):.3f}" for v in by_seed.values()),
            "mean ± sd": mean_sd([min(v) for v in by_seed.values()]),
        },
    ]
    record(
        "loso",
        f"leave one source out, {Path(args.config).name}, {args.max_epochs} epochs, data {args.root}",
        markdown_table(rows, list(dict.fromkeys(k for r in rows for k in r)))
        + "\n\n"
        + markdown_table(summary_rows),
        notes=f"seeds {args.seeds}; each run trains on the data's fakes plus every listed source but one "
        "(--data.extra_fakes) and is tested on --test-data; thresholds from validation (fpr:0.01); "
        f"summaries in {work / 'out'}",
    )


if __name__ == "__main__":
    main()
