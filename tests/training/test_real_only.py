"""Real-only (one-class) detectors: models/coding.py (ZED-style coding cost) trained by
models/real_only.RealOnlyDetector through `cifake fit` (issue 29)."""

from __future__ import annotations

import csv
import math

import pytest
import torch
import torch.nn.functional as F
from helpers.run import QUIET, REPO
from torchmetrics.functional.classification import binary_auroc

from cifake_lightning.console import main
from cifake_lightning.errors import ConfigError
from cifake_lightning.models import (
    BirdLotfiCNN,
    CodingCostDetector,
    ContentEnergyDetector,
    SelfDescriptionDetector,
)
from cifake_lightning.models.coding import discretized_logistic_logp, expected_logp
from cifake_lightning.models.content import synthetic_outliers
from cifake_lightning.models.detector import Detector
from cifake_lightning.training import RealOnlyDetector


def _smooth_images(n: int, seed: int) -> torch.Tensor:
    """Smooth colour fields with a little grain: a stand-in for 'real' photos, in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 4, 4, generator=g)
    x = F.interpolate(low, size=32, mode="bicubic", align_corners=False)
    return (x + 0.02 * torch.randn(n, 3, 32, 32, generator=g)).clamp(0, 1)


def _train_content_model(backbone: ContentEnergyDetector, images, steps: int = 60) -> RealOnlyDetector:
    """Train a RealOnlyDetector around `backbone` on `images(64)` -> (reals, content classes) batches."""
    model = RealOnlyDetector(backbone, normalize="none")
    model.log = lambda *a, **k: None
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    for _ in range(steps):
        x, c = images(64)
        loss = model.training_step(
            {"image": x, "label": torch.zeros(64, dtype=torch.long), "content_class": c}, 0
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def test_mixture_probabilities_sum_to_one_and_the_entropy_matches_its_definition():
    params = torch.randn(5, 9)  # 5 mixtures of 3 components
    grid = (torch.arange(256).float() / 127.5 - 1).expand(5, 256)
    logp = discretized_logistic_logp(grid, params, 3)
    assert torch.allclose(logp.exp().sum(-1), torch.ones(5), atol=1e-4)
    exact = (logp.exp() * logp).sum(-1)  # E[log p] over all 256 levels
    assert torch.allclose(expected_logp(params, 3, quadrature=64), exact, atol=0.15)


@pytest.mark.slow  # ~20 s: the default suite stays under 5 minutes on 2 cores
def test_a_coder_of_reals_scores_its_own_distribution_lower_than_noised_or_smoothed_images():
    torch.manual_seed(0)
    model = CodingCostDetector(width=16, depth=1)
    train = _smooth_images(512, seed=1)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    first = None
    for _ in range(120):
        loss = model.loss(train[torch.randint(0, 512, (64,))])
        first = first if first is not None else float(loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < first - 1.0  # it learned to code the reals (bits per sub-pixel)
    model.eval()
    with torch.no_grad():
        model.fit_reference(model.selected_features(_smooth_images(256, seed=2)))
        held_out = _smooth_images(128, seed=3)
        noised = (held_out + 0.08 * torch.randn_like(held_out)).clamp(0, 1)
        smoothed = F.avg_pool2d(F.pad(held_out, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
        real_score = model(held_out)
        for other in (noised, smoothed):
            y = torch.cat([torch.zeros(128), torch.ones(128)]).long()
            assert binary_auroc(torch.cat([real_score, model(other)]), y) > 0.9
    # the offset puts ~5% of the reference reals above 0
    assert 0.0 < float((real_score > 0).float().mean()) < 0.25


def test_training_never_sees_a_fake():
    m = RealOnlyDetector(CodingCostDetector(width=8, depth=0))
    fakes = {"image": torch.rand(8, 3, 32, 32), "label": torch.ones(8, dtype=torch.long)}
    m.log = lambda *a, **k: None
    loss = m.training_step(fakes, 0)
    loss.backward()
    assert loss.item() == 0.0
    assert all(p.grad is None or not p.grad.any() for p in m.parameters())


def test_a_supervised_backbone_is_refused_with_the_option_named():
    with pytest.raises(ConfigError, match="model.backbone.*not a real-only model"):
        RealOnlyDetector(BirdLotfiCNN(topology="conv16x1"))


@pytest.mark.slow
def test_real_only_detector_trains_and_tests_through_the_cli(cifake_root, tmp_path, monkeypatch):
    """`cifake fit --config configs/real_only_zed.yaml` then `cifake test`: a predictions table whose
    logits are the Detector's, and a threshold chosen on validation reals (fpr:0.05)."""
    monkeypatch.chdir(tmp_path)
    small = [
        "--model.init_args.backbone.init_args.width",
        "8",
        "--model.init_args.backbone.init_args.depth",
        "0",
    ]
    main(
        [
            "fit",
            "--config",
            str(REPO / "configs" / "real_only_zed.yaml"),
            "--data.root",
            str(cifake_root),
            "--data.val_size",
            "100",
            "--model.init_args.reference_size",
            "64",
            "--trainer.max_epochs",
            "1",
            "--trainer.limit_train_batches",
            "3",
            *small,
            *QUIET,
        ]
    )
    (ckpt,) = (tmp_path / "runs" / "real_only_zed" / "version_0" / "checkpoints").glob("best-*.ckpt")
    saved = torch.load(ckpt, map_location="cpu", weights_only=False)
    assert bool(saved["state_dict"]["detector.backbone.ref_fitted"])
    main(["test", "--ckpt", str(ckpt), "--data.root", str(cifake_root), *QUIET])
    (preds,) = (tmp_path / "results").rglob("predictions.csv")
    rows = list(csv.DictReader(open(preds)))
    assert rows and all(math.isfinite(float(r["logit"])) for r in rows)
    det = Detector.from_checkpoint(ckpt)
    assert det.calibration.method == "none"
    reals = saved["cifake_val_scores"]["logit"][saved["cifake_val_scores"]["label"] == 0]
    assert float((reals >= det.calibration.threshold_logit).float().mean()) <= 0.05 + 1e-9
    from cifake_lightning.data.image_io import load_image_tensor

    files = [r["file"] for r in rows[:6]]
    x = torch.stack([load_image_tensor(cifake_root / f) for f in files]).float().div(255)
    with torch.no_grad():
        direct = det(x).tolist()
    assert [float(r["logit"]) for r in rows[:6]] == pytest.approx(direct, abs=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("score", ["energy", "knn"])
def test_a_content_model_of_reals_scores_scrambled_content_higher(score):
    """models.content: a classifier of the reals' content classes is less sure of images whose content
    no class explains (here: a square in both places), so its energy, and the distance of its features
    to the train reals' (knn), rank them higher."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)

    # two 'classes': a bright square top-left or bottom-right on a dark smooth background
    def images(n):
        x = 0.1 * _smooth_images(n, seed=int(torch.randint(0, 10**6, (1,), generator=g)))
        cls = torch.randint(0, 2, (n,), generator=g)
        for i, c in enumerate(cls.tolist()):
            x[i, :, 4:14, 4:14] += 0.8 if c == 0 else 0.0
            x[i, :, 18:28, 18:28] += 0.8 if c == 1 else 0.0
        return x.clamp(0, 1), cls

    model = _train_content_model(
        ContentEnergyDetector(width=8, classes=2, score=score, k=5, bank=200), images
    )
    x, _ = images(128)
    both = x.clone()
    both[:, :, 4:14, 4:14] = 0.9  # a square in both places: no class fits
    both[:, :, 18:28, 18:28] = 0.9
    with torch.no_grad():
        model.backbone.fit_reference(model.backbone.selected_features(images(256)[0]))
        y = torch.cat([torch.zeros(128), torch.ones(128)]).long()
        assert binary_auroc(torch.cat([model(x), model(both)]), y) > 0.8
    with pytest.raises(ConfigError, match="content classes"):
        model.backbone.loss(x[:4], torch.full((4,), -1))


def test_outlier_exposure_trains_on_the_batchs_fakes_only_when_asked():
    """ContentEnergyDetector(outlier_exposure=w): the fakes of a training batch enter its loss (their
    posteriors pulled to the uniform); with w=0 they are dropped unseen, and validation's loss (val/loss,
    which checkpointing monitors) is the reals' content loss either way."""
    torch.manual_seed(0)
    reals, classes = torch.rand(8, 3, 32, 32), torch.randint(0, 2, (8,))
    batch = {"image": torch.cat([reals, torch.rand(8, 3, 32, 32)]), "content_class": torch.cat([classes, torch.full((8,), -1)]),
             "label": torch.cat([torch.zeros(8), torch.ones(8)]).long()}  # fmt: skip
    other = {**batch, "image": torch.cat([reals, torch.zeros(8, 3, 32, 32)])}  # the same reals, other fakes
    for w, fakes_matter in ((0.0, False), (0.5, True)):
        torch.manual_seed(1)
        m = RealOnlyDetector(ContentEnergyDetector(width=4, classes=2, outlier_exposure=w), normalize="none")
        m.eval()  # batch norm in eval mode: the loss of the reals does not depend on the fakes beside them
        train = (m._real_loss(batch, with_fakes=True)[0], m._real_loss(other, with_fakes=True)[0])
        assert (not torch.allclose(*train)) is fakes_matter
        assert m.trains_on_fakes is fakes_matter  # so test reports call the data's own fakes unseen or seen
        assert torch.allclose(m._real_loss(batch)[0], m._real_loss(other)[0])
    with pytest.raises(ConfigError, match="outlier_exposure"):
        ContentEnergyDetector(outlier_exposure=-1)


def test_the_rotation_score_flags_images_upside_down_to_the_reals():
    """ContentEnergyDetector(rotation=w, score="rotation"), Hendrycks et al. 2019: trained on reals that
    have an up (a bright sky above, the class a square left or right below it), the rotation head cannot
    tell the turn of an upside-down copy, whose class the energy still explains (here it is even surer of
    them); energy + rotation loss ranks them above unseen reals. score rotation needs the head."""
    g = torch.Generator().manual_seed(1)
    sky = torch.linspace(0.5, 0.0, 32)[None, None, :, None]

    def images(n):
        x = 0.1 * _smooth_images(n, seed=int(torch.randint(0, 10**6, (1,), generator=g))) + sky
        cls = torch.randint(0, 2, (n,), generator=g)
        for i, c in enumerate(cls.tolist()):
            x[i, :, 18:28, 2:12] += 0.4 if c == 0 else 0.0
            x[i, :, 18:28, 20:30] += 0.4 if c == 1 else 0.0
        return x.clamp(0, 1), cls

    torch.manual_seed(0)
    backbone = ContentEnergyDetector(width=8, classes=2, rotation=1.0, score="rotation")
    model = _train_content_model(backbone, images)
    x, _ = images(128)
    y = torch.cat([torch.zeros(128), torch.ones(128)]).long()
    auroc = {}
    with torch.no_grad():
        for score in ("rotation", "energy"):  # the same weights, read both ways
            backbone.score = score
            backbone.fit_reference(backbone.selected_features(images(256)[0]))
            auroc[score] = float(binary_auroc(torch.cat([model(x), model(x.flip(2))]), y))
    assert auroc["rotation"] > 0.95 and auroc["energy"] < 0.5, auroc
    with pytest.raises(ConfigError, match="rotation head"):
        ContentEnergyDetector(score="rotation")
    with pytest.raises(ConfigError, match="model.backbone.rotation"):
        ContentEnergyDetector(rotation=-0.5)


def test_synthetic_outliers_are_made_from_the_reals():
    """models.content.synthetic_outliers: jigsaw moves whole quadrants of each real (the same pixels,
    never the identity); mixup blends two reals of different classes only, between them."""
    torch.manual_seed(0)
    x, cls = torch.rand(64, 3, 32, 32), torch.randint(0, 3, (64,))
    j = synthetic_outliers(x, cls, "jigsaw")
    quads = lambda t: t.unfold(2, 16, 16).unfold(3, 16, 16).reshape(t.shape[0], 3, 4, 16, 16).transpose(1, 2)  # noqa: E731
    qx, qj = quads(x), quads(j)
    for i in range(64):
        match = [[torch.equal(qj[i, a], qx[i, b]) for b in range(4)] for a in range(4)]
        assert all(sum(row) == 1 for row in match) and not all(match[a][a] for a in range(4))
    m = synthetic_outliers(x, cls, "mixup")
    assert 0 < m.shape[0] <= 64
    assert m.shape[0] == 0 or (m.min() >= 0 and m.max() <= 1)
    assert synthetic_outliers(x, torch.zeros(64, dtype=torch.long), "mixup").shape[0] == 0  # one class: none


def test_synthetic_outlier_exposure_stays_real_only_and_trains_only():
    """outliers mixup/jigsaw: the batch's fakes never enter the loss (the detector stays real-only and
    its test reports call every fake unseen); the exposure term is a training loss, so validation's
    loss is the reals' content loss."""
    torch.manual_seed(0)
    reals, classes = (
        torch.rand(8, 3, 32, 32),
        torch.tensor([0] * 7 + [1]),
    )  # any mixup shift pairs two classes
    batch = {"image": torch.cat([reals, torch.rand(8, 3, 32, 32)]), "content_class": torch.cat([classes, torch.full((8,), -1)]),
             "label": torch.cat([torch.zeros(8), torch.ones(8)]).long()}  # fmt: skip
    other = {**batch, "image": torch.cat([reals, torch.zeros(8, 3, 32, 32)])}
    for kind in ("mixup", "jigsaw"):
        torch.manual_seed(1)
        m = RealOnlyDetector(
            ContentEnergyDetector(width=4, classes=2, outlier_exposure=0.5, outliers=kind), normalize="none"
        )
        torch.manual_seed(1)
        plain = RealOnlyDetector(ContentEnergyDetector(width=4, classes=2), normalize="none")
        plain.load_state_dict(m.state_dict(), strict=False)  # the same weights, no exposure
        assert not m.trains_on_fakes
        for mod in (m, plain):
            mod.backbone.features.eval()  # batch norm in eval mode, the exposure still in training mode
        torch.manual_seed(2)
        a = m._real_loss(batch, with_fakes=True)[0]
        torch.manual_seed(2)
        b = m._real_loss(other, with_fakes=True)[0]
        assert torch.allclose(a, b) and a > plain._real_loss(batch, with_fakes=True)[0]
        m.eval()
        plain.eval()
        assert torch.allclose(m._real_loss(batch)[0], plain._real_loss(batch)[0])
    with pytest.raises(ConfigError, match="model.backbone.outliers"):
        ContentEnergyDetector(outliers="cutout")


def test_jigsaw_outlier_exposure_flags_parts_in_the_wrong_places():
    """Reals whose class (a red or a green square) lies inside one quadrant: a jigsaw keeps the class
    evidence, so the plain content energy cannot tell jigsawed reals from reals (AUROC ~0.5); with
    jigsaw outlier exposure (same seed, same steps) it ranks them above the reals."""
    g = torch.Generator().manual_seed(1)

    def images(n):
        x = 0.3 * _smooth_images(n, seed=int(torch.randint(0, 10**6, (1,), generator=g)))
        cls = torch.randint(0, 2, (n,), generator=g)
        corner = torch.randint(2, 7, (n, 2), generator=g) + 16 * torch.randint(0, 2, (n, 2), generator=g)
        for i, c in enumerate(cls.tolist()):
            r, q = corner[i].tolist()
            x[i, c, r : r + 8, q : q + 8] += 0.6
        return x.clamp(0, 1), cls

    auroc = {}
    for w in (0.0, 1.0):
        torch.manual_seed(0)
        model = _train_content_model(
            ContentEnergyDetector(width=8, classes=2, outlier_exposure=w, outliers="jigsaw"), images
        )
        x, c = images(256)
        torch.manual_seed(5)
        with torch.no_grad():
            scores = torch.cat([model(x), model(synthetic_outliers(x, c, "jigsaw"))])
        auroc[w] = float(binary_auroc(scores, torch.cat([torch.zeros(256), torch.ones(256)]).long()))
    assert auroc[0.0] < 0.65 and auroc[1.0] > 0.85, auroc


@pytest.mark.slow
def test_outlier_exposure_ranks_the_training_fakes_kind_above_the_reals():
    """Trained with outlier exposure on 'fakes' whose content is right but which carry a generator's
    trace (a faint checkerboard, as transposed convolutions leave), the content model's energy ranks unseen
    such images above unseen reals; the real-only model (same seed, same steps) cannot, as their content
    is that of the reals."""
    g = torch.Generator().manual_seed(1)

    def batch(n=64):
        x = 0.1 * _smooth_images(n, seed=int(torch.randint(0, 10**6, (1,), generator=g)))
        cls = torch.randint(0, 2, (n,), generator=g)
        for i, c in enumerate(cls.tolist()):
            x[i, :, 4:14, 4:14] += 0.8 if c == 0 else 0.0
            x[i, :, 18:28, 18:28] += 0.8 if c == 1 else 0.0
        checker = (torch.arange(32)[:, None] + torch.arange(32)[None, :]) % 2 * 0.06
        return x.clamp(0, 1), cls, (x + checker).clamp(0, 1)

    auroc = {}
    for w in (0.0, 0.5):
        torch.manual_seed(0)
        model = RealOnlyDetector(
            ContentEnergyDetector(width=8, classes=2, outlier_exposure=w), normalize="none"
        )
        model.log = lambda *a, **k: None
        opt = torch.optim.Adam(model.parameters(), 3e-3)
        for _ in range(40):
            x, c, noise = batch()
            loss = model.training_step({"image": torch.cat([x, noise]), "content_class": torch.cat([c, -torch.ones_like(c)]),
                                        "label": torch.cat([torch.zeros(64), torch.ones(64)]).long()}, 0)  # fmt: skip
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        x, _, noise = batch(128)
        with torch.no_grad():
            auroc[w] = float(
                binary_auroc(
                    torch.cat([model(x), model(noise)]), torch.cat([torch.zeros(128), torch.ones(128)]).long()
                )
            )
    assert auroc[0.5] > 0.95 and auroc[0.0] < 0.8, auroc


def test_a_content_model_scores_test_data_without_content_classes():
    """OOD sets (pubgen-dev, photos) carry no CIFAR-10 class: testing scores them and logs no loss."""
    m = RealOnlyDetector(ContentEnergyDetector(width=8, classes=2), normalize="none").eval()
    m.log = m.log_dict = lambda *a, **k: None
    batch = {"image": torch.rand(6, 3, 32, 32), "label": torch.tensor([0, 0, 0, 1, 1, 1]),
             "content_class": torch.full((6,), -1)}  # fmt: skip
    with torch.no_grad():
        logits = m._eval_step(batch, "test")
    assert logits.shape == (6,) and torch.isfinite(logits).all()


def test_self_descriptions_respect_their_constraints():
    """models.self_description: every filter predicts its centre from its support (taps sum to 1, centre
    0), and every image's description weights sum to one per residual channel (the KKT constraint)."""
    model = SelfDescriptionDetector(filter_size=5, patch=3, scales=2, components=1)
    with torch.no_grad():
        model.residual.weight.normal_()
    w = model.residual.filters()
    assert torch.allclose(w.sum((1, 2, 3)), torch.ones(4), atol=1e-5)
    assert (w[:, :, 2, 2] == 0).all() and (w[model.residual.mask == 0] == 0).all()
    psi = model.selected_features(_smooth_images(3, seed=0))
    assert psi.shape == (3, 36)  # 4 channels x 8 neighbours, then 4 log energies
    assert torch.allclose(psi[:, :32].view(3, 4, 8).sum(2), torch.ones(3, 4), atol=1e-4)
    flat = torch.zeros(2, 3, 32, 32)
    flat[1] = 0.5
    assert torch.isfinite(model.selected_features(flat)).all()  # no residual at all: still a description
    with pytest.raises(ConfigError, match="model.backbone.patch"):
        SelfDescriptionDetector(patch=4)
    with pytest.raises(ConfigError, match="model.reference_size"):
        model.fit_reference(torch.randn(100, 36))


def test_self_descriptions_of_reals_score_them_lower_than_noised_or_smoothed_images():
    torch.manual_seed(0)
    model = SelfDescriptionDetector(components=2)
    train = _smooth_images(768, seed=1)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    first = float(model.loss(train).detach())
    for _ in range(40):
        loss = model.loss(train[torch.randint(0, 768, (128,))])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(model.loss(train).detach()) < first  # the filters learned to predict real pixels
    with torch.no_grad():
        model.fit_reference(model.selected_features(train))
        held_out = _smooth_images(128, seed=3)
        noised = (held_out + 0.04 * torch.randn_like(held_out)).clamp(0, 1)
        smoothed = F.avg_pool2d(F.pad(held_out, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
        real_score = model(held_out)
        y = torch.cat([torch.zeros(128), torch.ones(128)]).long()
        for other in (noised, smoothed):
            assert binary_auroc(torch.cat([real_score, model(other)]), y) > 0.9
    assert 0.0 < float((real_score > 0).float().mean()) < 0.25
