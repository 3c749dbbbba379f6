"""Tiled inference: tile layout, blending, and agreement with a single pass (lesson 05)."""

from __future__ import annotations

import pytest
import torch

from cliphaze.model import (
    CLIPHaze,
    CLIPHazeNet,
    blend_weights,
    build_model,
    get_preset,
    tile_ends,
    tile_starts,
)
from cliphaze.shapes import check


def _net(config, seed=0) -> CLIPHazeNet:
    torch.manual_seed(seed)
    net = CLIPHazeNet(config).eval()
    with torch.no_grad():
        net.head.weight.normal_(0, 0.05)
        net.head.bias.normal_(0, 0.05)
    return net


@pytest.mark.parametrize("size,tile,overlap", [(100, 256, 32), (620, 256, 32), (4000, 512, 32), (513, 256, 48), (97, 40, 16)])
def test_tiles_cover_the_axis_with_overlap(size, tile, overlap):
    starts = tile_starts(size, tile, overlap)
    ends = tile_ends(starts, size, tile)
    assert starts[0] == 0 and ends[-1] == size
    assert all(s % 4 == 0 for s in starts)
    assert all(e - s <= tile + 3 for s, e in zip(starts, ends))
    for (_s0, e0), (s1, _) in zip(zip(starts, ends), zip(starts[1:], ends[1:])):
        assert e0 - s1 >= overlap
    # every pixel gets positive total blending weight
    total = torch.zeros(size)
    for s, e in zip(starts, ends):
        total[s:e] += blend_weights(e - s, overlap, s == 0, e == size)
    assert float(total.min()) > 0


def test_blend_weights_shape():
    w = blend_weights(64, 32, at_start=False, at_end=True)
    assert w[:8].eq(0).all() and w[-1] == 1 and w.max() == 1 and (w.diff()[:40] >= 0).all()
    assert blend_weights(10, 32, True, True).eq(1).all()


def test_single_tile_equals_untiled():
    model = CLIPHaze(_net(get_preset("tiny", guidance="none")))
    x = torch.rand(3, 45, 61)
    check(model.dehaze(x, tile=64), model.dehaze(x, tile=0), rtol=0, atol=0, name="one tile")


def test_tiling_is_exact_for_a_local_network():
    """With only convolutions (no blocks) the receptive field is a few pixels, inside the zero
    margin of the blending window: tiles aligned to the 4-pixel grid then reproduce the single pass
    up to float rounding. This checks the tile indexing and blending arithmetic exactly."""
    model = CLIPHaze(_net(get_preset("tiny", guidance="none", depths=(0, 0, 0, 0, 0))))
    x = torch.rand(3, 150, 203)
    tiled = model.dehaze(x, tile=64, overlap=32)
    check(tiled, model.dehaze(x, tile=0), rtol=0, atol=1e-5, name="tiled conv-only network")


def test_tiling_close_for_the_full_network():
    """The Mamba path is global within a tile, so tiles only approximate the single pass; with a
    density map from the whole image (shared by all tiles) the difference stays small."""
    torch.manual_seed(0)
    model = build_model("tiny", guide="tiny-test-clip")
    with torch.no_grad():
        model.net.head.weight.normal_(0, 0.02)
    model.eval()
    y, x = torch.meshgrid(torch.linspace(0, 1, 96), torch.linspace(0, 1, 128), indexing="ij")
    img = torch.stack([0.5 + 0.3 * torch.sin(6 * x), 0.5 + 0.3 * torch.cos(5 * y), 0.4 + 0.2 * x * y])
    tiled = model.dehaze(img, tile=64, overlap=32)
    whole = model.dehaze(img, tile=0)
    assert tiled.shape == whole.shape
    assert float((tiled - whole).abs().mean()) < 5e-3


def test_large_image_is_tiled_automatically(monkeypatch):
    """Above max_pixels the model never runs on the whole image at once."""
    model = CLIPHaze(_net(get_preset("tiny", guidance="none", depths=(0, 0, 0, 0, 0))))
    sizes = []
    original = model.net.forward

    def spy(x, *args, **kwargs):
        sizes.append(tuple(x.shape[-2:]))
        return original(x, *args, **kwargs)

    monkeypatch.setattr(model.net, "forward", spy)
    out = model.dehaze(torch.rand(3, 300, 260), max_pixels=128 * 128)
    assert out.shape == (3, 300, 260)
    assert len(sizes) > 1 and max(h * w for h, w in sizes) <= 131 * 131
