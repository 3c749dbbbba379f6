"""Input checking and preparation shared by every selective-scan backend.

Every backend takes exactly mamba-ssm's arguments (``selective_scan_fn``); this module checks them
once, with errors that name the offending argument, and applies the parts of the computation that
are plain element-wise PyTorch (``delta + delta_bias``, softplus, ``+ D u``, ``* silu(z)``), so the
backends only differ in how they run the recurrence itself. Derived in
``notebooks/03_selective_scan.ipynb``, section "The selective scan, exactly".
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["ScanShapes", "check_scan_inputs", "compute_dtype", "prepare_delta", "finish_output",
           "as_grouped"]


@dataclass(frozen=True)
class ScanShapes:
    """Sizes of one selective-scan call: batch b, channels d, length l, state n, groups g."""

    b: int
    d: int
    l: int
    n: int
    g: int


def _need(cond: bool, message: str) -> None:
    if not cond:
        raise ValueError(message)


def check_scan_inputs(u, delta, A, B, C, D=None, z=None, delta_bias=None) -> ScanShapes:
    """Validate mamba-ssm ``selective_scan_fn`` arguments and return their sizes.

    Args:
        u: (b, d, l) input sequence.
        delta: (b, d, l) step sizes before ``delta_bias`` / softplus.
        A: (d, n) real state matrix (diagonal per channel; negative for a stable system).
        B, C: (b, n, l), or grouped (b, g, n, l) where channel ``d`` uses group ``d // (D / g)``.
        D: optional (d,) skip weight.
        z: optional (b, d, l) gate.
        delta_bias: optional (d,) added to ``delta`` before the softplus.

    Returns:
        :class:`ScanShapes` with b, d, l, n, g (g = 1 for ungrouped B/C).

    Raises:
        TypeError: for non-tensors or complex A (complex S4D-style A is not supported here).
        ValueError: for any shape, device or group-size mismatch, with the argument named.
    """
    for name, t in (("u", u), ("delta", delta), ("A", A), ("B", B), ("C", C)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"selective_scan: {name} must be a torch.Tensor, got {type(t).__name__}")
    if A.is_complex() or B.is_complex() or C.is_complex():
        raise TypeError("selective_scan: complex A/B/C are not supported (real, diagonal A only)")
    _need(u.dim() == 3, f"selective_scan: u must be (b, d, l), got shape {tuple(u.shape)}")
    b, d, l = u.shape
    _need(tuple(delta.shape) == (b, d, l),
          f"selective_scan: delta must have u's shape {(b, d, l)}, got {tuple(delta.shape)}")
    _need(A.dim() == 2 and A.shape[0] == d,
          f"selective_scan: A must be (d, n) with d={d}, got {tuple(A.shape)}")
    n = A.shape[1]
    g = None
    for name, t in (("B", B), ("C", C)):
        if t.dim() == 3:
            _need(tuple(t.shape) == (b, n, l),
                  f"selective_scan: {name} must be (b, n, l) = {(b, n, l)} or (b, g, n, l), got {tuple(t.shape)}")
            tg = 1
        elif t.dim() == 4:
            _need(t.shape[0] == b and t.shape[2:] == (n, l),
                  f"selective_scan: grouped {name} must be (b, g, n, l) with b={b}, n={n}, l={l}, got {tuple(t.shape)}")
            tg = t.shape[1]
            _need(tg >= 1 and d % tg == 0,
                  f"selective_scan: {name} has g={tg} groups, which must divide d={d}")
        else:
            raise ValueError(f"selective_scan: {name} must be 3-D or 4-D, got shape {tuple(t.shape)}")
        g = tg if g is None else g
        _need(tg == g, f"selective_scan: B and C must have the same number of groups (got {g} and {tg})")
    if D is not None:
        _need(tuple(D.shape) == (d,), f"selective_scan: D must be (d,) = ({d},), got {tuple(D.shape)}")
    if z is not None:
        _need(tuple(z.shape) == (b, d, l), f"selective_scan: z must be (b, d, l) = {(b, d, l)}, got {tuple(z.shape)}")
    if delta_bias is not None:
        _need(tuple(delta_bias.shape) == (d,),
              f"selective_scan: delta_bias must be (d,) = ({d},), got {tuple(delta_bias.shape)}")
    devices = {t.device for t in (u, delta, A, B, C, D, z, delta_bias) if t is not None}
    _need(len(devices) == 1, f"selective_scan: all tensors must be on one device, got {sorted(map(str, devices))}")
    _need(l >= 1 and n >= 1 and d >= 1 and b >= 1, f"selective_scan: empty sizes b={b} d={d} l={l} n={n}")
    return ScanShapes(b=b, d=d, l=l, n=n, g=g)


def compute_dtype(*tensors: torch.Tensor | None) -> torch.dtype:
    """float32, as mamba-ssm computes, unless an input is float64 (then float64, for gradcheck)."""
    return torch.float64 if any(t is not None and t.dtype == torch.float64 for t in tensors) else torch.float32


def as_grouped(t: torch.Tensor) -> torch.Tensor:
    """(b, n, l) -> (b, 1, n, l); grouped (b, g, n, l) unchanged (a view, no copy)."""
    return t.unsqueeze(1) if t.dim() == 3 else t


def prepare_delta(delta: torch.Tensor, delta_bias: torch.Tensor | None, delta_softplus: bool,
                  dtype: torch.dtype) -> torch.Tensor:
    """The effective step size ``softplus(delta + delta_bias)`` in the compute dtype, (b, d, l).

    PyTorch's softplus (threshold 20: ``x`` itself above 20) is the same function mamba-ssm's
    kernel uses (``log1p(exp(x))`` for ``x <= 20``).
    """
    delta = delta.to(dtype)
    if delta_bias is not None:
        delta = delta + delta_bias.to(dtype)[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    return delta


def finish_output(y: torch.Tensor, u: torch.Tensor, D: torch.Tensor | None,
                  z: torch.Tensor | None, out_dtype: torch.dtype) -> torch.Tensor:
    """``out = (y + D u) * silu(z)``, cast back to the input dtype as mamba-ssm does; (b, d, l)."""
    if D is not None:
        y = y + D.to(y.dtype)[:, None] * u.to(y.dtype)
    if z is not None:
        y = y * F.silu(z.to(y.dtype))
    return y.to(out_dtype)
