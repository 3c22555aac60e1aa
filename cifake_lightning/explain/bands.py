"""Frequency-band ablation (seed 000): which DCT frequencies does the detector rely on?

Each image is taken to the DCT domain (orthonormal, per channel, global or 8x8 blocks); the
coefficients are grouped into bands — radial rings from DC to the highest frequency, or square blocks
of the DCT plane — and each band in turn is zeroed, transformed back and re-scored. The drop in the
fake probability per band is the band's importance: a curve over rings, or a heat map over the DCT
plane. This is captum's FeatureAblation with a feature mask over DCT coefficients, applied to the
model wrapped to take coefficients as input (exactly how the STYLE guide describes it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from captum.attr import FeatureAblation
from torch import nn

from ..errors import ConfigError, check_choice
from ..models.calibration import calibrated_prob
from ..models.frequency import block_dct2, block_idct2, dct2, idct2, radial_frequency


@dataclass
class BandResult:
    drop: torch.Tensor  # (B, n_bands): p_fake(original) - p_fake(band removed)
    band_names: list[str]
    coefficient_map: torch.Tensor  # (B, H, W): each coefficient coloured by its band's drop


class _FromDCT(nn.Module):
    def __init__(self, classifier: nn.Module, block: int, clamp: bool) -> None:
        super().__init__()
        self.classifier, self.block, self.clamp = classifier, block, clamp

    def forward(self, coeffs: torch.Tensor) -> torch.Tensor:
        x = block_idct2(coeffs, self.block) if self.block else idct2(coeffs)

        return calibrated_prob(self.classifier, self.classifier(x.clamp(0, 1) if self.clamp else x).float())


class BandAblation:
    """Configure once, call on (classifier, images in [0,1]) -> BandResult.

    Args:
        mode: "rings" (radial bands, low -> high frequency) or "blocks" (grid x grid squares of the DCT plane).
        n_bands: number of rings (mode="rings").
        grid: blocks per side (mode="blocks").
        block: 0 = global DCT, 8 = ablate within JPEG-style 8x8 blocks.
        keep_dc: never ablate the DC coefficient (it is image brightness, not a frequency).
        clamp: clip ablated images to [0, 1]. Off by default: clipping re-creates content in other bands,
            so the measured drop would no longer belong to the removed band alone.
    """

    def __init__(
        self,
        mode: str = "rings",
        n_bands: int = 8,
        grid: int = 4,
        block: int = 0,
        keep_dc: bool = True,
        clamp: bool = False,
    ) -> None:
        check_choice("explain.band_mode", mode, ("rings", "blocks"))
        if n_bands < 2 or grid < 2:
            raise ConfigError("explain.n_bands", "n_bands and band_grid must be at least 2")
        self.mode, self.n_bands, self.grid, self.block, self.keep_dc = mode, n_bands, grid, block, keep_dc
        self.clamp = clamp

    def band_mask(self, h: int, w: int) -> tuple[torch.Tensor, list[str]]:
        """(H, W) long tensor of band ids (-1 = never ablated) and the band names."""
        if self.mode == "rings":
            r = radial_frequency(h, w, self.block or None)
            ids = torch.clamp((r * self.n_bands).long(), max=self.n_bands - 1)
            edges = [i / self.n_bands for i in range(self.n_bands + 1)]
            names = [f"{edges[i]:.2f}-{edges[i + 1]:.2f}" for i in range(self.n_bands)]
        else:
            side = self.block or h
            u = (torch.arange(h) % side) * self.grid // side
            v = (torch.arange(w) % (self.block or w)) * self.grid // (self.block or w)
            ids = u[:, None] * self.grid + v[None, :]
            names = [f"({i // self.grid},{i % self.grid})" for i in range(self.grid * self.grid)]
        if self.keep_dc:
            dc = torch.zeros(h, w, dtype=torch.bool)
            step = self.block or max(h, w)
            dc[::step, ::step] = True
            ids = torch.where(dc, torch.full_like(ids, -1), ids)
        return ids, names

    @torch.no_grad()
    def __call__(self, classifier: nn.Module, x: torch.Tensor) -> BandResult:
        b, c, h, w = x.shape
        ids, names = self.band_mask(h, w)
        ids = ids.to(x.device)
        coeffs = block_dct2(x.float(), self.block) if self.block else dct2(x.float())
        # captum wants non-negative feature ids; park the never-ablated coefficients in a spare id
        spare = len(names)
        mask = torch.where(ids < 0, torch.full_like(ids, spare), ids)[None, None].expand(1, c, h, w)
        model = _FromDCT(classifier, self.block, self.clamp)
        with torch.enable_grad():
            attr = FeatureAblation(model).attribute(
                coeffs, baselines=0.0, feature_mask=mask, perturbations_per_eval=4
            )
        # every coefficient of a band carries the band's drop; read one per band
        per_band = torch.stack(
            [
                attr[:, 0][:, ids == k].mean(-1) if (ids == k).any() else torch.zeros(b, device=x.device)
                for k in range(len(names))
            ],
            dim=1,
        )
        cmap = torch.where(ids[None] >= 0, attr[:, 0], torch.zeros_like(attr[:, 0]))
        return BandResult(drop=per_band.detach(), band_names=names, coefficient_map=cmap.detach())
