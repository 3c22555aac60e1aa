"""Reliability, round two (issue 18): each case an adversarial user found, as a test that failed before.

Silent wrong results, lost runs, and tracebacks instead of one clear line (exit status 2).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch
from helpers.run import QUIET, REPO, cifake

from cifake_lightning.cli import main
from cifake_lightning.errors import CheckpointError, DataError, ImageDecodeError
from cifake_lightning.models.checkpoint import read_checkpoint

DEMO = str(REPO / "configs" / "demo.yaml")


def _run(args, capsys) -> tuple[int, str]:
    """In-process `cifake ...`: (exit status, stderr)."""
    code = 0
    try:
        main(list(args))
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    return code, capsys.readouterr().err


@pytest.fixture
def trained_run(demo_ckpt, tmp_path, monkeypatch) -> Path:
    """tmp_path/runs/demo/version_0/checkpoints/last.ckpt (a trained demo run), cwd = tmp_path."""
    dst = tmp_path / "runs" / "demo" / "version_0" / "checkpoints"
    dst.mkdir(parents=True)
    shutil.copy(demo_ckpt, dst / "last.ckpt")
    monkeypatch.chdir(tmp_path)
    return dst / "last.ckpt"


def _test_args(root, *extra):
    """`cifake test` of the synthetic tree; `extra` goes first, so a --config in it is overridden."""
    return ["test", *extra, "--data.root", str(root), "--data.val_size", "0", *QUIET]


# ------------------------------------------------------------------------------ 1. checkpoint not found
def test_test_without_a_findable_checkpoint_stops_instead_of_scoring_an_untrained_model(
    cifake_root, trained_run, capsys
):
    code, err = _run(
        _test_args(cifake_root, "--config", DEMO, "--ckpt_path", "last", "--name", "other"), capsys
    )
    assert code == 2 and "no last.ckpt" in err and "runs/other" in err
    code, err = _run(_test_args(cifake_root, "--config", DEMO), capsys)
    assert code == 2 and "needs a trained checkpoint" in err
    assert not Path("results").exists()  # no report of an untrained model was written


def test_ckpt_path_last_outside_fit_scores_the_runs_last_checkpoint(cifake_root, trained_run, capsys):
    from cifake_lightning.evaluate.table import latest_results

    code, err = _run(
        _test_args(cifake_root, "--config", DEMO, "--ckpt_path", "last", "--name", "demo"), capsys
    )
    assert code == 0, err
    by_name = json.loads((latest_results("results", trained_run) / "metrics.json").read_text())
    shutil.rmtree("results")
    code, err = _run(_test_args(cifake_root, "--ckpt", str(trained_run)), capsys)
    assert code == 0, err
    by_path = json.loads((latest_results("results", trained_run) / "metrics.json").read_text())
    assert by_name["metrics"]["test/auroc"] == by_path["metrics"]["test/auroc"]
    assert Path(by_name["ckpt_path"]).resolve() == trained_run.resolve()


# ------------------------------------------------------------------------------ 2. tampered caches
def _srcs(root):
    from cifake_lightning.data.cache import Source

    return [Source("REAL", root / "test" / "REAL", 0), Source("FAKE", root / "test" / "FAKE", 1)]


@pytest.mark.parametrize("tamper", ["labels", "pixels", "rows"])
def test_cache_whose_tensors_were_rewritten_is_rebuilt(cifake_root, tmp_path, tamper):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from cifake_lightning.data.cache import load_or_build

    first = load_or_build("test", _srcs(cifake_root), cifake_root, tmp_path, progress=False, workers=1)
    path = first.cache_path
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    t = load_file(str(path))
    if tamper == "labels":
        t["labels"] = 1 - t["labels"]  # a still-valid safetensors file that inverts every score
    elif tamper == "pixels":
        t["images"] = 255 - t["images"]
    else:
        t = {k: v[:10].clone() for k, v in t.items()}  # 10 rows, manifest lists 100
    save_file(t, str(path), metadata=meta)
    with pytest.warns(UserWarning, match="does not match its manifest"):
        again = load_or_build("test", _srcs(cifake_root), cifake_root, tmp_path, progress=False, workers=1)
    assert torch.equal(again.labels, first.labels) and torch.equal(again.images, first.images)
    assert len(again) == len(first.files) == 100


# ------------------------------------------------------------------------------ 3. overrides vs checkpoint
def test_model_option_contradicting_the_checkpoint_is_refused(cifake_root, trained_run, capsys):
    code, err = _run(
        _test_args(cifake_root, "--ckpt", str(trained_run), "--model.init_args.normalize", "none"), capsys
    )
    assert code == 2 and "model.init_args.normalize = 'none'" in err and "'cifar10'" in err
    assert "Traceback" not in err


def test_runtime_model_options_are_honoured(cifake_root, trained_run, capsys):
    code, err = _run(
        _test_args(cifake_root, "--ckpt", str(trained_run), "--model.init_args.channels_last", "false"),
        capsys,
    )
    assert code == 0, err
    # a test of a run's checkpoint logs beside it: runs/demo/version_0/test/ (no new version folder)
    cfg = (trained_run.parents[1] / "test" / "config.yaml").read_text()
    assert "channels_last: false" in cfg


# ------------------------------------------------------------------------------ 4. concurrent runs
def _reserve_many(run_dir: str, n: int, out) -> None:
    from cifake_lightning.tracking.loggers import reserve_version

    out.put([reserve_version(Path(run_dir)) for _ in range(n)])


@pytest.mark.slow
def test_runs_started_together_reserve_distinct_versions(tmp_path):
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_reserve_many, args=(str(tmp_path / "same"), 5, q)) for _ in range(4)]
    for p in procs:
        p.start()
    got = [v for _ in procs for v in q.get(timeout=60)]
    for p in procs:
        p.join(timeout=60)
    assert sorted(got) == list(range(20))  # 20 reservations, no version handed out twice


@pytest.mark.slow
def test_two_fits_with_one_name_at_once_write_separate_folders(cifake_root, tmp_path):
    args = ["fit", "--config", DEMO, "--data.root", str(cifake_root), "--data.val_size", "40", *QUIET]
    args += ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.callbacks", "[]"]
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests'}", "WANDB_MODE": "disabled"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "cifake_lightning", *args, "--name", "same", "--seed_everything", str(s)],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for s in (1, 2)
    ]
    errs = [p.communicate(timeout=600)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errs
    folders = sorted((tmp_path / "runs" / "same").glob("version_*"))
    assert [f.name for f in folders] == ["version_0", "version_1"]
    seeds = sorted(next(iter(f.glob("config.yaml"))).read_text().count("seed_everything: 1") for f in folders)
    assert seeds == [0, 1]  # each folder holds exactly one run's own config
    for f in folders:
        assert (f / "checkpoints" / "last.ckpt").is_file()


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
    code, err = _run(
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
    code, err = _run([*args, "--trainer.max_epochs", "3"], capsys)
    assert code == 0, err
    last = read_checkpoint(tmp_path / "runs" / "e" / "version_0" / "checkpoints" / "last.ckpt")
    assert last["epoch"] == 2  # 0-based index of the 3rd, final epoch
    code, err = _run([*args, "--trainer.max_epochs", "4", "--ckpt_path", "last"], capsys)
    assert code == 0 and "3 epoch(s) done; continuing with epoch 4" in err, err
    assert read_checkpoint(tmp_path / "runs" / "e" / "version_0" / "checkpoints" / "last.ckpt")["epoch"] == 3


# ------------------------------------------------------------------------------ 6. names and links
def test_file_name_that_is_not_utf8_is_named_not_a_traceback(cifake_copy, tmp_path):
    from cifake_lightning.data import CIFAKEDataModule, PredictFolder

    src = cifake_copy / "train" / "REAL" / "0001.jpg"
    os.rename(bytes(src), bytes(cifake_copy / "train" / "REAL") + b"/caf\xe9.jpg")  # Latin-1 name
    dm = CIFAKEDataModule(root=str(cifake_copy), val_size=0, cache_dir=str(tmp_path / "c1"), progress=False)
    with pytest.raises(ImageDecodeError, match="not valid UTF-8") as e:
        dm.setup()
    assert "caf\ufffd.jpg" in str(e.value)
    pf = PredictFolder(root=str(cifake_copy / "train"), cache_dir=str(tmp_path / "c2"), progress=False)
    with pytest.warns(UserWarning, match="not valid UTF-8"):
        pf.setup()
    assert len(pf.decoded("predict")) == 599


def test_symlink_loop_is_a_clear_error(cifake_copy, tmp_path):
    from cifake_lightning.data import ImageFolderOOD

    (cifake_copy / "test" / "REAL" / "loop").symlink_to("..")
    dm = ImageFolderOOD(root=str(cifake_copy / "test"), sources={"REAL": "real"}, cache_dir=str(tmp_path))
    with pytest.raises(DataError, match="symbolic link loop"):
        dm.setup()


def test_symlink_leaving_the_data_root_is_reported(cifake_copy, tmp_path):
    from cifake_lightning.data import ImageFolderOOD

    outside = tmp_path / "elsewhere.jpg"
    shutil.copy(cifake_copy / "test" / "REAL" / "0001.jpg", outside)
    (cifake_copy / "test" / "REAL" / "link.jpg").symlink_to(outside)
    dm = ImageFolderOOD(
        root=str(cifake_copy / "test"), sources={"REAL": "real"}, cache_dir=str(tmp_path / "c")
    )
    with pytest.warns(UserWarning, match="point outside the dataset root"):
        dm.setup()
    assert "REAL/link.jpg" in dm.decoded("test").files


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
    code, err = _run([*args, option, value], capsys)
    assert code == 2 and named in err and "Traceback" not in err, err


def test_test_needs_no_validation_split(cifake_root, trained_run, capsys):
    # the synthetic set has 600 training images, far fewer than the default val_size of 10,000
    code, err = _run(["test", "--ckpt", str(trained_run), "--data.root", str(cifake_root), *QUIET], capsys)
    assert code == 0, err


def test_explain_with_zero_images_is_an_option_error(trained_run, capsys):
    code, err = _run(["explain", "--ckpt", str(trained_run), "--n", "0"], capsys)
    assert code == 2 and "--n" in err and "at least 1" in err


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
    code, err = _run(_test_args(cifake_root, "--ckpt", str(bad)), capsys)
    assert code == 2 and "refused" in err and "this.ImageClassifier" in err
    assert "this" not in sys.modules


# ------------------------------------------------------------------------------ 9. full disks
def test_full_cache_dir_warns_and_continues(cifake_root, tmp_path, monkeypatch):
    import safetensors.torch
    from safetensors import SafetensorError

    from cifake_lightning.data.cache import load_or_build

    def full(*a, **k):
        raise SafetensorError("Error while serializing: IoError(No space left on device)")

    monkeypatch.setattr(safetensors.torch, "save_file", full)
    with pytest.warns(UserWarning, match="could not write cache"):
        split = load_or_build("test", _srcs(cifake_root), cifake_root, tmp_path, progress=False, workers=1)
    assert len(split) == 100 and split.cache_path is None


def test_full_results_dir_on_predict_is_one_line_and_keeps_earlier_results(
    cifake_root, trained_run, monkeypatch, capsys
):
    from cifake_lightning import utils

    earlier = Path("results/demo/version_0/last/predict-0123456789/predictions.csv")
    earlier.parent.mkdir(parents=True)
    earlier.write_text("earlier\n")

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(utils.os, "replace", full)
    args = ["predict", "--ckpt", str(trained_run), "--data", "cifake_lightning.data.PredictFolder"]
    code, err = _run([*args, "--data.root", str(cifake_root / "test"), *QUIET], capsys)
    assert code == 2 and "No space left on device" in err and "Traceback" not in err, err
    assert earlier.read_text() == "earlier\n"


# ------------------------------------------------------------------------------ smaller ones
def test_decode_workers_die_with_a_killed_parent(tmp_path):
    from cifake_lightning.data.synth import write_synthetic_cifake

    root = tmp_path / "d"
    write_synthetic_cifake(
        root, n_train=1100, n_test=10, seed=0
    )  # 2,200 train files: over the parallel threshold
    script = (
        "import sys, time; from pathlib import Path\n"
        "from cifake_lightning.data.cache import Source, load_or_build\n"
        "from cifake_lightning.data import image_io\n"
        "slow = image_io.decode_files\n"
        "def crawl(*a):\n    time.sleep(0.5); return slow(*a)\n"
        "image_io.decode_files = crawl\n"
        "import cifake_lightning.data.decode as c; c.decode_files = crawl\n"
        f"r = Path({str(root)!r})\n"
        "load_or_build('train', [Source('REAL', r/'train'/'REAL', 0), Source('FAKE', r/'train'/'FAKE', 1)], r,"
        f" Path({str(tmp_path / 'cache')!r}), workers=2, progress=False)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    parent = subprocess.Popen([sys.executable, "-c", script], env=env)

    def children() -> list[int]:
        out = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent.pid:
                out.append(int(stat.parent.name))
        return out

    deadline = time.time() + 60
    while len(children()) < 2 and time.time() < deadline:
        time.sleep(0.2)
    workers = children()
    assert len(workers) >= 2, "decode workers did not start"
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.time() + 10
    alive = workers
    while alive and time.time() < deadline:
        time.sleep(0.2)
        alive = [p for p in workers if Path(f"/proc/{p}").exists() and "Z" not in _state(p)]
    assert not alive, f"workers {alive} outlived their killed parent"


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


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


def test_zip_bomb_is_refused_before_writing(tmp_path):
    from cifake_lightning.data.archive import extract_archive

    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("train/REAL/0001.jpg", b"\0" * (20 << 20))  # 20 MB of zeros -> ~20 KB
    with pytest.raises(DataError, match="archive bomb"):
        extract_archive(bomb, tmp_path / "out")
    assert not any((tmp_path / "out").rglob("*.jpg"))


def test_zip_member_larger_than_its_header_is_refused(tmp_path):
    from cifake_lightning.data.archive import extract_archive

    path = tmp_path / "liar.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("a.jpg", b"x" * 1000)
    data = bytearray(path.read_bytes())
    # shrink the declared uncompressed size in the central directory (offset 24 of its entry)
    cd = data.rfind(b"PK\x01\x02")
    data[cd + 24 : cd + 28] = (10).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    with pytest.raises((DataError, zipfile.BadZipFile)):
        extract_archive(path, tmp_path / "out")
    assert not (tmp_path / "out" / "a.jpg").exists() or (tmp_path / "out" / "a.jpg").stat().st_size <= 10
