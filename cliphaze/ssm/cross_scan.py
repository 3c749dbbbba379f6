"""Four ways to read an image as a sequence (VMamba's cross-scan) and the way back (cross-merge).

Derived in notebook 03, section "Four directions over an image". For a map ``x`` of shape
``(b, d, h, w)`` and ``l = h w``, sequence ``k`` visits pixel ``(i, j)`` at position:

====  ==================  ===============================
k     order               position of pixel (i, j)
====  ==================  ===============================
0     row-major           ``i w + j``
1     column-major        ``j h + i``
2     row-major reversed  ``l - 1 - (i w + j)``
3     column reversed     ``l - 1 - (j h + i)``
====  ==================  ===============================

``directions=2`` keeps orders 0 and its reverse (a bidirectional row scan, as in Vision Mamba),
``directions=1`` keeps order 0 alone (a causal scan: a pixel only sees pixels before it).

Cross-merge sums the ``k`` outputs back onto the pixel grid, ``y0 + flip(y2) + T(y1) +
T(flip(y3))``. Every cross-scan order is a permutation, so merge is exactly the adjoint (the
transpose) of scan: ``<scan(x), y> = <x, merge(y)>``.
"""

from __future__ import annotations

import torch

__all__ = ["cross_scan", "cross_merge", "scan_orders", "DIRECTIONS"]

DIRECTIONS = (1, 2, 4)


def _check_directions(directions: int) -> None:
    if directions not in DIRECTIONS:
        raise ValueError(f"directions must be one of {DIRECTIONS}, got {directions!r}")


def cross_scan(x: torch.Tensor, directions: int = 4) -> torch.Tensor:
    """Flatten a feature map into ``k = directions`` sequences.

    Args:
        x: (b, d, h, w) feature map, channels first.
        directions: 1, 2 or 4 (see the module docstring for the orders).

    Returns:
        (b, k, d, l) with ``l = h w``; sequence k lists the pixels in order k.
    """
    _check_directions(directions)
    if x.dim() != 4:
        raise ValueError(f"cross_scan expects (b, d, h, w), got shape {tuple(x.shape)}")
    b, d, h, w = x.shape
    row = x.reshape(b, d, h * w)
    if directions == 1:
        return row.unsqueeze(1)
    if directions == 2:
        return torch.stack([row, row.flip(-1)], dim=1)
    col = x.transpose(2, 3).reshape(b, d, h * w)
    return torch.stack([row, col, row.flip(-1), col.flip(-1)], dim=1)


def cross_merge(ys: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Sum ``k`` sequences back onto the ``h x w`` grid: the adjoint of :func:`cross_scan`.

    Args:
        ys: (b, k, d, l) with ``k`` in {1, 2, 4} and ``l = h w``.
        h, w: the map size.

    Returns:
        (b, d, h, w): ``y0 [+ flip(y1)]`` for k = 1, 2; ``y0 + flip(y2) + T(y1) + T(flip(y3))``
        for k = 4, where ``T`` reads a column-major sequence back into row-major order.
    """
    if ys.dim() != 4:
        raise ValueError(f"cross_merge expects (b, k, d, l), got shape {tuple(ys.shape)}")
    b, k, d, l = ys.shape
    _check_directions(k)
    if l != h * w:
        raise ValueError(f"cross_merge: sequence length {l} != h * w = {h} * {w}")
    if k == 1:
        y = ys[:, 0]
    elif k == 2:
        y = ys[:, 0] + ys[:, 1].flip(-1)
    else:
        col = ys[:, 1] + ys[:, 3].flip(-1)                                 # column-major order
        y = ys[:, 0] + ys[:, 2].flip(-1) + col.reshape(b, d, w, h).transpose(2, 3).reshape(b, d, l)
    return y.reshape(b, d, h, w)


def scan_orders(h: int, w: int, directions: int = 4) -> torch.Tensor:
    """Which pixel each sequence visits at each position.

    Args:
        h, w: map size.
        directions: 1, 2 or 4.

    Returns:
        Long tensor (k, l): entry ``[k, p]`` is the row-major index ``i w + j`` of the pixel that
        sequence k visits at position p (used by the figure of the four orders in notebook 03).
    """
    index = torch.arange(h * w, dtype=torch.float64).reshape(1, 1, h, w)
    return cross_scan(index, directions)[0, :, 0].round().long()
