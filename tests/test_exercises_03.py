"""Lesson 03's exercise checks accept the library's answer and refuse plausible wrong ones."""

import torch

import cliphaze.ssm as ssm
from cliphaze.exercises import check


def test_03_1_zoh():
    assert check("03.1", lambda dt, a, b: (torch.exp(dt * a), (torch.exp(dt * a) - 1) / a * b), quiet=True)
    v = check("03.1", lambda dt, a, b: (torch.exp(dt * a), dt * b), quiet=True)
    assert not v and "Euler" in v.reason


def test_03_2_loop():
    assert check("03.2", lambda u, dt, A, B, C, D, z: ssm.selective_scan_reference(u, dt, A, B, C, D, z), quiet=True)
    v = check("03.2", lambda u, dt, A, B, C, D, z: ssm.selective_scan_reference(u, dt, A, B, C, None, z), quiet=True)
    assert not v and "D u is missing" in v.reason


def test_03_3_chunked():
    assert check("03.3", lambda u, dt, A, B, C, T: ssm.selective_scan_chunked(u, dt, A, B, C, chunk_len=T), quiet=True)

    def by_division(u, delta, A, B, C, T):
        b, d, l = u.shape
        log_p = torch.cumsum((delta[..., None] * A[:, None, :]).view(b, d, l // T, T, -1), dim=3).view(b, d, l, -1)
        x = (delta * u)[..., None] * B.transpose(1, 2)[:, None]
        h = torch.exp(log_p) * torch.cumsum((x * torch.exp(-log_p)).view(b, d, l // T, T, -1), dim=3).view(b, d, l, -1)
        return (h * C.transpose(1, 2)[:, None]).sum(-1)

    v = check("03.3", by_division, quiet=True)
    assert not v and "inf or NaN" in v.reason


def _anti_diagonal(h, w):
    i, j = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    key = (i + j) * (h * w) + i
    return key.flatten().argsort()


def test_03_4_fifth_direction():
    def scan5(x):
        b, d, h, w = x.shape
        return torch.cat([ssm.cross_scan(x, 4), x.reshape(b, d, -1)[:, None, :, _anti_diagonal(h, w)]], dim=1)

    def merge5(ys, h, w):
        out = ssm.cross_merge(ys[:, :4], h, w).reshape(ys.shape[0], ys.shape[2], -1)
        out = out.index_add(2, _anti_diagonal(h, w), ys[:, 4])
        return out.view(ys.shape[0], ys.shape[2], h, w)

    def merge5_wrong(ys, h, w):
        out = ssm.cross_merge(ys[:, :4], h, w).reshape(ys.shape[0], ys.shape[2], -1)
        out = out + ys[:, 4][:, :, _anti_diagonal(h, w)]              # gathers with the order: not its inverse
        return out.view(ys.shape[0], ys.shape[2], h, w)

    assert check("03.4", (scan5, merge5), quiet=True)
    v = check("03.4", (scan5, merge5_wrong), quiet=True)
    assert not v and "back to the pixel" in v.reason
