"""List the image files of a split's sources and fingerprint them (what decides whether a cache is reused).

The fingerprint hashes every file's relative path, size and mtime plus the decode settings, so any
added, removed or touched file triggers a rebuild. File names that are not valid UTF-8 cannot be
recorded in a manifest: they stop the scan or are skipped, by the `on_bad_file` policy.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import torch

from ..errors import DataError, ImageDecodeError
from .layout import FileEntry, has_image_extension, list_files
from .split import Source


def scan_sources(
    sources: Sequence[Source], root: Path, on_bad_file: str
) -> tuple[list[tuple[FileEntry, int]], list[dict]]:
    """List the image files of every source; returns [(entry, source_index)] and skipped non-images."""
    items: list[tuple[FileEntry, int]] = []
    skipped: list[dict] = []
    for si, src in enumerate(sources):
        n_before = len(items)
        entries = list_files(src.folder, root, recursive=src.recursive)
        if src.recursive:  # in trees, other files (csv, txt, json) are metadata, not bad images
            entries = [e for e in entries if has_image_extension(e.path)]
        if src.limit is not None and len(entries) > src.limit:
            g = torch.Generator().manual_seed(int(src.seed))
            keep = sorted(torch.randperm(len(entries), generator=g)[: src.limit].tolist())
            entries = [entries[i] for i in keep]
        for entry in entries:
            if not _utf8(entry.rel):
                shown = printable_name(entry.rel)
                if on_bad_file == "error":
                    raise ImageDecodeError(
                        "file name is not valid UTF-8 (cannot be recorded in the manifest or results); "
                        "rename it or use on_bad_file: skip",
                        shown,
                    )
                skipped.append({"file": shown, "reason": "file name is not valid UTF-8"})
                continue
            if not has_image_extension(entry.path):
                if on_bad_file == "error":
                    raise ImageDecodeError(
                        "not an image file (unknown extension); remove it or use on_bad_file: skip",
                        entry.path,
                    )
                skipped.append({"file": entry.rel, "reason": "not an image file (unknown extension)"})
                continue
            items.append((entry, si))
        if len(items) == n_before:
            raise DataError(
                f"no images in the {src.name} folder (an empty class cannot be trained or tested)", src.folder
            )
    return items, skipped


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:  # undecodable bytes arrive as lone surrogates (os.fsdecode)
        return False


def printable_name(name: str) -> str:
    """A file name as the user can read it: undecodable bytes shown as U+FFFD."""
    return os.fsencode(name).decode("utf-8", errors="replace")


def fingerprint(entries: Sequence[FileEntry], settings: dict) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps(settings, sort_keys=True).encode())
    for e in entries:
        h.update(f"{e.rel}\0{e.size}\0{e.mtime_ns}\n".encode())
    return h.hexdigest()
