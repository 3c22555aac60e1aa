"""Collectives the project needs beyond Lightning's: gathering per-image rows that differ in count per rank."""

from __future__ import annotations

import torch


def gather_uneven(module, local: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """all_gather tensors whose first dimension differs between DDP ranks (pad, gather, trim).

    Every rank must call it (it is a collective). Evaluation shards are not padded by the loader, so
    ranks may hold different numbers of rows; each rank's true count is gathered first.
    """
    n = torch.tensor([len(next(iter(local.values())))], device=module.device)
    sizes = module.all_gather(n).flatten().tolist()
    top = max(sizes)
    out = {}
    for k, v in local.items():
        pad = torch.zeros((top - len(v), *v.shape[1:]), dtype=v.dtype)
        g = module.all_gather(torch.cat([v, pad]).to(module.device)).cpu()
        out[k] = torch.cat([g[r, : sizes[r]] for r in range(len(sizes))])
    return out
