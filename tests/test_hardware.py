"""hardware.py: the precision chosen when none is given."""

from __future__ import annotations


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
