"""configs/experiments: research sweeps and their variant configs."""

from __future__ import annotations

import pytest


@pytest.mark.slow
def test_leave_one_source_out_is_a_sweep_whose_tests_count_the_training_sources_as_seen(
    cifake_root, tmp_path, monkeypatch
):
    """LOSO (configs/experiments/loso.yaml's form) on a synthetic tree with two extra generators: one
    run per left-out source, whose test reports that source as the only unseen one, because the test
    report counts the folders the run trained on (its config.yaml's extra_fakes) as seen."""
    import json
    import shutil

    import yaml
    from helpers.run import QUIET, REPO

    from cifake_lightning.console import main

    root = tmp_path / "data"
    shutil.copytree(cifake_root, root)
    for name, files in (("gen_a", 0), ("gen_b", 1)):
        (root / "ood" / name).mkdir(parents=True)
        for i, src in enumerate(sorted((cifake_root / "test" / "FAKE").iterdir())[files::2][:12]):
            shutil.copy(src, root / "ood" / name / f"{i}.jpg")
    sources = {"test/REAL": "real", "test/FAKE": "fake", "ood/gen_a": "fake", "ood/gen_b": "fake"}
    test_cfg = tmp_path / "test.yaml"
    test_cfg.write_text(yaml.safe_dump({
        "data": {"class_path": "cifake_lightning.data.ImageFolderOOD", "init_args": {"root": str(root), "sources": sources}},
        "report": {"reference_real": "test/REAL", "reference_fake": "test/FAKE"},
    }))  # fmt: skip
    sweep = tmp_path / "loso.yaml"
    spec = yaml.safe_load((REPO / "configs/experiments/loso.yaml").read_text())
    spec["command"] = ["cifake", "fit", "--config", str(REPO / "configs/demo.yaml"), "${args}"]
    spec["parameters"] = {"data.init_args.extra_fakes": {"values": ['["ood/gen_b"]', '["ood/gen_a"]']}}
    sweep.write_text(yaml.safe_dump(spec))
    monkeypatch.chdir(tmp_path)
    main(["sweep", "local", str(sweep), "--test", str(test_cfg), "--", f"--data.init_args.root={root}",
          "--trainer.max_epochs=1", "--trainer.limit_train_batches=2", "--data.init_args.val_size=40",
          f"--data.init_args.cache_dir={tmp_path / 'cache'}", "--trainer.callbacks=[]", *QUIET])  # fmt: skip
    reports = [json.loads(p.read_text()) for p in (tmp_path / "results").rglob("report.json")]
    assert sorted(r["unseen"]["unseen"][0] for r in reports) == ["ood/gen_a", "ood/gen_b"]
    assert all(len(r["unseen"]["unseen"]) == 1 for r in reports)
    seen = sorted(tuple(sorted(r["unseen"]["seen"])) for r in reports)
    assert seen == [("ood/gen_a", "test/FAKE"), ("ood/gen_b", "test/FAKE")]


@pytest.mark.slow
def test_generalist_config_is_what_the_benchmark_measured_and_trains(cifake_root, tmp_path, capsys):
    """configs/generalist.yaml resolves to the experiment's best variant (baseline_fast + the variant
    config aligned_resample_aug, with the sweep's fixed values), and `cifake fit` trains it."""
    import yaml
    from helpers.run import QUIET, REPO, cifake

    from cifake_lightning.console import main

    def resolved(*args):
        with pytest.raises(SystemExit):
            main(["fit", *args, "--print_config"])
        cfg = yaml.safe_load(capsys.readouterr().out)
        for k in ("config", "name"):
            cfg.pop(k, None)
        return cfg

    variant = REPO / "configs/experiments/generalisation/aligned_resample_aug.yaml"
    bench = resolved("--config", str(REPO / "configs/baseline_fast.yaml"), "--config", str(variant),
                     "--trainer.max_epochs", "3", "--data.init_args.root", "data/genset-v2",
                     "--data.init_args.val_size", "10000")  # fmt: skip
    mine = resolved("--config", str(REPO / "configs/generalist.yaml"))
    assert mine == bench
    r = cifake(
        "fit", "--config", str(REPO / "configs/generalist.yaml"), "--data.root", str(cifake_root),
        "--data.val_size", "40", "--data.cache_dir", str(tmp_path / "c"), "--trainer.max_epochs", "1",
        "--trainer.limit_train_batches", "2", *QUIET, cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    assert list((tmp_path / "c").glob("aligned-resample-*.pt"))


def test_every_experiment_variant_is_in_a_sweep_and_exists():
    """Research experiments are sweep files over partial variant configs (issue 25: one runner)."""
    import yaml
    from helpers.run import REPO

    experiments = REPO / "configs" / "experiments"
    for sweeps, folder in (
        (("generalisation.yaml", "generalisation_ae.yaml"), "generalisation"),
        (("framework_differences.yaml",), "framework_differences"),
        (("pubgen_content_rotation.yaml",), "pubgen_content_rotation"),
        (("pubgen_content_synth.yaml",), "pubgen_content_synth"),
    ):
        named = []
        for sweep in sweeps:
            named += yaml.safe_load((experiments / sweep).read_text())["parameters"]["config"]["values"]
        assert all((REPO / v).is_file() for v in named)
        files = sorted(p.relative_to(REPO).as_posix() for p in (experiments / folder).glob("*.yaml"))
        assert sorted(named) == files


@pytest.mark.slow
def test_every_experiment_variant_resolves_over_its_base_config(capsys):
    """Each partial config merges over its experiment's base config into a valid fit config."""
    from helpers.run import REPO

    from cifake_lightning.console import main

    experiments = REPO / "configs" / "experiments"
    variants = [("baseline_fast.yaml", v) for v in sorted((experiments / "generalisation").glob("*.yaml"))]
    variants += [("baseline.yaml", v) for v in sorted((experiments / "framework_differences").glob("*.yaml"))]
    variants += [
        ("real_only_content.yaml", v)
        for folder in ("pubgen_content_rotation", "pubgen_content_scale", "pubgen_content_synth")
        for v in sorted((experiments / folder).glob("*.yaml"))
    ]
    for base, variant in variants:
        with pytest.raises(SystemExit) as e:
            main(
                ["fit", "--config", str(REPO / "configs" / base), "--config", str(variant), "--print_config"]
            )
        assert e.value.code in (0, None), f"{variant.name}: {capsys.readouterr().err[-500:]}"
        capsys.readouterr()


def test_every_experiment_sweep_expands_and_names_configs_that_exist():
    """Each research sweep (configs/experiments/*.yaml) is a valid grid whose --config files exist."""
    from helpers.run import REPO

    from cifake_lightning.sweeps.spec import command_for, grid_runs, load_sweep

    for path in sorted((REPO / "configs" / "experiments").glob("*.yaml")):
        cfg = load_sweep(path)
        runs = grid_runs(cfg)
        assert runs, path.name
        for params in runs:
            command = command_for(cfg, params, cifake=["cifake"])
            assert command[:2] == ["cifake", "fit"], path.name
            named = [a.split("=", 1)[1] for a in command if a.startswith("--config=")]
            named += [command[i + 1] for i, a in enumerate(command) if a == "--config"]
            assert all((REPO / c).is_file() for c in named), (path.name, named)
