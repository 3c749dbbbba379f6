"""Effective receptive fields (ERF): how far a layer's output at one pixel reaches into its input.

The standard definition (Luo et al., "Understanding the Effective Receptive Field in Deep
Convolutional Neural Networks", NeurIPS 2016; the same maps VMamba and MambaIR draw) is the
gradient of the output at a centre pixel ``p`` with respect to every input pixel ``q``::

    ERF(q) = E_x [ sum_{c_in} | d (sum_{c_out} y_{c_out}(p)) / d x_{c_in}(q) | ]

averaged over inputs (a batch) and, by the caller, over random initialisations. A convolution
stack gives a Gaussian-like blob, window attention a hard square (the window holding ``p``), a
four-direction selective scan a map that covers the whole image, decaying along the scan paths.

- :func:`effective_receptive_field` - the map for any image-to-image function;
- :func:`block_path_erfs` - the attention path, the Mamba path and the fused block of one
  :class:`~cliphaze.block.TrambaDA`;
- :func:`erf_radius` - one number per map: the half-side of the smallest centred square holding a
  given share of the gradient mass.

Lesson: ``notebooks/06_evaluation.ipynb``, section "Figure 3: effective receptive fields" (lessons
03 and 04 derive the same maps inline for one scan and one block).

Shapes: b batch, c channels, h, w the map's size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["effective_receptive_field", "block_path_erfs", "erf_radius", "ErfMaps"]


def _centre(h: int, w: int, centre: tuple[int, int] | None) -> tuple[int, int]:
    ci, cj = centre if centre is not None else (h // 2, w // 2)
    if not (0 <= ci < h and 0 <= cj < w):
        raise ValueError(f"centre {(ci, cj)} lies outside the {h}x{w} output")
    return int(ci), int(cj)


def effective_receptive_field(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    centre: tuple[int, int] | None = None,
) -> torch.Tensor:
    """ERF map of ``fn`` at one output pixel (module docstring equation).

    Args:
        fn: maps ``(b, c_in, h, w)`` to ``(b, c_out, h_out, w_out)`` (any ``c_out``; usually the
            same size, but any output grid works: ``centre`` is in output coordinates).
        x: ``(b, c_in, h, w)`` inputs; the map is averaged over the batch. Not modified.
        centre: output pixel ``p = (i, j)``; default the centre ``(h_out // 2, w_out // 2)``.

    Returns:
        ``(h, w)`` float64 map ``>= 0`` (unnormalised: divide by its sum or max to compare shapes).

    Raises:
        ValueError: ``x`` is not 4-D or ``centre`` is outside the output.
    """
    if x.ndim != 4:
        raise ValueError(f"x must be (b, c, h, w), got shape {tuple(x.shape)}")
    x = x.detach().clone().requires_grad_(True)
    y = fn(x)
    if y.ndim != 4:
        raise ValueError(f"fn must return (b, c, h, w), got shape {tuple(y.shape)}")
    ci, cj = _centre(y.shape[-2], y.shape[-1], centre)
    (grad,) = torch.autograd.grad(y[:, :, ci, cj].sum(), x)
    return grad.detach().abs().sum(dim=1).mean(dim=0).to(torch.float64)


@dataclass
class ErfMaps:
    """ERF maps ``(h, w)`` of a block's attention path, Mamba path and whole block (None for a
    path the block does not build), and the centre pixel they were taken at."""

    attention: torch.Tensor | None
    mamba: torch.Tensor | None
    fused: torch.Tensor
    centre: tuple[int, int]

    def as_dict(self) -> dict[str, torch.Tensor]:
        """``{"attention path": ..., "Mamba path": ..., "fused block": ...}`` without missing paths."""
        out = {"attention path": self.attention, "Mamba path": self.mamba, "fused block": self.fused}
        return {k: v for k, v in out.items() if v is not None}


def block_path_erfs(
    block: torch.nn.Module,
    x: torch.Tensor,
    centre: tuple[int, int] | None = None,
    density: torch.Tensor | None = None,
    tokens: torch.Tensor | None = None,
) -> ErfMaps:
    """ERFs of the two paths and of the fused output of a :class:`~cliphaze.block.TrambaDA`.

    The paths are read before aggregation (:meth:`TrambaDA.paths`: ``F_attn = WA(LN(x))``,
    ``F_mamba = SS2D(LN(x))``); the fused map is the block output
    ``x + F + FFN(LN(x + F))`` with ``F = W_a F_attn + W_m F_mamba``, so it also contains the
    identity path (a spike at the centre) and the feed-forward's 3x3 depthwise reach.

    Args:
        block: a ``TrambaDA`` (anything with ``paths(x)`` and ``forward(x, density, tokens)``).
        x: ``(b, c, h, w)`` block input (e.g. a random map or embedded image features).
        centre: output pixel; default the centre.
        density, tokens: guidance passed to the block (optional, see ``TrambaDA.forward``).

    Returns:
        :class:`ErfMaps`, each map ``(h, w)`` float64 averaged over the batch.
    """
    h, w = x.shape[-2:]
    centre = _centre(h, w, centre)
    maps: dict[str, torch.Tensor | None] = {}
    for index, name in ((1, "attention"), (2, "mamba")):
        with torch.no_grad():
            present = block.paths(x[:1])[index] is not None
        maps[name] = (
            effective_receptive_field(lambda z, i=index: block.paths(z)[i], x, centre) if present else None
        )
    fused = effective_receptive_field(lambda z: block(z, density=density, tokens=tokens), x, centre)
    return ErfMaps(attention=maps["attention"], mamba=maps["mamba"], fused=fused, centre=centre)


def erf_radius(erf: torch.Tensor, mass: float = 0.9, centre: tuple[int, int] | None = None) -> int:
    """Half-side ``r`` of the smallest square ``[i - r, i + r] x [j - r, j + r]`` around the centre
    that holds at least ``mass`` of the map's total (clipped at the borders).

    Args:
        erf: ``(h, w)`` non-negative map.
        mass: share of the total in ``(0, 1]``.
        centre: the pixel the map was taken at (default the centre).

    Returns:
        ``r`` in pixels (0: the centre pixel alone holds ``mass``); ``max(h, w)`` when the map sums
        to zero.
    """
    if not 0 < mass <= 1:
        raise ValueError(f"mass must lie in (0, 1], got {mass}")
    if erf.ndim != 2:
        raise ValueError(f"erf must be (h, w), got {tuple(erf.shape)}")
    h, w = erf.shape
    ci, cj = _centre(h, w, centre)
    e = erf.detach().double().abs()
    total = float(e.sum())
    if total <= 0:
        return max(h, w)
    for r in range(max(h, w) + 1):
        inside = float(e[max(0, ci - r): ci + r + 1, max(0, cj - r): cj + r + 1].sum())
        if inside >= mass * total * (1 - 1e-12):
            return r
    return max(h, w)
