"""`cifake compare RESULT_A RESULT_B`: paired test of two detectors scored on the same images.

    cifake test --ckpt runs/a/version_0/checkpoints/best-epoch07.ckpt --data configs/data/ood_genset_v2.yaml
    cifake test --ckpt runs/b/version_0/checkpoints/best-epoch09.ckpt --data configs/data/ood_genset_v2.yaml
    cifake compare results/a/version_0/best-epoch07/test-XXXX results/b/version_0/best-epoch09/test-XXXX

Prints both accuracies (each model at its own validation-chosen threshold) with McNemar's exact p-value on the discordant images, and the AUROC difference
with its paired-bootstrap 95% interval; `--json FILE` also writes them. The two folders must hold results
on the same data (same content hash), else it stops.
"""

from __future__ import annotations

import argparse

from ..errors import ConfigError
from ..utils import write_json


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(
        prog="cifake compare", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("a", help="result folder of model A (written by `cifake test`)")
    ap.add_argument("b", help="result folder of model B, same data")
    ap.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for the AUROC interval")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--source",
        action="append",
        default=None,
        help="compare only this source's images (repeat: e.g. the unseen generators and test/REAL)",
    )
    ap.add_argument("--json", default=None, help="also write the comparison to this JSON file")
    args = ap.parse_args(argv)
    from ..evaluate.compare import compare_results

    if args.n_boot < 1:
        raise ConfigError("--n-boot", f"must be at least 1, got {args.n_boot}")
    r = compare_results(args.a, args.b, n_boot=args.n_boot, seed=args.seed, sources=args.source)
    lo, hi = r["auroc_diff_ci95"]
    print(f"{r['n']} images (data {r['data_content_hash'][:10]})")
    print(
        f"accuracy  A {r['accuracy_a']:.4f}  B {r['accuracy_b']:.4f}  (each at its validation threshold: "
        f"A P(fake) >= {r['threshold_a']:.4g}, B >= {r['threshold_b']:.4g})"
    )
    print(
        f"McNemar   A right/B wrong {r['a_right_b_wrong']}, A wrong/B right {r['a_wrong_b_right']}, "
        f"exact p = {r['mcnemar_p']:.3g}"
    )
    print(
        f"AUROC     A {r['auroc_a']:.4f}  B {r['auroc_b']:.4f}  A-B {r['auroc_diff']:+.4f} [95% CI {lo:+.4f}, {hi:+.4f}]"
    )
    if args.json:
        write_json(args.json, r)
