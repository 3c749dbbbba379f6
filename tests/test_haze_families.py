"""Haze families (cliphaze.haze.families): determinism, physics, options, structure."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cliphaze.haze import HAZE_FAMILIES, T_MIN, apply_scattering, room_depth, synthesize
from cliphaze.haze.families import draw_airlight


def _depth(b=2, h=24, w=32):
    return torch.rand(b, 1, h, w, generator=torch.Generator().manual_seed(9))


def _clear(b=2, h=24, w=32, seed=0):
    return torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(seed))


def _run(family, clear, **kw):
    depth = _depth(clear.shape[0], *clear.shape[-2:]) if family == "real-depth" else None
    return synthesize(family, clear, depth=depth, **kw)


@pytest.mark.parametrize("family", sorted(HAZE_FAMILIES))
def test_family_is_seeded_physical_and_shaped(family):
    clear = _clear()
    a = _run(family, clear, seed=3)
    b = _run(family, clear, seed=3)
    c = _run(family, clear, seed=4)
    assert torch.equal(a.hazy, b.hazy) and torch.equal(a.transmission, b.transmission)
    assert not torch.equal(a.transmission, c.transmission)
    assert a.hazy.shape == (2, 3, 24, 32) and a.transmission.shape == (2, 1, 24, 32)
    assert a.airlight.shape == (2, 3, 1, 1) and a.kind == family
    assert float(a.transmission.min()) >= T_MIN and float(a.transmission.max()) <= 1.0
    torch.testing.assert_close(a.density, 1 - a.transmission)
    torch.testing.assert_close(a.hazy, apply_scattering(clear, a.transmission, a.airlight).clamp(0, 1), rtol=0, atol=0)


@pytest.mark.parametrize("family", sorted(HAZE_FAMILIES))
def test_dense_option_reaches_t_min_and_is_denser(family):
    clear = _clear(4, 32, 32)
    normal = _run(family, clear, seed=1)
    dense = _run(family, clear, seed=1, dense=True)
    assert float(dense.transmission.min()) == pytest.approx(T_MIN)
    assert float(dense.density.mean()) > float(normal.density.mean()) + 0.1


def test_airlight_colours():
    g = torch.Generator().manual_seed(0)
    warm = draw_airlight(50, "warm", g).view(50, 3)
    cool = draw_airlight(50, "cool", g).view(50, 3)
    grey = draw_airlight(50, "grey", g).view(50, 3)
    assert (warm[:, 0] > warm[:, 2]).all() and (cool[:, 2] > cool[:, 0]).all()
    assert torch.equal(grey[:, 0], grey[:, 1]) and torch.equal(grey[:, 1], grey[:, 2])
    for a in (warm, cool, grey):
        assert float(a.max(1).values.min()) >= 0.6 - 1e-6 and float(a.max()) <= 1.0
    with pytest.raises(ValueError, match="airlight_colour"):
        draw_airlight(1, "purple")


def test_noise_and_jpeg_change_only_the_hazy_image():
    clear = _clear(2, 32, 32)
    base = synthesize("fields", clear, seed=5)
    noisy = synthesize("fields", clear, seed=5, noise=0.05)
    jpeg = synthesize("fields", clear, seed=5, jpeg_quality=20)
    assert torch.equal(base.transmission, noisy.transmission) and torch.equal(base.transmission, jpeg.transmission)
    d_noise = (noisy.hazy - base.hazy).std().item()
    assert 0.02 < d_noise < 0.15
    assert (jpeg.hazy - base.hazy).abs().mean().item() > 0.005
    assert torch.equal(jpeg.hazy * 255, (jpeg.hazy * 255).round())  # decoded 8-bit values


def test_real_depth_needs_matching_depth_and_follows_it():
    clear = _clear(1)
    with pytest.raises(ValueError, match="real-depth"):
        synthesize("real-depth", clear, seed=0)
    depth = torch.linspace(0, 1, 32).view(1, 1, 1, 32).expand(1, 1, 24, 32)
    s = synthesize("real-depth", clear, depth=depth, beta=2.0, seed=0)
    torch.testing.assert_close(s.transmission, torch.exp(-2.0 * (0.1 + 0.9 * depth)))


def test_room_depth_is_piecewise_planar_in_inverse_depth():
    depth, planes = room_depth(3, 60, 80, generator=torch.Generator().manual_seed(2), return_planes=True)
    assert depth.shape == (3, 1, 60, 80) and float(depth.max()) <= 1.0 and float(depth.min()) > 0
    inv = 1.0 / depth.double()
    # second differences of 1/z vanish inside every plane (a plane through a pinhole: 1/z affine)
    d2x = inv[..., 2:] - 2 * inv[..., 1:-1] + inv[..., :-2]
    same = (planes[..., 2:] == planes[..., 1:-1]) & (planes[..., 1:-1] == planes[..., :-2])
    assert same.float().mean() > 0.8
    assert d2x[same].abs().max() < 1e-4
    # ... but not across the whole image: the planes meet at creases
    assert d2x[~same].abs().max() > 1e-3
    assert len(planes.unique()) >= 4


def test_fields_do_not_depend_on_content_and_ramp_is_vertical():
    a = synthesize("fields", _clear(2, 48, 48, seed=1), seed=7)
    b = synthesize("fields", _clear(2, 48, 48, seed=2), seed=7)
    assert torch.equal(a.transmission, b.transmission)
    # fields have no systematic top-far ramp: the mean over many images is flat in y, ramps are not
    many = synthesize("fields", torch.zeros(64, 3, 32, 32), seed=0).density.mean(dim=(0, 1, 3))
    ramp = synthesize("ramp", torch.zeros(64, 3, 32, 32), seed=0).density.mean(dim=(0, 1, 3))
    assert abs(float(many[:8].mean() - many[-8:].mean())) < 0.05
    assert float(ramp[:8].mean() - ramp[-8:].mean()) > 0.1


def test_fog_is_densest_low_in_the_frame():
    s = synthesize("fog", torch.zeros(64, 3, 40, 40), seed=0)
    rows = s.density.mean(dim=(0, 1, 3))
    assert float(rows[-10:].mean()) > float(rows[:10].mean()) + 0.1


def test_families_differ_structurally():
    """The mean local roughness of the transmission differs between families (a crude but
    generator-agnostic signature): room maps are flat planes with creases, fields are rough."""
    x = torch.zeros(16, 3, 64, 64)

    def roughness(t):
        lap = t[..., 1:-1, 1:-1] * 4 - t[..., :-2, 1:-1] - t[..., 2:, 1:-1] - t[..., 1:-1, :-2] - t[..., 1:-1, 2:]
        return float(np.median(lap.abs().flatten().numpy()))

    r = {f: roughness(synthesize(f, x, seed=0).transmission) for f in ("room", "fields")}
    assert r["room"] < 0.2 * r["fields"], r


def test_bad_family_and_shapes():
    with pytest.raises(ValueError, match="unknown haze family"):
        synthesize("smoke", _clear())
    with pytest.raises(ValueError, match="shape"):
        synthesize("ramp", torch.rand(1, 4, 8, 8))
    with pytest.raises(ValueError, match="depth"):
        synthesize("room", _clear(), depth=torch.rand(1, 1, 5, 5))


def test_real_depth_pairs_decode_when_present():
    from cliphaze.haze.real_depth import decode_depth, real_depth_pairs
    from cliphaze.paths import shared_data_dir

    pairs = real_depth_pairs()
    assert pairs[0].name == "motorcycle" and pairs[0].depth.shape[1:] == pairs[0].colour.shape[1:]
    shared = shared_data_dir()
    if shared is None or not (shared / "rgbd-samples").is_dir():
        pytest.skip("development data rgbd-samples absent: only the motorcycle pair was checked")
    names = {p.name for p in pairs}
    assert {"TUM", "SUN", "NYU", "redwood_00000"} <= names
    folder = shared / "rgbd-samples"
    for fname, fmt in (("TUM_depth.png", "tum"), ("SUN_depth.png", "sun"), ("NYU_depth.pgm", "nyu"),
                       ("redwood_00000_depth.png", "mm")):
        z = decode_depth(folder / fname, fmt)
        valid = z[np.isfinite(z)]
        assert 0.2 < np.median(valid) < 8.0, (fname, np.median(valid))  # metres, indoors
    for p in pairs:
        assert torch.isfinite(p.depth).all() and float(p.depth.max()) <= 1.0


def test_haze_cli_family_option(tmp_path):
    import json

    from PIL import Image

    from cliphaze.cli import main
    from cliphaze.io import read_image

    src = tmp_path / "clear"
    src.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(src / "a.png")
    out = tmp_path / "out"
    assert main(["haze", str(src), "-o", str(out), "--family", "room", "--dense", "--airlight-colour", "cool",
                 "--seed", "1", "--maps"]) == 0
    params = [json.loads(line) for line in open(out / "params.jsonl")]
    assert params[0]["kind"] == "room" and params[0]["airlight"][2] > params[0]["airlight"][0]
    t = read_image(out / "transmission" / "a.png")
    assert float(t.min()) < 0.1  # dense haze
