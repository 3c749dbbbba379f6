"""Depth proxies for photos that come without a depth map.

The scattering model needs a scene depth ``d``. Clear photo collections (BSDS500, a user's folder)
have none, so for synthetic training data we use a smooth proxy: a random mix of a "ground plane"
ramp (far at the top of the frame, near at the bottom, as in most outdoor shots) and low-frequency
noise. Where a real depth or disparity map exists (scikit-image's ``stereo_motorcycle``; NYU depth
for SOTS) use :func:`depth_from_disparity` instead. Derived in lesson 00, "A depth for every photo".
"""

from __future__ import annotations

import torch

from cliphaze.haze.noise import smooth_noise

__all__ = ["ramp_depth_proxy", "depth_from_disparity"]


def ramp_depth_proxy(
    batch: int,
    height: int,
    width: int,
    noise_weight: tuple[float, float] = (0.1, 0.4),
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Smooth relative depth in [0, 1]: a vertical ramp (top far) blended with smooth noise.

    ``d = (1 - a) * ramp + a * noise`` with ``a ~ U(noise_weight)`` per image, where ramp runs
    from 1 at the top row to 0 at the bottom, tilted by a random small horizontal slope.

    Args:
        batch, height, width: output size.
        noise_weight: range of the noise share ``a``.
        generator: torch generator for reproducibility (CPU).
        device: where the result lives.

    Returns:
        Tensor ``(b, 1, h, w)`` with values in [0, 1].
    """
    ys = torch.linspace(1.0, 0.0, height).view(1, 1, height, 1)
    xs = torch.linspace(-0.5, 0.5, width).view(1, 1, 1, width)
    slope = (torch.rand(batch, 1, 1, 1, generator=generator) - 0.5) * 0.4
    ramp = (ys + slope * xs).clamp(0, 1)
    noise = smooth_noise(batch, height, width, octaves=2, base_cells=1, generator=generator)
    lo, hi = noise_weight
    a = lo + (hi - lo) * torch.rand(batch, 1, 1, 1, generator=generator)
    depth = ((1 - a) * ramp + a * noise).clamp(0, 1)
    return depth.to(device) if device is not None else depth


def depth_from_disparity(disparity: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Relative depth in [0, 1] from a disparity map (depth is proportional to 1 / disparity).

    Invalid disparities (<= 0, NaN, inf) take the largest depth (they are usually far or occluded).

    Args:
        disparity: ``(h, w)``, ``(1, h, w)`` or ``(b, 1, h, w)`` disparity in pixels.
        eps: floor on the disparity before inverting.

    Returns:
        Depth ``(b, 1, h, w)`` normalised so that the nearest point is 0 and the farthest 1.
    """
    d = disparity.to(torch.float32)
    while d.ndim < 4:
        d = d.unsqueeze(0)
    valid = torch.isfinite(d) & (d > 0)
    inv = torch.where(valid, 1.0 / d.clamp_min(eps), torch.zeros_like(d))
    far = inv.amax(dim=(2, 3), keepdim=True)
    inv = torch.where(valid, inv, far.expand_as(inv))
    lo = inv.amin(dim=(2, 3), keepdim=True)
    span = (far - lo).clamp_min(1e-8)
    return ((inv - lo) / span).clamp(0, 1)
