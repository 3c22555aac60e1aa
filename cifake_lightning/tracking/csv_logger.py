"""CSVLogger that keeps what a run already wrote when it is resumed.

Lightning's CSVLogger deletes an existing metrics.csv in its folder. When `cifake fit --ckpt_path last`
resumes a run in its own folder, that would erase the epochs before the interruption. This logger
keeps those rows (up to the epoch the checkpoint completed; rows of the interrupted epoch are dropped,
since that epoch is trained again) and appends after them.
"""

from __future__ import annotations

import csv
import io

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from ..utils import write_atomic


class _KeepingWriter(ExperimentWriter):
    def __init__(self, log_dir: str, keep_until_epoch: int | None) -> None:
        self._keep_until_epoch = keep_until_epoch
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        if not self._fs.isfile(self.metrics_file_path):
            return
        with open(self.metrics_file_path, newline="") as f:
            reader = csv.DictReader(f)
            header = list(reader.fieldnames or [])
            rows = list(reader)
        if self._keep_until_epoch is not None:
            rows = [
                r
                for r in rows
                if r.get("epoch") not in (None, "") and int(float(r["epoch"])) <= self._keep_until_epoch
            ]
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=header)
        w.writeheader()
        w.writerows(rows)
        write_atomic(self.metrics_file_path, buf.getvalue())
        self.metrics_keys = header


class ResumableCSVLogger(CSVLogger):
    """CSVLogger(save_dir, name, version) that appends to an existing metrics.csv instead of deleting it.

    Args:
        keep_until_epoch: when resuming, the last completed epoch of the checkpoint; later rows are dropped.
    """

    def __init__(self, *args, keep_until_epoch: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._keep_until_epoch = keep_until_epoch

    @property
    def experiment(self):
        if self._experiment is not None:
            return self._experiment
        self._fs.makedirs(self.root_dir, exist_ok=True)
        self._experiment = _KeepingWriter(self.log_dir, self._keep_until_epoch)
        return self._experiment
