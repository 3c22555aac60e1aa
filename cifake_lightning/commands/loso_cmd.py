"""`cifake loso`: leave one fake source out (Community Forensics' many-generator protocol).

For each listed fake source S: train on the data set's own training fakes plus every listed source but
S (`--data.extra_fakes`), then score the test data; S is the only unseen source of that run, and the
others are reported as seen. Prints and writes one row per left-out source (AUROC of S against the
in-distribution test reals, share of S detected at the validation threshold, false-positive rate of
every real source at that threshold) with mean and worst over the sources.

    cifake loso --config configs/baseline_fast.yaml --root data/genset-v2 \\
        --sources ood/gan_upsample_conv ood/vae_samples ood/ae_f4_recon_test \\
        --test-data configs/data/ood_genset_v2.yaml -- --trainer.max_epochs 3

The held-out folders are read whole for testing; a training source must not also be a test source of
the same kind under another name, which this command cannot check. Options after `--` go to `cifake fit`.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path


def _run(args: list[str], cwd: Path) -> str:
    r = subprocess.run(
        [sys.executable, "-m", "cifake_lightning", *args], cwd=cwd, capture_output=True, text=True
    )
    if r.returncode != 0:
        tail = "\n".join(r.stderr.strip().splitlines()[-5:])
        from ..errors import CifakeError

        raise CifakeError(f"cifake {args[0]} failed (exit {r.returncode}):\n{tail}")
    return r.stderr


def main(argv: list[str]) -> None:
    if "--" in argv:
        i = argv.index("--")
        argv, fit_extra = argv[:i], argv[i + 1 :]
    else:
        fit_extra = []
    ap = argparse.ArgumentParser(
        prog="cifake loso", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--config", required=True, help="experiment config to fit")
    ap.add_argument("--root", required=True, help="data set root (CIFAKE layout) holding the sources")
    ap.add_argument("--sources", nargs="+", required=True, help="fake folders under ROOT to rotate")
    ap.add_argument("--test-data", required=True, help="data config of the test (must list every source)")
    ap.add_argument("--reference-real", default="test/REAL")
    ap.add_argument("--reference-fake", default="test/FAKE")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default="loso", help="run name prefix")
    ap.add_argument("--out", default="results/loso", help="where the summary JSON/Markdown go")
    args = ap.parse_args(argv)
    from ..errors import ConfigError

    if len(args.sources) < 2:
        raise ConfigError("--sources", "leave-one-out needs at least two sources")
    root = Path(args.root)
    for s in args.sources:
        if not (root / s).is_dir():
            raise ConfigError("--sources", f"{root / s} is not a folder")
    cwd = Path.cwd()
    rows = []
    for held in args.sources:
        train = [s for s in args.sources if s != held]
        name = f"{args.name}-{held.replace('/', '_')}-s{args.seed}"
        print(f"cifake loso: training without {held} (with {', '.join(train)})", file=sys.stderr, flush=True)
        _run(
            ["fit", "--config", args.config, "--name", name, "--data.init_args.root", str(root),
             "--data.init_args.extra_fakes", json.dumps(train), "--seed_everything", str(args.seed), *fit_extra],
            cwd,
        )  # fmt: skip
        runs = sorted((cwd / "runs" / name).glob("version_*"), key=lambda p: int(p.name.split("_")[1]))
        ckpt = (sorted(runs[-1].glob("checkpoints/best*.ckpt")) or [runs[-1] / "checkpoints" / "last.ckpt"])[
            -1
        ]
        err = _run(
            ["test", "--ckpt", str(ckpt), "--name", name, "--data", args.test_data,
             "--data.init_args.root", str(root), "--report.reference_real", args.reference_real,
             "--report.reference_fake", args.reference_fake,
             "--report.seen", json.dumps([args.reference_fake, *train])],
            cwd,
        )  # fmt: skip
        folder = next(x.split(" written to ", 1)[1].strip() for x in err.splitlines() if " written to " in x)
        folder = str((cwd / folder).resolve())  # as printed: relative to the working directory
        rep = json.loads((Path(folder) / "report.json").read_text())
        u = {r["source"]: r for r in rep["unseen"]["rows"]}[held]
        row = {
            "left out": held,
            "trained with": ", ".join(train),
            "auroc vs test real": u["auroc_vs_test_real"],
            "auroc vs ood real": u["auroc_vs_ood_real"],
            "detected@thr": u["detected@thr"],
        }
        for f in rep["unseen"]["real_fpr"]:
            row[f"fpr@thr {f['source']}"] = f["fpr@thr"]
        row["results"] = folder
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    keys = [k for k in rows[0] if k not in ("left out", "trained with", "results")]
    for how, fn in (("mean", lambda v: sum(v) / len(v)), ("worst", min)):
        agg = {"left out": how, "trained with": ""}
        for k in keys:
            vals = [r[k] for r in rows if isinstance(r.get(k), float) and not math.isnan(r[k])]
            pick = max if (how == "worst" and k.startswith("fpr")) else fn
            agg[k] = pick(vals) if vals else math.nan
        rows.append(agg)
    from ..evaluate.ood import markdown
    from ..utils import write_atomic, write_json

    out = Path(args.out)
    cols = ["left out", "trained with", *keys]
    md = markdown(rows, cols)
    write_json(
        out / f"{args.name}-s{args.seed}.json", {"config": args.config, "seed": args.seed, "rows": rows}
    )
    write_atomic(out / f"{args.name}-s{args.seed}.md", md)
    print(md)
    print(
        f"cifake: leave-one-source-out results written to {out}/{args.name}-s{args.seed}.md", file=sys.stderr
    )
