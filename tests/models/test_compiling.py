"""torch.compile option: compiled models keep plain state_dict keys, so checkpoints move between modes."""

import pytest
from helpers.run import QUIET, REPO, cifake

from cifake_lightning.models import BirdLotfiCNN
from cifake_lightning.models.checkpoint import read_checkpoint
from cifake_lightning.training import GridClassifier, ImageClassifier


def test_compiled_classifier_and_grid_keep_plain_state_dict_keys():
    plain = ImageClassifier(BirdLotfiCNN(topology="conv16x1")).state_dict().keys()
    model = ImageClassifier(BirdLotfiCNN(topology="conv16x1"), compile=True)
    model.configure_model()
    model.configure_model()  # a second fit/test on the same module must not wrap it twice
    assert model.state_dict().keys() == plain
    grid = GridClassifier(topologies=["conv16x1", "conv8x2"], compile="reduce-overhead")
    grid.configure_model()
    assert not any("_orig_mod" in k for k in grid.state_dict())


@pytest.mark.slow
def test_fit_with_compile_then_test_without(cifake_root, tmp_path):
    common = ["--config", str(REPO / "configs" / "demo.yaml"), "--data.root", str(cifake_root), *QUIET]
    r = cifake(
        "fit", *common, "--data.val_size", "60", "--trainer.max_epochs", "1",
        "--trainer.limit_train_batches", "4", "--model.compile", "true", "--trainer.callbacks", "[]",
        "--name", "compiled", cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    ckpt = tmp_path / "runs" / "compiled" / "version_0" / "checkpoints" / "last.ckpt"
    assert not any("_orig_mod" in k for k in read_checkpoint(ckpt)["state_dict"])
    r = cifake("test", *common, "--ckpt", str(ckpt), "--name", "plain", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]


def test_bad_compile_mode_names_the_option():
    with pytest.raises(ValueError, match="model.compile: must be one of"):
        ImageClassifier(BirdLotfiCNN(topology="conv16x1"), compile="fastest")
