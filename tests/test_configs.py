"""configs/: data files say where data is, never how an experiment trains."""

from __future__ import annotations

import pytest
from helpers.run import REPO

from cifake_lightning.console import main


@pytest.mark.parametrize("data", ["cifake.yaml", "genset.yaml", "genset_v2.yaml"])
def test_a_data_config_does_not_change_the_experiments_batch_size(monkeypatch, capsys, data):
    import yaml

    monkeypatch.chdir(REPO)
    data_root = yaml.safe_load((REPO / "configs" / "data" / data).read_text())["init_args"]["root"]
    for exp in ("baseline.yaml", "dualstream.yaml", "resnet18.yaml"):
        with pytest.raises(SystemExit):
            main(["fit", "--config", f"configs/{exp}", "--data", f"configs/data/{data}", "--print_config"])
        with_data = yaml.safe_load(capsys.readouterr().out)["data"]["init_args"]
        own = yaml.safe_load((REPO / "configs" / exp).read_text())["data"]["init_args"]
        assert with_data["batch_size"] == own["batch_size"], exp
        assert with_data["root"] == data_root
