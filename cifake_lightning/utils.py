"""Small helpers shared across subpackages."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .errors import ConfigError, OutputError


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Write a file via a temporary name + rename, so readers never see a half-written result."""
    path = Path(path)
    if path.exists() and not path.is_file():  # a device or pipe (/dev/stdout, a FIFO): never replace it
        try:
            with open(path, "wb" if isinstance(data, bytes) else "w") as f:
                f.write(data)
        except OSError as e:
            raise OutputError(f"could not be written ({e.strerror or e})", path) from e
        return path
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data)
        os.replace(tmp, path)
    except OSError as e:
        raise OutputError(
            f"could not be written ({e.strerror or e}); the previous version of this file, if any, is kept",
            path,
        ) from e
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def check_output_not_input(out: str | Path, option: str, inputs) -> None:
    """Refuse an output path that is one of the command's input files (the checkpoint, an image): writing
    the result there would destroy what it was computed from. Checked before any work is done; hard
    links and symbolic links to an input count as the input."""
    out = Path(out)
    if not out.exists():
        return
    for given in inputs:
        p = Path(given)
        try:
            same = p.exists() and os.path.samefile(out, p)
        except OSError:
            same = False
        if same:
            raise ConfigError(option, f"{out} is an input of this command ({p}); choose another output file")


def run_dir(trainer) -> Path | None:
    """The run's log folder, without a collective call.

    `Trainer.log_dir` broadcasts from rank zero, so calling it in code that only rank zero runs would
    deadlock a DDP job; the first logger's own `log_dir` is the same folder and needs no communication.
    """
    logger = trainer.loggers[0] if trainer.loggers else None
    folder = getattr(logger, "log_dir", None) if logger is not None else None
    return Path(folder) if folder else None


def write_json(path: str | Path, obj: Any) -> Path:
    return write_atomic(path, json.dumps(obj, indent=2, default=_default) + "\n")


def _default(o):
    try:
        import torch  # the sweep runner imports utils and needs no torch

        if isinstance(o, torch.Tensor):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "item"):
        return o.item()
    return str(o)
