"""Lesson 01's exercise checks accept the library's answer and refuse plausible wrong ones."""

import torch

from cliphaze.exercises import check


def test_01_1_p_hazy():
    assert check("01.1", lambda v, pair, s: torch.softmax(s * v @ pair.T, dim=-1)[:, 0], quiet=True)
    v = check("01.1", lambda v, pair, s: torch.softmax(v @ pair.T, dim=-1)[:, 0], quiet=True)
    assert not v and "logit scale" in v.reason
    v = check("01.1", lambda v, pair, s: torch.softmax(s * v @ pair.T, dim=-1)[:, 1], quiet=True)
    assert not v and "p_clear" in v.reason


def test_01_2_auroc():
    from cliphaze.analysis.density_eval import auroc

    assert check("01.2", auroc, quiet=True)
    v = check("01.2", lambda s, y: auroc(-s, y), quiet=True)
    assert not v and "positive" in v.reason

    def no_tie_average(s, y):
        order = s.argsort().argsort().double() + 1          # ordinal ranks: ties broken arbitrarily
        n_pos, n_neg = int(y.sum()), int((~y).sum())
        return float((order[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))

    v = check("01.2", no_tie_average, quiet=True)
    assert not v and "average rank" in v.reason


def test_01_3_luminance_control():
    from cliphaze.analysis.density_eval import clear_photo_scores
    from cliphaze.clip import density_map
    from cliphaze.exercises.lesson01 import _shipped_guide

    g = torch.Generator().manual_seed(0)
    photo = torch.rand(3, 64, 96, generator=g).mul(0.3) + torch.linspace(0, 0.7, 96)
    clip, prompts = _shipped_guide()
    with torch.no_grad():
        rho = clear_photo_scores([density_map(clip, photo[None], prompts, method="dense")], [photo[None]])["lum_spearman"]
    assert check("01.3", rho, photo=photo, quiet=True)
    v = check("01.3", rho + 0.5, photo=photo, quiet=True)
    assert not v and "32 x 32" in v.reason
    assert not check("01.3", rho, quiet=True)
