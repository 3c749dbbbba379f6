"""Torch datasets: real hazy/GT benchmarks, and haze synthesised on the fly over clear photos.

- :func:`open_benchmark` / :class:`PairedDataset`: the pairs found by
  :func:`cliphaze.data.layouts.scan_benchmark`, read with :func:`cliphaze.io.read_image`, the GT
  aligned by :func:`cliphaze.data.layouts.match_clear_to_hazy`.
- :class:`SyntheticHazeDataset`: any folder of clear images (e.g. BSDS500) with haze from
  :func:`cliphaze.haze.synthesize_haze` or, with ``families=``, from several haze families
  (:func:`cliphaze.haze.synthesize`); the sample for ``(seed, epoch, index)`` is always the same.

Augmentation, shared by both: a random ``crop`` (the same window for hazy, clear and maps) and,
with ``flip``, a random horizontal flip. Vertical flips are not used: they put the sky at the
bottom, which neither real haze nor the top-is-far depth proxy of :mod:`cliphaze.haze.depth`
has. An image smaller than the crop is first enlarged (bilinear, aspect ratio kept) just enough
to cover it; reflect-padding would instead add mirrored structure at the border and fails when
the pad exceeds the image. Lesson: ``notebooks/00_haze_and_data.ipynb``.

Shapes: c = 3 channels, h, w = image (or crop) size (see :mod:`cliphaze.shapes`).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from cliphaze.data.layouts import (
    BenchmarkScan,
    Pair,
    PairingError,
    list_images_recursive,
    match_clear_to_hazy,
    scan_benchmark,
)
from cliphaze.haze import AIRLIGHT_COLOURS, HAZE_FAMILIES, HazeConfig, synthesize, synthesize_haze
from cliphaze.haze.real_depth import real_depth_pairs
from cliphaze.io import ImageReadError, read_image

__all__ = [
    "SYNTHETIC_KINDS",
    "PairedDataset",
    "SyntheticHazeDataset",
    "open_benchmark",
    "random_crop_flip",
]

SYNTHETIC_KINDS = ("homogeneous", "nonhomogeneous", "mixed")


def _crop_size(crop: int | Sequence[int] | None) -> tuple[int, int] | None:
    if crop is None:
        return None
    ch, cw = (crop, crop) if isinstance(crop, int) else tuple(crop)
    if ch < 1 or cw < 1:
        raise ValueError(f"crop must be positive, got {crop!r}")
    return int(ch), int(cw)


def _bright_version(clear: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """(3, h, w) clear crop -> bright, white or textureless content of the same size, derived
    from it (:func:`cliphaze.clip.crops.bright_clear_crops`; a non-square crop is cut from a
    square one)."""
    from cliphaze.clip.crops import bright_clear_crops

    h, w = clear.shape[-2:]
    side = max(h, w)
    photo = clear if h == w else F.interpolate(clear[None], size=(side, side), mode="bilinear",
                                               align_corners=False)[0]
    return bright_clear_crops(1, side, photo[None], gen)[0, :, :h, :w].contiguous()


def _sample_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """A CPU generator determined by ``(seed, epoch, index)`` alone (no collisions in practice:
    numpy's SeedSequence hashes the three numbers together)."""
    state = np.random.SeedSequence([seed, epoch, index]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state) & (2**63 - 1))


def _randint(high: int, generator: torch.Generator | None) -> int:
    """Uniform integer in [0, high)."""
    return int(torch.randint(high, (1,), generator=generator))


def random_crop_flip(
    images: Sequence[torch.Tensor],
    crop: int | Sequence[int] | None,
    flip: bool,
    generator: torch.Generator | None = None,
) -> list[torch.Tensor]:
    """Crop the same random window from aligned images and flip them all, or none, horizontally.

    Images smaller than the crop are first enlarged together (bilinear, aspect ratio kept) until
    they cover it (module docstring says why not reflect-padding).

    Args:
        images: tensors ``(c_i, h, w)`` with equal ``h, w`` (hazy, clear, maps...).
        crop: ``int`` or ``(ch, cw)`` window, or None for no crop.
        flip: when True, flip left-right with probability 1/2.
        generator: torch CPU generator (None: torch's global generator).

    Returns:
        The images ``(c_i, ch, cw)`` (or ``(c_i, h, w)`` without crop), in the same order.
    """
    size = _crop_size(crop)
    h, w = images[0].shape[-2:]
    if any(tuple(im.shape[-2:]) != (h, w) for im in images):
        raise ValueError(f"images to crop together must share (h, w); got {[tuple(i.shape) for i in images]}")
    out = list(images)
    if size is not None:
        ch, cw = size
        if h < ch or w < cw:
            scale = max(ch / h, cw / w)
            nh, nw = max(ch, math.ceil(h * scale)), max(cw, math.ceil(w * scale))
            out = [
                F.interpolate(im[None], size=(nh, nw), mode="bilinear", align_corners=False)[0]
                for im in out
            ]
            h, w = nh, nw
        top = _randint(h - ch + 1, generator)
        left = _randint(w - cw + 1, generator)
        out = [im[..., top:top + ch, left:left + cw] for im in out]
    if flip and _randint(2, generator) == 1:
        out = [im.flip(-1) for im in out]
    return [im.contiguous() for im in out]


class PairedDataset(Dataset):
    """Hazy/GT pairs read from disk; usually made by :func:`open_benchmark`.

    Each item is a dict:

    - ``hazy``: ``(3, h, w)`` float32 in [0, 1];
    - ``clear``: ``(3, h, w)`` float32 ground truth aligned with it (SOTS-indoor border cropped);
    - ``name``: the hazy file's stem (e.g. ``"51_hazy"``, ``"1400_1"``);
    - ``hazy_path``, ``clear_path``: the files, as strings.

    Without ``crop`` images keep their own size, so batch them with ``batch_size=1`` (or crop).

    Args:
        pairs: :class:`cliphaze.data.layouts.Pair` list.
        crop: ``int`` or ``(ch, cw)`` random crop for training, or None.
        flip: random horizontal flip (same for hazy and clear).
        seed: None draws crops/flips from torch's global generator (seed it, or rely on the
            DataLoader's per-worker seeding); an int makes item ``index`` of epoch ``e`` identical
            on every run (see :meth:`set_epoch`).
        scan: the :class:`BenchmarkScan` the pairs came from (kept for reports).
    """

    def __init__(
        self,
        pairs: Sequence[Pair],
        crop: int | Sequence[int] | None = None,
        flip: bool = False,
        seed: int | None = None,
        scan: BenchmarkScan | None = None,
    ):
        self.pairs = list(pairs)
        self.crop = _crop_size(crop)
        self.flip = bool(flip)
        self.seed = seed
        self.scan = scan
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.pairs)

    def set_epoch(self, epoch: int) -> None:
        """Use the crops/flips of ``epoch`` (only matters when ``seed`` is set)."""
        self.epoch = int(epoch)

    def __getitem__(self, index: int) -> dict:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} pairs")
        index %= len(self)
        pair = self.pairs[index]
        hazy = read_image(pair.hazy)
        clear = match_clear_to_hazy(read_image(pair.clear), hazy, pair)
        if self.crop is not None or self.flip:
            gen = None if self.seed is None else _sample_generator(self.seed, self.epoch, index)
            hazy, clear = random_crop_flip([hazy, clear], self.crop, self.flip, gen)
        return {
            "hazy": hazy,
            "clear": clear,
            "name": pair.name,
            "hazy_path": str(pair.hazy),
            "clear_path": str(pair.clear),
        }


def _list_problems(items: Sequence[str], limit: int = 10) -> str:
    shown = "\n  ".join(items[:limit])
    more = f"\n  ... and {len(items) - limit} more" if len(items) > limit else ""
    return f"\n  {shown}{more}"


def open_benchmark(
    root: str | os.PathLike,
    split: str = "test",
    layout: str = "auto",
    crop: int | Sequence[int] | None = None,
    flip: bool = False,
    seed: int | None = None,
) -> PairedDataset:
    """Open a dehazing benchmark in its distributed layout as a :class:`PairedDataset`.

    Supported layouts and their standard splits: :mod:`cliphaze.data.layouts` and
    ``data/README.md``. Run ``cliphaze data check ROOT`` to see what is found.

    Args:
        root: the benchmark folder (e.g. the unpacked ``NH-HAZE`` or ``SOTS/indoor``).
        split: ``"train"``, ``"test"`` or ``"all"``.
        layout: ``"auto"`` or a layout name to force (``"nh-haze"``, ``"sots-indoor"``, ...).
        crop: random crop ``int`` or ``(ch, cw)`` (training), None for full images.
        flip: random horizontal flip (training).
        seed: fixes crops/flips per ``(seed, epoch, index)``; None uses torch's global generator.

    Returns:
        :class:`PairedDataset` whose items are dicts with ``hazy`` ``(3, h, w)``, ``clear``
        ``(3, h, w)``, ``name``, ``hazy_path``, ``clear_path``.

    Raises:
        LayoutError: no known layout pairs the folder's files.
        PairingError: a hazy image has no (or several) ground truth, or an image's name fits
            neither the hazy nor the GT naming; the message names every such file. A GT image no
            hazy image uses only triggers a warning (a subset of hazy images is legitimate).
        ValueError: the benchmark has no pairs in ``split`` (e.g. ``split="test"`` on RESIDE ITS).
    """
    scan = scan_benchmark(root, layout)
    layout_name = "/".join(scan.layout_names)
    problems = [f"{p}: {why}" for p, why in scan.hazy_without_gt]
    problems += [f"{p}: name fits neither the hazy nor the GT naming of {layout_name}" for p in scan.unrecognised]
    if problems:
        raise PairingError(
            f"{root} (layout {layout_name}): {len(problems)} file(s) cannot be paired; "
            f"run `cliphaze data check {root}` for a full report:{_list_problems(problems)}"
        )
    if scan.gt_without_hazy:
        warnings.warn(
            f"{root}: {len(scan.gt_without_hazy)} ground-truth image(s) have no hazy image:"
            f"{_list_problems([str(p) for p in scan.gt_without_hazy])}",
            stacklevel=2,
        )
    return PairedDataset(scan.select(split), crop=crop, flip=flip, seed=seed, scan=scan)


class SyntheticHazeDataset(Dataset):
    """Clear photos with haze synthesised on the fly (for training without a paired benchmark).

    Item ``index`` reads image ``index % n_images`` (``source`` sorted by path), crops a random
    ``crop`` window (enlarging images smaller than it, see the module docstring), flips it
    left-right with probability 1/2, and hazes it with :func:`cliphaze.haze.synthesize_haze`.
    Every random draw comes from a generator seeded by ``(seed, epoch, index)``, so the same
    triple gives the same sample in any process or DataLoader worker; call :meth:`set_epoch` each
    epoch for fresh crops and haze.

    Each item is a dict:

    - ``hazy``, ``clear``: ``(3, ch, cw)`` float32 in [0, 1];
    - ``transmission``, ``density``: ``(1, ch, cw)``, ``t`` and ``1 - t``;
    - ``airlight``: ``(3, 1, 1)`` (broadcasts against the image);
    - ``name``: the image's path relative to ``source``, without suffix (e.g. ``"train/100075"``);
    - ``params``: :meth:`cliphaze.haze.HazeSample.describe` (kind, beta, patchiness, ...).

    Unreadable files: with ``validate=True`` (default) every image is read once at construction
    and *all* unreadable ones are reported together in one :class:`cliphaze.io.ImageReadError`
    (training should not stop at hour three on a broken JPEG). ``validate=False`` skips that
    pass for very large folders; an unreadable file then raises when its item is loaded.

    Args:
        source: folder of clear images (searched recursively) or a sequence of image paths.
        crop: ``int`` or ``(ch, cw)`` training crop.
        kind: ``"homogeneous"``, ``"nonhomogeneous"`` or ``"mixed"`` (each item picks one of the
            two with probability 1/2).
        length: number of items per epoch; default the number of images (a larger value cycles
            through them with different crops and haze).
        seed: base seed.
        config: :class:`cliphaze.haze.HazeConfig` sampling ranges (its ``kind`` is overridden).
        validate: read every image once at construction (see above).
        families: haze families of :data:`cliphaze.haze.HAZE_FAMILIES` to draw from (one per item,
            uniformly, from the item's own generator, so the sample stays a function of
            ``(seed, epoch, index)``); None (default) keeps the original synthesiser and ``kind``.
            An item drawing ``"real-depth"`` hazes a crop of a real colour + depth pair
            (:func:`cliphaze.haze.real_depth.real_depth_pairs`) instead of the photo, because a
            real depth map only fits its own image; its name is ``"real-depth/PAIR"``.
        dense: with ``families``, probability that an item gets very dense haze (``t`` down to 0.05).
        airlight_colour: with ``families``: ``"near-white"``, ``"grey"``, ``"warm"``, ``"cool"`` or
            ``"any"`` (:func:`cliphaze.haze.synthesize`).
        noise: with ``families``, the largest sensor-noise sigma; each item draws ``U(0, noise)``.
        jpeg: with ``families``, a ``(low, high)`` JPEG quality range every hazy item is
            re-encoded at (drawn per item), or None.
        bright: with ``families``, probability that an item's clear crop is replaced by bright,
            white or textureless content made from it (:func:`cliphaze.clip.crops.bright_clear_crops`:
            flat bright colours, bright gradients, blurred over-exposed or white-balanced bright
            crops) before it is hazed. Photo collections rarely show large white walls; without
            such examples a dehazer learns "bright and flat means haze" and darkens white rooms.
            Not applied to ``"real-depth"`` items (their depth belongs to the real colour frame).
        real_depth_folder: where ``"real-depth"`` finds RGB-D pairs (``"auto"``: the development
            data when present; scikit-image's motorcycle is always used).
    """

    def __init__(
        self,
        source: str | os.PathLike | Sequence[str | os.PathLike],
        crop: int | Sequence[int] = 128,
        kind: str = "mixed",
        length: int | None = None,
        seed: int = 0,
        config: HazeConfig | None = None,
        validate: bool = True,
        families: Sequence[str] | None = None,
        dense: float = 0.0,
        airlight_colour: str = "near-white",
        noise: float = 0.0,
        jpeg: tuple[int, int] | None = None,
        bright: float = 0.0,
        real_depth_folder: str | os.PathLike | None = "auto",
    ):
        if kind not in SYNTHETIC_KINDS:
            raise ValueError(f"kind must be one of {SYNTHETIC_KINDS}, got {kind!r}")
        if isinstance(source, (str, os.PathLike)):
            self.root: Path | None = Path(source)
            if not self.root.is_dir():
                raise FileNotFoundError(f"{self.root}: no such folder of clear images")
            self.files = list_images_recursive(self.root)
        else:
            self.root = None
            self.files = [Path(p) for p in source]
        if not self.files:
            raise ValueError(f"{source}: no image files found (suffixes .png, .jpg, ...)")
        if validate:
            errors = []
            for f in self.files:
                try:
                    read_image(f)
                except ImageReadError as err:
                    errors.append(str(err))
            if errors:
                raise ImageReadError(
                    f"{len(errors)} of {len(self.files)} images cannot be read (remove or fix them, "
                    f"or pass a list of the good files):{_list_problems(errors, limit=50)}"
                )
        self.crop = _crop_size(crop)
        self.kind = kind
        self.length = len(self.files) if length is None else int(length)
        if self.length < 1:
            raise ValueError(f"length must be >= 1, got {length}")
        self.seed = int(seed)
        self.config = config
        self.epoch = 0
        self.families = None if families is None else tuple(families)
        if self.families is not None:
            unknown = [f for f in self.families if f not in HAZE_FAMILIES]
            if unknown or not self.families:
                raise ValueError(f"families must be a non-empty subset of {sorted(HAZE_FAMILIES)}, got {families!r}")
        if not 0.0 <= float(dense) <= 1.0:
            raise ValueError(f"dense is a probability in [0, 1], got {dense!r}")
        if airlight_colour not in AIRLIGHT_COLOURS:
            raise ValueError(f"airlight_colour must be one of {AIRLIGHT_COLOURS}, got {airlight_colour!r}")
        if not float(noise) >= 0.0:
            raise ValueError(f"noise must be >= 0, got {noise!r}")
        if jpeg is not None and not (len(jpeg) == 2 and 1 <= jpeg[0] <= jpeg[1] <= 100):
            raise ValueError(f"jpeg must be a (low, high) quality range within [1, 100], got {jpeg!r}")
        if not 0.0 <= float(bright) <= 1.0:
            raise ValueError(f"bright is a probability in [0, 1], got {bright!r}")
        self.bright = float(bright)
        self.dense = float(dense)
        self.airlight_colour = airlight_colour
        self.noise = float(noise)
        self.jpeg = None if jpeg is None else (int(jpeg[0]), int(jpeg[1]))
        self.real_depth_folder = real_depth_folder

    def __len__(self) -> int:
        return self.length

    def set_epoch(self, epoch: int) -> None:
        """Draw the crops and haze of ``epoch`` from now on."""
        self.epoch = int(epoch)

    def _name(self, path: Path) -> str:
        rel = path.relative_to(self.root) if self.root is not None else Path(path.name)
        return rel.with_suffix("").as_posix()

    def __getitem__(self, index: int) -> dict:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        index %= len(self)
        gen = _sample_generator(self.seed, self.epoch, index)
        if self.families is not None:
            return self._family_item(index, gen)
        path = self.files[index % len(self.files)]
        (clear,) = random_crop_flip([read_image(path)], self.crop, flip=True, generator=gen)
        kind = self.kind
        if kind == "mixed":
            kind = ("homogeneous", "nonhomogeneous")[_randint(2, gen)]
        sample = synthesize_haze(clear, kind=kind, config=self.config, generator=gen)
        return {
            "hazy": sample.hazy[0],
            "clear": sample.clear[0],
            "transmission": sample.transmission[0],
            "density": sample.density[0],
            "airlight": sample.airlight[0],
            "name": self._name(path),
            "params": sample.describe(0),
        }

    def _family_item(self, index: int, gen: torch.Generator) -> dict:
        family = self.families[_randint(len(self.families), gen)]
        dense = bool(torch.rand(1, generator=gen) < self.dense) if self.dense > 0 else False
        depth = None
        if family == "real-depth":
            pairs = real_depth_pairs(self.real_depth_folder)
            pair = pairs[_randint(len(pairs), gen)]
            clear, depth = random_crop_flip([pair.colour, pair.depth], self.crop, flip=True, generator=gen)
            name = f"real-depth/{pair.name}"
        else:
            path = self.files[index % len(self.files)]
            (clear,) = random_crop_flip([read_image(path)], self.crop, flip=True, generator=gen)
            name = self._name(path)
            # drawn only when asked for, so that bright = 0 keeps every item of earlier runs
            if self.bright > 0 and bool(torch.rand(1, generator=gen) < self.bright):
                clear = _bright_version(clear, gen)
                name += "#bright"
        sample = synthesize(
            family, clear, generator=gen, depth=depth, dense=dense, airlight_colour=self.airlight_colour,
            noise=(0.0, self.noise) if self.noise > 0 else None, jpeg_quality=self.jpeg,
        )
        params = sample.describe(0)
        params["dense"] = dense
        return {
            "hazy": sample.hazy[0],
            "clear": sample.clear[0],
            "transmission": sample.transmission[0],
            "density": sample.density[0],
            "airlight": sample.airlight[0],
            "name": name,
            "params": params,
        }
