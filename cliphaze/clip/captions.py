"""Captions generated from haze parameters, for training the small haze CLIP.

A crop's caption says how much haze it carries (its mean density ``1 - t``: clear, thin, moderate,
thick), what kind (uniform or patchy) and uses one of several templates and synonyms (haze, fog,
mist), so the text tower learns *haze* rather than one sentence. :func:`density_level` buckets
per-patch densities the same way for the patch-level loss. Lesson:
``notebooks/02_prompt_learning.ipynb``, "Training the small haze CLIP".
"""

from __future__ import annotations

import random

import torch

__all__ = ["STRENGTH_WORDS", "KIND_WORDS", "HAZE_NOUNS", "HAZE_ADJECTIVES", "HAZY_TEMPLATES", "CLEAR_TEMPLATES",
           "CLEAR_BELOW", "STRENGTH_EDGES", "strength_of", "make_caption", "LEVEL_DENSITIES", "density_level",
           "EXTRA_PROMPT_TEXT", "caption_vocabulary"]

STRENGTH_WORDS = {
    "thin": ("thin", "light", "faint"),
    "moderate": ("moderate", "medium"),
    "thick": ("thick", "dense", "heavy"),
}
KIND_WORDS = {
    "homogeneous": ("uniform", "even"),
    "nonhomogeneous": ("patchy", "uneven", "non-uniform"),
}
HAZE_NOUNS = ("haze", "fog", "mist")
HAZE_ADJECTIVES = {"haze": "hazy", "fog": "foggy", "mist": "misty"}
HAZY_TEMPLATES = (
    "a photo with {strength} {kind} {noun}",
    "a {strength} {adj} photo",
    "an image covered in {strength} {noun}",
    "a photo of a scene in {kind} {noun}",
    "a {adj} image",
    "a picture taken in {strength} {noun}",
    "a {adj} picture with {kind} {noun}",
)
CLEAR_TEMPLATES = (
    "a clear photo",
    "a clear image",
    "a haze-free photo",
    "a photo with no {noun}",
    "a clean sharp picture",
    "a photo of a clear scene",
    "a clear picture with no {noun}",
)
#: Mean density 1 - t of a crop below which it is captioned clear, and the strength buckets.
CLEAR_BELOW = 0.05
STRENGTH_EDGES = (0.3, 0.55)


def strength_of(mean_density: float) -> str | None:
    """Strength bucket of a crop from its mean density ``mean(1 - t)``.

    Returns ``None`` (clear) below :data:`CLEAR_BELOW`, else ``"thin"`` below 0.3, ``"moderate"``
    below 0.55 and ``"thick"`` above.
    """
    if mean_density < CLEAR_BELOW:
        return None
    if mean_density < STRENGTH_EDGES[0]:
        return "thin"
    if mean_density < STRENGTH_EDGES[1]:
        return "moderate"
    return "thick"


def make_caption(mean_density: float, kind: str, rng: random.Random) -> str:
    """A caption describing a (hazy or clear) crop, in one of several phrasings.

    Args:
        mean_density: mean of ``1 - t`` over the crop (0 for a clear crop).
        kind: ``"homogeneous"`` or ``"nonhomogeneous"`` (from :class:`cliphaze.haze.HazeSample`).
        rng: Python random generator (phrasing, synonyms).

    Returns:
        e.g. ``"a photo with thick patchy fog"``, ``"a misty image"`` or ``"a haze-free photo"``.
        Varying templates and synonyms makes the text tower learn *haze*, not one sentence, so
        prompts never seen verbatim ("hazy image") still land in the right place.
    """
    strength = strength_of(mean_density)
    noun = rng.choice(HAZE_NOUNS)
    if strength is None:
        return rng.choice(CLEAR_TEMPLATES).format(noun=noun)
    return rng.choice(HAZY_TEMPLATES).format(
        strength=rng.choice(STRENGTH_WORDS[strength]), kind=rng.choice(KIND_WORDS[kind]),
        noun=noun, adj=HAZE_ADJECTIVES[noun],
    )


#: Representative mean densities of the four levels (clear, thin, moderate, thick) used to
#: caption *patches* in the token-level term of the training loss.
LEVEL_DENSITIES = (0.0, 0.175, 0.425, 0.775)


def density_level(density: torch.Tensor) -> torch.Tensor:
    """Level index 0 (clear), 1 (thin), 2 (moderate), 3 (thick) of densities ``1 - t`` (any shape),
    with the same edges as :func:`strength_of`."""
    edges = torch.tensor([CLEAR_BELOW, *STRENGTH_EDGES], dtype=density.dtype, device=density.device)
    return torch.bucketize(density, edges, right=True)


#: Words the prompt lessons use beyond the captions; their token rows are kept in the compact
#: checkpoint (they are trained only if they also occur in captions).
EXTRA_PROMPT_TEXT = ("hazy image", "clear image", "X X X X X X X X", "a photo of a")


def caption_vocabulary() -> list[str]:
    """Every caption :func:`make_caption` can produce, plus :data:`EXTRA_PROMPT_TEXT`."""
    out = set(EXTRA_PROMPT_TEXT)
    for noun in HAZE_NOUNS:
        for t in CLEAR_TEMPLATES:
            out.add(t.format(noun=noun))
        for t in HAZY_TEMPLATES:
            for words in STRENGTH_WORDS.values():
                for s in words:
                    for kinds in KIND_WORDS.values():
                        for k in kinds:
                            out.add(t.format(strength=s, kind=k, noun=noun, adj=HAZE_ADJECTIVES[noun]))
    return sorted(out)
