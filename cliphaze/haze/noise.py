"""Multi-octave smooth noise: the patchy "clouds" that make haze non-homogeneous.

Derived in ``notebooks/00_haze_and_data.ipynb`` (section "Non-homogeneous haze").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["smooth_noise"]


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
