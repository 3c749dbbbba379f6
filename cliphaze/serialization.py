"""Loading ``.pt`` files without ever running code from them.

``torch.load`` unpickles; a pickle can name any Python callable (``os.system``, ``open``, ...) and
have it called while loading. Every file this package reads (model checkpoints, the small CLIP,
learned prompts, AOD-Net and DA-CLIP weights) is therefore loaded with ``weights_only=True``, which
accepts only tensors and plain data: dicts, lists, tuples, strings, numbers, booleans and None.
What the package saves (configs, histories, optimizer and RNG states) is kept to that plain data, so
no trusted file needs more. A file that asks for anything else is refused with
:class:`CheckpointError` naming the file and the object it asked for; the object is never built.
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from pathlib import Path

__all__ = ["CheckpointError", "safe_torch_load"]


class CheckpointError(ValueError):
    """A weights file that is missing, truncated, refused or of the wrong kind (names the file)."""


def _refused_global(message: str) -> str | None:
    """The disallowed global named in torch's weights-only error, e.g. ``"posix.system"``."""
    m = re.search(r"GLOBAL ([\w.]+)", message) or re.search(r"Unsupported \w+:? ([\w.]+)", message)
    return m.group(1) if m else None


def safe_torch_load(path: str | os.PathLike, map_location="cpu", what: str = "checkpoint"):
    """``torch.load(path, weights_only=True)`` with errors that name the file.

    Args:
        path: the file to read.
        map_location: where tensors are placed (as for ``torch.load``).
        what: what the file should be, for messages (``"checkpoint"``, ``"prompt file"``, ...).

    Returns:
        the loaded object (tensors and plain Python data only).

    Raises:
        CheckpointError: the file is missing, truncated or not a ``torch.save`` file, or it holds
            Python objects other than tensors and plain data (refused before any of them is
            created, so nothing in the file runs).
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such {what} file")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        text = str(err)
        if "weights only" in text.lower() or "weights_only" in text or "Unsupported" in text:
            name = _refused_global(text)
            asked = f" (it asks for {name})" if name else ""
            raise CheckpointError(
                f"{path}: refused: the {what} holds Python objects other than tensors and plain data"
                f"{asked}, and loading them could run code; cliphaze loads only tensors, numbers, "
                "strings, lists and dicts. Use a file written by cliphaze, or re-save the weights as "
                "plain data from code you trust"
            ) from None
        raise CheckpointError(f"{path}: cannot be read as a {what} (the file is damaged: "
                              f"{text.splitlines()[0][:200] if text else err.__class__.__name__})") from err
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError) as err:
        raise CheckpointError(f"{path}: cannot be read as a {what}, the file is truncated or not a "
                              f"torch.save file ({err.__class__.__name__}: {str(err)[:200]})") from err
