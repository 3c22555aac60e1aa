"""Decode scanned files into a DecodedSplit: in this process for small sets, else in a spawn-based pool of
workers that import only numpy and PIL (data/image_io.py) and die with their parent."""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..errors import DataError, ImageDecodeError
from .image_io import decode_files, die_with_parent
from .layout import FileEntry
from .split import DecodedSplit, Source

UNGUARDED = (
    'a script that sets up a data module must do so under `if __name__ == "__main__":` (each spawned '
    "decode worker imports the script again), or pass decode_workers=1"
)


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
        mp_context=multiprocessing.get_context("spawn"),
        initializer=die_with_parent,
        initargs=(os.getpid(),),
    ) as pool:
        futures = [pool.submit(decode_files, c, size, resize) for c in chunks]
        try:
            for c, fut in zip(chunks, futures):
                try:
                    res = fut.result()
                except BrokenProcessPool:
                    raise DataError(
                        "the image decode workers died (killed, out of memory, or see the message above); "
                        f"note that {UNGUARDED}"
                    ) from None
                progress(len(c))
                yield from res
        finally:
            for fut in futures:
                fut.cancel()


def exit_if_importing_main() -> None:
    """Exit at once in a spawned worker that is still importing its parent's main script.

    Each spawned decode worker imports the parent's main script again; a script that sets up a data
    module at import time (no `if __name__ == "__main__":` guard) gets here in the worker, which would
    then wait for the cache lock its parent holds while the parent waits for it: both hang for ever.
    `load_or_build` calls it before taking that lock; exiting breaks the parent's pool, which then
    says why (`_parallel_decode`)."""
    if getattr(multiprocessing.current_process(), "_inheriting", False):  # multiprocessing's own test
        print(f"cifake: error: {UNGUARDED}", file=sys.stderr, flush=True)
        os._exit(2)


def _progress_bar(total: int, description: str, enabled: bool):
    if not enabled or total == 0:

        class _Null:
            def __enter__(self):
                return lambda n: None

            def __exit__(self, *a):
                return False

        return _Null()

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
