"""What the frozen CLIP guide hands the network: one typed value, checked once.

The guide (:mod:`cliphaze.model.guide`) turns a hazy image into a :class:`Guidance`: a haze-density
map, CLIP image tokens, or both. Each aggregation declares what it reads in its ``needs`` class
attribute (:mod:`cliphaze.block.aggregation`: the density-aware module needs ``{"density"}``, the
semantic-aware one ``{"tokens"}``, the unguided baselines nothing), so no other code has to know
which aggregation reads which input: the model asks the guide for exactly the union of its blocks'
needs, and :meth:`Guidance.require` names what is missing.

The density map is checked once, where it enters the network (:func:`check_density`: shape,
batch, finite, within [0, 1]); blocks then only resize it. Checking the values is a full pass over
the map (and a device synchronisation on a GPU), which is why it is not repeated per block.

Lesson: ``notebooks/05_full_training.ipynb``, section "The guide, computed once per image".

Shapes: b batch, ``H, W`` the density map's (any) size, ``t`` tokens of width ``e``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields

import torch

__all__ = ["GUIDANCE_INPUTS", "Guidance", "check_density"]

#: What a guide can provide (the field names of :class:`Guidance`).
GUIDANCE_INPUTS = ("density", "tokens")
_DESCRIBE = {"density": "a haze-density map density=(b, 1, H, W)", "tokens": "CLIP image tokens tokens=(b, t, e)"}


def check_density(density: torch.Tensor, batch: int | None = None, name: str = "density") -> torch.Tensor:
    """Check a haze-density map once, where it enters the network.

    Args:
        density: ``(b, 1, H, W)`` (or ``(1, 1, H, W)``, broadcast over the batch), values in [0, 1]
            (``1 - transmission``).
        batch: the images' batch size ``b`` (a map of batch 1 is allowed for any ``b``).
        name: what to call the map in messages.

    Returns:
        ``density`` unchanged.

    Raises:
        ValueError: wrong rank or channel count, a batch that does not match, NaN or infinite
            values, or values outside [0, 1] (e.g. a 0-255 map).
    """
    if not isinstance(density, torch.Tensor):
        raise TypeError(f"{name} must be a tensor (b, 1, H, W), got {type(density).__name__}")
    if density.ndim != 4 or density.shape[1] != 1:
        raise ValueError(f"{name} must be (b, 1, H, W), got shape {tuple(density.shape)}")
    if batch is not None and density.shape[0] not in (1, batch):
        raise ValueError(f"{name} has batch {density.shape[0]}, the images have batch {batch}")
    if not torch.isfinite(density).all():
        raise ValueError(f"{name} contains NaN or inf")
    lo, hi = float(density.min()), float(density.max())
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise ValueError(f"{name} must lie in [0, 1] (1 - transmission), got values in [{lo:.3g}, {hi:.3g}]")
    return density


@dataclass(frozen=True)
class Guidance:
    """The guide's output for a batch of images (any field may be None).

    Attributes:
        density: ``(b, 1, H, W)`` haze density in [0, 1], any ``H, W`` (the density-aware
            aggregation reads it).
        tokens: ``(b, t, e)`` CLIP image tokens (the semantic-aware aggregation reads them).

    It also reads like the mapping ``{"density": ..., "tokens": ...}`` (``g["density"]``,
    ``net(x, **g)``), the form earlier versions returned.
    """

    density: torch.Tensor | None = None
    tokens: torch.Tensor | None = None

    @property
    def provides(self) -> frozenset[str]:
        """The names of the fields that are set."""
        return frozenset(f.name for f in fields(self) if getattr(self, f.name) is not None)

    def require(self, needs: frozenset[str] | set[str], who: str = "the network") -> Guidance:
        """Raise ``ValueError`` naming what ``needs`` asks for and this guidance lacks; else return self."""
        missing = sorted(set(needs) - self.provides)
        if missing:
            raise ValueError(f"{who} needs {' and '.join(_DESCRIBE.get(m, m) for m in missing)} from the CLIP "
                             "guide; use cliphaze.model.CLIPHaze, which computes it")
        return self

    def only(self, needs: frozenset[str] | set[str]) -> Guidance:
        """A copy keeping only the fields in ``needs`` (what a network will actually read)."""
        return Guidance(**{f.name: getattr(self, f.name) if f.name in needs else None for f in fields(self)})

    def to(self, device=None, dtype: torch.dtype | None = None) -> Guidance:
        """A copy with every tensor moved (and cast to ``dtype`` when given)."""
        return Guidance(**{f.name: None if getattr(self, f.name) is None else getattr(self, f.name).to(device, dtype)
                           for f in fields(self)})

    # Mapping view: g["density"], dict(g), net(x, **g)
    def keys(self) -> tuple[str, ...]:
        return GUIDANCE_INPUTS

    def __getitem__(self, key: str):
        if key not in GUIDANCE_INPUTS:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(GUIDANCE_INPUTS)
