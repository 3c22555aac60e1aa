"""evaluate/test_report.py: which fake sources a test report counts as seen."""

from __future__ import annotations


def test_sources_a_run_trained_on_are_seen_by_default(tmp_path):
    """evaluate.test_report.trained_sources: test folders that are the run's extra training fakes."""
    from types import SimpleNamespace

    import yaml

    from cifake_lightning.evaluate.test_report import trained_sources

    run = tmp_path / "runs" / "r" / "version_0"
    (run / "checkpoints").mkdir(parents=True)
    config = {"data": {"init_args": {"root": str(tmp_path / "d"), "extra_fakes": ["ood/a"]}}}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    ckpt = run / "checkpoints" / "best.ckpt"
    manifest = SimpleNamespace(
        root=str(tmp_path / "d"), source_names=["test/REAL", "test/FAKE", "ood/a", "ood/b"]
    )
    assert trained_sources(ckpt, manifest, "test/FAKE") == ["test/FAKE", "ood/a"]
    other = SimpleNamespace(root=str(tmp_path / "elsewhere"), source_names=["ood/a"])
    assert trained_sources(ckpt, other, "test/FAKE") is None  # same name, other folder: not trained on
    (run / "config.yaml").write_text(yaml.safe_dump({"data": {"init_args": {"root": "x"}}}))
    assert trained_sources(ckpt, manifest, "test/FAKE") is None
