"""Score fusion of trained detectors (models/fusion.py, training/fusion.py; issue 29)."""

from __future__ import annotations

import csv
import shutil

import pytest
import torch
from helpers.run import QUIET, REPO
from torchmetrics.functional.classification import binary_auroc

from cifake_lightning.console import main
from cifake_lightning.data.image_io import load_image_tensor
from cifake_lightning.errors import ConfigError
from cifake_lightning.models import ScoreFusion
from cifake_lightning.models.detector import Detector


@pytest.fixture
def members(demo_ckpt, tmp_path):
    """Two member checkpoints, each in a run folder with its config.yaml (copies of the demo run)."""
    out = []
    for name in ("a", "b"):
        run = tmp_path / "members" / name / "version_0"
        (run / "checkpoints").mkdir(parents=True)
        shutil.copy(demo_ckpt.parent.parent / "config.yaml", run / "config.yaml")
        out.append(shutil.copy(demo_ckpt, run / "checkpoints" / "last.ckpt"))
    return [str(p) for p in out]


def _two_kinds(n: int = 400):
    """Member logits (B, 2): member 0 separates fakes of kind A, member 1 those of kind B, on other scales."""
    g = torch.Generator().manual_seed(0)
    label = torch.cat([torch.zeros(n), torch.ones(n)]).long()
    kind_b = torch.cat([torch.zeros(n), torch.arange(n) % 2]).bool()
    noise = torch.randn(2 * n, 2, generator=g)
    logits = torch.stack([10 * noise[:, 0] + 5.0, 0.1 * noise[:, 1] - 3.0], 1)
    logits[(label == 1) & ~kind_b, 0] += 40.0
    logits[(label == 1) & kind_b, 1] += 0.4
    return logits, label, kind_b


def test_max_fusion_of_standardised_scores_finds_what_either_member_finds(members):
    logits, label, kind_b = _two_kinds()
    fusion = ScoreFusion(members, rule="max")
    fusion.fit(logits, label)
    real = logits[label == 0]
    assert fusion.ref_mean.tolist() == pytest.approx(real.mean(0).tolist())
    fused = fusion.fuse(logits)
    for kind in (~kind_b, kind_b):
        keep = (label == 0) | kind
        alone = [float(binary_auroc(logits[keep, m], label[keep])) for m in (0, 1)]
        assert min(alone) < 0.65  # each member misses one kind ...
        assert float(binary_auroc(fused[keep], label[keep])) > 0.95  # ... the fusion finds both


def test_logistic_fusion_trusts_the_member_that_separates_validation_fakes(members):
    logits, label, kind_b = _two_kinds()
    keep = (label == 0) | ~kind_b  # validation fakes of kind A only, the "trained kind"
    fusion = ScoreFusion(members, rule="logistic")
    fusion.fit(logits[keep], label[keep])
    assert float(fusion.weight[0]) > 3 * abs(float(fusion.weight[1]))


def test_fusion_options_are_checked(members):
    with pytest.raises(ConfigError, match="members"):
        ScoreFusion(members[:1])
    with pytest.raises(ConfigError, match="rule"):
        ScoreFusion(members, rule="median")
    fusion = ScoreFusion(members, rule="logistic")
    with pytest.raises(ConfigError, match="real and fake"):
        fusion.fit(torch.randn(10, 2), torch.zeros(10).long())


def _fit_fusion(cifake_root, members, *extra):
    main(["fit", "--config", str(REPO / "configs" / "fusion.yaml"), "--data.root", str(cifake_root),
          "--data.val_size", "40", "--model.init_args.backbone.init_args.members",
          f"[{members[0]}, {members[1]}]", *extra, *QUIET])  # fmt: skip


@pytest.mark.slow
def test_fusion_fits_on_validation_and_tests_through_the_cli(cifake_root, members, tmp_path, monkeypatch):
    """`cifake fit --config configs/fusion.yaml` then `cifake test`: the table's logits are the fused
    Detector's, and the threshold holds at most 5% of the validation reals."""
    monkeypatch.chdir(tmp_path)
    _fit_fusion(cifake_root, members)
    (ckpt,) = (tmp_path / "runs" / "fusion" / "version_0" / "checkpoints").glob("best-*.ckpt")
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert bool(saved["state_dict"]["detector.backbone.ref_fitted"])
    det = Detector.from_checkpoint(ckpt)
    reals = saved["cifake_val_scores"]["logit"][saved["cifake_val_scores"]["label"] == 0]
    assert float((reals >= det.calibration.threshold_logit).float().mean()) <= 0.05 + 1e-9
    main(["test", "--ckpt", str(ckpt), "--data.root", str(cifake_root), *QUIET])
    (preds,) = (tmp_path / "results").rglob("predictions.csv")
    rows = list(csv.DictReader(open(preds)))
    x = torch.stack([load_image_tensor(cifake_root / r["file"]) for r in rows[:6]]).float().div(255)
    with torch.no_grad():
        direct = det(x).tolist()
    assert [float(r["logit"]) for r in rows[:6]] == pytest.approx(direct, abs=1e-4)


@pytest.mark.parametrize(
    ("option", "value", "named"),
    [("--seed_everything", "1", "seed_everything"), ("--data.val_size", "80", "data.val_size")],
)
def test_a_fusion_on_images_a_member_trained_on_is_refused(
    cifake_root, members, tmp_path, monkeypatch, capsys, option, value, named
):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        _fit_fusion(cifake_root, members, option, value)
    assert e.value.code == 2
    assert named in capsys.readouterr().err
    assert not list(tmp_path.rglob("best-*.ckpt"))
