"""explain/render.py: the figures `cifake explain` draws."""

from __future__ import annotations


def test_explanation_grid_marks_mistakes_and_has_a_key():
    import numpy as np
    import torch

    from cifake_lightning.explain.render import SCALE, render_grid

    images = torch.rand(2, 3, 32, 32)
    maps = {"occlusion": torch.rand(2, 32, 32), "band_ablation": torch.rand(2, 32, 32)}
    plain = np.asarray(render_grid(images, maps, ["a", "b"], ["occlusion", "band_ablation"]))
    marked = np.asarray(
        render_grid(
            images,
            maps,
            ["WRONG: a", "b"],
            ["occlusion", "band_ablation"],
            wrong=[True, False],
            threshold=0.3,
        )
    )
    tile = 32 * SCALE
    frame = marked[18 - 2 : 18 + tile + 2, 2:5]  # left edge of the first row's image
    assert ((frame[..., 0] > 200) & (frame[..., 1] < 40)).mean() > 0.9  # red
    second = marked[18 + tile + 28 + 4 : 18 + 2 * tile + 28 + 4, 2:4]
    assert not ((second[..., 0] > 200) & (second[..., 1] < 40)).any()
    assert min(plain.shape[0], marked.shape[0]) > 2 * (tile + 32) + 40  # the key below the rows
    assert marked.shape[0] >= plain.shape[0]  # the threshold's line is wrapped, never cut off
