"""The ``cliphaze`` command line: one sub-command per module that owns the work.

Each entry of :data:`SUBCOMMANDS` names a module with a ``register(subparsers)`` function that
adds its parser and sets ``func``; modules import their heavy dependencies lazily so that
``cliphaze --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMANDS = {
    "haze": "cliphaze.haze.cli",
    "data": "cliphaze.data.cli",
    "env": "cliphaze.env_check",
    "clip": "cliphaze.clip.cli",
    "density": "cliphaze.clip.density_cli",
    "eval": "cliphaze.evaluate_cli",
    "dehaze": "cliphaze.model.cli",
    "train": "cliphaze.train.cli",
}


def build_parser() -> argparse.ArgumentParser:
    from cliphaze.cli_types import EXIT_CODES_HELP

    parser = argparse.ArgumentParser(
        prog="cliphaze",
        description="CLIPHaze rebuilt piece by piece: synthesise haze, check datasets, dehaze and evaluate.",
        epilog=EXIT_CODES_HELP + ". Errors read: cliphaze COMMAND: error: FILE: what is wrong, what to do.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module_name in SUBCOMMANDS.values():
        importlib.import_module(module_name).register(sub)
    return parser


def command_name(args: argparse.Namespace) -> str:
    """``"cliphaze dehaze"``, ``"cliphaze clip train-small"``, ...: the prefix of error messages."""
    words = [args.command] + [getattr(args, k, None) for k in ("clip_command", "data_command")]
    return " ".join(["cliphaze"] + [w for w in words if w])


def main(argv: list[str] | None = None) -> int:
    """Run one sub-command; returns the exit status (see :mod:`cliphaze.cli_types`).

    A :class:`cliphaze.cli_types.UserError` is printed as ``cliphaze CMD: error: MESSAGE`` (no
    traceback); any other exception is a bug and propagates with its traceback.
    """
    from cliphaze.cli_types import UserError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as err:
        print(f"{command_name(args)}: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"{command_name(args)}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
