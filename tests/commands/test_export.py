"""`cifake export`: ONNX and TorchScript files that match PyTorch (issue 20)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers.run import cifake

from cifake_lightning.commands.export_cmd import _not_exportable, export_module, run_export
from cifake_lightning.errors import ConfigError
from cifake_lightning.models import create_model
from cifake_lightning.training import ImageClassifier

pytest.importorskip("onnxruntime")

#: every registered detector family (the 36 convNxM-denseKxL names are all BirdLotfiCNN: two stand in)
FAST = ["bird_lotfi", "conv16x1", "conv128x2-dense32x3", "attention_cnn", "lightweight_cnn",
        "lightweight_cnn_hoc", "dualstream", "dualstream_small", "resnet18", "vit_tiny", "vgg11_bn"]  # fmt: skip
SLOW = ["resnet50", "vgg16_bn", "vit_small"]


def _classifier(name: str, **kw):
    """The Detector of a classifier calibrated on made-up validation scores."""
    m = ImageClassifier(create_model(name, **kw), calibration="temperature", threshold="fpr:0.1")
    g = torch.Generator().manual_seed(0)
    m.val_scores = {"logit": torch.randn(200, generator=g) * 3 + torch.arange(200).remainder(2) * 4,
                    "label": torch.arange(200).remainder(2)}  # fmt: skip
    m.detector.calibration = m.calibration
    return m.detector.eval()


def _check(name, fmt, tmp_path):
    m = _classifier(name)
    out, diff = export_module(m, fmt, tmp_path / f"{name}.{'onnx' if fmt == 'onnx' else 'pt'}")
    assert diff <= 1e-4
    x = torch.rand(7, 3, 32, 32, generator=torch.Generator().manual_seed(1))  # another batch size
    logit, p, fake = run_export(out, x.numpy() if fmt == "onnx" else x)
    with torch.no_grad():
        ref = m(x).float()
    assert np.abs(np.asarray(logit) - ref.numpy()).max() <= 1e-4
    assert np.abs(np.asarray(p) - m.calibration.prob(ref).numpy()).max() <= 1e-4
    assert (np.asarray(fake) == m.calibration.decide(ref).bool().numpy()).all()


@pytest.mark.parametrize("name", FAST)
def test_onnx_matches_pytorch(name, tmp_path):
    _check(name, "onnx", tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW)
def test_onnx_matches_pytorch_large_models(name, tmp_path):
    _check(name, "onnx", tmp_path)


@pytest.mark.parametrize("name", ["bird_lotfi", "dualstream_small"])
def test_torchscript_matches_pytorch(name, tmp_path):
    _check(name, "torchscript", tmp_path)


def test_npr_preprocessing_is_inside_the_export(tmp_path):
    from cifake_lightning.models import ArtifactResidual

    m = _classifier("bird_lotfi")
    m.preprocess = ArtifactResidual("npr")  # the Detector's preprocess stage
    _, diff = export_module(m, "onnx", tmp_path / "npr.onnx")
    assert diff <= 1e-4


def test_fft_models_are_refused_with_the_reason():
    m = _classifier("dualstream_small", frequency="fft")
    assert "FFT" in _not_exportable(m)


def test_export_command_on_a_checkpoint(demo_ckpt, tmp_path):
    import onnx

    r = cifake("export", "--ckpt", str(demo_ckpt), "--format", "onnx", "--out", "d.onnx", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "matches PyTorch within" in r.stderr
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "d.onnx")).metadata_props}
    assert meta["threshold_rule"] == "fpr:0.01" and meta["checkpoint"] == str(demo_ckpt)
    r = cifake("export", "--ckpt", "nope.ckpt", cwd=tmp_path)
    assert r.returncode == 2 and "nope.ckpt" in r.stderr
    with pytest.raises(ConfigError):
        from cifake_lightning.commands.export_cmd import export

        export(demo_ckpt, "tflite")


def test_out_naming_the_checkpoint_is_refused_before_anything_is_written(demo_ckpt, tmp_path, capsys):
    import shutil

    from cifake_lightning.console import main

    ckpt = tmp_path / "det.ckpt"
    shutil.copy(demo_ckpt, ckpt)
    before = ckpt.read_bytes()
    (tmp_path / "link.onnx").symlink_to(ckpt)
    for out in (ckpt, tmp_path / "link.onnx"):
        with pytest.raises(SystemExit) as e:
            main(["export", "--ckpt", str(ckpt), "--out", str(out)])
        assert e.value.code == 2 and "is an input of this command" in capsys.readouterr().err
    assert ckpt.read_bytes() == before


@pytest.mark.parametrize("fmt,suffix", [("onnx", ".model"), ("torchscript", ".onnx")])
def test_parity_check_runs_the_format_exported_not_the_suffix(fmt, suffix, tmp_path):
    out, diff = export_module(_classifier("conv16x1"), fmt, tmp_path / f"det{suffix}")
    assert out.is_file() and diff <= 1e-4
