"""Benchmark folder layouts: which file is hazy, which is its ground truth, and which split it is in.

The dehazing benchmarks ship in their own naming schemes, and this module reads them as
distributed (no renaming). A :class:`Layout` is one scheme: a regular expression for hazy file
names and one for ground-truth (GT) names, each capturing the *scene key* that pairs them, plus
the benchmark's standard train/test split. Supported (``name``: hazy -> GT, split):

- ``nh-haze``: ``01_hazy.png`` -> ``01_GT.png``; NH-HAZE 2020, 55 pairs, test 51-55.
- ``nh-haze-2021``: same naming; NH-HAZE 2021, 25 pairs, test 21-25.
- ``dense-haze``: same naming; Dense-Haze, 55 pairs, test 51-55.
- ``o-haze``: ``01_outdoor_hazy.jpg`` -> ``01_outdoor_GT.jpg``; O-HAZE, 45 pairs, test 41-45.
- ``i-haze``: ``01_indoor_hazy.jpg`` -> ``01_indoor_GT.jpg``; I-HAZE, 35 pairs, test 31-35.
- ``its``: ``1_1_0.90179.png`` -> ``1.png``; RESIDE ITS, a training set (no test split).
- ``ots``: ``0005_0.8_0.04.jpg`` -> ``0005.jpg``; RESIDE OTS, a training set.
- ``sots-indoor``: ``1400_1.png`` -> ``1400.png``; RESIDE SOTS-indoor, a test set.
- ``sots-outdoor``: ``0001_0.8_0.2.jpg`` -> ``0001.png``; RESIDE SOTS-outdoor, a test set.
- ``paired``: ``hazy/x.png`` -> ``GT/x.png`` (equal names, the common renamed layout); no standard
  split: a ``train/`` or ``test/`` folder gives it, otherwise every split gets all pairs (warned).

NH-HAZE 2021 publishes ground truth for its 25 training pairs only; the split used here (and in
``data/README.md``) is the common one: scenes 1-20 train, 21-25 test.

Folder structures (detected by :func:`scan_benchmark`):

- *one folder* holding hazy and GT images side by side (NH-HAZE, Dense-Haze as distributed);
- *sub-folders*: a hazy folder (``hazy``/``haze``) and a GT folder (``GT``/``gt``/``clear``/
  ``clear_images``), searched recursively (so releases split into part folders work);
- *split folders*: ``train/`` and/or ``test/`` each holding one of the above (the DehazeFormer
  layout, e.g. ``RESIDE-IN/test/hazy/1400_1.png`` + ``RESIDE-IN/test/GT/1400.png``); the folder
  then decides the split.

SOTS-indoor GT images as distributed are 640x480 with a 10 px border around the 620x460
hazy frame; :func:`match_clear_to_hazy` centre-crops them. Any other size difference is an
error that names both files: a pair is never silently resized. Lesson: ``notebooks/00_haze_and_data.ipynb``.
"""

from __future__ import annotations

import os
import re
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cliphaze.io import IMAGE_SUFFIXES

if TYPE_CHECKING:  # only in annotations: `cliphaze data check --help` works without torch
    import torch

__all__ = [
    "LAYOUTS",
    "SPLITS",
    "BenchmarkScan",
    "FolderScan",
    "Layout",
    "LayoutError",
    "Pair",
    "PairingError",
    "get_layout",
    "gt_crop_box",
    "list_images_recursive",
    "match_clear_to_hazy",
    "scan_benchmark",
]

SPLITS = ("train", "test", "all")
HAZY_DIR_NAMES = ("hazy", "haze")
GT_DIR_NAMES = ("gt", "clear", "clear_images")
SPLIT_DIR_NAMES = ("train", "test")


class LayoutError(ValueError):
    """A folder whose layout cannot be recognised (or does not fit the forced layout)."""


class PairingError(ValueError):
    """Hazy images without ground truth, or a pair whose sizes disagree; the message names the files."""


@dataclass(frozen=True)
class Layout:
    """One benchmark naming scheme.

    Attributes:
        name: short name used by ``layout=`` and ``--layout`` (e.g. ``"nh-haze"``).
        title: the benchmark, for messages.
        hazy_pattern: regex a hazy file's stem must match in full; group ``key`` is the scene key.
        gt_pattern: regex a GT file's stem must match in full; group ``key`` is the scene key.
        test_scenes: scene numbers of the standard test split (the rest is train), or None when
            the whole set has one role.
        role: the split of every pair when ``test_scenes`` is None: ``"train"``, ``"test"`` or
            ``"unknown"`` (no standard split: a ``train/``/``test/`` folder decides, otherwise
            the pairs serve any split, with a warning; see :meth:`BenchmarkScan.select`).
        gt_border: pixels the distributed GT has on each side beyond the hazy image (SOTS-indoor:
            10); :func:`match_clear_to_hazy` crops exactly that much, nothing else.
        expected_pairs: number of pairs of the complete benchmark (None when it varies).
        needs_subfolders: the hazy and GT names alone cannot tell the two apart (``paired``).
    """

    name: str
    title: str
    hazy_pattern: re.Pattern
    gt_pattern: re.Pattern
    test_scenes: frozenset[int] | None = None
    role: str = "unknown"
    gt_border: int = 0
    expected_pairs: int | None = None
    needs_subfolders: bool = False

    def split_of(self, key: str) -> str:
        """``"train"``, ``"test"`` or ``"unknown"`` for the scene ``key`` (a string of digits)."""
        if self.test_scenes is None:
            return self.role
        return "test" if int(key) in self.test_scenes else "train"

    def describe(self) -> str:
        """One line: the benchmark and its standard split, for reports."""
        if self.test_scenes is not None:
            lo, hi = min(self.test_scenes), max(self.test_scenes)
            split = f"test = scenes {lo}-{hi}, train = the rest"
        elif self.role == "unknown":
            split = "no standard split (train/ and test/ folders give one; otherwise all pairs serve any split)"
        else:
            split = f"{self.role} set only"
        return f"{self.name}: {self.title}; {split}"


def _rx(pattern: str) -> re.Pattern:
    return re.compile(pattern, re.IGNORECASE)


_NUMBERED_HAZY = _rx(r"(?P<key>\d+)_hazy")
_NUMBERED_GT = _rx(r"(?P<key>\d+)_gt")
# RESIDE: ITS hazy "<scene>_<level>_<beta>" (level an integer 1-10), OTS / SOTS-outdoor
# "<scene>_<airlight>_<beta>" (airlight 0.8 ... 1, so sometimes the integer 1), SOTS-indoor
# "<scene>_<level>"; the GT is "<scene>" in every case. The three-field names share one pattern
# and :func:`_family_hint` tells ITS from OTS by the middle field.
_RESIDE_3 = _rx(r"(?P<key>\d+)_\d*\.?\d+_\d*\.?\d+")
_SCENE_GT = _rx(r"(?P<key>\d+)")

LAYOUTS: dict[str, Layout] = {
    lay.name: lay
    for lay in (
        Layout("nh-haze", "NH-HAZE 2020 (NTIRE 2020, non-homogeneous haze)", _NUMBERED_HAZY, _NUMBERED_GT,
               frozenset(range(51, 56)), expected_pairs=55),
        Layout("nh-haze-2021", "NH-HAZE 2021 (NTIRE 2021, non-homogeneous haze)", _NUMBERED_HAZY, _NUMBERED_GT,
               frozenset(range(21, 26)), expected_pairs=25),
        Layout("dense-haze", "Dense-Haze (NTIRE 2019)", _NUMBERED_HAZY, _NUMBERED_GT,
               frozenset(range(51, 56)), expected_pairs=55),
        Layout("o-haze", "O-HAZE (NTIRE 2018, outdoor)", _rx(r"(?P<key>\d+)_outdoor_hazy"),
               _rx(r"(?P<key>\d+)_outdoor_gt"), frozenset(range(41, 46)), expected_pairs=45),
        Layout("i-haze", "I-HAZE (NTIRE 2018, indoor)", _rx(r"(?P<key>\d+)_indoor_hazy"),
               _rx(r"(?P<key>\d+)_indoor_gt"), frozenset(range(31, 36)), expected_pairs=35),
        Layout("its", "RESIDE ITS (indoor training set)", _RESIDE_3, _SCENE_GT, role="train"),
        Layout("ots", "RESIDE OTS (outdoor training set)", _RESIDE_3, _SCENE_GT, role="train"),
        Layout("sots-indoor", "RESIDE SOTS-indoor (test set)", _rx(r"(?P<key>\d+)_\d+"), _SCENE_GT,
               role="test", gt_border=10, expected_pairs=500),
        Layout("sots-outdoor", "RESIDE SOTS-outdoor (test set)", _RESIDE_3, _SCENE_GT,
               role="test", expected_pairs=500),
        Layout("paired", "renamed paired folders (hazy/ and GT/ with equal names)", _rx(r"(?P<key>.+)"),
               _rx(r"(?P<key>.+)"), needs_subfolders=True),
    )
}


def get_layout(name: str | Layout) -> Layout:
    """The :class:`Layout` called ``name`` (one of :data:`LAYOUTS`); a Layout passes through."""
    if isinstance(name, Layout):
        return name
    try:
        return LAYOUTS[name.lower()]
    except KeyError:
        raise LayoutError(f"unknown layout {name!r}; choose one of: auto, {', '.join(LAYOUTS)}") from None


@dataclass(frozen=True)
class Pair:
    """A hazy image and its ground truth.

    Attributes:
        hazy: path of the hazy image.
        clear: path of the ground-truth (haze-free) image.
        name: the hazy file's stem, unique within a benchmark (e.g. ``"1400_1"``).
        scene: the scene key shared by hazy and GT (e.g. ``"1400"``).
        split: ``"train"``, ``"test"`` or ``"unknown"``.
        layout: the :class:`Layout` that paired them (it knows the GT crop).
    """

    hazy: Path
    clear: Path
    name: str
    scene: str
    split: str
    layout: Layout


@dataclass
class FolderScan:
    """What one folder holds under one layout (see :func:`scan_benchmark`).

    Attributes:
        root: the folder scanned.
        layout: the layout used.
        structure: ``"one folder"`` or ``"sub-folders"``.
        hazy_dir, gt_dir: where hazy and GT images were found (equal for ``"one folder"``).
        hazy_files, gt_files: every hazy / GT image recognised by the layout's names.
        pairs: hazy images with exactly one GT, in name order.
        hazy_without_gt: ``(path, reason)`` for hazy images that cannot be paired.
        gt_without_hazy: GT images no hazy image refers to.
        unrecognised: images whose names fit neither the layout's hazy nor GT naming.
        folder_split: ``"train"``/``"test"`` when the folder sits in a split folder, else None.
        detected: True when the layout was detected, False when forced.
    """

    root: Path
    layout: Layout
    structure: str
    hazy_dir: Path
    gt_dir: Path
    hazy_files: list[Path] = field(default_factory=list)
    gt_files: list[Path] = field(default_factory=list)
    pairs: list[Pair] = field(default_factory=list)
    hazy_without_gt: list[tuple[Path, str]] = field(default_factory=list)
    gt_without_hazy: list[Path] = field(default_factory=list)
    unrecognised: list[Path] = field(default_factory=list)
    folder_split: str | None = None
    detected: bool = True


@dataclass
class BenchmarkScan:
    """The result of :func:`scan_benchmark`: one :class:`FolderScan` per (split) folder.

    Attributes:
        root: the folder asked for.
        folders: one entry for a plain benchmark folder; one per split folder otherwise.
        ignored: sub-folders beside split folders that are not scanned (e.g. ``val/``).
    """

    root: Path
    folders: list[FolderScan]
    ignored: list[Path] = field(default_factory=list)

    @property
    def pairs(self) -> list[Pair]:
        """Every pair of every split."""
        return [p for f in self.folders for p in f.pairs]

    @property
    def layout_names(self) -> list[str]:
        """The distinct layouts used, in folder order."""
        return list(dict.fromkeys(f.layout.name for f in self.folders))

    @property
    def hazy_without_gt(self) -> list[tuple[Path, str]]:
        return [x for f in self.folders for x in f.hazy_without_gt]

    @property
    def gt_without_hazy(self) -> list[Path]:
        return [x for f in self.folders for x in f.gt_without_hazy]

    @property
    def unrecognised(self) -> list[Path]:
        return [x for f in self.folders for x in f.unrecognised]

    def counts_by_split(self) -> dict[str, int]:
        """Number of pairs per split, e.g. ``{"train": 50, "test": 5}``."""
        counts: dict[str, int] = defaultdict(int)
        for p in self.pairs:
            counts[p.split] += 1
        return dict(counts)

    def select(self, split: str) -> list[Pair]:
        """The pairs of ``split`` (``"train"``, ``"test"`` or ``"all"``).

        A folder without split information (``paired`` layout outside a ``train/``/``test/``
        folder, e.g. the output of ``cliphaze haze`` or ``data/samples``) serves every split with
        all its pairs and a ``UserWarning`` saying so: the caller decides what the folder is for.

        Raises:
            ValueError: ``split`` is unknown, or the benchmark has no such split (e.g. the test
                split of RESIDE ITS, which is a training set).
        """
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if split == "all":
            return self.pairs
        chosen = [p for p in self.pairs if p.split == split]
        unsplit = [p for p in self.pairs if p.split == "unknown"]
        if unsplit:
            warnings.warn(
                f"{self.root}: {len(unsplit)} pairs have no split information (layout paired, not in a "
                f"train/ or test/ folder); all of them are used as the '{split}' split",
                stacklevel=2,
            )
            chosen += unsplit
        if not chosen:
            splits = ", ".join(sorted(self.counts_by_split())) or "nothing"
            raise ValueError(
                f"{self.root}: no '{split}' pairs under layout {'/'.join(self.layout_names)} "
                f"(it holds only: {splits})"
            )
        return chosen


def list_images_recursive(folder: str | os.PathLike) -> list[Path]:
    """Image files anywhere under ``folder`` (suffixes of :data:`cliphaze.io.IMAGE_SUFFIXES`,
    case-insensitive; hidden files and folders skipped), sorted by path.

    Symbolically linked sub-folders are followed (a dataset assembled from links is read whole);
    a folder reached twice, e.g. through a link that points back up the tree, is read once.

    Args:
        folder: a folder.

    Returns:
        Paths of the image files (not read; :func:`cliphaze.io.read_image` reads them).
    """
    found = []
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # a link loop or a second link to the same folder
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for f in filenames:
            if Path(f).suffix.lower() in IMAGE_SUFFIXES and not f.startswith("."):
                found.append(Path(dirpath) / f)
    return sorted(found)


def _images_here(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )


def _subdir(folder: Path, names: tuple[str, ...]) -> Path | None:
    """The first sub-folder of ``folder`` whose lower-cased name is in ``names`` (in that order)."""
    subdirs = {d.name.lower(): d for d in sorted(folder.iterdir()) if d.is_dir()}
    for n in names:
        if n in subdirs:
            return subdirs[n]
    return None


def _pair_folder(
    root: Path, layout: Layout, hazy_pool: list[Path], gt_pool: list[Path], structure: str,
    hazy_dir: Path, gt_dir: Path, folder_split: str | None,
) -> FolderScan:
    """Apply ``layout``'s naming to the candidate files and pair them by scene key."""
    scan = FolderScan(root, layout, structure, hazy_dir, gt_dir, folder_split=folder_split)
    one_folder = structure == "one folder"
    gt_by_key: dict[str, list[Path]] = defaultdict(list)
    gt_set = set()
    for p in gt_pool:
        m = layout.gt_pattern.fullmatch(p.stem)
        if m:
            gt_by_key[m["key"]].append(p)
            gt_set.add(p)
            scan.gt_files.append(p)
        elif not one_folder:
            scan.unrecognised.append(p)
    used_keys = set()
    for p in hazy_pool:
        if one_folder and p in gt_set:
            continue
        m = layout.hazy_pattern.fullmatch(p.stem)
        if not m:
            scan.unrecognised.append(p)
            continue
        scan.hazy_files.append(p)
        key = m["key"]
        candidates = gt_by_key.get(key, [])
        if len(candidates) == 1:
            split = folder_split or layout.split_of(key)
            scan.pairs.append(Pair(p, candidates[0], p.stem, key, split, layout))
            used_keys.add(key)
        elif not candidates:
            scan.hazy_without_gt.append((p, f"no ground truth for scene {key!r} in {gt_dir}"))
        else:
            used_keys.add(key)
            names = ", ".join(c.name for c in candidates)
            scan.hazy_without_gt.append((p, f"several ground-truth files for scene {key!r}: {names}"))
    scan.gt_without_hazy = [p for k, ps in sorted(gt_by_key.items()) if k not in used_keys for p in ps]
    scan.unrecognised.sort()
    return scan


def _family_hint(root: Path, candidates: list[FolderScan]) -> FolderScan:
    """Choose among layouts that pair the same files (same names, different benchmark).

    NH-HAZE 2020/2021 and Dense-Haze share one naming, as do ITS, OTS and SOTS-outdoor. The folder
    path decides ("dense" -> Dense-Haze, "2021" or "nh-haze2" -> NH-HAZE 2021, "sots" ->
    SOTS-outdoor); otherwise a set of exactly 25 numbered pairs is NH-HAZE 2021, anything else
    NH-HAZE 2020; three-field RESIDE names whose middle field is never a decimal are ITS (a haze
    level, not an airlight), and OTS/SOTS-outdoor are told apart by the GT format (SOTS-outdoor GT
    is PNG, OTS GT is JPEG). ``layout=`` overrides all of this.
    """
    by_name = {c.layout.name: c for c in candidates}
    text = re.sub(r"[-_ ]", "", str(root.resolve()).lower())
    if "nh-haze" in by_name:
        if "dense-haze" in by_name and "dense" in text:
            return by_name["dense-haze"]
        if "nh-haze-2021" in by_name:
            keys = {int(p.scene) for p in by_name["nh-haze"].pairs}
            if "2021" in text or "nhhaze2" in text or (len(keys) == 25 and max(keys) == 25):
                return by_name["nh-haze-2021"]
        return by_name["nh-haze"]
    if "ots" in by_name and "sots-outdoor" in by_name:
        middles = [p.name.split("_")[1] for p in by_name["ots"].pairs]
        if "its" in by_name and not any("." in m for m in middles):
            return by_name["its"]
        if "sots" in text:
            return by_name["sots-outdoor"]
        gt_suffixes = {p.clear.suffix.lower() for p in by_name["ots"].pairs}
        return by_name["sots-outdoor"] if gt_suffixes == {".png"} else by_name["ots"]
    return candidates[0]


def _scan_folder(root: Path, layout: str, folder_split: str | None) -> FolderScan:
    hazy_dir = _subdir(root, HAZY_DIR_NAMES)
    gt_dir = _subdir(root, GT_DIR_NAMES)
    if hazy_dir is not None and gt_dir is not None:
        structure = "sub-folders"
        hazy_pool, gt_pool = list_images_recursive(hazy_dir), list_images_recursive(gt_dir)
    elif hazy_dir is not None or gt_dir is not None:
        found = (hazy_dir or gt_dir).name
        raise LayoutError(
            f"{root}: found a {found}/ folder but no matching "
            f"{'GT' if hazy_dir is not None else 'hazy'} folder "
            f"(expected one of {', '.join(GT_DIR_NAMES if hazy_dir is not None else HAZY_DIR_NAMES)})"
        )
    else:
        structure = "one folder"
        hazy_dir = gt_dir = root
        hazy_pool = gt_pool = _images_here(root)
        if not hazy_pool:
            subdirs = sorted(d.name for d in root.iterdir() if d.is_dir())
            raise LayoutError(
                f"{root}: no images, and no hazy/GT sub-folders "
                f"(sub-folders: {', '.join(subdirs) or 'none'})"
            )
    if layout != "auto":
        lay = get_layout(layout)
        if lay.needs_subfolders and structure == "one folder":
            raise LayoutError(f"{root}: layout {lay.name!r} needs hazy/ and GT/ sub-folders")
        scan = _pair_folder(root, lay, hazy_pool, gt_pool, structure, hazy_dir, gt_dir, folder_split)
        scan.detected = False
        return scan
    scans = [
        _pair_folder(root, lay, hazy_pool, gt_pool, structure, hazy_dir, gt_dir, folder_split)
        for lay in LAYOUTS.values()
        if not (lay.needs_subfolders and structure == "one folder")
    ]
    best = max(len(s.pairs) for s in scans)
    if best == 0:
        n_hazy, n_gt = len(hazy_pool), len(gt_pool)
        what = (
            f"{n_hazy} images in {hazy_dir.name}/ and {n_gt} in {gt_dir.name}/"
            if structure == "sub-folders"
            else f"{n_hazy} images"
        )
        raise LayoutError(
            f"{root}: {what}, but no file names pair as hazy -> ground truth under any known layout "
            f"({', '.join(LAYOUTS)})"
        )
    # Prefer the layout that pairs the most files; among ties, the one that leaves fewest files
    # unexplained, then the family hint (same names, different benchmark).
    def badness(s: FolderScan) -> tuple[int, int]:
        return (-len(s.pairs), len(s.unrecognised) + len(s.hazy_without_gt) + len(s.gt_without_hazy))

    top = min(badness(s) for s in scans)
    return _family_hint(root, [s for s in scans if badness(s) == top])


def scan_benchmark(root: str | os.PathLike, layout: str = "auto") -> BenchmarkScan:
    """Find the hazy/GT pairs in a benchmark folder laid out as distributed.

    Reads file names only (no image is decoded): use :func:`cliphaze.data.cli` (``cliphaze data
    check``) or the datasets to read them.

    Args:
        root: the benchmark folder (one folder, hazy/GT sub-folders, or train/ and test/ folders
            holding either; see the module docstring).
        layout: ``"auto"`` to detect it, or a name from :data:`LAYOUTS` to force it.

    Returns:
        :class:`BenchmarkScan` with the pairs (each tagged with its split) and everything that did
        not pair.

    Raises:
        LayoutError: ``root`` is missing, holds no images, or no layout pairs any file.
    """
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(f"{root}: no such folder")
    if layout != "auto":
        get_layout(layout)  # fail early on an unknown name
    has_images = bool(_images_here(root))
    has_pair_dirs = _subdir(root, HAZY_DIR_NAMES) is not None or _subdir(root, GT_DIR_NAMES) is not None
    split_dirs = [d for d in sorted(root.iterdir()) if d.is_dir() and d.name.lower() in SPLIT_DIR_NAMES]
    if split_dirs and not has_images and not has_pair_dirs:
        ignored = [
            d for d in sorted(root.iterdir())
            if d.is_dir() and d not in split_dirs and not d.name.startswith(".")
        ]
        return BenchmarkScan(root, [_scan_folder(d, layout, d.name.lower()) for d in split_dirs], ignored)
    own_split = root.name.lower() if root.name.lower() in SPLIT_DIR_NAMES else None
    return BenchmarkScan(root, [_scan_folder(root, layout, own_split)])


def gt_crop_box(hazy_size: tuple[int, int], clear_size: tuple[int, int], pair: Pair) -> tuple[int, int, int, int]:
    """Where the hazy frame lies inside the GT: equal sizes pass, SOTS-indoor's border is cropped.

    A GT exactly ``2 * layout.gt_border`` pixels larger in height and width (SOTS-indoor as
    distributed: 640x480 GT around a 620x460 hazy image) is centre-cropped by ``gt_border`` on each
    side; copies already cropped (the DehazeFormer release) have equal sizes and pass unchanged.

    Args:
        hazy_size: ``(h, w)`` of the hazy image.
        clear_size: ``(h', w')`` of the ground truth.
        pair: the pair they belong to (for its layout and the file names in errors).

    Returns:
        ``(top, left, h, w)``: the GT window aligned with the hazy image.

    Raises:
        PairingError: any other size difference, naming both files.
    """
    h, w = hazy_size
    hc, wc = clear_size
    if (hc, wc) == (h, w):
        return 0, 0, h, w
    b = pair.layout.gt_border
    if b > 0 and (hc, wc) == (h + 2 * b, w + 2 * b):
        return b, b, h, w
    crop_note = f" (only a {b} px GT border is cropped for {pair.layout.name})" if b > 0 else ""
    raise PairingError(
        f"size mismatch{crop_note}: hazy {pair.hazy} is {w}x{h} but ground truth {pair.clear} is {wc}x{hc}"
    )


def match_clear_to_hazy(clear: torch.Tensor, hazy: torch.Tensor, pair: Pair) -> torch.Tensor:
    """Crop the GT to the hazy image's frame following :func:`gt_crop_box`.

    Args:
        clear: ``(3, h', w')`` ground truth.
        hazy: ``(3, h, w)`` hazy image.
        pair: the pair they came from (for its layout and the file names in errors).

    Returns:
        ``(3, h, w)`` ground truth aligned with ``hazy``.

    Raises:
        PairingError: the sizes differ other than by the layout's documented border.
    """
    top, left, h, w = gt_crop_box(tuple(hazy.shape[-2:]), tuple(clear.shape[-2:]), pair)
    return clear[..., top:top + h, left:left + w]
