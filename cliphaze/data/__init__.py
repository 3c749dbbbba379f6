"""Paired dehazing benchmarks in their original layouts, and haze synthesised over clear photos.

- :mod:`cliphaze.data.layouts`: which file is hazy, which is its ground truth, which split.
- :mod:`cliphaze.data.datasets`: :func:`open_benchmark` and :class:`SyntheticHazeDataset`.
- :mod:`cliphaze.data.cli`: ``cliphaze data check PATH``.

Lesson: ``notebooks/00_haze_and_data.ipynb``; where to get each benchmark: ``data/README.md``.
"""

from cliphaze.data.datasets import (
    SYNTHETIC_KINDS,
    PairedDataset,
    SyntheticHazeDataset,
    open_benchmark,
    random_crop_flip,
)
from cliphaze.data.layouts import (
    LAYOUTS,
    SPLITS,
    BenchmarkScan,
    FolderScan,
    Layout,
    LayoutError,
    Pair,
    PairingError,
    get_layout,
    gt_crop_box,
    list_images_recursive,
    match_clear_to_hazy,
    scan_benchmark,
)

__all__ = [
    "LAYOUTS",
    "SPLITS",
    "SYNTHETIC_KINDS",
    "BenchmarkScan",
    "FolderScan",
    "Layout",
    "LayoutError",
    "Pair",
    "PairedDataset",
    "PairingError",
    "SyntheticHazeDataset",
    "get_layout",
    "gt_crop_box",
    "list_images_recursive",
    "match_clear_to_hazy",
    "open_benchmark",
    "random_crop_flip",
    "scan_benchmark",
]
