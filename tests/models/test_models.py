"""Model zoo: every config builds through the CLI and trains a step; DCT, CBAM, attention, bf16."""

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.run import REPO

from cifake_lightning.cli import CifakeCLI
from cifake_lightning.errors import CifakeError
from cifake_lightning.models import (
    DualStreamDetector,
    FrequencyTransform,
    TimmBackbone,
    attention_map,
    create_model,
    dct2,
    idct2,
)
from cifake_lightning.models.frequency import block_dct2, block_idct2, radial_frequency
from cifake_lightning.training import ImageClassifier

#: every fit config; not the parts (data, trainer, model), the research sweeps and their partial variant
#: configs (experiments/), the test and explain configs (test/, explain/), nor fusion.yaml, which fuses trained checkpoints and
#: trains nothing (tests/training/test_fusion.py fits it)
MODEL_CONFIGS = sorted(
    rel
    for rel in ((p.relative_to(REPO / "configs")).as_posix() for p in (REPO / "configs").rglob("*.yaml"))
    if rel.split("/")[0] not in ("data", "trainer", "model", "experiments", "test", "explain")
    and rel != "fusion.yaml"
)
#: the timm experiments (one line apart, collapsed into resnet18.yaml): each as `--model.backbone NAME`
TIMM_VARIANTS = ["resnet50", "vgg11_bn", "vgg16_bn", "vit_tiny", "vit_small"]
OFFLINE = ["--model.init_args.backbone.init_args.pretrained", "false"]


@pytest.fixture(scope="module")
def ae_ckpt(tmp_path_factory) -> Path:
    """A (barely) trained autoencoder checkpoint, as configs/isitcap/train_autoencoder.yaml writes."""
    import lightning as L

    from cifake_lightning.training import AutoencoderModule

    trainer = L.Trainer(
        max_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    from cifake_lightning.data.loader import TensorBatchLoader

    batches = TensorBatchLoader({"image": torch.rand(8, 3, 32, 32), "label": torch.zeros(8)}, 8)
    trainer.fit(AutoencoderModule(), train_dataloaders=batches)
    path = tmp_path_factory.mktemp("ae") / "ae.ckpt"
    trainer.save_checkpoint(path)
    return path


def _overrides(cfg: str, ae_ckpt: Path) -> list[str]:
    text = (REPO / "configs" / cfg).read_text()
    extra = []
    if "pretrained:" in text:
        extra += OFFLINE
    if "AutoencoderFilter" in text:
        extra += ["--model.init_args.preprocess.init_args.checkpoint", str(ae_ckpt)]
    return extra


@pytest.mark.parametrize(
    "cfg", MODEL_CONFIGS + [f"resnet18.yaml --model.backbone {v}" for v in TIMM_VARIANTS]
)
def test_every_config_builds_and_trains_one_step(cfg, cifake_root, tmp_path, monkeypatch, ae_ckpt):
    from cifake_lightning.argv import rewrite_argv

    monkeypatch.chdir(tmp_path)
    cfg, *variant = cfg.split(" ")
    cli = CifakeCLI(
        args=[
            "--config",
            str(REPO / "configs" / cfg),
            "--data.root",
            str(cifake_root),
            "--data.val_size",
            "20",
            "--trainer.logger",
            "false",
            *_overrides(cfg, ae_ckpt),
            *rewrite_argv(variant),  # as the cifake command rewrites a model name
        ],
        run=False,
    )
    model = cli.model
    x = torch.rand(4, 3, 32, 32)
    batch = {"image": x, "label": torch.tensor([0, 1, 0, 1]), "content_class": torch.tensor([0, 1, 2, 3])}
    model.train()
    loss = model.training_step(batch, 0) if not hasattr(model, "autoencoder") else model._step(batch, "train")
    loss = loss["loss"] if isinstance(loss, dict) else loss
    assert torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None for g in grads)
    if hasattr(model, "backbone"):
        model.eval()
        assert model(x).shape == (4,)


def test_configs_list_is_not_empty():
    assert {
        "baseline.yaml",
        "dualstream.yaml",
        "lightweight_hoc.yaml",
        "resnet18.yaml",
        "isitcap/autoencoder.yaml",
    } <= set(MODEL_CONFIGS)


def test_dct_matches_scipy_and_inverts_exactly():
    from scipy.fft import dctn

    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    ref = dctn(x.numpy(), type=2, norm="ortho", axes=(-2, -1))
    assert np.allclose(dct2(x).numpy(), ref, atol=1e-10)
    assert torch.allclose(idct2(dct2(x)), x, atol=1e-12)
    b = block_dct2(x, 8)
    tile = dctn(x[0, 0, 8:16, 16:24].numpy(), type=2, norm="ortho")
    assert np.allclose(b[0, 0, 8:16, 16:24].numpy(), tile, atol=1e-10)
    assert torch.allclose(block_idct2(b, 8), x, atol=1e-12)


def test_radial_frequency_range():
    r = radial_frequency(32, 32)
    assert r[0, 0] == 0 and torch.isclose(r[-1, -1], torch.tensor(1.0)) and r.max() <= 1
    rb = radial_frequency(32, 32, block=8)
    assert rb[8, 8] == 0 and torch.isclose(rb[7, 7], torch.tensor(1.0))


@pytest.mark.parametrize("kind,block,colour", [("dct", 0, "luma"), ("dct", 8, "rgb"), ("fft", 0, "luma")])
def test_frequency_transform_shapes(kind, block, colour):
    t = FrequencyTransform(kind=kind, block=block, colour=colour)
    y = t(torch.rand(2, 3, 32, 32))
    assert y.shape == (2, t.channels, 32, 32) and torch.isfinite(y).all()


def test_frequency_transform_sees_upsampling_peaks():
    """Nearest-neighbour upsampling leaves energy at the Nyquist/2 alias positions of the DCT."""
    low = torch.rand(1, 3, 16, 16)
    up = low.repeat_interleave(2, -1).repeat_interleave(2, -2)
    smooth = torch.nn.functional.interpolate(low, scale_factor=2, mode="bilinear", align_corners=False)
    t = FrequencyTransform(kind="dct", log=False)
    assert t(up)[..., 16:, :].mean() > 2 * t(smooth)[..., 16:, :].mean()


@pytest.mark.parametrize("streams", ["both", "spatial", "frequency"])
def test_dualstream_streams_and_gradients(streams):
    m = DualStreamDetector(spatial="small", streams=streams, spatial_width=12, frequency_width=8, hidden=16)
    out = m(torch.randn(3, 3, 32, 32))
    assert out.shape == (3,)
    out.sum().backward()
    if streams in ("both", "spatial"):
        assert m.spatial.net[0][0].weight.grad.abs().sum() > 0
    if streams in ("both", "frequency"):
        assert m.frequency.net[1][0].weight.grad.abs().sum() > 0


def test_dualstream_resnet_pyramid_and_cbam_shapes():
    from timm.layers.cbam import CbamModule

    m = DualStreamDetector(spatial="resnet18", frequency_width=8)
    z = m.fused_features(torch.randn(2, 3, 32, 32))
    assert z.shape == (2, 256 + 16, 8, 8)
    cbam = CbamModule(24)
    f = torch.randn(2, 24, 8, 8)
    assert cbam(f).shape == f.shape


@pytest.mark.parametrize(
    "name", ["dualstream_small", "attention_cnn", "lightweight_cnn_hoc", "conv32x2-dense64x1"]
)
def test_bf16_autocast_forward_on_cpu(name):
    m = ImageClassifier(create_model(name)).eval()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = m(torch.rand(2, 3, 32, 32))
    assert out.shape == (2,) and torch.isfinite(out.float()).all()


@pytest.mark.parametrize("name", ["vit_tiny", "attention_cnn", "dualstream_small"])
def test_attention_maps(name):
    m = ImageClassifier(create_model(name)).eval()
    a = attention_map(m, torch.rand(2, 3, 32, 32))
    assert a.shape == (2, 32, 32) and float(a.min()) >= 0 and float(a.max()) <= 1 + 1e-6


def test_pretrained_offline_fails_fast_with_advice(monkeypatch):
    import cifake_lightning.models.backbones as bb

    monkeypatch.setattr(bb, "_hub_reachable", lambda *a, **k: False)
    with pytest.raises(CifakeError, match="weights_path"):
        TimmBackbone("resnet18", pretrained=True)
    with pytest.raises(CifakeError, match="not found"):
        TimmBackbone("resnet18", pretrained=True, weights_path="/nope.safetensors")


def test_timm_weights_path_loads_local_file(tmp_path):
    import timm
    from safetensors.torch import save_file

    ref = timm.create_model("resnet18", num_classes=1)
    path = tmp_path / "r18.safetensors"
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(path))
    m = TimmBackbone("resnet18", pretrained=True, weights_path=str(path), stem="upsample", native_size=64)
    assert torch.equal(m.model.layer1[0].conv1.weight, ref.layer1[0].conv1.weight)


def test_autoencoder_filter_roundtrip(ae_ckpt):
    from cifake_lightning.models import AutoencoderFilter
    from cifake_lightning.models.autoencoder import load_autoencoder

    path = ae_ckpt
    f = AutoencoderFilter(str(path)).eval()
    x = torch.rand(2, 3, 32, 32)
    assert torch.allclose(f(x), load_autoencoder(path).eval()(x), atol=1e-6)
    assert not torch.allclose(f(x), x)
    assert not any(p.requires_grad for p in f.parameters())
    assert AutoencoderFilter(str(path), train_only=True).eval()(x) is x
