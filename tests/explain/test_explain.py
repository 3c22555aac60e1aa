"""Explainability: each method finds what a hand-built model looks at; callbacks and CLI behave."""

import math
import shutil
from pathlib import Path

import lightning as L
import pytest
import torch
from torch import nn

from cifake_lightning.explain.attributions import explain_batch, integrated_gradients
from cifake_lightning.explain.bands import BandAblation
from cifake_lightning.explain.metrics import centre_fraction, entropy, gini, spearman, topk_iou
from cifake_lightning.models.frequency import dct2, radial_frequency


class Linear(nn.Module):
    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w = nn.Parameter(torch.randn(3, 32, 32, generator=g) * 0.1)

    def forward(self, x):
        return (x * self.w).sum((1, 2, 3)) + 0.3


class PatchOnly(nn.Module):
    """Looks only at rows 8:16, cols 16:24."""

    def forward(self, x):
        return 10 * x[:, :, 8:16, 16:24].mean((1, 2, 3)) - 5


class HighFrequencyOnly(nn.Module):
    """Logit = energy of the image's DCT above radius 0.6 (per channel), minus a constant."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mask", (radial_frequency(32, 32) > 0.6).float())

    def forward(self, x):
        return 50 * ((dct2(x) * self.mask) ** 2).mean((1, 2, 3)) - 1


def test_ig_completeness_on_a_linear_model():
    m = Linear()
    x = torch.rand(4, 3, 32, 32)
    attr, delta = integrated_gradients(m, x, baseline="black", steps=8)
    assert torch.allclose(attr.sum((1, 2, 3)), m(x) - m(torch.zeros_like(x)), atol=1e-4)
    assert delta.abs().max() < 1e-4


def test_occlusion_finds_the_planted_patch():
    maps = explain_batch(
        PatchOnly(),
        torch.rand(2, 3, 32, 32),
        ["occlusion"],
        target="fake",
        occlusion_window=4,
        occlusion_stride=4,
    )
    occ = maps["occlusion"]
    for i in range(2):
        r, c = divmod(int(occ[i].abs().argmax()), 32)
        assert 8 <= r < 16 and 16 <= c < 24
    inside = occ[:, 8:16, 16:24].abs().sum() / occ.abs().sum()
    assert inside > 0.99


def test_band_ablation_on_high_frequency_model_finds_high_bands():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(4, 3, 32, 32, generator=g)
    res = BandAblation(mode="rings", n_bands=8)(HighFrequencyOnly(), x)
    drop = res.drop.mean(0)
    assert drop[:4].abs().max() < 1e-6  # removing low bands changes nothing
    assert drop[5:].min() > 0 and int(drop.argmax()) >= 5
    blocks = BandAblation(mode="blocks", grid=4)(HighFrequencyOnly(), x)
    assert (
        blocks.drop.shape == (4, 16)
        and blocks.drop[:, 0].abs().max() < 1e-6
        and blocks.drop[:, 15].mean() > 0
    )


def test_predicted_target_flips_sign_for_real_images():
    m = Linear()
    x = torch.rand(2, 3, 32, 32)
    fake = explain_batch(m, x, ["integrated_gradients"], target="fake")["integrated_gradients"]
    real = explain_batch(m, x, ["integrated_gradients"], target="real")["integrated_gradients"]
    assert torch.allclose(fake, -real, atol=1e-5)


def test_map_statistics():
    uniform = torch.ones(1, 32, 32)
    spike = torch.zeros(1, 32, 32)
    spike[0, 3, 4] = 1
    assert math.isclose(float(entropy(uniform)), 1.0, abs_tol=1e-9) and float(entropy(spike)) < 1e-9
    assert float(gini(uniform)) < 1e-9 and float(gini(spike)) > 0.99
    assert (
        math.isclose(float(centre_fraction(uniform)), 0.25, abs_tol=1e-9)
        and float(centre_fraction(spike)) == 0
    )
    r = torch.rand(3, 32, 32)
    assert torch.allclose(topk_iou(r, r), torch.ones(3, dtype=torch.double))
    assert torch.allclose(spearman(r, 2 * r + 1), torch.ones(3, dtype=torch.double))
    assert torch.allclose(
        spearman(r, -r.abs().sqrt() * 0 + (1 / (r.abs() + 1))), -torch.ones(3, dtype=torch.double)
    )


def test_explain_batch_runs_every_method_on_real_models():
    from cifake_lightning.models import create_model
    from cifake_lightning.training import ImageClassifier

    for name, expect in (
        ("dualstream_small", {"grad_cam", "attention"}),
        ("conv32x2-dense64x1", {"grad_cam"}),
    ):
        m = ImageClassifier(create_model(name))
        m.train()
        out = explain_batch(
            m,
            torch.rand(2, 3, 32, 32),
            ["integrated_gradients", "occlusion", "grad_cam", "attention", "band_ablation"],
        )
        assert expect <= set(out) and out["integrated_gradients"].shape == (2, 32, 32)
        assert out["integrated_gradients"].dtype == torch.float32 and m.training  # mode restored


# ----------------------------------------------------------------------------------- callbacks
def _fit(root, tmp_path, callbacks, logger=False, precision="32-true", epochs=2):
    from cifake_lightning.data import AugmentConfig, CIFAKEDataModule
    from cifake_lightning.models import LightweightCNN
    from cifake_lightning.training import ImageClassifier

    L.seed_everything(7)
    dm = CIFAKEDataModule(
        root=str(root),
        val_size=40,
        batch_size=32,
        progress=False,
        decode_workers=1,
        augment=AugmentConfig(hflip=0.5, color_jitter=0.5),
    )
    model = ImageClassifier(LightweightCNN())  # has dropout: an RNG leak would change its masks
    trainer = L.Trainer(
        max_epochs=epochs,
        logger=logger,
        callbacks=callbacks,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        precision=precision,
        limit_train_batches=6,
        deterministic=True,
    )
    trainer.fit(model, dm)
    return model, trainer


def test_callback_does_not_change_training(cifake_root, tmp_path):
    from cifake_lightning.explain.callbacks import ExplainCallback
    from cifake_lightning.explain.report import ExplainSettings

    plain, _ = _fit(cifake_root, tmp_path / "a", [])
    # SmoothGrad-IG draws from the global RNG: without fork_rng this would shift dropout/augmentation draws
    cb = ExplainCallback(n_images=4, save_png=False, settings=ExplainSettings(ig_steps=4, ig_noise_samples=2))
    explained, _ = _fit(cifake_root, tmp_path / "b", [cb])
    assert len(cb.seconds) == 2
    for (k, a), (_, b) in zip(plain.state_dict().items(), explained.state_dict().items()):
        assert torch.equal(a, b), k


def test_callback_with_bf16_mixed_computes_float32_maps(cifake_root, tmp_path):
    from cifake_lightning.explain.callbacks import ExplainCallback

    cb = ExplainCallback(n_images=4, save_png=True)
    _, trainer = _fit(
        cifake_root,
        tmp_path,
        [cb],
        logger=L.pytorch.loggers.CSVLogger(tmp_path),
        precision="bf16-mixed",
        epochs=1,
    )
    out = Path(trainer.log_dir) / "explain" / "epoch_000"
    assert (out / "grid.png").is_file() and (out / "bands.png").is_file() and (out / "scores.json").is_file()
    import json

    scores = json.loads((out / "scores.json").read_text())
    assert len(scores) == 4 and all(math.isfinite(s["p_fake"]) for s in scores)


def test_callback_logs_to_offline_wandb(cifake_root, tmp_path, monkeypatch):
    from lightning.pytorch.loggers import WandbLogger

    from cifake_lightning.explain.callbacks import ExplainCallback

    monkeypatch.setenv("WANDB_MODE", "offline")
    logger = WandbLogger(save_dir=str(tmp_path), offline=True, project="test")
    cb = ExplainCallback(n_images=4, save_png=False)
    _fit(cifake_root, tmp_path, [cb], logger=logger, epochs=1)
    logger.experiment.finish()
    run_dirs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(run_dirs) == 1
    images = list((run_dirs[0] / "files" / "media" / "images" / "explain").glob("maps_*.png"))
    tables = list((run_dirs[0] / "files" / "media" / "table" / "explain").glob("band_ablation*.table.json"))
    assert len(images) == 4 and len(tables) == 1


# -------------------------------------------------------------------------------------- command
def test_explain_command_writes_grid_and_scores(cifake_root, demo_ckpt, tmp_path, monkeypatch):
    import json

    from cifake_lightning.console import main

    monkeypatch.chdir(tmp_path)
    ckpt = demo_ckpt
    main(
        ["explain", "--ckpt", str(ckpt), "--n", "6", "--explain.ig_steps", "4", "--out", str(tmp_path / "ex")]
    )
    for f in ("grid.png", "bands.png", "scores.json", "summary.json", "summary.md"):
        assert (tmp_path / "ex" / f).is_file(), f
    scores = json.loads((tmp_path / "ex" / "scores.json").read_text())
    assert len(scores) == 6 and {"real", "fake"} == {s["label"] for s in scores}
    assert "integrated_gradients~grad_cam/spearman" in scores[0]
    head = (tmp_path / "ex" / "summary.md").read_text().splitlines()[2]  # what ran, and what could not
    assert head.startswith("6 images; methods: integrated_gradients, occlusion, grad_cam, band_ablation")
    assert "(attention: not supported by this model, skipped)" in head
    # a plain folder of images, any size, labelled by REAL/FAKE subfolders
    main(
        [
            "explain",
            "--ckpt",
            str(ckpt),
            "--images",
            str(cifake_root / "test"),
            "--n",
            "4",
            "--explain.methods",
            "[occlusion]",
            "--out",
            str(tmp_path / "ex2"),
        ]
    )
    assert len(json.loads((tmp_path / "ex2" / "scores.json").read_text())) == 4
    md = (tmp_path / "ex" / "summary.md").read_text()
    assert "| statistic | real | fake | fake - real | all |" in md
    # unlabelled images (a flat folder): the summary still has a column, that of all images
    flat = tmp_path / "flat"
    flat.mkdir()
    for f in sorted((cifake_root / "test" / "REAL").iterdir())[:2]:
        shutil.copy(f, flat / f.name)
    main(["explain", "--ckpt", str(ckpt), "--images", str(flat), "--explain.methods", "[occlusion]",
          "--out", str(tmp_path / "ex3")])  # fmt: skip
    md = (tmp_path / "ex3" / "summary.md").read_text().splitlines()
    assert "| statistic | all |" in md
    row = next(line for line in md if line.startswith("| occlusion/entropy |"))
    assert float(row.split("|")[2]) > 0


def test_grid_shows_at_most_64_images_balanced_and_in_order():
    from cifake_lightning.explain.report import GRID_MAX, grid_selection

    assert grid_selection(torch.tensor([0, 1, 1])).tolist() == [0, 1, 2]
    lab = torch.tensor([0] * 100 + [1] * 100)
    sel = grid_selection(lab)
    assert len(sel) == GRID_MAX == 64 and int(lab[sel].sum()) == 32 and sel.tolist() == sorted(sel.tolist())
    few_fakes = torch.tensor([1] * 10 + [0] * 100)
    sel = grid_selection(few_fakes)
    assert len(sel) == 64 and int(few_fakes[sel].sum()) == 10  # every fake, the rest real
    assert len(grid_selection(torch.full((500,), -1))) == 64  # unlabelled images


def test_explain_results_are_keyed_by_checkpoint_and_skip_unreadable_images(
    cifake_root, demo_ckpt, tmp_path, monkeypatch, capsys
):
    """Explaining last.ckpt and then another checkpoint of the same run keeps both folders; an
    unreadable file in --images is skipped and named, not fatal."""
    import shutil

    from cifake_lightning.console import main

    monkeypatch.chdir(tmp_path)
    other = demo_ckpt.parent / "copy-for-explain.ckpt"
    shutil.copy(demo_ckpt, other)
    images = tmp_path / "imgs"
    shutil.copytree(cifake_root / "test", images)
    (images / "FAKE" / "000.jpg").write_bytes(b"not an image")  # sorted first
    try:
        for ckpt in (demo_ckpt, other):
            main(["explain", "--ckpt", str(ckpt), "--images", str(images), "--n", "3",
                  "--explain.methods", "[occlusion]"])  # fmt: skip
    finally:
        other.unlink()
    folders = sorted(p.parent.name for p in (tmp_path / "results" / "explain").rglob("scores.json"))
    assert len(folders) == 2 and folders[0].startswith("copy-for-explain-") and folders[1].startswith("last-")
    assert "skipped 1 unreadable file(s)" in capsys.readouterr().err


def test_summary_groups_by_label_by_real_class_and_gives_the_fake_minus_real_difference():
    """The centre-vs-border question (seed 004) from summary.json alone: per-label means, their
    difference, and the reals of each CIFAR-10 class their CIFAKE name carries (fakes carry none)."""
    from cifake_lightning.explain.report import Explanation

    files = ["1.jpg", "2 (2).jpg", "3 (2).jpg", "gan_00001.jpg", "gan_00002.jpg"]
    labels = torch.tensor([0, 0, 0, 1, 1])
    centre = torch.tensor([0.4, 0.2, 0.3, 0.1, 0.2])
    ex = Explanation(torch.zeros(5, 3, 32, 32), labels, files, {"prob": torch.full((5,), 0.5)},
                     {"grad_cam/centre_fraction": centre})  # fmt: skip
    s = ex.summary()
    assert s["real"]["grad_cam/centre_fraction"] == pytest.approx(0.3)
    assert s["fake"]["grad_cam/centre_fraction"] == pytest.approx(0.15)
    assert s["fake - real"]["grad_cam/centre_fraction"] == pytest.approx(-0.15)
    assert s["real/airplane"] == {"grad_cam/centre_fraction": pytest.approx(0.4), "n": 1}
    assert s["real/automobile"]["grad_cam/centre_fraction"] == pytest.approx(0.25)
    assert "real/truck" not in s and s["real/automobile"]["n"] == 2


def test_an_empty_map_has_no_statistics_and_is_counted_not_scored_as_border_heavy():
    """Grad-CAM's ReLU can leave a map with no attribution at all; it has no location, so it must not
    enter the centre-fraction mean as 0 (it once made fakes look border-heavy)."""
    from cifake_lightning.explain.metrics import map_statistics
    from cifake_lightning.explain.report import Explanation

    maps = {"grad_cam": torch.zeros(3, 8, 8), "integrated_gradients": torch.rand(3, 8, 8) + 0.1}
    maps["grad_cam"][0, 3:5, 3:5] = 1.0  # image 0: all in the centre; images 1, 2: empty
    stats = map_statistics(maps)
    assert stats["grad_cam/centre_fraction"][0] == 1.0
    for k in ("centre_fraction", "entropy", "gini"):
        assert stats[f"grad_cam/{k}"][1:].isnan().all()
    assert stats["grad_cam/empty"].tolist() == [0.0, 1.0, 1.0]
    assert stats["grad_cam~integrated_gradients/spearman"][1:].isnan().all()
    ex = Explanation(torch.zeros(3, 3, 8, 8), torch.tensor([1, 1, 0]), ["a.png", "b.png", "c.png"],
                     {"prob": torch.full((3,), 0.5)}, stats)  # fmt: skip
    s = ex.summary()
    assert s["fake"]["grad_cam/centre_fraction"] == 1.0  # the one fake map that has attribution
    assert s["fake"]["grad_cam/empty"] == 0.5 and s["real"]["grad_cam/centre_fraction"] is None
    assert "grad_cam/centre_fraction" not in s["fake - real"]
    assert ex.records()[1]["grad_cam/centre_fraction"] is None  # JSON null, not NaN
