"""commands/predict_files: `cifake predict --ckpt CKPT FILES` never hangs on what is not a file and never
writes its CSV over an input (issue 26)."""

from __future__ import annotations

import csv
import os
import shutil
import time
from pathlib import Path

import pytest

from cifake_lightning.cli import main


def test_fifo_and_dev_zero_are_skipped_with_a_reason_within_seconds(demo_ckpt, tmp_path, capsys):
    fifo = tmp_path / "photo.png"
    os.mkfifo(fifo)
    out = tmp_path / "p.csv"
    t0 = time.perf_counter()
    with pytest.raises(SystemExit) as e:  # nothing scorable: exit 2, the listing is still written
        main(["predict", "--ckpt", str(demo_ckpt), str(fifo), "/dev/zero", "--out", str(out)])
    assert e.value.code == 2 and time.perf_counter() - t0 < 5
    rows = list(csv.DictReader(open(out)))
    assert [r["error"] for r in rows] == ["not a regular file (a pipe, socket or device): not read"] * 2


def test_out_naming_an_input_or_the_checkpoint_is_refused(demo_ckpt, cifake_root, tmp_path, capsys):
    img = tmp_path / "x.jpg"
    shutil.copy(next(Path(cifake_root).rglob("*.jpg")), img)
    ckpt = tmp_path / "m.ckpt"
    shutil.copy(demo_ckpt, ckpt)
    before = {p: p.read_bytes() for p in (img, ckpt)}
    for out in (img, ckpt):
        with pytest.raises(SystemExit) as e:
            main(["predict", "--ckpt", str(ckpt), str(img), "--out", str(out)])
        assert e.value.code == 2 and "is an input of this command" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in (img, ckpt)} == before
    main(["predict", "--ckpt", str(ckpt), str(img), "--out", str(tmp_path / "ok.csv")])
    assert (tmp_path / "ok.csv").is_file()
