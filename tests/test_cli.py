"""The `cifake` command through its real entry point (in-process where possible, subprocess for exit codes)."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from helpers.run import DEMO, QUIET, REPO, cifake, fit_demo, run_main
from PIL import Image

from cifake_lightning.console import main
from cifake_lightning.models.checkpoint import read_checkpoint


def _cifake(*args, cwd=None, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "cifake_lightning", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _fast(root, *extra):
    return [
        "--config",
        DEMO,
        "--data.root",
        str(root),
        "--data.val_size",
        "60",
        "--data.batch_size",
        "16",
        "--data.progress",
        "false",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.enable_model_summary",
        "false",
        *extra,
    ]


def test_print_config_shows_resolved_classes(capsys):
    with pytest.raises(SystemExit) as e:
        main(["fit", "--config", str(REPO / "configs" / "baseline.yaml"), "--print_config"])
    assert e.value.code == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["model"]["init_args"]["backbone"]["init_args"]["topology"] == "conv32x2-dense64x1"
    assert cfg["data"]["class_path"] == "cifake_lightning.data.CIFAKEDataModule"
    assert cfg["early_stopping"]["patience"] == 3


def test_unknown_key_fails_with_jsonargparse_message(capsys):
    with pytest.raises(SystemExit) as e:
        main(["fit", "--config", DEMO, "--model.init_args.no_such_option", "3"])
    assert e.value.code != 0
    assert "no_such_option" in capsys.readouterr().err


@pytest.mark.parametrize(
    "option,value",
    [("--data.batch_size", "-5"), ("--data.on_bad_file", "ignore"), ("--trainer.max_epochs", "many")],
)
def test_bad_values_fail_naming_the_option(capsys, option, value):
    with pytest.raises(SystemExit) as e:
        main(["fit", "--config", DEMO, option, value])
    assert e.value.code != 0
    err = capsys.readouterr().err
    assert option.split(".")[-1] in err


def test_fit_then_test_beats_chance(cifake_root, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    main(["fit", *_fast(cifake_root, "--trainer.max_epochs", "2", "--name", "clitest")])
    run = tmp_path / "runs" / "clitest" / "version_0"
    ckpt = run / "checkpoints" / "last.ckpt"
    assert ckpt.is_file() and (run / "config.yaml").is_file() and (run / "run_info_fit.json").is_file()
    with open(run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    val_acc = [float(r["val/acc"]) for r in rows if r.get("val/acc")]
    assert len(val_acc) == 2
    capsys.readouterr()
    main(
        [
            "test",
            "--ckpt",
            str(ckpt),
            "--data.root",
            str(cifake_root),
            "--data.val_size",
            "0",
            "--data.progress",
            "false",
            "--trainer.enable_progress_bar",
            "false",
        ]
    )
    out = capsys.readouterr().out
    all_row = next(
        line for line in out.splitlines() if line.startswith("│ all")
    )  # the terminal's summary row
    (metrics,) = Path("results").rglob("metrics.json")
    acc = json.loads(metrics.read_text())["metrics"]["test/acc"]
    assert acc > 0.75, out  # chance is 0.5 on the balanced test split
    assert "test/acc" not in out and len(all_row) <= 100  # no second, mixed-source table; fits 100 columns


@pytest.mark.slow
def test_missing_dataset_is_one_clear_line(tmp_path):
    r = _cifake("fit", "--config", DEMO, "--data.root", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert r.returncode == 2
    assert "cifake: error:" in r.stderr and "nowhere" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_bad_checkpoint_is_one_clear_line(tmp_path, cifake_root):
    bad = tmp_path / "model.ckpt"
    bad.write_text("this is not a checkpoint")
    r = _cifake("test", "--ckpt", str(bad), "--data.root", str(cifake_root), cwd=tmp_path)
    assert r.returncode == 2 and "model.ckpt" in r.stderr and "Traceback" not in r.stderr
    r = _cifake("test", "--ckpt", str(tmp_path / "missing.ckpt"), cwd=tmp_path)
    assert r.returncode == 2 and "checkpoint file not found" in r.stderr


def test_models_command_lists_the_paper_grid():
    r = _cifake("models", "--paper")
    assert r.returncode == 0 and len(r.stdout.split()) == 36


@pytest.mark.slow
def test_data_synth_and_verify(tmp_path):
    root = tmp_path / "demo"
    r = _cifake("data", "synth", "--root", str(root), "--n-train", "20", "--n-test", "10")
    assert r.returncode == 0 and (root / "train" / "FAKE" / "0000 (2).jpg").is_file()
    r = _cifake("data", "verify", "--root", str(root), "--cache-dir", str(tmp_path / "c"))
    assert r.returncode == 0 and "no problems found" in r.stdout, r.stdout + r.stderr
    (root / "test" / "REAL" / "0099.jpg").write_bytes((root / "train" / "REAL" / "0001.jpg").read_bytes())
    (root / "train" / "FAKE" / "broken.jpg").write_bytes(b"\xff\xd8\xff")
    r = _cifake("data", "verify", "--root", str(root), "--cache-dir", str(tmp_path / "c"))
    assert r.returncode == 1 and "leakage: 1" in r.stdout and "broken.jpg" in r.stdout
    r = _cifake("data", "synth", "--root", str(root))
    assert r.returncode == 2 and "overwrite" in r.stderr


def test_predict_folder_writes_one_row_per_image(cifake_root, demo_ckpt, tmp_path, monkeypatch):

    import torch

    from cifake_lightning.data.image_io import load_image_tensor
    from cifake_lightning.models.detector import Detector

    images = tmp_path / "to score"
    (images / "a").mkdir(parents=True)
    (images / "b" / "c").mkdir(parents=True)
    for i, src in enumerate(sorted((cifake_root / "test" / "REAL").iterdir())[:5]):
        shutil.copy(src, images / "a" / f"{i}.jpg")
    for i, src in enumerate(sorted((cifake_root / "test" / "FAKE").iterdir())[:5]):
        shutil.copy(src, images / "b" / "c" / f"{i}.jpg")
    Image.new("RGBA", (64, 48), (200, 10, 10, 128)).save(images / "big.png")  # resized by the area policy
    (images / "broken.jpg").write_text("not an image")  # skipped (PredictFolder's default) and counted
    monkeypatch.chdir(tmp_path)
    with pytest.warns(
        UserWarning, match=r"1 file\(s\) were skipped as unreadable \(broken.jpg: not an image"
    ):
        main(
            [
                "predict", "--ckpt", str(demo_ckpt), "--data", "cifake_lightning.data.PredictFolder",
            "--data.root", str(images), "--data.eval_batch_size", "4", "--name", "scored",
            "--data.progress", "false", "--trainer.enable_progress_bar", "false", "--tracking.wandb", "false",
            ]
        )  # fmt: skip
    from cifake_lightning.evaluate.table import latest_results

    with open(latest_results(tmp_path / "results", demo_ckpt) / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    expected = [f"a/{i}.jpg" for i in range(5)] + ["b/c/" + f"{i}.jpg" for i in range(5)] + ["big.png"]
    assert sorted(r["file"] for r in rows) == sorted(expected)
    model = Detector.from_checkpoint(demo_ckpt).eval()
    for r in rows:
        if r["file"].endswith(".jpg"):
            x = load_image_tensor(images / r["file"]).float().div(255).unsqueeze(0)
            with torch.no_grad():
                p = float(model.score(x)[1])
            assert abs(float(r["p_fake"]) - p) < 1e-4, r
        assert r["predicted"] == (
            "fake" if float(r["logit"]) >= model.calibration.threshold_logit else "real"
        )
        assert float(r["threshold"]) == pytest.approx(model.calibration.threshold, rel=1e-5)


def test_the_progress_bar_does_not_show_the_loggers_version(tmp_path):
    """Lightning's bar shows `v_num`, which is the W&B run id when W&B logs, not the version_N folder."""
    from lightning import Trainer
    from lightning.pytorch.loggers import CSVLogger

    from cifake_lightning.callbacks import ProgressBar

    trainer = Trainer(logger=CSVLogger(tmp_path, version="e791"), callbacks=[ProgressBar()], max_epochs=1)
    assert isinstance(trainer.progress_bar_callback, ProgressBar)
    assert "v_num" not in trainer.progress_bar_callback.get_metrics(trainer, None)


def _files(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_bug_in_a_constructor_keeps_its_traceback(cifake_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["fit", "--config", DEMO, "--data.root", str(cifake_root), *QUIET]
    with pytest.raises(ValueError, match="invalid literal for int"):  # not "option config: ..." and exit 2
        main([*args, "--model.backbone", "helpers.buggy.BuggyBackbone"])


def test_a_bad_option_value_is_one_line(cifake_root, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = ["fit", "--config", DEMO, "--data.root", str(cifake_root), *QUIET]
    with pytest.raises(SystemExit) as e:
        main([*args, "--model.init_args.normalize", "bogus"])
    assert e.value.code == 2
    assert "option model.normalize: expected one of" in capsys.readouterr().err


# ------------------------------------------------------------------------------ 7. option values
@pytest.mark.parametrize(
    "option, value, named",
    [
        ("--model.optimizer.init_args.lr", "0", "model.optimizer"),
        ("--model.optimizer.init_args.lr", "-1", "model.optimizer"),
        ("--trainer.max_epochs", "-2", "max_epochs"),
        ("--data.val_size", "100000", "data.val_size"),
    ],
)
def test_bad_option_values_stop_with_one_line(
    cifake_root, tmp_path, monkeypatch, capsys, option, value, named
):
    monkeypatch.chdir(tmp_path)
    args = ["fit", "--config", DEMO, "--data.root", str(cifake_root), *QUIET, "--trainer.callbacks", "[]"]
    code, err = run_main([*args, option, value], capsys)
    assert code == 2 and named in err and "Traceback" not in err, err


@pytest.mark.slow
def test_ctrl_c_during_fit_exits_130(cifake_root, tmp_path):
    interrupt = (
        '[{"class_path": "helpers.killer.KillDuringEpoch", "init_args": {"epoch": 1, "batch": 1, "sig": 2}}]'
    )
    r = cifake(
        "fit",
        "--config",
        DEMO,
        "--data.root",
        str(cifake_root),
        "--data.val_size",
        "40",
        *QUIET,
        "--trainer.max_epochs",
        "3",
        "--trainer.callbacks",
        interrupt,
        cwd=tmp_path,
    )
    assert r.returncode == 130 and "interrupted" in r.stderr, r.stderr[-1500:]
    assert (
        read_checkpoint(tmp_path / "runs" / "demo" / "version_0" / "checkpoints" / "last.ckpt")["epoch"] == 0
    )


def test_unwritable_output_dir_is_named_before_training(cifake_root, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    r = cifake(
        "fit",
        "--config",
        DEMO,
        "--data.root",
        str(cifake_root),
        "--tracking.save_dir",
        str(blocker / "runs"),
        cwd=tmp_path,
    )
    assert r.returncode == 2 and "tracking.save_dir" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_checkpoint_of_another_model_is_a_clear_error(cifake_root, demo_ckpt, tmp_path):
    ckpt = torch.load(demo_ckpt, weights_only=True)
    ckpt["hyper_parameters"]["backbone"]["init_args"]["topology"] = "conv64x3"  # weights no longer fit
    bad = tmp_path / "mismatch.ckpt"
    torch.save(ckpt, bad)
    r = cifake(
        "test",
        "--ckpt",
        str(bad),
        "--data.root",
        str(cifake_root),
        "--data.val_size",
        "0",
        "--tracking.wandb",
        "false",
        cwd=tmp_path,
    )
    assert r.returncode == 2 and "mismatch.ckpt" in r.stderr and "does not fit" in r.stderr, r.stderr[-1500:]


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
        fit_demo(cifake_root, "--trainer.max_epochs", "2", "--name", "A", "--ckpt_path", "last", *change)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "resuming" in err and named in err and "Traceback" not in err
    assert _files(finished_run) == before  # config.yaml, run_info_fit.json, metrics.csv, checkpoints


def test_resume_with_the_same_settings_and_more_epochs_works(finished_run, cifake_root):
    fit_demo(cifake_root, "--trainer.max_epochs", "2", "--name", "A", "--ckpt_path", "last")
    assert len(list((finished_run / "checkpoints").glob("best-*.ckpt"))) >= 1
    epochs = {line.split(",")[0] for line in (finished_run / "metrics.csv").read_text().splitlines()[1:]}
    assert epochs == {"0", "1"}


@pytest.mark.parametrize("name", ["../escaped", "..", "a/../../b"])
def test_run_names_stay_inside_the_runs_tree(cifake_root, tmp_path, monkeypatch, capsys, name):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        fit_demo(cifake_root, "--trainer.max_epochs", "1", "--name", name)
    assert e.value.code == 2 and "option name:" in capsys.readouterr().err
    assert not (tmp_path / "escaped").exists() and not (tmp_path / "b").exists()


def test_zero_epochs_is_refused(cifake_root, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        fit_demo(cifake_root, "--trainer.max_epochs", "0")
    assert e.value.code == 2 and "0 trains nothing" in capsys.readouterr().err


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


@pytest.mark.slow  # ~12 s (a subprocess fit): the default suite stays under 5 minutes on 2 cores
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
