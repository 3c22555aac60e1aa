"""explain/callbacks.py: the explanation callback during fit."""

from __future__ import annotations

import logging


def test_explain_callback_does_not_fall_back_to_test_images(cifake_root, caplog):
    from cifake_lightning.data import CIFAKEDataModule
    from cifake_lightning.explain.callbacks import ExplainCallback

    dm = CIFAKEDataModule(root=str(cifake_root), val_size=0, progress=False)
    dm.setup("fit")

    class T:  # the two things the callback reads from a trainer here
        datamodule = dm

    cb = ExplainCallback(split="val")
    with caplog.at_level(logging.WARNING):
        assert cb._probe(T()) is None
    assert cb.every_n_epochs == 0 and "no 'val' split" in caplog.text
    probe = ExplainCallback(split="test")._probe(T())
    assert probe is not None and all(f.startswith("test/") for f in probe.files)
