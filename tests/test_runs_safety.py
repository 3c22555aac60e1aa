"""Runs must not be lost or silently changed: resume checks before writing, names inside the runs tree,
one damaged run skipped by the report, W&B decided in seconds, nonsense options refused (issue 26)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from helpers.run import QUIET

from cifake_lightning.cli import main
from cifake_lightning.tracking.runs import collect_local

REPO = Path(__file__).resolve().parents[1]


def _fit(root, *extra):
    main(["fit", "--config", str(REPO / "configs" / "demo.yaml"), "--data.root", str(root),
          "--data.val_size", "40", "--trainer.limit_train_batches", "3", *QUIET,
          "--trainer.callbacks", "[]", *extra])  # fmt: skip


@pytest.fixture
def finished_run(cifake_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _fit(cifake_root, "--trainer.max_epochs", "1", "--name", "A")
    return tmp_path / "runs" / "A" / "version_0"


def _files(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    "change,named",
    [
        (["--model.init_args.backbone.init_args.topology", "conv16x1-dense32x1"], "topology"),
        (["--model.optimizer.init_args.lr", "0.01"], "lr"),
        (["--data.val_size", "60"], "val_size"),
        (["--seed_everything", "5"], "seed_everything"),
    ],
)
def test_resume_with_other_settings_is_refused_before_anything_is_rewritten(
    finished_run, cifake_root, capsys, change, named
):
    before = _files(finished_run)
    with pytest.raises(SystemExit) as e:
        _fit(cifake_root, "--trainer.max_epochs", "2", "--name", "A", "--ckpt_path", "last", *change)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "resuming" in err and named in err and "Traceback" not in err
    assert _files(finished_run) == before  # config.yaml, run_info_fit.json, metrics.csv, checkpoints


def test_resume_with_the_same_settings_and_more_epochs_works(finished_run, cifake_root):
    _fit(cifake_root, "--trainer.max_epochs", "2", "--name", "A", "--ckpt_path", "last")
    assert len(list((finished_run / "checkpoints").glob("best-*.ckpt"))) >= 1
    epochs = {line.split(",")[0] for line in (finished_run / "metrics.csv").read_text().splitlines()[1:]}
    assert epochs == {"0", "1"}


@pytest.mark.parametrize("name", ["../escaped", "..", "a/../../b"])
def test_run_names_stay_inside_the_runs_tree(cifake_root, tmp_path, monkeypatch, capsys, name):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        _fit(cifake_root, "--trainer.max_epochs", "1", "--name", name)
    assert e.value.code == 2 and "option name:" in capsys.readouterr().err
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "b").exists()


def test_zero_epochs_is_refused(cifake_root, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        _fit(cifake_root, "--trainer.max_epochs", "0")
    assert e.value.code == 2 and "0 trains nothing" in capsys.readouterr().err


def test_one_validation_image_says_why_there_is_no_threshold():
    import torch

    from cifake_lightning.models.calibration import fit

    text = fit(torch.tensor([0.3]), torch.tensor([1])).describe()
    assert "validation held 0 real and 1 fake" in text and "no validation scores stored" not in text
    small = fit(torch.randn(60), torch.arange(60) % 2, rule="fpr:0.01").describe()
    assert "WARNING: 30 validation reals cannot resolve an FPR of 0.01" in small


def test_report_skips_one_damaged_run_and_names_it(finished_run, tmp_path, caplog):
    import shutil

    for name, damage in (("B", "config.yaml"), ("C", "run_info_fit.json")):
        other = finished_run.parents[1] / name / "version_0"
        shutil.copytree(finished_run, other)
        text = (other / damage).read_text()
        (other / damage).write_text(
            text[: len(text) // 2] + ("\n: [unclosed" if damage.endswith("yaml") else "")
        )
    with caplog.at_level(logging.WARNING):
        runs = collect_local([tmp_path / "runs"], tmp_path / "results")
    assert [r.name for r in runs] == ["A/version_0"]
    for name in ("B", "C"):
        assert any(f"runs/{name}/version_0" in m for m in caplog.messages), caplog.messages


def test_wandb_online_without_a_server_goes_offline_in_seconds(monkeypatch, caplog):
    from cifake_lightning.tracking import loggers

    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens: refused at once
    t0 = time.perf_counter()
    with caplog.at_level(logging.WARNING):
        assert loggers.resolve_wandb_mode("online") == "offline"
    assert time.perf_counter() - t0 < 5
    assert any("127.0.0.1:9 not reachable" in m for m in caplog.messages)
    monkeypatch.delenv("WANDB_API_KEY")
    monkeypatch.setenv("NETRC", "/nonexistent")
    monkeypatch.setenv("WANDB_MODE", "online")
    assert loggers.resolve_wandb_mode("auto") == "offline"
    assert any("no API key" in m for m in caplog.messages)


def test_wandb_garbage_key_fit_logs_offline_and_exits_0(cifake_root, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_API_KEY", "garbage" * 6)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    t0 = time.perf_counter()
    main(["fit", "--config", str(REPO / "configs" / "demo.yaml"), "--data.root", str(cifake_root),
          "--data.val_size", "40", "--trainer.limit_train_batches", "2", "--trainer.max_epochs", "1",
          "--trainer.enable_progress_bar=false", "--data.progress=false", "--trainer.callbacks", "[]",
          "--name", "wb"])  # fmt: skip
    assert time.perf_counter() - t0 < 60
    import wandb

    wandb.finish()  # close the run in this process: a later in-process wandb.init would reuse it
    assert list((tmp_path / "runs" / "wb" / "wandb").glob("offline-run-*"))
    assert (tmp_path / "runs" / "wb" / "version_0" / "checkpoints" / "last.ckpt").is_file()


def test_data_synth_bad_option_answers_without_loading_torch():
    import subprocess
    import sys

    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", "import sys; sys.argv=['cifake','data','synth','--n','5'];"
                        "from cifake_lightning.console import main; main()"],
                       capture_output=True, text=True, cwd=REPO)  # fmt: skip
    assert r.returncode == 2 and "ambiguous option" in r.stderr
    assert time.perf_counter() - t0 < 5


def test_wandb_environment_variables_place_the_offline_run(cifake_root, tmp_path):
    """WANDB_PROJECT, WANDB_RUN_GROUP and WANDB_NAME reach the offline run's own log file. A fresh process:
    W&B keeps one service per process, and the variables are read where a run starts."""
    import os
    import subprocess
    import sys

    pytest.importorskip("wandb")
    want = {"WANDB_PROJECT": "proj-7f3a", "WANDB_RUN_GROUP": "group-z81q", "WANDB_NAME": "name-q2x9"}
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}, **want,
           "WANDB_MODE": "offline", "WANDB_SILENT": "true", "PYTHONPATH": str(REPO)}  # fmt: skip
    r = subprocess.run(
        [sys.executable, "-m", "cifake_lightning", "fit", "--config", str(REPO / "configs" / "demo.yaml"),
         "--data.root", str(cifake_root), "--data.val_size", "40", "--trainer.limit_train_batches", "2",
         "--trainer.max_epochs", "1", "--trainer.enable_progress_bar=false", "--data.progress=false",
         "--trainer.callbacks", "[]", "--name", "envs"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    (log,) = (tmp_path / "runs" / "envs" / "wandb").glob("offline-run-*/run-*.wandb")
    data = log.read_bytes()
    assert all(v.encode() in data for v in want.values()), [
        v for v in want.values() if v.encode() not in data
    ]


def test_an_option_error_found_in_the_data_leaves_no_run_behind(cifake_root, tmp_path, monkeypatch, capsys):
    """Issue 27: the data is checked before Lightning creates the W&B run; the reserved version folder
    (and its W&B run id) is released, so a failed start takes no version_N and leaves no offline run."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    with pytest.raises(SystemExit) as e:
        main(["fit", "--config", str(REPO / "configs" / "demo.yaml"), "--data.root", str(cifake_root),
              "--data.val_size", "100000", "--trainer.enable_progress_bar=false", "--data.progress=false"])  # fmt: skip
    assert e.value.code == 2 and "leaves no training images" in capsys.readouterr().err
    assert not list(tmp_path.rglob("version_*")) and not list(tmp_path.rglob("wandb"))
