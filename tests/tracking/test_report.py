"""W&B sweep files (validated by W&B's own engine), the local sweep runner, and the comparison report."""

import json
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import yaml
from helpers.run import QUIET, REPO

from cifake_lightning.cli import CifakeCLI
from cifake_lightning.models import create_model, paper_topologies
from cifake_lightning.sweeps.spec import command_for, grid_runs, load_sweep, propose, violations

SWEEPS = sorted((REPO / "wandb_sweeps").glob("*.yaml"))
warnings.filterwarnings("ignore", message=".*allow_population_by_field_name.*")


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.name)
def test_sweep_files_pass_wandb_validation(path):
    assert violations(load_sweep(path)) == []


def _parse_fit(args: list[str]):
    """Parse (and instantiate) a `cifake fit` argv the way the agent would run it, without fitting."""
    assert args[0] == "fit"
    cli = CifakeCLI(args=args[1:] + ["--trainer.logger", "false", "--data.root", "/nonexistent"], run=False)
    return cli


@pytest.mark.slow
def test_topology_grid_expands_to_the_papers_36_runs_and_each_parses(monkeypatch, tmp_path):
    monkeypatch.chdir(REPO)
    cfg = load_sweep(REPO / "wandb_sweeps" / "topology_grid.yaml")
    runs = grid_runs(cfg)
    topologies = [r["model.init_args.backbone.init_args.topology"] for r in runs]
    assert sorted(topologies) == sorted(paper_topologies()) and len(runs) == 36
    for params in runs:
        argv = command_for(cfg, params, ["cifake"])
        assert argv[:2] == ["cifake", "fit"]
        cli = _parse_fit(argv[1:])
        assert cli.model.backbone.name == params["model.init_args.backbone.init_args.topology"]


def test_bayes_sweep_proposals_parse(monkeypatch):
    monkeypatch.chdir(REPO)
    cfg = load_sweep(REPO / "wandb_sweeps" / "dualstream_bayes.yaml")
    first = propose(cfg, [], n=2)
    later = propose(cfg, [(first[0], 0.9), (first[1], 0.8)], n=1)
    for params in first + later:
        argv = command_for(cfg, params, ["cifake"])
        cli = _parse_fit(argv[1:])
        opt = cli.model.optimizer_factory(cli.model.parameters())
        assert opt.defaults["lr"] == pytest.approx(params["model.init_args.optimizer.init_args.lr"])
        assert cli.datamodule.batch_size == params["data.init_args.batch_size"]


@pytest.mark.slow  # ~20 s: the default suite stays under 5 minutes on 2 cores
def test_local_sweep_then_report(cifake_root, tmp_path, monkeypatch, capsys):
    """Run from a folder other than the project's: `--config configs/demo.yaml` in the sweep file is
    found above the sweep file (issue 27), and the sweep's runs live under runs/<sweep>/."""
    from cifake_lightning.console import main

    shutil.copytree(REPO / "configs", tmp_path / "project" / "configs")
    (tmp_path / "project" / "sweeps").mkdir()
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    sweep = tmp_path / "project" / "sweeps" / "mini_grid.yaml"
    sweep.write_text(
        yaml.safe_dump(
            {
                "program": "cifake",
                "method": "grid",
                "metric": {"name": "val/acc", "goal": "maximize"},
                "parameters": {
                    "model.init_args.backbone.init_args.topology": {"values": ["conv16x1", "conv32x2"]}
                },
                "command": ["${env}", "cifake", "fit", "--config", "configs/demo.yaml", "${args}"],
            }
        )
    )
    extra = [
        "--",
        f"--data.root={cifake_root}",
        "--data.val_size=60",
        "--trainer.max_epochs=2",
        "--trainer.limit_train_batches=4",
        "--trainer.enable_progress_bar=false",
        "--data.progress=false",
        "--trainer.callbacks=[]",
        "--tracking.wandb=false",
    ]
    main(["sweep", "local", str(sweep), "--workers", "2", *extra])
    out = capsys.readouterr().out
    manifest_path = tmp_path / "work" / "runs" / "mini_grid" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    assert sorted(r["name"] for r in manifest["runs"]) == ["mini_grid-conv16x1", "mini_grid-conv32x2"]
    assert all(r["returncode"] == 0 and r["metric"] is not None for r in manifest["runs"])
    best = max(manifest["runs"], key=lambda r: r["metric"])
    table = out[out.index("best runs by val/acc (maximize)") :]
    assert table.index(best["name"]) < table.index(min(manifest["runs"], key=lambda r: r["metric"])["name"])
    main(["sweep", "local", str(sweep), "--resume", *extra])  # nothing left to run
    assert len(json.loads(manifest_path.read_text())["runs"]) == 2
    tmp_path = tmp_path / "work"

    main(["report", "runs/mini_grid", "--out", "report"])
    page = (tmp_path / "report" / "index.html").read_text()
    assert page.count("<tr data-run=") == 2 and "conv16x1" in page and "data:image/png;base64," in page
    assert "<th" in page and "hp.lr" in page and "<polyline" in page  # hyper-parameters, interactive curves
    rows = json.loads((tmp_path / "report" / "runs.json").read_text())
    assert {r["topology"] for r in rows} == {"conv16x1", "conv32x2"} and all(r["params"] for r in rows)
    assert (tmp_path / "report" / "extractors_vs_paper.png").is_file()
    _check_in_browser(tmp_path / "report" / "index.html", tmp_path)


def _check_in_browser(page: Path, tmp_path: Path) -> None:
    """Render the page in headless Chromium: the table must be in the DOM after scripts ran."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if chromium is None:
        pytest.skip("no headless Chromium installed (apt-get install chromium) to render the report")
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--no-first-run",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chrome'}",
    ]
    dom = subprocess.run(
        [chromium, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120
    )
    assert dom.returncode == 0 and 'id="runs"' in dom.stdout and dom.stdout.count("<tr data-run=") == 2
    assert 'data-ready="1"' in dom.stdout  # every script ran to its end without an error
    assert dom.stdout.count("<th ") >= 6  # the header row is there (column names, sortable)
    assert "2 of 2 runs shown" in dom.stdout and dom.stdout.count("<polyline") >= 2
    # a filter given in the URL hides the other run from the table and the curves
    filtered = subprocess.run(
        [chromium, *flags, "--dump-dom", page.as_uri() + "#text=conv16x1"], capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert "1 of 2 runs shown" in filtered.stdout
    assert filtered.stdout.count('style="display: none;"') >= 2  # one table row + its curve(s)
    # ... and its legend entries (no legend entry for a curve that is not drawn)
    assert re.search(r'<span class="legend-item"[^>]*style="display: none;"', filtered.stdout)
    shot = tmp_path / "shot.png"
    subprocess.run(
        [chromium, *flags, f"--screenshot={shot}", "--window-size=1400,1800", page.as_uri()],
        capture_output=True,
        timeout=120,
    )
    assert shot.is_file() and shot.stat().st_size > 10_000


def test_report_without_runs_is_a_clear_error(tmp_path, capsys):
    r = subprocess.run(
        [sys.executable, "-m", "cifake_lightning", "report", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**__import__("os").environ, "PYTHONPATH": str(REPO)},
    )
    assert r.returncode == 2 and "no finished runs" in r.stderr


def test_wandb_report_definition_builds_offline():
    from cifake_lightning.tracking.wandb_report import wandb_report

    report = wandb_report("cifake-lightning", "me", "grid")
    assert report.title == "grid" and len(report.blocks) == 4


def test_every_topology_in_the_grid_is_buildable():
    for name in paper_topologies():
        assert create_model(name).name == name


def test_report_page_shows_each_runs_ood_numbers(tmp_path):
    """The OOD test's unseen mean/worst AUROC, detected share and every real source's FPR are columns
    of the comparison table (issue 27); columns no run fills are left out."""
    from cifake_lightning.tracking.dashboard import write_dashboard
    from cifake_lightning.tracking.runs import collect_local

    run = tmp_path / "runs" / "sw" / "sw-seed=0" / "version_0"
    (run / "checkpoints").mkdir(parents=True)
    (run / "metrics.csv").write_text("epoch,step,val/acc,val/loss\n0,1,0.7,0.6\n")
    (run / "config.yaml").write_text(yaml.safe_dump({"data": {"init_args": {"root": str(tmp_path)}}}))
    out = tmp_path / "results" / "t0"
    out.mkdir(parents=True)
    data = {"data": "ImageFolderOOD", "split": "test", "root": "/x/pubgen-dev", "sources": ["png/a", "png/b"]}
    (out / "metrics.json").write_text(
        json.dumps({"ckpt_path": str(run / "checkpoints" / "best.ckpt"), "metrics": {}, "data": data})
    )
    unseen = {
        "unseen": ["png/b"],
        "mean": {"auroc_vs_test_real": 0.61, "detected@thr": 0.125},
        "worst": {"auroc_vs_test_real": 0.42},
        "real_fpr": [{"source": "png/a", "fpr@thr": 0.05}],
        "by_kind": [{"kind": "diffusion", "mean_auroc": 0.57}],
    }
    sources = [
        {"source": "png/a", "label": "real", "auroc": 0.5},
        {"source": "png/b", "label": "fake", "auroc": 0.42},
    ]
    (out / "report.json").write_text(json.dumps({"unseen": unseen, "sources": sources}))
    (rec,) = collect_local([tmp_path / "runs"], tmp_path / "results")
    row = rec.row()
    assert row["pubgen-dev/png: AUROC png/b"] == 0.42 and "pubgen-dev/png: AUROC png/a" not in row
    assert row["pubgen-dev/png: unseen mean AUROC"] == 0.61
    assert row["pubgen-dev/png: unseen worst AUROC"] == 0.42
    assert row["pubgen-dev/png: FPR@thr png/a"] == 0.05
    assert row["pubgen-dev/png: diffusion AUROC"] == 0.57  # summaries by generator kind
    write_dashboard([rec], tmp_path / "report")
    page = (tmp_path / "report" / "index.html").read_text().replace("<wbr>", "")  # header names may wrap
    assert ">pubgen-dev/png: unseen mean AUROC<" in page and ">0.6100<" in page and ">12.5%<" in page
    assert ">test_acc<" not in page  # nobody measured it
    assert "AUROC png/b" not in page  # per-source AUROCs: runs.json and `cifake report --columns` only


def test_runs_trained_on_different_data_get_their_own_learning_curves(tmp_path):
    """Facets: one chart per training set, so runs on different data never share an accuracy axis."""
    from cifake_lightning.tracking.dashboard import write_dashboard
    from cifake_lightning.tracking.runs import collect_local

    for name, data in (("a", "genset-v2"), ("b", "cifake")):
        run = tmp_path / "runs" / name / "version_0"
        (run / "checkpoints").mkdir(parents=True)
        (run / "metrics.csv").write_text("epoch,step,val/acc,val/loss\n0,1,0.7,0.6\n1,2,0.8,0.5\n")
        config = {"data": {"class_path": "x.CIFAKEDataModule", "init_args": {"root": str(tmp_path / data)}}}
        (run / "config.yaml").write_text(yaml.safe_dump(config))
    records = collect_local([tmp_path / "runs"], tmp_path / "results")
    assert len({r.train_data for r in records}) == 2
    write_dashboard(records, tmp_path / "report")
    page = (tmp_path / "report" / "index.html").read_text()
    acc = page.split('data-metric="val/acc"')[1].split('data-metric="val/loss"')[0]
    assert acc.count("<svg") == 2 and "trained on" in acc and "genset-v2" in acc and "cifake" in acc


def test_runs_that_differ_only_in_seed_are_summarised_as_mean_and_sd(tmp_path):
    """repeats.md: one row per variant, mean ± sd over its seeds (a README comparison's form)."""
    from cifake_lightning.tracking.dashboard import write_dashboard
    from cifake_lightning.tracking.runs import collect_local

    accs = {("lr=0.001", 0, 0): 0.70, ("lr=0.001", 1, 0): 0.80, ("lr=0.01", 0, 0): 0.60}
    accs |= {("x", 0, 0): 0.5, ("x", 0, 1): 0.9}  # two versions of one name, same seed: not repeats
    for (variant, seed, version), acc in accs.items():
        name = f"sw-{variant}-seed_everything={seed}" if variant != "x" else "demo"
        lr = float(variant.split("=")[1]) if "=" in variant else 0.1 * (1 + version)
        run = tmp_path / "runs" / "sw" / name / f"version_{version}"
        (run / "checkpoints").mkdir(parents=True)
        (run / "metrics.csv").write_text(f"epoch,step,val/acc,val/loss\n0,1,{acc},0.5\n")
        config = {"seed_everything": seed, "name": run.parent.name, "model": {"init_args": {"lr": lr}}}
        (run / "config.yaml").write_text(yaml.safe_dump(config))
    runs = collect_local([tmp_path / "runs"], tmp_path / "results")
    paths = write_dashboard(runs, tmp_path / "report")
    table = paths["repeats"].read_text()
    assert "| sw-lr=0.001 | 2 | 0,1 | 0.750 ± 0.071 |" in table
    assert "| sw-lr=0.01 | 1 | 0 | 0.600 |" in table
    assert table.count("| demo (") == 2  # told apart by their configs
    chosen = write_dashboard(runs, tmp_path / "r2", repeat_columns=["val_*oss", "val_acc"])["repeats"]
    assert (
        chosen.read_text().splitlines()[0] == "| variant | n | seeds | val_loss | val_acc |"
    )  # in the order asked
    assert 'id="repeats"' in (tmp_path / "report" / "index.html").read_text()


@pytest.mark.slow
def test_a_research_sweep_tests_every_run_and_reports_mean_and_sd(cifake_root, tmp_path, monkeypatch, capsys):
    """One runner for research (issue 25): `sweep local --test CONFIG --explain CONFIG` tests and explains
    each run's best checkpoint, and `cifake report` of the sweep summarises the OOD numbers and the
    explanation statistics over seeds (repeats.md)."""
    from cifake_lightning.console import main

    monkeypatch.chdir(tmp_path)
    test_cfg = tmp_path / "ood.yaml"
    test_cfg.write_text(
        yaml.safe_dump(
            {
                "data": {
                    "class_path": "cifake_lightning.data.ImageFolderOOD",
                    "init_args": {
                        "root": str(cifake_root),
                        "sources": {"test/REAL": "real", "test/FAKE": "fake"},
                    },
                },
                "report": {"reference_real": "test/REAL"},
            }
        )
    )
    sweep = tmp_path / "seeds.yaml"
    sweep.write_text(
        yaml.safe_dump(
            {
                "program": "cifake",
                "method": "grid",
                "metric": {"name": "val/loss", "goal": "minimize"},
                "parameters": {"seed_everything": {"values": [0, 1]}},
                "command": ["cifake", "fit", "--config", str(REPO / "configs" / "demo.yaml"), "${args}"],
            }
        )
    )
    extra = [f"--data.root={cifake_root}", "--data.val_size=60", "--trainer.max_epochs=1",
             "--trainer.limit_train_batches=3", *QUIET, "--trainer.callbacks=[]"]  # fmt: skip
    explain_cfg = tmp_path / "explain.yaml"
    explain_cfg.write_text(
        yaml.safe_dump({"n": 8, "explain": {"methods": ["integrated_gradients"], "ig_steps": 4}})
    )
    main(["sweep", "local", str(sweep), "--workers", "2", "--test", str(test_cfg),
          "--explain", str(explain_cfg), "--", *extra])  # fmt: skip
    manifest = json.loads((tmp_path / "runs" / "seeds" / "manifest.json").read_text())
    assert all(r["returncode"] == 0 and r["tests"] == [str(test_cfg)] for r in manifest["runs"])
    assert all(r["explains"] == [str(explain_cfg)] for r in manifest["runs"])
    assert len(list((tmp_path / "results").rglob("report.json"))) == 2  # one OOD test per run
    for r in manifest["runs"]:  # each test is logged beside the run it tests, not as a run of its own
        assert (tmp_path / "runs" / "seeds" / r["name"] / "version_0" / "test" / "metrics.csv").is_file()
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["seeds"]
    assert len(list((tmp_path / "results" / "explain").rglob("summary.json"))) == 2  # one explanation per run
    main(["report", "runs/seeds", "--out", "report"])
    repeats = (tmp_path / "report" / "repeats.md").read_text()
    assert "| seeds | 2 | 0,1 |" in repeats and "unseen mean AUROC" in repeats
    row = repeats.splitlines()[2]
    assert row.count(" ± ") >= 3  # validation and OOD columns as mean ± sd over the two seeds
    main(["report", "runs/seeds", "--out", "report2", "--columns", "explain: * integrated_gradients/entropy"])
    head, _, row = (tmp_path / "report2" / "repeats.md").read_text().splitlines()[:3]
    assert (
        "explain: real integrated_gradients/entropy" in head
        and "explain: fake integrated_gradients/entropy" in head
    )
    assert "explain: fake - real integrated_gradients/entropy" in head
    # real, fake, all, fake - real and each real class: mean ± sd of the two runs' explanations
    assert row.count(" ± ") == head.count("explain: ")


def test_repeat_cells_show_a_shared_count_as_itself_and_metrics_as_mean_and_sd():
    from cifake_lightning.tracking.dashboard import _mean_sd

    assert _mean_sd([84001, 84001, 84001], "params") == "84001"
    assert _mean_sd([1.0, 1.0], "AUROC test/FAKE") == "1.000 ± 0.000"  # a metric stays a metric
    assert _mean_sd([3, 4], "epochs") == "3.500 ± 0.707"
    # a run without the value (not tested yet, or still training) is not hidden in the mean
    assert _mean_sd([0.1, 0.2, None], "FPR@thr ood/real_photos") == "15.0% ± 7.1 (2 of 3)"
    assert _mean_sd([0.747, None], "genset-v2: unseen mean AUROC") == "0.747 (1 of 2)"
    assert _mean_sd([0.5, 0.6], "val_acc") == "0.550 ± 0.071"
    assert _mean_sd([1486.3, 1333.7], "fit_s") == "1410 ± 108"


def test_a_variant_with_no_value_in_any_repeat_column_is_left_out():
    """A grid run's own row has none of its exported topologies' columns: no row of empty cells."""
    from cifake_lightning.tracking.dashboard import repeats_table
    from cifake_lightning.tracking.runs import RunRecord

    def run(name, seed, acc):
        best = {} if acc is None else {"val/acc": acc}
        return RunRecord(name, name, "BirdLotfiCNN", "", 1000, 3, 1.0, best=best, hparams={"seed": seed})

    groups = [("grid", [run("grid", 0, None), run("grid", 1, None)]), ("conv", [run("conv", 0, 0.9)])]
    head, body = repeats_table(groups, ["val_acc"])
    assert [row[0] for row in body] == ["conv"] and body[0][3] == "0.900"
    assert len(repeats_table(groups, [])[1]) == 2  # no columns asked: every variant keeps its n and seeds


def test_curve_axis_ticks_of_a_narrow_range_are_told_apart():
    from cifake_lightning.tracking.dashboard import tick_labels

    assert tick_labels([0.998, 0.9985, 0.999, 0.9995, 1.0]) == ["0.998", "0.9985", "0.999", "0.9995", "1"]
    assert tick_labels([0.0, 0.25, 0.5]) == ["0", "0.25", "0.5"]


def test_parameter_axis_ticks_of_variants_of_one_size_are_told_apart():
    """accuracy_vs_params: variants of one model (289,194 and 289,195 parameters: one more for a learned
    margin) got a log axis whose tick labels all read 2.89194e5, on top of each other; they now get
    plain whole-number ticks, and sizes that span a factor keep the log axis."""
    import matplotlib.pyplot as plt

    from cifake_lightning.tracking.figures import params_axis

    fig, ax = plt.subplots()
    ax.scatter([289_194, 289_195], [50, 60])
    params_axis(ax, [289_194, 289_195])
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert ax.get_xscale() == "linear" and "289,194" in labels and "289,195" in labels
    assert len(labels) == len(set(labels))
    fig2, ax2 = plt.subplots()
    params_axis(ax2, [10_000, 2_000_000])
    assert ax2.get_xscale() == "log"
    plt.close(fig)
    plt.close(fig2)
