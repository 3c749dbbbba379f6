"""``cliphaze data check PATH``: what a benchmark folder holds, and everything that does not pair.

Prints the layout (detected or forced), the hazy and GT images found, the pairs per split, then
reads every image of the chosen split with :func:`cliphaze.io.read_image` and checks each pair's
sizes (after the layout's documented GT crop). Exit status: 0 when every file pairs and reads,
1 when anything is wrong (each problem is listed with its file), 2 when the folder is missing or
is not a paired benchmark (e.g. a folder of clear photos such as BSDS500, which is reported as
such, with its image count, as training material for synthetic haze).
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

__all__ = ["register", "run_check"]


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``data`` command (with its ``check`` sub-command) to the ``cliphaze`` parser.

    Args:
        subparsers: the object returned by ``parser.add_subparsers()``.

    Returns:
        The ``data`` parser.
    """
    from cliphaze.data.layouts import LAYOUTS, SPLITS

    data = subparsers.add_parser("data", help="inspect dehazing datasets", description="Inspect dehazing datasets.")
    data_sub = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    data_sub.required = True
    check = data_sub.add_parser(
        "check",
        help="report the layout, pairs and problems of a benchmark folder",
        description=(
            "Report the layout, pairs per split and every file that does not pair, is unreadable or "
            "has a mismatched size. Exit status 0: all good; 1: problems listed; 2: not a paired "
            "benchmark (or no such folder)."
        ),
    )
    check.add_argument("path", type=Path, help="benchmark folder as distributed (e.g. NH-HAZE, SOTS/indoor)")
    check.add_argument(
        "--layout", default="auto", choices=["auto", *LAYOUTS],
        help="force a layout instead of detecting it (default: auto)",
    )
    check.add_argument(
        "--split", default="all", choices=list(SPLITS),
        help="which pairs to read and size-check (default: all)",
    )
    check.add_argument(
        "--quick", action="store_true",
        help="check names only; do not read the images, faster for RESIDE ITS/OTS (default: off, read all)",
    )
    check.set_defaults(func=run_check)
    return data


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _not_a_benchmark(root: Path, reason: str, quick: bool) -> int:
    """Report a folder no layout pairs: count (and read) its images so clear photo sets are named as such."""
    from cliphaze.data.layouts import (
        GT_DIR_NAMES,
        HAZY_DIR_NAMES,
        LayoutError,
        list_images_recursive,
        scan_benchmark,
    )
    from cliphaze.io import ImageReadError, read_image

    print(f"{root}: not a paired benchmark")
    print(f"  {reason}")
    if root.name.lower() in HAZY_DIR_NAMES + GT_DIR_NAMES:
        print(f"  {root.name}/ is one half of a paired benchmark: check the folder above it, {root.parent}")
        return 2
    inner = []
    for sub in sorted(d for d in root.iterdir() if d.is_dir()):
        try:
            found = scan_benchmark(sub)
        except LayoutError:
            continue
        if found.pairs:
            inner.append(f"{sub.name}/ ({'/'.join(found.layout_names)}, {len(found.pairs)} pairs)")
    if inner:
        print("  it holds benchmark folders; check each one on its own: " + ", ".join(inner))
        return 2
    images = list_images_recursive(root)
    if not images:
        print("  no image files found under it")
        return 2
    per_folder: dict[str, int] = {}
    for p in images:
        key = _rel(p.parent, root) + "/"
        per_folder[key] = per_folder.get(key, 0) + 1
    folders = ", ".join(f"{k}: {v}" for k, v in sorted(per_folder.items()))
    print(f"  found {len(images)} images with no hazy -> ground-truth naming ({folders})")
    if not quick:
        bad = []
        for p in images:
            try:
                read_image(p)
            except ImageReadError as err:
                bad.append(str(err))
        print(f"  read {len(images)} images: {len(images) - len(bad)} readable, {len(bad)} unreadable")
        for msg in bad:
            print(f"    unreadable: {msg}")
    print(
        "  This looks like a folder of clear photos. It can train a dehazer with haze synthesised on the "
        "fly: cliphaze.data.SyntheticHazeDataset(PATH); it cannot be used as a paired evaluation set."
    )
    return 2


def run_check(args: argparse.Namespace) -> int:
    """Run ``cliphaze data check``; prints a report and returns the exit status (0, 1 or 2)."""
    from cliphaze.cli_types import UserError
    from cliphaze.data.layouts import LayoutError, PairingError, gt_crop_box, scan_benchmark
    from cliphaze.io import ImageReadError, read_image

    root = Path(args.path)
    if root.is_file():
        raise UserError(f"{root}: is a file; data check takes a dataset folder (e.g. the unpacked NH-HAZE)")
    if not root.is_dir():
        raise UserError(f"{root}: no such folder")
    try:
        scan = scan_benchmark(root, args.layout)
    except LayoutError as err:
        if args.layout != "auto":
            print(f"{root}: does not fit layout {args.layout!r}: {err}")
            return 2
        return _not_a_benchmark(root, str(err), args.quick)

    problems: list[str] = []
    print(f"{root}")
    for folder in scan.folders:
        if len(scan.folders) > 1:
            print(f"[{_rel(folder.root, root)}/]")
        how = "detected" if folder.detected else "forced"
        print(f"  layout     {folder.layout.describe()} ({how})")
        if folder.structure == "sub-folders":
            print(
                f"  structure  sub-folders {_rel(folder.hazy_dir, root)}/ ({len(folder.hazy_files)} hazy) and "
                f"{_rel(folder.gt_dir, root)}/ ({len(folder.gt_files)} GT)"
            )
        else:
            print(f"  structure  one folder ({len(folder.hazy_files)} hazy, {len(folder.gt_files)} GT)")
        counts: dict[str, int] = {}
        for p in folder.pairs:
            counts[p.split] = counts.get(p.split, 0) + 1
        label = {"unknown": "no split"}
        per_split = ", ".join(f"{label.get(k, k)}: {v}" for k, v in sorted(counts.items())) or "none"
        expected = folder.layout.expected_pairs
        note = ""
        if expected is not None and folder.folder_split is None and len(folder.pairs) != expected:
            note = f"  (the complete benchmark has {expected})"
        print(f"  pairs      {len(folder.pairs)} ({per_split}){note}")
        problems += [f"hazy without GT: {_rel(p, root)} ({why})" for p, why in folder.hazy_without_gt]
        problems += [f"GT without hazy: {_rel(p, root)}" for p in folder.gt_without_hazy]
        problems += [
            f"unrecognised name (neither hazy nor GT under {folder.layout.name}): {_rel(p, root)}"
            for p in folder.unrecognised
        ]

    if scan.ignored:
        print(f"  not scanned (only train/ and test/ are splits): {', '.join(d.name + '/' for d in scan.ignored)}")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            selected = scan.select(args.split)
        for w in caught:
            print(f"  note       {w.message}")
    except ValueError as err:
        problems.append(str(err))
        selected = []

    if args.quick:
        print(f"  images     not read (--quick); {len(selected)} pairs in split '{args.split}'")
    elif selected:
        sizes: dict[Path, tuple[int, int] | None] = {}

        def size_of(path: Path) -> tuple[int, int] | None:
            if path not in sizes:
                try:
                    sizes[path] = tuple(read_image(path).shape[-2:])
                except ImageReadError as err:
                    sizes[path] = None
                    problems.append(f"unreadable: {err}")
            return sizes[path]

        mismatched = cropped = 0
        for pair in selected:
            hs, cs = size_of(pair.hazy), size_of(pair.clear)
            if hs is None or cs is None:
                continue
            try:
                top, left, _, _ = gt_crop_box(hs, cs, pair)
                cropped += (top, left) != (0, 0)
            except PairingError as err:
                mismatched += 1
                problems.append(str(err))
        unreadable = sum(v is None for v in sizes.values())
        crop_note = f", GT border cropped for {cropped}" if cropped else ""
        print(
            f"  images     read {len(sizes)} files of the {len(selected)} pairs in split '{args.split}': "
            f"{unreadable} unreadable, {mismatched} size mismatches{crop_note}"
        )

    if problems:
        print(f"PROBLEMS ({len(problems)}):")
        for line in problems:
            print(f"  {line}")
        return 1
    print(f"OK: {len(scan.pairs)} pairs, every image pairs" + ("" if args.quick else " and reads"))
    return 0
