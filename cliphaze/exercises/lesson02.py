"""Checks of lesson 02 (prompt learning): ``check("02.K", answer)``.

- 02.1: the prompt-learning loss of one mini-batch (cross-entropy over {hazy, clear} with the logit scale);
- 02.2: the margin ranking loss, in the right direction, against :func:`cliphaze.clip.losses.ranking_loss`;
- 02.3: the score that minimises the soft-target loss :func:`cliphaze.clip.losses.density_regression_loss`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cliphaze.exercises import exercise


@exercise("02.1", "prompt-learning loss CE(s [v . t_hazy, v . t_clear], y) of one mini-batch (label 0 = hazy)")
def _prompt_loss(answer, **context):
    from cliphaze.clip import hazy_probability

    if not callable(answer):
        return False, "pass your function prompt_loss(emb, text, labels, s) itself, not its value"
    g = torch.Generator().manual_seed(0)
    emb = F.normalize(torch.randn(32, 16, generator=g), dim=-1)
    text = F.normalize(torch.randn(2, 16, generator=g), dim=-1)
    labels = (torch.rand(32, generator=g) > 0.4).long()
    s = 13.8
    p_hazy = hazy_probability(emb, text, s)                   # the library's probability of class 0
    p_label = torch.where(labels == 0, p_hazy, 1 - p_hazy)
    expected = -p_label.log().mean().item()
    got = float(answer(emb.clone(), text.clone(), labels.clone(), s))
    if abs(got - expected) < 1e-5:
        return True, f"loss {got:.5f} = -mean log p(label) from hazy_probability"
    hint = ""
    if abs(got - F.cross_entropy(emb @ text.t(), labels).item()) < 1e-5:
        hint = ": you left out the logit scale s (CLIP's temperature), so the logits are cosines in [-1, 1]"
    elif abs(got - F.cross_entropy(s * emb @ text.t(), 1 - labels).item()) < 1e-5:
        hint = ": the labels are swapped; in the pool label 0 is hazy and row 0 of the text is the hazy prompt"
    return False, f"your loss {got:.5f}, expected {expected:.5f}{hint}"


@exercise("02.2", "margin ranking loss mean(max(0, margin - (r_denser - r_lighter)))")
def _ranking(answer, **context):
    from cliphaze.clip.losses import ranking_loss

    if not callable(answer):
        return False, "pass your function rank_loss(denser, lighter, margin) itself, not its value"
    g = torch.Generator().manual_seed(3)
    denser = torch.randn(64, generator=g) + 0.5
    lighter = torch.randn(64, generator=g)
    for margin in (1.0, 0.25):
        expected = ranking_loss(denser, lighter, margin=margin).item()
        got = float(answer(denser.clone(), lighter.clone(), margin))
        if abs(got - expected) > 1e-6:
            hint = ""
            if abs(got - ranking_loss(lighter, denser, margin=margin).item()) < 1e-6:
                hint = ": the direction is reversed; the loss must vanish when the denser twin scores higher"
            elif abs(got - (margin - (denser - lighter)).mean().item()) < 1e-6:
                hint = ": without the hinge max(0, .) pairs already ranked by more than the margin reduce the loss"
            return False, f"margin {margin}: yours {got:.5f}, ranking_loss {expected:.5f}{hint}"
    done = float(answer(lighter + 5.0, lighter, 1.0))
    if abs(done) > 1e-9:
        return False, f"a pair ranked by 5 > margin must cost 0, yours costs {done:.3f}"
    return True, "equals ranking_loss for two margins, and is 0 on pairs ranked by more than the margin"


@exercise("02.3", "the score r that minimises the soft-target loss for a token of true density D (context D=)")
def _soft_target(answer, D=0.3, **context):
    from cliphaze.clip.losses import density_regression_loss

    r = torch.tensor(float(answer), dtype=torch.float64, requires_grad=True)
    d = torch.tensor(float(D), dtype=torch.float64)
    loss = density_regression_loss(r, d)
    (grad,) = torch.autograd.grad(loss, r)
    p = torch.sigmoid(r).item()
    if abs(grad.item()) < 1e-4:
        return True, f"dL/dr = {grad.item():.1e} at r = {r.item():.4f}: sigmoid(r) = {p:.4f} = D = {float(D)}"
    hint = ""
    if abs(float(answer) - float(D)) < 1e-6:
        hint = ": D is the probability sigmoid(r), not the score r itself; invert the sigmoid"
    return False, f"dL/dr = {grad.item():.4f} at r = {float(answer):.4f} (sigmoid(r) = {p:.4f}, D = {float(D)}){hint}"
