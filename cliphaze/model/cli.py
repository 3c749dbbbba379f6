"""``cliphaze dehaze``: dehaze files, folders and glob patterns with a trained CLIPHaze model.

Each input keeps its file name in the output folder (``photo.jpg`` -> ``OUT/photo.jpg``; two inputs
with the same name from different folders get ``_2``, ``_3`` suffixes, and the clash is reported).
Unreadable files are skipped and listed at the end; the batch always finishes. Exit status: 0 when
every image was dehazed, 1 when some were skipped, 2 when nothing could be done (no inputs, no model).

Examples::

    cliphaze dehaze data/samples/hazy -o outputs                  # the shipped tiny model
    cliphaze dehaze "photos/*.jpg" big.png -o out --side-by-side --density
    cliphaze dehaze img.png -o out --model runs/tiny/best.pt --tile 512
"""

from __future__ import annotations

import argparse
import glob
import sys
from pathlib import Path

__all__ = ["register", "run", "expand_inputs"]


def expand_inputs(items: list[str]) -> tuple[list[Path], list[str]]:
    """Turn command-line inputs into image paths.

    Args:
        items: files, folders (their images, not recursive) and glob patterns.

    Returns:
        ``(paths in order without duplicates, problems)``; a problem names an input that matched
        nothing (a missing file, an empty folder, a pattern without matches).
    """
    from cliphaze.io import IMAGE_SUFFIXES, list_images

    paths: list[Path] = []
    problems: list[str] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = list_images(p)
            if not found:
                problems.append(f"{p}: folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
            paths.extend(found)
        elif p.exists():
            paths.append(p)
        elif any(ch in item for ch in "*?["):
            found = sorted(Path(m) for m in glob.glob(item, recursive=True) if Path(m).is_file())
            if not found:
                problems.append(f"{item}: pattern matches no files")
            paths.extend(found)
        else:
            problems.append(f"{p}: no such file or folder")
    seen, unique = set(), []
    for p in paths:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique, problems


def register(subparsers) -> None:
    p = subparsers.add_parser("dehaze", help="dehaze images with a trained CLIPHaze model",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="IN", help="image files, folders or glob patterns")
    p.add_argument("-o", "--out", required=True, help="output folder (created)")
    p.add_argument("--model", default="cliphaze-tiny",
                   help="shipped model name or checkpoint path (default: %(default)s)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default: %(default)s)")
    p.add_argument("--tile", type=int, default=None,
                   help="tile side for large images (default: 1024 above 1 megapixel; 0 = never tile)")
    p.add_argument("--overlap", type=int, default=32, help="tile overlap in pixels (default: %(default)s)")
    p.add_argument("--side-by-side", action="store_true", help="also save NAME_compare.png (hazy | dehazed)")
    p.add_argument("--density", action="store_true", help="also save NAME_density.png (the CLIP haze density map)")
    p.set_defaults(func=run)


def _unique_name(out_dir: Path, name: str, used: set[str]) -> str:
    stem, suffix = Path(name).stem, Path(name).suffix
    candidate, n = name, 1
    while candidate in used:
        n += 1
        candidate = f"{stem}_{n}{suffix}"
    used.add(candidate)
    return candidate


def run(args) -> int:
    import time

    import torch

    from cliphaze.io import ImageReadError, read_image, save_image
    from cliphaze.model import CheckpointError, load_model

    paths, problems = expand_inputs(args.inputs)
    for msg in problems:
        print(f"warning: {msg}", file=sys.stderr)
    if not paths:
        print("cliphaze dehaze: no images to dehaze", file=sys.stderr)
        return 2
    try:
        model = load_model(args.model, device=args.device)
    except (CheckpointError, FileNotFoundError, ValueError) as err:
        print(f"cliphaze dehaze: cannot load model: {err}", file=sys.stderr)
        return 2
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"model: {model.describe()}")
    used: set[str] = set()
    skipped: list[str] = []
    done = 0
    for path in paths:
        try:
            hazy = read_image(path)
        except ImageReadError as err:
            skipped.append(str(err))
            print(f"skipped: {err}", file=sys.stderr)
            continue
        name = _unique_name(out_dir, path.name, used)
        if name != path.name:
            print(f"note: {path} written as {name} (another input has the same name)")
        start = time.perf_counter()
        try:
            result, density = model.dehaze(hazy, tile=args.tile, overlap=args.overlap, return_density=True)
        except (RuntimeError, ValueError) as err:  # e.g. out of memory on a device: report, go on
            skipped.append(f"{path}: dehazing failed ({err.__class__.__name__}: {str(err)[:200]})")
            print(f"skipped: {skipped[-1]}", file=sys.stderr)
            continue
        save_image(result, out_dir / name)
        stem = Path(name).stem
        if args.side_by_side:
            save_image(torch.cat([hazy, result], dim=2), out_dir / f"{stem}_compare.png")
        if args.density and density is not None:
            save_image(density, out_dir / f"{stem}_density.png")
        done += 1
        h, w = hazy.shape[-2:]
        print(f"{path} -> {out_dir / name} ({w}x{h}, {time.perf_counter() - start:.2f} s)")
    print(f"dehazed {done} of {len(paths)} image(s) into {out_dir}")
    if skipped:
        print(f"skipped {len(skipped)} file(s):", file=sys.stderr)
        for msg in skipped:
            print(f"  {msg}", file=sys.stderr)
        return 1
    return 0
