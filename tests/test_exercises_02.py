"""Lesson 02's exercise checks accept the library's answer and refuse plausible wrong ones."""

import torch
import torch.nn.functional as F

from cliphaze.exercises import check


def test_02_1_prompt_loss():
    assert check("02.1", lambda e, t, y, s: F.cross_entropy(s * e @ t.T, y), quiet=True)
    v = check("02.1", lambda e, t, y, s: F.cross_entropy(e @ t.T, y), quiet=True)
    assert not v and "logit scale" in v.reason
    v = check("02.1", lambda e, t, y, s: F.cross_entropy(s * e @ t.T, 1 - y), quiet=True)
    assert not v and "swapped" in v.reason


def test_02_2_ranking_direction():
    assert check("02.2", lambda d, l_, m: F.relu(m - (d - l_)).mean(), quiet=True)
    v = check("02.2", lambda d, l_, m: F.relu(m - (l_ - d)).mean(), quiet=True)
    assert not v and "reversed" in v.reason
    v = check("02.2", lambda d, l_, m: (m - (d - l_)).mean(), quiet=True)
    assert not v and "hinge" in v.reason


def test_02_3_soft_target():
    assert check("02.3", torch.logit(torch.tensor(0.3)).item(), quiet=True)
    assert check("02.3", torch.logit(torch.tensor(0.8)).item(), D=0.8, quiet=True)
    v = check("02.3", 0.3, quiet=True)
    assert not v and "invert the sigmoid" in v.reason
