"""Lesson 00's exercise checks accept the library's answer and refuse plausible wrong ones."""

import torch

from cliphaze.exercises import check


def test_00_1_transmission():
    assert check("00.1", lambda d, beta: torch.exp(-beta * (0.1 + 0.9 * d)), quiet=True)
    v = check("00.1", lambda d, beta: torch.exp(-beta * d), quiet=True)
    assert not v and "depth floor" in v.reason


def test_00_2_invert():
    assert check("00.2", lambda i, t, a: (i - a) / t + a, quiet=True)
    v = check("00.2", lambda i, t, a: (i - a) * t + a, quiet=True)
    assert not v and "divides by t" in v.reason


def test_00_3_dcp_failure():
    wall = torch.full((3, 64, 64), 0.92)
    assert check("00.3", wall, quiet=True)
    g = torch.Generator().manual_seed(0)
    dark_texture = torch.rand(3, 64, 64, generator=g) * 0.6
    v = check("00.3", dark_texture, quiet=True)
    assert not v and "dark pixels" in v.reason
