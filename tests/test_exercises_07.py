"""Lesson 07's exercise checks accept right answers and reject plausible wrong ones with a reason."""

from __future__ import annotations

import torch

from cliphaze.analysis.mechanism_lab import make_task
from cliphaze.exercises import check


def _far_fraction(task, ws):
    dense = task.dense[:, 0]
    out = []
    for i in range(len(task)):
        for y in range(dense.shape[1]):
            cols = torch.nonzero(dense[i, y]).flatten()
            if len(cols) == 0:
                continue
            x0, x1 = int(cols.min()), int(cols.max()) + 1
            out += [min(x - x0 + 1, x1 - x) >= ws for x in range(x0, x1)]
    return sum(out) / len(out)


def test_07_1_far_fraction():
    task = make_task(8, seed=7)
    assert check("07.1", _far_fraction(task, 4), quiet=True)
    assert check("07.1", _far_fraction(task, 8), quiet=True, window_size=8)
    wrong = check("07.1", _far_fraction(task, 5), quiet=True)
    assert not wrong and "farther than ws" in wrong.reason
    assert not check("07.1", 0.0, quiet=True)


def _w_m(density, weight, bias):
    logits = weight[:, 0, 0, 0].view(1, -1, 1, 1) * density + bias.view(1, -1, 1, 1)
    l_a, l_m = logits.chunk(2, dim=1)
    return torch.sigmoid(l_m - l_a)


def test_07_2_w_m():
    assert check("07.2", _w_m, quiet=True)
    swapped = check("07.2", lambda d, w, b: 1 - _w_m(d, w, b), quiet=True)
    assert not swapped and "W_a" in swapped.reason
    no_pair = check("07.2", lambda d, w, b: torch.sigmoid((w[:, 0, 0, 0].view(1, -1, 1, 1) * d + b.view(1, -1, 1, 1))
                                                           .chunk(2, 1)[1]), quiet=True)
    assert not no_pair and "max |W_m - library|" in no_pair.reason
    assert not check("07.2", lambda d, w, b: _w_m(d, w, b).mean(1), quiet=True)


def _reach(depth, ws):
    best = 0
    for x in range(100, 100 + 2 * ws):
        lo, hi = x - 1, x + 1
        for i in reversed(range(depth)):
            s = ws // 2 if i % 2 else 0
            lo, hi = (lo - 1 - s) // ws * ws + s, (hi + 1 - s) // ws * ws + s + ws - 1
        best = max(best, x - lo + 1, hi + 1 - x)
    return best


def test_07_3_reach():
    assert check("07.3", _reach, quiet=True)
    unshifted = check("07.3", lambda depth, ws: 2 + depth * ws, quiet=True)
    assert not unshifted and "without shifted windows" in unshifted.reason
    wrong = check("07.3", lambda depth, ws: depth * (ws - 1), quiet=True)
    assert not wrong and "depth 0, ws 4" in wrong.reason


def test_07_4_local_task():
    assert check("07.4", 0.0, quiet=True)
    wrong = check("07.4", 1.0, quiet=True)
    assert not wrong and "1.0000 vs 0.0000" in wrong.reason
