"""Generalisation options (issue 16) on tiny synthetic data: artefact-only inputs, aligned fakes,
extra fake sources, artefact-preserving augmentations."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cifake_lightning.data.aligned import (
    AlignedFakes,
    add_aligned_fakes,
    append_fakes,
    jpeg_roundtrip,
    make_fakes,
)
from cifake_lightning.data.augment import AugmentConfig, RandomPatchMask, RandomRot90, build_augmentation
from cifake_lightning.data.split import DecodedSplit
from cifake_lightning.errors import ConfigError
from cifake_lightning.models import ArtifactResidual


def _camera_like(n=4, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g)


def test_npr_is_zero_for_nearest_upsampled_images_and_not_for_camera_like_ones():
    npr = ArtifactResidual("npr", factor=2, scale=1.0)
    camera = _camera_like()
    upsampled = F.interpolate(_camera_like(size=16), scale_factor=2, mode="nearest")
    assert npr(upsampled).abs().max() == 0  # every pixel equals its block's top-left neighbour
    assert npr(camera).abs().mean() > 0.2
    # bilinear upsampling leaves a smaller, structured residual than independent pixels
    bilinear = F.interpolate(_camera_like(size=16), scale_factor=2, mode="bilinear", align_corners=False)
    assert npr(bilinear).abs().mean() < 0.5 * npr(camera).abs().mean()
    assert npr(camera).shape == camera.shape


def test_haar_residual_is_the_detail_bands_only():
    haar = ArtifactResidual("haar", factor=2, scale=1.0)
    x = _camera_like()
    r = haar(x)
    # no approximation band left: every 2x2 block of the residual averages to zero
    assert F.avg_pool2d(r, 2).abs().max() < 1e-6
    flat = F.interpolate(_camera_like(size=16), scale_factor=2, mode="nearest")
    assert haar(flat).abs().max() < 1e-6
    assert torch.allclose(ArtifactResidual("haar", scale=4.0)(x), 4 * r)


def test_artifact_residual_rejects_bad_options():
    with pytest.raises(ConfigError, match="preprocess.kind"):
        ArtifactResidual("wavelet")
    with pytest.raises(ConfigError, match="preprocess.factor"):
        ArtifactResidual("npr", factor=1)


def _split(n_real=24, n_fake=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    # smooth "photos" (an autoencoder can learn them in a few steps) with a content class each
    small = torch.rand(n_real + n_fake, 3, 8, 8, generator=g)
    images = (F.interpolate(small, size=32, mode="bilinear", align_corners=False) * 255).to(torch.uint8)
    labels = torch.tensor([0] * n_real + [1] * n_fake)
    return DecodedSplit(
        images,
        labels,
        labels.clone(),
        torch.arange(n_real + n_fake) % 10,
        [f"{'REAL' if y == 0 else 'FAKE'}/{i}.jpg" for i, y in enumerate(labels.tolist())],
        [f"h{i}" for i in range(n_real + n_fake)],
        ["REAL", "FAKE"],
    )


def test_aligned_ae_fakes_share_content_with_their_reals(tmp_path):
    train = _split()
    cfg = AlignedFakes(kind="ae", steps=150, batch_size=16, jpeg_quality=None, seed=0)
    out = add_aligned_fakes(train, cfg, tmp_path)
    n_real = int((train.labels == 0).sum())
    assert len(out) == len(train) + n_real
    new = slice(len(train), len(out))
    assert out.labels[new].eq(1).all() and out.source_names[-1] == "aligned/ae"
    assert out.source[new].eq(2).all()
    # content: each fake is close to ITS real (much closer than to another real)
    reals, fakes = train.images[:n_real].float(), out.images[new].float()
    own = (fakes - reals).abs().mean(dim=(1, 2, 3))
    other = (fakes - reals.roll(1, 0)).abs().mean(dim=(1, 2, 3))
    assert (own < other).float().mean() >= 0.9
    assert torch.equal(out.content_class[new], train.content_class[:n_real])
    assert out.files[len(train)] == "aligned/ae/0.jpg"
    # cached: the second call loads instead of training again
    (cache,) = tmp_path.glob("aligned-ae-*.pt")
    before = cache.stat().st_mtime_ns
    again = add_aligned_fakes(train, cfg, tmp_path)
    assert torch.equal(again.images, out.images) and cache.stat().st_mtime_ns == before


def test_resample_fakes_carry_upsampling_traces_and_the_data_sets_jpeg():
    reals = _split(n_real=12, n_fake=0).images
    cfg = AlignedFakes(kind="resample", jpeg_quality=None)
    fakes = make_fakes(reals, cfg)
    assert fakes.shape == reals.shape and fakes.dtype == torch.uint8
    npr = ArtifactResidual("haar", scale=1.0)
    # the block means are kept (content), the detail inside blocks changes
    assert (F.avg_pool2d(fakes.float(), 2) - F.avg_pool2d(reals.float(), 2)).abs().mean() < 6
    assert npr(fakes.float() / 255).abs().mean() != npr(reals.float() / 255).abs().mean()
    jpeg = make_fakes(reals, AlignedFakes(kind="resample", jpeg_quality=75))
    assert torch.equal(jpeg, jpeg_roundtrip(fakes, 75))


def test_denoised_fakes_share_content_with_their_reals_and_are_cached(tmp_path, monkeypatch):
    """kind denoise: each fake is its real noised and denoised by a denoiser trained on the reals: much
    closer to its own real than to another, closer to it than the noisy input was (the denoiser learned
    something), and a second call loads the cache instead of training again."""
    from cifake_lightning.data import aligned

    train = _split(n_real=32, n_fake=4)
    cfg = AlignedFakes(kind="denoise", steps=120, batch_size=16, sigmas=(0.1,), jpeg_quality=None, seed=0)
    out = add_aligned_fakes(train, cfg, tmp_path)
    n_real = 32
    reals, fakes = train.images[:n_real].float(), out.images[len(train) :].float()
    own = (fakes - reals).abs().mean(dim=(1, 2, 3))
    assert out.source_names[-1] == "aligned/denoise" and out.labels[len(train) :].eq(1).all()
    assert (own < (fakes - reals.roll(1, 0)).abs().mean(dim=(1, 2, 3))).all()
    assert float(own.mean()) < 0.1 * 255 * 0.8  # the noisy input is ~0.08 * 255 away on average
    assert torch.equal(out.content_class[len(train) :], train.content_class[:n_real])
    monkeypatch.setattr(aligned, "train_denoiser", lambda *a: pytest.fail("retrained instead of cached"))
    assert torch.equal(add_aligned_fakes(train, cfg, tmp_path).images, out.images)


def test_two_kinds_of_aligned_fakes_are_two_sources(cifake_root, tmp_path):
    from cifake_lightning.data import CIFAKEDataModule

    dm = CIFAKEDataModule(root=str(cifake_root), cache_dir=str(tmp_path), val_size=0, progress=False,
                          aligned_fakes=[AlignedFakes(kind="resample", share=0.1),
                                         AlignedFakes(kind="denoise", share=0.1, steps=5)])  # fmt: skip
    dm.setup("fit")
    names = dm.manifest("train").source_names
    assert {"aligned/resample", "aligned/denoise"} <= set(names)
    with pytest.raises(ConfigError, match="each kind at most once"):
        CIFAKEDataModule(root=str(cifake_root), aligned_fakes=[AlignedFakes(kind="ae")] * 2)


def test_aligned_fake_options_are_checked():
    with pytest.raises(ConfigError, match="aligned_fakes.kind"):
        AlignedFakes(kind="gan")
    with pytest.raises(ConfigError, match="aligned_fakes.share"):
        AlignedFakes(share=0)
    with pytest.raises(ConfigError, match="aligned_fakes.sigmas"):
        AlignedFakes(kind="denoise", sigmas=(0.0,))
    with pytest.raises(ConfigError, match="jpeg_quality"):
        AlignedFakes(jpeg_quality=101)
    train = _split()
    with pytest.raises(ConfigError, match="already"):
        append_fakes(train, train.images[:2], "FAKE")


def test_extra_fakes_and_aligned_fakes_join_the_training_split_only(cifake_root, tmp_path):
    from cifake_lightning.data import CIFAKEDataModule
    from cifake_lightning.errors import DataError

    extra = cifake_root / "test" / "FAKE"  # any folder of fakes
    dm = CIFAKEDataModule(
        root=str(cifake_root), val_size=40, progress=False, cache_dir=str(tmp_path),
        extra_fakes=[str(extra)], aligned_fakes=[AlignedFakes(kind="resample", share=0.5)],
    )  # fmt: skip
    dm.setup("fit")
    plain = CIFAKEDataModule(root=str(cifake_root), val_size=40, progress=False, cache_dir=str(tmp_path))
    plain.setup("fit")
    train, base = dm.decoded("train"), plain.decoded("train")
    n_extra = len(list(extra.iterdir()))
    n_aligned = round(0.5 * int((base.labels == 0).sum()))
    assert len(train) == len(base) + n_extra + n_aligned
    assert train.source_names == ["REAL", "FAKE", str(extra), "aligned/resample"]
    assert dm.manifest("val").content_hash == plain.manifest("val").content_hash
    assert dm.manifest("test").content_hash == plain.manifest("test").content_hash
    test_only = CIFAKEDataModule(
        root=str(cifake_root), val_size=40, progress=False, cache_dir=str(tmp_path),
        aligned_fakes=[AlignedFakes(kind="ae", steps=5)],
    )  # fmt: skip
    test_only.setup("test")  # scoring never makes training fakes
    assert not list(tmp_path.glob("aligned-ae-*.pt"))
    bad = CIFAKEDataModule(root=str(cifake_root), val_size=40, progress=False, extra_fakes=["nope"])
    with pytest.raises(DataError, match="nope"):
        bad.setup("fit")


def test_rot90_moves_pixels_only_and_patch_mask_zeroes_cells():
    x = _camera_like(n=64)
    torch.manual_seed(0)
    r = RandomRot90(1.0)(x)
    assert not torch.equal(r, x)
    assert torch.equal(r.flatten(1).sort(1).values, x.flatten(1).sort(1).values)  # same pixels per image
    m = RandomPatchMask(1.0, ratio=0.25, patch=4)(x + 0.01)
    zero = (m == 0).all(1).float()  # (B, H, W) masked pixels
    cells = F.avg_pool2d(zero[:, None], 4)
    assert set(cells.unique().tolist()) <= {0.0, 1.0}  # whole cells
    assert 0.15 < float(cells.mean()) < 0.35
    assert torch.equal(RandomPatchMask(0.0)(x), x)
    aug = build_augmentation(AugmentConfig(hflip=0.0, rot90=0.5, patch_mask=0.5))
    assert aug is not None and aug(x).shape == x.shape
    with pytest.raises(ConfigError, match="mask_ratio"):
        AugmentConfig(patch_mask=0.5, mask_ratio=1.5)


@pytest.mark.slow
def test_leave_one_source_out_is_a_sweep_whose_tests_count_the_training_sources_as_seen(
    cifake_root, tmp_path, monkeypatch
):
    """LOSO (configs/experiments/loso.yaml's form) on a synthetic tree with two extra generators: one
    run per left-out source, whose test reports that source as the only unseen one, because the test
    report counts the folders the run trained on (its config.yaml's extra_fakes) as seen."""
    import json
    import shutil

    import yaml
    from helpers.run import QUIET, REPO

    from cifake_lightning.cli import main

    root = tmp_path / "data"
    shutil.copytree(cifake_root, root)
    for name, files in (("gen_a", 0), ("gen_b", 1)):
        (root / "ood" / name).mkdir(parents=True)
        for i, src in enumerate(sorted((cifake_root / "test" / "FAKE").iterdir())[files::2][:12]):
            shutil.copy(src, root / "ood" / name / f"{i}.jpg")
    sources = {"test/REAL": "real", "test/FAKE": "fake", "ood/gen_a": "fake", "ood/gen_b": "fake"}
    test_cfg = tmp_path / "test.yaml"
    test_cfg.write_text(yaml.safe_dump({
        "data": {"class_path": "cifake_lightning.data.ImageFolderOOD", "init_args": {"root": str(root), "sources": sources}},
        "report": {"reference_real": "test/REAL", "reference_fake": "test/FAKE"},
    }))  # fmt: skip
    sweep = tmp_path / "loso.yaml"
    spec = yaml.safe_load((REPO / "configs/experiments/loso.yaml").read_text())
    spec["command"] = ["cifake", "fit", "--config", str(REPO / "configs/demo.yaml"), "${args}"]
    spec["parameters"] = {"data.init_args.extra_fakes": {"values": ['["ood/gen_b"]', '["ood/gen_a"]']}}
    sweep.write_text(yaml.safe_dump(spec))
    monkeypatch.chdir(tmp_path)
    main(["sweep", "local", str(sweep), "--test", str(test_cfg), "--", f"--data.init_args.root={root}",
          "--trainer.max_epochs=1", "--trainer.limit_train_batches=2", "--data.init_args.val_size=40",
          f"--data.init_args.cache_dir={tmp_path / 'cache'}", "--trainer.callbacks=[]", *QUIET])  # fmt: skip
    reports = [json.loads(p.read_text()) for p in (tmp_path / "results").rglob("report.json")]
    assert sorted(r["unseen"]["unseen"][0] for r in reports) == ["ood/gen_a", "ood/gen_b"]
    assert all(len(r["unseen"]["unseen"]) == 1 for r in reports)
    seen = sorted(tuple(sorted(r["unseen"]["seen"])) for r in reports)
    assert seen == [("ood/gen_a", "test/FAKE"), ("ood/gen_b", "test/FAKE")]


def test_real_mosaics_are_real_downsampled_training_content():
    from cifake_lightning.data.aligned import add_real_mosaics

    train = _split(n_real=10, n_fake=4)
    out = add_real_mosaics(train, share=0.5, jpeg_quality=None)
    new = slice(len(train), len(out))
    assert len(out) == len(train) + 5 and out.labels[new].eq(0).all()
    assert out.source_names[-1] == "aligned/real_mosaic"
    reals = train.images[train.labels == 0].float()
    m = out.images[new][0].float()
    # each quarter of a mosaic is a training real reduced by 2 (block mean)
    quarter = m[:, :16, :16]
    halves = F.avg_pool2d(reals, 2)
    assert min(float((quarter - h).abs().max()) for h in halves) <= 1.0
    with pytest.raises(ConfigError, match="real_mosaics"):
        add_real_mosaics(train, share=0)


def test_real_blur_touches_real_images_only():
    from cifake_lightning.data.augment import blur_reals

    x = _camera_like(n=32)
    label = torch.arange(32) % 2
    out = blur_reals(x, label, p=1.0, sigma=(1.0, 1.0))
    assert torch.equal(out[label == 1], x[label == 1])  # fakes keep their traces
    assert (out[label == 0] - x[label == 0]).abs().mean() > 0.05  # every real blurred
    # blur smooths: neighbouring-pixel differences shrink
    diff = lambda t: (t[..., 1:] - t[..., :-1]).abs().mean()  # noqa: E731
    assert diff(out[label == 0]) < 0.6 * diff(x[label == 0])
    assert torch.equal(blur_reals(x, label, p=0.0, sigma=(1.0, 1.0)), x)


@pytest.mark.slow
def test_generalist_config_is_what_the_benchmark_measured_and_trains(cifake_root, tmp_path, capsys):
    """configs/generalist.yaml resolves to the experiment's best variant (baseline_fast + the variant
    config aligned_resample_aug, with the sweep's fixed values), and `cifake fit` trains it."""
    import yaml
    from helpers.run import QUIET, REPO, cifake

    from cifake_lightning.cli import main

    def resolved(*args):
        with pytest.raises(SystemExit):
            main(["fit", *args, "--print_config"])
        cfg = yaml.safe_load(capsys.readouterr().out)
        for k in ("config", "name"):
            cfg.pop(k, None)
        return cfg

    variant = REPO / "configs/experiments/generalisation/aligned_resample_aug.yaml"
    bench = resolved("--config", str(REPO / "configs/baseline_fast.yaml"), "--config", str(variant),
                     "--trainer.max_epochs", "3", "--data.init_args.root", "data/genset-v2",
                     "--data.init_args.val_size", "10000")  # fmt: skip
    mine = resolved("--config", str(REPO / "configs/generalist.yaml"))
    assert mine == bench
    r = cifake(
        "fit", "--config", str(REPO / "configs/generalist.yaml"), "--data.root", str(cifake_root),
        "--data.val_size", "40", "--data.cache_dir", str(tmp_path / "c"), "--trainer.max_epochs", "1",
        "--trainer.limit_train_batches", "2", *QUIET, cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert list((tmp_path / "c").glob("aligned-resample-*.pt"))


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


def test_every_experiment_variant_is_in_a_sweep_and_exists():
    """Research experiments are sweep files over partial variant configs (issue 25: one runner)."""
    import yaml
    from helpers.run import REPO

    experiments = REPO / "configs" / "experiments"
    for sweeps, folder in (
        (("generalisation.yaml", "generalisation_ae.yaml"), "generalisation"),
        (("framework_differences.yaml",), "framework_differences"),
    ):
        named = []
        for sweep in sweeps:
            named += yaml.safe_load((experiments / sweep).read_text())["parameters"]["config"]["values"]
        assert all((REPO / v).is_file() for v in named)
        files = sorted(p.relative_to(REPO).as_posix() for p in (experiments / folder).glob("*.yaml"))
        assert sorted(named) == files


@pytest.mark.slow
def test_every_experiment_variant_resolves_over_its_base_config(capsys):
    """Each partial config merges over its experiment's base config into a valid fit config."""
    from helpers.run import REPO

    from cifake_lightning.cli import main

    experiments = REPO / "configs" / "experiments"
    variants = [("baseline_fast.yaml", v) for v in sorted((experiments / "generalisation").glob("*.yaml"))]
    variants += [("baseline.yaml", v) for v in sorted((experiments / "framework_differences").glob("*.yaml"))]
    for base, variant in variants:
        with pytest.raises(SystemExit) as e:
            main(
                ["fit", "--config", str(REPO / "configs" / base), "--config", str(variant), "--print_config"]
            )
        assert e.value.code in (0, None), f"{variant.name}: {capsys.readouterr().err[-500:]}"
        capsys.readouterr()


def test_sources_a_run_trained_on_are_seen_by_default(tmp_path):
    """evaluate.test_report.trained_sources: test folders that are the run's extra training fakes."""
    from types import SimpleNamespace

    import yaml

    from cifake_lightning.evaluate.test_report import trained_sources

    run = tmp_path / "runs" / "r" / "version_0"
    (run / "checkpoints").mkdir(parents=True)
    config = {"data": {"init_args": {"root": str(tmp_path / "d"), "extra_fakes": ["ood/a"]}}}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    ckpt = run / "checkpoints" / "best.ckpt"
    manifest = SimpleNamespace(
        root=str(tmp_path / "d"), source_names=["test/REAL", "test/FAKE", "ood/a", "ood/b"]
    )
    assert trained_sources(ckpt, manifest, "test/FAKE") == ["test/FAKE", "ood/a"]
    other = SimpleNamespace(root=str(tmp_path / "elsewhere"), source_names=["ood/a"])
    assert trained_sources(ckpt, other, "test/FAKE") is None  # same name, other folder: not trained on
    (run / "config.yaml").write_text(yaml.safe_dump({"data": {"init_args": {"root": "x"}}}))
    assert trained_sources(ckpt, manifest, "test/FAKE") is None
