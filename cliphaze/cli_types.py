"""Shared pieces of the ``cliphaze`` command line: flag types, threads, user errors, exit codes.

Every sub-command validates its numeric flags in the parser with the ``type=`` functions below, so
a bad value (``--overlap -8``, ``--tile 0``, ``--steps 0``) stops with a usage message naming the
flag before anything is loaded or written. Errors a user can fix (a missing file, an output that
would overwrite an input, a checkpoint that is refused) are raised as :class:`UserError`;
:func:`cliphaze.cli.main` prints them in one style and exits with :data:`EXIT_USAGE`. Any other
exception is a bug and keeps its traceback.

Exit codes of every sub-command:

- ``0`` (:data:`EXIT_OK`): everything asked for was done.
- ``1`` (:data:`EXIT_SKIPPED`): the command finished, but some items were skipped (each is listed
  in the summary) or, for ``data check``, problems were found.
- ``2`` (:data:`EXIT_USAGE`): nothing was done: bad flags, missing inputs, a refused output path
  or model file.
- ``3``: ``cliphaze train`` stopped because training diverged.
- ``130``: interrupted (Ctrl-C).

This module imports nothing heavy (no torch at import time): ``cliphaze --help`` must work on a
machine where torch is missing or broken.
"""

from __future__ import annotations

import argparse
import os
import re

__all__ = [
    "EXIT_OK",
    "EXIT_SKIPPED",
    "EXIT_USAGE",
    "EXIT_CODES_HELP",
    "DEFAULT_THREADS",
    "UserError",
    "positive_int",
    "non_negative_int",
    "positive_float",
    "non_negative_float",
    "fraction",
    "seed_list",
    "plain_text",
    "add_threads_arg",
    "apply_threads",
]

EXIT_OK = 0
EXIT_SKIPPED = 1
EXIT_USAGE = 2

EXIT_CODES_HELP = (
    "exit status: 0 all done; 1 finished, but some items were skipped (listed at the end); "
    "2 nothing done (bad flags, missing input, refused output or model file); "
    "3 training diverged (train); 130 interrupted"
)

# One thread: measured fastest on small shared CPUs (see the ``--threads`` help and the README).
DEFAULT_THREADS = 1


class UserError(Exception):
    """A problem the user can fix; printed as ``cliphaze CMD: error: MESSAGE`` without a traceback.

    The message should name the file and say what is wrong and what to do, e.g.
    ``"out/: is an input folder; choose another output folder"``.

    Args:
        message: the text after ``error:``.
        exit_code: process exit status (default :data:`EXIT_USAGE`).
    """

    def __init__(self, message: str, exit_code: int = EXIT_USAGE):
        super().__init__(message)
        self.exit_code = exit_code


def _number(text: str, kind: type):
    try:
        value = kind(text)
    except (TypeError, ValueError):
        what = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if kind is float and value != value:  # NaN
        raise argparse.ArgumentTypeError(f"{text!r} is not a number")
    if kind is float and value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"{text!r} must be finite")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (tile count, steps, batch size, threads, limits)."""
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer (1 or more), got {value}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0 (overlap, seeds, ``--tile 0`` meaning "never tile")."""
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (learning rate, scattering coefficient)."""
    value = _number(text, float)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {value:g}")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    value = _number(text, float)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value:g}")
    return value


def fraction(text: str) -> float:
    """argparse type: a number in [0, 1] (airlight, patchiness, thresholds)."""
    value = _number(text, float)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value:g}")
    return value


def seed_list(text: str) -> list[int]:
    """argparse type: comma-separated integers >= 0, e.g. ``0,1,2`` (seeds)."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"{text!r} holds no seeds; give e.g. 0,1,2")
    return [non_negative_int(t) for t in items]


def plain_text(doc: str) -> str:
    """A module docstring as ``--help`` text: reST markup (````x````, ``:func:`x```, ``::``) removed."""
    doc = re.sub(r":\w+:`~?([^`]+)`", r"\1", doc)
    doc = doc.replace("``", "")
    return re.sub(r"::\n", ":\n", doc)


def add_threads_arg(parser: argparse.ArgumentParser) -> None:
    """Add ``--threads N`` (default :data:`DEFAULT_THREADS`) to a compute sub-command."""
    parser.add_argument(
        "--threads", type=positive_int, default=DEFAULT_THREADS,
        help="CPU threads for torch (default: %(default)s; one thread was fastest on small shared "
        "CPUs, raise it on a machine of your own)",
    )


def apply_threads(args: argparse.Namespace) -> int:
    """Apply ``args.threads`` (``torch.set_num_threads`` plus ``OMP_NUM_THREADS`` when unset) and
    the compute commands' memory setting, :func:`cliphaze.allocator.keep_freed_memory`.

    Returns:
        the number of threads set.
    """
    from cliphaze.allocator import keep_freed_memory

    threads = int(getattr(args, "threads", None) or DEFAULT_THREADS)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    os.environ.setdefault("MKL_NUM_THREADS", str(threads))
    keep_freed_memory()
    import torch

    torch.set_num_threads(threads)
    return threads
