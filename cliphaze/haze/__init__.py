"""Haze physics: the atmospheric scattering model, a seeded, batched haze synthesiser, and several
haze families (:mod:`cliphaze.haze.families`) behind one function, :func:`synthesize`.

Lesson: ``notebooks/00_haze_and_data.ipynb``.
"""

from cliphaze.haze.depth import depth_from_disparity, ramp_depth_proxy, room_depth
from cliphaze.haze.families import AIRLIGHT_COLOURS, HAZE_FAMILIES, T_MIN, synthesize
from cliphaze.haze.noise import band_field, blob_field, fbm_field, smooth_noise
from cliphaze.haze.scattering import (
    HAZE_KINDS,
    HazeConfig,
    HazeSample,
    apply_scattering,
    synthesize_haze,
)

__all__ = [
    "AIRLIGHT_COLOURS",
    "HAZE_FAMILIES",
    "HAZE_KINDS",
    "T_MIN",
    "band_field",
    "blob_field",
    "fbm_field",
    "room_depth",
    "synthesize",
    "HazeConfig",
    "HazeSample",
    "apply_scattering",
    "depth_from_disparity",
    "ramp_depth_proxy",
    "smooth_noise",
    "synthesize_haze",
]
