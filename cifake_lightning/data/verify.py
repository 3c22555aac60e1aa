"""Dataset checks behind `cifake data verify` and `cifake data classes`."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .layout import CIFAR10_CLASSES, LABEL_NAMES


def _pixel_hashes(images: torch.Tensor) -> list[str]:
    flat = images.reshape(images.shape[0], -1).numpy()
    return [hashlib.blake2b(row.tobytes(), digest_size=10).hexdigest() for row in flat]


def verify_cifake(dm) -> dict:
    """Counts, class balance, skipped files, duplicates within splits and leakage between them."""
    dm.setup()
    report: dict = {"root": str(dm._root()), "splits": {}, "problems": []}
    pixel = {}
    for name in dm.split_names:
        d = dm.decoded(name)
        labels = d.labels.tolist()
        cc = Counter((LABEL_NAMES[lab], c) for lab, c in zip(labels, d.content_class.tolist()))
        byte_dups = sum(n - 1 for n in Counter(d.hashes).values() if n > 1)
        pixel[name] = _pixel_hashes(d.images)
        pixel_dups = sum(n - 1 for n in Counter(pixel[name]).values() if n > 1)
        report["splits"][name] = {
            "n": len(d),
            "real": labels.count(0),
            "fake": labels.count(1),
            "content_classes": {
                f"{lab}/{CIFAR10_CLASSES[c] if c >= 0 else 'unknown'}": n
                for (lab, c), n in sorted(cc.items())
            },
            "skipped": d.skipped[:50],
            "n_skipped": len(d.skipped),
            "duplicate_files": byte_dups,
            "duplicate_images": pixel_dups,
            "cache": str(d.cache_path) if d.cache_path else None,
        }
        if d.skipped:
            report["problems"].append(
                f"{name}: {len(d.skipped)} unreadable file(s), e.g. {d.skipped[0]['file']}: {d.skipped[0]['reason']}"
            )
        if pixel_dups:
            report["problems"].append(
                f"{name}: {pixel_dups} image(s) duplicate another image of the same split"
            )
    if "train" in dm.split_names and "test" in dm.split_names:
        tr, te = dm.decoded("train"), dm.decoded("test")
        byte_leak = sorted(set(tr.hashes) & set(te.hashes))
        px_leak = set(pixel["train"]) & set(pixel["test"])
        examples = [te.files[i] for i, h in enumerate(pixel["test"]) if h in px_leak][:20]
        report["leakage"] = {
            "identical_files": len(byte_leak),
            "identical_images": len(px_leak),
            "examples": examples,
        }
        if px_leak:
            report["problems"].append(
                f"leakage: {len(px_leak)} test image(s) also appear in train, e.g. {examples[0]}"
            )
    return report


def format_report(report: dict) -> str:
    lines = [f"dataset: {report['root']}"]
    for name, s in report["splits"].items():
        lines.append(
            f"  {name:6s} {s['n']:>7,d} images  real {s['real']:>7,d}  fake {s['fake']:>7,d}  "
            f"skipped {s['n_skipped']}  duplicate images {s['duplicate_images']}"
        )
    if "leakage" in report:
        lk = report["leakage"]
        lines.append(
            f"  train/test leakage: {lk['identical_images']} identical images ({lk['identical_files']} identical files)"
        )
    lines.append("problems:" if report["problems"] else "no problems found")
    lines += [f"  - {p}" for p in report["problems"]]
    return "\n".join(lines)


def read_cifar10_binary(folder: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 test set from the *binary* release (test_batch.bin): no pickle is ever loaded."""
    folder = Path(folder)
    candidates = [folder / "test_batch.bin", folder / "cifar-10-batches-bin" / "test_batch.bin"]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        raise DataError(
            "no test_batch.bin (get cifar-10-binary.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html)",
            folder,
        )
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size % 3073:
        raise DataError("test_batch.bin has an unexpected size", path)
    raw = raw.reshape(-1, 3073)
    return raw[:, 1:].reshape(-1, 3, 32, 32), raw[:, 0].astype(np.int64)


def check_content_classes(dm, cifar10_dir: str | Path) -> dict:
    """Match every test/REAL image to its nearest CIFAR-10 test image and compare with the file-name class."""
    ref_x, ref_y = read_cifar10_binary(cifar10_dir)
    dm.setup()
    test = dm.decoded("test")
    real = test.labels == 0
    x = test.images[real].reshape(int(real.sum()), -1).float()
    parsed = test.content_class[real]
    ref = torch.from_numpy(ref_x.reshape(len(ref_x), -1)).float()
    nn_class, nn_dist = [], []
    for chunk in torch.split(x, 512):
        d = torch.cdist(chunk, ref)
        dist, idx = d.min(dim=1)
        nn_class.append(torch.from_numpy(ref_y)[idx])
        nn_dist.append(dist / np.sqrt(3072))
    true = torch.cat(nn_class)
    rms = torch.cat(nn_dist)
    known = parsed >= 0
    agreement = float((true[known] == parsed[known]).float().mean()) if known.any() else 0.0
    confusion = Counter(zip(parsed.tolist(), true.tolist()))
    return {
        "n_real_test": int(real.sum()),
        "with_suffix_class": int(known.sum()),
        "agreement": agreement,
        "median_rms_distance_to_match": float(rms.median()),
        "pairs_(file_class,cifar_class)": {f"{a},{b}": n for (a, b), n in sorted(confusion.items())},
    }
