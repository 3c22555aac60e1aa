"""`cifake data ...`: make, fetch, check and pre-decode datasets.

cifake data synth --root data/demo            small synthetic set in the CIFAKE layout
cifake data download [--dataset cifake]       kagglehub / HF / GitHub download into $CIFAKE_DATA
cifake data prepare --root DIR [--archive F]  (safely unpack F, then) build the decode cache
cifake data verify --root DIR                 counts, bad files, duplicates and train/test leakage
cifake data classes --root DIR --cifar10 D    check the file-name suffix -> CIFAR-10 class mapping
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _synth(args) -> None:
    from ..data.synth import write_synthetic_cifake

    counts = write_synthetic_cifake(
        args.root, n_train=args.n_train, n_test=args.n_test, seed=args.seed, overwrite=args.overwrite
    )
    total = sum(counts.values())
    print(
        f"wrote {total} synthetic images to {args.root} ({', '.join(f'{k}: {v}' for k, v in counts.items())})"
    )
    print("NOTE: synthetic demo data, not CIFAKE; see README for the real dataset.")


def _download(args) -> None:
    from ..data import download as dl
    from ..data.pubgen import rebuild_pubgen_dev

    dest = Path(args.dest) if args.dest else dl.data_home() / args.dataset
    if args.dataset == "cifake":
        path = dl.download_kaggle(dl.KAGGLE_CIFAKE, dest, "train/ and test/ with REAL/ and FAKE/")
    elif args.dataset == "kaggle-real-vs-ai":
        path = dl.download_kaggle(dl.KAGGLE_REAL_VS_AI, dest, "one folder per label (RealArt/, AiArtData/)")
    elif args.dataset == "tinyimagenet":
        path = dl.download_kaggle(dl.KAGGLE_TINY_IMAGENET, dest, "tiny-imagenet-200/")
    elif args.dataset == "pubgen-dev":
        counts = rebuild_pubgen_dev(dest)
        path = f"{dest} ({sum(counts.values())} images in {len(counts)} sources, every pixel hash checked)"
    else:
        counts = dl.download_infimagine(dest, args.include or ["IFv1-CC1M", "SDv15R-CC1M"], parts=args.parts)
        path = f"{dest} ({', '.join(f'{k}: {v} files' for k, v in counts.items())})"
    print(f"downloaded {args.dataset} to {path}")


def _module(args):
    from ..data import CIFAKEDataModule

    return CIFAKEDataModule(
        root=args.root, cache_dir=args.cache_dir, on_bad_file=args.on_bad_file, val_size=0, progress=True
    )


def _prepare(args) -> None:
    if args.archive:
        from ..data.archive import extract_archive

        n = extract_archive(args.archive, args.root)
        print(f"extracted {n} files from {args.archive} into {args.root}")
    dm = _module(args)
    dm.prepare_data()
    for name, info in dm.summary().items():
        print(
            f"{name}: {info['n']} images ({info['real']} real, {info['fake']} fake), {info['skipped']} skipped"
        )


def _verify(args) -> int:
    from ..data.verify import verify_cifake

    report = verify_cifake(_module(args))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        from ..data.verify import format_report

        print(format_report(report))
    return 1 if report["problems"] else 0


def _classes(args) -> int:
    from ..data.verify import check_content_classes

    res = check_content_classes(_module(args), args.cifar10)
    print(json.dumps(res, indent=2))
    return 0 if res["agreement"] >= 0.99 else 1


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(
        prog="cifake data", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("synth", help="write a small synthetic dataset in the CIFAKE layout")
    p.add_argument("--root", required=True)
    p.add_argument("--n-train", type=int, default=1000, help="images per label in train (default 1000)")
    p.add_argument("--n-test", type=int, default=250, help="images per label in test (default 250)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true")

    p = sub.add_parser("download", help="download a dataset (needs internet and, for Kaggle, credentials)")
    p.add_argument(
        "--dataset",
        choices=["cifake", "kaggle-real-vs-ai", "tinyimagenet", "infimagine", "pubgen-dev"],
        default="cifake",
    )
    p.add_argument("--dest", default=None, help="target folder (default: $CIFAKE_DATA/<dataset>)")
    p.add_argument(
        "--include", nargs="*", help="infimagine: subsets to fetch (default IFv1-CC1M SDv15R-CC1M)"
    )
    p.add_argument(
        "--parts", type=int, default=1, help="infimagine: archive parts per subset (about 3 GB each)"
    )

    for name, hlp in (
        ("prepare", "build the decode cache (optionally unpack an archive first)"),
        ("verify", "check a dataset: counts, unreadable files, duplicates, leakage"),
        ("classes", "check the file-name -> CIFAR-10 class mapping against CIFAR-10"),
    ):
        p = sub.add_parser(name, help=hlp)
        p.add_argument("--root", default=None, help="dataset folder (default: $CIFAKE_DATA/cifake)")
        p.add_argument("--cache-dir", default=None)
        p.add_argument(
            "--on-bad-file", choices=["error", "skip"], default="error" if name != "verify" else "skip"
        )
        if name == "prepare":
            p.add_argument(
                "--archive", default=None, help=".zip/.tar(.gz) to unpack into --root first (path-safe)"
            )
        if name == "verify":
            p.add_argument("--json", action="store_true")
        if name == "classes":
            p.add_argument("--cifar10", required=True, help="folder with torchvision's cifar-10-batches-py")

    args = ap.parse_args(argv)
    if args.cmd in ("prepare", "verify", "classes") and args.root is None:
        from ..data.cifake import default_cifake_root

        args.root = str(default_cifake_root())
    rc = {
        "synth": _synth,
        "download": _download,
        "prepare": _prepare,
        "verify": _verify,
        "classes": _classes,
    }[args.cmd](args)
    if rc:
        sys.exit(rc)
