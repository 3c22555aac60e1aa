"""Dataset downloads (kagglehub, Hugging Face hub) into one data home, with clear offline errors."""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_data_dir

from ..errors import DownloadError
from .archive import extract_tar_parts

KAGGLE_CIFAKE = "birdy654/cifake-real-and-ai-generated-synthetic-images"
KAGGLE_REAL_VS_AI = "cashbowman/ai-generated-images-vs-real-images"
KAGGLE_TINY_IMAGENET = "akash2sharma/tiny-imagenet"
HF_INFIMAGINE = "InfImagine/FakeImageDataset"


def data_home() -> Path:
    """Where downloads go: `$CIFAKE_DATA`, else the platform's user data dir."""
    env = os.environ.get("CIFAKE_DATA")
    if env:
        return Path(env).expanduser()

    return Path(user_data_dir("cifake-lightning"))


def _manual_hint(url: str, dest: Path, layout: str) -> str:
    return (
        f"Download it by hand from {url}, unpack it so that {dest} holds {layout}, "
        f"or point --data.root at any copy you already have."
    )


def download_kaggle(handle: str, dest: Path, layout: str) -> Path:
    """Download a Kaggle dataset with kagglehub into `dest` (kagglehub shows its own progress bar)."""
    url = f"https://www.kaggle.com/datasets/{handle}"
    try:
        import kagglehub  # optional: only to download
    except ImportError as e:  # pragma: no cover - a dependency
        raise DownloadError(f"kagglehub is not installed ({e}). {_manual_hint(url, dest, layout)}") from None
    dest.mkdir(parents=True, exist_ok=True)
    try:
        path = kagglehub.dataset_download(handle, output_dir=str(dest))
    except Exception as e:  # noqa: BLE001 - network, auth and API errors all end the same way
        reason = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}" if str(e) else type(e).__name__
        raise DownloadError(
            f"could not download {handle} from Kaggle ({reason}). Kaggle needs internet access and, for "
            f"some datasets, credentials (~/.kaggle/kaggle.json or KAGGLE_USERNAME/KAGGLE_KEY). "
            + _manual_hint(url, dest, layout)
        ) from None
    return Path(path)


def download_hf(repo_id: str, dest: Path, allow_patterns: list[str] | None, layout: str) -> Path:
    """Download (part of) a Hugging Face dataset repo into `dest`."""
    url = f"https://huggingface.co/datasets/{repo_id}"
    try:
        from huggingface_hub import snapshot_download  # optional: only to download
    except ImportError as e:  # pragma: no cover
        raise DownloadError(
            f"huggingface_hub is not installed ({e}). {_manual_hint(url, dest, layout)}"
        ) from None
    dest.mkdir(parents=True, exist_ok=True)
    try:
        path = snapshot_download(
            repo_id, repo_type="dataset", local_dir=str(dest), allow_patterns=allow_patterns
        )
    except Exception as e:  # noqa: BLE001
        reason = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}" if str(e) else type(e).__name__
        raise DownloadError(
            f"could not download {repo_id} from the Hugging Face hub ({reason}). "
            + _manual_hint(url, dest, layout)
        ) from None
    return Path(path)


def download_infimagine(
    dest: Path, subsets: list[str], parts: int = 1, split: str = "train"
) -> dict[str, int]:
    """Fetch the first `parts` archive parts of each InfImagine subset and unpack them into dest/<subset>/.

    The subsets are split .tar.gz archives of several GB per part (IFv1-CC1M is 120 GB in all); one
    part already holds thousands of images, plenty for an OOD test. Returns files unpacked per subset.
    """
    patterns = [f"ImageData/{split}/{sub}/**.tar.gz.{i}" for sub in subsets for i in range(parts)]
    raw = dest / "_download"
    download_hf(HF_INFIMAGINE, raw, patterns, "one folder per generator subset")
    counts = {}
    for sub in subsets:
        found = sorted((raw / "ImageData" / split / sub).rglob("*.tar.gz.*"))
        if not found:
            raise DownloadError(
                f"no archive parts of {sub} were downloaded (is {sub!r} a subset of {split}?)"
            )
        n, complete = extract_tar_parts(found, dest / sub)
        counts[sub] = n
    return counts
