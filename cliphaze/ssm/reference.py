"""Rung 1 of the ladder: the selective scan as a readable loop over time.

This is the definition, written to be read next to the equations in
``notebooks/03_selective_scan.ipynb`` (section "The loop"), and the float64 oracle of the tests:

    delta_t = softplus(delta_t + delta_bias)                      (b, d)
    h_t     = exp(delta_t A) * h_{t-1} + delta_t B_t u_t          (b, d, n)   [ZOH for A, Euler for B]
    y_t     = <C_t, h_t>                                          (b, d)
    out_t   = (y_t + D u_t) * silu(z_t)

It keeps one state and slices one time step per iteration, so its forward is linear in l but
autograd's backward through ``x[:, :, t]`` allocates a full-size gradient for every slice: the
backward is quadratic in l. Use it to understand and to check, never to train.
"""

from __future__ import annotations

import torch

from ._inputs import as_grouped, check_scan_inputs, compute_dtype, finish_output, prepare_delta

__all__ = ["selective_scan_reference"]


def selective_scan_reference(u, delta, A, B, C, D=None, z=None, delta_bias=None,
                             delta_softplus=False, return_last_state=False):
    """Selective scan by an explicit loop over time (mamba-ssm ``selective_scan_ref`` semantics).

    Args:
        u: (b, d, l) input.
        delta: (b, d, l) step size (before ``delta_bias`` and the optional softplus).
        A: (d, n) real state matrix (mamba uses ``A = -exp(A_log)``).
        B, C: (b, n, l) or grouped (b, g, n, l); channel ``i`` uses group ``i // (d / g)``.
        D: optional (d,) skip connection ``+ D u``.
        z: optional (b, d, l) gate, ``out *= silu(z)``.
        delta_bias: optional (d,) added to delta.
        delta_softplus: apply softplus to ``delta + delta_bias``.
        return_last_state: also return the final state.

    Returns:
        ``out`` (b, d, l) in u's dtype, and if ``return_last_state`` also ``h_l`` (b, d, n) in the
        compute dtype. Math runs in float32 (float64 when any input is float64).

    Equation: see the module docstring; notebook 03, section "The loop".
    """
    shapes = check_scan_inputs(u, delta, A, B, C, D, z, delta_bias)
    b, d, l, n, g = shapes.b, shapes.d, shapes.l, shapes.n, shapes.g
    dtype = compute_dtype(u, delta, A, B, C, D, z, delta_bias)
    dt = prepare_delta(delta, delta_bias, delta_softplus, dtype)       # (b, d, l)
    uu = u.to(dtype)
    A = A.to(dtype)
    # Expand the groups so that every channel sees its own B_t, C_t: (b, g, n, l) -> (b, d, n, l).
    Bd = as_grouped(B).to(dtype).repeat_interleave(d // g, dim=1)
    Cd = as_grouped(C).to(dtype).repeat_interleave(d // g, dim=1)
    h = u.new_zeros((b, d, n), dtype=dtype)                              # state h_0 = 0
    ys = []
    for t in range(l):
        decay = torch.exp(dt[:, :, t, None] * A)                         # (b, d, n) zero-order hold
        drive = dt[:, :, t, None] * Bd[:, :, :, t] * uu[:, :, t, None]   # (b, d, n) Euler step
        h = decay * h + drive
        ys.append((h * Cd[:, :, :, t]).sum(-1))                          # (b, d)
    y = torch.stack(ys, dim=-1)                                          # (b, d, l)
    out = finish_output(y, uu, D, z, u.dtype)
    return (out, h) if return_last_state else out
