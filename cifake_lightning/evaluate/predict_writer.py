"""Write `cifake predict` outputs: one CSV row per image (file, source, P(fake), predicted label)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import lightning as L
import torch

from ..utils import write_atomic


class PredictionWriter(L.Callback):
    """Collects predict_step outputs and writes results/<name>/version_N/predictions.csv on rank zero.

    Args:
        results_dir: root of result folders.
        threshold: P(fake) at or above which an image is called fake.
    """

    def __init__(self, results_dir: str = "results", threshold: float = 0.5) -> None:
        self.results_dir, self.threshold = results_dir, threshold
        self._parts: list[dict] = []
        self.path: Path | None = None

    def on_predict_epoch_start(self, trainer, pl_module) -> None:
        import time

        self._parts = []
        self._t0 = time.perf_counter()

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if outputs is not None:
            self._parts.append({k: v.detach().cpu() for k, v in outputs.items()})

    def on_predict_epoch_end(self, trainer, pl_module) -> None:
        if not self._parts:
            return
        out = {k: torch.cat([p[k] for p in self._parts]) for k in self._parts[0]}
        if trainer.world_size > 1:
            from ..models.classifier import _gather_uneven

            out = _gather_uneven(pl_module, out)
        if not trainer.is_global_zero:
            return
        dm = trainer.datamodule
        split = (getattr(dm, "splits", {}) or {}).get("predict") or (getattr(dm, "splits", {}) or {}).get(
            "test"
        )
        order = torch.argsort(out["index"]) if "index" in out else torch.arange(len(out["prob"]))
        index = out["index"][order].tolist() if "index" in out else order.tolist()
        probs = out["prob"][order].tolist()
        files = split.files if split is not None else [str(i) for i in range(max(index, default=-1) + 1)]
        if split is not None and "source" in out:
            sources = [split.source_names[s] for s in out["source"][order].tolist()]
        else:
            sources = [""] * len(index)
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["file", "source", "p_fake", "predicted"])
        w.writerows(
            [files[i], src, f"{p:.6f}", "fake" if p >= self.threshold else "real"]
            for i, src, p in zip(index, sources, probs)
        )
        logger = trainer.loggers[0] if trainer.loggers else None
        sub = Path(str(logger.name)) / f"version_{logger.version}" if logger is not None else Path("predict")
        self.path = write_atomic(Path(self.results_dir) / sub / "predictions.csv", buf.getvalue())
        import time

        n_fake = int((out["prob"] >= self.threshold).sum())
        seconds = time.perf_counter() - self._t0
        print(
            f"predicted {len(order)} images ({n_fake} fake at P>={self.threshold}) in {seconds:.2f}s "
            f"({len(order) / max(seconds, 1e-9):,.0f} images/s, decoding excluded) -> {self.path}"
        )
