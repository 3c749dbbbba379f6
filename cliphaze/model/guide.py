"""The frozen CLIP guide of the network: which one, built how, and its fingerprint.

The network never trains its guide. A guide is named by a short *spec*:

- ``"haze-clip-small"``: the small CLIP shipped in ``cliphaze/assets`` (trained from scratch by
  this project on synthetic haze; not OpenAI CLIP) with its learned prompt pair (lesson 02);
- ``"tiny-test-clip"``: a randomly initialised, seeded tiny CLIP with the hand-written prompts, for
  unit tests only (its density maps mean nothing);
- ``"none"`` / None: no guide (a network built with ``guidance="none"``);
- ``"NAME@PROMPTS.pt"``: backbone ``NAME`` with a prompt pair learnt by a training run's stage 1
  (``cliphaze train --prompts learn`` writes ``prompts.pt`` into its run folder).

:func:`guide_fingerprint` records the name and the SHA-256 of the guide's files in every model
checkpoint; :func:`check_guide` warns when the guide on disk differs from the one a checkpoint was
trained with (the network learnt to read *that* guide's density maps; another guide's maps may
mean something else).

Lesson: ``notebooks/05_full_training.ipynb``, section "The guide, computed once per image".
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import torch

__all__ = ["SHIPPED_GUIDE", "TEST_GUIDE", "build_guide", "guide_files", "guide_fingerprint", "check_guide",
           "GuideMismatchWarning"]

SHIPPED_GUIDE = "haze-clip-small"
TEST_GUIDE = "tiny-test-clip"


class GuideMismatchWarning(UserWarning):
    """The CLIP guide on disk is not the one a checkpoint was trained with."""


def guide_files(spec: str | None) -> list[Path]:
    """The files that define guide ``spec`` (empty for the test guide and for no guide)."""
    if spec in (None, "none", TEST_GUIDE):
        return []
    if "@" in spec:
        name, prompts = spec.split("@", 1)
        backbone = [p for p in guide_files(name) if "prompts" not in p.name]
        return backbone + [Path(prompts)]
    if spec == SHIPPED_GUIDE:
        from cliphaze.clip import SHIPPED_SMALL_CLIP, shipped_prompts_path

        return [Path(SHIPPED_SMALL_CLIP), Path(shipped_prompts_path())]
    raise ValueError(f"unknown guide {spec!r}; choose {SHIPPED_GUIDE!r}, {TEST_GUIDE!r} or 'none'")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def guide_fingerprint(spec: str | None) -> dict | None:
    """``{"name": spec, "files": {file name: SHA-256 or None if missing}}`` (None without a guide)."""
    if spec in (None, "none"):
        return None
    files = {p.name: (_sha256(p) if p.is_file() else None) for p in guide_files(spec)}
    return {"name": spec, "files": files}


def check_guide(recorded: dict | None, source: str = "checkpoint") -> bool:
    """Compare the fingerprint recorded in a checkpoint with the guide files on disk.

    Args:
        recorded: the checkpoint's ``guide`` entry.
        source: what to call the checkpoint in the warning (its path).

    Returns:
        True when they agree (or there is no guide); False after warning with
        :class:`GuideMismatchWarning` naming the files that differ.
    """
    if not recorded:
        return True
    current = guide_fingerprint(recorded["name"])
    differ = [name for name, digest in recorded.get("files", {}).items()
              if current["files"].get(name) != digest]
    if differ:
        warnings.warn(
            f"{source}: was trained with CLIP guide {recorded['name']!r}, but these guide files on disk "
            f"differ from the ones used in training: {differ}. Dehazing still runs, but the density maps "
            "may not mean what the network learnt; retrain or restore the original guide files.",
            GuideMismatchWarning,
            stacklevel=3,
        )
        return False
    return True


def build_guide(spec: str | None, device: str | torch.device = "cpu"):
    """Build the frozen guide named ``spec`` (see the module docstring).

    Args:
        spec: ``"haze-clip-small"``, ``"tiny-test-clip"``, or None / ``"none"``.
        device: where the CLIP runs.

    Returns:
        a :class:`cliphaze.clip.HazeGuide` (``.density(x, size)`` -> ``(b, 1, h, w)``,
        ``.tokens(x)`` -> ``(b, t, e)``), or None.

    Raises:
        FileNotFoundError: the shipped guide's files are missing (names them).
    """
    if spec in (None, "none"):
        return None
    from cliphaze.clip import HazeGuide, load_clip

    if "@" in spec:
        name, prompts = spec.split("@", 1)
        missing = [str(p) for p in guide_files(spec) if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"CLIP guide {spec!r} is incomplete: missing {missing}")
        clip = load_clip(device=device) if name == SHIPPED_GUIDE else load_clip(name, pretrained="random", device=device)
        return HazeGuide(clip, prompts=prompts, method="dense")
    if spec == SHIPPED_GUIDE:
        missing = [str(p) for p in guide_files(spec) if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"CLIP guide {spec!r} is incomplete: missing {missing} "
                                    "(they ship with the repository; restore them with git)")
        return HazeGuide(load_clip(device=device), prompts="learned", method="dense")
    if spec == TEST_GUIDE:
        clip = load_clip(TEST_GUIDE, pretrained="random", device=device, seed=0)
        return HazeGuide(clip, prompts="hand", method="dense")
    raise ValueError(f"unknown guide {spec!r}; choose {SHIPPED_GUIDE!r}, {TEST_GUIDE!r} or 'none'")
