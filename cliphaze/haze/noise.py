"""Random fields for patchy haze: multi-octave value noise (the "clouds" that make haze
non-homogeneous) and, for the "fields" haze family, power-law (fractional Brownian) fields, blobs and
bands with other spectra.

Derived in ``notebooks/00_haze_and_data.ipynb`` (section "Non-homogeneous haze").
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["smooth_noise", "fbm_field", "blob_field", "band_field"]


def smooth_noise(
    batch: int,
    height: int,
    width: int,
    octaves: int = 4,
    base_cells: int = 2,
    persistence: float = 0.5,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Fractal value noise in [0, 1], one independent field per batch item.

    Octave ``o`` draws a random grid of ``base_cells * 2**o`` cells on the short side, upsamples it
    bicubically to (h, w) and weights it by ``persistence**o``; the sum is min-max normalised per
    image. Low octaves give large blobs of haze, high octaves their ragged edges.

    Args:
        batch, height, width: output size (b, h, w).
        octaves: number of octaves (>= 1).
        base_cells: grid cells along the short side at the coarsest octave.
        persistence: amplitude ratio between successive octaves.
        generator: torch generator for reproducible draws (CPU generator; the field is moved to
            ``device`` afterwards so that a seed gives the same field on every device).
        device: where the result lives.

    Returns:
        Tensor ``(b, 1, h, w)``, float32, min 0 and max 1 per image (constant fields give 0.5).
    """
    if octaves < 1:
        raise ValueError("octaves must be >= 1")
    short = min(height, width)
    total = torch.zeros(batch, 1, height, width)
    amp = 1.0
    for o in range(octaves):
        cells = max(1, base_cells * 2**o)
        gh = max(2, round(cells * height / short)) + 1
        gw = max(2, round(cells * width / short)) + 1
        grid = torch.rand(batch, 1, gh, gw, generator=generator)
        total += amp * F.interpolate(grid, size=(height, width), mode="bicubic", align_corners=True)
        amp *= persistence
    lo = total.amin(dim=(2, 3), keepdim=True)
    hi = total.amax(dim=(2, 3), keepdim=True)
    span = hi - lo
    out = torch.where(span > 1e-8, (total - lo) / span.clamp_min(1e-8), torch.full_like(total, 0.5))
    return out.clamp_(0, 1).to(device) if device is not None else out.clamp_(0, 1)


def fbm_field(
    batch: int,
    height: int,
    width: int,
    exponent: tuple[float, float] = (1.6, 3.2),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Fractional Brownian field by spectral synthesis, in [0, 1].

    White Gaussian noise is filtered in the Fourier domain by ``|k|^(-alpha / 2)`` so that the
    power spectrum falls as ``|k|^(-alpha)`` (``alpha`` drawn per image from ``exponent``): small
    ``alpha`` gives rough, grainy clouds, large ``alpha`` smooth large-scale banks. Unlike
    :func:`smooth_noise` (bicubic value noise on octave grids) the spectrum is a power law with no
    preferred cell size.

    Returns:
        ``(b, 1, h, w)`` float32, min-max normalised per image.
    """
    ky = torch.fft.fftfreq(height).view(height, 1)
    kx = torch.fft.rfftfreq(width).view(1, -1)
    k = torch.sqrt(ky**2 + kx**2)
    k[0, 0] = 1.0
    out = []
    for _ in range(batch):
        alpha = exponent[0] + (exponent[1] - exponent[0]) * float(torch.rand(1, generator=generator))
        white = torch.randn(height, width, generator=generator)
        spec = torch.fft.rfft2(white) * k ** (-alpha / 2)
        spec[0, 0] = 0.0
        out.append(torch.fft.irfft2(spec, s=(height, width)))
    field = torch.stack(out).unsqueeze(1)
    lo = field.amin(dim=(2, 3), keepdim=True)
    hi = field.amax(dim=(2, 3), keepdim=True)
    return ((field - lo) / (hi - lo).clamp_min(1e-8)).float()


def blob_field(
    batch: int,
    height: int,
    width: int,
    count: tuple[int, int] = (2, 8),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Sum of anisotropic Gaussian blobs (isolated haze banks), in [0, 1].

    Each image gets ``n ~ U{count}`` blobs with random centre, radii (5 % to 40 % of the short
    side, independently along two rotated axes), orientation and weight in [0.3, 1].

    Returns:
        ``(b, 1, h, w)`` float32, divided by its maximum per image.
    """
    ys = torch.linspace(0, 1, height).view(height, 1) * height
    xs = torch.linspace(0, 1, width).view(1, width) * width
    short = min(height, width)
    out = []
    for _ in range(batch):
        n = count[0] + int(torch.randint(count[1] - count[0] + 1, (1,), generator=generator))
        p = torch.rand(n, 6, generator=generator)
        field = torch.zeros(height, width)
        for cy, cx, ra, rb, ang, wt in p.tolist():
            cy, cx = cy * height, cx * width
            ra, rb = short * (0.05 + 0.35 * ra), short * (0.05 + 0.35 * rb)
            c, s = math.cos(ang * math.pi), math.sin(ang * math.pi)
            a = (xs - cx) * c + (ys - cy) * s
            b = -(xs - cx) * s + (ys - cy) * c
            field += (0.3 + 0.7 * wt) * torch.exp(-0.5 * ((a / ra) ** 2 + (b / rb) ** 2))
        out.append(field / field.max().clamp_min(1e-8))
    return torch.stack(out).unsqueeze(1)


def band_field(
    batch: int,
    height: int,
    width: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Soft parallel bands (drifting haze streaks) at a random angle, in [0, 1].

    ``0.5 + 0.5 sin(2 pi (x cos a + y sin a) / lambda + phi)`` sharpened by a random power, with
    period ``lambda`` from 30 % to 150 % of the short side.

    Returns:
        ``(b, 1, h, w)`` float32.
    """
    ys = torch.arange(height, dtype=torch.float32).view(height, 1)
    xs = torch.arange(width, dtype=torch.float32).view(1, width)
    short = min(height, width)
    out = []
    for _ in range(batch):
        ang, per, phase, sharp = torch.rand(4, generator=generator).tolist()
        ang *= math.pi
        period = short * (0.3 + 1.2 * per)
        wave = 0.5 + 0.5 * torch.sin(2 * math.pi * (xs * math.cos(ang) + ys * math.sin(ang)) / period + 2 * math.pi * phase)
        out.append(wave ** (0.5 + 2.5 * sharp))
    return torch.stack(out).unsqueeze(1)
