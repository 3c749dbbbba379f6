"""Checkpoints: written atomically, read with errors that name the file and the problem.

A CLIPHaze checkpoint is one ``torch.save`` dict:

==================  ==========================================================================
key                 content
==================  ==========================================================================
``format``          ``"cliphaze-model-v1"`` (checked on load)
``network``         :meth:`cliphaze.model.NetworkConfig.to_dict` (rebuilds the architecture)
``state_dict``      the network's parameters (the frozen CLIP guide is *not* included)
``guide``           which CLIP guide the network was trained with: ``{"name", "files":
                    {file name: SHA-256}}`` (see :mod:`cliphaze.model.guide`), or None
``train``           optional training state (config, step, optimizer, scheduler, RNG, history)
``meta``            optional notes (scores, data note, command)
==================  ==========================================================================

Every value is plain data (dicts, lists, tuples, strings, numbers, booleans, None) or a tensor, and
:func:`load_checkpoint` reads with ``torch.load(weights_only=True)``: a file asking for any other
Python object is refused before that object is built, so a crafted ``.pt`` cannot run code.

*Atomic writes.* :func:`save_checkpoint` writes to a temporary file in the same folder, flushes it
to disk and renames it over the target (``os.replace`` is atomic on POSIX and Windows), so a run
killed while saving leaves the previous checkpoint intact rather than a truncated file.

Lesson: ``notebooks/05_full_training.ipynb``, section "Checkpoints".
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from cliphaze.serialization import CheckpointError, safe_torch_load

__all__ = ["CHECKPOINT_FORMAT", "CheckpointError", "save_checkpoint", "load_checkpoint"]

CHECKPOINT_FORMAT = "cliphaze-model-v1"


def save_checkpoint(payload: dict, path: str | os.PathLike) -> Path:
    """Write ``payload`` with ``torch.save``, atomically (see the module docstring).

    Args:
        payload: dict with at least ``network`` and ``state_dict``; ``format`` is added.
        path: target file; parent folders are created.

    Returns:
        the path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for key in ("network", "state_dict"):
        if key not in payload:
            raise ValueError(f"checkpoint payload for {path} lacks {key!r}")
    payload = {"format": CHECKPOINT_FORMAT, **payload}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Args:
        path: the ``.pt`` file.
        map_location: where tensors are loaded (default CPU).

    Returns:
        the payload dict.

    Raises:
        CheckpointError: missing file, unreadable or truncated file, a file holding Python objects
            other than tensors and plain data (refused without building them), or a file that is
            not a CLIPHaze model checkpoint; the message names the file and says what is wrong.
    """
    path = Path(path)
    # weights_only=True: tensors and plain data only, so a crafted file cannot run code while it
    # loads (see cliphaze.serialization); everything save_checkpoint writes is plain data.
    payload = safe_torch_load(path, map_location=map_location, what="checkpoint")
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{path}: not a CLIPHaze model checkpoint (format {found!r}, expected "
                              f"{CHECKPOINT_FORMAT!r})")
    for key in ("network", "state_dict"):
        if key not in payload:
            raise CheckpointError(f"{path}: checkpoint lacks {key!r}")
    return payload
