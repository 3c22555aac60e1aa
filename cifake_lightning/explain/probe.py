"""A fixed probe set: the same balanced real/fake images explained at every epoch and by every run."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class ProbeSet:
    images: torch.Tensor  # (N, 3, H, W) uint8
    labels: torch.Tensor  # (N,) 0 real / 1 fake
    files: list[str]

    def float_images(self, device) -> torch.Tensor:
        return self.images.to(device).float() / 255.0


def choose_probe(manifest, images: torch.Tensor, n: int, seed: int = 0) -> ProbeSet:
    """n images (n/2 real, n/2 fake where possible) drawn once from a split, with a private generator.

    `manifest` is the split's SplitManifest (labels, files) and `images` its uint8 images in row order:
    a function of what the data module publishes, not of its internals.
    """
    g = torch.Generator().manual_seed(int(seed))
    picks = []
    for label, k in ((0, n // 2), (1, n - n // 2)):
        idx = torch.nonzero(manifest.labels == label, as_tuple=False).flatten()
        picks.append(idx[torch.randperm(len(idx), generator=g)[:k]])
    idx = torch.cat(picks)
    if len(idx) == 0:
        raise ValueError("the split has no images to probe")
    return ProbeSet(
        images[idx].clone(), manifest.labels[idx].clone(), [manifest.files[i] for i in idx.tolist()]
    )
