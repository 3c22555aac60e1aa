"""Rebuild pubgen-dev (published generators' own samples at 32x32) from the public files it was cut from.

`pubgen_dev.csv` beside this module is the recipe, one row per image: the repository, the pinned commit
and the path of the figure the authors committed, the box of the tile in that figure (left top right
bottom; tiles larger than 32 px are reduced with PIL's bilinear filter, as the set was made) and the
md5 of the resulting 32x32 RGB pixels. The 500 real controls (``repo`` cifar-10) are the CIFAR-10 test
images with those pixel hashes, taken from the official CIFAR-10 test batch (torchvision's download).
Every image is checked against its hash before anything is written; the set is assembled in a temporary
folder next to `dest` and moved into place only when complete, so a failed rebuild leaves an existing
copy untouched. ``jpg75/`` is each png re-encoded by PIL at quality 75 (byte-identical to the tar's).

The recipe was made from pubgen-dev.tar's provenance/ (repository, commit, path, grid geometry and pixel
hash per tile): grid figures are torchvision make_grid outputs (tile (r, c) at pad + c * (32 + pad),
pad + r * (32 + pad)); Stable Diffusion samples are whole 512 px samples or the square crop the
provenance names; each row was checked against the tar's pixels (tests/data/test_pubgen.py).
"""

from __future__ import annotations

import csv
import hashlib
import io
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from torchvision.datasets import CIFAR10

from ..errors import DownloadError

RECIPE = Path(__file__).with_name("pubgen_dev.csv")
RAW = "https://raw.githubusercontent.com/{repo}/{commit}/{path}"
TAR_HINT = (
    "pubgen-dev also ships as a tar (pubgen-dev.tar, e.g. ../shared/datasets/): `tar -xf pubgen-dev.tar -C {parent}` "
    "puts it at {parent}/pubgen-dev"
)

Fetch = Callable[[str, str, str], bytes]


def fetch_github(repo: str, commit: str, path: str) -> bytes:
    """The bytes of `path` in GitHub repository `repo` at `commit` (raw.githubusercontent.com)."""
    url = RAW.format(repo=repo, commit=commit, path=urllib.parse.quote(path))
    with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 - a fixed https host
        return response.read()


def cifar10_test_images(root: Path) -> np.ndarray:
    """The 10,000 CIFAR-10 test images (N, 32, 32, 3) uint8, downloaded by torchvision into `root`."""
    return CIFAR10(str(root), train=False, download=True).data


def pixel_md5(rgb: np.ndarray) -> str:
    return hashlib.md5(np.ascontiguousarray(rgb).tobytes()).hexdigest()


def read_recipe(path: Path = RECIPE) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def cut_tile(figure: np.ndarray, box: str) -> np.ndarray:
    """The 32x32 RGB tile at `box` ("left top right bottom") of a figure, reduced bilinearly if larger."""
    left, top, right, bottom = (int(v) for v in box.split())
    tile = np.ascontiguousarray(figure[top:bottom, left:right])
    if tile.shape[:2] != (32, 32):
        tile = np.asarray(Image.fromarray(tile).resize((32, 32), Image.BILINEAR))
    return tile


def rebuild_pubgen_dev(
    dest: Path,
    fetch: Fetch | None = None,
    cifar10: Callable[[Path], np.ndarray] | None = None,
    recipe: Path = RECIPE,
) -> dict[str, int]:
    """Fetch, cut, check and write every image of the recipe under dest/png and dest/jpg75; returns the
    number of images per source. Raises DownloadError (nothing written) when a file cannot be fetched or
    an image's pixels differ from the pinned hash. `fetch(repo, commit, path)` and `cifar10(root)` default
    to GitHub's raw files and torchvision's CIFAR-10 download."""
    fetch = fetch or fetch_github
    cifar10 = cifar10 or cifar10_test_images
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise DownloadError(
            f"{dest} already holds files: remove it or pass another --dest (nothing was changed)"
        )
    rows = read_recipe(recipe)
    hint = TAR_HINT.format(parent=dest.parent)
    figures: dict[tuple[str, str, str], np.ndarray] = {}
    tiles: dict[tuple[str, str], np.ndarray] = {}
    real_rows = [r for r in rows if r["repo"] == "cifar-10"]
    for r in (r for r in rows if r["repo"] != "cifar-10"):
        key = (r["repo"], r["commit"], r["path"])
        if key not in figures:
            try:
                data = fetch(*key)
            except (OSError, urllib.error.URLError) as e:
                raise DownloadError(
                    f"could not fetch {key[2]} of {key[0]}@{key[1][:10]} ({type(e).__name__}: {e}). {hint}"
                ) from None
            figures[key] = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        tiles[r["source"], r["file"]] = _checked(cut_tile(figures[key], r["box"]), r)
    if real_rows:
        try:
            test = cifar10(dest.parent / "cifar-10")
        except (OSError, RuntimeError, urllib.error.URLError) as e:
            raise DownloadError(
                f"could not download the CIFAR-10 test batch ({type(e).__name__}: {e}). {hint}"
            ) from None
        by_hash = {pixel_md5(img): img for img in test}
        for r in real_rows:
            if r["md5"] not in by_hash:
                raise DownloadError(
                    f"{r['source']}/{r['file']}: no CIFAR-10 test image has pixel md5 {r['md5']}"
                )
            tiles[r["source"], r["file"]] = by_hash[r["md5"]]
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".pubgen-dev-", dir=dest.parent))
    try:
        for (source, file), rgb in tiles.items():
            image = Image.fromarray(rgb)
            for variant in ("png", "jpg75"):
                (work / variant / source).mkdir(parents=True, exist_ok=True)
            image.save(work / "png" / source / file)
            image.save(work / "jpg75" / source / (Path(file).stem + ".jpg"), format="JPEG", quality=75)
        shutil.copyfile(recipe, work / "recipe.csv")
        if dest.exists():
            dest.rmdir()  # empty (checked above)
        work.rename(dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return dict(Counter(source for source, _ in tiles))


def _checked(tile: np.ndarray, row: dict[str, str]) -> np.ndarray:
    got = pixel_md5(tile)
    if got != row["md5"]:
        raise DownloadError(
            f"{row['source']}/{row['file']}: the tile at {row['box']} of {row['repo']}@{row['commit'][:10]} "
            f"{row['path']} has pixel md5 {got}, expected {row['md5']} (the file changed or the recipe is wrong)"
        )
    return tile
