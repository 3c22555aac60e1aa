"""Decode-once cache: reuse, invalidation, bad files, atomic and concurrent builds."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from cifake_lightning.data import cache as cache_mod
from cifake_lightning.data.cache import load_or_build, read_manifest
from cifake_lightning.data.layout import cifake_content_class
from cifake_lightning.data.split import Source
from cifake_lightning.errors import DataError, ImageDecodeError


def _sources(root: Path, split="train"):
    return [Source("REAL", root / split / "REAL", 0), Source("FAKE", root / split / "FAKE", 1)]


def _build(root, cache_dir, **kw):
    return load_or_build(
        "train",
        _sources(root),
        root,
        cache_dir,
        progress=False,
        workers=1,
        class_parser=cifake_content_class,
        **kw,
    )


def test_build_then_reuse_without_decoding(cifake_copy, tmp_path, monkeypatch):
    first = _build(cifake_copy, tmp_path / "c")
    assert len(first) == 600 and first.images.shape == (600, 3, 32, 32)
    assert first.labels.sum() == 300 and first.cache_path is not None
    assert first.content_class.min() == 0 and first.content_class.max() == 9

    def boom(*a, **k):
        raise AssertionError("decoded again although nothing changed")

    monkeypatch.setattr(cache_mod, "decode_sources", boom)
    again = _build(cifake_copy, tmp_path / "c")
    assert again.files == first.files and bool((again.images == first.images).all())


@pytest.mark.parametrize("change", ["touch", "remove", "add"])
def test_changed_files_trigger_rebuild(cifake_copy, tmp_path, change):
    first = _build(cifake_copy, tmp_path / "c")
    target = cifake_copy / "train" / "REAL" / "0000.jpg"
    if change == "touch":
        target.write_bytes((cifake_copy / "train" / "REAL" / "0001.jpg").read_bytes())
        os.utime(target, ns=(time.time_ns(), time.time_ns() + 10**9))
    elif change == "remove":
        target.unlink()
    else:
        (cifake_copy / "train" / "FAKE" / "9999.jpg").write_bytes(target.read_bytes())
    second = _build(cifake_copy, tmp_path / "c")
    assert second.fingerprint != first.fingerprint
    assert len(second) == {"touch": 600, "remove": 599, "add": 601}[change]
    assert read_manifest(second.cache_path)["fingerprint"] == second.fingerprint


def test_bad_file_error_names_it_and_skip_counts(cifake_copy, tmp_path):
    bad = cifake_copy / "train" / "FAKE" / "0003 (4).jpg"
    bad.write_bytes(b"not a jpeg at all")
    with pytest.raises(ImageDecodeError) as e:
        _build(cifake_copy, tmp_path / "c")
    assert "0003 (4).jpg" in str(e.value) and "on_bad_file" in str(e.value)
    with pytest.warns(UserWarning, match="skipped 1"):
        split = _build(cifake_copy, tmp_path / "c", on_bad_file="skip")
    assert len(split) == 599 and split.skipped[0]["file"].endswith("0003 (4).jpg")


def test_non_image_file_and_empty_class(cifake_copy, tmp_path):
    (cifake_copy / "train" / "REAL" / "notes.txt").write_text("hello")
    (cifake_copy / "train" / "REAL" / ".DS_Store").write_text("junk is ignored")
    with pytest.raises(ImageDecodeError, match="notes.txt"):
        _build(cifake_copy, tmp_path / "c")
    (cifake_copy / "train" / "REAL" / "notes.txt").unlink()
    for f in (cifake_copy / "train" / "FAKE").iterdir():
        f.unlink()
    with pytest.raises(DataError, match="no images in the FAKE folder"):
        _build(cifake_copy, tmp_path / "c")


def test_no_temporary_files_left_and_cache_is_safetensors(cifake_root, tmp_path):
    split = _build(cifake_root, tmp_path / "c")
    names = sorted(p.name for p in (tmp_path / "c").iterdir())
    assert not [n for n in names if n.endswith(".tmp")]
    assert split.cache_path.read_bytes()[:8]  # header length prefix of a safetensors file
    assert split.cache_path.with_suffix(".manifest.json").is_file()


def test_unwritable_cache_dir_falls_back_to_memory(cifake_root, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache dir should be")
    with pytest.warns(UserWarning, match="not usable"):
        split = _build(cifake_root, blocker / "sub")
    assert len(split) == 600 and split.cache_path is None


def test_parallel_decode_matches_serial(cifake_root, tmp_path):

    serial = load_or_build(
        "test", _sources(cifake_root, "test"), cifake_root, tmp_path / "a", progress=False, workers=1
    )
    paths = [str(cifake_root / f) for f in serial.files]
    seen = []
    from cifake_lightning.data.decode import _parallel_decode

    res = list(_parallel_decode(paths, 32, None, 2, seen.append, chunk=16, min_parallel=0))
    pix = np.stack([np.frombuffer(r[1], dtype=np.uint8) for r in res]).reshape(-1, 3, 32, 32)
    assert sum(seen) == len(paths) and (pix == serial.images.numpy()).all()


UNGUARDED_SCRIPT = r"""
import sys
from pathlib import Path
from cifake_lightning.data import decode
from cifake_lightning.data.cache import load_or_build
from cifake_lightning.data.split import Source
decode._parallel_decode.__defaults__ = (8, 0)  # chunk, min_parallel: decode these few files in workers
root = Path(sys.argv[1])
split = load_or_build("test", [Source("REAL", root / "test/REAL", 0)], root, Path(sys.argv[2]), workers=2,
                      progress=False)
print(len(split))
"""


def test_a_script_that_decodes_without_a_main_guard_stops_with_what_to_do(cifake_root, tmp_path):
    """Spawned decode workers import the parent's main script again; one that decodes at import time
    (no `if __name__ == "__main__":`) waited in the worker for the cache lock its parent held, while the
    parent waited for the worker: both hung for ever. Now the workers exit at once and the parent stops
    with a message saying what to do."""
    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), str(cifake_root), str(tmp_path / "cache")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode != 0 and 'if __name__ == "__main__":' in done.stderr, done.stderr[-2000:]
    assert "decode workers died" in done.stderr


CONCURRENT = r"""
import sys, json
from pathlib import Path
from cifake_lightning.data.cache import load_or_build
from cifake_lightning.data.split import Source
root, cache = Path(sys.argv[1]), Path(sys.argv[2])
s = load_or_build("train", [Source("REAL", root/"train/REAL", 0), Source("FAKE", root/"train/FAKE", 1)],
                  root, cache, progress=False, workers=1)
print(json.dumps({"n": len(s), "fp": s.fingerprint, "sum": int(s.images.sum())}))
"""


def test_two_processes_building_at_once_end_with_one_valid_cache(cifake_root, tmp_path):
    cache = tmp_path / "shared-cache"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT, str(cifake_root), str(cache)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    results = [__import__("json").loads(o[0].strip().splitlines()[-1]) for o in outs]
    assert results[0] == results[1] and results[0]["n"] == 600
    caches = [p for p in cache.iterdir() if p.suffix == ".safetensors"]
    assert len(caches) == 1 and read_manifest(caches[0])["fingerprint"] == results[0]["fp"]
    assert not [p for p in cache.iterdir() if p.name.endswith(".tmp")]


# ------------------------------------------------------------------------------ 2. tampered caches
def _srcs(root):
    from cifake_lightning.data.split import Source

    return [Source("REAL", root / "test" / "REAL", 0), Source("FAKE", root / "test" / "FAKE", 1)]


@pytest.mark.parametrize("tamper", ["labels", "pixels", "rows"])
def test_cache_whose_tensors_were_rewritten_is_rebuilt(cifake_root, tmp_path, tamper):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from cifake_lightning.data.cache import load_or_build

    first = load_or_build("test", _srcs(cifake_root), cifake_root, tmp_path, progress=False, workers=1)
    path = first.cache_path
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    t = load_file(str(path))
    if tamper == "labels":
        t["labels"] = 1 - t["labels"]  # a still-valid safetensors file that inverts every score
    elif tamper == "pixels":
        t["images"] = 255 - t["images"]
    else:
        t = {k: v[:10].clone() for k, v in t.items()}  # 10 rows, manifest lists 100
    save_file(t, str(path), metadata=meta)
    with pytest.warns(UserWarning, match="does not match its manifest"):
        again = load_or_build("test", _srcs(cifake_root), cifake_root, tmp_path, progress=False, workers=1)
    assert torch.equal(again.labels, first.labels) and torch.equal(again.images, first.images)
    assert len(again) == len(first.files) == 100


# ------------------------------------------------------------------------------ 9. full disks
def test_full_cache_dir_warns_and_continues(cifake_root, tmp_path, monkeypatch):
    from safetensors import SafetensorError

    from cifake_lightning.data import cache
    from cifake_lightning.data.cache import load_or_build

    def full(*a, **k):
        raise SafetensorError("Error while serializing: IoError(No space left on device)")

    monkeypatch.setattr(cache, "save_file", full)
    with pytest.warns(UserWarning, match="could not write cache"):
        split = load_or_build("test", _srcs(cifake_root), cifake_root, tmp_path, progress=False, workers=1)
    assert len(split) == 100 and split.cache_path is None


def test_tampered_cache_is_rebuilt_not_trusted(cifake_root, tmp_path):
    from cifake_lightning.data.cache import load_or_build
    from cifake_lightning.data.split import Source

    srcs = [
        Source("REAL", cifake_root / "test" / "REAL", 0),
        Source("FAKE", cifake_root / "test" / "FAKE", 1),
    ]
    first = load_or_build("test", srcs, cifake_root, tmp_path, progress=False, workers=1)
    first.cache_path.write_bytes(first.cache_path.read_bytes()[:1000])  # a half-written / truncated cache
    again = load_or_build("test", srcs, cifake_root, tmp_path, progress=False, workers=1)
    assert torch.equal(again.images, first.images)
