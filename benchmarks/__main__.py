"""`python -m benchmarks` (= `make bench`): the quick CPU suite, a few minutes on 2 cores.

Runs throughput (baseline and HOC, ours vs naive), the decode-cache build for 20,000 JPEGs and the
explain-callback overhead, each appending its table to benchmarks/results/. Data: --root (a CIFAKE-layout
folder), else data/genset-v1 if extracted there, else a synthetic set written to a temporary folder.
The full measurements quoted in README come from the individual scripts with their default sizes.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run(*args: str) -> None:
    print(f"\n$ python -m {' '.join(args)}", flush=True)
    subprocess.run([sys.executable, "-m", *args], cwd=REPO, check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=None)
    args = ap.parse_args()
    root = args.root
    if root is None and (REPO / "data" / "genset-v1" / "train").is_dir():
        root = str(REPO / "data" / "genset-v1")
    if root is None:
        from cifake_lightning.data.synth import write_synthetic_cifake

        root = str(Path(tempfile.mkdtemp(prefix="bench-data-")) / "synth")
        write_synthetic_cifake(root, n_train=5000, n_test=1000)
    cache = tempfile.mkdtemp(prefix="bench-cache-")
    _run(
        "benchmarks.throughput",
        "--root",
        root,
        "--cache-dir",
        cache,
        "--models",
        "baseline",
        "lightweight_hoc",
        "--steps",
        "20",
    )
    _run("benchmarks.cache_build", "--per-label", "10000")
    _run(
        "benchmarks.explain_overhead",
        "--root",
        root,
        "--epochs",
        "1",
        f"--data.cache_dir={cache}",
        "--data.val_size=0.1",
    )


if __name__ == "__main__":
    main()
