"""The frozen CLIP guide of the network: which one, built how, and its fingerprint.

The network never trains its guide. A guide is named by a short *spec*, parsed in one place
(:meth:`GuideSpec.parse`):

==========================================  ================================================
spec                                        guide
==========================================  ================================================
``haze-clip-small``                         the small CLIP shipped in ``cliphaze/assets``
                                            (trained from scratch by this project on synthetic
                                            haze; not OpenAI CLIP) with its learned prompt
                                            pair (lesson 02)
``tiny-test-clip``                          a randomly initialised, seeded tiny CLIP with the
                                            hand-written prompts, for unit tests only (its
                                            density maps mean nothing)
``open_clip:MODEL/TAG``                     an open_clip model with pretrained weights, e.g.
                                            ``open_clip:ViT-B-32/openai`` or
                                            ``open_clip:ViT-B-16/laion2b_s34b_b88k``; ``TAG``
                                            is an open_clip pretrained tag (used only when its
                                            file is already on this machine: nothing is
                                            downloaded), a local weights file
                                            (``open_clip:ViT-B-32//data/vit-b-32.bin``), or
                                            ``random`` (seeded untrained weights); prompts:
                                            the hand-written pair
``SPEC@PROMPTS.pt``                         any of the above with a prompt pair learnt by a
                                            training run's stage 1 (``cliphaze train --prompts
                                            learn`` writes ``prompts.pt`` into its run folder)
``none`` / None                             no guide (an unguided aggregation)
==========================================  ================================================

When an open_clip tag's weights are not on the machine, :func:`build_guide` fails at once with
:class:`cliphaze.clip.MissingWeightsError`, naming the file it expected and how to supply it (copy
the Hugging Face cache from a machine with network access, or pass the file).

:func:`guide_fingerprint` records the name and the SHA-256 of the guide's files in every model
checkpoint; :func:`check_guide` warns when the guide on disk differs from the one a checkpoint was
trained with (the network learnt to read *that* guide's density maps; another guide's maps may
mean something else).

Lesson: ``notebooks/05_full_training.ipynb``, section "The guide, computed once per image".
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from cliphaze import defaults as _defaults

__all__ = ["SHIPPED_GUIDE", "TEST_GUIDE", "OPEN_CLIP_PREFIX", "GuideSpec", "build_guide", "guide_backbone",
           "guide_files", "guide_fingerprint", "check_guide", "GuideMismatchWarning"]

SHIPPED_GUIDE = _defaults.SHIPPED_GUIDE
TEST_GUIDE = "tiny-test-clip"
OPEN_CLIP_PREFIX = "open_clip:"
_NO_GUIDE = (None, "", "none")


class GuideMismatchWarning(UserWarning):
    """The CLIP guide on disk is not the one a checkpoint was trained with."""


@dataclass(frozen=True)
class GuideSpec:
    """A parsed guide spec (table in the module docstring).

    Attributes:
        backbone: ``"haze-clip-small"``, ``"tiny-test-clip"`` or an open_clip model name.
        pretrained: the open_clip tag, weights file or ``"random"`` (open_clip backbones only).
        prompts: a prompt file, or None for the backbone's default pair (the shipped learned
            pair for ``haze-clip-small``, the hand-written pair otherwise).
    """

    backbone: str
    pretrained: str | None = None
    prompts: str | None = None

    @classmethod
    def parse(cls, spec: str | None) -> GuideSpec | None:
        """Read a spec string (None for no guide).

        Raises:
            ValueError: an unknown name or a malformed ``open_clip:`` spec (the message shows
                the accepted forms).
        """
        if spec in _NO_GUIDE:
            return None
        text = str(spec)
        base, sep, prompts = text.partition("@")
        if sep and not prompts:
            raise ValueError(f"guide {text!r}: nothing after '@' (expected SPEC@PROMPTS.pt)")
        prompts = prompts or None
        if base in (SHIPPED_GUIDE, TEST_GUIDE):
            return cls(base, None, prompts)
        if base.startswith(OPEN_CLIP_PREFIX):
            model, slash, tag = base[len(OPEN_CLIP_PREFIX):].partition("/")
            if not model or not slash or not tag:
                raise ValueError(f"guide {text!r}: write open_clip:MODEL/TAG, e.g. 'open_clip:ViT-B-32/openai' "
                                 "(TAG: a pretrained tag, a weights file, or 'random')")
            return cls(model, tag, prompts)
        raise ValueError(f"unknown guide {text!r}; choose {SHIPPED_GUIDE!r}, {TEST_GUIDE!r}, "
                         "'open_clip:MODEL/TAG' (e.g. 'open_clip:ViT-B-32/openai'), any of them followed by "
                         "'@PROMPTS.pt', or 'none'")

    @property
    def is_open_clip(self) -> bool:
        return self.pretrained is not None

    def base(self) -> str:
        """The spec without its prompt file."""
        return f"{OPEN_CLIP_PREFIX}{self.backbone}/{self.pretrained}" if self.is_open_clip else self.backbone

    def with_prompts(self, prompts: str | Path | None) -> GuideSpec:
        return replace(self, prompts=None if prompts is None else str(prompts))

    def __str__(self) -> str:
        return self.base() + (f"@{self.prompts}" if self.prompts else "")


def _weights_files(spec: GuideSpec) -> list[Path]:
    """The backbone's weight files (for fingerprints; a missing file is listed as expected)."""
    if spec.backbone == SHIPPED_GUIDE and not spec.is_open_clip:
        from cliphaze.clip import SHIPPED_SMALL_CLIP

        return [Path(SHIPPED_SMALL_CLIP)]
    if not spec.is_open_clip or spec.pretrained == "random":
        return []  # the test guide and random weights are defined by their seed
    tag = spec.pretrained
    if "/" in tag or tag.endswith((".pt", ".pth", ".bin", ".safetensors")):
        return [Path(tag).expanduser()]
    from cliphaze.clip.backbone import cached_pretrained_file

    found = cached_pretrained_file(spec.backbone, tag)
    return [Path(found)] if found else [Path(f"{spec.backbone}-{tag}.weights")]


def guide_files(spec: str | GuideSpec | None) -> list[Path]:
    """The files that define guide ``spec`` (weights and prompts; empty for seeded guides)."""
    g = spec if isinstance(spec, GuideSpec) or spec is None else GuideSpec.parse(spec)
    if g is None:
        return []
    files = _weights_files(g)
    if g.prompts:
        files.append(Path(g.prompts))
    elif g.backbone == SHIPPED_GUIDE and not g.is_open_clip:
        from cliphaze.clip import shipped_prompts_path

        files.append(Path(shipped_prompts_path()))
    return files


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def guide_fingerprint(spec: str | None) -> dict | None:
    """``{"name": spec, "files": {file name: SHA-256 or None if missing}}`` (None without a guide)."""
    if spec in _NO_GUIDE:
        return None
    files = {p.name: (_sha256(p) if p.is_file() else None) for p in guide_files(spec)}
    return {"name": str(spec), "files": files}


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


def guide_backbone(spec: str | GuideSpec, device: str | torch.device = "cpu"):
    """The frozen CLIP backbone of a guide spec (its prompts aside).

    Raises:
        cliphaze.clip.MissingWeightsError: the weights are not on this machine (at once; the
            message names the file and how to supply it).
    """
    from cliphaze.clip import MissingWeightsError, load_clip

    g = spec if isinstance(spec, GuideSpec) else GuideSpec.parse(spec)
    if g.backbone == SHIPPED_GUIDE and not g.is_open_clip:
        return load_clip(device=device)
    if g.backbone == TEST_GUIDE and not g.is_open_clip:
        return load_clip(TEST_GUIDE, pretrained="random", device=device, seed=0)
    try:
        return load_clip(g.backbone, pretrained=g.pretrained, device=device, seed=0)
    except MissingWeightsError as err:
        raise MissingWeightsError(
            f"CLIP guide {str(g)!r}: {err} For a guide, a weights file is written "
            f"'{OPEN_CLIP_PREFIX}{g.backbone}//path/to/weights.bin'.") from None


def build_guide(spec: str | GuideSpec | None, device: str | torch.device = "cpu"):
    """Build the frozen guide named ``spec`` (see the module docstring).

    Args:
        spec: a guide spec (``"haze-clip-small"``, ``"tiny-test-clip"``,
            ``"open_clip:ViT-B-32/openai"``, ``"...@prompts.pt"``), or None / ``"none"``.
        device: where the CLIP runs.

    Returns:
        a :class:`cliphaze.clip.HazeGuide` (``.density(x, size)`` -> ``(b, 1, h, w)``,
        ``.tokens(x)`` -> ``(b, t, e)``), or None.

    Raises:
        FileNotFoundError: a guide file is missing (names it);
            :class:`cliphaze.clip.MissingWeightsError` (a subclass) for open_clip weights that
            are not on this machine.
        ValueError: an unknown or malformed spec.
    """
    g = spec if isinstance(spec, GuideSpec) or spec is None else GuideSpec.parse(spec)
    if g is None:
        return None
    from cliphaze.clip import HazeGuide

    if g.prompts and not Path(g.prompts).is_file():
        raise FileNotFoundError(f"{g.prompts}: prompt file of CLIP guide {str(g)!r} is missing "
                                "(a training run's stage 1 writes it as prompts.pt in its run folder)")
    if g.backbone == SHIPPED_GUIDE and not g.is_open_clip:
        missing = [str(p) for p in guide_files(g) if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"CLIP guide {str(g)!r} is incomplete: missing {missing} "
                                    "(they ship with the repository; restore them with git)")
    clip = guide_backbone(g, device=device)
    if g.prompts:
        prompts = g.prompts
    elif g.backbone == SHIPPED_GUIDE and not g.is_open_clip:
        prompts = "learned"
    else:
        prompts = "hand"
    return HazeGuide(clip, prompts=prompts, method="dense")
