"""``cliphaze train``: train (or resume) a CLIPHaze network from flags or a config file.

Every field of :class:`cliphaze.train.TrainConfig` is a flag (``--batch-size 16``); ``--config
FILE`` (JSON or YAML) sets many at once, and flags given on the command line override the file.
Example (the shipped tiny model; see ``cliphaze/assets/cliphaze_tiny.json``)::

    cliphaze train --preset tiny --data ../shared/data/bsds500/train ../shared/data/bsds500/val \\
        --val-data ../shared/data/bsds500/test --out runs/tiny --threads 1 --resume
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def register(subparsers) -> None:
    from cliphaze.train.config import TrainConfig

    p = subparsers.add_parser("train", help="train a CLIPHaze network (synthetic haze or a benchmark)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="JSON or YAML file of TrainConfig fields (flags override it)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt when it exists")
    p.add_argument("--stop-at", type=int, default=None, help="stop after this step (schedule still uses --steps)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (log lines only)")
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        kind = hints[f.name]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        help_text = f"(default: {default})"
        if kind == list[str]:
            p.add_argument(_flag(f.name), nargs="+", default=None, help=help_text)
        elif kind in (int, float, str):
            p.add_argument(_flag(f.name), type=kind, default=None, help=help_text)
        else:  # int | None
            p.add_argument(_flag(f.name), type=int, default=None, help=help_text)
    p.set_defaults(func=run)


def run(args) -> int:
    from cliphaze.train.config import TrainConfig, load_config_file
    from cliphaze.train.loop import TrainingDiverged, train

    values = {}
    try:
        if args.config:
            values.update(load_config_file(args.config))
        for f in dataclasses.fields(TrainConfig):
            v = getattr(args, f.name)
            if v is not None:
                values[f.name] = v
        config = TrainConfig.from_dict(values)
    except ValueError as err:
        print(f"cliphaze train: {err}", file=sys.stderr)
        return 2
    try:
        result = train(config, resume=args.resume, stop_at=args.stop_at, progress=not args.no_progress,
                       log=lambda m: print(m, flush=True))
    except TrainingDiverged as err:
        print(f"cliphaze train: training diverged: {err}", file=sys.stderr)
        return 3
    except (ValueError, FileNotFoundError) as err:
        print(f"cliphaze train: {err}", file=sys.stderr)
        return 2
    print(f"done: step {result['step']} in {result['seconds']:.0f} s; best validation PSNR "
          f"{result['best_psnr']:.2f} dB; checkpoints in {result['run_dir']}")
    return 0
