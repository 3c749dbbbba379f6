"""Dark channel prior and its guided filter (lesson 00)."""

import pytest
import torch

from cliphaze.baselines import dark_channel, dehaze_dcp, guided_filter
from cliphaze.baselines.dcp import box_filter, estimate_airlight
from cliphaze.haze import synthesize_haze
from cliphaze.metrics import psnr


def _scene(seed=0, h=96, w=128):
    """A colourful clear scene (dark pixels in every patch, as the prior assumes)."""
    import skimage.data
    import torch.nn.functional as F

    img = torch.from_numpy(skimage.data.astronaut()).permute(2, 0, 1).float().unsqueeze(0) / 255
    return F.interpolate(img, size=(h, w), mode="area")


def test_dark_channel_is_min_over_channels_and_patch():
    x = torch.ones(1, 3, 9, 9)
    x[0, 1, 4, 4] = 0.2
    d = dark_channel(x, patch=3)
    assert d[0, 0, 4, 4] == pytest.approx(0.2)
    assert d[0, 0, 3, 3] == pytest.approx(0.2)  # inside the 3x3 window
    assert d[0, 0, 0, 0] == pytest.approx(1.0)  # outside it


def test_box_filter_matches_brute_force():
    x = torch.rand(1, 1, 11, 13, dtype=torch.float64)
    r = 2
    out = box_filter(x, r)
    ref = torch.empty_like(x)
    for i in range(11):
        for j in range(13):
            ref[0, 0, i, j] = x[0, 0, max(0, i - r) : i + r + 1, max(0, j - r) : j + r + 1].mean()
    torch.testing.assert_close(out, ref)


def test_guided_filter_preserves_constant_and_edges():
    guide = torch.zeros(1, 1, 32, 32)
    guide[..., 16:] = 1.0
    src = guide.clone()
    out = guided_filter(guide, src, radius=4, eps=1e-6)
    torch.testing.assert_close(out, src, atol=1e-3, rtol=0)


def test_airlight_picks_brightest_of_haziest():
    img = torch.full((1, 3, 20, 20), 0.1)
    img[..., 2:9, 2:9] = 0.8  # a hazy (high dark channel) region
    img[..., 5, 5] = 0.95  # its brightest pixel: the airlight
    img[..., 15, 15] = 1.0  # a lone bright pixel (a lamp): bright, but its dark channel is low
    d = dark_channel(img, patch=3)
    a = estimate_airlight(img, d, top_fraction=0.07)  # 28 pixels: all 25 of the hazy interior
    assert torch.allclose(a.flatten(), torch.full((3,), 0.95))


def test_dcp_improves_psnr_on_synthetic_haze():
    clear = _scene()
    s = synthesize_haze(clear, kind="homogeneous", beta=1.5, airlight=0.9, seed=0)
    out = dehaze_dcp(s.hazy, radius=20)
    before = psnr(s.hazy, clear).item()
    after = psnr(out.dehazed, clear).item()
    assert after > before + 2.0, (before, after)
    assert out.dehazed.shape == clear.shape and out.transmission.shape == (1, 1, 96, 128)
    # the estimated transmission correlates with the true one
    t_true = s.transmission.flatten()
    t_est = out.transmission.flatten()
    corr = torch.corrcoef(torch.stack([t_true, t_est]))[0, 1]
    assert corr > 0.5, corr


def test_dcp_accepts_single_image_and_rejects_gray():
    assert dehaze_dcp(torch.rand(3, 24, 24), radius=4).dehazed.shape == (1, 3, 24, 24)
    with pytest.raises(ValueError, match="RGB"):
        dehaze_dcp(torch.rand(1, 1, 24, 24))
