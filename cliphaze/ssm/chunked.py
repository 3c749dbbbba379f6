"""Rung 3 of the ladder: a two-level chunked scan made of a few large operations (GPU-friendly).

The loop needs ``l`` sequential steps. Splitting the sequence into ``l / T`` chunks of ``T`` steps
gives two short sequential loops instead (notebook 03, section "Chunks, and the overflow trap"):

1. **Inside every chunk, all chunks at once**: run the recurrence from a zero state for ``T``
   steps, vectorised over the chunks: ``s_t = a_t * s_{t-1} + x_t`` gives the *local* states.
2. **Across chunks**: the state entering chunk ``c`` is ``H_c = P_{c-1} * H_{c-1} + s_{c-1, T}``,
   where ``P_c`` is the product of the chunk's decays; ``l / T`` steps on ``(b, d, n)`` tensors.
3. **Fix-up**: ``h_t = s_t + (prod_{j<=t in chunk} a_j) * H_c``.

With ``T ~ sqrt(l)`` that is about ``2 sqrt(l)`` sequential steps (512 instead of 65536 for a
256 x 256 map), and plain autograd gives the backward.

Every factor is a product of decays ``a_j = exp(delta_j A) <= 1``, computed as ``exp`` of a
cumulative sum of ``delta_j A <= 0``: it can underflow to 0 (harmless) but never overflow. The
tempting alternative, ``h_t = P_t (H + sum_s x_s / P_s)`` with ``P_t = exp(cumsum)``, divides by
cumulative decays: ``1 / P_s`` reaches ``exp(16 * 0.1 * 64) = e^102 > 3.4e38`` (float32 max) at
VMamba's initialisation and gives inf / NaN. This module never divides.

Memory is several ``(b, d, l, n)`` tensors (autograd keeps them), so it suits a GPU without
mamba-ssm, not long sequences on a small CPU: there :mod:`cliphaze.ssm.fast_cpu` is the choice.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ._inputs import as_grouped, check_scan_inputs, compute_dtype, finish_output, prepare_delta

__all__ = ["selective_scan_chunked"]


def selective_scan_chunked(u, delta, A, B, C, D=None, z=None, delta_bias=None,
                           delta_softplus=False, return_last_state=False, chunk_len=None):
    """Selective scan as a two-level (within-chunk, across-chunk) scan without any division.

    Same arguments, shapes and results as mamba-ssm's ``selective_scan_fn`` (see
    :func:`cliphaze.ssm.reference.selective_scan_reference`), plus:

    Args:
        chunk_len: steps per chunk ``T`` (default ``ceil(sqrt(l))``); any value gives the same
            result up to float rounding.

    Returns:
        ``out`` (b, d, l) in u's dtype, and with ``return_last_state`` also ``h_l`` (b, d, n).

    Equations: module docstring; the sequence is padded to a multiple of ``T`` with
    ``delta = 0`` (decay 1, drive 0), which leaves the state, and so the last state, unchanged.
    """
    shapes = check_scan_inputs(u, delta, A, B, C, D, z, delta_bias)
    b, d, l, n, g = shapes.b, shapes.d, shapes.l, shapes.n, shapes.g
    T = int(chunk_len) if chunk_len is not None else math.ceil(math.sqrt(l))
    if T < 1:
        raise ValueError(f"chunk_len must be >= 1, got {chunk_len}")
    nc = math.ceil(l / T)
    pad = nc * T - l
    dtype = compute_dtype(u, delta, A, B, C, D, z, delta_bias)
    dt = prepare_delta(delta, delta_bias, delta_softplus, dtype)
    uu = u.to(dtype)
    dt_p = F.pad(dt, (0, pad))                                             # (b, d, L)
    u_p = F.pad(uu, (0, pad))
    B_p = F.pad(as_grouped(B).to(dtype), (0, pad))                         # (b, g, n, L)
    C_p = F.pad(as_grouped(C).to(dtype), (0, pad))
    L = nc * T
    hd = d // g

    def steps_first(t: torch.Tensor) -> torch.Tensor:
        """(..., L) -> (T, ..., nc): step t of every chunk becomes one contiguous slice."""
        t = t.reshape(*t.shape[:-1], nc, T)
        return t.permute(t.dim() - 1, *range(t.dim() - 2), t.dim() - 2)

    # Only the small (b, d, L) / (b, g, n, L) inputs are permuted; every (.., n) tensor is
    # produced directly in the (T, b, d, nc, n) layout by broadcasting.
    dt_s = steps_first(dt_p)                                                   # (T, b, d, nc)
    log_decay = dt_s.unsqueeze(-1) * A.to(dtype)[:, None, :]                   # (T, b, d, nc, n) <= 0
    du_s = steps_first(dt_p * u_p).reshape(T, b, g, hd, nc, 1)
    B_s = steps_first(B_p).permute(0, 1, 2, 4, 3).unsqueeze(3)                 # (T, b, g, 1, nc, n)
    C_s = steps_first(C_p).permute(0, 1, 2, 4, 3).unsqueeze(3)
    drive = (du_s * B_s).reshape(T, b, d, nc, n)                               # delta_t B_t u_t
    decay = log_decay.exp()
    # Level 1: local states inside every chunk (from a zero state), all chunks in parallel.
    # unbind, not decay[t]: autograd's backward of t separate slices would allocate a full-size
    # zero gradient per slice (quadratic); unbind's backward is one stack.
    s = torch.zeros_like(drive[0])
    local = []
    for decay_t, drive_t in zip(decay.unbind(0), drive.unbind(0)):
        s = decay_t * s + drive_t
        local.append(s)
    local = torch.stack(local)                                                 # (T, b, d, nc, n)
    # Decay from the chunk start to t, inclusive: exp(cumsum(<= 0)) <= 1, never overflows.
    within = log_decay.cumsum(dim=0).exp()                                     # (T, b, d, nc, n)
    # Level 2: the state entering every chunk, from the chunk-end local states and decays.
    H = torch.zeros_like(local[0, :, :, 0])
    entering = []
    for chunk_decay, chunk_local in zip(within[T - 1].unbind(2), local[T - 1].unbind(2)):
        entering.append(H)
        H = chunk_decay * H + chunk_local
    entering = torch.stack(entering, dim=2)                                    # (b, d, nc, n)
    h = local + within * entering                                              # (T, b, d, nc, n)
    y = (h.view(T, b, g, hd, nc, n) * C_s).sum(-1)                             # (T, b, g, hd, nc)
    y = y.permute(1, 2, 3, 4, 0).reshape(b, d, L)[:, :, :l]
    out = finish_output(y, uu, D, z, u.dtype)
    return (out, H.detach()) if return_last_state else out
