"""Do detectors judge fakes by small background artefacts? (seed 004's claim, issue 15)

Seed 004 read its saliency maps as showing that the CIFAKE CNN looks at "small background artefacts"
of fakes rather than at the object. If so, the attribution of fakes should sit at the border of the
image more than the attribution of reals does. For each checkpoint this runs `cifake explain` on a
balanced sample of test images (Integrated Gradients and Grad-CAM) and measures the *centre fraction*
of each map: the share of |attribution| inside the central square that leaves a quarter of the side
on each edge (explain/metrics.centre_fraction; a uniform map gives 0.25, so below 0.25 = border-heavy).
Reported per checkpoint group (mean ± sd over the checkpoints, e.g. seeds): reals vs fakes with the
difference and a bootstrap 95% CI pooled over images, and per CIFAR-10 class on the real side (the
class comes from the CIFAKE file name; unconditional fakes carry none).

    python -m benchmarks.centre_border --n 1000 \\
        --group baseline runs/gen-baseline-s*/version_0/checkpoints/best*.ckpt
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from ._common import cifake, markdown_table, mean_sd, record

METHODS = ("integrated_gradients", "grad_cam")
UNIFORM = 0.25


def explain_scores(ckpt: Path, n: int, out: Path, seed: int) -> list[dict]:
    """`cifake explain` of a checkpoint on its own data's test split; the per-image scores."""
    if not (out / "scores.json").is_file():
        cifake(
            "explain", "--ckpt", str(ckpt), "--n", str(n), "--seed", str(seed),
            "--explain.methods", f"[{', '.join(METHODS)}]", "--out", str(out), "--batch_size", "100",
            cwd=out.parent,
        )  # fmt: skip
    return json.loads((out / "scores.json").read_text())


def boot_diff(
    a: list[float], b: list[float], n_boot: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """mean(a) - mean(b) with a percentile bootstrap 95% CI (images resampled within each group)."""
    g = torch.Generator().manual_seed(seed)
    ta, tb = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    ia = torch.randint(len(a), (n_boot, len(a)), generator=g)
    ib = torch.randint(len(b), (n_boot, len(b)), generator=g)
    d = ta[ia].mean(1) - tb[ib].mean(1)
    lo, hi = torch.quantile(d, torch.tensor([0.025, 0.975], dtype=torch.float64)).tolist()
    return float(ta.mean() - tb.mean()), lo, hi


def main() -> None:
    from cifake_lightning.data.layout import CIFAR10_CLASSES, cifake_content_class

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--group", nargs="+", action="append", required=True, metavar=("NAME", "CKPT"),
        help="a name and its checkpoints (e.g. one per seed); repeat for several groups",
    )  # fmt: skip
    ap.add_argument("--n", type=int, default=1000, help="images per checkpoint (half real, half fake)")
    ap.add_argument("--work", default="/tmp/cifake-centre-border")
    ap.add_argument("--data-label", default=None)
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rows, class_rows = [], []
    for name, *ckpts in args.group:
        per_ckpt = []
        by_class: dict[str, dict[int, list[float]]] = {m: {} for m in METHODS}
        for i, ckpt in enumerate(ckpts):
            scores = explain_scores(Path(ckpt).resolve(), args.n, work / f"{name}-{i}", seed=i)
            stats = {}
            for m in METHODS:
                key = f"{m}/centre_fraction"
                real = [s[key] for s in scores if s["label"] == "real"]
                fake = [s[key] for s in scores if s["label"] == "fake"]
                stats[m] = (statistics.mean(real), statistics.mean(fake), *boot_diff(fake, real, seed=i))
                for s in scores:
                    if s["label"] == "real":
                        c = cifake_content_class(Path(s["file"]).name)
                        by_class[m].setdefault(c, []).append(s[key])
            stats["n"] = (
                sum(s["label"] == "real" for s in scores),
                sum(s["label"] == "fake" for s in scores),
            )
            per_ckpt.append(stats)
        for m in METHODS:
            diffs = [p[m] for p in per_ckpt]
            rows.append(
                {
                    "detector": name,
                    "checkpoints": len(ckpts),
                    "map": m,
                    "images real/fake (each)": "{}/{}".format(*per_ckpt[0]["n"]),
                    "centre fraction reals": mean_sd([p[m][0] for p in per_ckpt]),
                    "centre fraction fakes": mean_sd([p[m][1] for p in per_ckpt]),
                    "fakes - reals": mean_sd([d[2] for d in diffs]),
                    "95% CI excl. 0 (checkpoints)": f"{sum(d[3] > 0 or d[4] < 0 for d in diffs)}/{len(diffs)}",
                    "fakes border-heavier than reals": f"{sum(d[4] < 0 for d in diffs)}/{len(diffs)}",
                }
            )
        for c in sorted(k for k in by_class[METHODS[0]] if k >= 0):
            line = {
                "detector": name,
                "class (reals)": CIFAR10_CLASSES[c],
                "images": len(by_class[METHODS[0]][c]),
            }
            for m in METHODS:
                line[f"{m} centre fraction"] = f"{statistics.mean(by_class[m][c]):.3f}"
            class_rows.append(line)
    table = (
        markdown_table(rows)
        + "\n\nPer CIFAR-10 class, reals only (pooled over each detector's checkpoints):\n\n"
    )
    table += markdown_table(class_rows)
    record(
        "centre_border",
        f"centre vs border attribution, reals vs fakes, data: {args.data_label or 'the test split of the data each checkpoint was trained on'}",
        table,
        notes=(
            f"{args.n} test images per checkpoint (half real, half fake, seeded sample); centre = middle half of "
            f"each side (a quarter of the pixels: uniform map = {UNIFORM}); IG 32 steps, Grad-CAM on the last conv "
            f"layer; difference with a bootstrap CI over images per checkpoint; work dir {work}"
        ),
    )


if __name__ == "__main__":
    main()
