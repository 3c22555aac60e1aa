"""commands/models_cmd.py: `cifake models` and the names it lists."""

from __future__ import annotations

import pytest
from helpers.run import DEMO, QUIET

from cifake_lightning.console import main


def test_cifake_models_finds_parametric_names_and_rejects_unknown_ones(capsys):
    from cifake_lightning.commands.models_cmd import main as models

    models(["conv32x2-dense64x1"])  # valid without being listed one by one
    out = capsys.readouterr().out
    assert out.startswith("conv32x2-dense64x1") and '"topology": "conv32x2-dense64x1"' in out
    with pytest.raises(Exception, match="no model matches 'nosuch'"):
        models(["nosuch"])


@pytest.mark.parametrize("name", ["lightweight_cnn", "conv64x2-dense128x1", "dualstream_small"])
def test_model_names_from_cifake_models_work_on_the_command_line(cifake_root, tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    args = ["fit", "--config", DEMO, "--data.root", str(cifake_root), "--data.val_size", "40", *QUIET]
    args += ["--trainer.max_steps", "1", "--trainer.limit_val_batches", "1", "--trainer.callbacks", "[]"]
    main([*args, "--model.backbone", name, "--name", "named"])
    cfg = next((tmp_path / "runs" / "named").glob("version_*/config.yaml")).read_text()
    from cifake_lightning.models.registry import model_spec

    assert model_spec(name)["class_path"] in cfg
