"""numba kernels of the compiled scan (rung 3 of the ladder); imported lazily by ``compiled.py``.

Importing this module imports numba; :mod:`cliphaze.ssm.compiled` does so on the first compiled
scan only, so ``import cliphaze`` stays fast and works without numba. The kernels are the loop of
:mod:`cliphaze.ssm.reference`, one ``(batch, channel)`` lane at a time, with the lane's state
vector ``h`` (n numbers) kept in a buffer on the kernel's stack (so, in the forward, in vector
registers; :func:`_stack_buffer` says why) or, in the backward, in small local arrays:

    a_t = exp(delta_t A),   h_t = a_t * h_{t-1} + (delta_t u_t) B_t,   y_t = <C_t, h_t>

Layouts: ``u``, ``dt`` (b, d, l) as given; ``B``, ``C`` transposed to (b, g, l, n) so that the
numbers of one step are contiguous (for the forward, zero-padded to a multiple of :data:`LANES`
and compiled for that constant width: :func:`forward_kernel` says why). The loop over the state
is what LLVM vectorises; ``fastmath`` is
limited to ``reassoc`` (so the sum over n in ``y_t`` may be vectorised) and ``contract`` (fused
multiply-adds), and the float32 exponential below is compiled without either flag.

Derived in ``notebooks/03_selective_scan.ipynb``, section "A compiled loop".
"""

from __future__ import annotations

import functools
import math

import numba
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

_FAST = {"reassoc", "contract"}


def _jit(**options):
    """``njit(cache=True)``, or without the on-disk cache where numba finds no writable place.

    numba caches next to this file, or in the user's cache folder when the package is installed
    read-only; if neither can be written it refuses ``cache=True`` at decoration time. Then the
    kernels compile on every first call of a process instead of loading from the cache.
    """

    # error_model="numpy": IEEE division without a zero check (a check per element stops LLVM
    # from vectorising the loop).
    options.setdefault("error_model", "numpy")

    def decorate(fn):
        try:
            return njit(cache=True, **options)(fn)
        except RuntimeError:                      # "cannot cache function ...: no locator available"
            return njit(cache=False, **options)(fn)

    return decorate


# ----- float32 exponential that LLVM can vectorise ---------------------------------------------

@intrinsic
def _rounded_to_f32(typingctx, s):
    """``k`` as a float32, for ``s = x + 1.5 * 2**23`` holding the integer ``k = round(x)``: the
    bit pattern of ``s`` minus that of ``1.5 * 2**23``, converted in 32-bit integers. (In numba
    arithmetic ``int32 - int32`` is an int64, whose conversion to float takes eight vector
    instructions instead of one; exact either way.)"""
    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        k = builder.sub(builder.bitcast(args[0], i32), ir.Constant(i32, int(_ROUND_BITS)))
        return builder.sitofp(k, ir.FloatType())

    return types.float32(types.float32), codegen


@intrinsic
def _rounded_pow2(typingctx, s):
    """``2**k`` as a float32, ``k`` held in ``s`` as for :func:`_rounded_to_f32`: the exponent
    field ``(k + 127) << 23``, in 32-bit integers."""
    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        k = builder.add(builder.bitcast(args[0], i32), ir.Constant(i32, 127 - int(_ROUND_BITS)))
        return builder.bitcast(builder.shl(k, ir.Constant(i32, 23)), ir.FloatType())

    return types.float32(types.float32), codegen


@intrinsic
def _stack_buffer(typingctx, n, dtype):
    """A pointer to ``n`` numbers of ``dtype`` on the kernel's stack (``n`` a compile-time
    constant); wrap it with ``numba.carray(ptr, n)``.

    Why: an array from ``np.zeros`` lives on the heap, and LLVM must assume it may overlap the
    argument arrays the loop stores into, so a state kept there is stored and reloaded at every
    step (and the loop is guarded by run-time overlap checks). A stack buffer of constant size
    cannot overlap anything: once the loop over its ``n`` numbers is unrolled, LLVM keeps them in
    vector registers for the whole scan.
    """
    if not isinstance(n, types.IntegerLiteral):
        return None
    size = n.literal_value
    elem = dtype.dtype

    def codegen(context, builder, signature, args):
        return cgutils.alloca_once(builder, context.get_value_type(elem), size=size)

    return types.CPointer(elem)(n, dtype), codegen


@intrinsic
def _fma32(typingctx, a, b, c):
    """a * b + c rounded once (llvm.fma): immune to the kernels' ``reassoc`` flag."""
    def codegen(context, builder, signature, args):
        return builder.fma(*args)

    return types.float32(types.float32, types.float32, types.float32), codegen


_ROUND = np.float32(12582912.0)                 # 1.5 * 2**23: x + _ROUND rounds x to an integer
_ROUND_BITS = np.int32(0x4B400000)               # bit pattern of _ROUND
_LOG2E = np.float32(1.4426950408889634)
_NEG_LN2_HI = np.float32(-0.693359375)           # -ln 2 in two parts (Cody and Waite)
_NEG_LN2_LO = np.float32(2.12194440e-4)
_EXP_POLY = tuple(np.float32(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3,
                                          4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1))


def _expf(z):
    """exp(z); float32 arguments use the vectorisable version below, float64 ones libm's exp.

    float32 (Cephes ``expf``): z = k ln2 + r with k = round(z / ln2) and |r| <= ln2 / 2,
    exp(r) = 1 + r + r^2 P(r) with a degree-5 P, and 2^k built from its bit pattern. Every step
    is an exact integer operation or a fused multiply-add, so the kernels' ``reassoc`` flag cannot
    reorder it. Measured maximum relative error 1.2e-7 (about 1 ulp, like libm's ``expf``) against
    float64 exp. Arguments are clamped to [-87, 88]: results below exp(-87) = 1.6e-38 saturate
    there instead of going subnormal (the state they multiply is then negligible) and results
    above exp(88) saturate instead of overflowing (a positive ``delta A`` that large means an
    unstable system; Mamba keeps A < 0).
    """
    return math.exp(z)


@overload(_expf, inline="always")
def _expf_impl(z):
    if isinstance(z, types.Float) and z.bitwidth == 32:
        def impl(z):
            z = min(max(z, np.float32(-87.0)), np.float32(88.0))
            s = z * _LOG2E + _ROUND                     # holds k = round(z / ln2)
            k = _rounded_to_f32(s)
            r = _fma32(k, _NEG_LN2_HI, z)
            r = _fma32(k, _NEG_LN2_LO, r)
            p = _fma32(_EXP_POLY[0], r, _EXP_POLY[1])
            p = _fma32(p, r, _EXP_POLY[2])
            p = _fma32(p, r, _EXP_POLY[3])
            p = _fma32(p, r, _EXP_POLY[4])
            p = _fma32(p, r, _EXP_POLY[5])
            p = _fma32(p, r * r, r) + np.float32(1.0)
            return p * _rounded_pow2(s)
        return impl
    return lambda z: math.exp(z)


_SQRT2 = np.float32(1.4142135623730951)
_LOG_POLY = tuple(np.float32(c) for c in (7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1,
                                          -1.2420140846e-1, 1.4249322787e-1, -1.6668057665e-1,
                                          2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1))


def _log1pf(y):
    """log(1 + y) for 0 <= y <= 1; float32 vectorisable (Cephes ``logf`` plus the rounding
    correction ``(y - (u - 1)) / u`` of ``u = 1 + y``), float64 libm's log1p."""
    return math.log1p(y)


@overload(_log1pf, inline="always")
def _log1pf_impl(y):
    if isinstance(y, types.Float) and y.bitwidth == 32:
        def impl(y):
            u = np.float32(1.0) + y
            corr = (y - (u - np.float32(1.0))) / u              # u's rounding error, / u
            e = np.float32(u > _SQRT2)                           # u = 2^e (1 + f)
            f = u * (np.float32(1.0) - np.float32(0.5) * e) - np.float32(1.0)   # exact
            z = f * f
            p = _fma32(_LOG_POLY[0], f, _LOG_POLY[1])
            p = _fma32(p, f, _LOG_POLY[2])
            p = _fma32(p, f, _LOG_POLY[3])
            p = _fma32(p, f, _LOG_POLY[4])
            p = _fma32(p, f, _LOG_POLY[5])
            p = _fma32(p, f, _LOG_POLY[6])
            p = _fma32(p, f, _LOG_POLY[7])
            p = _fma32(p, f, _LOG_POLY[8])
            r = _fma32(p * f, z, _fma32(e, -_NEG_LN2_LO, np.float32(-0.5) * z))
            return _fma32(e, -_NEG_LN2_HI, f + r) + corr
        return impl
    return lambda y: math.log1p(y)


@_jit()
def softplus_bias(delta, bias, out):
    """``out = softplus(delta + bias[:, None])`` for (b, d, l) ``delta`` and (d,) ``bias``, as
    ``max(x, 0) + log1p(exp(-|x|))`` (the same function as PyTorch's softplus, to rounding).
    Compiled without fastmath, so the rounding corrections of exp and log1p stay exact."""
    nb, nd, nl = delta.shape
    zero = np.zeros(1, delta.dtype)[0]
    for b in range(nb):
        for c in range(nd):
            bc = bias[c]
            row = delta[b, c]
            o = out[b, c]
            for t in range(nl):
                x = row[t] + bc
                o[t] = max(x, zero) + _log1pf(_expf(-abs(x)))


@_jit()
def silu_gate(y, z):
    """``y *= silu(z) = z / (1 + exp(-z))`` in place, for (b, d, l) ``y`` and ``z``: the output
    gate of the inference path, one vectorised pass (PyTorch's CPU ``y * silu(z)`` took five times
    longer at the model's sizes). Compiled without fastmath."""
    nb, nd, nl = y.shape
    one = np.ones(1, y.dtype)[0]
    for b in range(nb):
        for c in range(nd):
            yr = y[b, c]
            zr = z[b, c]
            for t in range(nl):
                zt = zr[t]
                yr[t] = yr[t] * (zt / (one + _expf(-zt)))


# ----- forward, compiled per padded state width -------------------------------------------------

LANES = 16
"""State numbers the forward kernel processes side by side: the state is padded with zeros to a
multiple of this (16 float32 fill one 512-bit vector register, two 256-bit ones)."""


def padded_state(n: int) -> int:
    """The state width the forward kernel runs for a d_state of ``n``: ``n`` rounded up to
    :data:`LANES`."""
    return -(-n // LANES) * LANES


@functools.cache
def forward_kernel(nn: int):
    """The forward scan compiled for a state of exactly ``nn`` numbers (a multiple of LANES).

    Why a width per compilation: the loop over the state is the one LLVM vectorises, and it
    does so well only when it knows the trip count. With ``n`` read at run time it plans for
    wide vectors unrolled (four 16-wide ones on AVX-512), so at ``n = 8`` or ``16`` the vector
    body never runs and the state update is scalar; at ``n = 32`` it does run. With ``nn`` a
    constant the whole update of one step is a few vector instructions. Callers pad ``A``,
    ``B``, ``C`` with zeros up to ``nn``: a padded state number starts at 0 and stays 0
    (``exp(0) * 0 + x * 0``) and adds ``0 * 0`` to ``y``, so the padding changes no result.
    numba caches each width separately on disk. :func:`backward_kernel` is compiled the same way
    for widths that need no padding, and for a run-time width otherwise.

    The state lives in a stack buffer (:func:`_stack_buffer`), not in an ``np.zeros`` array: on
    the heap LLVM had to assume the state might overlap ``y`` or ``B``, so it stored and reloaded
    it at every step (a store-to-load round trip on the recurrence's critical path) behind
    run-time overlap checks. On the stack the whole state stays in one vector register; with the
    32-bit exponent arithmetic of :func:`_expf` this made the kernel 2.1x faster at n = 8 and 16
    (bit-identical results).
    """
    if nn % LANES:
        raise ValueError(f"state width {nn} is not a multiple of {LANES}")

    @_jit(fastmath=_FAST)
    def scan_forward(u, dt, A, Bt, Ct, D, hd, block, y, last, ckpt):
        """Forward scan of every lane; writes ``y = <C_t, h_t> + D u_t`` (b, d, l), ``last``
        (b, d, nn) and, when ``ckpt`` (b, d, nblocks, nn) has nblocks > 0, the state entering
        every ``block`` steps. ``A`` is (d, nn), ``Bt``/``Ct`` (b, g, l, nn); ``D`` (d,) is all
        zeros when the caller adds ``D u`` itself."""
        nb, nd, nl = u.shape
        save = ckpt.shape[2] > 0
        h = numba.carray(_stack_buffer(nn, u.dtype), nn)     # the state, in registers
        zero = np.zeros(1, u.dtype)[0]
        for b in range(nb):
            for c in range(nd):
                gi = c // hd
                a = A[c]
                dc = D[c]
                for j in range(nn):
                    h[j] = zero
                for t0 in range(0, nl, block):
                    if save:
                        hk = ckpt[b, c, t0 // block]
                        for j in range(nn):
                            hk[j] = h[j]
                    for t in range(t0, min(nl, t0 + block)):
                        dtt = dt[b, c, t]
                        x = dtt * u[b, c, t]
                        bv = Bt[b, gi, t]
                        cv = Ct[b, gi, t]
                        acc = zero
                        for j in range(nn):
                            hj = _expf(dtt * a[j]) * h[j] + x * bv[j]
                            h[j] = hj
                            acc += cv[j] * hj
                        y[b, c, t] = acc + dc * u[b, c, t]
                hl = last[b, c]
                for j in range(nn):
                    hl[j] = h[j]

    return scan_forward


# ----- channels packed side by side, for narrow states (forward and backward) --------------------

@njit(inline="always", error_model="numpy")
def _spread_channels(dt, u, b, c0, t, lanes, n, dts, xs):
    """``dts[j * lanes + w] = delta_t`` and ``xs[j * lanes + w] = delta_t u_t`` of channel
    ``c0 + w``, for every state index ``j``: one step's per-channel numbers laid out like the
    packed state (inlined into the packed kernels)."""
    for w in range(lanes):
        dtt = dt[b, c0 + w, t]
        x = dtt * u[b, c0 + w, t]
        for j in range(n):
            dts[j * lanes + w] = dtt
            xs[j * lanes + w] = x


@njit(inline="always", error_model="numpy")
def _spread_state(row, lanes, n, out):
    """``out[j * lanes + w] = row[j]`` for every channel ``w`` of the pack: one step's ``B_t`` or
    ``C_t`` laid out like the packed state (inlined into the packed kernels)."""
    for j in range(n):
        v = row[j]
        for w in range(lanes):
            out[j * lanes + w] = v


PACKED_STATE_NUMBERS = 64
"""Numbers of state the packed kernels keep per pass: ``n`` state numbers times the
channels it packs (64 float32 fill eight 256-bit registers)."""


@functools.cache
def packed_forward_kernel(n: int, lanes: int):
    """The forward scan for a narrow state (``n`` below :data:`LANES`), ``lanes`` channels of
    one B/C group at a time, their ``n * lanes`` state numbers side by side.

    Why: :func:`forward_kernel` vectorises over the state of one channel, so ``n = 8`` is padded
    to 16 and half of every vector operation computes zeros; on AVX2 LLVM did not vectorise an
    unpadded width of 8 well either. Here the vector runs over ``(state number, channel)`` pairs
    of ``lanes`` channels that share ``B_t`` and ``C_t``: per step, ``delta_t`` and
    ``delta_t u_t`` of each channel and ``B_t``, ``C_t`` of each state number are broadcast into
    stack buffers laid out like the state, so the update of all ``n * lanes`` numbers is one flat
    loop of the same form as :func:`forward_kernel`'s (which LLVM vectorises), and ``y`` of each
    channel is the sum of its ``n`` products afterwards. Same arithmetic per number; only the
    order of the sum in ``y_t`` differs. Measured on an AVX2 machine (Zen 1) at n = 8, 4 x 32
    channels, L = 128^2: 1.8x faster than the padded kernel (2.40 against 4.40 ns per element).
    At n = 16 the padded kernel needs no padding and stays faster (``lanes`` 2-8 measured 0.5-0.8x),
    and at 128 state numbers per pass (n = 16, 8 channels) LLVM spilled the state: hence
    :data:`PACKED_STATE_NUMBERS`.

    Layouts as :func:`forward_kernel`, except ``AT`` (n, d) (A transposed, so the numbers of one
    state index are contiguous across channels) and no padding: ``Bt``, ``Ct`` (b, g, l, n),
    ``last`` (b, d, n), ``ckpt`` (b, d, nblocks, n). The caller guarantees that ``lanes`` divides
    the channels per group ``hd``.
    """
    width = n * lanes

    @_jit(fastmath=_FAST)
    def scan_forward_packed(u, dt, AT, Bt, Ct, D, hd, block, y, last, ckpt):
        nb, nd, nl = u.shape
        save = ckpt.shape[2] > 0
        h = numba.carray(_stack_buffer(width, u.dtype), width)       # state, index j * lanes + w
        a = numba.carray(_stack_buffer(width, u.dtype), width)       # A of the same numbers
        dts = numba.carray(_stack_buffer(width, u.dtype), width)     # delta_t of channel w
        xs = numba.carray(_stack_buffer(width, u.dtype), width)      # delta_t u_t of channel w
        bs = numba.carray(_stack_buffer(width, u.dtype), width)      # B_t[j]
        cs = numba.carray(_stack_buffer(width, u.dtype), width)      # C_t[j]
        ps = numba.carray(_stack_buffer(width, u.dtype), width)      # C_t[j] h_t[j, w]
        ys = numba.carray(_stack_buffer(lanes, u.dtype), lanes)      # y_t of channel w
        zero = np.zeros(1, u.dtype)[0]
        for b in range(nb):
            for c0 in range(0, nd, lanes):
                gi = c0 // hd
                for j in range(n):
                    for w in range(lanes):
                        h[j * lanes + w] = zero
                        a[j * lanes + w] = AT[j, c0 + w]
                for t0 in range(0, nl, block):
                    if save:
                        for w in range(lanes):
                            for j in range(n):
                                ckpt[b, c0 + w, t0 // block, j] = h[j * lanes + w]
                    for t in range(t0, min(nl, t0 + block)):
                        _spread_channels(dt, u, b, c0, t, lanes, n, dts, xs)
                        _spread_state(Bt[b, gi, t], lanes, n, bs)
                        _spread_state(Ct[b, gi, t], lanes, n, cs)
                        for k in range(width):
                            hk = _expf(dts[k] * a[k]) * h[k] + xs[k] * bs[k]
                            h[k] = hk
                            ps[k] = cs[k] * hk
                        for w in range(lanes):                     # y_t: sum over j, vector over w
                            ys[w] = D[c0 + w] * u[b, c0 + w, t]
                        for j in range(n):
                            for w in range(lanes):
                                ys[w] += ps[j * lanes + w]
                        for w in range(lanes):
                            y[b, c0 + w, t] = ys[w]
                for w in range(lanes):
                    for j in range(n):
                        last[b, c0 + w, j] = h[j * lanes + w]

    return scan_forward_packed


# ----- backward, compiled per state width or for a run-time width ------------------------------

@functools.cache
def backward_kernel(nn: int):
    """The reverse-time adjoint scan, compiled for a state of exactly ``nn`` numbers (a multiple
    of :data:`LANES`), or for any width read at run time when ``nn`` is 0.

    The caller picks ``nn = n`` when the model's state width needs no padding (16, 32, ...) and
    0 otherwise: padded to 16, ``n = 8`` did twice the arithmetic and measured up to 20% slower
    over a whole forward and backward than the run-time width.

    For each block the states are recomputed from its checkpoint (the same operations as the
    forward), then, with ``g_t = dL/dh_t``, backwards in time:

        g_t = a_{t+1} g_{t+1} + dy_t C_t
        du_t = delta_t <g_t, B_t>,   ddelta_t = <g_t h_{t-1} a_t, A> + u_t <g_t, B_t>
        dA += g_t h_{t-1} a_t delta_t,   dB_t += g_t delta_t u_t,   dC_t += dy_t h_t

    Why the loops are split this way: LLVM vectorises a fully unrolled loop over the state only
    if it can prove that the stores of one state number do not change the loads of the next.
    It can for arrays allocated inside the kernel, not for two arrays passed in (they might
    overlap). So the step loop writes only the kernel's own buffers (``g`` of every step of the
    block, the carry, the ``dA`` sums), and ``dB``, ``dC`` are added afterwards, one argument
    array per loop (1.3x faster than one fused loop at ``nn = 16``). ``dA`` is (b, d, width)
    float64 (one row per batch item, summed by the caller); ``dBt`` and ``dCt`` (b, g, l, width)
    must be zero on entry (channels of a group add into them).

    Loop order: blocks outer, the channels of one B/C group inner (each channel's carry and
    ``dA`` sums kept in a row of a small per-group buffer). The block's rows of ``B``, ``C``,
    ``dB`` and ``dC`` then stay in cache while every channel of the group reads and adds into
    them; channel by channel over the whole sequence they were streamed from memory once per
    channel (at L = 128^2 a group's four (l, n) arrays exceed a 2 MB L2). Same sums in the same
    order, so the results are bit-identical; measured 1.37x faster at (4x32 channels, n = 8,
    L = 128^2) and 1.1x at (4x256, n = 16).
    """
    if nn % LANES:
        raise ValueError(f"state width {nn} is not a multiple of {LANES}")

    @_jit(fastmath=_FAST)
    def scan_backward(u, dt, A, Bt, Ct, hd, block, ckpt, dy, du, ddt, dA, dBt, dCt):
        nb, nd, nl = u.shape
        ng = Bt.shape[1]
        nblocks = ckpt.shape[2]
        width = nn if nn else A.shape[1]
        hs = np.zeros((block + 1, width), u.dtype)   # states h_{t0-1} .. h_{t1-1} of one block
        decays = np.zeros((block, width), u.dtype)   # a_t of the block
        gs = np.zeros((block, width), u.dtype)       # g_t of the block
        carries = np.zeros((hd, width), u.dtype)     # a_{t+1} g_{t+1}, per channel of the group
        acc_as = np.zeros((hd, width), np.float64)   # dA sums, per channel of the group
        zero = np.zeros(1, u.dtype)[0]
        for b in range(nb):
            for gi in range(ng):
                for ci in range(hd):
                    carry = carries[ci]
                    acc_a = acc_as[ci]
                    for j in range(width):
                        carry[j] = zero
                        acc_a[j] = 0.0
                # Blocks outer, the group's channels inner: the block's rows of B, C, dB, dC
                # stay in cache while every channel of the group reads and adds into them.
                for k in range(nblocks - 1, -1, -1):
                    t0 = k * block
                    m = min(nl, t0 + block) - t0
                    for ci in range(hd):
                        c = gi * hd + ci
                        a = A[c]
                        carry = carries[ci]
                        acc_a = acc_as[ci]
                        hk = ckpt[b, c, k]
                        h0 = hs[0]
                        for j in range(width):
                            h0[j] = hk[j]
                        for i in range(m):                          # recompute the block
                            t = t0 + i
                            dtt = dt[b, c, t]
                            x = dtt * u[b, c, t]
                            bv = Bt[b, gi, t]
                            hp = hs[i]
                            hn = hs[i + 1]
                            ai = decays[i]
                            for j in range(width):
                                e = _expf(dtt * a[j])
                                ai[j] = e
                                hn[j] = e * hp[j] + x * bv[j]
                        for i in range(m - 1, -1, -1):              # adjoint, backwards in time
                            t = t0 + i
                            dtt = dt[b, c, t]
                            ut = u[b, c, t]
                            dyt = dy[b, c, t]
                            bv = Bt[b, gi, t]
                            cv = Ct[b, gi, t]
                            hp = hs[i]
                            ai = decays[i]
                            g_ = gs[i]
                            gb = zero
                            pa = zero
                            for j in range(width):
                                g = carry[j] + dyt * cv[j]
                                g_[j] = g
                                gb += g * bv[j]
                                p = g * hp[j] * ai[j]
                                pa += p * a[j]
                                acc_a[j] += p * dtt
                                carry[j] = ai[j] * g
                            du[b, c, t] = dtt * gb
                            ddt[b, c, t] = pa + ut * gb
                        for i in range(m):                          # dB_t += g_t delta_t u_t
                            t = t0 + i
                            x = dt[b, c, t] * u[b, c, t]
                            dbv = dBt[b, gi, t]
                            g_ = gs[i]
                            for j in range(width):
                                dbv[j] += g_[j] * x
                        for i in range(m):                          # dC_t += dy_t h_t
                            t = t0 + i
                            dyt = dy[b, c, t]
                            dcv = dCt[b, gi, t]
                            hn = hs[i + 1]
                            for j in range(width):
                                dcv[j] += dyt * hn[j]
                for ci in range(hd):
                    acc_a = acc_as[ci]
                    for j in range(width):
                        dA[b, gi * hd + ci, j] = acc_a[j]

    return scan_backward


PACKED_BACKWARD_MAX_BLOCK = 256
"""Longest block :func:`packed_backward_kernel` runs: its block buffers live on the stack,
3 x 4 x capacity x 64 bytes (192 KiB at 256); longer blocks use :func:`backward_kernel`."""


@functools.cache
def packed_backward_kernel(n: int, lanes: int, capacity: int):
    """The backward of :func:`backward_kernel` with ``lanes`` channels of one B/C group side by
    side, as in :func:`packed_forward_kernel` (same equations, same checkpoints ``ckpt``
    (b, d, nblocks, n)), compiled for blocks of at most ``capacity`` steps (the caller passes a
    power of two from 64 to :data:`PACKED_BACKWARD_MAX_BLOCK`, so few widths are compiled).

    The block's states, decays and adjoints, the carry and the ``dA`` sums are stack buffers
    (:func:`_stack_buffer`), hence their size as a constant: with them in arrays from
    ``np.zeros`` (as in :func:`backward_kernel`) LLVM left most of the packed update scalar and the
    kernel was no faster than the one-channel backward.

    Per step, each channel's ``delta_t``, ``delta_t u_t`` and ``dy_t`` and each state index's
    ``B_t``, ``C_t`` are broadcast into stack buffers laid out like the ``n * lanes`` state numbers;
    the recomputation and the adjoint update then run as flat loops over those numbers, and the
    per-channel sums (``<g_t, B_t>``, ``<g_t h_{t-1} a_t, A>``) and per-state-index sums (``dB_t``,
    ``dC_t``, over the channels of the pack) are taken afterwards. Blocks outer and the packs of a
    group inner, for the cache reasons of :func:`backward_kernel`. ``dA`` is (b, d, n) float64;
    ``dBt``, ``dCt`` (b, g, l, n) must be zero on entry.
    """
    width = n * lanes
    hs_size = (capacity + 1) * width
    blk_size = capacity * width

    @_jit(fastmath=_FAST)
    def scan_backward_packed(u, dt, AT, Bt, Ct, hd, block, ckpt, dy, du, ddt, dA, dBt, dCt):
        nb, nd, nl = u.shape
        ng = Bt.shape[1]
        nblocks = ckpt.shape[2]
        npacks = hd // lanes
        hs = numba.carray(_stack_buffer(hs_size, u.dtype), (capacity + 1, width))  # h_{t0-1} .. h_{t1-1}
        decays = numba.carray(_stack_buffer(blk_size, u.dtype), (capacity, width))  # a_t
        gs = numba.carray(_stack_buffer(blk_size, u.dtype), (capacity, width))   # g_t
        carry = numba.carray(_stack_buffer(width, u.dtype), width)
        acc_a = numba.carray(_stack_buffer(width, np.float64), width)
        carries = np.zeros((npacks, width), u.dtype)      # a_{t+1} g_{t+1}, per pack of the group
        acc_as = np.zeros((npacks, width), np.float64)    # dA sums, per pack of the group
        a = numba.carray(_stack_buffer(width, u.dtype), width)
        dts = numba.carray(_stack_buffer(width, u.dtype), width)
        xs = numba.carray(_stack_buffer(width, u.dtype), width)
        dys = numba.carray(_stack_buffer(width, u.dtype), width)
        bs = numba.carray(_stack_buffer(width, u.dtype), width)
        cs = numba.carray(_stack_buffer(width, u.dtype), width)
        gbs = numba.carray(_stack_buffer(width, u.dtype), width)    # g B, summed over j per channel
        pas = numba.carray(_stack_buffer(width, u.dtype), width)    # g h_{t-1} a_t A, likewise
        gbw = numba.carray(_stack_buffer(lanes, u.dtype), lanes)
        paw = numba.carray(_stack_buffer(lanes, u.dtype), lanes)
        zero = np.zeros(1, u.dtype)[0]
        for b in range(nb):
            for gi in range(ng):
                for q in range(npacks):
                    for k in range(width):
                        carries[q, k] = zero
                        acc_as[q, k] = 0.0
                for kb in range(nblocks - 1, -1, -1):
                    t0 = kb * block
                    m = min(nl, t0 + block) - t0
                    for q in range(npacks):
                        c0 = gi * hd + q * lanes
                        for k in range(width):
                            carry[k] = carries[q, k]
                            acc_a[k] = acc_as[q, k]
                        for j in range(n):
                            for w in range(lanes):
                                a[j * lanes + w] = AT[j, c0 + w]
                                hs[0, j * lanes + w] = ckpt[b, c0 + w, kb, j]
                        for i in range(m):                          # recompute the block
                            t = t0 + i
                            _spread_channels(dt, u, b, c0, t, lanes, n, dts, xs)
                            _spread_state(Bt[b, gi, t], lanes, n, bs)
                            hp = hs[i]
                            hn = hs[i + 1]
                            ai = decays[i]
                            for k in range(width):
                                e = _expf(dts[k] * a[k])
                                ai[k] = e
                                hn[k] = e * hp[k] + xs[k] * bs[k]
                        for i in range(m - 1, -1, -1):              # adjoint, backwards in time
                            t = t0 + i
                            for w in range(lanes):
                                dtt = dt[b, c0 + w, t]
                                dyt = dy[b, c0 + w, t]
                                for j in range(n):
                                    dts[j * lanes + w] = dtt
                                    dys[j * lanes + w] = dyt
                            _spread_state(Bt[b, gi, t], lanes, n, bs)
                            _spread_state(Ct[b, gi, t], lanes, n, cs)
                            hp = hs[i]
                            ai = decays[i]
                            g_ = gs[i]
                            for k in range(width):
                                g = carry[k] + dys[k] * cs[k]
                                g_[k] = g
                                gbs[k] = g * bs[k]
                                p = g * hp[k] * ai[k]
                                pas[k] = p * a[k]
                                acc_a[k] += p * dts[k]
                                carry[k] = ai[k] * g
                            for w in range(lanes):                 # sums over j, vector over w
                                gbw[w] = zero
                                paw[w] = zero
                            for j in range(n):
                                for w in range(lanes):
                                    gbw[w] += gbs[j * lanes + w]
                                    paw[w] += pas[j * lanes + w]
                            for w in range(lanes):
                                dtt = dt[b, c0 + w, t]
                                du[b, c0 + w, t] = dtt * gbw[w]
                                ddt[b, c0 + w, t] = paw[w] + u[b, c0 + w, t] * gbw[w]
                        for k in range(width):
                            carries[q, k] = carry[k]
                            acc_as[q, k] = acc_a[k]
                        for i in range(m):                          # dB_t += sum_w g_t delta_t u_t
                            t = t0 + i
                            for w in range(lanes):
                                x = dt[b, c0 + w, t] * u[b, c0 + w, t]
                                for j in range(n):
                                    xs[j * lanes + w] = x
                            g_ = gs[i]
                            dbv = dBt[b, gi, t]
                            for j in range(n):
                                s = zero
                                for w in range(lanes):
                                    s += g_[j * lanes + w] * xs[j * lanes + w]
                                dbv[j] += s
                        for i in range(m):                          # dC_t += sum_w dy_t h_t
                            t = t0 + i
                            hn = hs[i + 1]
                            dcv = dCt[b, gi, t]
                            for j in range(n):
                                s = zero
                                for w in range(lanes):
                                    s += dy[b, c0 + w, t] * hn[j * lanes + w]
                                dcv[j] += s
                for q in range(npacks):
                    for j in range(n):
                        for w in range(lanes):
                            dA[b, gi * hd + q * lanes + w, j] = acc_as[q, j * lanes + w]

    return scan_backward_packed


@_jit()
def exp_into(z, out):
    """``out[i] = exp(z[i])`` with the kernels' exponential (for tests and the lesson)."""
    for i in range(z.shape[0]):
        out[i] = _expf(z[i])
