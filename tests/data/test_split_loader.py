import pytest
import torch

from cifake_lightning.data.loader import TensorBatchLoader
from cifake_lightning.data.split import stratified_split


def test_stratified_split_is_deterministic_and_balanced():
    labels = torch.tensor([0] * 700 + [1] * 300)
    tr1, va1 = stratified_split(labels, 100, seed=5)
    tr2, va2 = stratified_split(labels, 100, seed=5)
    tr3, va3 = stratified_split(labels, 100, seed=6)
    assert torch.equal(va1, va2) and not torch.equal(va1, va3)
    assert len(va1) == 100 and int(labels[va1].sum()) == 30
    assert len(set(tr1.tolist()) & set(va1.tolist())) == 0 and len(tr1) + len(va1) == 1000


def test_split_rounding_and_limits():
    labels = torch.tensor([0] * 5 + [1] * 6)
    _, va = stratified_split(labels, 3, seed=0)
    assert len(va) == 3
    assert len(stratified_split(labels, 0, seed=0)[1]) == 0
    with pytest.raises(ValueError):
        stratified_split(labels, 11, seed=0)


def _loader(n, bs, **kw):
    t = {
        "image": torch.arange(n).view(n, 1, 1, 1).expand(n, 3, 2, 2).to(torch.uint8),
        "label": torch.arange(n) % 2,
    }
    return TensorBatchLoader(t, bs, **kw)


def test_epoch_reshuffles_and_repeats():
    ld = _loader(50, 8, shuffle=True, seed=1)
    first = torch.cat([b["index"] for b in ld])
    again = torch.cat([b["index"] for b in ld])
    ld.sampler.set_epoch(1)
    second = torch.cat([b["index"] for b in ld])
    assert torch.equal(first, again) and not torch.equal(first, second)
    assert sorted(first.tolist()) == list(range(50))


def test_batches_carry_matching_rows():
    ld = _loader(20, 6)
    for b in ld:
        assert torch.equal(b["image"][:, 0, 0, 0].long(), b["index"])
        assert torch.equal(b["label"], b["index"] % 2)
    assert len(ld) == 4 and [len(b["index"]) for b in ld] == [6, 6, 6, 2]


@pytest.mark.parametrize("n,world", [(103, 2), (100, 4), (7, 3)])
def test_training_shards_are_disjoint_cover_and_equal(n, world):
    loaders = [_loader(n, 4, shuffle=True, seed=3, rank=r, world_size=world) for r in range(world)]
    for ld in loaders:
        ld.sampler.set_epoch(2)
    shares = [torch.cat([b["index"] for b in ld]).tolist() for ld in loaders]
    steps = [len(list(ld)) for ld in loaders]
    assert len(set(steps)) == 1 and steps[0] == len(loaders[0])
    flat = [i for s in shares for i in s]
    assert len(flat) == len(set(flat)) and len(flat) >= n - (world - 1)


def test_eval_shards_cover_everything_once():
    loaders = [_loader(103, 10, rank=r, world_size=2) for r in range(2)]
    flat = sorted(i for ld in loaders for b in ld for i in b["index"].tolist())
    assert flat == list(range(103))


def test_drop_last_and_bad_args():
    assert len(_loader(20, 6, drop_last=True)) == 3
    assert len(_loader(19, 6, drop_last="auto")) == 3 and len(_loader(20, 6, drop_last="auto")) == 4
    with pytest.raises(ValueError):
        _loader(10, 0)
    with pytest.raises(ValueError):
        TensorBatchLoader({"image": torch.zeros(3), "label": torch.zeros(4)}, 2)
