"""``cliphaze ablate``: the ablation study of lesson 06 from the ``cliphaze`` command.

Forwards every argument to :func:`cliphaze.analysis.ablation.main`, the runner also available as
``python -m cliphaze.analysis.ablation``: tiny models trained per variant and seed, scored on a
benchmark, written to ``--out`` as JSON (and ``--markdown`` as a table). ``cliphaze ablate
--help`` lists its flags.
"""

from __future__ import annotations

import argparse

__all__ = ["register", "run"]


def register(subparsers) -> None:
    """Add ``ablate`` to the ``cliphaze`` parser (its flags are parsed by the ablation runner)."""
    p = subparsers.add_parser("ablate", help="run the ablation study (lesson 06); see cliphaze ablate --help",
                              description=__doc__, add_help=False,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("args", nargs=argparse.REMAINDER, help="flags of the ablation runner")
    p.set_defaults(func=run)


def run(args) -> int:
    """Run the ablation with the given flags; returns its exit status."""
    import importlib

    from cliphaze.cli import light_packages

    with light_packages(["cliphaze.analysis.ablation"]):  # its --help needs no torch
        main = importlib.import_module("cliphaze.analysis.ablation").main

    return int(main(list(args.args), prog="cliphaze ablate") or 0)
