"""How much does each Keras-vs-PyTorch default move the Bird & Lotfi CNN's accuracy? (seed 000)

The paper trained in Keras; reproductions use PyTorch. Three defaults differ: weight init
(Glorot-uniform + zero bias vs PyTorch's Kaiming-uniform(a=sqrt 5) + uniform bias), Adam's epsilon
(1e-7 vs 1e-8) and input scaling (Keras examples: [0, 1]; ours: CIFAR-10 mean/std). Each variant
changes one default of configs/baseline.yaml (plus "keras", all three) and is trained with several
seeds under the paper's procedure (batch 32, Adam 1e-3, early stopping on val loss, best checkpoint).

    python -m benchmarks.framework_differences --root /path/to/cifake-or-genset --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from ._common import fit_and_test, markdown_table, record

REPO = Path(__file__).resolve().parents[1]
VARIANTS = {
    "pytorch (baseline.yaml)": [],
    "keras init": ["--model.backbone.init", "keras"],
    "no normalisation ([0,1])": ["--model.normalize", "none"],
    "Adam eps 1e-7": ["--model.optimizer.init_args.eps", "1e-7"],
    "keras (all three)": [
        "--model.backbone.init",
        "keras",
        "--model.normalize",
        "none",
        "--model.optimizer.init_args.eps",
        "1e-7",
    ],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True, help="dataset in the CIFAKE layout")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--val-size", default="2000")
    ap.add_argument("--max-epochs", default="30")
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--data-label", default=None, help="how to name the data in the results table")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fwdiff-"))
    rows = []
    for variant, extra in VARIANTS.items():
        accs, aurocs, epochs = [], [], []
        for seed in args.seeds:
            overrides = [
                "--data.root",
                args.root,
                "--data.val_size",
                args.val_size,
                "--seed_everything",
                str(seed),
                "--trainer.max_epochs",
                args.max_epochs,
                *extra,
            ]
            if args.cache_dir:
                overrides += ["--data.cache_dir", args.cache_dir]
            name = "fw-" + "".join(c if c.isalnum() else "_" for c in variant)[:30] + f"-s{seed}"
            m = fit_and_test(str(REPO / "configs" / "baseline.yaml"), name, overrides, work)
            accs.append(m["acc"])
            aurocs.append(m["auroc"])
            epochs.append(m["epochs"])
            print(
                f"{variant:28s} seed {seed}: acc {m['acc']:.4f} auroc {m['auroc']:.4f} epochs {m['epochs']}",
                flush=True,
            )
        rows.append(
            {
                "variant": variant,
                "test acc mean": statistics.mean(accs),
                "test acc std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                "AUROC mean": statistics.mean(aurocs),
                "epochs (early stop)": " ".join(map(str, epochs)),
                "per-seed acc": " ".join(f"{a:.4f}" for a in accs),
            }
        )
    base = rows[0]["test acc mean"]
    for r in rows:
        r["delta vs pytorch (pp)"] = f"{100 * (r['test acc mean'] - base):+.2f}"
    table = markdown_table(
        rows,
        [
            "variant",
            "test acc mean",
            "test acc std",
            "delta vs pytorch (pp)",
            "AUROC mean",
            "epochs (early stop)",
            "per-seed acc",
        ],
    )
    record(
        "framework_differences",
        f"Keras vs PyTorch defaults, data: {args.data_label or args.root}",
        table,
        notes=f"seeds {args.seeds}; val {args.val_size}; best-val checkpoint tested; work dir {work}",
    )


if __name__ == "__main__":
    main()
