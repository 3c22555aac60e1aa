"""training/classifier.py: ImageClassifier options."""

from __future__ import annotations

import pytest
import torch

from cifake_lightning.errors import ConfigError


def test_real_compact_pulls_real_features_together_and_leaves_the_logit_path_alone():
    from cifake_lightning.models import BirdLotfiCNN
    from cifake_lightning.training import ImageClassifier
    from cifake_lightning.training.classifier import final_linear

    torch.manual_seed(0)
    make = lambda w: ImageClassifier(BirdLotfiCNN(topology="conv8x1-dense16x1"), real_compact=w)  # noqa: E731
    off, on = make(0.0), make(1.0)
    on.load_state_dict(off.state_dict())  # same weights; the running centre is not part of the state
    assert not any("real_centre" in k for k in on.state_dict())
    x = torch.rand(16, 3, 32, 32)
    batch = {"image": x, "label": torch.tensor([0, 1] * 8)}
    on.train(), off.train()
    on.log = off.log = lambda *a, **k: None
    l_off, z_off, _ = off._loss(batch)
    l_on, z_on, _ = on._loss(batch)
    assert torch.equal(z_on, z_off)  # same logits: the option only adds a loss term
    assert float(l_on.detach()) > float(l_off.detach())  # features of random reals are not all one direction
    assert float(on.real_centre.norm()) == pytest.approx(1.0)
    on.eval()
    assert float(on._loss(batch)[0]) == pytest.approx(float(off.eval()._loss(batch)[0]))  # training only
    # a few steps on the compactness alone make the reals' features point one way
    on.train()
    opt = torch.optim.SGD(on.parameters(), lr=0.5)
    real = {"image": x[:8], "label": torch.zeros(8, dtype=torch.long)}
    first = None
    for _ in range(20):
        on(real["image"])  # the hook keeps the final layer's input
        loss = on._compactness(on._features.flatten(1), real["label"])
        first = float(loss) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss) < 0.5 * first
    with pytest.raises(ConfigError, match="model.real_compact"):
        make(-1.0)
    with pytest.raises(ConfigError, match="model.real_compact"):
        final_linear(torch.nn.Sequential(torch.nn.Conv2d(3, 1, 3)))
