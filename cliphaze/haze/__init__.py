"""Haze physics: the atmospheric scattering model and a seeded, batched haze synthesiser.

Lesson: ``notebooks/00_haze_and_data.ipynb``.
"""

from cliphaze.haze.depth import depth_from_disparity, ramp_depth_proxy
from cliphaze.haze.noise import smooth_noise
from cliphaze.haze.scattering import (
    HAZE_KINDS,
    HazeConfig,
    HazeSample,
    apply_scattering,
    synthesize_haze,
)

__all__ = [
    "HAZE_KINDS",
    "HazeConfig",
    "HazeSample",
    "apply_scattering",
    "depth_from_disparity",
    "ramp_depth_proxy",
    "smooth_noise",
    "synthesize_haze",
]
