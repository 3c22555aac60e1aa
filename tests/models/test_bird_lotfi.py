import pytest
import torch

from cifake_lightning.models import BirdLotfiCNN, create_model, list_models, paper_topologies, parse_topology


def test_paper_grid_has_36_distinct_names():
    names = paper_topologies()
    assert len(names) == 36 == len(set(names))
    assert names[0] == "conv16x1" and names[-1] == "conv128x2-dense4096x3"
    assert sum("-dense" in n for n in names) == 24


@pytest.mark.parametrize("name", paper_topologies())
def test_every_topology_builds_and_trains_a_step(name):
    model = create_model(name)
    x = torch.randn(2, 3, 32, 32)
    out = model(x)
    assert out.shape == (2,)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    assert model.name == name


def test_names_roundtrip_and_registry():
    assert parse_topology("conv64x3-dense512x2") == {
        "filters": 64,
        "conv_layers": 3,
        "dense_units": 512,
        "dense_layers": 2,
    }
    assert "conv128x2-dense64x1" in list_models("conv128x2*")
    assert isinstance(create_model("conv8x1-dense16x1"), BirdLotfiCNN)  # any name of the family parses
    with pytest.raises(ValueError, match="unknown model name"):
        create_model("resnet-nonsense")


def test_keras_init_zero_biases_and_glorot_range():
    m = BirdLotfiCNN(topology="conv32x2-dense64x1", init="keras")
    conv = m.features[0]
    assert torch.all(conv.bias == 0)
    limit = (6 / (3 * 9 + 32 * 9)) ** 0.5
    assert conv.weight.abs().max() <= limit and conv.weight.abs().max() > 0.8 * limit


def test_invalid_topologies():
    with pytest.raises(ValueError):
        BirdLotfiCNN(conv_layers=4)  # 32 -> 15 -> 6 -> 2 -> 0
    with pytest.raises(ValueError):
        BirdLotfiCNN(topology="dense64")
