"""Decode a set of image folders once into a uint8 tensor cache, and reuse it while the files are unchanged.

A cache is one safetensors file per split: ``images`` (N x 3 x S x S uint8), ``labels``, ``source`` and
``content_class`` (int64), plus a JSON manifest in the file's metadata listing every file with its
content hash. safetensors is used because it cannot execute code on load (unlike pickle) and it is
written under a temporary name and renamed, so a reader never sees a half-written cache. A file lock
makes concurrent builders (DDP ranks, two `cifake` runs on one data dir) build it once.

The fingerprint that decides reuse is a hash of every file's relative path, size and mtime plus the
decode settings; any added, removed or touched file triggers a rebuild. A cache is only trusted when its
tensors still match the manifest it was written with: the row count of every tensor must equal the
manifest's file count, and a SHA-256 of the tensors' bytes (0.2 s for CIFAKE's 120k images) must equal
the one stored at build time; a cache whose pixels or labels were rewritten, or that lost rows, is
rebuilt from the images. (This catches corruption and careless edits, not an attacker who rewrites
the stored hash too.)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError, ImageDecodeError
from .image_io import decode_files, die_with_parent
from .layout import FileEntry, has_image_extension, list_files

log = logging.getLogger(__name__)

CACHE_FORMAT = 3  # 3: manifest stores n and a hash of the tensors (integrity check on load)
ON_BAD_FILE = ("error", "skip")


@dataclass(frozen=True)
class Source:
    """One folder of images that share a label (0 = real, 1 = fake) and a source name.

    `recursive` also takes images in sub-folders; `limit` keeps a seeded random sample of that many
    files (chosen before decoding, so sampling 2,000 of 100,000 images decodes 2,000).
    """

    name: str
    folder: Path
    label: int
    recursive: bool = False
    limit: int | None = None
    seed: int = 0


@dataclass
class DecodedSplit:
    """Decoded images of one split with per-image metadata, all index-aligned."""

    images: torch.Tensor  # (N, 3, S, S) uint8
    labels: torch.Tensor  # (N,) int64, 0 real / 1 fake
    source: torch.Tensor  # (N,) int64 index into source_names
    content_class: torch.Tensor  # (N,) int64, -1 when unknown
    files: list[str]
    hashes: list[str]
    source_names: list[str]
    skipped: list[dict] = field(default_factory=list)
    fingerprint: str = ""
    cache_path: Path | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, index: torch.Tensor | Sequence[int]) -> DecodedSplit:
        idx = torch.as_tensor(index, dtype=torch.long)
        il = idx.tolist()
        return DecodedSplit(
            self.images[idx],
            self.labels[idx],
            self.source[idx],
            self.content_class[idx],
            [self.files[i] for i in il],
            [self.hashes[i] for i in il],
            list(self.source_names),
            list(self.skipped),
            self.fingerprint,
            self.cache_path,
        )

    def manifest_hash(self) -> str:
        """Hash of the data this split holds (files and their content), for run provenance."""
        h = hashlib.blake2b(digest_size=16)
        for f, c in zip(self.files, self.hashes):
            h.update(f"{f}\0{c}\n".encode())
        return h.hexdigest()


# --------------------------------------------------------------------------------------------- scan
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


# ------------------------------------------------------------------------------------------- decode
def _parallel_decode(
    paths: list[str],
    size: int,
    resize: str | None,
    workers: int,
    progress: Callable[[int], None],
    chunk: int = 512,
    min_parallel: int = 2048,
):
    """Yield per-file decode results in order, using a spawn-based process pool for large sets.

    Below `min_parallel` files the pool's start-up (about a second per worker) costs more than it saves.
    """
    chunks = [paths[i : i + chunk] for i in range(0, len(paths), chunk)]
    if workers <= 1 or len(paths) < min_parallel:
        for c in chunks:
            res = decode_files(c, size, resize)
            progress(len(c))
            yield from res
        return
    # spawn (not fork): the parent may hold CUDA state or torch threads that fork would corrupt. A spawned
    # worker imports only decode_files' module (numpy + PIL) and the `cifake` script (cifake_lightning.console,
    # also light), so it starts in well under a second instead of importing torch and Lightning.
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=get_context("spawn"),
        initializer=die_with_parent,
        initargs=(os.getpid(),),
    ) as pool:
        futures = [pool.submit(decode_files, c, size, resize) for c in chunks]
        try:
            for c, fut in zip(chunks, futures):
                res = fut.result()
                progress(len(c))
                yield from res
        finally:
            for fut in futures:
                fut.cancel()


def _progress_bar(total: int, description: str, enabled: bool):
    if not enabled or total == 0:

        class _Null:
            def __enter__(self):
                return lambda n: None

            def __exit__(self, *a):
                return False

        return _Null()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    class _Bar:
        def __enter__(self):
            self.p = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                transient=True,
            )
            self.p.start()
            self.t = self.p.add_task(description, total=total)
            return lambda n: self.p.advance(self.t, n)

        def __exit__(self, *a):
            self.p.stop()
            return False

    return _Bar()


def decode_sources(
    items: list[tuple[FileEntry, int]],
    sources: Sequence[Source],
    *,
    size: int,
    resize: str | None,
    on_bad_file: str,
    class_parser: Callable[[str], int] | None,
    workers: int,
    progress: bool,
    description: str,
) -> DecodedSplit:
    n = len(items)
    images = np.empty((n, 3, size, size), dtype=np.uint8)
    keep = np.ones(n, dtype=bool)
    hashes: list[str] = [""] * n
    skipped: list[dict] = []
    paths = [str(e.path) for e, _ in items]
    with _progress_bar(n, description, progress) as advance:
        for i, (ok, payload, h) in enumerate(_parallel_decode(paths, size, resize, workers, advance)):
            hashes[i] = h
            if ok:
                images[i] = np.frombuffer(payload, dtype=np.uint8).reshape(3, size, size)
                continue
            if on_bad_file == "error":
                raise ImageDecodeError(
                    f"{payload} (use on_bad_file: skip to skip and count such files)", items[i][0].path
                )
            keep[i] = False
            skipped.append({"file": items[i][0].rel, "reason": payload})
    idx = np.flatnonzero(keep)
    kept = [items[i] for i in idx]
    return DecodedSplit(
        images=torch.from_numpy(images[idx]),
        labels=torch.tensor([sources[s].label for _, s in kept], dtype=torch.long),
        source=torch.tensor([s for _, s in kept], dtype=torch.long),
        content_class=torch.tensor(
            [class_parser(e.path.name) if class_parser else -1 for e, _ in kept], dtype=torch.long
        ),
        files=[e.rel for e, _ in kept],
        hashes=[hashes[i] for i in idx],
        source_names=[s.name for s in sources],
        skipped=skipped,
    )


# -------------------------------------------------------------------------------------------- store
TENSOR_KEYS = ("images", "labels", "source", "content_class")


def tensor_hash(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the stored tensors (names, dtypes, shapes and bytes), in a fixed order."""
    h = hashlib.sha256()
    for k in TENSOR_KEYS:
        t = tensors[k].contiguous()
        h.update(f"{k}\0{t.dtype}\0{tuple(t.shape)}\n".encode())
        h.update(memoryview(t.numpy()).cast("B"))
    return h.hexdigest()


def _write_atomic(split: DecodedSplit, path: Path, manifest: dict) -> None:
    from safetensors.torch import save_file

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tensors = {
        "images": split.images.contiguous(),
        "labels": split.labels.contiguous(),
        "source": split.source.contiguous(),
        "content_class": split.content_class.contiguous(),
    }
    manifest = {**manifest, "tensor_sha256": tensor_hash(tensors)}
    try:
        save_file(tensors, str(tmp), metadata={"manifest": json.dumps(manifest)})
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    sidecar = path.with_suffix(".manifest.json")
    tmp_json = sidecar.with_name(f".{sidecar.name}.{os.getpid()}.tmp")
    tmp_json.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp_json, sidecar)


def read_manifest(path: Path) -> dict | None:
    """The manifest of a cache file, or None when it is missing or unreadable (then it is rebuilt)."""
    from safetensors import safe_open

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        manifest = json.loads(meta["manifest"])
        return manifest if manifest.get("format") == CACHE_FORMAT else None
    except Exception:  # noqa: BLE001 - any unreadable cache is simply rebuilt
        return None


def _read(path: Path, manifest: dict) -> DecodedSplit | None:
    """Load a cache file, or None (with a warning) when its tensors no longer match its manifest."""
    from safetensors.torch import load_file

    try:
        t = load_file(str(path))
    except Exception as e:  # noqa: BLE001 - an unreadable cache is rebuilt, never trusted
        warnings.warn(f"cache {path} is unreadable ({e}); rebuilding it from the images", stacklevel=3)
        return None
    n = manifest.get("n")
    problem = None
    if set(TENSOR_KEYS) - set(t):
        problem = f"tensors {sorted(set(TENSOR_KEYS) - set(t))} are missing"
    elif not (n == len(manifest.get("files", ())) and all(int(t[k].shape[0]) == n for k in TENSOR_KEYS)):
        rows = {k: int(t[k].shape[0]) for k in TENSOR_KEYS}
        problem = f"it holds {rows} rows but its manifest lists {len(manifest.get('files', ()))} files"
    elif tensor_hash(t) != manifest.get("tensor_sha256"):
        problem = "its pixels or labels differ from what was written (content hash mismatch)"
    if problem:
        warnings.warn(f"cache {path} does not match its manifest: {problem}; rebuilding it", stacklevel=3)
        return None
    return DecodedSplit(
        images=t["images"],
        labels=t["labels"],
        source=t["source"],
        content_class=t["content_class"],
        files=manifest["files"],
        hashes=manifest["hashes"],
        source_names=manifest["sources"],
        skipped=manifest.get("skipped", []),
        fingerprint=manifest["fingerprint"],
        cache_path=path,
    )


def default_cache_dir(root: Path) -> Path:
    """`$CIFAKE_CACHE/<root-id>`, else the platform user cache; never inside the (maybe read-only) data."""
    base = os.environ.get("CIFAKE_CACHE")
    if base:
        base_path = Path(base).expanduser()
    else:
        from platformdirs import user_cache_dir

        base_path = Path(user_cache_dir("cifake-lightning"))
    rid = hashlib.blake2b(str(Path(root).resolve()).encode(), digest_size=6).hexdigest()
    return base_path / f"{Path(root).resolve().name}-{rid}"


def load_or_build(
    name: str,
    sources: Sequence[Source],
    root: Path,
    cache_dir: Path | None,
    *,
    size: int = 32,
    resize: str | None = None,
    on_bad_file: str = "error",
    class_parser: Callable[[str], int] | None = None,
    workers: int | None = None,
    progress: bool = True,
    lock_timeout: float = 3600.0,
) -> DecodedSplit:
    """Return the decoded split, reading the cache when its fingerprint matches, else building it."""
    from filelock import FileLock, Timeout

    if on_bad_file not in ON_BAD_FILE:
        raise ValueError(f"on_bad_file must be one of {ON_BAD_FILE}, got {on_bad_file!r}")
    root = Path(root)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir(root)
    settings = {
        "format": CACHE_FORMAT,
        "size": size,
        "resize": resize,
        "on_bad_file": on_bad_file,
        "sources": [
            (s.name, str(Path(s.folder).resolve()), s.label, s.recursive, s.limit, s.seed) for s in sources
        ],
        "class_parser": getattr(class_parser, "__name__", None),
    }
    key = hashlib.blake2b(json.dumps(settings, sort_keys=True).encode(), digest_size=5).hexdigest()
    path = cache_dir / f"{name}-{size}px-{key}.safetensors"

    items, skipped_nonimages = scan_sources(sources, root, on_bad_file)
    fp = fingerprint([e for e, _ in items], settings)

    manifest = read_manifest(path)
    if manifest is not None and manifest.get("fingerprint") == fp:
        cached = _read(path, manifest)
        if cached is not None:
            return cached

    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path) + ".lock", timeout=lock_timeout)
        lock.acquire()
    except (OSError, Timeout) as e:
        warnings.warn(
            f"cache dir {cache_dir} is not usable ({e}); decoding {name} in memory only", stacklevel=2
        )
        lock = None
    try:
        if lock is not None:  # someone else may have built it while we waited for the lock
            manifest = read_manifest(path)
            if manifest is not None and manifest.get("fingerprint") == fp:
                cached = _read(path, manifest)
                if cached is not None:
                    return cached
        t0 = time.perf_counter()
        split = decode_sources(
            items,
            sources,
            size=size,
            resize=resize,
            on_bad_file=on_bad_file,
            class_parser=class_parser,
            workers=workers if workers is not None else (os.cpu_count() or 1),
            progress=progress,
            description=f"decoding {name}",
        )
        split.skipped = skipped_nonimages + split.skipped
        split.fingerprint = fp
        if split.skipped:
            warnings.warn(
                f"{name}: skipped {len(split.skipped)} unreadable file(s), e.g. {split.skipped[0]['file']}: "
                f"{split.skipped[0]['reason']} (full list in the cache manifest)",
                stacklevel=2,
            )
        manifest = {
            "format": CACHE_FORMAT,
            "fingerprint": fp,
            "settings": settings,
            "root": str(root.resolve()),
            "n": len(split),
            "files": split.files,
            "hashes": split.hashes,
            "sources": split.source_names,
            "skipped": split.skipped,
            "build_seconds": round(time.perf_counter() - t0, 3),
        }
        if lock is not None:
            try:
                _write_atomic(split, path, manifest)
                split.cache_path = path
            except Exception as e:  # noqa: BLE001 - OSError, or safetensors' SafetensorError on a full disk
                warnings.warn(
                    f"could not write cache {path} ({type(e).__name__}: {e}); continuing without it "
                    "(the images will be decoded again next time)",
                    stacklevel=2,
                )
        return split
    finally:
        if lock is not None:
            lock.release()
