"""Seeded, stratified carving of a validation set out of a training split."""

from __future__ import annotations

import torch


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
