"""CIFAKE (Bird & Lotfi 2024): 60k real CIFAR-10 images vs 60k Stable Diffusion 1.4 fakes, 32x32."""

from __future__ import annotations

import warnings
from pathlib import Path

from ..errors import ConfigError, DataError
from .aligned import AlignedFakes, add_aligned_fakes, add_real_mosaics, append_fakes
from .base import CachedImageDataModule
from .cache import load_or_build
from .download import KAGGLE_CIFAKE, data_home, download_kaggle
from .layout import LABEL_NAMES, cifake_content_class, resolve_kaggle_root
from .split import DecodedSplit, Source, stratified_split
from .zoo import ZooGenerator, add_zoo_fakes

CIFAKE_LAYOUT = "train/REAL, train/FAKE, test/REAL and test/FAKE folders of 32x32 JPEGs"


def default_cifake_root() -> Path:
    return data_home() / "cifake"


class CIFAKEDataModule(CachedImageDataModule):
    """CIFAKE in the Kaggle layout (any copy with ``train|test/REAL|FAKE``, e.g. the demo data).

    The test split is the official one. Validation is carved from train by a seeded, stratified
    split: `val_size` images (an int) or that fraction of train (a float in (0, 1)); 0 disables it.
    The same seed gives the same split. The CIFAR-10 content class of each image is parsed from its
    file name (see data/layout.py) for per-class analyses; it is -1 where names carry none.

    Args:
        root: dataset folder (default: $CIFAKE_DATA/cifake or the platform data dir).
        val_size: validation images carved out of train (10,000 as in the ISITCAP study).
        download: download with kagglehub when `root` does not hold the data yet.
        aligned_fakes: kinds of self-made fakes aligned with the training reals to add to the training
            split, each its own source (data/aligned.py: autoencoder reconstructions, denoised reals or
            resampling traces), e.g. `[{kind: resample}, {kind: denoise}]`; off by default.
        extra_fakes: more folders of fakes (relative to `root` or absolute) for the training split
            only, each its own source: training with several generators (Community Forensics), and
            what configs/experiments/loso.yaml uses to leave one source out.
        real_mosaics: add this many (as a share of the training reals) extra real images made of 2x2
            mosaics of training reals reduced by 2 (data/aligned.add_real_mosaics); 0 = off.
        zoo: small generators of other families (data/zoo.py: vae, gan, pixelcnn) trained on the
            training reals, each adding its samples to the training split as source zoo/<family>
            (cached; Community Forensics: variety of training generators), e.g. `[{family: vae}]`.
        train_size: train on a stratified, seeded subset of this many images (an int) or this share
            (a float in (0, 1]) of what is left after carving validation; None = all. For quick runs on a
            laptop or CPU (the benchmarks' genset-v2 subsets); validation and test stay whole. Extra
            and aligned fakes are added after the subset is drawn (aligned fakes from its reals only).
        **kwargs: see CachedImageDataModule (batch sizes, augmentation, cache, bad-file policy).
    """

    class_parser = staticmethod(cifake_content_class)

    def __init__(
        self,
        root: str | None = None,
        val_size: int | float = 10_000,
        download: bool = False,
        aligned_fakes: list[AlignedFakes] | None = None,
        extra_fakes: list[str] | None = None,
        real_mosaics: float = 0.0,
        zoo: list[ZooGenerator] | None = None,
        train_size: int | float | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if train_size is not None:
            bad_float = isinstance(train_size, float) and not 0.0 < train_size <= 1.0
            if bad_float or (isinstance(train_size, int) and train_size < 2):
                raise ConfigError(
                    "data.train_size", f"must be an int >= 2 or a fraction in (0, 1], got {train_size}"
                )
        self.train_size = train_size
        self.real_mosaics = real_mosaics
        self.aligned_fakes = list(aligned_fakes or [])
        kinds = [a.kind for a in self.aligned_fakes]
        if len(set(kinds)) < len(kinds):
            raise ConfigError("data.aligned_fakes", f"each kind at most once, got {kinds}")
        self.extra_fakes = list(extra_fakes or [])
        self.zoo = list(zoo or [])
        families = [z.family for z in self.zoo]
        if len(set(families)) < len(families):
            raise ConfigError("data.zoo", f"each family at most once, got {families}")
        if isinstance(val_size, float) and not 0.0 <= val_size < 1.0:
            raise ConfigError("data.val_size", f"as a fraction must be in [0, 1), got {val_size}")
        if isinstance(val_size, int) and val_size < 0:
            raise ConfigError("data.val_size", f"must be >= 0, got {val_size}")
        self.root = root
        self.val_size = val_size
        self.download = download
        self._resolved: Path | None = None

    def _root(self) -> Path:
        if self._resolved is None:
            root = Path(self.root).expanduser() if self.root else default_cifake_root()
            if self.download and not _looks_ready(root):
                download_kaggle(KAGGLE_CIFAKE, root, CIFAKE_LAYOUT)
            if not root.exists():
                raise DataError(
                    "CIFAKE not found. Run `cifake data download` (needs Kaggle access), or place the Kaggle "
                    f"archive's {CIFAKE_LAYOUT} there, or pass --data.root /path/to/cifake "
                    "(`cifake data synth --root DIR` makes a small synthetic stand-in)",
                    root,
                )
            self._resolved = resolve_kaggle_root(root)
        return self._resolved

    def _sources(self) -> dict[str, list[Source]]:
        r = self._root()
        return {
            split: [Source(lab, r / split / lab, i) for i, lab in enumerate(LABEL_NAMES)]
            for split in ("train", "test")
        }

    def _carve(self, decoded: dict[str, DecodedSplit]) -> dict[str, DecodedSplit]:
        train, test = decoded["train"], decoded["test"]
        n_val = self.val_size if isinstance(self.val_size, int) else round(self.val_size * len(train))
        if n_val >= len(train):
            if self._stage in ("test", "predict"):  # scoring needs no validation split: skip it
                n_val = 0
            else:
                raise ConfigError(
                    "data.val_size",
                    f"{self.val_size} leaves no training images (train has {len(train)}); "
                    "use a smaller count or a fraction such as 0.1",
                )
        leaks = set(train.hashes) & set(test.hashes)
        if leaks:
            warnings.warn(
                f"{len(leaks)} file(s) appear in both train and test (identical bytes): test metrics are "
                "optimistic; `cifake data verify` lists them",
                stacklevel=2,
            )
        out = {"test": test}
        if n_val > 0:
            tr, va = stratified_split(train.labels, n_val, self.seed)
            out["train"], out["val"] = train.subset(tr), train.subset(va)
        else:
            out["train"] = train
        if self.train_size is not None and self._stage not in ("test", "predict", "validate"):
            out["train"] = self._subset(out["train"])
        if self._stage not in ("test", "predict", "validate"):
            out["train"] = self._more_fakes(out["train"])
        return out

    def _subset(self, train: DecodedSplit) -> DecodedSplit:
        n = len(train)
        k = self.train_size if isinstance(self.train_size, int) else round(self.train_size * n)
        if k > n:
            raise ConfigError(
                "data.train_size",
                f"{self.train_size} is more than the {n} training images left after validation",
            )
        if k == n:
            return train
        # a seed apart from the validation split's, so the subset is not correlated with what was carved
        _, keep = stratified_split(train.labels, k, self.seed + 7919)
        return train.subset(keep.sort().values)

    def _extra_sources(self) -> list[tuple[str, Path]]:
        out = []
        for folder in self.extra_fakes:
            path = Path(folder).expanduser()
            path = path if path.is_absolute() else self._root() / path
            if not path.is_dir():
                raise DataError("extra fake folder not found (data.extra_fakes)", path)
            out.append((str(folder).rstrip("/"), path))
        return out

    def _more_fakes(self, train: DecodedSplit) -> DecodedSplit:
        """Training split + extra fake folders + aligned fakes + zoo fakes + real mosaics (options, off by default)."""
        for name, path in self._extra_sources():
            extra = load_or_build(
                f"extra-{name.replace('/', '_')}",
                [Source(name, path, 1)],
                path.parent,
                self._cache_dir(),
                size=self.image_size,
                resize="area",
                on_bad_file=self.on_bad_file,
                workers=self.decode_workers,
                progress=self.progress,
            )
            train = append_fakes(train, extra.images, name, files=extra.files, hashes=extra.hashes)
        for aligned in self.aligned_fakes:
            train = add_aligned_fakes(train, aligned, self._cache_dir())
        for generator in self.zoo:
            train = add_zoo_fakes(train, generator, self._cache_dir())
        if self.real_mosaics:
            train = add_real_mosaics(train, self.real_mosaics, self.seed, cache_dir=self._cache_dir())
        return train


def _looks_ready(root: Path) -> bool:
    try:
        resolve_kaggle_root(root)
        return True
    except DataError:
        return False
