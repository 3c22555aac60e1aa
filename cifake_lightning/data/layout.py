"""Find image files in the folder layouts we read, and parse what their names carry.

CIFAKE (Kaggle) layout::

    <root>/train/REAL/*.jpg   50,000    <root>/test/REAL/*.jpg   10,000
    <root>/train/FAKE/*.jpg   50,000    <root>/test/FAKE/*.jpg   10,000

File names are ``NNNN.jpg`` or ``NNNN (k).jpg`` with k in 2..10. Each split holds, per label, the same
run of numbers ten times (5,000 per number range in train, 1,000 in test), which is what Windows
produces when ten folders of identically numbered files are merged: the first copy keeps its name and
the others get `` (2)`` .. `` (10)``. We read the suffix as the CIFAR-10 content class in the
standard order (no suffix = 0 airplane, (2) = 1 automobile, ..., (10) = 9 truck). That mapping
is what `cifake data classes` checks against CIFAR-10 itself (see docs/data.md); it could not be
checked on the machines this project was built on, which cannot reach Kaggle.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff"}
#: Files operating systems leave in folders; never images, never errors.
JUNK_NAMES = {"thumbs.db", "desktop.ini", ".ds_store"}

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
LABEL_NAMES = ("REAL", "FAKE")  # label 0 = real, 1 = fake (the positive class is "fake")

_CIFAKE_NAME = re.compile(r"^\d+(?: \((\d+)\))?\.[A-Za-z]+$")


def cifake_content_class(file_name: str) -> int:
    """CIFAR-10 class index carried by a CIFAKE file name, or -1 when the name has no such pattern."""
    m = _CIFAKE_NAME.match(file_name)
    if m is None:
        return -1
    if m.group(1) is None:
        return 0
    k = int(m.group(1))
    return k - 1 if 2 <= k <= 10 else -1


@dataclass(frozen=True)
class FileEntry:
    """One file found on disk; size and mtime make up the cache fingerprint."""

    path: Path
    rel: str
    size: int
    mtime_ns: int


def is_junk(name: str) -> bool:
    return name.startswith(".") or name.lower() in JUNK_NAMES


def list_files(folder: Path, root: Path, recursive: bool = False) -> list[FileEntry]:
    """Every non-junk regular file in `folder` (and below, if recursive), sorted by relative path.

    Symbolic links are followed, but a link back to a folder already being listed (a loop) stops with an
    error naming it, and links whose target lies outside `root` are named in one warning (the data is
    then not all under the root you gave, which matters for provenance and for leakage checks).
    """
    if not folder.is_dir():
        raise DataError("folder not found" if not folder.exists() else "is not a folder", folder)
    root_prefix = os.path.join(str(root), "")
    if not os.path.join(str(folder), "").startswith(root_prefix):
        raise DataError(f"is not inside the dataset root {root}", folder)
    real_root = os.path.join(os.path.realpath(root), "")
    entries = []
    outside: list[str] = []
    prefix = len(root_prefix)  # relative paths by slicing: pathlib per file is slow for 120k files
    st0 = os.stat(folder)
    stack = [(str(folder), frozenset({(st0.st_dev, st0.st_ino)}))]
    while stack:
        current, ancestors = stack.pop()
        try:
            it = os.scandir(current)
        except OSError as e:
            raise DataError(f"cannot list this folder ({e.strerror or e})", current) from None
        with it:
            for e in it:
                if is_junk(e.name):
                    continue
                try:
                    is_dir, is_file = e.is_dir(), e.is_file()
                    st = e.stat() if (is_dir or is_file) else None
                except OSError as err:  # e.g. ELOOP: a link that points at itself
                    raise DataError(f"cannot read this entry ({err.strerror or err})", e.path) from None
                if st is None:
                    continue  # dangling link, socket, device: not an image
                if e.is_symlink() and not os.path.join(os.path.realpath(e.path), "").startswith(real_root):
                    outside.append(e.path)
                if is_dir:
                    if recursive:
                        key = (st.st_dev, st.st_ino)
                        if key in ancestors:
                            raise DataError(
                                f"symbolic link loop: it leads back to {os.path.realpath(e.path)}, which is "
                                "already being listed; remove the link",
                                e.path,
                            )
                        stack.append((e.path, ancestors | {key}))
                    continue
                if not is_file:
                    continue
                rel = e.path[prefix:].replace(os.sep, "/")
                entries.append(FileEntry(Path(e.path), rel, st.st_size, st.st_mtime_ns))
    if outside:
        warnings.warn(
            f"{len(outside)} symbolic link(s) under {folder} point outside the dataset root {root} "
            f"(e.g. {outside[0]} -> {os.path.realpath(outside[0])}); their targets are read as if they were "
            "part of the dataset",
            stacklevel=3,
        )
    entries.sort(key=lambda f: f.rel)
    return entries


def has_image_extension(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def resolve_kaggle_root(root: Path, splits=("train", "test"), labels=LABEL_NAMES) -> Path:
    """Return the folder that holds ``train/`` and ``test/`` under `root` (which may be one level up).

    kagglehub and manual unzips sometimes add one wrapping folder; we look one level down for it, and
    otherwise fail with a message that shows the layout we expect and what we found.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError("dataset root does not exist", root)

    def ok(r: Path) -> bool:
        return all((r / s / lab).is_dir() for s in splits for lab in labels)

    if ok(root):
        return root
    subdirs = (
        [d for d in sorted(root.iterdir()) if d.is_dir() and not is_junk(d.name)] if root.is_dir() else []
    )
    for d in subdirs:
        if ok(d):
            return d
    expected = ", ".join(f"{s}/{lab}/" for s in splits for lab in labels)
    found = ", ".join(d.name + "/" for d in subdirs) or "nothing"
    raise DataError(f"not a CIFAKE-layout folder: expected {expected}; found {found}", root)
