"""tracking/loggers.py: run folders, versions and W&B runs."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.run import DEMO, QUIET, REPO, cifake

from cifake_lightning.console import main


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


@pytest.mark.slow  # ~14 s (a subprocess fit): the default suite stays under 5 minutes on 2 cores
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
