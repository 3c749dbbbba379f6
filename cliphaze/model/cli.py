"""``cliphaze dehaze``: dehaze files, folders and glob patterns with a trained CLIPHaze model.

Each input keeps its file name in the output folder (photo.jpg -> OUT/photo.jpg; two inputs with
the same name from different folders get _2, _3 suffixes, and the clash is reported). The output
folder may not be the folder of any input, so no original is ever replaced. Unreadable files,
unknown suffixes and failed writes are skipped and listed at the end; the batch always finishes.
A model whose output holds NaN or infinite values is an error, never a black image.

Examples:

    cliphaze dehaze data/samples/hazy -o outputs                  # the shipped tiny model
    cliphaze dehaze "photos/*.jpg" big.png -o out --side-by-side --density
    cliphaze dehaze img.png -o out --model runs/tiny/best.pt --tile 512
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cliphaze.cli_batch import expand_inputs, gather_inputs
from cliphaze.cli_types import EXIT_CODES_HELP, add_threads_arg, non_negative_int, plain_text
from cliphaze.defaults import SHIPPED_MODEL, TILE_OVERLAP

__all__ = ["register", "run", "expand_inputs"]


def register(subparsers) -> None:
    p = subparsers.add_parser("dehaze", help="dehaze images with a trained CLIPHaze model",
                              description=plain_text(__doc__), epilog=EXIT_CODES_HELP,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="IN", help="image files, folders (not recursive) or glob patterns")
    p.add_argument("-o", "--out", required=True,
                   help="output folder, created if needed; may not hold any input (required)")
    p.add_argument("--model", default=SHIPPED_MODEL,
                   help="shipped model name or checkpoint path written by cliphaze train (default: %(default)s)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default: %(default)s)")
    p.add_argument("--tile", type=non_negative_int, default=None,
                   help="tile side in pixels for large images; 0 = never tile (default: 1024 above "
                   "1 megapixel, otherwise one pass)")
    p.add_argument("--overlap", type=non_negative_int, default=TILE_OVERLAP,
                   help="tile overlap in pixels, smaller than the tile minus 4 (default: %(default)s)")
    p.add_argument("--side-by-side", action="store_true",
                   help="also save NAME_compare.png, hazy and dehazed side by side (default: off)")
    p.add_argument("--density", action="store_true",
                   help="also save NAME_density.png, the CLIP haze density map (default: off)")
    add_threads_arg(p)
    p.set_defaults(func=run)


def run(args) -> int:
    """Run ``cliphaze dehaze`` (exit status: see :mod:`cliphaze.cli_types`)."""
    import time

    from cliphaze.cli_batch import Batch, prepare_output_folders, unique_name
    from cliphaze.cli_types import UserError, apply_threads

    if args.tile and args.overlap >= args.tile - 4:
        raise UserError(f"--overlap {args.overlap} must be smaller than --tile {args.tile} minus 4")
    paths, problems = gather_inputs(args.inputs, "images to dehaze")
    out_dir = prepare_output_folders(Path(args.out), paths)
    apply_threads(args)

    import torch

    from cliphaze.io import save_image
    from cliphaze.model import CheckpointError, load_model
    from cliphaze.model.inference import NonFiniteOutputError

    try:
        model = load_model(args.model, device=args.device)
    except (CheckpointError, FileNotFoundError, ValueError) as err:
        raise UserError(f"cannot load model: {err}") from None
    except RuntimeError as err:  # e.g. an unknown or unavailable --device
        raise UserError(f"cannot load model {args.model} on device {args.device!r}: {str(err)[:200]}") from None
    print(f"model: {model.describe()}")
    batch = Batch("cliphaze dehaze", problems)
    used: set[str] = set()
    done = 0
    for path in paths:
        hazy = batch.read(path)
        if hazy is None:
            continue
        name = unique_name(path.name, used)
        if name != path.name:
            print(f"note: {path} written as {name} (another input has the same name)")
        start = time.perf_counter()
        try:
            result, density = model.dehaze(hazy, tile=args.tile, overlap=args.overlap, return_density=True)
        except NonFiniteOutputError as err:
            batch.skip(f"{path}: {err}")
            continue
        except (RuntimeError, ValueError) as err:  # e.g. out of memory on a device: report, go on
            batch.skip(f"{path}: dehazing failed ({err.__class__.__name__}: {str(err)[:200]})")
            continue
        stem = Path(name).stem
        outputs = [(result, out_dir / name)]
        if args.side_by_side:  # side outputs take their names from the same pool: never a clash
            outputs.append((torch.cat([hazy, result], dim=2), out_dir / unique_name(f"{stem}_compare.png", used)))
        if args.density and density is not None:
            outputs.append((density, out_dir / unique_name(f"{stem}_density.png", used)))
        try:
            for image, target in outputs:
                save_image(image, target)
        except OSError as err:
            batch.skip(f"{target}: cannot write ({err.strerror or err})")
            continue
        done += 1
        h, w = hazy.shape[-2:]
        print(f"{path} -> {out_dir / name} ({w}x{h}, {time.perf_counter() - start:.2f} s)")
    return batch.finish(f"dehazed {done} of {len(paths)} image(s) into {out_dir}")
