"""Out-of-distribution test sets: any folder tree with a label map, plus the three sets the seeds use.

Every module here holds one "test" split (also served for predict) whose images keep the name of the
source they came from, so `cifake test` can report per source (per generator). Images of any size and
format are centre-cropped to a square and brought to 32x32 by the `resize` policy: "area" (box-filter
averaging, the default) keeps the most faithful colours but, like any downsampling, removes much of
the high-frequency content in which generator traces live; "bilinear" matches how CIFAKE's own fakes
were downsized (512 -> 32, bilinear). Report which one you used: it changes what detectors can see.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import lightning as L
import torch

from ..errors import ConfigError, DataError, check_choice
from .base import CachedImageDataModule
from .download import HF_INFIMAGINE, KAGGLE_REAL_VS_AI, KAGGLE_TINY_IMAGENET, data_home
from .image_io import RESIZE_FILTERS
from .layout import cifake_content_class, is_junk
from .split import DecodedSplit, Source

LABELS = {"real": 0, "fake": 1, "0": 0, "1": 1}


def parse_label(value, source: str) -> int:
    key = str(value).strip().lower()
    if key not in LABELS:
        raise DataError(f"unknown label {value!r} for source {source!r}: use real or fake (0 or 1)")
    return LABELS[key]


class FolderSourcesDataModule(CachedImageDataModule):
    """Base of the OOD modules: a list of Sources decoded into one test split (resize policy applied)."""

    def __init__(self, root: str | None = None, resize: str = "area", **kwargs) -> None:
        super().__init__(**kwargs)

        check_choice("data.resize", resize, sorted(RESIZE_FILTERS))
        self.root = root
        self.resize = resize

    #: folder under the data home (`cifake data download` puts it there) used without data.root
    home: str | None = None
    missing = "dataset folder not found (set data.root)"

    def _root(self) -> Path:
        if not self.root and self.home is None:
            raise DataError(f"{type(self).__name__} needs data.root")
        root = Path(self.root).expanduser() if self.root else data_home() / self.home
        if not root.is_dir():
            raise DataError(self.missing, root)
        return root

    def _source_list(self) -> list[Source]:
        raise NotImplementedError

    def _sources(self) -> dict[str, list[Source]]:
        return {"test": self._source_list()}

    def _carve(self, decoded: dict[str, DecodedSplit]) -> dict[str, DecodedSplit]:
        return {"test": decoded["test"]}


class ImageFolderOOD(FolderSourcesDataModule):
    """Any tree of image folders, one source per folder, labelled by a map (add generators without code).

    Args:
        root: folder the source paths are relative to.
        sources: {relative folder: "real" | "fake"}; each folder (searched recursively) is one source,
            named by its path. When omitted, every immediate sub-folder of root is a source and must be
            labelled by `default_label` (else an error lists the unlabelled folders).
        default_label: label of discovered folders that `sources` does not list.
        limit_per_source: keep a seeded random sample of at most this many images per source.
        resize: how non-32x32 images are brought to 32x32 (see module docstring).
        content_classes: "cifake" reads the CIFAR-10 class of files named as in CIFAKE ("123 (4).jpg"),
            so reports give per-class false-positive rates on such sources (seed 002's bias question);
            other names get no class. None (default): no classes.
        kinds: {source folder: generator kind} (e.g. diffusion, gan, autoregressive, latent diffusion):
            test reports then summarise the unseen fake sources per kind (mean and worst AUROC,
            detected share), as configs/data/ood_pubgen_dev_*.yaml do.
    """

    def __init__(
        self,
        root: str | None = None,
        sources: dict[str, str] | None = None,
        default_label: str | None = None,
        limit_per_source: int | None = None,
        resize: str = "area",
        content_classes: str | None = None,
        kinds: dict[str, str] | None = None,
        **kwargs,
    ) -> None:
        super().__init__(root=root, resize=resize, **kwargs)
        unknown = sorted(set(kinds or {}) - set(sources or {}))
        if unknown:
            raise ConfigError("data.kinds", f"{unknown} are not in data.sources ({sorted(sources or {})})")
        self.kinds = dict(kinds or {})
        check_choice("data.content_classes", content_classes, (None, "cifake"))
        if content_classes == "cifake":
            self.class_parser = cifake_content_class
        if limit_per_source is not None and limit_per_source < 1:
            raise ConfigError("data.limit_per_source", f"must be >= 1, got {limit_per_source}")
        self.source_labels = dict(sources or {})
        self.default_label = default_label
        self.limit_per_source = limit_per_source

    def _source_list(self) -> list[Source]:
        root = self._root()
        mapping = dict(self.source_labels)
        if not mapping or self.default_label is not None:
            found = [d.name for d in sorted(root.iterdir()) if d.is_dir() and not is_junk(d.name)]
            unlabelled = [d for d in found if d not in mapping]
            if unlabelled and self.default_label is None:
                raise DataError(
                    f"no label for source folder(s) {unlabelled}: list them in data.sources "
                    f"({{folder: real|fake}}) or set data.default_label",
                    root,
                )
            for d in unlabelled:
                mapping[d] = self.default_label
        if not mapping:
            raise DataError("no source folders found", root)
        out = []
        for rel, label in mapping.items():
            folder = root / rel
            if not folder.is_dir():
                raise DataError(f"source folder {rel!r} not found under {root}", folder)
            out.append(
                Source(
                    rel,
                    folder,
                    parse_label(label, rel),
                    recursive=True,
                    limit=self.limit_per_source,
                    seed=self.seed,
                )
            )
        return out

    def source_kind(self, source: str) -> str:
        return self.kinds.get(source, "")


class PredictFolder(FolderSourcesDataModule):
    """Every image under a folder (recursively), unlabelled, for `cifake predict`.

    Args:
        root: the folder.
        resize: how non-32x32 images are brought to 32x32 (see module docstring).
    """

    default_on_bad_file = "skip"

    def _source_list(self) -> list[Source]:
        return [Source("images", self._root(), -1, recursive=True)]

    def _carve(self, decoded: dict[str, DecodedSplit]) -> dict[str, DecodedSplit]:
        return {"test": decoded["test"], "predict": decoded["test"]}


class TinyImageNetReal(FolderSourcesDataModule):
    """Real photographs from Tiny ImageNet (64x64, 200 classes), `n` sampled by seed (ISITCAP used 2,000).

    Expects the standard release under root: ``tiny-imagenet-200/{train,val,test}/...`` (or those
    folders directly). `cifake data download --dataset tinyimagenet` fetches it with kagglehub.
    """

    def __init__(
        self, root: str | None = None, n: int = 2000, split: str = "val", resize: str = "area", **kwargs
    ) -> None:
        super().__init__(root=root, resize=resize, **kwargs)
        check_choice("data.split", split, ("train", "val", "test"))
        self.n, self.split = n, split

    home = "tinyimagenet"
    missing = (
        f"Tiny ImageNet not found: `cifake data download --dataset tinyimagenet` (Kaggle {KAGGLE_TINY_IMAGENET}) "
        "or unpack tiny-imagenet-200.zip there, or set data.root"
    )

    def _source_list(self) -> list[Source]:
        root = self._root()
        for cand in (root / "tiny-imagenet-200" / self.split, root / self.split):
            if cand.is_dir():
                return [Source("tinyimagenet", cand, 0, recursive=True, limit=self.n, seed=self.seed)]
        raise DataError(f"no {self.split}/ folder of Tiny ImageNet under it", root)


class KaggleRealVsAI(FolderSourcesDataModule):
    """Kaggle "AI-generated images vs real images" (cashbowman): AiArtData/ (fake) and RealArt/ (real).

    Mixed sizes and formats, including a few files PIL cannot read, so bad files are skipped and
    counted by default (`on_bad_file: skip`).
    """

    FOLDERS = {"RealArt": 0, "AiArtData": 1}

    default_on_bad_file = "skip"

    def __init__(
        self,
        root: str | None = None,
        limit_per_source: int | None = None,
        resize: str = "area",
        **kwargs,
    ) -> None:
        super().__init__(root=root, resize=resize, **kwargs)
        self.limit_per_source = limit_per_source

    home = "kaggle-real-vs-ai"
    missing = f"not found: `cifake data download --dataset kaggle-real-vs-ai` (Kaggle {KAGGLE_REAL_VS_AI}) or set data.root"

    def _source_list(self) -> list[Source]:
        root = self._root()
        out = []
        for name, label in self.FOLDERS.items():
            hits = (
                [root / name] if (root / name).is_dir() else sorted(p for p in root.rglob(name) if p.is_dir())
            )
            if not hits:
                raise DataError(f"no {name}/ folder (expected RealArt/ and AiArtData/)", root)
            out.append(
                Source(name, hits[0], label, recursive=True, limit=self.limit_per_source, seed=self.seed)
            )
        return out


class InfiMagineFake(FolderSourcesDataModule):
    """Fakes from the InfImagine FakeImageDataset (Hugging Face), one source per generator subset.

    root holds one folder per subset (e.g. IFv1-CC1M/, SDv15R-CC1M/) with images anywhere below;
    `cifake data download --dataset infimagine` fetches the first archive part of each subset and
    unpacks it there. ISITCAP sampled 1,768 images from IFv1-CC1M and SDv15R-CC1M together.
    """

    default_on_bad_file = "skip"

    def __init__(
        self,
        root: str | None = None,
        subsets: list[str] | None = None,
        n_per_subset: int | None = 884,
        resize: str = "area",
        **kwargs,
    ) -> None:
        super().__init__(root=root, resize=resize, **kwargs)
        self.subsets = list(subsets or ["IFv1-CC1M", "SDv15R-CC1M"])
        self.n_per_subset = n_per_subset

    home = "infimagine"
    missing = f"not found: `cifake data download --dataset infimagine` (HF {HF_INFIMAGINE}) or set data.root"

    def _source_list(self) -> list[Source]:
        root = self._root()
        out = []
        for sub in self.subsets:
            if not (root / sub).is_dir():
                raise DataError(
                    f"subset folder {sub}/ not found (have: {sorted(p.name for p in root.iterdir() if p.is_dir())})",
                    root,
                )
            out.append(Source(sub, root / sub, 1, recursive=True, limit=self.n_per_subset, seed=self.seed))
        return out


class CombinedTestData(CachedImageDataModule):
    """Several data modules' test splits as one test set, sources prefixed by module (one OOD table).

    Shares the base class's loader, device residency and batch transfer; only how its one test split
    is assembled differs (the members decode and cache their own folders).

    Args:
        datasets: data modules (any of the above, or CIFAKE for the in-distribution reference).
        batch_size: evaluation batch size.
    """

    def __init__(self, datasets: list[L.LightningDataModule], batch_size: int = 512, **kwargs) -> None:
        super().__init__(eval_batch_size=batch_size, **kwargs)
        if not datasets:
            raise ConfigError("data.datasets", "must list at least one data module")
        self.datasets = datasets

    def _root(self) -> Path:
        return Path(os.path.commonpath([str(d._root()) for d in self.datasets]))

    def prepare_data(self) -> None:
        for d in self.datasets:
            d.prepare_data()

    def setup(self, stage: str | None = None) -> None:
        if self._splits:
            return
        parts, names = [], []
        for d in self.datasets:
            d.setup("test")
            split = d.decoded("test")
            prefix = type(d).__name__.removesuffix("DataModule")
            offset = len(names)
            names += [f"{prefix}:{n}" for n in split.source_names]
            parts.append((split, offset))
        cat = lambda attr: torch.cat([getattr(s, attr) for s, _ in parts])  # noqa: E731
        self._splits["test"] = DecodedSplit(
            images=cat("images"),
            labels=cat("labels"),
            source=torch.cat([s.source + off for s, off in parts]),
            content_class=cat("content_class"),
            files=[f for s, _ in parts for f in s.files],
            hashes=[h for s, _ in parts for h in s.hashes],
            source_names=names,
            skipped=[x for s, _ in parts for x in s.skipped],
        )
        if any(s.skipped for s, _ in parts):
            warnings.warn(f"{sum(len(s.skipped) for s, _ in parts)} unreadable file(s) skipped", stacklevel=2)
