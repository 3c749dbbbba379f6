"""Checks for the exercises of lesson 04 (the TrambaDA block).

04.1 the shifted-window attention mask, built Swin's way (slices of the rolled map);
04.2 the handover density of each channel of a density-aware aggregation (where ``W_m = 0.5``);
04.3 the parameter count of a window-attention layer, by formula.
"""

from __future__ import annotations

import torch

from cliphaze.exercises import exercise

_MASK_CASES = [(16, 16, 8, 4), (12, 20, 4, 2), (24, 16, 8, 2), (16, 16, 8, 0)]


def _partition_labels(labels: torch.Tensor, ws: int) -> torch.Tensor:
    h, w = labels.shape
    return labels.view(h // ws, ws, w // ws, ws).permute(0, 2, 1, 3).reshape(-1, ws * ws)


@exercise("04.1", "the shifted-window attention mask (nw, t, t), built from slices of the rolled map")
def _check_mask(answer, **context):
    from cliphaze.block import shifted_region_labels, window_attention_mask

    for h, w, ws, shift in _MASK_CASES:
        want = window_attention_mask(h, w, ws, shift)
        got = torch.as_tensor(answer(h, w, ws, shift)).bool()
        if tuple(got.shape) != tuple(want.shape):
            return False, (f"for a {h}x{w} map, window {ws}, shift {shift} your mask has shape {tuple(got.shape)}, "
                           f"want {tuple(want.shape)} (windows, tokens, tokens)")
        if torch.equal(got, want):
            continue
        bad = (got != want).flatten(1).sum(1)
        k = int(bad.argmax())
        too_open = int((got[k] & ~want[k]).sum())
        too_closed = int((~got[k] & want[k]).sum())
        # the classic slip: region labels in image coordinates cut into windows without rolling them
        unrolled = _partition_labels(shifted_region_labels(h, w, ws, shift), ws)
        if torch.equal(got, unrolled[:, :, None] == unrolled[:, None, :]):
            hint = ("your mask matches the regions of the un-rolled image: the features are rolled by -shift "
                    "before partitioning, so roll the region labels the same way before cutting them into windows")
        elif bool(got.all()):
            hint = "your mask allows every pair: after the roll a window holds pixels of up to four regions"
        else:
            hint = ("label the rolled map with Swin's three slices per axis, [0, p-ws), [p-ws, p-s), [p-s, p), "
                    "and allow a pair when both labels agree")
        return False, (f"{h}x{w} map, window {ws}, shift {shift}: your mask lets window {k} attend at {too_open} "
                       f"forbidden positions and forbids {too_closed} allowed ones; {hint}")
    return True, f"equal to cliphaze.block.window_attention_mask for {len(_MASK_CASES)} (size, window, shift) cases"


def _random_dam(dim: int, seed: int):
    from cliphaze.block import DensityAwareAggregation

    g = torch.Generator().manual_seed(seed)
    dam = DensityAwareAggregation(dim)
    with torch.no_grad():
        dam.proj.weight.copy_(torch.randn(dam.proj.weight.shape, generator=g) * 3)
        dam.proj.bias.copy_(torch.randn(dam.proj.bias.shape, generator=g) * 2)
    return dam


@exercise("04.2", "handover density per channel: the M at which W_m[k] = 0.5 in a DensityAwareAggregation")
def _check_handover(answer, **context):
    for dim, seed in ((6, 0), (16, 1)):
        dam = _random_dam(dim, seed)
        w = dam.proj.weight.detach().view(2, dim)
        b = dam.proj.bias.detach().view(2, dim)
        alpha, beta = w[1] - w[0], b[1] - b[0]
        want = -beta / alpha
        got = torch.as_tensor(answer(dam), dtype=torch.float32).flatten()
        if got.numel() != dim:
            return False, f"for a {dim}-channel aggregation you returned {got.numel()} values, want one per channel"
        if not torch.allclose(got, want, rtol=1e-4, atol=1e-5):
            k = int((got - want).abs().argmax())
            only_m = -b[1] / w[1]
            hint = ("you used only the Mamba logits; W_m = sigmoid(l_m - l_a), so the slope and offset are the "
                    "differences alpha = w_m - w_a, beta = b_m - b_a"
                    if torch.allclose(got, only_m, rtol=1e-4, atol=1e-5)
                    else "W_m[k] = sigmoid(alpha_k M + beta_k) is 0.5 where alpha_k M + beta_k = 0")
            return False, f"channel {k} of a {dim}-channel aggregation: yours {float(got[k]):.4f}, want {float(want[k]):.4f}; {hint}"
        # and the module agrees: at the handover density W_m is one half (for handovers inside [0, 1])
        inside = (want > 0.05) & (want < 0.95)
        if inside.any():
            k = int(inside.nonzero()[0])
            density = torch.full((1, 1, 2, 2), float(want[k]))
            with torch.no_grad():
                _, (_, w_m) = dam(torch.zeros(1, dim, 2, 2), torch.zeros(1, dim, 2, 2), density=density)
            assert abs(float(w_m[0, k, 0, 0]) - 0.5) < 1e-4
    return True, "your handover densities -beta_k / alpha_k match two random density-aware aggregations"


_ATTN_CASES = [(16, 1, 8), (32, 2, 8), (24, 2, 4), (48, 3, 7)]


@exercise("04.3", "parameters of a WindowAttention(dim, num_heads, window_size) layer, by formula")
def _check_attention_params(answer, **context):
    from cliphaze.block import WindowAttention, count_parameters

    for dim, heads, ws in _ATTN_CASES:
        want = count_parameters(WindowAttention(dim, num_heads=heads, window_size=ws))
        got = int(answer(dim, heads, ws))
        if got == want:
            continue
        diff = want - got
        table = (2 * ws - 1) ** 2 * heads
        if diff == table:
            hint = f"the missing {table} are the relative position bias table, (2 ws - 1)^2 entries per head"
        elif diff == 4 * dim:
            hint = f"the missing {4 * dim} are the biases of qkv (3C) and of the output projection (C)"
        elif diff == (2 * ws - 1) ** 2 * (heads - 1):
            hint = "the bias table has one column per head"
        else:
            hint = "count qkv (C -> 3C, with bias), the output projection (C -> C, with bias) and the bias table"
        return False, f"dim {dim}, {heads} heads, window {ws}: yours {got:,}, the layer has {want:,} ({diff:+,}); {hint}"
    return True, f"your formula matches count_parameters(WindowAttention(...)) in {len(_ATTN_CASES)} configurations"
