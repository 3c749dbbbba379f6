"""Rung 3 of the ladder: the readable loop, compiled (numba), with its own reverse-time backward.

The reference loop of :mod:`cliphaze.ssm.reference` is slow because every step is a dozen small
PyTorch calls on (b, d, n) tensors, each paying Python and dispatch overhead that dwarfs its
arithmetic. :mod:`cliphaze.ssm.fast_cpu` removes most of that overhead but still goes through
memory: every step reads and writes (b, d, n) buffers, and exp, the drive and the product with
``C`` are separate passes. Here the same loop is compiled to machine code by numba's JIT, one
``(batch, channel)`` lane at a time, with the lane's n-vector state in a buffer on the kernel's
stack that LLVM keeps in a vector register:

    a_t = exp(delta_t A),   h_t = a_t * h_{t-1} + delta_t B_t u_t,   y_t = <C_t, h_t>

so each (d, n, l) element costs one exp, two fused multiply-adds and one load of ``B_t``/``C_t``;
LLVM vectorises the loop over n. A state narrower than a vector (the shipped model's n = 8,
padded to 16 in that kernel) instead runs several channels of one B/C group side by side, their
states in one vector, forward and backward (``_numba_kernels.packed_forward_kernel`` and
``packed_backward_kernel``; off on AVX-512, where n = 8 padded to 16 fills one register
exactly). The backward (notebook 03, section "A fast scan that is still exact") runs the
adjoint scan ``g_t = a_{t+1} g_{t+1} + dy_t C_t`` backwards in time, block by block: the forward
keeps the state entering every ``block`` steps (``l / block`` states per lane)
and the backward recomputes one block's states from it. Memory is linear in ``l`` and never holds
a (b, d, n, l) tensor.

``softplus(delta + delta_bias)`` is a compiled element-wise pass too (PyTorch's CPU softplus is
not vectorised and cost more than the scan itself at n = 8), with its derivative
``sigmoid(delta + delta_bias)`` in PyTorch; ``+ D u`` is added inside the kernel at inference and
by PyTorch when gradients are needed; ``* silu(z)`` is a compiled pass at inference and PyTorch
(:mod:`cliphaze.ssm._inputs`) when gradients are needed, so autograd differentiates it. Math is float32 (float64
when an input is float64, so ``torch.autograd.gradcheck`` applies). numba is imported on the first
compiled scan, never by ``import cliphaze``; its on-disk cache (``cache=True``) makes the first
call of later processes load the machine code instead of compiling it (see README, section
"Performance", for the measured compile times).

Derived in notebook 03, section "A compiled loop".
"""

from __future__ import annotations

import functools
import importlib
import math

import torch
from torch.autograd.function import once_differentiable

from ._inputs import as_grouped, check_scan_inputs, compute_dtype, finish_output, prepare_delta

__all__ = ["selective_scan_compiled", "numba_available", "DEFAULT_BLOCK"]

# Steps between checkpoints. The backward recomputes one block at a time into a (block + 1, n)
# buffer, 4.2 KiB at n = 16 in float32 (it stays in L1); checkpoints cost n / block = 1/4 of a
# (b, d, l) tensor at n = 16.
DEFAULT_BLOCK = 64


@functools.lru_cache(maxsize=1)
def _load_kernels():
    """The numba kernels module, or None when numba (or llvmlite) cannot be imported.

    Any exception counts as "not available" (a numba built for another NumPy fails with
    ImportError or AttributeError). Cached; tests clear the cache to simulate a missing numba.
    """
    try:
        return importlib.import_module(f"{__package__}._numba_kernels")
    except Exception:  # noqa: BLE001 - see docstring
        return None


def numba_available() -> bool:
    """True when numba imports, so the ``"compiled"`` scan backend can run."""
    return _load_kernels() is not None


def _kernels():
    k = _load_kernels()
    if k is None:
        raise RuntimeError("the 'compiled' selective-scan backend needs numba, which cannot be "
                           "imported here (pip install numba, or choose backend 'fast_cpu')")
    return k


def _as_numpy(t: torch.Tensor):
    return t.detach().numpy()


def _transpose_bc(t: torch.Tensor, nn: int | None = None) -> torch.Tensor:
    """(b, g, n, l) -> contiguous (b, g, l, nn), zero-padded from n to nn (default n): the state
    numbers of one step side by side."""
    n = t.shape[-2]
    if nn is None or n == nn:
        return t.transpose(-1, -2).contiguous()
    out = t.new_zeros(t.shape[:-2] + (t.shape[-1], nn))
    out[..., :n].copy_(t.transpose(-1, -2))
    return out


def _pad_state(A: torch.Tensor, nn: int) -> torch.Tensor:
    """(d, n) -> (d, nn) with zero columns: a padded state number never moves (exp(0) * 0)."""
    return A if A.shape[1] == nn else torch.nn.functional.pad(A, (0, nn - A.shape[1]))


@functools.lru_cache(maxsize=1)
def _packing_allowed() -> bool:
    """Whether narrow states use the channel-packed kernels on this CPU: everywhere but
    AVX-512. There ``n = 8`` padded to 16 fills exactly one vector register, so padding wastes
    nothing, and a kernel that packed two channels into one vector measured 4x slower than the
    padded one on that machine (README, section "Performance")."""
    from ..hostinfo import cpu_features, vector_isa

    return vector_isa(cpu_features()[1]) != "AVX-512"


def _packed_lanes(n: int, hd: int) -> int:
    """Channels the packed kernels run side by side for a state of ``n`` numbers and ``hd``
    channels per B/C group, or 0 for the one-channel-at-a-time kernels.

    Packing applies when the padded kernel would compute zeros (``n`` not a multiple of
    ``LANES``) and this CPU is not AVX-512 (:func:`_packing_allowed`). The channel count is the
    largest power of two with at most ``PACKED_STATE_NUMBERS`` state numbers per pass that divides
    ``hd`` (8 for the shipped model's n = 8)."""
    kernels = _kernels()
    if kernels.padded_state(n) == n or not _packing_allowed():
        return 0
    lanes = 1
    while lanes * 2 * n <= kernels.PACKED_STATE_NUMBERS:
        lanes *= 2
    while lanes > 1 and hd % lanes:
        lanes //= 2
    return lanes if lanes > 1 else 0


def _forward(u, dt, A, B, C, block: int, save: bool, D=None):
    """Run the forward kernel. Returns y (b, d, l) (plus ``D u`` when D is given), the last state
    (b, d, n) and, for the backward, the checkpoints (b, d, nblocks, n) and the ``A``, ``Bt``,
    ``Ct`` (B, C laid out (b, g, l, n)) the backward reads, all at the true width ``n``.

    Narrow states (:func:`_packed_lanes`) run the channel-packed kernel; the others the
    one-channel kernel, with B, C laid out (b, g, l, nn) and A padded to (d, nn),
    nn = ``padded_state(n)``."""
    b, d, l = u.shape
    g, n = B.shape[1], B.shape[2]
    kernels = _kernels()
    nblocks = math.ceil(l / block) if save else 0
    y = u.new_empty((b, d, l))
    D = u.new_zeros(d) if D is None else D.to(u.dtype).contiguous()
    lanes = _packed_lanes(n, d // g)
    if lanes:
        last = u.new_empty((b, d, n))
        ckpt = u.new_empty((b, d, nblocks, n))
        Bt, Ct = _transpose_bc(B), _transpose_bc(C)
        kernels.packed_forward_kernel(n, lanes)(
            _as_numpy(u), _as_numpy(dt), _as_numpy(A.t().contiguous()), _as_numpy(Bt), _as_numpy(Ct),
            _as_numpy(D), d // g, block, _as_numpy(y), _as_numpy(last), _as_numpy(ckpt))
        return y, last, (ckpt, A, Bt, Ct)
    nn = kernels.padded_state(n)
    last = u.new_empty((b, d, nn))
    ckpt = u.new_empty((b, d, nblocks, nn))
    Ap, Bt, Ct = _pad_state(A, nn), _transpose_bc(B, nn), _transpose_bc(C, nn)
    kernels.forward_kernel(nn)(_as_numpy(u), _as_numpy(dt), _as_numpy(Ap), _as_numpy(Bt),
                               _as_numpy(Ct), _as_numpy(D), d // g, block, _as_numpy(y),
                               _as_numpy(last), _as_numpy(ckpt))
    if nn != n:
        last = last[..., :n].contiguous()
        if save:                      # the backward runs at the true width
            ckpt, Ap, Bt, Ct = ckpt[..., :n].contiguous(), A, _transpose_bc(B), _transpose_bc(C)
    return y, last, (ckpt, Ap, Bt, Ct)


class _SoftplusBias(torch.autograd.Function):
    """softplus(delta + bias[:, None]) with a compiled forward (PyTorch's softplus and log1p are
    not vectorised on CPU and cost more than the scan itself at n = 8); backward
    ``grad * sigmoid(delta + bias)``, the derivative of softplus."""

    @staticmethod
    def forward(ctx, delta, bias):
        out = torch.empty_like(delta)
        _kernels().softplus_bias(_as_numpy(delta), _as_numpy(bias), _as_numpy(out))
        ctx.save_for_backward(delta, bias)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        delta, bias = ctx.saved_tensors
        s = torch.sigmoid(delta + bias[:, None]).mul_(grad)
        return s, s.sum(dim=(0, 2))


def _effective_delta(delta, delta_bias, delta_softplus, dtype):
    """``softplus(delta + delta_bias)`` (compiled) or ``delta + delta_bias`` (PyTorch); (b, d, l)."""
    if not delta_softplus:
        return prepare_delta(delta, delta_bias, False, dtype).contiguous()
    d = delta.shape[1]
    bias = delta_bias.to(dtype) if delta_bias is not None else delta.new_zeros(d, dtype=dtype)
    return _SoftplusBias.apply(delta.to(dtype).contiguous(), bias.contiguous())


class _CompiledScanCore(torch.autograd.Function):
    """y = scan(u, delta, A, B, C) with the effective delta; compiled forward and backward.

    Inputs: u, dt (b, d, l), A (d, n), B, C (b, g, n, l), all contiguous, one dtype, on CPU.
    """

    @staticmethod
    def forward(ctx, u, dt, A, B, C, block):
        y, last, (ckpt, Ap, Bt, Ct) = _forward(u, dt, A, B, C, block, save=True)
        ctx.save_for_backward(u, dt, Ap, Bt, Ct, ckpt)
        ctx.block = block
        ctx.mark_non_differentiable(last)
        return y, last

    @staticmethod
    @once_differentiable
    def backward(ctx, dy, _dlast):
        u, dt, A, Bt, Ct, ckpt = ctx.saved_tensors
        b, d, l = u.shape
        kernels = _kernels()
        n = A.shape[1]
        # narrow states (8 in the shipped model) run channels side by side where the forward
        # does (_packed_lanes); otherwise widths that need no padding (16, 32, ...) get a kernel
        # compiled for them, others the run-time-width one (faster there than a padded one)
        lanes = _packed_lanes(n, d // Bt.shape[1])
        if lanes and ctx.block <= kernels.PACKED_BACKWARD_MAX_BLOCK:
            capacity = max(DEFAULT_BLOCK, 1 << (ctx.block - 1).bit_length())   # 64, 128 or 256
            kernel, A_in = kernels.packed_backward_kernel(n, lanes, capacity), A.t().contiguous()
        else:
            kernel, A_in = kernels.backward_kernel(n if kernels.padded_state(n) == n else 0), A
        dy = dy.to(u.dtype).contiguous()
        du, ddt = torch.empty_like(u), torch.empty_like(u)
        dA = torch.empty((b,) + tuple(A.shape), dtype=torch.float64)
        dBt, dCt = torch.zeros_like(Bt), torch.zeros_like(Ct)
        kernel(_as_numpy(u), _as_numpy(dt), _as_numpy(A_in), _as_numpy(Bt), _as_numpy(Ct),
               d // Bt.shape[1], ctx.block, _as_numpy(ckpt), _as_numpy(dy), _as_numpy(du),
               _as_numpy(ddt), _as_numpy(dA), _as_numpy(dBt), _as_numpy(dCt))
        return (du, ddt, dA.sum(0).to(A.dtype), dBt.transpose(-1, -2), dCt.transpose(-1, -2),
                None)


def selective_scan_compiled(u, delta, A, B, C, D=None, z=None, delta_bias=None,
                            delta_softplus=False, return_last_state=False, block=None):
    """Selective scan by a compiled loop (numba) with a reverse-time custom backward.

    Same arguments, shapes and results as :func:`cliphaze.ssm.reference.selective_scan_reference`
    (mamba-ssm's ``selective_scan_fn``):

        h_t = exp(delta_t A) * h_{t-1} + delta_t B_t u_t,   y_t = <C_t, h_t>,
        out = (y + D u) * silu(z),   delta = softplus(delta + delta_bias) if delta_softplus.

    Args:
        u: (b, d, l).
        delta: (b, d, l).
        A: (d, n), real.
        B, C: (b, n, l) or grouped (b, g, n, l) (channel i uses group ``i // (d / g)``).
        D: optional (d,).
        z: optional (b, d, l).
        delta_bias: optional (d,).
        delta_softplus: softplus on ``delta + delta_bias``.
        return_last_state: also return the final state (no gradient flows through it).
        block: steps between the states the forward keeps for the backward (default
            :data:`DEFAULT_BLOCK`). Any value gives the same result.

    Returns:
        ``out`` (b, d, l) in u's dtype, and with ``return_last_state`` also ``h_l`` (b, d, n).

    Raises:
        RuntimeError: numba cannot be imported, or the tensors are not on the CPU.

    CPU only. The first call in a process compiles the kernels (a few seconds) or loads them from
    numba's cache. Derived in notebook 03, section "A compiled loop".
    """
    shapes = check_scan_inputs(u, delta, A, B, C, D, z, delta_bias)
    if u.device.type != "cpu":
        raise RuntimeError(f"the 'compiled' selective-scan backend runs on CPU tensors only "
                           f"(got device {u.device}); use 'mamba_ssm' or 'chunked' there")
    block = DEFAULT_BLOCK if block is None else int(block)
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    _kernels()
    dtype = compute_dtype(u, delta, A, B, C, D, z, delta_bias)
    dt = _effective_delta(delta, delta_bias, delta_softplus, dtype)
    uu = u.to(dtype).contiguous()
    Ac = A.to(dtype).contiguous()
    Bg, Cg = as_grouped(B).to(dtype), as_grouped(C).to(dtype)
    block = min(block, shapes.l)
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (uu, dt, Ac, Bg, Cg))
    if needs_grad or (D is not None and D.requires_grad and torch.is_grad_enabled()):
        y, last_state = _CompiledScanCore.apply(uu, dt, Ac, Bg, Cg, block)
        out = finish_output(y, uu, D, z, u.dtype)
    else:                                       # inference: + D u inside the kernel
        y, last_state, _ = _forward(uu, dt, Ac, Bg, Cg, block, save=False, D=D)
        if z is not None:                      # y *= silu(z), compiled (y is the kernel's own)
            _kernels().silu_gate(_as_numpy(y), _as_numpy(z.to(dtype).contiguous()))
        out = finish_output(y, uu, None, None, u.dtype)
    return (out, last_state) if return_last_state else out
