"""Which generalisation idea makes a detector recognise fakes of generators it never saw? (issue 16)

Each variant changes one thing of a base experiment config (default configs/baseline_fast.yaml, the
paper's CNN) and is trained with several seeds on genset-v2's train/ (DCGAN fakes), then tested on
configs/data/ood_genset_v2.yaml: in-distribution test/REAL + test/FAKE, photographs that are not
CIFAR-10 (ood/real_photos) and three generators absent from training. A fake source is *seen* when a
generator of its kind made training fakes (the DCGAN's test/FAKE always; ood/ae_f4_recon_test when
the variant trains on autoencoder reconstructions); every other fake source is unseen. Thresholds come
from validation only (the checkpoint's `fpr:0.01` rule); the paired test against the baseline of the
same seed (McNemar on decisions, bootstrap CI of the AUROC difference) runs on the unseen sources plus
test/REAL.

    python -m benchmarks.generalisation --root data/genset-v2 --seeds 0 1 2 --work /tmp/gen
    python -m benchmarks.generalisation --root data/genset-v2 --only baseline npr --seeds 0

Runs already in --work (runs.jsonl) are not repeated, so the benchmark can be resumed and extended;
the table in benchmarks/results/generalisation.md is rebuilt from every run recorded there.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path

from ._common import (
    best_checkpoint,
    cifake,
    latest_version,
    markdown_table,
    mean_sd,
    ood_row,
    record,
    test_ood,
)

REPO = Path(__file__).resolve().parents[1]
NPR = '{"class_path": "cifake_lightning.models.ArtifactResidual", "init_args": {"kind": "npr"}}'
HAAR = '{"class_path": "cifake_lightning.models.ArtifactResidual", "init_args": {"kind": "haar"}}'
AE_SEEN = ["test/FAKE", "ood/ae_f4_recon_test"]

# building blocks of the variants (command-line overrides of the base config)
NPR_INPUT = ["--model.init_args.preprocess", NPR, "--model.init_args.normalize", "none"]
HAAR_INPUT = ["--model.init_args.preprocess", HAAR, "--model.init_args.normalize", "none"]
RESAMPLED = ["--data.init_args.aligned_fakes", '[{"kind": "resample"}]']
AE_RECON = ["--data.init_args.aligned_fakes", '[{"kind": "ae"}]']
SAFE_AUG = [
    "--data.init_args.augment.rot90", "0.5", "--data.init_args.augment.color_jitter", "0.5",
    "--data.init_args.augment.patch_mask", "0.3",
]  # fmt: skip
REAL_BLUR = ["--data.init_args.augment.real_blur", "0.5"]
REAL_COMPACT = ["--model.init_args.real_compact", "0.1"]
SEEN = ["test/FAKE"]

#: name -> (overrides, fake sources of a seen kind)
VARIANTS: dict[str, tuple[list[str], list[str]]] = {
    "baseline": ([], SEEN),
    "npr": (NPR_INPUT, SEEN),
    "haar": (HAAR_INPUT, SEEN),
    "aug_rot90_mask": (
        ["--data.init_args.augment.rot90", "0.5", "--data.init_args.augment.patch_mask", "0.5"],
        SEEN,
    ),
    "aug_blur_jpeg": (["--data.init_args.augment.blur", "0.3", "--data.init_args.augment.jpeg", "0.3"], SEEN),
    "aug_safe": (SAFE_AUG, SEEN),
    "aligned_resample": (RESAMPLED, SEEN),
    "aligned_ae": (AE_RECON, AE_SEEN),
    "aligned_resample+aug": (RESAMPLED + SAFE_AUG, SEEN),
    "aligned_resample+blur": (
        RESAMPLED
        + ["--data.init_args.augment.blur", "0.5", "--data.init_args.augment.blur_sigma", "[0.3, 1.5]"],
        SEEN,
    ),
    "aligned_resample+real_blur": (RESAMPLED + REAL_BLUR, SEEN),
    "aligned_resample+aug+real_blur": (RESAMPLED + SAFE_AUG + REAL_BLUR, SEEN),
    "aligned_resample+mosaics": (RESAMPLED + ["--data.init_args.real_mosaics", "0.5"], SEEN),
    "real_compact": (REAL_COMPACT, SEEN),
    "aligned_resample+aug+real_compact": (RESAMPLED + SAFE_AUG + REAL_COMPACT, SEEN),
    "aligned_resample+aug+mosaics": (RESAMPLED + SAFE_AUG + ["--data.init_args.real_mosaics", "0.5"], SEEN),
    "npr+aligned_resample": (NPR_INPUT + RESAMPLED, SEEN),
    "npr+aligned_ae": (NPR_INPUT + AE_RECON, AE_SEEN),
}


def run_one(variant: str, seed: int, args, work: Path) -> dict:
    overrides, seen = VARIANTS[variant]
    name = f"gen-{variant.replace('+', '_')}-s{seed}"
    common = ["--trainer.enable_progress_bar", "false", "--data.init_args.progress", "false"]
    if args.cache_dir:
        common += ["--data.init_args.cache_dir", args.cache_dir]
    t0 = time.perf_counter()
    cifake(
        "fit", "--config", args.config, "--name", name, "--data.init_args.root", args.root,
        "--data.init_args.val_size", str(args.val_size), "--seed_everything", str(seed),
        "--trainer.max_epochs", str(args.max_epochs), "--trainer.enable_model_summary", "false",
        "--trainer.precision", "32-true",
        *(["--data.init_args.train_size", str(args.train_size)] if args.train_size else []),
        *args.extra, *common, *overrides, cwd=work,
    )  # fmt: skip
    return test_one(variant, seed, args, work, time.perf_counter() - t0)


def test_one(variant: str, seed: int, args, work: Path, fit_s: float) -> dict:
    """`cifake test` of the variant's best checkpoint on the OOD test data, summarised."""
    _, seen = VARIANTS[variant]
    name = f"gen-{variant.replace('+', '_')}-s{seed}"
    best = best_checkpoint(latest_version(work / "runs" / name))
    folder = test_ood(best, name, str(REPO / "configs/data/ood_genset_v2.yaml"), args.root, work, seen=seen,
                      cache_dir=args.cache_dir)  # fmt: skip
    return summarise(variant, seed, folder, fit_s)


def summarise(variant: str, seed: int, folder: Path, fit_s: float) -> dict:
    """The report's flat row (benchmarks._common.ood_row) with the variant, seed, fit time, the FPR on
    ood/real_photos and test/REAL's per-class FPR."""
    row = {"variant": variant, "seed": seed, "fit_s": fit_s, **ood_row(folder)}
    row["photos_fpr@thr"] = row.get("fpr@thr:ood/real_photos", math.nan)
    rep = json.loads((Path(folder) / "report.json").read_text())
    for c in rep.get("real_bias_by_class") or []:  # test/REAL per CIFAR-10 class (ood config reads classes)
        row[f"class_fpr@thr:{c['class']}"] = c.get("fpr@thr", math.nan)
        row[f"class_mean_p:{c['class']}"] = c["mean_p_fake"]
    return row


def paired(row: dict, base: dict) -> dict:
    from cifake_lightning.evaluate.compare import compare_results

    sources = sorted(set(row["unseen"]) & set(base["unseen"])) + ["test/REAL"]
    return compare_results(row["folder"], base["folder"], n_boot=300, sources=sources)


def table(rows: list[dict]) -> str:
    by: dict[str, list[dict]] = {}
    for r in rows:
        by.setdefault(r["variant"], []).append(r)
    base = {r["seed"]: r for r in by.get("baseline", [])}
    out = []
    sources = ("ood/gan_upsample_conv", "ood/vae_samples", "ood/ae_f4_recon_test")
    for variant, rs in by.items():
        seen = sorted({s for r in rs for s in r["seen"]})
        line = {
            "variant": variant,
            "seeds": len(rs),
            "in-dist acc @thr": mean_sd([r["in_acc@thr"] for r in rs]),
            "real acc @thr": mean_sd([r["real_acc@thr"] for r in rs]),
            "fake acc @thr": mean_sd([r["fake_acc@thr"] for r in rs]),
            "FPR real_photos @thr": mean_sd([r["photos_fpr@thr"] for r in rs]),
        }
        for s in sources:
            cell = mean_sd([r.get(f"auroc:{s}", math.nan) for r in rs])
            line[f"AUROC {s.split('/')[1]}"] = cell + (" (SEEN kind)" if s in seen else "")
        line["unseen mean AUROC"] = mean_sd([r["mean_auroc"] for r in rs])
        line["unseen worst AUROC"] = mean_sd([r["worst_auroc"] for r in rs])
        if variant != "baseline" and base:
            tests = [paired(r, base[r["seed"]]) for r in rs if r["seed"] in base]
            if tests:
                sig = sum(1 for t in tests if t["auroc_diff_ci95"][0] > 0 or t["auroc_diff_ci95"][1] < 0)
                line["AUROC diff vs baseline (unseen+test real)"] = (
                    f"{statistics.mean(t['auroc_diff'] for t in tests):+.3f} ({sig}/{len(tests)} seeds CI excl. 0)"
                )
                line["McNemar p (max over seeds)"] = f"{max(t['mcnemar_p'] for t in tests):.2g}"
        out.append(line)
    columns = list(dict.fromkeys(k for line in out for k in line))
    return markdown_table(out, columns) + class_table(by)


def class_table(by: dict[str, list[dict]]) -> str:
    """False-positive rate on test/REAL per CIFAR-10 class at the validation threshold (seed 002's bias
    question), for the variants whose runs were tested with classes; mean ± sd over seeds."""
    lines = []
    for variant, rs in by.items():
        rs = [r for r in rs if any(k.startswith("class_fpr@thr:") for k in r)]
        if not rs:
            continue
        classes = [k.split(":", 1)[1] for k in rs[0] if k.startswith("class_fpr@thr:")]
        line = {"variant": variant, "seeds": len(rs)}
        for c in classes:
            line[c] = mean_sd([r.get(f"class_fpr@thr:{c}", math.nan) for r in rs])
        lines.append(line)
    if not lines:
        return ""
    head = "\n\nFalse-positive rate on test/REAL per CIFAR-10 class at the validation threshold:\n\n"
    return head + markdown_table(lines, list(dict.fromkeys(k for line in lines for k in line)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True, help="extracted genset-v2")
    ap.add_argument("--config", default=str(REPO / "configs" / "baseline_fast.yaml"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--only", nargs="+", default=None, choices=list(VARIANTS), help="variants to run")
    ap.add_argument("--max-epochs", type=int, default=3)
    ap.add_argument("--val-size", type=int, default=10000)
    ap.add_argument("--train-size", type=int, default=None, help="train on a subset (screening runs)")
    ap.add_argument(
        "--extra", nargs="*", default=[], help="overrides for every fit, e.g. --extra=--trainer.callbacks=[]"
    )
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--work", default="/tmp/cifake-generalisation", help="runs, results and runs.jsonl")
    ap.add_argument("--no-record", action="store_true", help="do not append to benchmarks/results")
    ap.add_argument(
        "--retest",
        nargs="*",
        default=None,
        metavar="VARIANT",
        help="re-test the recorded runs of these variants (none named: every run), e.g. after a report change",
    )
    args = ap.parse_args()
    args.config = str(Path(args.config).resolve())  # the fits run in --work
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    log = work / "runs.jsonl"
    done = [json.loads(x) for x in log.read_text().splitlines()] if log.is_file() else []
    if args.retest is not None:
        again = set(args.retest or VARIANTS)
        done = [
            test_one(r["variant"], r["seed"], args, work, r["fit_s"]) if r["variant"] in again else r
            for r in done
        ]
        log.write_text("".join(json.dumps(r) + "\n" for r in done))
    have = {(r["variant"], r["seed"]) for r in done}
    for variant in args.only or list(VARIANTS):
        for seed in args.seeds:
            if (variant, seed) in have:
                continue
            row = run_one(variant, seed, args, work)
            print(json.dumps({k: v for k, v in row.items() if k != "folder"}), flush=True)
            with open(log, "a") as f:
                f.write(json.dumps(row) + "\n")
            done.append(row)
    if not args.no_record:
        record(
            "generalisation",
            f"Generalisation ideas on genset-v2, {args.max_epochs} epochs, config {Path(args.config).name}"
            + (f", train subset {args.train_size}" if args.train_size else ""),
            table(done),
            notes=(
                f"every run in {log}; thresholds from validation ({args.val_size} images carved from train, "
                "rule fpr:0.01); AUROC of an unseen source ranks it against test/REAL; 'seen' = a generator "
                "of that kind made training fakes"
            ),
        )


if __name__ == "__main__":
    main()
