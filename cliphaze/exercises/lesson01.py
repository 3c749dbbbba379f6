"""Checks of lesson 01 (CLIP as a zero-shot haze-density meter): ``check("01.K", answer)``.

- 01.1: ``p_hazy`` from unit embeddings and the logit scale, against :func:`cliphaze.clip.hazy_probability`;
- 01.2: AUROC by the Mann-Whitney rank sum, against :func:`cliphaze.analysis.density_eval.auroc`;
- 01.3: the luminance control: Spearman between the shipped guide's map on a clear photo and its luminance.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cliphaze.exercises import exercise

_GUIDE: dict = {}


def _shipped_guide():
    """The shipped small haze CLIP and its learned prompts (loaded once)."""
    if not _GUIDE:
        from cliphaze.clip import load_clip, load_prompts, shipped_prompts_path

        clip = load_clip()
        _GUIDE["clip"], _GUIDE["prompts"] = clip, load_prompts(shipped_prompts_path(), clip)
    return _GUIDE["clip"], _GUIDE["prompts"]


@exercise("01.1", "p_hazy = softmax(s [v . t_hazy, v . t_clear])[0] from unit embeddings")
def _p_hazy(answer, **context):
    from cliphaze.clip import hazy_probability

    if not callable(answer):
        return False, "pass your function p_hazy(v, pair, s) itself, not its result"
    g = torch.Generator().manual_seed(0)
    v = F.normalize(torch.randn(7, 16, generator=g), dim=-1)
    pair = F.normalize(torch.randn(2, 16, generator=g), dim=-1)
    worst = 0.0
    for s in (13.8, 100.0):
        expected = hazy_probability(v, pair, s)
        got = answer(v.clone(), pair.clone(), s)
        got = torch.as_tensor(got, dtype=expected.dtype)
        if tuple(got.shape) != tuple(expected.shape):
            return False, f"shape {tuple(got.shape)}, expected {tuple(expected.shape)} (one probability per embedding)"
        err = (got - expected).abs().max().item()
        worst = max(worst, err)
        if err > 1e-5:
            cos = v @ pair.t()
            hint = ""
            if (got - cos.softmax(-1)[:, 0]).abs().max().item() < 1e-5:
                hint = ": that is the softmax of the raw cosines; multiply them by the logit scale s first"
            elif (got - expected.flip(0)).abs().max().item() < 1e-5 or (got - (1 - expected)).abs().max().item() < 1e-5:
                hint = ": that is p_clear; row 0 of the pair is the hazy prompt"
            return False, f"at s = {s} your p_hazy differs from hazy_probability by up to {err:.3f}{hint}"
    return True, f"equals hazy_probability at s = 13.8 and s = 100 (max error {worst:.1e})"


@exercise("01.2", "AUROC of scores for boolean labels by the Mann-Whitney rank sum (ties averaged)")
def _auroc(answer, **context):
    from cliphaze.analysis.density_eval import auroc

    if not callable(answer):
        return False, "pass your function auroc(scores, labels) itself, not its result"
    g = torch.Generator().manual_seed(2)
    labels = torch.rand(200, generator=g) > 0.6
    scores = labels.float() * 0.8 + torch.randn(200, generator=g)
    tied = torch.round(scores * 2) / 2                         # many ties
    for name, sc in [("continuous scores", scores), ("scores with ties", tied)]:
        expected = auroc(sc, labels)
        got = float(answer(sc.clone(), labels.clone()))
        if abs(got - expected) > 1e-9:
            hint = ""
            if abs(got - (1 - expected)) < 1e-9:
                hint = ": you ranked the negatives (or reversed the scores); AUROC is P(positive scores higher)"
            elif name == "scores with ties":
                hint = ": tied scores must get their average rank (scipy.stats.rankdata's default)"
            return False, f"{name}: yours {got:.6f}, library {expected:.6f}{hint}"
    return True, f"equals the library's AUROC on continuous and tied scores ({expected:.4f} on the tied set)"


@exercise("01.3", "Spearman rho between the shipped guide's map on a clear photo and the photo's luminance")
def _luminance_control(answer, photo=None, **context):
    from cliphaze.analysis.density_eval import clear_photo_scores
    from cliphaze.clip import density_map

    if photo is None:
        return False, "pass the clear photo you used: check('01.3', rho, photo=photo) with photo (3, h, w) in [0, 1]"
    x = photo[None] if photo.ndim == 3 else photo
    clip, prompts = _shipped_guide()
    with torch.no_grad():
        m = density_map(clip, x.float(), prompts, method="dense")
    expected = clear_photo_scores([m], [x.float()])["lum_spearman"]
    got = float(answer)
    if abs(got - expected) < 0.02:
        return True, f"rho(map, luminance) = {expected:.3f} (yours {got:.3f})"
    hint = ""
    if abs(got + expected) < 0.02:
        hint = ": the sign is flipped (correlate the map with Y, not 1 - Y)"
    return False, (f"the shipped guide's dense map (learned prompts) on this photo gives rho = {expected:.3f}, yours "
                   f"{got:.3f}{hint}; pool both map and Y = 0.299 R + 0.587 G + 0.114 B to 32 x 32 before ranking")
