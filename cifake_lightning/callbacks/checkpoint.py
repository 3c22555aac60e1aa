"""Checkpointing of `cifake fit`: best-by-metric plus last, written so that a crash never truncates one.

Lightning's own ModelCheckpoint decides what a missing metric means: with no validation (`val_size: 0`)
it warns and keeps `last.ckpt` only; a mistyped `monitor` while validation runs stops the run (one line,
exit 2, through the CLI).

Lightning saves through fsspec, which writes into a temporary file elsewhere (often /tmp) and then
*copies* it over the target: a disk that fills during that copy leaves a truncated checkpoint under
the final name. `AtomicCheckpointIO` writes the bytes to a temporary name in the target folder,
fsyncs them, and renames, so the previous file stays intact until the new one is complete; a failed
write stops the run with one line naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from ..errors import OutputError


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. platforms that cannot open folders; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class AtomicCheckpointIO(TorchCheckpointIO):
    """torch.save to `.<name>.<pid>.tmp` beside the target, fsync, rename; errors name the file."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            _fsync_dir(path.parent)
        except (OSError, RuntimeError) as e:  # torch's zip writer reports ENOSPC as a RuntimeError
            first = (str(e).splitlines() or [""])[0][:200]
            raise OutputError(
                f"checkpoint could not be written ({type(e).__name__}: {first}); the previous checkpoint "
                "of this name, if any, is intact (full disk?)",
                path,
            ) from e
        finally:
            if tmp.exists():
                tmp.unlink()


class BestCheckpoint(ModelCheckpoint):
    """Best-by-`monitor` plus last checkpoint, in ``<run>/version_N/checkpoints``, written atomically.

    `last.ckpt` is written at the end of every epoch (after validation), so it always holds the newest
    completed epoch; its ``epoch`` key is Lightning's 0-based index of that epoch.
    """

    def __init__(
        self,
        monitor: str | None = "val/loss",
        mode: str = "min",
        save_last: bool = True,
        save_top_k: int = 1,
        filename: str = "best-epoch{epoch:02d}",
        every_n_epochs: int | None = None,
        every_n_train_steps: int | None = None,
        dirpath: str | None = None,
    ) -> None:
        super().__init__(
            dirpath=dirpath,
            monitor=monitor,
            mode=mode,
            save_last=save_last,
            save_top_k=save_top_k,
            filename=filename,
            auto_insert_metric_name=False,
            every_n_epochs=every_n_epochs,
            every_n_train_steps=every_n_train_steps,
        )

    def setup(self, trainer, pl_module, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:  # keep any IO plugin the user chose
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
