"""sweeps/local.LocalSweep bookkeeping for any sweep file: unique run names, a killed sweep takes its
run with it, a run still going is not started twice, --resume only resumes the same sweep (issue 26)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers.run import REPO

from cifake_lightning.errors import ConfigError
from cifake_lightning.sweeps.local import LocalSweep, run_slug

SLEEPER = """
import os, sys, time
from pathlib import Path
Path(sys.argv[1].split("=", 1)[1]).write_text(str(os.getpid()))
time.sleep(float(os.environ.get("SLEEP", "60")))
"""


def _sweep(tmp_path, values=("a", "b")) -> Path:
    (tmp_path / "sleeper.py").write_text(SLEEPER)
    spec = {
        "program": str(tmp_path / "sleeper.py"),
        "method": "grid",
        "command": ["${interpreter}", "${program}", "${args}"],
        "parameters": {"pidfile": {"values": [str(tmp_path / f"{v}.pid") for v in values]}},
    }
    path = tmp_path / "sleepy.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (dead, not yet reaped) counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _start(sweep: Path, tmp_path, *extra, sleep="60"):
    code = ("import sys; from cifake_lightning.commands.sweep_cmd import main; "
            "main(['local', sys.argv[1], '--save-dir', sys.argv[2], *sys.argv[3:]])")  # fmt: skip
    env = {**os.environ, "SLEEP": sleep, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", code, str(sweep), str(tmp_path / "runs"), *extra], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip


def _wait_for(path: Path, seconds=30.0) -> int:
    t0 = time.time()
    while time.time() - t0 < seconds:
        if path.is_file() and path.read_text():
            return int(path.read_text())
        time.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


def test_killed_sweep_takes_its_running_child_with_it(tmp_path):
    sweep = _sweep(tmp_path)
    proc = _start(sweep, tmp_path)
    child = _wait_for(tmp_path / "a.pid")
    assert _alive(child)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    t0 = time.time()
    while _alive(child) and time.time() - t0 < 5:
        time.sleep(0.05)
    assert not _alive(child), "the sweep's run kept going after the sweep was killed"


def test_a_run_still_going_in_another_process_is_not_started_again(tmp_path):
    sweep = _sweep(tmp_path, values=("a",))
    first = _start(sweep, tmp_path)
    child = _wait_for(tmp_path / "a.pid")
    try:
        second = _start(sweep, tmp_path, "--resume", sleep="0")
        out, _ = second.communicate(timeout=60)
        assert second.returncode == 1 and "another process is running it" in out
        assert int((tmp_path / "a.pid").read_text()) == child  # not started twice
    finally:
        first.kill()
        first.wait(10)


def test_resume_of_a_sweep_with_other_arguments_is_refused(tmp_path):
    sweep = _sweep(tmp_path, values=("a",))
    manifest = tmp_path / "runs" / "sleepy" / "manifest.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(
        json.dumps({"config": yaml.safe_load(sweep.read_text()), "extra": ["--x=1"], "runs": []})
    )
    with pytest.raises(ConfigError, match="run arguments then"):
        LocalSweep(sweep, save_dir=str(tmp_path / "runs"), extra=["--x=2"], resume=True).run()
    changed = yaml.safe_load(sweep.read_text())
    changed["parameters"]["pidfile"]["values"].append("elsewhere")
    sweep.write_text(yaml.safe_dump(changed))
    with pytest.raises(ConfigError, match="the sweep file changed"):
        LocalSweep(sweep, save_dir=str(tmp_path / "runs"), extra=["--x=1"], resume=True).run()
    manifest.write_text('{"runs": [')
    with pytest.raises(ConfigError, match="unreadable"):
        LocalSweep(sweep, save_dir=str(tmp_path / "runs"), resume=True).run()


def test_run_names_are_unique_for_any_parameters():
    cases = [
        {"model.lr": 0.1, "data.lr": 0.2},
        {"model.lr": 0.2, "data.lr": 0.1},
        {"data.root": "a/b"},
        {"data.root": "a_b"},
        {"data.root": "x" * 90 + "1"},
        {"data.root": "x" * 90 + "2"},
    ]
    assert len({run_slug(p) for p in cases}) == len(cases)
    assert run_slug({"model.init_args.backbone.init_args.topology": "conv32x2"}) == "conv32x2"  # readable


def test_run_names_leave_out_the_sweeps_fixed_values(tmp_path):
    spec = {
        "program": "cifake",
        "method": "grid",
        "parameters": {"seed_everything": {"values": [0, 1]}, "trainer.max_epochs": {"value": 4}},
    }
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(spec))
    sweep = LocalSweep(path, save_dir=str(tmp_path / "runs"))
    assert [sweep.run_name(p) for p in sweep.plan()] == ["exp-seed_everything=0", "exp-seed_everything=1"]


FAILER = """
import sys
print("training...")
print("cifake: data.val_size: 10000 leaves no training images", file=sys.stderr)
sys.exit(2)
"""


def test_a_sweep_stops_after_repeated_identical_failures(tmp_path, capsys):
    (tmp_path / "failer.py").write_text(FAILER)
    spec = {
        "program": str(tmp_path / "failer.py"),
        "method": "grid",
        "command": ["${interpreter}", "${program}", "${args}"],
        "parameters": {"x": {"values": list(range(8))}},
    }
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(spec))
    sweep = LocalSweep(path, save_dir=str(tmp_path / "runs"))
    records = sweep.run()
    assert len(records) == 3  # not 8
    assert sweep.stopped and "leaves no training images" in sweep.stopped
    assert all(r["error"].endswith("leaves no training images") for r in records)
    assert "sweep stopped: 3 runs in a row failed" in capsys.readouterr().err


def test_config_paths_are_found_beside_or_above_the_sweep_file(tmp_path):
    from cifake_lightning.sweeps.local import resolve_config_paths

    (tmp_path / "repo" / "configs").mkdir(parents=True)
    (tmp_path / "repo" / "configs" / "a.yaml").write_text("{}")
    (tmp_path / "repo" / "wandb_sweeps").mkdir()
    sweep = tmp_path / "repo" / "wandb_sweeps" / "s.yaml"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cmd = [
        "cifake",
        "fit",
        "--config",
        "configs/a.yaml",
        "--config=configs/a.yaml",
        "--config",
        "missing.yaml",
    ]
    found = str(tmp_path / "repo" / "configs" / "a.yaml")
    assert resolve_config_paths(cmd, sweep, elsewhere) == [
        "cifake", "fit", "--config", found, f"--config={found}", "--config", "missing.yaml"
    ]  # fmt: skip
    # from the repository root the agent's own (relative) path is kept
    assert resolve_config_paths(cmd, sweep, tmp_path / "repo")[:4] == cmd[:4]


def test_local_sweep_runs_are_grouped_and_tagged_by_the_sweep(tmp_path):
    """W&B conventions: a local sweep's runs share its name as their group and carry a `sweep:` tag."""
    (tmp_path / "recorder.py").write_text("import sys, json\nprint(json.dumps(sys.argv[1:]))\n")
    spec = {
        "program": str(tmp_path / "recorder.py"),
        "method": "grid",
        "command": ["${interpreter}", "${program}", "${args}"],
        "parameters": {"x": {"values": [1]}},
    }
    path = tmp_path / "tagged.yaml"
    path.write_text(yaml.safe_dump(spec))
    LocalSweep(path, save_dir=str(tmp_path / "runs")).run()
    (log,) = (tmp_path / "runs" / "tagged" / "logs").glob("*.log")
    argv = json.loads(log.read_text().splitlines()[0])
    assert "--tracking.group=tagged" in argv and "--tracking.tags=[sweep:tagged]" in argv


def test_a_grid_runs_tests_score_each_topology_it_exported_and_other_runs_their_best(tmp_path):
    from cifake_lightning.sweeps.local import followed_checkpoints

    def run(name, ckpts, info=None):
        d = tmp_path / name / "version_0"
        (d / "checkpoints").mkdir(parents=True)
        for c in ckpts:
            (d / "checkpoints" / c).write_bytes(b"")
        if info is not None:
            (d / "run_info_fit.json").write_text(json.dumps(info))
        return d / "checkpoints"

    run("g", ["last.ckpt"])  # the GridClassifier run itself
    a = run("g-conv16x1", ["last.ckpt"], {"grid": "g"})
    b = run("g-conv32x2", ["last.ckpt"], {"grid": "g"})
    run("g-other", ["last.ckpt"], {"grid": "g2"})  # exported by another grid whose name starts alike
    single = run("s", ["last.ckpt", "best-epoch01.ckpt"], {})
    assert followed_checkpoints(tmp_path, "g") == [a / "last.ckpt", b / "last.ckpt"]
    assert followed_checkpoints(tmp_path, "s") == [single / "best-epoch01.ckpt"]
    assert followed_checkpoints(tmp_path, "missing") == []


@pytest.mark.slow
def test_the_extractors_sweep_tests_every_topology_of_its_grid(cifake_root, tmp_path, monkeypatch):
    """configs/experiments/extractors.yaml (one GridClassifier run per seed) through the one runner: each
    exported topology run gets its own OOD test, with the validation threshold its checkpoint carries."""
    from helpers.run import QUIET

    from cifake_lightning.console import main

    monkeypatch.chdir(tmp_path)
    spec = yaml.safe_load((REPO / "configs/experiments/extractors.yaml").read_text())
    spec["command"] = [str(REPO / c) if c.endswith(".yaml") else c for c in spec["command"]]
    spec["parameters"]["seed_everything"] = {"value": 0}
    spec["parameters"]["model.init_args.topologies"] = {"value": "[conv16x1, conv32x2]"}
    spec["parameters"]["data.init_args.train_size"] = {"value": 120}
    spec["parameters"]["data.init_args.val_size"] = {"value": 40}
    spec["parameters"]["trainer.max_epochs"] = {"value": 1}
    sweep = tmp_path / "extractors.yaml"
    sweep.write_text(yaml.safe_dump(spec))
    test_cfg = tmp_path / "ood.yaml"
    test_cfg.write_text(yaml.safe_dump({
        "data": {"class_path": "cifake_lightning.data.ImageFolderOOD",
                 "init_args": {"root": str(cifake_root), "sources": {"test/REAL": "real", "test/FAKE": "fake"}}},
        "report": {"reference_real": "test/REAL"},
    }))  # fmt: skip
    main(["sweep", "local", str(sweep), "--test", str(test_cfg), "--", f"--data.init_args.root={cifake_root}",
          f"--data.init_args.cache_dir={tmp_path / 'cache'}", *QUIET])  # fmt: skip
    manifest = json.loads((tmp_path / "runs" / "extractors" / "manifest.json").read_text())
    assert [r["returncode"] for r in manifest["runs"]] == [0]
    reports = {p.parts[-5]: json.loads(p.read_text()) for p in (tmp_path / "results").rglob("report.json")}
    assert sorted(reports) == ["extractors-conv16x1", "extractors-conv32x2"]
    assert all(r["threshold"]["rule"] != "0.5" for r in reports.values())
