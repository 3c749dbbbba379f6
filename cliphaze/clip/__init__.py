"""CLIP for haze: backbones, zero-shot density maps, learned prompts, and a small CLIP trained here.

Lessons: ``notebooks/01_clip_zero_shot_density.ipynb`` and ``notebooks/02_prompt_learning.ipynb``.

Public API (what the full network uses)::

    from cliphaze.clip import load_clip, density_map, PromptLearner, load_prompts, save_prompts, HazeGuide
    clip = load_clip()                                   # shipped haze-clip-small, offline
    clip = load_clip("ViT-B-32", pretrained="openai")    # real CLIP when its weights are cached
    clip.encode_image(x)           # (b, 3, h, w) in [0, 1] -> (b, e), unit vectors
    clip.image_tokens(x, return_grid=True)   # -> ((b, t, e), (gh, gw)) projected patch tokens
    clip.encode_text(["a hazy photo"])       # -> (k, e)
    density_map(clip, x, prompts=None, method="dense", size=None)   # -> (b, 1, h, w) in [0, 1]
    guide = HazeGuide(clip, prompts="learned")            # backbone + prompts, one call per image
    guide.density(x, size=(h, w)); guide.tokens(x)

Modules: :mod:`.backbone` (loading), :mod:`.frozen` (wrapper), :mod:`.density` (zero-shot maps),
:mod:`.prompts` (CoOp prompt learning), :mod:`.daclip` (DA-CLIP); the small haze CLIP:
:mod:`.small_config` (open_clip configs), :mod:`.captions`, :mod:`.losses`, :mod:`.crops` (training
samples), :mod:`.small_train` (recipes, calibrated prompts), :mod:`.compact` (checkpoint format),
gathered by :mod:`.small_clip`. Density scores per haze family: :mod:`cliphaze.analysis.density_eval`.
"""

from __future__ import annotations

import os

import torch

from cliphaze.clip.backbone import (
    BackboneInfo,
    MissingWeightsError,
    create_backbone,
    find_cached_clip,
)
from cliphaze.clip.density import (
    ENSEMBLE_PAIR,
    HAND_WRITTEN_PAIR,
    density_map,
    hazy_probability,
    prompt_pair_embeddings,
)
from cliphaze.clip.frozen import FrozenCLIP
from cliphaze.clip.prompts import PromptBackboneMismatch, PromptLearner, load_prompts, save_prompts
from cliphaze.clip.small_config import SHIPPED_SMALL_CLIP, SMALL_CLIP_NAME, TINY_TEST_CLIP_NAME

__all__ = [
    "load_clip",
    "density_map",
    "PromptLearner",
    "load_prompts",
    "save_prompts",
    "HazeGuide",
    "FrozenCLIP",
    "BackboneInfo",
    "MissingWeightsError",
    "PromptBackboneMismatch",
    "HAND_WRITTEN_PAIR",
    "ENSEMBLE_PAIR",
    "hazy_probability",
    "prompt_pair_embeddings",
    "find_cached_clip",
    "shipped_prompts_path",
    "SMALL_CLIP_NAME",
    "TINY_TEST_CLIP_NAME",
    "SHIPPED_SMALL_CLIP",
]


def shipped_prompts_path():
    """The learned prompt file shipped for ``haze-clip-small`` (``cliphaze/assets``)."""
    return SHIPPED_SMALL_CLIP.with_name("haze_clip_small_prompts.pt")


def load_clip(model_name: str | None = None, pretrained: str | None = None, device: str | torch.device = "cpu", seed: int = 0) -> FrozenCLIP:
    """Load a frozen CLIP backbone (never waits on the network).

    Args:
        model_name: ``None`` for the shipped ``haze-clip-small`` (trained here on synthetic haze;
            not OpenAI CLIP); any open_clip config name (``"ViT-B-32"``); ``"local-dir:/folder"``;
            or the path of a compact ``.pt`` checkpoint written by ``cliphaze clip train-small``.
        pretrained: an open_clip tag (``"openai"``; used only if its file is cached), a weight
            file (``.pt``/``.bin``/``.safetensors``), ``"random"`` (seeded untrained network) or
            ``"daclip"`` with ``$CLIPHAZE_DACLIP`` set / a DA-CLIP file path via
            :func:`cliphaze.clip.daclip.load_daclip`.
        device: ``"cpu"``, ``"cuda"``, ...
        seed: seed of ``pretrained="random"``.

    Returns:
        :class:`FrozenCLIP` (``.info`` says what it is).

    Raises:
        MissingWeightsError: within a second when the weights are not on this machine; the message
            names the model, the expected file and how to supply it.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if pretrained == "daclip":
        from cliphaze.clip.daclip import load_daclip

        return load_daclip(None, model_name or "ViT-B-32", device=device)
    model, info = create_backbone(model_name, pretrained, device=device, seed=seed)
    return FrozenCLIP(model, info).to(device)


class HazeGuide:
    """A backbone and a prompt pair, bundled for the network: one call per image.

    Args:
        clip: :class:`FrozenCLIP` (default: :func:`load_clip`).
        prompts: ``"learned"`` (the shipped learned prompts; only for the shipped backbone), a
            prompt file path, ``"hand"`` / None (the hand-written pair), ``"ensemble"``, a
            ``(hazy, clear)`` pair of strings/lists, or a :class:`PromptLearner`.
        method: ``"dense"`` or ``"crops"`` (:func:`density_map`).
        **density_kwargs: passed on to :func:`density_map` (``crop``, ``stride``, ``short_side``).
    """

    def __init__(self, clip: FrozenCLIP | None = None, prompts="learned", method: str = "dense", **density_kwargs):
        self.clip = clip if clip is not None else load_clip()
        if isinstance(prompts, str) and prompts == "learned":
            prompts = load_prompts(shipped_prompts_path(), self.clip)
        elif isinstance(prompts, str) and prompts in ("hand", "hand-written"):
            prompts = HAND_WRITTEN_PAIR
        elif isinstance(prompts, str) and prompts == "ensemble":
            prompts = ENSEMBLE_PAIR
        elif isinstance(prompts, (str, os.PathLike)) and os.path.isfile(prompts):
            prompts = load_prompts(prompts, self.clip)
        self.prompts = prompts
        self.method = method
        self.density_kwargs = density_kwargs
        with torch.no_grad():
            self._pair = prompt_pair_embeddings(self.clip, prompts).detach()

    def density(self, x: torch.Tensor, size: tuple[int, int] | int | None = None) -> torch.Tensor:
        """``(b, 1, h_out, w_out)`` haze density in [0, 1] for images ``(b, 3, h, w)`` in [0, 1]."""
        return density_map(self.clip, x, self._pair, method=self.method, size=size, **self.density_kwargs)

    def tokens(self, x: torch.Tensor, return_grid: bool = False):
        """``(b, t, e)`` CLIP image token embeddings (and the grid) for the semantic module."""
        with torch.no_grad():
            return self.clip.image_tokens(x, return_grid=return_grid)

    def describe(self) -> str:
        if isinstance(self.prompts, PromptLearner):
            p = self.prompts.describe()
        else:
            p = f"prompts {self.prompts!r}"
        return f"{self.clip.info.description}; {p}; method {self.method}"
