"""Image-quality metrics with the field's usual protocol.

- PSNR on RGB in [0, 1], computed per image and then averaged over images (not over pixels of
  the whole set): ``PSNR = 10 log10(1 / MSE)``.
- SSIM from ``pytorch_msssim`` (Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03, on RGB at full
  resolution, data_range 1), the implementation most recent dehazing papers report.

Protocol differences (Y channel vs RGB, MATLAB ``ssim`` vs ``pytorch_msssim``, decoding JPEGs,
cropping borders) move numbers by tenths of a dB; lesson 06 discusses them. Lesson 00 introduces
the metrics.
"""

from __future__ import annotations

import torch

__all__ = ["psnr", "ssim"]


def _pair(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.unsqueeze(0) if x.ndim == 3 else x
    y = y.unsqueeze(0) if y.ndim == 3 else y
    if x.shape != y.shape:
        raise ValueError(f"images differ in shape: {tuple(x.shape)} vs {tuple(y.shape)}")
    return x.float(), y.float()


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio per image.

    Args:
        x, y: ``(b, c, h, w)`` or ``(c, h, w)`` images in ``[0, data_range]``.

    Returns:
        ``(b,)`` PSNR in dB (``inf`` for identical images), computed in float64.
    """
    x, y = _pair(x, y)
    mse = ((x.double() - y.double()) ** 2).flatten(1).mean(dim=1)
    return 10.0 * torch.log10(data_range**2 / mse)


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Structural similarity per image with ``pytorch_msssim.ssim`` (11x11 Gaussian, sigma 1.5).

    Args:
        x, y: ``(b, c, h, w)`` or ``(c, h, w)`` images; each side must be at least 11 pixels.

    Returns:
        ``(b,)`` SSIM, averaged over channels and positions.
    """
    from pytorch_msssim import ssim as _ssim

    x, y = _pair(x, y)
    if min(x.shape[-2:]) < 11:
        raise ValueError(f"SSIM needs images of at least 11x11 pixels, got {tuple(x.shape[-2:])}")
    return _ssim(x, y, data_range=data_range, size_average=False)
