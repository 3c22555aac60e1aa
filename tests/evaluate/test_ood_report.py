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


def test_terminal_table_keeps_source_names_whole_when_piped(capsys):
    """Piped to a log (not a terminal), rich's default 80 columns folded names like
    png/real_cifar10_minimal_diffusion over three lines; the table now keeps its natural width."""
    from cifake_lightning.evaluate import ood_report

    name = "png/real_cifar10_minimal_diffusion"
    row = {"source": name, "label": "real", "n": 160, "acc@thr": 0.975, "auroc": 0.5332,
           "tpr@5%fpr": 0.0934, "mean_p_fake": 0.0007}  # fmt: skip
    ood_report._print_table([row, {**row, "source": "all", "label": "real/fake"}])
    out = capsys.readouterr().out
    assert name in out
    assert "0.5332" in out.splitlines()[[i for i, line in enumerate(out.splitlines()) if name in line][0]]
