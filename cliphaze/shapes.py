"""Executable shape claims and the one shared equivalence check.

Shape letters used across the library (and their symbols in the CLIPHaze / Mamba papers):

====  ===========================================================
b     batch size
c     image or feature channels (C in the paper)
h, w  height and width of an image or feature map (H, W)
l     sequence length of a flattened map, l = h * w (L)
d     channels inside the scan, d_inner = ssm_ratio * c (D)
n     state size of the selective scan (N, ``d_state``)
g     groups of B/C in a grouped scan (mamba-ssm's ``ngroups``)
k     number of scan directions (K, 1, 2 or 4)
r     rank of the delta projection (R = ceil(c / 16))
====  ===========================================================

``check_shape`` turns a comment such as ``# (b, c, h, w)`` into an assertion, in the
spirit of d2l; ``check`` is the single helper that every "our version equals the
reference" claim in the tests and notebooks goes through (srush/annotated-mamba).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["check_shape", "check", "max_abs_rel_error"]


def check_shape(tensor: torch.Tensor, shape: Sequence[int | None], name: str = "tensor") -> torch.Tensor:
    """Assert that ``tensor.shape`` matches ``shape`` (``None`` matches any size).

    Args:
        tensor: any tensor.
        shape: expected sizes, one per dimension; ``None`` is a wildcard.
        name: what to call the tensor in the error message.

    Returns:
        ``tensor`` unchanged, so the call can wrap an expression.
    """
    actual = tuple(tensor.shape)
    ok = len(actual) == len(shape) and all(e is None or e == a for e, a in zip(shape, actual))
    if not ok:
        raise AssertionError(f"{name} has shape {actual}, expected {tuple(shape)}")
    return tensor


def max_abs_rel_error(actual: torch.Tensor, expected: torch.Tensor) -> tuple[float, float]:
    """Largest absolute error and the norm-relative error ``|a - e| / |e|`` (in float64)."""
    a = actual.detach().to(torch.float64)
    e = expected.detach().to(torch.float64)
    abs_err = (a - e).abs().max().item() if a.numel() else 0.0
    denom = e.norm().item()
    rel = (a - e).norm().item() / denom if denom > 0 else (a - e).norm().item()
    return abs_err, rel


def check(
    actual: torch.Tensor,
    expected: torch.Tensor,
    rtol: float = 1e-5,
    atol: float = 1e-6,
    name: str = "result",
) -> tuple[float, float]:
    """Assert ``actual`` matches ``expected`` elementwise: ``|a - e| <= atol + rtol * |e|``.

    Both are compared in float64, shapes must be equal, and NaN never passes.

    Args:
        actual: the implementation under test.
        expected: the reference (usually a float64 loop).
        rtol, atol: tolerances, as in ``torch.allclose``.
        name: what to call the compared quantity in the error message.

    Returns:
        ``(max_abs_error, norm_relative_error)``, so notebooks can print how close they are.
    """
    if tuple(actual.shape) != tuple(expected.shape):
        raise AssertionError(f"{name}: shape {tuple(actual.shape)} != reference {tuple(expected.shape)}")
    a = actual.detach().to(torch.float64)
    e = expected.detach().to(torch.float64)
    if torch.isnan(a).any():
        raise AssertionError(f"{name}: contains NaN")
    bad = (a - e).abs() > atol + rtol * e.abs()
    abs_err, rel = max_abs_rel_error(a, e)
    if bad.any():
        raise AssertionError(
            f"{name}: {int(bad.sum())} of {bad.numel()} elements out of tolerance "
            f"(max abs error {abs_err:.3g}, relative error {rel:.3g}, rtol={rtol}, atol={atol})"
        )
    return abs_err, rel
