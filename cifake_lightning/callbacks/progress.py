"""The progress bar of `cifake fit`: Lightning's, without `v_num`."""

from __future__ import annotations

from lightning.pytorch.callbacks import TQDMProgressBar


class ProgressBar(TQDMProgressBar):
    """Lightning's TQDM bar without `v_num`: with W&B logging that is the W&B run id (e.g. `e791`), while
    the run's folder is version_N (the fit banner prints the folder)."""

    def get_metrics(self, trainer, pl_module) -> dict:
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        return items
