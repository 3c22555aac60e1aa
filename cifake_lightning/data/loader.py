"""Batches straight from in-memory uint8 tensors: no Dataset, no per-image Python, DDP-aware.

`TensorBatchLoader` replaces a DataLoader for data that is already decoded. Each epoch it draws one
permutation from (seed, epoch) — identical on every rank — and, under DDP, gives rank r the items
``perm[r::world_size]`` after trimming to a multiple of world_size, so shares are disjoint, cover the
epoch (minus at most world_size-1 items) and every rank takes the same number of steps. Evaluation
shards are not padded (padding would count some images twice in the metrics); ranks may then differ
by one step, which is safe because evaluation steps do not synchronise.

Lightning calls ``loader.sampler.set_epoch(epoch)`` before each epoch (as for a DistributedSampler),
so a resumed run replays exactly the same order. When the tensors live on the GPU, batches are
sliced there and never cross the PCIe bus.
"""

from __future__ import annotations

import math

import torch


class EpochSampler:
    """Holds the epoch number; Lightning's fit loop sets it through ``set_epoch``."""

    def __init__(self) -> None:
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)


class TensorBatchLoader:
    """Iterate dict batches {"image": uint8 (B,3,H,W), "label", "index", ...} from index-aligned tensors.

    Args:
        tensors: name -> tensor with the same first dimension (``image`` and ``label`` required).
        batch_size: items per batch on each rank.
        shuffle: draw a new permutation every epoch (training); else keep the stored order.
        drop_last: drop a final partial batch; "auto" drops it only when it would hold a single image
            (BatchNorm cannot train on one), so every image is seen each epoch.
        seed: base seed of the permutation; the epoch is added, so epochs differ but runs repeat.
        rank, world_size: this process's share under DDP.
        equal_shares: trim each epoch to a multiple of world_size so every rank takes the same number
            of steps (default: on when shuffling, i.e. for training).
    """

    def __init__(
        self,
        tensors: dict[str, torch.Tensor],
        batch_size: int,
        *,
        shuffle: bool = False,
        drop_last: bool | str = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        equal_shares: bool | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        n = {int(t.shape[0]) for t in tensors.values()}
        if len(n) != 1:
            raise ValueError(f"tensors must share their first dimension, got sizes {sorted(n)}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} out of range for world_size {world_size}")
        self.tensors = tensors
        self.n = n.pop()
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = int(seed)
        self.rank = rank
        self.world_size = world_size
        self.equal_shares = shuffle if equal_shares is None else equal_shares
        self.sampler = EpochSampler()
        self.batch_sampler = None  # Lightning inspects this; there is none, batches are sliced directly

    @property
    def device(self) -> torch.device:
        return next(iter(self.tensors.values())).device

    def _share(self) -> torch.Tensor:
        """This rank's indices for the current epoch, in visiting order."""
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.sampler.epoch)
            order = torch.randperm(self.n, generator=g)
        else:
            order = torch.arange(self.n)
        if self.world_size > 1:
            if self.equal_shares:
                order = order[: self.n - self.n % self.world_size]
            order = order[self.rank :: self.world_size]
        return order

    def _share_len(self) -> int:
        if self.world_size == 1:
            return self.n
        if self.equal_shares:
            return self.n // self.world_size
        return len(range(self.rank, self.n, self.world_size))

    def __len__(self) -> int:
        m = self._share_len()
        drop = self.drop_last if self.drop_last != "auto" else m % self.batch_size == 1
        return m // self.batch_size if drop else math.ceil(m / self.batch_size)

    def __iter__(self):
        order = self._share().to(self.device)
        steps = len(self)
        for b in range(steps):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            batch = {k: t.index_select(0, idx) for k, t in self.tensors.items()}
            batch.setdefault("index", idx)
            yield batch
