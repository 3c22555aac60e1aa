"""`cifake sweep`: W&B sweep files without a W&B server.

    cifake sweep local wandb_sweeps/topology_grid.yaml --workers 2 -- --trainer.max_epochs=2 --data.root=data/demo
    cifake sweep local configs/experiments/pubgen_content.yaml --test configs/test/pubgen_dev_png.yaml
    cifake sweep list wandb_sweeps/topology_grid.yaml          # the runs and commands the agent would start
    cifake sweep check wandb_sweeps/*.yaml                     # W&B schema validation

With a W&B account the same file runs under W&B's controller: `wandb sweep FILE` then `wandb agent ID`.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str]) -> None:
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1 :]
    ap = argparse.ArgumentParser(
        prog="cifake sweep", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser(
        "local",
        help="run the sweep here (serial or --workers N)",
        description="Run every run of a sweep file here, as `wandb agent` would, without a W&B server. "
        "Arguments after `--` are appended to every run's `cifake fit` (e.g. -- --data.root=data/demo "
        "--trainer.max_epochs=2). Runs, logs and the manifest go to SAVE_DIR/<sweep>/.",
    )
    p.add_argument("file", help="W&B sweep YAML (a relative --config in it is also found above the file)")
    p.add_argument("--workers", type=int, default=1, help="runs at a time (default 1)")
    p.add_argument("--count", type=int, default=None, help="runs for random/bayes sweeps (grid: first N)")
    p.add_argument("--gpus", default=None, help="comma-separated device ids to spread workers over")
    p.add_argument("--save-dir", default="runs", help="runs go to SAVE_DIR/<sweep>/<run>/ (default runs)")
    p.add_argument("--resume", action="store_true", help="skip runs the manifest records as finished")
    p.add_argument(
        "--test", action="append", default=[], metavar="CONFIG",
        help="after each run, `cifake test --ckpt BEST --config CONFIG` (repeat; e.g. configs/test/pubgen_dev_png.yaml); "
        "then `cifake report SAVE_DIR/<sweep>` shows every run's OOD numbers and their mean ± sd over seeds",
    )  # fmt: skip
    p.add_argument(
        "--explain", action="append", default=[], metavar="CONFIG",
        help="after the tests, `cifake explain --ckpt BEST --config CONFIG` (repeat; e.g. configs/explain/isitcap.yaml); "
        "`cifake report` reads each summary as `explain: <group> <statistic>` columns",
    )  # fmt: skip
    p = sub.add_parser("list", help="print the runs and commands")
    p.add_argument("file")
    p = sub.add_parser("check", help="validate sweep files with W&B's schema")
    p.add_argument("files", nargs="+")
    args = ap.parse_args(argv)

    from .. import sweeps as _  # noqa: F401
    from ..sweeps.local import LocalSweep
    from ..sweeps.spec import command_for, describe, grid_runs, load_sweep, violations

    if args.cmd == "check":
        bad = 0
        for f in args.files:
            v = violations(load_sweep(f))
            print(f"{f}: {'ok' if not v else 'INVALID: ' + '; '.join(v)}")
            bad += bool(v)
        sys.exit(1 if bad else 0)
    if args.cmd == "list":
        cfg = load_sweep(args.file)
        runs = grid_runs(cfg) if cfg["method"] == "grid" else []
        for params in runs:
            print(describe(command_for(cfg, params, ["cifake"])))
        print(
            f"# {len(runs)} runs"
            if runs
            else f"# method {cfg['method']}: runs are proposed as results arrive"
        )
        return
    sweep = LocalSweep(
        args.file,
        workers=args.workers,
        count=args.count,
        extra=extra,
        gpus=args.gpus.split(",") if args.gpus else None,
        save_dir=args.save_dir,
        resume=args.resume,
        tests=args.test,
        explains=args.explain,
    )
    records = sweep.run()
    ok = sum(r["returncode"] == 0 for r in records)
    table = sweep.best_table()
    if table:
        print(table)
    print(f"{ok}/{len(records)} runs finished; manifest: {sweep.manifest_path}")
    if sweep.skipped:
        print(
            f"{len(sweep.skipped)} run(s) skipped: still running in another process ({', '.join(sweep.skipped[:3])})"
        )
    if ok < len(records) or sweep.skipped or sweep.stopped:
        sys.exit(1)
