"""How long does decoding a CIFAKE-sized set (120,000 JPEGs) into the uint8 cache take, cold and warm?

Writes a synthetic dataset of that size in the CIFAKE layout (it stands in for CIFAKE, which has the
same file count, size and format), then times: the first CIFAKEDataModule.setup (scan + parallel
decode + cache write), a second setup in a fresh process (fingerprint check + cache read), and a
rebuild after one file changed.

    python -m benchmarks.cache_build                 # 120k images (about 2 GB of small files on disk)
    python -m benchmarks.cache_build --per-label 5000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SETUP = """
import json, sys, time
t = time.perf_counter()
from cifake_lightning.data import CIFAKEDataModule
dm = CIFAKEDataModule(root=sys.argv[1], cache_dir=sys.argv[2], val_size=10000 if int(sys.argv[3]) > 20000 else 0, progress=False)
dm.setup()
print(json.dumps({"seconds": time.perf_counter() - t, "n": sum(len(dm.manifest(s)) for s in dm.split_names)}))
"""


def _setup(root: Path, cache: Path, n: int) -> dict:
    r = subprocess.run(
        [sys.executable, "-c", SETUP, str(root), str(cache), str(n)], capture_output=True, text=True
    )
    if r.returncode:
        raise RuntimeError(r.stderr[-2000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-label", type=int, default=60_000, help="images per label (train is 5/6, test 1/6)")
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    from cifake_lightning.data.synth import write_synthetic_cifake

    from ._common import markdown_table, record

    work = Path(args.workdir or tempfile.mkdtemp(prefix="cachebench-"))
    root, cache = work / "data", work / "cache"
    n_test = args.per_label // 6
    n_train = args.per_label - n_test
    t = time.perf_counter()
    if not (root / "train").is_dir():
        write_synthetic_cifake(root, n_train=n_train, n_test=n_test, overwrite=True)
    n = 2 * (n_train + n_test)
    write_s = time.perf_counter() - t
    cold = _setup(root, cache, n)
    warm = _setup(root, cache, n)
    victim = root / "train" / "REAL" / "0000.jpg"
    os.utime(victim, ns=(time.time_ns(), time.time_ns()))
    rebuilt = _setup(root, cache, n)
    rows = [
        {
            "step": "write synthetic JPEGs (not part of the pipeline)",
            "seconds": write_s,
            "images/s": n / write_s,
        },
        {
            "step": "first setup: scan + decode + write cache (cold)",
            "seconds": cold["seconds"],
            "images/s": n / cold["seconds"],
        },
        {
            "step": "second setup in a new process: fingerprint + read cache",
            "seconds": warm["seconds"],
            "images/s": n / warm["seconds"],
        },
        {
            "step": "after touching one file: rebuild",
            "seconds": rebuilt["seconds"],
            "images/s": n / rebuilt["seconds"],
        },
    ]
    record(
        "cache_build",
        f"decode-once cache for {n:,} JPEGs",
        markdown_table(rows),
        notes=f"{os.cpu_count()} decode worker processes; setup times include Python/torch start-up (~3 s)",
    )


if __name__ == "__main__":
    main()
