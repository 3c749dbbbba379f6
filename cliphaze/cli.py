"""The ``cliphaze`` command line: one sub-command per module that owns the work.

Each entry of :data:`SUBCOMMANDS` names a module with a ``register(subparsers)`` function that
adds its parser and sets ``func``; modules import their heavy dependencies inside ``func``.

*No torch to parse.* ``cliphaze --help``, every sub-command's ``--help`` and ``cliphaze env`` work
on a machine where torch is missing or broken (``env`` exists to diagnose exactly that). The
command modules live inside sub-packages whose ``__init__`` imports torch, so the parser is built
with :func:`light_packages`: while the command modules are imported, each sub-package is a bare
package object (its ``__path__`` only), and its ``__init__`` runs later, at the first real import
inside a command. ``tests/test_cli_errors.py`` runs the help texts with torch made unimportable.

Exit codes and the error style are described in :mod:`cliphaze.cli_types`.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
import types
from pathlib import Path

SUBCOMMANDS = {
    "haze": "cliphaze.haze.cli",
    "data": "cliphaze.data.cli",
    "env": "cliphaze.env_check",
    "clip": "cliphaze.clip.cli",
    "density": "cliphaze.clip.density_cli",
    "eval": "cliphaze.evaluate_cli",
    "dehaze": "cliphaze.model.cli",
    "train": "cliphaze.train.cli",
    "ablate": "cliphaze.analysis.ablate_cli",
}

#: Sub-commands whose arguments (``--help`` included) all go to their own parser.
FORWARDING = {"ablate"}


@contextlib.contextmanager
def light_packages(module_names):
    """Import ``module_names`` without running their sub-packages' ``__init__`` (module docstring).

    Args:
        module_names: dotted names of modules inside ``cliphaze`` sub-packages; for each
            sub-package not imported yet, a bare package object stands in while the block runs.
    """
    root = Path(__file__).resolve().parent
    installed = {}
    for module_name in module_names:
        package = module_name.rpartition(".")[0]
        if package != "cliphaze" and package not in sys.modules and package not in installed:
            stub = types.ModuleType(package)
            stub.__path__ = [str(root.joinpath(*package.split(".")[1:]))]
            stub.__package__ = package
            installed[package] = stub
    sys.modules.update(installed)
    try:
        yield
    finally:
        for name, stub in installed.items():
            if sys.modules.get(name) is stub:
                del sys.modules[name]


def build_parser() -> argparse.ArgumentParser:
    from cliphaze.cli_types import EXIT_CODES_HELP

    parser = argparse.ArgumentParser(
        prog="cliphaze",
        description="CLIPHaze rebuilt piece by piece: synthesise haze, check datasets, dehaze and evaluate.",
        epilog=EXIT_CODES_HELP + ". Errors read: cliphaze COMMAND: error: FILE: what is wrong, what to do.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    with light_packages(SUBCOMMANDS.values()):
        for module_name in SUBCOMMANDS.values():
            importlib.import_module(module_name).register(sub)
    return parser


def command_name(args: argparse.Namespace) -> str:
    """``"cliphaze dehaze"``, ``"cliphaze clip train-small"``, ...: the prefix of error messages."""
    words = [args.command] + [getattr(args, k, None) for k in ("clip_command", "data_command")]
    return " ".join(["cliphaze"] + [w for w in words if w])


#: Exceptions that by contract name the file and what is wrong with it: printed like a
#: :class:`~cliphaze.cli_types.UserError` (``module, class``; looked up only in modules already
#: imported, so this costs no import).
USER_ERROR_TYPES = [
    ("cliphaze.serialization", "CheckpointError"),
    ("cliphaze.io", "ImageReadError"),
    ("cliphaze.clip.backbone", "MissingWeightsError"),
    ("cliphaze.clip.prompts", "PromptBackboneMismatch"),
    ("cliphaze.data.layouts", "LayoutError"),
    ("cliphaze.data.layouts", "PairingError"),
]


def user_error_message(err: BaseException) -> str | None:
    """The one-line message for an error the user can fix, or None for a bug (keeps its traceback).

    User errors: :class:`~cliphaze.cli_types.UserError`, the file errors of :data:`USER_ERROR_TYPES`
    and the operating system's file errors (missing, not a folder, no permission), which name the file.
    """
    from cliphaze.cli_types import UserError

    if isinstance(err, UserError):
        return str(err)
    if isinstance(err, (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)):
        if err.filename is not None and err.strerror:
            return f"{err.filename}: {err.strerror.lower()}"
        return str(err)
    for module, name in USER_ERROR_TYPES:
        cls = getattr(sys.modules.get(module), name, None)
        if cls is not None and isinstance(err, cls):
            return str(err)
    return None


def main(argv: list[str] | None = None) -> int:
    """Run one sub-command; returns the exit status (see :mod:`cliphaze.cli_types`).

    A user error (:func:`user_error_message`) is printed as ``cliphaze CMD: error: MESSAGE`` (no
    traceback); any other exception is a bug and propagates with its traceback.
    """

    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    if argv[:1] and argv[0] in FORWARDING:
        args = argparse.Namespace(command=argv[0], args=argv[1:])
        args.func = importlib.import_module(SUBCOMMANDS[argv[0]]).run
    else:
        args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except Exception as err:
        message = user_error_message(err)
        if message is None:
            raise
        print(f"{command_name(args)}: error: {message}", file=sys.stderr)
        return getattr(err, "exit_code", 2)
    except KeyboardInterrupt:
        print(f"{command_name(args)}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
