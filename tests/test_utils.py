"""utils.py: atomic writes that never lose earlier results, and outputs that are pipes or devices."""

from __future__ import annotations

import json
import os

import pytest

from cifake_lightning.errors import OutputError


def test_full_disk_leaves_previous_results_intact(tmp_path, monkeypatch):
    from cifake_lightning import utils

    target = tmp_path / "metrics.json"
    utils.write_json(target, {"acc": 0.9})

    real_replace = os.replace

    def full(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(utils.os, "replace", full)
    with pytest.raises(OutputError, match="No space"):
        utils.write_json(target, {"acc": 0.1})
    monkeypatch.setattr(utils.os, "replace", real_replace)
    assert json.loads(target.read_text()) == {"acc": 0.9} and not list(tmp_path.glob(".*.tmp"))


def test_outputs_to_a_pipe_or_device_are_written_not_replaced(tmp_path):
    import os
    import threading

    from cifake_lightning.utils import write_atomic

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    t = threading.Thread(target=lambda: got.append(fifo.read_text()))
    t.start()
    write_atomic(fifo, "a,b\n1,2\n")
    t.join(10)
    assert got == ["a,b\n1,2\n"] and not fifo.is_file() and fifo.exists()  # still a FIFO
