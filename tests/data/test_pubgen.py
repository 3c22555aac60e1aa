"""data/pubgen.py: `cifake data download --dataset pubgen-dev` rebuilds pubgen-dev from pinned public files."""

from __future__ import annotations

import csv
import io
import tarfile
import urllib.error

import numpy as np
import pytest
from conftest import SHARED_DATASETS
from helpers.run import run_main
from PIL import Image

from cifake_lightning.data import pubgen
from cifake_lightning.data.pubgen import RECIPE, pixel_md5, read_recipe, rebuild_pubgen_dev
from cifake_lightning.errors import DownloadError


def test_the_recipe_names_every_image_of_the_tar_with_its_pixel_hash():
    """Every png of pubgen-dev.tar has one recipe row whose md5 is that of its pixels, and no row more."""
    tar_path = SHARED_DATASETS / "pubgen-dev.tar"
    if not tar_path.is_file():
        pytest.skip(f"{tar_path} is absent (see ../shared/datasets/README.md)")
    found = {}
    with tarfile.open(tar_path) as tar:
        for member in tar:
            parts = member.name.split("/")
            if member.isfile() and len(parts) == 4 and parts[1] == "png":
                rgb = np.asarray(Image.open(io.BytesIO(tar.extractfile(member).read())).convert("RGB"))
                found[parts[2], parts[3]] = pixel_md5(rgb)
    recipe = {(r["source"], r["file"]): r["md5"] for r in read_recipe()}
    assert len(found) == 1913 and recipe == found


def _grid(tiles: np.ndarray, cols: int, pad: int = 2) -> np.ndarray:
    """A torchvision-make_grid-like figure of uint8 tiles (N, 32, 32, 3), pad value 128."""
    rows = -(-len(tiles) // cols)
    fig = np.full((pad + rows * (32 + pad), pad + cols * (32 + pad), 3), 128, np.uint8)
    for k, t in enumerate(tiles):
        r, c = divmod(k, cols)
        fig[pad + r * 34 : pad + r * 34 + 32, pad + c * 34 : pad + c * 34 + 32] = t
    return fig


def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def tiny(tmp_path):
    """A recipe of a 2x3 grid, one 64 px sample (reduced to 32) and two CIFAR-10 controls, with the
    fetch and CIFAR-10 stand-ins that serve them."""
    rng = np.random.default_rng(0)
    tiles = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    big = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    cifar = rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    files = {("a/gan", "c1", "grid.png"): _png(_grid(tiles, 3)), ("b/sd", "c2", "big.png"): _png(big)}
    rows = [dict(source="fake_gan", file=f"{k:05d}.png", repo="a/gan", commit="c1", path="grid.png",
                 box=f"{2 + (k % 3) * 34} {2 + (k // 3) * 34} {34 + (k % 3) * 34} {34 + (k // 3) * 34}",
                 md5=pixel_md5(t)) for k, t in enumerate(tiles)]  # fmt: skip
    reduced = np.asarray(Image.fromarray(big[:, 16:80]).resize((32, 32), Image.BILINEAR))
    rows.append(dict(source="fake_sd", file="00000.png", repo="b/sd", commit="c2", path="big.png",
                     box="16 0 80 64", md5=pixel_md5(reduced)))  # fmt: skip
    rows += [dict(source="real", file=f"{k:05d}.png", repo="cifar-10", commit="", path="test_batch", box="",
                  md5=pixel_md5(cifar[i])) for k, i in enumerate((3, 1))]  # fmt: skip
    recipe = tmp_path / "recipe.csv"
    with open(recipe, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return dict(recipe=recipe, fetch=lambda *key: files[key], cifar10=lambda root: cifar, files=files,
                tiles=tiles, reduced=reduced, cifar=cifar)  # fmt: skip


def test_rebuild_cuts_checks_and_writes_png_and_jpeg75(tiny, tmp_path):
    dest = tmp_path / "out" / "pubgen-dev"
    counts = rebuild_pubgen_dev(dest, tiny["fetch"], tiny["cifar10"], tiny["recipe"])
    assert counts == {"fake_gan": 6, "fake_sd": 1, "real": 2}
    assert np.array_equal(np.asarray(Image.open(dest / "png/fake_gan/00004.png")), tiny["tiles"][4])
    assert np.array_equal(np.asarray(Image.open(dest / "png/fake_sd/00000.png")), tiny["reduced"])
    assert np.array_equal(np.asarray(Image.open(dest / "png/real/00000.png")), tiny["cifar"][3])
    jpeg = (dest / "jpg75/fake_gan/00004.jpg").read_bytes()
    buf = io.BytesIO()
    Image.fromarray(tiny["tiles"][4]).save(buf, format="JPEG", quality=75)
    assert jpeg == buf.getvalue() and (dest / "recipe.csv").is_file()
    assert [p.name for p in dest.parent.iterdir()] == ["pubgen-dev"]  # no temporary folder left


def test_a_changed_file_fails_its_hash_and_writes_nothing(tiny, tmp_path):
    fig = np.asarray(Image.open(io.BytesIO(tiny["files"]["a/gan", "c1", "grid.png"]))).copy()
    fig[40, 40] ^= 1  # one sub-pixel of tile (1, 1)

    def fetch(*key):
        return _png(fig) if key[0] == "a/gan" else tiny["files"][key]

    dest = tmp_path / "pubgen-dev"
    with pytest.raises(DownloadError, match=r"fake_gan/00004.png.*grid.png.*expected"):
        rebuild_pubgen_dev(dest, fetch, tiny["cifar10"], tiny["recipe"])
    assert not dest.exists() and list(tmp_path.iterdir()) == [tiny["recipe"]]
    with pytest.raises(DownloadError, match="no CIFAR-10 test image"):
        rebuild_pubgen_dev(dest, tiny["fetch"], lambda root: tiny["cifar"][:2], tiny["recipe"])


def test_an_existing_folder_is_never_replaced(tiny, tmp_path):
    dest = tmp_path / "pubgen-dev"
    dest.mkdir()
    (dest / "mine.txt").write_text("keep")
    with pytest.raises(DownloadError, match="already holds files"):
        rebuild_pubgen_dev(dest, tiny["fetch"], tiny["cifar10"], tiny["recipe"])
    assert (dest / "mine.txt").read_text() == "keep"


def test_offline_download_exits_2_and_says_where_to_put_the_tar(tmp_path, monkeypatch, capsys):
    def offline(*key):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(pubgen, "fetch_github", offline)
    dest = tmp_path / "data" / "pubgen-dev"
    code, err = run_main(["data", "download", "--dataset", "pubgen-dev", "--dest", str(dest)], capsys)
    assert code == 2
    assert "could not fetch" in err and "pubgen-dev.tar" in err and f"-C {dest.parent}" in err
    assert not dest.exists()


def test_the_shipped_recipe_is_one_row_per_image_with_a_box_for_every_figure_tile():
    rows = read_recipe(RECIPE)
    assert len({(r["source"], r["file"]) for r in rows}) == len(rows) == 1913
    for r in rows:
        assert len(r["md5"]) == 32 and set(r["md5"]) <= set("0123456789abcdef")
        if r["repo"] != "cifar-10":
            left, top, right, bottom = map(int, r["box"].split())
            assert right - left == bottom - top >= 32 and len(r["commit"]) == 40
