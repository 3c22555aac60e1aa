"""Grid training: each topology in the grid follows the trajectory it would follow trained alone."""

import json

import lightning as L
import torch

from cifake_lightning.callbacks import EpochSeed, GridExport
from cifake_lightning.data import CIFAKEDataModule
from cifake_lightning.models import BirdLotfiCNN
from cifake_lightning.training import GridClassifier, ImageClassifier

TOPS = ["conv16x1", "conv32x2-dense64x1", "conv8x2"]


def _trainer(tmp_path, callbacks=(), logger=False):
    # EpochSeed (always on in `cifake fit`) makes each epoch's augmentation draws independent of how
    # much RNG model construction consumed, as it does for separate runs
    callbacks = [EpochSeed(3), *callbacks]
    return L.Trainer(
        max_epochs=2,
        logger=logger,
        callbacks=callbacks,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        limit_train_batches=5,
        deterministic=True,
    )


def _dm(root):
    return CIFAKEDataModule(root=str(root), val_size=60, batch_size=32, progress=False, decode_workers=1)


def test_grid_topology_matches_separate_training(cifake_root, tmp_path):
    L.seed_everything(3)
    grid = GridClassifier(topologies=TOPS)  # its seed: the run's seed_everything
    _trainer(tmp_path / "g").fit(grid, _dm(cifake_root))
    for name in ("conv16x1", "conv32x2-dense64x1"):
        L.seed_everything(3)
        alone = ImageClassifier(BirdLotfiCNN(topology=name))
        _trainer(tmp_path / name).fit(alone, _dm(cifake_root))
        g = grid.models[grid._key(name)].state_dict()
        for k, v in alone.backbone.state_dict().items():
            assert torch.allclose(v, g[k], atol=1e-5, rtol=1e-4), (name, k)


def test_grid_export_writes_single_run_folders(cifake_root, tmp_path):
    from lightning.pytorch.loggers import CSVLogger

    from cifake_lightning.models.detector import Detector

    logger = CSVLogger(tmp_path / "runs", name="grid", version=0)
    grid = GridClassifier(topologies=TOPS[:2], seed=0)
    trainer = _trainer(tmp_path, [GridExport()], logger=logger)
    (tmp_path / "runs" / "grid" / "version_0").mkdir(parents=True)
    (tmp_path / "runs" / "grid" / "version_0" / "config.yaml").write_text("seed_everything: 0\nmodel: {}\n")
    trainer.fit(grid, _dm(cifake_root))
    for name in TOPS[:2]:
        run = tmp_path / "runs" / f"grid-{name}" / "version_0"
        header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
        assert {"val/acc", "val/loss", "val/auroc"} <= set(header)
        assert json.loads((run / "run_info_fit.json").read_text())["params"] > 0
        model = Detector.from_checkpoint(run / "checkpoints" / "last.ckpt")
        x = torch.rand(4, 3, 32, 32)
        assert torch.allclose(model(x), grid(x)[name], atol=1e-5)
        # each exported checkpoint carries its own topology's last validation logits, so `cifake test`
        # calibrates it and uses the validation-chosen threshold as for a separate run
        ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
        scores = ckpt["cifake_val_scores"]
        dm = _dm(cifake_root)
        dm.setup("validate")
        n_val = len(dm.decoded("val"))
        assert scores["logit"].shape == (n_val,) and torch.equal(
            scores["label"].sort().values, dm.decoded("val").labels.sort().values
        )
        assert torch.equal(scores["logit"], grid.val_scores[name]["logit"])
        assert model.calibration.rule == "fpr:0.01" and model.calibration.n_real > 0
    assert not torch.equal(grid.val_scores[TOPS[0]]["logit"], grid.val_scores[TOPS[1]]["logit"])
