"""ISITCAP (seed 001): do augmentation and autoencoder preprocessing disperse feature importance and help
the Bird & Lotfi CNN generalise to unseen generators?

Trains the convolutional autoencoder, then the four paths (plain, standard augmentations, autoencoder,
both), tests each on the OOD data config and explains the same test images with Integrated Gradients and
occlusion; dispersion is the normalised entropy (higher = more spread) and Gini (lower = more spread)
of each map, averaged over images.

    python -m benchmarks.isitcap --root data/genset-v1
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
from pathlib import Path

from cifake_lightning.evaluate.table import latest_results

from ._common import best_checkpoint, cifake, latest_version, markdown_table, record

REPO = Path(__file__).resolve().parents[1]
PATHS = ["plain", "augment", "autoencoder", "autoencoder_augment"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True)
    ap.add_argument("--ood", default=str(REPO / "configs" / "data" / "ood_genset.yaml"))
    ap.add_argument("--val-size", default="2000")
    ap.add_argument("--ae-epochs", default="5")
    ap.add_argument("--max-epochs", default="30")
    ap.add_argument("--explain-n", default="64")
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--data-label", default=None)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="isitcap-"))
    root = str(Path(args.root).resolve())
    data = [
        f"--data.root={root}",
        f"--data.val_size={args.val_size}",
        "--tracking.wandb=false",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
    ]
    if args.cache_dir:
        data.append(f"--data.cache_dir={args.cache_dir}")
    cifake(
        "fit",
        "--config",
        str(REPO / "configs" / "isitcap" / "train_autoencoder.yaml"),
        f"--trainer.max_epochs={args.ae_epochs}",
        *data,
        cwd=work,
    )
    ae_run = latest_version(work / "runs" / "isitcap_autoencoder")
    ae_ckpt = ae_run / "checkpoints" / "last.ckpt"
    with open(ae_run / "metrics.csv") as f:
        psnr = [float(r["val/psnr"]) for r in csv.DictReader(f) if r.get("val/psnr")][-1]
    rows = []
    for path in PATHS:
        extra = (
            [f"--model.init_args.preprocess.init_args.checkpoint={ae_ckpt}"] if "autoencoder" in path else []
        )
        cifake(
            "fit",
            "--config",
            str(REPO / "configs" / "isitcap" / f"{path}.yaml"),
            "--name",
            f"isitcap-{path}",
            f"--trainer.max_epochs={args.max_epochs}",
            *data,
            *extra,
            cwd=work,
        )
        run = latest_version(work / "runs" / f"isitcap-{path}")
        ckpt = best_checkpoint(run)
        test_data = [f"--data.root={root}"] + (
            [f"--data.cache_dir={args.cache_dir}"] if args.cache_dir else []
        )
        cifake(
            "test",
            "--ckpt",
            str(ckpt),
            "--data",
            args.ood,
            *test_data,
            "--name",
            f"isitcap-{path}-ood",
            "--report.reference_real=test/REAL",
            "--report.reference_fake=test/FAKE",
            "--tracking.wandb=false",
            "--trainer.enable_progress_bar=false",
            cwd=work,
        )
        rep = {
            r["source"]: r
            for r in json.loads((latest_results(work / "results", ckpt) / "report.json").read_text())[
                "sources"
            ]
        }
        out = work / "explain" / path
        cifake(
            "explain",
            "--ckpt",
            str(ckpt),
            "--n",
            args.explain_n,
            "--out",
            str(out),
            "--explain.methods",
            "[integrated_gradients, occlusion, grad_cam]",
            cwd=work,
        )
        summ = json.loads((out / "summary.json").read_text())["all"]
        in_acc = (rep["test/REAL"]["accuracy"] + rep["test/FAKE"]["accuracy"]) / 2
        rows.append(
            {
                "path": path,
                "test acc": in_acc,
                "test AUROC": rep["test/FAKE"]["auroc"],
                "held-out real acc": rep["ood/real_heldout_photos"]["accuracy"],
                "VAE acc": rep["ood/vae"]["accuracy"],
                "VAE AUROC": rep["ood/vae"]["auroc"],
                "DDPM acc": rep["ood/ddpm"]["accuracy"],
                "DDPM AUROC": rep["ood/ddpm"]["auroc"],
                "IG entropy": summ["integrated_gradients/entropy"],
                "IG Gini": summ["integrated_gradients/gini"],
                "occlusion entropy": summ["occlusion/entropy"],
                "Grad-CAM entropy": summ.get("grad_cam/entropy"),
            }
        )
        print(rows[-1], flush=True)
    record(
        "isitcap",
        f"autoencoder and augmentation paths, data: {args.data_label or root}",
        markdown_table(rows),
        notes=f"autoencoder: {args.ae_epochs} epochs, val PSNR {psnr:.1f} dB; classifiers: conv32x2-dense64x1, batch 32, "
        f"early stopping (patience 3, max {args.max_epochs} epochs), best checkpoint; explanations on "
        f"{args.explain_n} balanced test images (IG 32 steps); work dir {work}",
    )


if __name__ == "__main__":
    main()
