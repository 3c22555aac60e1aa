"""Unpack a dataset archive without letting it write outside the target folder.

Zip members with absolute paths, `..` components or symlinks are refused (zip-slip); tar archives
go through tarfile's "data" filter, which refuses the same plus device files and unsafe links.
"""

from __future__ import annotations

import tarfile
import zipfile
from pathlib import Path

from ..errors import DataError


def _check_member(name: str, dest: Path, archive: Path) -> Path:
    target = (dest / name).resolve()
    if name.startswith(("/", "\\")) or ".." in Path(name).parts or not target.is_relative_to(dest):
        raise DataError(f"refused: member {name!r} would be written outside {dest}", archive)
    return target


def extract_archive(archive: str | Path, dest: str | Path) -> int:
    """Extract a .zip or .tar(.gz/.bz2/.xz) into `dest`; returns the number of files written."""
    archive, dest = Path(archive), Path(dest)
    if not archive.is_file():
        raise DataError("archive not found", archive)
    dest.mkdir(parents=True, exist_ok=True)
    dest = dest.resolve()
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            for m in members:
                _check_member(m.filename, dest, archive)
                if (m.external_attr >> 16) & 0o170000 == 0o120000:
                    raise DataError(f"refused: member {m.filename!r} is a symbolic link", archive)
            zf.extractall(dest)
            return sum(1 for m in members if not m.is_dir())
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            members = tf.getmembers()
            for m in members:
                _check_member(m.name, dest, archive)
            try:
                tf.extractall(dest, filter="data")
            except tarfile.FilterError as e:
                raise DataError(f"refused: {e}", archive) from None
            return sum(1 for m in members if m.isfile())
    raise DataError("not a zip or tar archive", archive)


class _ConcatReader:
    """Read several files one after another as one stream (multi-part .tar.gz.0, .1, ... archives)."""

    def __init__(self, parts: list[Path]) -> None:
        self.parts = list(parts)
        self.current = None

    def read(self, n: int = -1) -> bytes:
        chunks = []
        while n != 0:
            if self.current is None:
                if not self.parts:
                    break
                self.current = open(self.parts.pop(0), "rb")
            data = self.current.read(n if n > 0 else -1)
            if not data:
                self.current.close()
                self.current = None
                continue
            chunks.append(data)
            if n > 0:
                n -= len(data)
        return b"".join(chunks)

    def close(self) -> None:
        if self.current is not None:
            self.current.close()


def extract_tar_parts(parts: list[str | Path], dest: str | Path) -> tuple[int, bool]:
    """Extract a .tar.gz split into numbered parts, streaming, with tarfile's "data" filter.

    Works with only the first parts present (as when a user downloads one 3 GB part of a 120 GB set):
    every member fully contained in them is extracted. Returns (files written, whether the archive was
    complete).
    """
    import zlib

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    parts = sorted(
        (Path(p) for p in parts),
        key=lambda p: int(p.suffix.lstrip(".")) if p.suffix.lstrip(".").isdigit() else 0,
    )
    if not parts:
        raise DataError("no archive parts given", dest)
    stream = _ConcatReader(parts)
    n = 0
    complete = True
    try:
        with tarfile.open(fileobj=stream, mode="r|gz") as tf:
            for member in tf:
                _check_member(member.name, dest.resolve(), parts[0])
                try:
                    tf.extract(member, dest, filter="data")
                except tarfile.FilterError as e:
                    raise DataError(f"refused: {e}", parts[0]) from None
                n += member.isfile()
    except (EOFError, tarfile.ReadError, tarfile.StreamError, zlib.error):
        complete = False  # the parts end mid-archive: keep what was fully extracted
    finally:
        stream.close()
    return n, complete
