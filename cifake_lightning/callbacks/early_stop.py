"""Early stopping that is off unless `patience` is set, so every config can carry the section."""

from __future__ import annotations

from lightning.pytorch.callbacks import EarlyStopping

from ..errors import ConfigError


class EarlyStop(EarlyStopping):
    """EarlyStopping on `monitor` (default val/loss); `patience: null` disables it.

    `strict` defaults to False: a run without a validation set trains to max_epochs with a warning
    instead of failing.
    """

    def __init__(
        self,
        patience: int | None = None,
        monitor: str = "val/loss",
        mode: str = "min",
        min_delta: float = 0.0,
        strict: bool = False,
        verbose: bool = False,
    ) -> None:
        super().__init__(
            monitor=monitor,
            patience=patience if patience is not None else 0,
            mode=mode,
            min_delta=min_delta,
            strict=strict,
            verbose=verbose,
        )
        self.enabled = patience is not None
        if patience is not None and patience < 0:
            raise ConfigError("early_stopping.patience", f"must be >= 0, got {patience}")

    def _run_early_stopping_check(self, trainer) -> None:
        if self.enabled:
            super()._run_early_stopping_check(trainer)
