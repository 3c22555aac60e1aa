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

The steps live in their own modules: data/split.py (the types), data/scan.py (listing and
fingerprinting), data/decode.py (decoding, in parallel for large sets); this module stores, verifies
and reuses caches, and orchestrates the three under a file lock.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from filelock import FileLock, Timeout
from platformdirs import user_cache_dir
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from .decode import decode_sources, exit_if_importing_main
from .scan import fingerprint, scan_sources
from .split import ON_BAD_FILE, DecodedSplit, Source

log = logging.getLogger(__name__)

CACHE_FORMAT = 3  # 3: manifest stores n and a hash of the tensors (integrity check on load)


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
    exit_if_importing_main()
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
