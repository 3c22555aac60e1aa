"""The decoded form of a split: `Source` (one folder of one label) and `DecodedSplit` (its images and
per-image metadata, index-aligned), shared by the scanner, the decoder, the cache and the data modules;
`stratified_split`, the seeded, stratified carving of a validation set out of a training split."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import torch

#: what to do with an unreadable image: stop naming it, or skip and count it
ON_BAD_FILE = ("error", "skip")


@dataclass(frozen=True)
class Source:
    """One folder of images that share a label (0 = real, 1 = fake) and a source name.

    `recursive` also takes images in sub-folders; `limit` keeps a seeded random sample of that many
    files (chosen before decoding, so sampling 2,000 of 100,000 images decodes 2,000).
    """

    name: str
    folder: Path
    label: int
    recursive: bool = False
    limit: int | None = None
    seed: int = 0


@dataclass
class DecodedSplit:
    """Decoded images of one split with per-image metadata, all index-aligned."""

    images: torch.Tensor  # (N, 3, S, S) uint8
    labels: torch.Tensor  # (N,) int64, 0 real / 1 fake
    source: torch.Tensor  # (N,) int64 index into source_names
    content_class: torch.Tensor  # (N,) int64, -1 when unknown
    files: list[str]
    hashes: list[str]
    source_names: list[str]
    skipped: list[dict] = field(default_factory=list)
    fingerprint: str = ""
    cache_path: Path | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, index: torch.Tensor | Sequence[int]) -> DecodedSplit:
        idx = torch.as_tensor(index, dtype=torch.long)
        il = idx.tolist()
        return DecodedSplit(
            self.images[idx],
            self.labels[idx],
            self.source[idx],
            self.content_class[idx],
            [self.files[i] for i in il],
            [self.hashes[i] for i in il],
            list(self.source_names),
            list(self.skipped),
            self.fingerprint,
            self.cache_path,
        )

    @cached_property
    def _hash(self) -> str:
        h = hashlib.blake2b(digest_size=16)
        for f, c in zip(self.files, self.hashes):
            h.update(f"{f}\0{c}\n".encode())
        h.update("\0".join(self.source_names).encode())
        for t in (self.labels, self.source, self.content_class):
            h.update(t.contiguous().numpy().tobytes())
        h.update(self.images.contiguous().numpy().tobytes())  # ~0.5 s per 100k images, once per split
        return h.hexdigest()

    def manifest_hash(self) -> str:
        """Hash of what this split feeds the model: file names and bytes, and also the decoded pixels
        (so a different resize policy or crop is different data), labels, sources and content classes.
        Results are keyed by it and `cifake compare` pairs only results with the same hash."""
        return self._hash


@dataclass(frozen=True)
class SplitManifest:
    """What one split of a data module holds, row by row (no pixels).

    Attributes:
        split: the split's name (train, val, test, predict).
        data: the data module's class name; root: the folder it read.
        files: relative path of each row's file; labels: 0 real, 1 fake, -1 unlabelled.
        source: index into `source_names` per row; content_class: CIFAR-10 class or -1.
        content_hash: hash of every file name and its bytes (changes when any image changes).
    """

    split: str
    data: str
    root: str
    files: tuple[str, ...]
    labels: torch.Tensor
    source: torch.Tensor
    content_class: torch.Tensor
    source_names: tuple[str, ...]
    content_hash: str
    source_kinds: tuple[str, ...] = ()  # generator kind per source name ("" or absent: not given)

    def __len__(self) -> int:
        return len(self.files)

    def kinds(self) -> dict[str, str]:
        """{source name: generator kind} for the sources whose kind the data module declares."""
        return {n: k for n, k in zip(self.source_names, self.source_kinds) if k}

    @property
    def key(self) -> str:
        """Short name of this data for result folders: `<split>-<first 10 hex of the content hash>`."""
        return f"{self.split}-{self.content_hash[:10]}"

    def describe(self) -> dict:
        """JSON-able summary (no per-row lists): what a report says it scored."""
        n_fake = int((self.labels == 1).sum())
        return {
            "split": self.split,
            "data": self.data,
            "root": self.root,
            "n": len(self),
            "real": int((self.labels == 0).sum()),
            "fake": n_fake,
            "sources": list(self.source_names),
            "kinds": self.kinds(),
            "content_hash": self.content_hash,
        }


def stratified_split(labels: torch.Tensor, n_val: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Split indices into (train, val) with `n_val` validation items, class proportions preserved.

    The same labels and seed always give the same split (a CPU generator, independent of the global
    RNG). Each class contributes round(n_val * class_share) items; rounding leftovers go to the largest
    classes so the total is exactly n_val.
    """
    n = int(labels.numel())
    if not 0 <= n_val < n:
        raise ValueError(f"val_size must be in [0, {n - 1}] for a training split of {n} images, got {n_val}")
    g = torch.Generator().manual_seed(int(seed))
    classes, counts = torch.unique(labels, return_counts=True)
    quota = (counts.double() * n_val / n).floor().long()
    remainder = n_val - int(quota.sum())
    order = torch.argsort(counts.double() * n_val / n - quota.double(), descending=True)
    for j in order[:remainder].tolist():
        quota[j] += 1
    val_parts, train_parts = [], []
    for c, q in zip(classes.tolist(), quota.tolist()):
        idx = torch.nonzero(labels == c, as_tuple=False).flatten()
        idx = idx[torch.randperm(idx.numel(), generator=g)]
        val_parts.append(idx[:q])
        train_parts.append(idx[q:])
    val = torch.sort(torch.cat(val_parts)).values
    train = torch.sort(torch.cat(train_parts)).values
    return train, val
