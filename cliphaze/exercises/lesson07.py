"""Checks for the exercises of ``notebooks/07_mechanism_lab.ipynb``.

Every check compares with :mod:`cliphaze.analysis.mechanism_lab` (task metadata, the reach of the
attention-only network) or with :class:`cliphaze.block.DensityAwareAggregation`, never with a
stored number.
"""

from __future__ import annotations

import math

import torch

from cliphaze.exercises import exercise

_DEFAULT_TASK = {"n": 8, "seed": 7}


def _task(task=None, content: str = "stripes"):
    from cliphaze.analysis.mechanism_lab import make_task

    return task if task is not None else make_task(_DEFAULT_TASK["n"], seed=_DEFAULT_TASK["seed"], content=content)


def _number(answer) -> float:
    if isinstance(answer, torch.Tensor):
        if answer.numel() != 1:
            raise ValueError(f"expected one number, got a tensor of shape {tuple(answer.shape)}")
        return float(answer)
    return float(answer)


@exercise("07.1", "fraction of dense pixels whose nearest uncovered copy no attention window can hold with them")
def _check_far_fraction(answer, task=None, window_size: int = 4, **_):
    from cliphaze.analysis.mechanism_lab import far_fraction

    task = _task(task)
    want = far_fraction(task, window_size - 1)  # a window holds offsets up to ws - 1
    got = _number(answer)
    near_miss = {
        far_fraction(task, window_size): "copies farther than ws (you counted distance ws as inside a window)",
        float((task.copy_distance[task.dense] > window_size - 1).float().sum()) / task.dense.numel():
            "a fraction of all pixels, not of the dense ones",
    }
    if math.isfinite(got) and abs(got - want) <= 1e-6:
        return True, f"{got:.4f} = library far_fraction(task, {window_size - 1}) = {want:.4f}"
    hint = next((why for v, why in near_miss.items() if abs(got - v) <= 1e-6 and abs(v - want) > 1e-6), None)
    return False, f"{got:.4f} vs {want:.4f} from the task's copy_distance" + (f": {hint}" if hint else "")


@exercise("07.2", "W_m of a density-aware aggregation from its 1x1 projection's weight and bias")
def _check_w_m(answer, **_):
    from cliphaze.block import DensityAwareAggregation

    g = torch.Generator().manual_seed(3)
    c, h, w = 5, 6, 7
    density = torch.rand(2, 1, h, w, generator=g)
    weight = torch.randn(2 * c, 1, 1, 1, generator=g) * 3
    bias = torch.randn(2 * c, generator=g)
    dam = DensityAwareAggregation(c)
    with torch.no_grad():
        dam.proj.weight.copy_(weight)
        dam.proj.bias.copy_(bias)
        like = torch.zeros(2, c, h, w)
        _, want = dam.weights(like, density=density)
    got = answer(density.clone(), weight.clone(), bias.clone())
    got = torch.as_tensor(got, dtype=torch.float32)
    if tuple(got.shape) != (2, c, h, w):
        return False, f"W_m has shape {tuple(got.shape)}, want (b, c, h, w) = {(2, c, h, w)}"
    err = float((got - want).abs().max())
    if err <= 1e-5:
        return True, f"max |W_m - library| = {err:.2e} over {got.numel()} values"
    swapped = float((got - (1 - want)).abs().max())
    hint = " (that is W_a: the first c channels are l_a, the last c are l_m)" if swapped <= 1e-5 else ""
    return False, f"max |W_m - library| = {err:.3f}{hint}"


@exercise("07.3", "reach (Chebyshev radius) of the attention-only lab network as a function of depth and window")
def _check_reach(answer, **_):
    from cliphaze.analysis.mechanism_lab import local_reach

    cases = [(0, 4), (1, 4), (2, 4), (2, 8), (3, 2), (4, 5)]
    wrong = []
    unshifted = 0
    for depth, ws in cases:
        got, want = _number(answer(depth, ws)), local_reach(depth, ws)
        if got != want:
            wrong.append(f"depth {depth}, ws {ws}: {got:g} vs {want}")
            unshifted += got == local_reach(depth, ws, shift_alternate=False)
    if wrong:
        hint = (" (that is the radius without shifted windows: the shifted grid's borders sit half a window "
                "from the first grid's)") if unshifted == len(wrong) else " (stem, windows, feed-forward depthwise conv, head)"
        return False, "; ".join(wrong[:3]) + hint
    return True, f"matches local_reach on {len(cases)} (depth, window) pairs, e.g. depth 2, ws 4 -> {local_reach(2, 4)}"


@exercise("07.4", "fraction of dense pixels of the content='local' task that have any uncovered copy")
def _check_local(answer, task=None, **_):
    task = _task(task, content="local")
    d = task.copy_distance[task.dense]
    want = float(torch.isfinite(d).float().mean())
    got = _number(answer)
    if abs(got - want) <= 1e-6:
        return True, f"{got:.4f} = fraction of finite copy_distance on dense pixels = {want:.4f}"
    return False, f"{got:.4f} vs {want:.4f} from the local task's copy_distance"
