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
    "eval": "cliphaze.evaluate_cli",
    "dehaze": "cliphaze.model.cli",
    "train": "cliphaze.train.cli",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cliphaze",
        description="CLIPHaze rebuilt piece by piece: synthesise haze, check datasets, dehaze and evaluate.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module_name in SUBCOMMANDS.values():
        importlib.import_module(module_name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
