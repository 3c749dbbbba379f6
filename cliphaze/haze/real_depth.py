"""Real colour + depth pairs for the "real-depth" haze family.

Haze is only physically right when the depth belongs to the photo it hazes, so this family never
pastes a real depth map onto an unrelated photo (a resized bedroom depth over a landscape is just
another random field, and calling it "real depth" would be false): it hazes the *matching* colour
image. Sources:

- scikit-image's ``data.stereo_motorcycle()`` (Middlebury 2014; ships with scikit-image, so it is
  always available): left view and its disparity; depth ``z ~ 1 / disparity``.
- Optional real indoor RGB-D frames in a folder (the development set ``rgbd-samples`` found by
  :func:`cliphaze.paths.shared_data_dir`), decoded by :func:`decode_depth`:

  ============  ===========================================================================
  format        decoding to metres
  ============  ===========================================================================
  ``mm``        16-bit PNG, millimetres (Redwood, ESANet samples): ``z = d / 1000``
  ``tum``       16-bit PNG, 5000 units per metre (TUM RGB-D): ``z = d / 5000``
  ``sun``       16-bit PNG with rotated bits (SUN RGB-D): ``z = ((d >> 3) | (d << 13) & 0xFFFF) / 1000``
  ``nyu``       raw Kinect disparity, 16-bit PGM whose bytes are swapped (NYU Depth v2 raw):
                ``raw = byteswap(d)``, ``z = 351.3 / (1092.5 - raw)`` (invalid where not positive)
  ============  ===========================================================================

Zero depth means "no measurement" in every format; missing pixels are filled with the nearest
measured depth (:func:`fill_missing`). Depth is returned *relative*: ``z / z_99`` clipped to
[0, 1], with ``z_99`` the 99th percentile, so that ``t = exp(-beta z / z_99)`` keeps the physical
ratios of distances within a scene. Lesson: ``notebooks/00_haze_and_data.ipynb``, "Haze families".
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

__all__ = ["RGBD_FILES", "RealDepthPair", "decode_depth", "fill_missing", "relative_depth",
           "motorcycle_pair", "load_rgbd_folder", "real_depth_pairs"]

#: Colour file, depth file and depth format of each known pair of the ``rgbd-samples`` folder.
RGBD_FILES = {
    **{f"redwood_{i:05d}": (f"redwood_{i:05d}_color.jpg", f"redwood_{i:05d}_depth.png", "mm") for i in range(5)},
    "TUM": ("TUM_color.png", "TUM_depth.png", "tum"),
    "SUN": ("SUN_color.jpg", "SUN_depth.png", "sun"),
    "NYU": ("NYU_color.ppm", "NYU_depth.pgm", "nyu"),
    "esanet_sample": ("esanet_sample_color.png", "esanet_sample_depth.png", "mm"),
}


@dataclass
class RealDepthPair:
    """A colour image ``(3, h, w)`` in [0, 1] and its relative depth ``(1, h, w)`` in [0, 1]."""

    name: str
    colour: torch.Tensor
    depth: torch.Tensor
    source: str


def decode_depth(path: str | os.PathLike, fmt: str) -> np.ndarray:
    """Depth in metres ``(h, w)`` float64, NaN where there is no measurement (module table).

    Raises:
        ValueError: unknown ``fmt`` or a file that is not a 16-bit single-channel image.
    """
    from PIL import Image

    path = Path(path)
    with Image.open(path) as im:
        raw = np.array(im)
    if raw.ndim != 2 or raw.max() > 65535:
        raise ValueError(f"{path}: not a 16-bit single-channel depth image (shape {raw.shape})")
    d = raw.astype(np.int64)
    if fmt == "mm":
        z = d / 1000.0
    elif fmt == "tum":
        z = d / 5000.0
    elif fmt == "sun":
        z = (((d >> 3) | (d << 13)) & 0xFFFF) / 1000.0
    elif fmt == "nyu":
        raw_kinect = ((d & 0xFF) << 8) | (d >> 8)
        with np.errstate(divide="ignore"):
            z = 351.3 / (1092.5 - raw_kinect)
        z[~np.isfinite(z) | (z <= 0)] = 0.0
    else:
        raise ValueError(f"unknown depth format {fmt!r}; choose mm, tum, sun or nyu")
    z = z.astype(np.float64)
    z[z <= 0] = np.nan
    return z


def fill_missing(depth: np.ndarray) -> np.ndarray:
    """Replace NaN (missing) pixels by the nearest measured depth (Euclidean distance transform).

    Raises:
        ValueError: the map has no measurement at all.
    """
    from scipy.ndimage import distance_transform_edt

    missing = ~np.isfinite(depth)
    if missing.all():
        raise ValueError("depth map has no valid measurement")
    if not missing.any():
        return depth
    _, (iy, ix) = distance_transform_edt(missing, return_indices=True)
    return depth[iy, ix]


def relative_depth(depth_m: np.ndarray) -> torch.Tensor:
    """``(1, h, w)`` float32 ``z / z_99`` clipped to [0, 1] after :func:`fill_missing`."""
    z = fill_missing(depth_m)
    scale = float(np.percentile(z, 99))
    return torch.from_numpy(np.clip(z / max(scale, 1e-6), 0.0, 1.0)).float().unsqueeze(0)


def motorcycle_pair() -> RealDepthPair:
    """scikit-image's Middlebury motorcycle: left view and depth ``~ 1 / disparity``."""
    from skimage import data

    left, _, disparity = data.stereo_motorcycle()
    disp = disparity.astype(np.float64)
    z = np.where(np.isfinite(disp) & (disp > 0), 1.0 / np.maximum(disp, 1e-6), np.nan)
    colour = torch.from_numpy(np.ascontiguousarray(left)).permute(2, 0, 1).float() / 255.0
    return RealDepthPair("motorcycle", colour, relative_depth(z), "scikit-image stereo_motorcycle")


def load_rgbd_folder(folder: str | os.PathLike) -> list[RealDepthPair]:
    """The pairs of :data:`RGBD_FILES` present in ``folder`` (others are skipped silently; a pair
    whose colour and depth sizes differ has its depth resized to the colour image, nearest)."""
    import torch.nn.functional as F

    from cliphaze.io import read_image

    folder = Path(folder)
    out = []
    for name, (colour_file, depth_file, fmt) in RGBD_FILES.items():
        cp, dp = folder / colour_file, folder / depth_file
        if not (cp.is_file() and dp.is_file()):
            continue
        colour = read_image(cp)
        depth = relative_depth(decode_depth(dp, fmt))
        if tuple(depth.shape[1:]) != tuple(colour.shape[1:]):
            depth = F.interpolate(depth[None], size=tuple(colour.shape[1:]), mode="nearest")[0]
        out.append(RealDepthPair(name, colour, depth, f"{folder.name}/{colour_file}"))
    return out


@lru_cache(maxsize=4)
def _cached(folder: str | None, include_motorcycle: bool) -> tuple[RealDepthPair, ...]:
    pairs = [motorcycle_pair()] if include_motorcycle else []
    if folder is not None:
        pairs += load_rgbd_folder(folder)
    return tuple(pairs)


def real_depth_pairs(folder: str | os.PathLike | None = "auto", include_motorcycle: bool = True) -> list[RealDepthPair]:
    """All real colour + depth pairs available (cached per process).

    Args:
        folder: an RGB-D folder laid out as :data:`RGBD_FILES`; ``"auto"``: ``rgbd-samples`` in the
            development data (:func:`cliphaze.paths.shared_data_dir`) when present; None: none.
        include_motorcycle: include scikit-image's motorcycle (always available).

    Returns:
        list of :class:`RealDepthPair` (the motorcycle first).
    """
    if folder == "auto":
        from cliphaze.paths import shared_data_dir

        shared = shared_data_dir()
        folder = shared / "rgbd-samples" if shared is not None and (shared / "rgbd-samples").is_dir() else None
    return list(_cached(None if folder is None else str(folder), include_motorcycle))
