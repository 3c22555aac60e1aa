"""`cifake report`: compare runs on one page.

    cifake report                                   # runs/ and results/ of this folder -> results/report/
    cifake report runs/sweep-a runs/sweep-b --out results/compare
    cifake report runs/pubgen_content --columns 'pubgen-dev/*: unseen mean AUROC'   # repeats.md: just those
    cifake report --wandb-project cifake-lightning  # read runs through the W&B API (online)
    cifake report --wandb-report --wandb-project P  # also create the same views as a W&B Report (online)

Writes index.html (self-contained: tables and figures inline), learning_curves.png,
extractors_vs_paper.png, accuracy_vs_params.png, runs.csv and runs.json; when some runs differ only in
their seed, repeats.md: one row per variant with the mean ± sd over seeds of validation and OOD numbers.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import CifakeError


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(
        prog="cifake report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("runs", nargs="*", default=["runs"], help="folders holding <name>/version_N run folders")
    ap.add_argument(
        "--results", action="append", default=None,
        help="where `cifake test` wrote test results (repeat for several; default results)",
    )  # fmt: skip
    ap.add_argument("--out", default="results/report")
    ap.add_argument("--title", default="cifake-lightning runs")
    ap.add_argument(
        "--columns", nargs="+", default=None, metavar="PATTERN",
        help="repeats.md's columns, in this order (fnmatch patterns of the column names, e.g. "
        "'pubgen-dev/*: unseen mean AUROC' 'genset-v2: FPR@thr ood/real_photos'); default: validation and OOD",
    )  # fmt: skip
    ap.add_argument("--wandb-project", default=None, help="read runs from this W&B project instead (online)")
    ap.add_argument("--wandb-entity", default=None)
    ap.add_argument("--wandb-report", action="store_true", help="also save a W&B Report with the same views")
    args = ap.parse_args(argv)

    from ..tracking.dashboard import write_dashboard
    from ..tracking.runs import collect_local, collect_wandb
    from ..tracking.wandb_report import wandb_report

    if args.wandb_project:
        try:
            runs = collect_wandb(args.wandb_project, args.wandb_entity)
        except Exception as e:  # noqa: BLE001 - network/auth errors end the same way
            raise CifakeError(
                f"could not read runs from W&B project {args.wandb_project!r} ({type(e).__name__}: "
                f"{str(e).splitlines()[0][:200]}); offline, point `cifake report` at run folders"
            ) from None
        source = f"W&B project {args.wandb_project}"
    else:
        runs = collect_local(args.runs, args.results or ["results"])
        source = ", ".join(args.runs)
    if not runs:
        raise CifakeError(
            f"no finished runs found under {source} (a run folder has metrics.csv, config.yaml and checkpoints/)"
        )
    paths = write_dashboard(runs, args.out, args.title, source, repeat_columns=args.columns)
    print(f"{len(runs)} runs -> {paths['html']}")
    if args.wandb_report:
        if not args.wandb_project:
            raise CifakeError("--wandb-report needs --wandb-project")
        try:
            report = wandb_report(args.wandb_project, args.wandb_entity, args.title)
            report.save()
            print(f"W&B report: {report.url}")
        except Exception as e:  # noqa: BLE001
            print(
                f"cifake: could not save the W&B report ({type(e).__name__}: {str(e).splitlines()[0][:200]})",
                file=sys.stderr,
            )
            sys.exit(2)
