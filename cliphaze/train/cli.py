"""cliphaze train: train (or resume) a CLIPHaze network from flags or a config file.

Every field of TrainConfig is a flag (--batch-size 16); --config FILE (JSON or YAML) sets many at
once, and flags given on the command line override the file. Numeric flags are checked before
anything is loaded (--steps 0 or --lr -1 stop with a usage message). A folder that already holds a
run (last.pt, best.pt, history.json) is refused unless --resume continues it or --overwrite
replaces it. Example (the shipped tiny model; see cliphaze/assets/cliphaze_tiny.json):

    cliphaze train --preset tiny --data data/bsds500/train data/bsds500/val \\
        --val-data data/bsds500/test --out runs/tiny --threads 1 --resume

Several processes (DistributedDataParallel; --batch-size is the global batch, split evenly):

    torchrun --nproc_per_node 4 -m cliphaze train --device cuda --batch-size 64 ...
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import typing

from cliphaze.cli_types import (
    DEFAULT_THREADS,
    EXIT_CODES_HELP,
    UserError,
    fraction,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
)

if typing.TYPE_CHECKING:
    from cliphaze.train.config import TrainConfig

#: Exit status of a run stopped by :class:`cliphaze.train.TrainingDiverged`.
EXIT_DIVERGED = 3

#: argparse ``type=`` of every numeric TrainConfig field (checked before anything is loaded).
FLAG_TYPES = {
    "crop": positive_int, "batch_size": positive_int, "steps": positive_int, "val_every": positive_int,
    "log_every": positive_int, "val_count": positive_int, "val_crop": positive_int, "threads": positive_int,
    "warmup_steps": non_negative_int, "seed": non_negative_int, "num_workers": non_negative_int,
    "lr": positive_float, "weight_decay": non_negative_float, "grad_clip": non_negative_float,
    "l1_weight": non_negative_float, "ssim_weight": non_negative_float, "freq_weight": non_negative_float,
    "min_lr_ratio": fraction, "haze_dense": fraction, "haze_noise": non_negative_float,
    "haze_bright": fraction,
}

#: Fixed choices of the string fields.
FLAG_CHOICES = {
    "data_kind": ("synthetic", "benchmark"), "val_kind": ("synthetic", "benchmark"),
    "haze_kind": ("homogeneous", "nonhomogeneous", "mixed"), "prompts": ("shipped", "learn"),
    # cliphaze.block.AGGREGATION_KINDS, spelled out so that --help imports no torch
    "aggregation": ("density", "semantic", "sum", "static", "attention", "mamba"),
    # cliphaze.haze.HAZE_FAMILIES and AIRLIGHT_COLOURS, spelled out so that --help imports no torch
    "haze_families": ("ramp", "fields", "room", "real-depth", "fog"),
    "haze_airlight_colour": ("near-white", "grey", "warm", "cool", "any"),
}

#: Short names of long flags.
FLAG_ALIASES = {"haze_families": "--families"}


def _jpeg_quality(text: str) -> int:
    value = positive_int(text)
    if value > 100:
        raise argparse.ArgumentTypeError(f"a JPEG quality lies in [1, 100], got {value}")
    return value


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _help(config_cls) -> dict[str, str]:
    """One line per field, from the ``Attributes:`` section of the TrainConfig docstring."""
    lines = (config_cls.__doc__ or "").split("Attributes:", 1)[-1].splitlines()
    out, current = {}, None
    for line in lines:
        text = line.strip()
        head, sep, rest = text.partition(": ")
        names = [n.strip() for n in head.split(",")]
        if sep and names and all(n.isidentifier() for n in names):
            current = names
            for n in names:
                out[n] = rest
        elif current and text:
            for n in current:
                out[n] += " " + text
    return {k: re.sub(r":\w+:|`", "", v) for k, v in out.items()}


def register(subparsers) -> None:
    from cliphaze.train.config import TrainConfig

    p = subparsers.add_parser("train", help="train a CLIPHaze network (synthetic haze or a benchmark)",
                              description=__doc__, epilog=EXIT_CODES_HELP,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="JSON or YAML file of TrainConfig fields; flags given on the command line override it (default: none)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt when it exists (default: off, and a folder holding a run is refused)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a run already in --out (removes its last.pt, best.pt, history.json, "
                   "config.json, prompts.pt first; default: off)")
    p.add_argument("--stop-at", type=positive_int, default=None,
                   help="stop after this step; the schedule still uses --steps (default: run all --steps)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar, log lines only (default: a progress bar)")
    # the old spelling of --aggregation (density, semantic, none = static); not listed in --help
    p.add_argument("--guidance", choices=("density", "semantic", "none"), default=None, help=argparse.SUPPRESS)
    hints = typing.get_type_hints(TrainConfig)
    helps = _help(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        kind = hints[f.name]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if f.name == "threads":
            default = DEFAULT_THREADS
        text = f"{helps.get(f.name, '')} (default: {default})".strip()
        names = [_flag(f.name), *([FLAG_ALIASES[f.name]] if f.name in FLAG_ALIASES else [])]
        if f.name == "haze_jpeg":
            p.add_argument(*names, nargs=2, type=_jpeg_quality, metavar=("LOW", "HIGH"), default=None, help=text)
        elif kind in (list[str], list[str] | None):
            p.add_argument(*names, nargs="+", default=None, choices=FLAG_CHOICES.get(f.name),
                           metavar="NAME" if f.name in FLAG_CHOICES else "DIR", help=text)
        elif f.name in FLAG_TYPES:
            p.add_argument(_flag(f.name), type=FLAG_TYPES[f.name], default=None, help=text)
        elif f.name in FLAG_CHOICES:
            p.add_argument(_flag(f.name), choices=FLAG_CHOICES[f.name], default=None, help=text)
        else:
            p.add_argument(_flag(f.name), type=str, default=None, help=text)
    p.set_defaults(func=run)


def config_from_args(args) -> TrainConfig:
    """The TrainConfig of parsed arguments: the ``--config`` file, then the flags given.

    Raises:
        UserError: unreadable config file or invalid values (the message names them).
    """
    from cliphaze.train.config import TrainConfig, load_config_file

    values = {}
    try:
        if args.config:
            values.update(load_config_file(args.config))
        if getattr(args, "guidance", None) is not None:
            values.pop("aggregation", None)
            values["guidance"] = args.guidance  # TrainConfig.from_dict translates it
        if args.aggregation is not None:
            values.pop("guidance", None)  # a flag overrides an old config file's guidance
        for f in dataclasses.fields(TrainConfig):
            v = getattr(args, f.name)
            if v is not None:
                values[f.name] = v
        if values.get("threads") is None:
            values["threads"] = DEFAULT_THREADS
        return TrainConfig.from_dict(values)
    except ValueError as err:
        where = f"{args.config}: " if args.config and str(args.config) not in str(err) else ""
        raise UserError(f"{where}{err}") from None


def run(args) -> int:
    from cliphaze.model.checkpoint import CheckpointError
    from cliphaze.train.loop import TrainingDiverged, train

    config = config_from_args(args)
    try:
        result = train(config, resume=args.resume, stop_at=args.stop_at, progress=not args.no_progress,
                       log=lambda m: print(m, flush=True), overwrite=args.overwrite)
    except TrainingDiverged as err:
        raise UserError(f"{config.out}: training diverged: {err}", exit_code=EXIT_DIVERGED) from None
    except (CheckpointError, ValueError, FileNotFoundError) as err:
        raise UserError(str(err)) from None
    except OSError as err:  # e.g. a full disk or a read-only folder while writing a checkpoint
        where = err.filename or config.out
        raise UserError(f"{where}: {err.strerror or err}; free space or choose another --out, then run again "
                        "with --resume") from None
    finally:
        _leave_process_group()
    import os

    if int(os.environ.get("RANK", "0")) == 0:
        print(f"done: step {result['step']} in {result['seconds']:.0f} s; best validation PSNR "
              f"{result['best_psnr']:.2f} dB; checkpoints in {result['run_dir']}")
    return 0


def _leave_process_group() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
