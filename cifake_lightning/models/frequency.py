"""Frequency representations of images: orthonormal DCT-II (global or 8x8 blocks) and FFT magnitude.

kornia has no public DCT, so the DCT is the textbook orthonormal matrix transform ``Y = C X C^T`` with
``C[k, n] = a_k cos(pi (2n + 1) k / 2N)``, ``a_0 = sqrt(1/N)``, ``a_k = sqrt(2/N)``; it is exactly
invertible (``X = C^T Y C``) and is tested against scipy.fft.dctn(norm="ortho"). Colour handling
uses kornia (``rgb_to_ycbcr`` for luma). Upsampling generators leave periodic peaks in these spectra,
which is what the frequency stream of the dual-stream detector is meant to pick up.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import nn

from ..errors import ConfigError, check_choice


@lru_cache(maxsize=16)
def _dct_matrix_cpu(n: int) -> torch.Tensor:
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    c = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    c[0] /= math.sqrt(2.0)
    return c


def dct_matrix(n: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """The N x N orthonormal DCT-II matrix (rows are basis vectors)."""
    return _dct_matrix_cpu(n).to(device=device, dtype=dtype)


def dct2(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal 2-D DCT-II over the last two dimensions (H, W)."""
    h, w = x.shape[-2:]
    ch, cw = dct_matrix(h, x.device, x.dtype), dct_matrix(w, x.device, x.dtype)
    return ch @ x @ cw.T


def idct2(y: torch.Tensor) -> torch.Tensor:
    """Inverse of dct2 (orthonormal DCT-III)."""
    h, w = y.shape[-2:]
    ch, cw = dct_matrix(h, y.device, y.dtype), dct_matrix(w, y.device, y.dtype)
    return ch.T @ y @ cw


def block_dct2(x: torch.Tensor, block: int = 8) -> torch.Tensor:
    """DCT of every non-overlapping block x block tile (as JPEG does), in place of the tile: same shape."""
    *lead, h, w = x.shape
    if h % block or w % block:
        raise ValueError(f"image size {h}x{w} is not a multiple of the DCT block size {block}")
    t = x.reshape(*lead, h // block, block, w // block, block).transpose(-3, -2)  # (..., hb, wb, b, b)
    t = dct2(t)
    return t.transpose(-3, -2).reshape(*lead, h, w)


def block_idct2(y: torch.Tensor, block: int = 8) -> torch.Tensor:
    *lead, h, w = y.shape
    t = y.reshape(*lead, h // block, block, w // block, block).transpose(-3, -2)
    return idct2(t).transpose(-3, -2).reshape(*lead, h, w)


def radial_frequency(h: int, w: int, block: int | None = None) -> torch.Tensor:
    """Normalised frequency radius in [0, 1] of each DCT coefficient position (for band masks).

    Position (u, v) of an H x W DCT has radius sqrt((u/(H-1))^2 + (v/(W-1))^2) / sqrt(2): 0 at DC, 1 at
    the highest frequency. For blockwise DCTs, (u, v) is the position inside its block.
    """
    if block:
        u = (torch.arange(h) % block).float()[:, None] / (block - 1)
        v = (torch.arange(w) % block).float()[None, :] / (block - 1)
    else:
        u = torch.arange(h, dtype=torch.float32)[:, None] / max(h - 1, 1)
        v = torch.arange(w, dtype=torch.float32)[None, :] / max(w - 1, 1)
    return torch.sqrt(u**2 + v**2) / math.sqrt(2.0)


class FrequencyTransform(nn.Module):
    """Image (B, 3, H, W) -> log-magnitude spectrum (B, C, H, W), C = 1 (luma) or 3 (rgb).

    Args:
        kind: "dct" (orthonormal DCT-II) or "fft" (centred FFT magnitude).
        block: DCT block size (8 = JPEG-style blockwise) or 0 for one global DCT.
        colour: "luma" (Y of YCbCr, via kornia) or "rgb" (each channel).
        log: take log(|c| + eps); spectra span orders of magnitude, logs keep them in a trainable range.
    """

    def __init__(
        self, kind: str = "dct", block: int = 0, colour: str = "luma", log: bool = True, eps: float = 1e-3
    ) -> None:
        super().__init__()
        check_choice("model.backbone.frequency", kind, ("dct", "fft"))
        check_choice("model.backbone.frequency_colour", colour, ("luma", "rgb"))
        if block < 0 or (kind == "fft" and block):
            raise ConfigError(
                "model.backbone.dct_block", "must be >= 0 and is only used with frequency_kind dct"
            )
        self.kind, self.block, self.colour, self.log, self.eps = kind, block, colour, log, eps

    @property
    def channels(self) -> int:
        return 1 if self.colour == "luma" else 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):  # spectra need float32 precision
            x = x.float()
            if self.colour == "luma":
                from kornia.color import rgb_to_ycbcr  # kornia: not on `cifake models`' path

                x = rgb_to_ycbcr(x)[:, :1]
            if self.kind == "dct":
                c = block_dct2(x, self.block) if self.block else dct2(x)
                mag = c.abs()
            else:
                mag = torch.fft.fftshift(torch.fft.fft2(x, norm="ortho"), dim=(-2, -1)).abs()
            return torch.log(mag + self.eps) if self.log else mag

    def extra_repr(self) -> str:
        return f"kind={self.kind}, block={self.block}, colour={self.colour}, log={self.log}"
