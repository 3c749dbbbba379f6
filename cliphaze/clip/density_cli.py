"""``cliphaze density``: save CLIP haze-density maps of files, folders and glob patterns.

Takes its inputs exactly like ``cliphaze dehaze``: each input ``photo.jpg`` gives
``OUT/photo_density.png``, a grey image whose brightness is the zero-shot haze density p_hazy in
[0, 1] at each pixel (lesson 01, "Density maps: crops and dense tokens"). The output folder may not
be the folder of any input (nothing is written beside the photos). Unreadable files are skipped and
listed at the end; the batch always finishes.

Examples:

    cliphaze density data/samples/hazy                       # into outputs/density
    cliphaze density "photos/*.jpg" -o maps --prompts hand --method crops
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cliphaze.cli_types import EXIT_CODES_HELP, add_threads_arg, plain_text

__all__ = ["register", "run", "DEFAULT_OUT"]

DEFAULT_OUT = "outputs/density"


def register(subparsers) -> None:
    """Add ``density`` to the ``cliphaze`` parser."""
    p = subparsers.add_parser("density", help="save CLIP haze-density maps of images (files, folders, globs)",
                              description=plain_text(__doc__), epilog=EXIT_CODES_HELP,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="IN", help="image files, folders (not recursive) or glob patterns")
    p.add_argument("-o", "--out", default=DEFAULT_OUT,
                   help="output folder, created if needed; may not hold any input (default: %(default)s)")
    p.add_argument("--model", default=None,
                   help="CLIP backbone: an open_clip model name, local-dir:/folder or a .pt file written by "
                   "cliphaze clip train-small (default: the shipped haze-clip-small)")
    p.add_argument("--pretrained", default=None,
                   help="pretrained tag or weight file for --model, e.g. openai; used only when its weights "
                   "are on this machine (default: none)")
    p.add_argument("--prompts", default="learned",
                   help="learned (the shipped learned prompts, default backbone only), hand (the hand-written "
                   "pair), ensemble, or a prompt file from cliphaze clip learn-prompts (default: %(default)s)")
    p.add_argument("--method", default="dense", choices=("dense", "crops"),
                   help="dense: one pass, every patch token scored; crops: sliding crops, slower "
                   "(default: %(default)s)")
    add_threads_arg(p)
    p.set_defaults(func=run)


def run(args) -> int:
    """Run ``cliphaze density`` (exit status: see :mod:`cliphaze.cli_types`)."""

    from cliphaze.cli_batch import Batch, gather_inputs, prepare_output_folders, unique_name
    from cliphaze.cli_types import UserError, apply_threads

    paths, problems = gather_inputs(args.inputs, "images to read")
    if args.prompts not in ("learned", "hand", "hand-written", "ensemble") and not Path(args.prompts).is_file():
        raise UserError(f"{args.prompts}: no such prompt file; --prompts takes learned, hand, ensemble or a file "
                        "written by cliphaze clip learn-prompts")
    if args.model and args.model.endswith((".pt", ".pth")) and not Path(args.model).is_file():
        raise UserError(f"{args.model}: no such CLIP checkpoint file")
    out_dir = prepare_output_folders(Path(args.out), paths, hint="the default outputs/density, or a new folder")
    apply_threads(args)

    from cliphaze.clip import HazeGuide, MissingWeightsError, PromptBackboneMismatch, load_clip
    from cliphaze.io import save_image
    from cliphaze.serialization import CheckpointError

    try:
        guide = HazeGuide(load_clip(args.model, pretrained=args.pretrained), prompts=args.prompts, method=args.method)
    except (CheckpointError, MissingWeightsError, PromptBackboneMismatch, FileNotFoundError, ValueError) as err:
        raise UserError(f"cannot load the CLIP guide: {err}") from None
    print(f"guide: {guide.describe()}")
    batch = Batch("cliphaze density", problems)
    used: set[str] = set()
    done = 0
    for path in paths:
        image = batch.read(path)
        if image is None:
            continue
        try:
            density = guide.density(image[None], size=tuple(image.shape[1:]))[0]
        except (RuntimeError, ValueError) as err:  # e.g. out of memory: report, go on
            batch.skip(f"{path}: density failed ({err.__class__.__name__}: {str(err)[:200]})")
            continue
        if not bool(density.isfinite().all()):
            batch.skip(f"{path}: the density map has non-finite values (NaN or inf); the backbone or "
                       "prompts are broken, nothing written")
            continue
        name = unique_name(f"{path.stem}_density.png", used)
        try:
            save_image(density, out_dir / name)
        except OSError as err:
            batch.skip(f"{out_dir / name}: cannot write ({err.strerror or err})")
            continue
        done += 1
        print(f"{path} -> {out_dir / name} (mean density {density.mean():.3f})")
    return batch.finish(f"wrote {done} of {len(paths)} density map(s) into {out_dir}")
