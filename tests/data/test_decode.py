"""data/decode.py: the decode worker pool."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from helpers.run import REPO


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


# ------------------------------------------------------------------------------ smaller ones
def test_decode_workers_die_with_a_killed_parent(tmp_path):
    from cifake_lightning.data.synth import write_synthetic_cifake

    root = tmp_path / "d"
    write_synthetic_cifake(
        root, n_train=1100, n_test=10, seed=0
    )  # 2,200 train files: over the parallel threshold
    # the workers' slow decode must be importable by them (spawned workers unpickle it by module name):
    # each chunk takes 30 s, so a worker that outlives its killed parent is still there when checked
    (tmp_path / "slow_decode.py").write_text(
        "import time\nfrom cifake_lightning.data.image_io import decode_files\n"
        "def crawl(*a):\n    time.sleep(30)\n    return decode_files(*a)\n"
    )
    script = (
        "from pathlib import Path\n"
        "from cifake_lightning.data.cache import load_or_build\nfrom cifake_lightning.data.split import Source\n"
        "import cifake_lightning.data.decode as c, slow_decode\nc.decode_files = slow_decode.crawl\n"
        f"r = Path({str(root)!r})\n"
        "load_or_build('train', [Source('REAL', r/'train'/'REAL', 0), Source('FAKE', r/'train'/'FAKE', 1)], r,"
        f" Path({str(tmp_path / 'cache')!r}), workers=2, progress=False)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(tmp_path)])}
    parent = subprocess.Popen([sys.executable, "-c", script], env=env)

    def children() -> list[int]:
        out = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent.pid:
                out.append(int(stat.parent.name))
        return out

    deadline = time.time() + 60
    while len(children()) < 2 and time.time() < deadline:
        time.sleep(0.2)
    workers = children()
    assert len(workers) >= 2, "decode workers did not start"
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.time() + 10
    alive = workers
    while alive and time.time() < deadline:
        time.sleep(0.2)
        alive = [p for p in workers if Path(f"/proc/{p}").exists() and "Z" not in _state(p)]
    assert not alive, f"workers {alive} outlived their killed parent"
