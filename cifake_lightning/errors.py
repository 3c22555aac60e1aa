"""The project's own exception types.

Every error a user can cause (a bad image, a wrong folder layout, an unusable checkpoint, an offline
download) is raised as one of these, carrying the file or option at fault, so the CLI can print one
clear line instead of a stack trace from deep inside PIL, torch or kagglehub.
"""

from __future__ import annotations

from pathlib import Path
from typing import get_args


class CifakeError(Exception):
    """Base class: anything the user can fix by changing a file, a path or an option."""


class DataError(CifakeError):
    """A dataset on disk is unusable (missing folder, empty class, wrong layout)."""

    def __init__(self, message: str, path: str | Path | None = None):
        self.path = Path(path) if path is not None else None
        super().__init__(f"{path}: {message}" if path is not None else message)


class ImageDecodeError(DataError):
    """One image file cannot be turned into a 3x32x32 uint8 tensor."""


class DownloadError(CifakeError):
    """A dataset could not be downloaded (offline, no credentials, source gone)."""


class CheckpointError(CifakeError):
    """A checkpoint is missing, unreadable, unsafe or not a cifake-lightning classifier."""

    def __init__(self, message: str, path: str | Path):
        self.path = Path(path)
        super().__init__(f"{path}: {message}")


class OutputError(CifakeError):
    """A result, cache or checkpoint file could not be written (full disk, permissions)."""

    def __init__(self, message: str, path: str | Path):
        self.path = Path(path)
        super().__init__(f"{path}: {message}")


class ConfigError(CifakeError, ValueError):
    """An option has a value that passes type checks but makes no sense (names the option).

    Also a ValueError, so Python callers that catch ValueError from a constructor keep working; the CLI
    prints it as one line, while any other ValueError/TypeError is a bug and keeps its traceback.
    """

    def __init__(self, option: str, message: str):
        self.option, self.message = option, message
        super().__init__(f"option {option}: {message}")


class NonFiniteError(CifakeError):
    """A loss, logit or stored score is NaN or infinite: the model diverged or the checkpoint is broken.

    Raised before anything is computed from such numbers (a metric of NaN scores is meaningless:
    torchmetrics' AUROC of all-NaN scores is 1.0 or 0.0 depending on row order)."""


def check_choice(option: str, value, choices) -> None:
    """Raise ConfigError(option) unless `value` is one of `choices` (a Literal type or a collection):
    the one check behind each string option, for Python callers (jsonargparse checks a Literal itself)."""
    allowed = tuple(get_args(choices)) or tuple(choices)
    if value not in allowed:
        raise ConfigError(option, f"expected one of {', '.join(map(str, allowed))}, got {value!r}")
