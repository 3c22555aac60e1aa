"""A small synthetic dataset in the exact CIFAKE layout, for demos and tests (not a CIFAKE substitute).

Reals are natural-looking textures: colour 1/f^alpha noise (the power-law spectrum of photographs)
with a few soft-edged blobs. Fakes come from the same content process rendered at half resolution
and upsampled the way generator decoders do, by nearest-neighbour repetition or a stride-2 transposed
convolution with a fixed kernel; both leave periodic peaks in the spectrum (the "checkerboard"
signature that frequency detectors look for) while the content statistics stay alike. Each of the
ten content classes has its own palette and blob count, and file names follow CIFAKE's convention
(`NNNN.jpg` for class 0, `NNNN (k).jpg` for class k-1), so per-class code paths get exercised.
Saved as JPEG quality 95 like genset-v1; a few thousand images take a few seconds.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import DataError
from .layout import LABEL_NAMES

SIZE = 32


def _power_law_fields(rng: np.random.Generator, n: int, size: int, alpha: np.ndarray) -> np.ndarray:
    """n x 3 x size x size fields with 1/f^alpha spectra, each channel scaled to unit std."""
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.fftfreq(size)[None, :]
    radius = np.sqrt(fx**2 + fy**2)
    radius[0, 0] = 1.0 / size
    amp = radius[None, None] ** (-alpha[:, None, None, None] / 2.0)  # power ~ 1/f^alpha
    spec = (rng.standard_normal((n, 3, size, size)) + 1j * rng.standard_normal((n, 3, size, size))) * amp
    field = np.fft.ifft2(spec).real
    field -= field.mean(axis=(2, 3), keepdims=True)
    field /= field.std(axis=(2, 3), keepdims=True) + 1e-8
    return field


def _render(rng: np.random.Generator, classes: np.ndarray, size: int) -> np.ndarray:
    """Float images in [0, 1], n x size x size x 3, for the given content classes."""
    n = len(classes)
    alpha = rng.uniform(1.6, 2.6, n)
    f = _power_law_fields(rng, n, size, alpha)
    # luminance + two weaker chroma fields, mixed into RGB with a class palette
    hue = (classes / 10.0 + rng.normal(0, 0.03, n)) * 2 * np.pi
    base = np.stack([0.5 + 0.25 * np.cos(hue + k * 2 * np.pi / 3) for k in range(3)], axis=1)  # n x 3
    lum = 0.18 * f[:, 0]
    img = (
        base[:, :, None, None]
        + lum[:, None]
        + 0.06 * f[:, 1:2] * np.array([1, -0.5, -0.5])[None, :, None, None]
    )
    img += 0.06 * f[:, 2:3] * np.array([0, 0.8, -0.8])[None, :, None, None]
    yy, xx = np.mgrid[0:size, 0:size] / size
    for i in range(n):
        for _ in range(1 + classes[i] % 3):
            cy, cx = rng.uniform(0.15, 0.85, 2)
            ry, rx = rng.uniform(0.08, 0.3, 2)
            d = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2
            mask = 1.0 / (1.0 + np.exp(np.clip((d - 1.0) * 6.0, -30.0, 30.0)))
            colour = rng.uniform(0.1, 0.9, 3)
            img[i] = img[i] * (1 - mask) + colour[:, None, None] * mask
    return np.clip(img.transpose(0, 2, 3, 1), 0.0, 1.0)


def _upsample_nearest(x: np.ndarray) -> np.ndarray:
    return x.repeat(2, axis=1).repeat(2, axis=2)


def _upsample_transposed(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Stride-2 transposed convolution (zero insertion + 3x3 kernel): uneven overlap -> checkerboard."""
    n, h, w, c = x.shape
    z = np.zeros((n, 2 * h + 2, 2 * w + 2, c))
    z[:, 1:-1:2, 1:-1:2] = x
    out = np.zeros((n, 2 * h, 2 * w, c))
    for dy in range(3):
        for dx in range(3):
            out += kernel[dy, dx] * z[:, dy : dy + 2 * h, dx : dx + 2 * w]
    return out


def make_images(n: int, label: int, classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """n uint8 images (n x 32 x 32 x 3) of the given label (0 real, 1 fake)."""
    if label == 0:
        img = _render(rng, classes, SIZE)
    else:
        low = _render(rng, classes, SIZE // 2)
        kernel = np.array([[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]])
        kernel = kernel * np.array([[1.0, 0.7, 1.0], [0.8, 1.0, 0.8], [1.0, 0.7, 1.0]])
        use_nn = rng.random(n) < 0.5
        img = np.where(use_nn[:, None, None, None], _upsample_nearest(low), _upsample_transposed(low, kernel))
        img += rng.normal(0, 0.01, img.shape)  # fine sensor-like noise so fakes are not piecewise flat
    img = img + rng.normal(0, 0.01, img.shape)
    return np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _file_name(i: int, cls: int) -> str:
    return f"{i:04d}.jpg" if cls == 0 else f"{i:04d} ({cls + 1}).jpg"


def write_synthetic_cifake(
    root: str | Path,
    n_train: int = 1000,
    n_test: int = 250,
    seed: int = 0,
    quality: int = 95,
    overwrite: bool = False,
) -> dict[str, int]:
    """Write `n_train`/`n_test` images per label into root/{train,test}/{REAL,FAKE}; returns counts.

    Refuses to write into a folder that already holds images unless `overwrite` is set.
    """
    root = Path(root)
    if n_train < 10 or n_test < 10:
        raise ValueError("n_train and n_test must be at least 10 per label (one per content class)")
    existing = [p for p in root.glob("*/*/*.jpg")] if root.exists() else []
    if existing and not overwrite:
        raise DataError(
            f"already holds {len(existing)} images; pass overwrite=True (--overwrite) to replace them", root
        )
    rng = np.random.default_rng(seed)
    counts = {}
    for split, n in (("train", n_train), ("test", n_test)):
        for label, name in enumerate(LABEL_NAMES):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for old in folder.glob("*.jpg"):
                old.unlink()
            classes = np.arange(n) % 10
            per_class = np.arange(n) // 10
            for start in range(0, n, 500):
                sl = slice(start, min(n, start + 500))
                imgs = make_images(sl.stop - sl.start, label, classes[sl], rng)
                for img, cls, idx in zip(imgs, classes[sl], per_class[sl]):
                    buf = io.BytesIO()
                    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
                    (folder / _file_name(int(idx), int(cls))).write_bytes(buf.getvalue())
            counts[f"{split}/{name}"] = n
    (root / "SYNTHETIC.txt").write_text(
        "Synthetic stand-in written by `cifake data synth` (cifake_lightning.data.synth): NOT CIFAKE.\n"
        "Reals are 1/f colour textures; fakes are the same process upsampled 2x (nearest or transposed\n"
        "convolution), which leaves periodic spectral peaks. Get the real data with `cifake data download`.\n"
    )
    return counts
