"""Unpack a dataset archive without letting it write outside the target folder.

Zip members with absolute paths, `..` components or symlinks are refused (zip-slip); tar archives
go through tarfile's "data" filter, which refuses the same plus device files and unsafe links.

Archive bombs: an archive whose members add up to more than `max_bytes` (default 64 GiB, twice
CIFAKE-plus-everything) or that would expand more than `max_ratio` times its own size (default 100;
image datasets are already compressed and expand ~1x) is refused before anything is written, and
zip members are copied with a byte count, so a header that understates a member's size cannot be used
to write more than it declared.
"""

from __future__ import annotations

import tarfile
import zipfile
import zlib
from pathlib import Path

from ..errors import DataError


def _check_member(name: str, dest: Path, archive: Path) -> Path:
    target = (dest / name).resolve()
    if name.startswith(("/", "\\")) or ".." in Path(name).parts or not target.is_relative_to(dest):
        raise DataError(f"refused: member {name!r} would be written outside {dest}", archive)
    return target


MAX_BYTES = 64 * 2**30
MAX_RATIO = 100.0


def _check_total(total: int, archive: Path, max_bytes: int, max_ratio: float) -> None:
    size = max(archive.stat().st_size, 1)
    if total > max_bytes:
        raise DataError(
            f"refused: it would unpack to {total / 2**30:.1f} GiB, over the {max_bytes / 2**30:.0f} GiB limit",
            archive,
        )
    if total / size > max_ratio:
        raise DataError(
            f"refused: it would unpack to {total:,} bytes from {size:,} ({total / size:.0f}x; an archive bomb?). "
            f"Image datasets expand about 1x; the limit is {max_ratio:.0f}x",
            archive,
        )


def _copy_limited(src, dst_path: Path, limit: int, name: str, archive: Path) -> None:
    dst_path.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with open(dst_path, "wb") as dst:
        while chunk := src.read(1 << 20):
            written += len(chunk)
            if written > limit:
                dst.close()
                dst_path.unlink()
                raise DataError(f"refused: member {name!r} is larger than its header says", archive)
            dst.write(chunk)


def extract_archive(
    archive: str | Path, dest: str | Path, max_bytes: int = MAX_BYTES, max_ratio: float = MAX_RATIO
) -> int:
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
            _check_total(sum(m.file_size for m in members), archive, max_bytes, max_ratio)
            for m in members:
                target = _check_member(m.filename, dest, archive)
                if m.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                with zf.open(m) as src:
                    _copy_limited(src, target, m.file_size, m.filename, archive)
            return sum(1 for m in members if not m.is_dir())
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            members = tf.getmembers()
            for m in members:
                _check_member(m.name, dest, archive)
            _check_total(sum(m.size for m in members if m.isfile()), archive, max_bytes, max_ratio)
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
