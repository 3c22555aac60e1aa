"""models/detector.Detector is the one inference path: `cifake test`, `cifake predict FILES` and the
exported file give the same logits for the same images (issue 25, step 1)."""

from __future__ import annotations

import csv

import pytest
import torch
from helpers.run import QUIET

from cifake_lightning.commands.export_cmd import export, run_export
from cifake_lightning.console import main
from cifake_lightning.data.image_io import load_image_tensor
from cifake_lightning.models import BirdLotfiCNN
from cifake_lightning.models.detector import Detector
from cifake_lightning.training import ImageClassifier


def test_classifier_wraps_a_detector_whose_state_is_the_checkpoints():
    m = ImageClassifier(BirdLotfiCNN(topology="conv16x1"))
    assert m.backbone is m.detector.backbone
    assert all(k.startswith("detector.") for k in m.state_dict())
    x = torch.rand(3, 3, 32, 32)
    assert torch.equal(m(x), m.detector(x))


def test_test_predict_files_and_export_give_the_same_logits(demo_ckpt, cifake_root, tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.chdir(tmp_path)
    main(["test", "--ckpt", str(demo_ckpt), "--data.root", str(cifake_root), *QUIET])
    (preds,) = (tmp_path / "results").rglob("predictions.csv")
    tested = {r["file"]: float(r["logit"]) for r in csv.DictReader(open(preds))}
    files = sorted(tested)[:12]
    main(["predict", "--ckpt", str(demo_ckpt), *[str(cifake_root / f) for f in files], "--out", "p.csv"])
    predicted = [float(r["logit"]) for r in csv.DictReader(open(tmp_path / "p.csv"))]
    out, _ = export(demo_ckpt, "onnx", tmp_path / "d.onnx")
    x = torch.stack([load_image_tensor(cifake_root / f) for f in files]).float().div(255)
    exported = run_export(out, x.numpy(), "onnx")[0].tolist()
    with torch.no_grad():
        direct = Detector.from_checkpoint(demo_ckpt)(x).tolist()
    for f, a, b, c in zip(files, predicted, exported, direct, strict=True):
        assert (
            tested[f]
            == pytest.approx(a, abs=1e-4)
            == pytest.approx(b, abs=1e-4)
            == pytest.approx(c, abs=1e-4)
        )
