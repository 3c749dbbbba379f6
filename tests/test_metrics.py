"""PSNR / SSIM against values computed by hand and by the reference formula."""

import math

import pytest
import torch

from cliphaze.metrics import psnr, ssim


def test_psnr_known_value():
    x = torch.zeros(1, 3, 8, 8)
    y = torch.full((1, 3, 8, 8), 0.1)  # MSE = 0.01 -> 20 dB
    assert psnr(x, y).item() == pytest.approx(20.0)
    y2 = torch.full((1, 3, 8, 8), 0.5)  # MSE = 0.25 -> 6.0206 dB
    assert psnr(x, y2).item() == pytest.approx(10 * math.log10(4))


def test_psnr_is_per_image_not_pooled():
    x = torch.zeros(2, 3, 4, 4)
    y = torch.stack([torch.full((3, 4, 4), 0.1), torch.full((3, 4, 4), 0.01)])
    assert psnr(x, y).tolist() == pytest.approx([20.0, 40.0])


def test_psnr_identical_is_infinite_and_shapes_checked():
    x = torch.rand(3, 8, 8)
    assert math.isinf(psnr(x, x).item())
    with pytest.raises(ValueError, match="shape"):
        psnr(torch.rand(3, 8, 8), torch.rand(3, 8, 9))


def test_ssim_identity_and_known_reference():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 32, 32, generator=g)
    assert ssim(x, x).item() == pytest.approx(1.0, abs=1e-6)
    # a constant offset changes only the luminance term: l = (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1),
    # so on constant images SSIM equals that closed form exactly.
    a = torch.full((1, 3, 16, 16), 0.3)
    b = torch.full((1, 3, 16, 16), 0.5)
    c1 = (0.01 * 1.0) ** 2
    expected = (2 * 0.3 * 0.5 + c1) / (0.3**2 + 0.5**2 + c1)
    assert ssim(a, b).item() == pytest.approx(expected, rel=1e-4)


def test_ssim_rejects_tiny_images():
    with pytest.raises(ValueError, match="11x11"):
        ssim(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))
