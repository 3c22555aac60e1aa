"""data/archive.py: archives that try to escape, bomb or lie are refused."""

from __future__ import annotations

import io
import tarfile
import zipfile

import pytest

from cifake_lightning.data.archive import extract_archive
from cifake_lightning.errors import DataError


def test_zip_bomb_is_refused_before_writing(tmp_path):
    from cifake_lightning.data.archive import extract_archive

    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("train/REAL/0001.jpg", b"\0" * (20 << 20))  # 20 MB of zeros -> ~20 KB
    with pytest.raises(DataError, match="archive bomb"):
        extract_archive(bomb, tmp_path / "out")
    assert not any((tmp_path / "out").rglob("*.jpg"))


def test_zip_member_larger_than_its_header_is_refused(tmp_path):
    from cifake_lightning.data.archive import extract_archive

    path = tmp_path / "liar.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("a.jpg", b"x" * 1000)
    data = bytearray(path.read_bytes())
    # shrink the declared uncompressed size in the central directory (offset 24 of its entry)
    cd = data.rfind(b"PK\x01\x02")
    data[cd + 24 : cd + 28] = (10).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    with pytest.raises((DataError, zipfile.BadZipFile)):
        extract_archive(path, tmp_path / "out")
    assert not (tmp_path / "out" / "a.jpg").exists() or (tmp_path / "out" / "a.jpg").stat().st_size <= 10


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_archive_path_traversal_is_refused(tmp_path, kind):
    bad = tmp_path / f"evil.{kind}"
    if kind == "zip":
        with zipfile.ZipFile(bad, "w") as zf:
            zf.writestr("../escaped.txt", "x")
    else:
        with tarfile.open(bad, "w") as tf:
            info = tarfile.TarInfo("../../escaped.txt")
            info.size = 1
            tf.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(DataError, match="outside"):
        extract_archive(bad, tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists()


def test_safe_archive_extracts(tmp_path):
    good = tmp_path / "ok.zip"
    with zipfile.ZipFile(good, "w") as zf:
        zf.writestr("train/REAL/0001.jpg", b"x")
    assert (
        extract_archive(good, tmp_path / "out") == 1
        and (tmp_path / "out" / "train" / "REAL" / "0001.jpg").is_file()
    )
