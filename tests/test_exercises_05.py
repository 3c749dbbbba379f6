"""The checks of lesson 05's exercises accept the library's answer and explain a plausible wrong one."""

from __future__ import annotations

import math

import torch

from cliphaze.exercises import check


def _head(t, a):
    return torch.cat([1 / t - 1, a * (1 / t - 1)], dim=1)


def test_05_1_head_features():
    assert check("05.1", _head, quiet=True)
    wrong = check("05.1", lambda t, a: torch.cat([1 / t, a * (1 / t - 1)], dim=1), quiet=True)
    assert not wrong and "K = 1/t - 1" in wrong.reason
    shape = check("05.1", lambda t, a: a * (1 / t - 1), quiet=True)
    assert not shape and "shape" in shape.reason


def test_05_2_lr_factor():
    from cliphaze.train.loop import lr_factor

    assert check("05.2", lr_factor, quiet=True)

    def no_plus_one(step, warmup, total, r):
        if step < warmup:
            return step / warmup
        return lr_factor(step, warmup, total, r)

    wrong = check("05.2", no_plus_one, quiet=True)
    assert not wrong and "(step + 1) / warmup" in wrong.reason

    def no_clamp(step, warmup, total, r):
        if step < warmup:
            return (step + 1) / warmup
        p = (step - warmup) / max(1, total - warmup)
        return r + (1 - r) * 0.5 * (1 + math.cos(math.pi * p))

    late = check("05.2", no_clamp, quiet=True)
    assert not late and "clamp" in late.reason


def test_05_3_overfit():
    from cliphaze.model import CLIPHazeNet, get_preset

    torch.manual_seed(0)
    clear = torch.rand(2, 3, 16, 16) * 0.8 + 0.1
    hazy = clear * 0.4 + 0.5
    net = CLIPHazeNet(get_preset("tiny", aggregation="sum"))
    untrained = check("05.3", net, hazy=hazy, clear=clear, quiet=True)
    assert not untrained and "returns its input" in untrained.reason

    class Oracle(torch.nn.Module):
        def forward(self, x):
            return (x - 0.5) / 0.4

    assert check("05.3", Oracle(), hazy=hazy, clear=clear, quiet=True)
    missing = check("05.3", net, quiet=True)
    assert not missing and "hazy=hazy" in missing.reason
