"""Shared machinery of every data module: decode-once cache -> in-memory uint8 -> device batches.

Subclasses only say which folders make up which split (`_sources`) and how file names map to
content classes; this base class builds or loads the caches (`prepare_data` on one process, `setup`
on every rank), carves validation out of training, hands out `TensorBatchLoader`s sharded for the
current rank, and turns uint8 batches into float [0, 1] images on the model's device, augmenting
training batches there. Normalisation is the model's job (see ImageClassifier), so every consumer
(training, explanations, OOD tests) sees the same [0, 1] pixel space.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import lightning as L
import torch
from jsonargparse.typing import PositiveInt

from ..errors import check_choice
from .augment import AugmentConfig, blur_reals, build_augmentation
from .cache import default_cache_dir, load_or_build
from .loader import TensorBatchLoader
from .split import ON_BAD_FILE, DecodedSplit, Source, SplitManifest

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test", "predict")


class CachedImageDataModule(L.LightningDataModule):
    """Base class; see module docstring.

    Args:
        batch_size: training batch size per process.
        eval_batch_size: batch size for validation/test/predict (default 128). Bigger is not faster on
            a CPU: for the small CNNs 128 runs 2.5x faster than 2048, whose activations no longer fit
            in cache (benchmarks/results/predict_speed.md). Not measured on a GPU, where larger may pay.
        augment: training augmentations (run batched on the model's device).
        cache_dir: where decoded caches live (default: $CIFAKE_CACHE or the user cache dir).
        on_bad_file: "error" stops at the first unreadable image and names it; "skip" skips and counts;
            null (default): the module's own choice, `default_on_bad_file` ("error" for CIFAKE and
            curated sets, "skip" for folders to score and web-scraped sets).
        seed: seeds the train/val split and the per-epoch shuffling.
        device_resident: keep the whole uint8 dataset on the GPU ("auto": when training on CUDA and
            it takes under a quarter of the GPU's memory).
        decode_workers: processes used to decode images the first time (default: all CPUs).
        progress: show a progress bar while decoding.
    """

    image_size = 32
    resize: str | None = None
    default_on_bad_file: str = "error"

    def __init__(
        self,
        batch_size: PositiveInt = 256,
        eval_batch_size: PositiveInt | None = None,
        augment: AugmentConfig | None = None,
        cache_dir: str | None = None,
        on_bad_file: Literal["error", "skip"] | None = None,
        seed: int = 0,
        device_resident: bool | Literal["auto"] = "auto",
        decode_workers: PositiveInt | None = None,
        progress: bool = True,
    ) -> None:
        super().__init__()
        on_bad_file = on_bad_file or self.default_on_bad_file
        check_choice("data.on_bad_file", on_bad_file, ON_BAD_FILE)
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or 128
        self.augment_config = augment if augment is not None else AugmentConfig()
        self.cache_dir = cache_dir
        self.on_bad_file = on_bad_file
        self.seed = seed
        self.device_resident = device_resident
        self.decode_workers = decode_workers
        self.progress = progress
        self.augmentation = build_augmentation(self.augment_config, self.image_size)
        self._splits: dict[str, DecodedSplit] = {}  # private: consumers use manifest()/images()
        self._stage: str | None = None  # the stage setup() was called for ("fit", "test", ...)
        self._device_copies: dict[tuple[str, str], dict[str, torch.Tensor]] = {}

    # ------------------------------------------------------------------ subclass interface
    def _sources(self) -> dict[str, list[Source]]:
        """Folders making up each stored split, e.g. {"train": [...], "test": [...]}."""
        raise NotImplementedError

    def _root(self) -> Path:
        raise NotImplementedError

    def _carve(self, decoded: dict[str, DecodedSplit]) -> dict[str, DecodedSplit]:
        """Turn stored splits into train/val/test/predict (default: as stored)."""
        return decoded

    class_parser: Callable[[str], int] | None = None

    # ------------------------------------------------------------------ cache
    def _cache_dir(self) -> Path:
        return Path(self.cache_dir).expanduser() if self.cache_dir else default_cache_dir(self._root())

    def _decode(self, names=None) -> dict[str, DecodedSplit]:
        out = {}
        for name, sources in self._sources().items():
            if names is not None and name not in names:
                continue
            out[name] = load_or_build(
                name,
                sources,
                self._root(),
                self._cache_dir(),
                size=self.image_size,
                resize=self.resize,
                on_bad_file=self.on_bad_file,
                class_parser=self.class_parser,
                workers=self.decode_workers,
                progress=self.progress,
            )
        return out

    def prepare_data(self) -> None:
        """Build missing caches once (Lightning calls this on one process per node)."""
        self._prepared = self._decode()  # kept for this process's setup: no second scan of the folders

    def setup(self, stage: str | None = None) -> None:
        if self._splits:
            return
        decoded = self.__dict__.pop("_prepared", None) or self._decode()
        for name, split in decoded.items():
            if split.skipped:
                shown = "; ".join(f"{x['file']}: {x['reason']}" for x in split.skipped[:3])
                more = f"; and {len(split.skipped) - 3} more" if len(split.skipped) > 3 else ""
                warnings.warn(
                    f"{name}: {len(split.skipped)} file(s) were skipped as unreadable ({shown}{more})",
                    stacklevel=2,
                )
        self._stage = stage
        self._splits = self._carve(decoded)

    # ------------------------------------------------------------------ loaders
    def _rank_world(self) -> tuple[int, int]:
        trainer = self.trainer
        if trainer is None:
            return 0, 1
        return trainer.global_rank, trainer.world_size

    def _device(self) -> torch.device:
        trainer = self.trainer
        if trainer is None:
            return torch.device("cpu")
        return trainer.strategy.root_device

    def _tensors(self, split: str, keys: tuple[str, ...]) -> dict[str, torch.Tensor]:
        if split not in self._splits:
            self.setup()
        if split not in self._splits:
            raise RuntimeError(f"{type(self).__name__} has no {split} split")
        d = self._splits[split]
        tensors = {
            "image": d.images,
            "label": d.labels,
            "source": d.source,
            "content_class": d.content_class,
            "index": torch.arange(len(d)),
        }
        tensors = {k: tensors[k] for k in keys}
        device = self._device()
        if device.type == "cuda" and self._want_resident(d, device):
            key = (split, str(device))
            if key not in self._device_copies:
                self._device_copies[key] = {k: v.to(device, non_blocking=True) for k, v in tensors.items()}
            return self._device_copies[key]
        return tensors

    def _want_resident(self, d: DecodedSplit, device: torch.device) -> bool:
        if self.device_resident is True:
            return True
        if self.device_resident is False:
            return False
        total = torch.cuda.get_device_properties(device).total_memory
        return d.images.numel() < total // 4

    def _loader(self, split: str, train: bool) -> TensorBatchLoader:
        rank, world = self._rank_world()
        # the rest of a row lives in the split's manifest; content classes train real-only content models
        keys = ("image", "label", "index", "content_class")
        return TensorBatchLoader(
            self._tensors(split, keys),
            self.batch_size if train else self.eval_batch_size,
            shuffle=train,
            drop_last="auto" if train else False,
            seed=self.seed,
            rank=rank,
            world_size=world,
        )

    def train_dataloader(self):
        return self._loader("train", train=True)

    def val_dataloader(self):
        if "val" not in self._splits and not self._splits:
            self.setup()
        if "val" not in self._splits or len(self._splits["val"]) == 0:
            return []
        return self._loader("val", train=False)

    def test_dataloader(self):
        return self._loader("test", train=False)

    def predict_dataloader(self):
        return self._loader("predict" if "predict" in self._splits else "test", train=False)

    # ------------------------------------------------------------------ device-side transform
    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        """uint8 -> float [0,1] on the model's device; augment training batches."""
        x = batch["image"].float().div_(255.0)
        trainer = self.trainer
        training = trainer is not None and trainer.training
        if self.augmentation is not None and training:
            self.augmentation.to(x.device)
            x = self.augmentation(x)
        if training and self.augment_config.real_blur and "label" in batch:
            x = blur_reals(
                x, batch["label"], self.augment_config.real_blur, self.augment_config.real_blur_sigma
            )
        batch["image"] = x
        return batch

    # ------------------------------------------------------------------ what the model scores
    @property
    def split_names(self) -> list[str]:
        if not self._splits:
            self.setup()
        return list(self._splits)

    @property
    def predict_split(self) -> str:
        """The split `cifake predict` scores: "predict" where the module has one, else "test"."""
        return "predict" if "predict" in self.split_names else "test"

    def decoded(self, split: str) -> DecodedSplit:
        """The decoded split itself (images and per-image metadata), for data tools such as verify."""
        if split not in self.split_names:
            raise KeyError(f"{type(self).__name__} has no {split!r} split (has {self.split_names})")
        return self._splits[split]

    def images(self, split: str) -> torch.Tensor:
        """(N, 3, S, S) uint8 images of a split, in manifest row order (galleries, explanations)."""
        return self.decoded(split).images

    def manifest(self, split: str):
        """The frozen SplitManifest of a split: what a PredictionTable of it refers to."""
        d = self.decoded(split)
        return SplitManifest(
            split=split,
            data=type(self).__name__,
            root=str(self._root()),
            files=tuple(d.files),
            labels=d.labels.clone(),
            source=d.source.clone(),
            content_class=d.content_class.clone(),
            source_names=tuple(d.source_names),
            content_hash=d.manifest_hash(),
            source_kinds=tuple(self.source_kind(n) for n in d.source_names),
        )

    def source_kind(self, source: str) -> str:
        """The generator kind of a source, for reports that summarise by kind ("" = not declared)."""
        return ""

    # ------------------------------------------------------------------ introspection
    def summary(self) -> dict:
        """Sizes and label balance of every split (for `cifake data verify` and run metadata)."""
        if not self._splits:
            self.setup()
        out = {}
        for name, d in self._splits.items():
            n_fake = int(d.labels.sum())
            out[name] = {
                "n": len(d),
                "real": len(d) - n_fake,
                "fake": n_fake,
                "skipped": len(d.skipped),
                "sources": d.source_names,
                "manifest_hash": d.manifest_hash(),
            }
        return out
