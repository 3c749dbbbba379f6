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

__all__ = ["ramp_depth_proxy", "depth_from_disparity", "room_depth"]


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


def room_depth(
    batch: int,
    height: int,
    width: int,
    n_objects: tuple[int, int] = (0, 4),
    generator: torch.Generator | None = None,
    return_planes: bool = False,
):
    """Piecewise-planar depth of a box room seen from inside, with box fronts standing in it.

    A pinhole camera at the origin looks down ``+z`` at a vanishing point ``(x_v, y_v)`` (pixels,
    drawn in the central half of the frame; focal length ``f`` = 0.5 to 1.2 image widths). With
    normalised image coordinates ``u = (x - x_v) / f``, ``v = (y - y_v) / f`` (y downwards), a ray
    meets the side walls ``X = -L`` and ``X = R`` at ``z = L / (-u)`` and ``z = R / u``, the floor
    ``Y = F`` at ``z = F / v``, the ceiling ``Y = -C`` at ``z = C / (-v)`` and the back wall at
    ``z = Z``. The visible depth is the nearest hit::

        z(u, v) = min(Z, L / max(-u, 0), R / max(u, 0), F / max(v, 0), C / max(-v, 0))

    On every plane ``1 / z`` is affine in ``(x, y)`` (a plane seen through a pinhole), so the map is
    piecewise planar in inverse depth. Box fronts (furniture, cupboards) are fronto-parallel
    rectangles at depth ``z_o`` standing on the floor: they cover the pixels of their rectangle
    where they are nearer than the room. Depth is returned relative to the back wall, ``z / Z``.

    Args:
        batch, height, width: output size.
        n_objects: inclusive range of the number of box fronts per image.
        generator: torch CPU generator.
        return_planes: also return an integer label map of the plane each pixel lies on (0 back
            wall, 1 left, 2 right, 3 floor, 4 ceiling, 5.. box fronts), for tests and figures.

    Returns:
        ``(b, 1, h, w)`` relative depth in (0, 1] (and ``(b, 1, h, w)`` long labels).

    Lesson: ``notebooks/00_haze_and_data.ipynb``, section "Haze families".
    """

    def u(lo: float, hi: float) -> float:
        return lo + (hi - lo) * float(torch.rand(1, generator=generator))

    ys = torch.arange(height, dtype=torch.float64).view(height, 1) + 0.5
    xs = torch.arange(width, dtype=torch.float64).view(1, width) + 0.5
    depths, labels = [], []
    for _ in range(batch):
        xv, yv = width * u(0.25, 0.75), height * u(0.25, 0.75)
        f = width * u(0.5, 1.2)
        uu, vv = ((xs - xv) / f).expand(height, width), ((ys - yv) / f).expand(height, width)
        big = torch.full((height, width), float("inf"), dtype=torch.float64)
        z_back = u(3.0, 8.0)
        walls = [
            torch.full((height, width), z_back, dtype=torch.float64),
            torch.where(uu < 0, u(1.0, 2.5) / (-uu).clamp_min(1e-9), big),
            torch.where(uu > 0, u(1.0, 2.5) / uu.clamp_min(1e-9), big),
            torch.where(vv > 0, u(1.0, 1.8) / vv.clamp_min(1e-9), big),
            torch.where(vv < 0, u(1.0, 1.8) / (-vv).clamp_min(1e-9), big),
        ]
        stack = torch.stack(walls)
        z, label = stack.min(dim=0)
        # the floor's height below the camera, needed to stand the boxes on it
        floor_height = float((walls[3] * vv)[vv > 0].mean()) if bool((vv > 0).any()) else 1.4
        lo, hi = n_objects
        count = lo + int(torch.randint(hi - lo + 1, (1,), generator=generator)) if hi > lo else lo
        for k in range(count):
            z_o = u(1.2, 0.85 * z_back)
            half_w, box_h = u(0.3, 1.2), u(0.4, 1.6)
            x_c = u(-1.5, 1.5)
            # image rectangle of the front face X in [x_c - half_w, x_c + half_w], Y in [F - box_h, F]
            x0, x1 = xv + f * (x_c - half_w) / z_o, xv + f * (x_c + half_w) / z_o
            y1, y0 = yv + f * floor_height / z_o, yv + f * (floor_height - box_h) / z_o
            inside = (xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)
            nearer = inside & (z > z_o)
            z = torch.where(nearer, torch.full_like(z, z_o), z)
            label = torch.where(nearer, torch.full_like(label, 5 + k), label)
        depths.append((z / z_back).clamp(0, 1).float())
        labels.append(label)
    depth = torch.stack(depths).unsqueeze(1)
    if return_planes:
        return depth, torch.stack(labels).unsqueeze(1)
    return depth
