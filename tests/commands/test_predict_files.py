"""commands/predict_files: `cifake predict --ckpt CKPT FILES` never hangs on what is not a file and never
writes its CSV over an input (issue 26)."""

from __future__ import annotations

import csv
import os
import shutil
import time
from pathlib import Path

import pytest
from helpers.run import cifake

from cifake_lightning.console import main


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
    err = capsys.readouterr().err  # each unreadable input is named on the terminal, not only in the table
    assert f"cifake: unreadable: {fifo}: not a regular file" in err and "cifake: unreadable: /dev/zero" in err


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


def test_predict_scores_files_folders_and_globs_with_a_row_per_input(cifake_root, demo_ckpt, tmp_path):
    import csv
    import json
    import shutil

    import pytest
    import torch
    from PIL import Image

    from cifake_lightning.data.image_io import load_image_tensor
    from cifake_lightning.models.detector import Detector

    d = tmp_path / "imgs"
    (d / "sub").mkdir(parents=True)
    reals = sorted((cifake_root / "test" / "REAL").iterdir())[:3]
    shutil.copy(reals[0], tmp_path / "one.jpg")
    for i, f in enumerate(reals[1:]):
        shutil.copy(f, d / "sub" / f"{i}.jpg")
    (d / "broken.png").write_bytes(b"\x89PNG not really")
    Image.new("RGB", (320, 200), (120, 30, 200)).save(tmp_path / "wide.webp")
    r = cifake(
        "predict", "--ckpt", str(demo_ckpt), "one.jpg", "imgs", "*.webp", "missing.png",
        "--out", "p.csv", cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert [(x["input"], Path(x["file"]).name if x["file"] else "") for x in rows] == [
        ("one.jpg", "one.jpg"), ("imgs", "broken.png"), ("imgs", "0.jpg"), ("imgs", "1.jpg"),
        ("*.webp", "wide.webp"), ("missing.png", ""),
    ]  # fmt: skip
    by = {Path(x["file"]).name if x["file"] else x["input"]: x for x in rows}
    assert "not an image" in by["broken.png"]["error"] and by["broken.png"]["p_fake"] == ""
    assert by["missing.png"]["error"] == "no such file or folder"
    assert "unreadable: missing.png: no such file or folder" in r.stderr
    assert "unreadable: imgs/broken.png: not an image" in r.stderr  # the file, not the folder it was in
    assert (
        "reduced 6.2x from 320x200" in by["wide.webp"]["warning"]
        and "centre-cropped" in by["wide.webp"]["warning"]
    )
    assert by["one.jpg"]["warning"] == ""
    model = Detector.from_checkpoint(demo_ckpt)
    x = load_image_tensor(tmp_path / "one.jpg").float().div(255)[None]
    with torch.no_grad():
        logit = float(model(x))
    assert float(by["one.jpg"]["logit"]) == pytest.approx(logit, abs=1e-4)
    assert float(by["one.jpg"]["p_fake"]) == pytest.approx(
        float(model.calibration.prob(torch.tensor([logit]))), rel=1e-4
    )
    assert float(by["one.jpg"]["threshold"]) == pytest.approx(model.calibration.threshold, rel=1e-5)
    assert by["one.jpg"]["predicted"] == ("fake" if logit >= model.calibration.threshold_logit else "real")
    assert "scored 4 of 6 inputs" in r.stderr and "p.csv" in r.stderr
    # JSON, fixed threshold; nothing readable -> exit 2 (the file is still written)
    r = cifake("predict", "--ckpt", str(demo_ckpt), "one.jpg", "--format", "json", "--threshold", "0.3",
               "--out", "p.json", cwd=tmp_path)  # fmt: skip
    out = json.loads((tmp_path / "p.json").read_text())
    assert r.returncode == 0 and out["predictions"][0]["threshold"] == 0.3
    r = cifake("predict", "--ckpt", str(demo_ckpt), "missing.png", "--out", "none.csv", cwd=tmp_path)
    assert r.returncode == 2 and (tmp_path / "none.csv").is_file()
    r = cifake("predict", "--ckpt", str(demo_ckpt), "one.jpg", "--threshold", "2", cwd=tmp_path)
    assert r.returncode == 2 and "--threshold" in r.stderr
