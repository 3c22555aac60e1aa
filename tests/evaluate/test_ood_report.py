"""evaluate/ood_report.py: the files a test report writes."""

from __future__ import annotations

import torch


def test_reliability_diagram_uses_the_ece_bins(tmp_path, monkeypatch):
    from cifake_lightning.data.split import SplitManifest
    from cifake_lightning.evaluate import ood_report
    from cifake_lightning.evaluate.table import PredictionTable

    seen = {}

    def spy(*a, bins=None, **k):
        seen["bins"] = bins

    monkeypatch.setattr(ood_report, "reliability_png", spy)
    m = SplitManifest(
        "test", "X", "/", tuple(f"{i}.jpg" for i in range(8)), torch.arange(8) % 2, torch.arange(8) % 2,
        torch.full((8,), -1), ("REAL", "FAKE"), "0" * 32,
    )  # fmt: skip
    ood_report.write_source_report(tmp_path, PredictionTable(torch.arange(8), torch.randn(8), m), ece_bins=12)
    assert seen["bins"] == 12
