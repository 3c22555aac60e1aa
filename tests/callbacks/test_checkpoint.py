"""callbacks/checkpoint.py: best and last checkpoints, full disks, kill -9 and resume."""

from __future__ import annotations

import errno

import pytest
import torch
from helpers.run import DEMO, QUIET, cifake, run_main, val_rows

from cifake_lightning.console import main
from cifake_lightning.models.checkpoint import read_checkpoint


def test_mistyped_checkpoint_monitor_stops_and_no_validation_keeps_last(
    cifake_root, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    args = ["fit", "--config", DEMO, "--data.root", str(cifake_root), *QUIET, "--trainer.callbacks", "[]"]
    args += ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2"]
    with pytest.raises(SystemExit) as e:
        main([*args, "--data.val_size", "40", "--checkpoint.monitor", "val/los", "--name", "typo"])
    assert e.value.code == 2 and "val/los" in capsys.readouterr().err  # was: silently no best checkpoint
    main([*args, "--data.val_size", "0", "--early_stopping.patience", "null", "--name", "noval"])
    assert (tmp_path / "runs" / "noval" / "version_0" / "checkpoints" / "last.ckpt").is_file()


# ------------------------------------------------------------------------------ 5. full disk, last.ckpt
def test_full_disk_while_checkpointing_keeps_the_previous_checkpoint(
    cifake_root, tmp_path, monkeypatch, capsys
):
    from cifake_lightning.callbacks import checkpoint as ckpt_mod

    real_save, calls = torch.save, {"n": 0}

    def save_then_fill(obj, f, *a, **k):
        calls["n"] += 1
        if calls["n"] <= 2:  # epoch 0: best + last
            return real_save(obj, f, *a, **k)
        f.write(b"PK\x03\x04 partial bytes of a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt_mod.torch, "save", save_then_fill)
    monkeypatch.chdir(tmp_path)
    args = ["fit", "--config", DEMO, "--data.root", str(cifake_root), "--data.val_size", "40", *QUIET]
    code, err = run_main(
        [*args, "--trainer.max_epochs", "3", "--trainer.callbacks", "[]", "--name", "full"], capsys
    )
    monkeypatch.setattr(ckpt_mod.torch, "save", real_save)
    assert code == 2 and "No space left on device" in err and "previous checkpoint" in err, err
    folder = tmp_path / "runs" / "full" / "version_0" / "checkpoints"
    assert read_checkpoint(folder / "last.ckpt")["epoch"] == 0  # intact, loadable, the last good epoch
    assert not list(folder.glob(".*.tmp"))


def test_last_ckpt_holds_the_final_epoch_and_resume_says_so(cifake_root, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = ["fit", "--config", DEMO, "--data.root", str(cifake_root), "--data.val_size", "40", *QUIET]
    args += ["--trainer.callbacks", "[]", "--name", "e"]
    code, err = run_main([*args, "--trainer.max_epochs", "3"], capsys)
    assert code == 0, err
    last = read_checkpoint(tmp_path / "runs" / "e" / "version_0" / "checkpoints" / "last.ckpt")
    assert last["epoch"] == 2  # 0-based index of the 3rd, final epoch
    code, err = run_main([*args, "--trainer.max_epochs", "4", "--ckpt_path", "last"], capsys)
    assert code == 0 and "3 epoch(s) done; continuing with epoch 4" in err, err
    assert read_checkpoint(tmp_path / "runs" / "e" / "version_0" / "checkpoints" / "last.ckpt")["epoch"] == 3


@pytest.mark.slow
def test_kill_9_then_resume_matches_uninterrupted_run(cifake_root, tmp_path):
    common = [
        "fit",
        "--config",
        DEMO,
        "--data.root",
        str(cifake_root),
        "--data.val_size",
        "60",
        "--data.batch_size",
        "32",
        "--trainer.max_epochs",
        "3",
        "--trainer.deterministic",
        "true",
        *QUIET,
        "--data.augment.pad_crop",
        "2",
    ]  # random augmentation, so a replayed epoch must redraw it identically
    r = cifake(*common, "--name", "straight", "--trainer.callbacks", "[]", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    killer = '[{"class_path": "helpers.killer.KillDuringEpoch", "init_args": {"epoch": 2, "batch": 3}}]'
    r = cifake(*common, "--name", "killed", "--trainer.callbacks", killer, cwd=tmp_path)
    assert r.returncode == -9
    last = tmp_path / "runs" / "killed" / "version_0" / "checkpoints" / "last.ckpt"
    assert read_checkpoint(last)["epoch"] == 1
    r = cifake(*common, "--name", "killed", "--trainer.callbacks", "[]", "--ckpt_path", "last", cwd=tmp_path)
    assert r.returncode == 0 and "resuming killed" in r.stderr, r.stderr[-2000:]
    straight = val_rows(tmp_path / "runs" / "straight" / "version_0" / "metrics.csv")
    resumed = val_rows(tmp_path / "runs" / "killed" / "version_0" / "metrics.csv")
    assert len(straight) == 3 and resumed == straight  # earlier epochs kept, final metrics identical
    a = read_checkpoint(tmp_path / "runs" / "straight" / "version_0" / "checkpoints" / "last.ckpt")[
        "state_dict"
    ]
    b = read_checkpoint(last)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
