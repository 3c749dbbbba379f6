"""The checks of lesson 04's exercises accept the library's answer and explain a plausible wrong one."""

from __future__ import annotations

import torch

from cliphaze.exercises import check


def _partition(labels, ws):
    h, w = labels.shape
    return labels.view(h // ws, ws, w // ws, ws).permute(0, 2, 1, 3).reshape(-1, ws * ws)


def test_04_1_mask():
    from cliphaze.block import shifted_region_labels, window_attention_mask

    assert check("04.1", window_attention_mask, quiet=True)

    def unrolled(h, w, ws, shift):
        lab = _partition(shifted_region_labels(h, w, ws, shift), ws)
        return lab[:, :, None] == lab[:, None, :]

    wrong = check("04.1", unrolled, quiet=True)
    assert not wrong and "roll the region labels" in wrong.reason and "window" in wrong.reason
    everything = check("04.1", lambda h, w, ws, s: torch.ones(h * w // ws**2, ws * ws, ws * ws, dtype=torch.bool),
                       quiet=True)
    assert not everything and "every pair" in everything.reason


def test_04_2_handover():
    def right(dam):
        c = dam.dim
        w, b = dam.proj.weight.detach().view(2, c), dam.proj.bias.detach().view(2, c)
        return -(b[1] - b[0]) / (w[1] - w[0])

    assert check("04.2", right, quiet=True)

    def mamba_only(dam):
        c = dam.dim
        w, b = dam.proj.weight.detach().view(2, c), dam.proj.bias.detach().view(2, c)
        return -b[1] / w[1]

    wrong = check("04.2", mamba_only, quiet=True)
    assert not wrong and "only the Mamba logits" in wrong.reason


def test_04_3_attention_params():
    def right(dim, heads, ws):
        return 3 * dim * dim + 3 * dim + dim * dim + dim + (2 * ws - 1) ** 2 * heads

    assert check("04.3", right, quiet=True)
    wrong = check("04.3", lambda d, h, ws: 4 * d * d + 4 * d, quiet=True)
    assert not wrong and "bias table" in wrong.reason
    no_bias = check("04.3", lambda d, h, ws: 4 * d * d + (2 * ws - 1) ** 2 * h, quiet=True)
    assert not no_bias and "biases" in no_bias.reason
