"""The checks of lesson 06's exercises accept the library's answer and explain a plausible wrong one."""

from __future__ import annotations

import torch

from cliphaze.evaluate import EvalReport, EvalRow
from cliphaze.exercises import check


def test_06_1_psnr():
    from cliphaze.metrics import psnr

    assert check("06.1", psnr, quiet=True)
    pooled = check("06.1", lambda p, t: 10 * torch.log10(1 / ((p.double() - t.double()) ** 2).mean()), quiet=True)
    assert not pooled and "per image" in pooled.reason
    doubled = check("06.1", lambda p, t: 20 * torch.log10(1 / ((p.double() - t.double()) ** 2).flatten(1).mean(1)),
                    quiet=True)
    assert not doubled and "twice" in doubled.reason


def _report():
    rows = []
    for i, (image, base) in enumerate([("1400_1", 20.0), ("1401_1", 22.0), ("1400_5", 15.0), ("1401_10", 11.0)]):
        rows.append(EvalRow("hazy", image, base - 5, 0.7, 0.0, 0.1))
        rows.append(EvalRow("dcp", image, base + 0.25 * i, 0.8, 0.0, 0.1))
    return EvalReport("toy", rows)


def test_06_2_group_table():
    report = _report()
    right = {g: {m: c["psnr"] for m, c in per.items()} for g, per in report.by_group().items()}
    assert check("06.2", right, report=report, quiet=True)
    with_mean = dict(right, MEAN={"hazy": 13.0, "dcp": 17.0})
    wrong = check("06.2", with_mean, report=report, quiet=True)
    assert not wrong and "MEAN" in wrong.reason
    off = {g: dict(per) for g, per in right.items()}
    off["1"]["dcp"] += 0.5
    bad = check("06.2", off, report=report, quiet=True)
    assert not bad and "setting 1" in bad.reason


def test_06_3_auroc():
    def right(h, c):
        h, c = h[:, None].double(), c[None, :].double()
        return float((h > c).double().mean() + 0.5 * (h == c).double().mean())

    assert check("06.3", right, quiet=True)
    strict = check("06.3", lambda h, c: float((h[:, None] > c[None, :]).double().mean()), quiet=True)
    assert not strict and "ties" in strict.reason
    flipped = check("06.3", lambda h, c: 1 - right(h, c), quiet=True)
    assert not flipped and "clear above hazy" in flipped.reason
