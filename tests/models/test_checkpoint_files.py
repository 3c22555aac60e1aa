"""models/checkpoint.py: untrusted or foreign checkpoint files are refused by name."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch
from helpers.run import cifake_test_args, run_main

from cifake_lightning.errors import CheckpointError
from cifake_lightning.models.checkpoint import read_checkpoint


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/cifake-pwned",))


# ------------------------------------------------------------------------------ 8. odd checkpoints
def test_checkpoint_without_lightning_version_is_named(demo_ckpt, tmp_path):
    ckpt = torch.load(demo_ckpt, weights_only=True)
    del ckpt["pytorch-lightning_version"]
    torch.save(ckpt, tmp_path / "nover.ckpt")
    with pytest.raises(CheckpointError, match="pytorch-lightning_version"):
        read_checkpoint(tmp_path / "nover.ckpt")
    ckpt["pytorch-lightning_version"] = "not-a-version!"
    torch.save(ckpt, tmp_path / "badver.ckpt")
    with pytest.raises(CheckpointError, match="unreadable Lightning version"):
        read_checkpoint(tmp_path / "badver.ckpt")


def test_random_file_that_starts_like_a_pickle_is_named(tmp_path):
    import random

    bad = tmp_path / "random.ckpt"
    for seed in range(300):  # before: 15 of these raised IndexError and 5 KeyError
        rng = random.Random(seed)
        bad.write_bytes(b"\x80\x02" + bytes(rng.randrange(256) for _ in range(200)))
        with pytest.raises(CheckpointError, match="random.ckpt"):
            read_checkpoint(bad)


def test_checkpoint_naming_a_foreign_class_is_refused_before_import(demo_ckpt, tmp_path, cifake_root, capsys):
    ckpt = torch.load(demo_ckpt, weights_only=True)
    ckpt["hyper_parameters"]["_class_path"] = "this.ImageClassifier"  # importing `this` prints the Zen
    bad = tmp_path / "foreign.ckpt"
    torch.save(ckpt, bad)
    sys.modules.pop("this", None)
    code, err = run_main(cifake_test_args(cifake_root, "--ckpt", str(bad)), capsys)
    assert code == 2 and "refused" in err and "this.ImageClassifier" in err
    assert "this" not in sys.modules


def test_pickled_code_in_a_checkpoint_is_refused(tmp_path):
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": _Evil()}, path)
    with pytest.raises(CheckpointError, match="refused"):
        read_checkpoint(path)
    assert not Path("/tmp/cifake-pwned").exists()
