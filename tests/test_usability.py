"""Using a trained detector (issue 20): command-line conventions."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.run import cifake


def test_misspelt_command_suggests_the_right_one(tmp_path):
    r = cifake("explian", cwd=tmp_path)
    assert r.returncode == 2
    assert "did you mean 'explain'?" in r.stderr and "Traceback" not in r.stderr
    r = cifake("zzzz", cwd=tmp_path)
    assert r.returncode == 2 and "unknown command 'zzzz'" in r.stderr and "did you mean" not in r.stderr


def test_fit_ends_by_naming_the_best_checkpoint_and_operating_point(cifake_root, tmp_path):
    from helpers.run import QUIET, REPO

    r = cifake(
        "fit", "--config", str(REPO / "configs/demo.yaml"), "--data.root", str(cifake_root),
        "--data.val_size", "40", "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
        "--trainer.callbacks", "[]", *QUIET, cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert (
        "cifake: best checkpoint runs/demo/version_0/checkpoints/best-epoch00.ckpt (val/loss = " in r.stderr
    )
    assert "cifake: last checkpoint runs/demo/version_0/checkpoints/last.ckpt (after 1 epoch(s))" in r.stderr
    assert "threshold P(fake) >=" in r.stderr and "rule fpr:0.01" in r.stderr
    assert "cifake: precision " in r.stderr  # demo.yaml leaves precision to the hardware (auto)


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


def test_wandb_job_types_names_groups_and_resume_id(tmp_path, monkeypatch):
    """W&B conventions: fit = job type train, test/validate = eval in the fit's group, predict logs no
    W&B run; a resumed fit (resume_epoch set) reuses its version's run id."""
    from cifake_lightning.tracking.loggers import Tracking, build_loggers

    monkeypatch.chdir(tmp_path)
    t = Tracking(wandb=True, mode="offline", save_dir="runs")

    def wandb_init(**kw):
        (lg,) = [x for x in build_loggers(t, "base", **kw) if type(x).__name__ == "WandbLogger"] or [None]
        return None if lg is None else lg._wandb_init

    fit = wandb_init(version=0)
    assert fit["job_type"] == "train" and fit["name"] == "base/v0" and fit["group"] == "base"
    rid = (tmp_path / "runs/base/version_0/wandb_run_id").read_text().strip()
    assert fit["id"] == rid
    resumed = wandb_init(version=0, resume_epoch=2)
    assert resumed["id"] == rid and resumed["resume"] == "allow"
    test = wandb_init(version=0, subcommand="test")
    assert test["job_type"] == "eval" and test["name"] == "base/v0/test" and test["group"] == "base"
    assert test.get("id") != rid
    assert wandb_init(version=0, subcommand="predict") is None


@pytest.mark.slow
def test_resumed_fit_continues_its_wandb_run_and_test_logs_beside_the_checkpoint(cifake_root, tmp_path):
    from helpers.run import REPO

    common = ["--config", str(REPO / "configs/demo.yaml"), "--data.root", str(cifake_root), "--data.val_size", "40",
              "--trainer.limit_train_batches", "2", "--trainer.callbacks", "[]", "--trainer.enable_progress_bar",
              "false", "--data.progress", "false", "--tracking.mode", "offline"]  # fmt: skip
    assert cifake("fit", *common, "--trainer.max_epochs", "1", cwd=tmp_path).returncode == 0
    r = cifake("fit", *common, "--trainer.max_epochs", "2", "--ckpt_path", "last", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    rid = (tmp_path / "runs/demo/version_0/wandb_run_id").read_text().strip()
    runs = sorted(p.name for p in (tmp_path / "runs/demo/wandb").glob("offline-run-*"))
    assert len(runs) == 2 and all(p.endswith(rid) for p in runs)  # one W&B run, two sessions
    ckpt = tmp_path / "runs/demo/version_0/checkpoints/last.ckpt"
    r = cifake("test", "--ckpt", str(ckpt), "--data.root", str(cifake_root), "--data.val_size", "40",
               "--trainer.enable_progress_bar", "false", "--data.progress", "false", "--tracking.mode", "offline",
               cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert not (tmp_path / "runs/demo/version_1").exists()  # no new version for a test
    assert (tmp_path / "runs/demo/version_0/test/metrics.csv").is_file()
    assert "anonymous" not in r.stderr.lower()


def test_models_and_predict_files_do_not_import_lightning(tmp_path):
    """Issue 25: `cifake models` reads the registry itself (no generated index) and, like `predict FILES`,
    imports torch and the model files but not Lightning."""
    import subprocess
    import sys

    from helpers.run import REPO

    from cifake_lightning.models.registry import list_models

    code = (
        "import sys; from cifake_lightning.console import main; sys.argv = ['cifake', 'models', 'conv*']; main(); "
        "import cifake_lightning.commands.predict_files, cifake_lightning.models.detector; "
        "assert 'lightning' not in sys.modules and 'lightning.pytorch' not in sys.modules, 'Lightning imported'"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [n for n in list_models() if n.startswith("conv")]


def test_outputs_to_a_pipe_or_device_are_written_not_replaced(tmp_path):
    import os
    import threading

    from cifake_lightning.utils import write_atomic

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    t = threading.Thread(target=lambda: got.append(fifo.read_text()))
    t.start()
    write_atomic(fifo, "a,b\n1,2\n")
    t.join(10)
    assert got == ["a,b\n1,2\n"] and not fifo.is_file() and fifo.exists()  # still a FIFO


def test_auto_precision_follows_native_bf16(monkeypatch):
    import torch

    from cifake_lightning import hardware

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx2", "fma"}))
    prec, why = hardware.auto_precision()
    assert prec == "32-true" and "no native bf16" in why
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx2", "avx512_bf16"}))
    assert hardware.auto_precision()[0] == "bf16-mixed"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "old GPU")
    assert hardware.auto_precision() == ("16-mixed", "old GPU has no native bf16")


@pytest.mark.slow
@pytest.mark.parametrize("sub", ["fit", "test", "predict"])
def test_subcommand_help_gives_examples(sub, tmp_path):
    r = cifake(sub, "--help", cwd=tmp_path)
    assert r.returncode == 0
    first = "\n".join(r.stdout.splitlines()[:30])  # the examples come first, not after 90 lines of usage
    assert "Example" in first and (f"cifake {sub} --ckpt" in first or f"cifake {sub} --config" in first)
    if sub == "test":  # a data class by its short name, as the help says
        r = cifake("test", "--data.help", "ImageFolderOOD", cwd=tmp_path)
        assert r.returncode == 0 and "--data.kinds" in r.stdout


def test_explanation_grid_marks_mistakes_and_has_a_key():
    import numpy as np
    import torch

    from cifake_lightning.explain.render import SCALE, render_grid

    images = torch.rand(2, 3, 32, 32)
    maps = {"occlusion": torch.rand(2, 32, 32), "band_ablation": torch.rand(2, 32, 32)}
    plain = np.asarray(render_grid(images, maps, ["a", "b"], ["occlusion", "band_ablation"]))
    marked = np.asarray(
        render_grid(
            images,
            maps,
            ["WRONG: a", "b"],
            ["occlusion", "band_ablation"],
            wrong=[True, False],
            threshold=0.3,
        )
    )
    tile = 32 * SCALE
    frame = marked[18 - 2 : 18 + tile + 2, 2:5]  # left edge of the first row's image
    assert ((frame[..., 0] > 200) & (frame[..., 1] < 40)).mean() > 0.9  # red
    second = marked[18 + tile + 28 + 4 : 18 + 2 * tile + 28 + 4, 2:4]
    assert not ((second[..., 0] > 200) & (second[..., 1] < 40)).any()
    assert min(plain.shape[0], marked.shape[0]) > 2 * (tile + 32) + 40  # the key below the rows
    assert marked.shape[0] >= plain.shape[0]  # the threshold's line is wrapped, never cut off
