"""Checks of lesson 03 (the selective scan): ``check("03.K", answer)``.

- 03.1: exact zero-order-hold discretisation of a scalar system (checked against a matrix exponential);
- 03.2: the selective-scan loop with skip ``D`` and gate ``z``, against the library's reference loop;
- 03.3: a chunked scan that does not overflow where dividing by cumulative decays does;
- 03.4: cross-scan with a fifth direction, and a merge that is its adjoint.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cliphaze.exercises import exercise


@exercise("03.1", "exact ZOH of h' = A h + B x: Abar = exp(delta A), Bbar = (exp(delta A) - 1) / A * B")
def _zoh(answer, **context):
    if not callable(answer):
        return False, "pass your function zoh(delta, A, B) -> (Abar, Bbar) itself"
    cases = [(0.01, -1.0, 1.0), (0.05, -16.0, 0.7), (0.15, -16.0, 1.0), (1.0, -0.5, -2.0)]
    for delta, a, b in cases:
        # ZOH solved independently: exp(delta [[A, B], [0, 0]]) = [[Abar, Bbar], [0, 1]]
        M = torch.tensor([[a, b], [0.0, 0.0]], dtype=torch.float64) * delta
        E = torch.linalg.matrix_exp(M)
        ea, eb = E[0, 0].item(), E[0, 1].item()
        got = answer(torch.tensor(delta, dtype=torch.float64), torch.tensor(a, dtype=torch.float64),
                     torch.tensor(b, dtype=torch.float64))
        ga, gb = (float(v) for v in got)
        if abs(ga - ea) > 1e-9 * max(1, abs(ea)):
            hint = ": that is Euler's 1 + delta A" if abs(ga - (1 + delta * a)) < 1e-9 else ""
            return False, f"delta = {delta}, A = {a}: your Abar {ga:.6f}, exact exp(delta A) = {ea:.6f}{hint}"
        if abs(gb - eb) > 1e-9 * max(1, abs(eb)):
            hint = ""
            if abs(gb - delta * b) < 1e-9:
                hint = (": that is Mamba's Euler input factor delta B; the exact one integrates exp(s A) B over "
                        "the step")
            return False, f"delta = {delta}, A = {a}, B = {b}: your Bbar {gb:.6f}, exact {eb:.6f}{hint}"
    return True, "Abar and Bbar equal the matrix exponential of delta [[A, B], [0, 0]] for delta |A| from 0.01 to 2.4"


@exercise("03.2", "the selective-scan loop out = (<C_t, h_t> + D u_t) silu(z_t), against selective_scan_reference")
def _loop(answer, **context):
    from cliphaze.ssm import selective_scan_reference

    if not callable(answer):
        return False, "pass your function scan(u, delta, A, B, C, D, z) itself"
    g = torch.Generator().manual_seed(0)
    b, d, l, n = 2, 5, 40, 4

    def r(*s):
        return torch.randn(*s, generator=g, dtype=torch.float64)

    u, B, C, D, z = r(b, d, l), r(b, n, l), r(b, n, l), r(d), r(b, d, l)
    delta = F.softplus(r(b, d, l) - 1)
    A = -torch.exp(0.5 * r(d, n))
    expected = selective_scan_reference(u, delta, A, B, C, D, z)
    got = answer(u.clone(), delta.clone(), A.clone(), B.clone(), C.clone(), D.clone(), z.clone())
    if not isinstance(got, torch.Tensor) or tuple(got.shape) != (b, d, l):
        return False, f"return a (b, d, l) = {(b, d, l)} tensor, got {getattr(got, 'shape', type(got).__name__)}"
    err = (got.double() - expected).abs().max().item()
    if err < 1e-10:
        return True, f"equals selective_scan_reference in float64 (max error {err:.1e}, b={b}, d={d}, l={l}, n={n})"
    hint = ""
    y0 = selective_scan_reference(u, delta, A, B, C)
    if (got.double() - y0 * F.silu(z)).abs().max().item() < 1e-10:
        hint = ": the skip term D u is missing (it is added before the gate)"
    elif (got.double() - (y0 + D[:, None] * u)).abs().max().item() < 1e-10:
        hint = ": the gate silu(z) is missing"
    elif (got.double() - (y0 * F.silu(z) + D[:, None] * u)).abs().max().item() < 1e-10:
        hint = ": D u must be added before multiplying by silu(z)"
    first = (got.double() - expected).abs().amax(dim=(0, 1)).gt(1e-10).nonzero()
    at = f" (first wrong step t = {int(first[0])})" if len(first) else ""
    return False, f"max |yours - reference| = {err:.2e}{at}{hint}"


def _overflow_case():
    g = torch.Generator().manual_seed(5)
    dd, T, l = 4, 64, 256
    u = torch.randn(1, dd, l, generator=g)
    B = torch.randn(1, 16, l, generator=g)
    C = torch.randn(1, 16, l, generator=g)
    A = -torch.arange(1, 17, dtype=torch.float32).repeat(dd, 1)
    delta = torch.full((1, dd, l), 0.1)
    return u, delta, A, B, C, T


@exercise("03.3", "a float32 chunked scan chunk_scan(u, delta, A, B, C, T) that does not overflow at delta|A| T = 102")
def _chunked(answer, **context):
    from cliphaze.ssm import selective_scan_reference

    if not callable(answer):
        return False, "pass your function chunk_scan(u, delta, A, B, C, T) itself"
    u, delta, A, B, C, T = _overflow_case()
    expected = selective_scan_reference(*(t.double() for t in (u, delta, A, B, C)))
    got = answer(u.clone(), delta.clone(), A.clone(), B.clone(), C.clone(), T)
    if not isinstance(got, torch.Tensor) or tuple(got.shape) != tuple(u.shape):
        return False, f"return a (b, d, l) = {tuple(u.shape)} tensor, got {getattr(got, 'shape', type(got).__name__)}"
    if got.dtype != torch.float32:
        return False, f"compute in float32 (the point is float32's range); your output is {got.dtype}"
    bad = ~torch.isfinite(got)
    if bad.any():
        first = int(bad.any(1)[0].nonzero()[0])
        return False, (f"{100 * bad.float().mean().item():.1f}% of the outputs are inf or NaN, the first at step {first} "
                       f"(step {first % T} of its chunk): exp(-cumsum(delta A)) passes float32's 3.4e38 ~ e^88.7; "
                       f"multiply decays (each <= 1) instead of dividing by their products")
    scale = expected.abs().max().item()
    err = (got.double() - expected).abs().max().item()
    if err < 1e-5 * scale + 1e-5:
        return True, f"finite and equal to the float64 loop to {err:.1e} (outputs up to {scale:.1f}), chunks of {T}"
    return False, f"finite, but max |yours - float64 loop| = {err:.2e} for outputs up to {scale:.1f}"


@exercise("03.4", "cross-scan with a fifth order (b, 5, d, l) and a merge that is its adjoint")
def _five(answer, **context):
    from cliphaze.ssm import cross_scan

    try:
        scan5, merge5 = answer
    except (TypeError, ValueError):
        return False, "pass the pair (scan5, merge5): scan5(x) -> (b, 5, d, l), merge5(ys, h, w) -> (b, d, h, w)"
    g = torch.Generator().manual_seed(4)
    for h, w in [(4, 6), (7, 5), (1, 9), (5, 5)]:
        x = torch.randn(2, 3, h, w, generator=g, dtype=torch.float64)
        ys = scan5(x)
        if tuple(ys.shape) != (2, 5, 3, h * w):
            return False, f"{h} x {w}: scan5 gives {tuple(ys.shape)}, expected (b, 5, d, l) = {(2, 5, 3, h * w)}"
        if not torch.equal(ys[:, :4], cross_scan(x, 4)):
            return False, f"{h} x {w}: the first four sequences must be cross_scan's orders 0-3 unchanged"
        ids = torch.arange(h * w, dtype=torch.float64).view(1, 1, h, w)
        fifth = scan5(ids)[0, 4, 0]
        if not torch.equal(fifth.sort().values, torch.arange(h * w, dtype=torch.float64)):
            return False, f"{h} x {w}: the fifth sequence does not visit every pixel exactly once"
        y = torch.randn(2, 5, 3, h * w, generator=g, dtype=torch.float64)
        merged = merge5(y, h, w)
        if tuple(merged.shape) != (2, 3, h, w):
            return False, f"{h} x {w}: merge5 gives {tuple(merged.shape)}, expected {(2, 3, h, w)}"
        lhs, rhs = (ys * y).sum().item(), (x * merged).sum().item()
        if abs(lhs - rhs) > 1e-9 * max(1.0, abs(lhs)):
            return False, (f"{h} x {w}: <scan x, y> = {lhs:.6f} but <x, merge y> = {rhs:.6f}: merge must send step p of "
                           f"the fifth sequence back to the pixel it came from (scatter with the order, or gather with "
                           f"its inverse permutation)")
    new = [o for o in range(4) if torch.equal(fifth, cross_scan(ids, 4)[0, o, 0])]
    extra = f" (note: your fifth order repeats order {new[0]})" if new else ""
    return True, f"orders 0-3 unchanged, the fifth a permutation, <scan x, y> = <x, merge y> on 4 map sizes{extra}"
