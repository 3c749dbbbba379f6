"""``cliphaze haze``: add synthetic haze to clear photos and write a paired dataset.

Output layout (the common renamed layout, so ``cliphaze data check OUT`` and every loader accept
it): ``OUT/hazy/NAME.png``, ``OUT/GT/NAME.png`` and, with ``--maps``, ``OUT/transmission/NAME.png``
(8-bit t) plus ``OUT/params.jsonl`` (one line of haze parameters per image).

Inputs are files, folders (not recursive) and glob patterns, as for ``cliphaze dehaze``. Two inputs
with the same stem (``x.png``, ``x.jpg``) become ``x.png`` and ``x_2.png`` (reported), never one
pair silently replacing the other. The output folder may not hold any input.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cliphaze.cli_types import (
    EXIT_CODES_HELP,
    add_threads_arg,
    fraction,
    non_negative_int,
    positive_float,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "haze",
        help="synthesise hazy images from clear photos (scattering model I = J t + A (1 - t))",
        description="Add homogeneous or non-homogeneous haze to clear images; writes OUT/hazy, OUT/GT "
        "(and OUT/transmission with --maps). Reproducible with --seed.",
        epilog=EXIT_CODES_HELP,
    )
    p.add_argument("inputs", nargs="+", help="clear image files, folders (not recursive) or glob patterns")
    p.add_argument("-o", "--out", type=Path, required=True,
                   help="output folder, created if needed; may not hold any input (required)")
    p.add_argument("--kind", choices=["homogeneous", "nonhomogeneous"], default="nonhomogeneous",
                   help="haze of the original synthesiser, used when --family is not given (default: %(default)s)")
    p.add_argument("--family", choices=["ramp", "fields", "room", "fog"], default=None,
                   help="haze family (cliphaze.haze.HAZE_FAMILIES) instead of --kind; real-depth needs measured "
                   "depth and is not offered here (default: none, use --kind)")
    p.add_argument("--dense", action="store_true", help="with --family: very dense haze, t down to 0.05 (default: off)")
    p.add_argument("--airlight-colour", choices=["near-white", "grey", "warm", "cool", "any"], default="near-white",
                   help="with --family: colour of the haze (default: %(default)s)")
    p.add_argument("--beta", type=positive_float, default=None,
                   help="mean scattering coefficient, > 0 (default: random in [0.3, 3])")
    p.add_argument("--airlight", type=fraction, default=None, help="grey airlight A in [0, 1] (default: random near-white)")
    p.add_argument("--patchiness", type=fraction, default=None,
                   help="non-homogeneous modulation p in [0, 1] (default: random)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--maps", action="store_true",
                   help="also save transmission maps and OUT/params.jsonl (default: off)")
    add_threads_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``cliphaze haze`` (exit status: see :mod:`cliphaze.cli_types`)."""

    from cliphaze.cli_batch import Batch, gather_inputs, prepare_output_folders, unique_name
    from cliphaze.cli_types import apply_threads

    files, problems = gather_inputs(args.inputs, "input images")
    folders = ("hazy", "GT", "transmission") if args.maps else ("hazy", "GT")
    prepare_output_folders(args.out, files, subfolders=folders)
    apply_threads(args)

    import torch

    from cliphaze.haze import synthesize, synthesize_haze
    from cliphaze.io import save_image

    gen = torch.Generator().manual_seed(args.seed)
    batch = Batch("cliphaze haze", problems)
    used: set[str] = set()
    done = 0
    params_file = open(args.out / "params.jsonl", "w") if args.maps else None
    try:
        for path in files:
            clear = batch.read(path)
            if clear is None:
                continue
            try:
                if args.family is not None:
                    s = synthesize(args.family, clear, generator=gen, beta=args.beta, airlight=args.airlight,
                                   airlight_colour=args.airlight_colour, dense=args.dense)
                else:
                    s = synthesize_haze(clear, kind=args.kind, beta=args.beta, airlight=args.airlight,
                                        patchiness=args.patchiness, generator=gen)
            except (ValueError, RuntimeError) as err:
                batch.skip(f"{path}: cannot synthesise haze ({err.__class__.__name__}: {str(err)[:200]})")
                continue
            name = unique_name(path.stem + ".png", used)
            if name != path.stem + ".png":
                print(f"note: {path} written as {name} (another input has the same name)")
            try:
                save_image(s.hazy[0], args.out / "hazy" / name)
                save_image(s.clear[0], args.out / "GT" / name)
                if params_file is not None:
                    save_image(s.transmission[0], args.out / "transmission" / name)
            except OSError as err:
                batch.skip(f"{args.out}/*/{name}: cannot write ({err.strerror or err})")
                continue
            if params_file is not None:
                params_file.write(json.dumps({"image": name, "source": str(path), **s.describe(0)}) + "\n")
            done += 1
            print(f"{path} -> {args.out / 'hazy' / name}  ({s.kind}, mean density {s.describe(0)['mean_density']:.2f})")
    finally:
        if params_file is not None:
            params_file.close()
    return batch.finish(f"wrote {done} of {len(files)} pair(s) to {args.out}")
