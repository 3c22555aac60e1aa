"""Decode one image file into a 3 x H x W uint8 tensor, or raise ImageDecodeError naming it.

This is the only place that touches PIL. It handles everything a user's folder may contain:
JPEG/PNG/WebP/BMP, grayscale, palette, RGBA (alpha composited on black so the result is
deterministic), CMYK and 16-bit images; EXIF orientation is applied (as image viewers show the photo;
CIFAKE has none), and an animation gives its first frame with an ImageWarning. It
refuses zero-byte files, text files named .jpg, truncated files and decompression bombs with a
one-line reason.
"""

from __future__ import annotations

import ctypes
import hashlib
import io
import os
import signal
import stat
import threading
import time
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import ImageDecodeError

#: Largest image (in pixels) we agree to decode. PIL's own guard only warns below 2x this; a
#: 32x32 pipeline never needs more than a few megapixels, so anything bigger is refused as a bomb.
MAX_PIXELS = 64_000_000

#: How to bring an image of another size to the target size (None = refuse other sizes).
#: "area" averages pixel blocks (PIL BOX filter after a centre square crop): it keeps less aliasing
#: than "bilinear" but also removes high-frequency generator traces, which matters for detectors.
RESIZE_FILTERS = {
    "area": Image.Resampling.BOX,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "nearest": Image.Resampling.NEAREST,
    "lanczos": Image.Resampling.LANCZOS,
}


#: Largest image file (in bytes) we read: a 64-megapixel PNG is well below it. Applied to the bytes read,
#: not only to the size the file system reports (a device or a growing file reports none or too little).
MAX_FILE_BYTES = 256 * 1024 * 1024


class ImageWarning(UserWarning):
    """An image was decoded, but not all of it is used (e.g. the later frames of an animation)."""


def read_image_file(path: str | Path) -> bytes:
    """The bytes of one image file: regular files only (a FIFO would block forever, /dev/zero never
    ends), at most MAX_FILE_BYTES. Raises ImageDecodeError naming the file."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError as e:
        raise ImageDecodeError(f"cannot read file ({e.strerror or e})", path) from None
    if stat.S_ISDIR(st.st_mode):
        raise ImageDecodeError("is a directory, not an image file", path)
    if not stat.S_ISREG(st.st_mode):
        raise ImageDecodeError("not a regular file (a pipe, socket or device): not read", path)
    if st.st_size > MAX_FILE_BYTES:
        raise ImageDecodeError(f"file is {st.st_size:,} bytes, over the {MAX_FILE_BYTES:,}-byte limit", path)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise ImageDecodeError(f"cannot read file ({e.strerror or e})", path) from None
    if len(data) > MAX_FILE_BYTES:
        raise ImageDecodeError(f"file grew past the {MAX_FILE_BYTES:,}-byte limit while read", path)
    return data


def content_hash(data: bytes) -> str:
    """Short, stable hash of a file's bytes (for cache manifests and train/test leakage checks)."""
    return hashlib.blake2b(data, digest_size=12).hexdigest()


def _to_rgb(img: Image.Image) -> Image.Image:
    """Bring any PIL mode to 8-bit RGB deterministically."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, mode="L").convert("RGB")
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        arr = np.clip(arr * (255.0 if arr.max() <= 1.0 else 1.0) + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, mode="L").convert("RGB")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (0, 0, 0, 255))
        return Image.alpha_composite(background, img).convert("RGB")
    return img.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV


def _fit(img: Image.Image, size: int, resize: str | None, path: Path) -> Image.Image:
    if img.size == (size, size):
        return img
    if resize is None:
        raise ImageDecodeError(
            f"image is {img.size[0]}x{img.size[1]}, expected {size}x{size} "
            "(set a resize policy, e.g. resize: area, to accept other sizes)",
            path,
        )
    if resize not in RESIZE_FILTERS:
        raise ImageDecodeError(
            f"unknown resize policy {resize!r}; choose from {sorted(RESIZE_FILTERS)}", path
        )
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    img = img.crop((left, top, left + side, top + side))
    return img.resize((size, size), RESIZE_FILTERS[resize])


def decode_image_bytes(
    data: bytes, path: Path | str, size: int = 32, resize: str | None = None
) -> np.ndarray:
    """Decode encoded image bytes into an (H, W, 3) uint8 array of `size` x `size`.

    Raises ImageDecodeError (never a PIL exception) for anything that is not a readable image.
    """
    path = Path(path)
    if len(data) == 0:
        raise ImageDecodeError("file is empty (0 bytes)", path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            w, h = img.size
            if w * h > MAX_PIXELS:
                raise ImageDecodeError(f"image is {w}x{h}, over the {MAX_PIXELS:,}-pixel limit", path)
            if w < 1 or h < 1:
                raise ImageDecodeError(f"image has no pixels ({w}x{h})", path)
            img.load()  # forces full decode: truncated files fail here
            frames = getattr(img, "n_frames", 1)
            if frames > 1:
                img.seek(0)
                warnings.warn(
                    f"{path}: animated image of {frames} frames; only the first is used",
                    ImageWarning,
                    stacklevel=2,
                )
            img = ImageOps.exif_transpose(img)  # as viewers show it (a phone photo's rotation)
            img = _to_rgb(img)
            img = _fit(img, size, resize, path)
            arr = np.asarray(img, dtype=np.uint8)
    except ImageDecodeError:
        raise
    except UnidentifiedImageError:
        raise ImageDecodeError("not an image file PIL can identify", path) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageDecodeError(f"refused as a decompression bomb ({e})", path) from None
    except (OSError, SyntaxError, ValueError, EOFError, TypeError) as e:
        raise ImageDecodeError(f"corrupt or truncated image ({type(e).__name__}: {e})", path) from None
    except MemoryError:
        raise ImageDecodeError("image too large to decode in memory", path) from None
    if arr.shape != (size, size, 3):
        raise ImageDecodeError(f"decoded to unexpected shape {arr.shape}", path)
    return arr


def decode_files(paths: list[str], size: int, resize: str | None) -> list[tuple[bool, bytes | str, str]]:
    """Decode a chunk of files (the cache builder's worker task; this module imports no torch).

    Returns per file (ok, C x H x W uint8 pixel bytes or the error reason, content hash of its bytes).
    """
    out = []
    for p in paths:
        try:
            data = read_image_file(p)
        except ImageDecodeError as e:
            out.append((False, str(e).split(": ", 1)[-1], ""))
            continue
        try:
            arr = decode_image_bytes(data, p, size=size, resize=resize)
            out.append((True, np.ascontiguousarray(arr.transpose(2, 0, 1)).tobytes(), content_hash(data)))
        except ImageDecodeError as e:
            out.append((False, str(e).split(": ", 1)[-1], content_hash(data)))
    return out


def load_image(path: str | Path, size: int = 32, resize: str | None = None) -> np.ndarray:
    """Read and decode one file; see decode_image_bytes. Unreadable files raise ImageDecodeError."""
    return decode_image_bytes(read_image_file(path), path, size=size, resize=resize)


def load_image_tensor(path: str | Path, size: int = 32, resize: str | None = None):
    """Same as load_image but returns a torch (3, size, size) uint8 tensor."""
    import torch  # decode workers import this module, and only need torch here

    return torch.from_numpy(load_image(path, size, resize).transpose(2, 0, 1).copy())


def die_with_parent(parent_pid: int) -> None:
    """Initializer of decode worker processes: exit as soon as the process that started them is gone.

    A `cifake` run killed with SIGKILL cannot shut its process pool down, and the spawned workers would
    otherwise keep decoding for minutes. On Linux the kernel delivers SIGKILL to the worker when its
    parent dies (PR_SET_PDEATHSIG); everywhere, a daemon thread also polls the parent's pid.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):  # not Linux: the thread below covers it
        pass
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()
