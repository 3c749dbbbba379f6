"""``cliphaze haze``: add synthetic haze to clear photos and write a paired dataset.

Output layout (the common renamed layout, so ``cliphaze data check OUT`` and every loader accept
it): ``OUT/hazy/NAME.png``, ``OUT/GT/NAME.png`` and, with ``--maps``, ``OUT/transmission/NAME.png``
(8-bit t) plus ``OUT/params.jsonl`` (one line of haze parameters per image).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "haze",
        help="synthesise hazy images from clear photos (scattering model I = J t + A (1 - t))",
        description="Add homogeneous or non-homogeneous haze to clear images; writes OUT/hazy, OUT/GT "
        "(and OUT/transmission with --maps). Reproducible with --seed.",
    )
    p.add_argument("inputs", nargs="+", type=Path, help="clear image files or folders")
    p.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    p.add_argument("--kind", choices=["homogeneous", "nonhomogeneous"], default="nonhomogeneous",
                   help="haze of the original synthesiser, used when --family is not given (default: %(default)s)")
    p.add_argument("--family", choices=["ramp", "fields", "room", "fog"], default=None,
                   help="haze family (cliphaze.haze.HAZE_FAMILIES) instead of --kind; real-depth needs measured "
                   "depth and is not offered here (default: none, use --kind)")
    p.add_argument("--dense", action="store_true", help="with --family: very dense haze, t down to 0.05")
    p.add_argument("--airlight-colour", choices=["near-white", "grey", "warm", "cool", "any"], default="near-white",
                   help="with --family: colour of the haze (default: %(default)s)")
    p.add_argument("--beta", type=float, default=None, help="mean scattering coefficient (default: random in [0.3, 3])")
    p.add_argument("--airlight", type=float, default=None, help="grey airlight A in [0, 1] (default: random near-white)")
    p.add_argument("--patchiness", type=float, default=None, help="non-homogeneous modulation p in [0, 1]")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--maps", action="store_true", help="also save transmission maps and parameters")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from cliphaze.haze import synthesize, synthesize_haze
    from cliphaze.io import ImageReadError, list_images, read_image, save_image

    files: list[Path] = []
    for item in args.inputs:
        if item.is_dir():
            files.extend(list_images(item))
        elif item.is_file():
            files.append(item)
        else:
            print(f"skipped {item}: no such file or folder", file=sys.stderr)
    if not files:
        print("error: no input images found", file=sys.stderr)
        return 2
    gen = torch.Generator().manual_seed(args.seed)
    failed = 0
    params_file = None
    if args.maps:
        args.out.mkdir(parents=True, exist_ok=True)
        params_file = open(args.out / "params.jsonl", "w")
    try:
        for path in files:
            try:
                clear = read_image(path)
            except ImageReadError as err:
                print(f"skipped {err}", file=sys.stderr)
                failed += 1
                continue
            if args.family is not None:
                s = synthesize(args.family, clear, generator=gen, beta=args.beta, airlight=args.airlight,
                               airlight_colour=args.airlight_colour, dense=args.dense)
            else:
                s = synthesize_haze(
                    clear, kind=args.kind, beta=args.beta, airlight=args.airlight, patchiness=args.patchiness, generator=gen
                )
            name = path.stem + ".png"
            save_image(s.hazy[0], args.out / "hazy" / name)
            save_image(s.clear[0], args.out / "GT" / name)
            if params_file is not None:
                save_image(s.transmission[0], args.out / "transmission" / name)
                params_file.write(json.dumps({"image": name, **s.describe(0)}) + "\n")
            print(f"{path} -> {args.out / 'hazy' / name}  ({s.kind}, mean density {s.describe(0)['mean_density']:.2f})")
    finally:
        if params_file is not None:
            params_file.close()
    print(f"wrote {len(files) - failed} pairs to {args.out}" + (f"; {failed} unreadable file(s) skipped" if failed else ""))
    return 1 if failed else 0
