"""Every option a sweep file can propose runs (issue 17): each categorical value of every sweep file,
and each of the 36 topologies of the grid, instantiates and trains one step through `cifake fit` with the
file's own command (so the config's callbacks, e.g. the explanation callback, run too)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.run import QUIET, REPO

from cifake_lightning.sweeps.spec import command_for, load_sweep

SWEEPS = sorted((REPO / "wandb_sweeps").glob("*.yaml"))


def _cases():
    for path in SWEEPS:
        cfg = load_sweep(path)
        for key, spec in cfg["parameters"].items():
            for value in spec.get("values", []):
                yield pytest.param(path, key, value, id=f"{path.stem}:{key.rsplit('.', 1)[-1]}={value}")


def _tiny(cifake_root: Path, tmp_path: Path, key: str) -> list[str]:
    small = [] if key.endswith("batch_size") else ["--data.batch_size=16"]
    return [
        *small,
        "--data.eval_batch_size=16",
        f"--data.root={cifake_root}",
        "--data.val_size=40",
        f"--tracking.save_dir={tmp_path / 'runs'}",
        "--trainer.max_epochs=1",
        "--trainer.limit_train_batches=1",
        "--trainer.limit_val_batches=1",
        "--trainer.enable_model_summary=false",
        "--early_stopping.patience=null",
        *QUIET,
    ]


@pytest.mark.slow
@pytest.mark.parametrize("path, key, value", list(_cases()))
def test_every_categorical_sweep_value_trains(path, key, value, cifake_root, tmp_path, monkeypatch):
    from cifake_lightning.console import main

    cfg = load_sweep(path)
    command = command_for(cfg, {key: value}, cifake=["cifake"])
    assert command[:2] == ["cifake", "fit"], command
    monkeypatch.chdir(REPO)  # sweep files name configs relative to the repository root, as the agent runs
    config = Path(command[command.index("--config") + 1]).read_text()
    cheap_explain = (  # keep the explanation callback (and its attention map), at a test's cost
        [
            "--trainer.callbacks.init_args.n_images=2",
            "--trainer.callbacks.init_args.settings.ig_steps=2",
            "--trainer.callbacks.init_args.settings.methods=[integrated_gradients, attention]",
        ]
        if "ExplainCallback" in config
        else []
    )
    main([*command[1:], *_tiny(cifake_root, tmp_path, key), *cheap_explain, "--name", "sweep"])
    assert list((tmp_path / "runs" / "sweep").glob("version_*/checkpoints/last.ckpt"))
