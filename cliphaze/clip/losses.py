"""Losses of the small haze CLIP: CLIP's contrastive loss with duplicate captions, the patch-level
haze-level term, and the ranking and density-regression terms of the content-invariant recipe.

**Contrastive loss with duplicate captions.** For a batch of ``b`` images with embeddings ``u_i``
and captions with embeddings ``v_j`` (all L2-normalised), CLIP's symmetric InfoNCE is::

    L = 1/2 [ CE(s * U V^T, targets) + CE(s * V U^T, targets) ],     s = exp(logit_scale)

with ``targets`` the diagonal. Generated captions repeat inside a batch ("a thick hazy photo"
twice), and the diagonal would then call an image's own caption a negative. We therefore contrast
images against the *unique* captions of the batch (:func:`contrastive_loss_unique`): with all
captions distinct this is exactly CLIP's loss.

**Haze score.** With unit caption embeddings ``c_thick`` and ``c_clear`` and a unit patch (or
image) embedding ``z``, the score ``r(z) = s z . (c_thick - c_clear)`` is the logit of the
two-prompt density map (:func:`cliphaze.clip.density.hazy_probability`): ``p = sigmoid(r)``.
:func:`ranking_loss` asks ``r`` to order two versions of the same crop by their haze;
:func:`density_regression_loss` asks ``sigmoid(r)`` to equal the true density under each patch.

Derived in ``notebooks/02_prompt_learning.ipynb``, section "Training the small haze CLIP".
Shapes: b batch, k unique captions, e joint embedding width, t tokens.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from cliphaze.clip.captions import density_level

__all__ = ["contrastive_loss_unique", "token_level_loss", "haze_score", "ranking_loss", "density_regression_loss",
           "pool_to_tokens", "spatial_ranking_loss", "decorrelation_loss"]


def contrastive_loss_unique(
    image_emb: torch.Tensor, text_emb_unique: torch.Tensor, caption_index: torch.Tensor, logit_scale: torch.Tensor
) -> torch.Tensor:
    """Symmetric CLIP loss against the unique captions of a batch (module docstring).

    Args:
        image_emb: ``(b, e)`` L2-normalised image embeddings.
        text_emb_unique: ``(k, e)`` L2-normalised embeddings of the ``k`` distinct captions.
        caption_index: ``(b,)`` long, which unique caption belongs to image ``i``.
        logit_scale: scalar ``s`` (already exponentiated).

    Returns:
        Scalar loss ``(L_i2t + L_t2i) / 2``. ``L_i2t = CE(s u_i . V^T, caption_index_i)``;
        ``L_t2i`` is the cross-entropy of ``softmax_i(s v_j . u_i)`` against the uniform
        distribution over the images whose caption is ``j`` (every duplicate is a positive).
    """
    logits = logit_scale * image_emb @ text_emb_unique.t()  # (b, k)
    loss_i2t = F.cross_entropy(logits, caption_index)
    k = text_emb_unique.shape[0]
    positives = F.one_hot(caption_index, k).t().to(logits.dtype)  # (k, b)
    target = positives / positives.sum(dim=1, keepdim=True)
    loss_t2i = -(target * F.log_softmax(logits.t(), dim=1)).sum(dim=1).mean()
    return 0.5 * (loss_i2t + loss_t2i)


def token_level_loss(tokens: torch.Tensor, level_text: torch.Tensor, density_maps: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Patch-level term: every projected patch token classified against four level captions.

    ``L_tok = mean_{i, p} CE(s * z_ip . [c_clear, c_thin, c_moderate, c_thick], level(D_ip))``,
    where ``z_ip`` is patch ``p`` of image ``i`` (unit-normalised), ``c_*`` the caption embeddings
    of the levels and ``D_ip`` the true mean density ``1 - t`` under the patch. This is the
    region-caption alignment of RegionCLIP-style training, with captions generated from the
    known local haze; it is what makes the dense tokens of the small CLIP meaningful.

    Args:
        tokens: ``(b, t, e)`` projected patch tokens (not yet normalised), ``t = gh * gw``.
        level_text: ``(4, e)`` unit caption embeddings, in level order.
        density_maps: ``(b, 1, H, W)`` true density of each image; pooled to the token grid.
        logit_scale: scalar ``s``.

    Returns:
        Scalar loss.
    """
    b, t, _ = tokens.shape
    g = int(round(math.sqrt(t)))
    local = F.adaptive_avg_pool2d(density_maps, (g, t // g)).flatten(1)  # (b, t)
    logits = logit_scale * F.normalize(tokens, dim=-1) @ level_text.t()  # (b, t, 4)
    return F.cross_entropy(logits.reshape(b * t, -1), density_level(local).reshape(-1))


def pool_to_tokens(density_maps: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Mean true density under each token: ``(b, 1, H, W)`` -> ``(b, gh * gw)`` (row-major, as the
    ViT orders its patch tokens)."""
    return F.adaptive_avg_pool2d(density_maps, grid).flatten(1)


def haze_score(embeddings: torch.Tensor, hazy_text: torch.Tensor, clear_text: torch.Tensor,
               logit_scale: torch.Tensor | float) -> torch.Tensor:
    """``r = s z . (c_hazy - c_clear)`` for ``z = normalise(embeddings)``: the logit of the
    two-prompt density map (module docstring).

    Args:
        embeddings: ``(..., e)`` projected tokens or image embeddings (normalised here).
        hazy_text, clear_text: ``(e,)`` unit caption embeddings.
        logit_scale: ``s``.

    Returns:
        ``(...)`` scores; ``sigmoid(r)`` is the density map's value.
    """
    return logit_scale * F.normalize(embeddings, dim=-1) @ (hazy_text - clear_text)


def ranking_loss(denser: torch.Tensor, lighter: torch.Tensor, margin: float = 1.0,
                 mask: torch.Tensor | None = None) -> torch.Tensor:
    """Margin ranking loss ``mean(max(0, margin - (r_denser - r_lighter)))``.

    Zero when every denser score exceeds its lighter twin by at least ``margin``; grows linearly
    with the violation otherwise. Used per token (the same patch under two haze levels) and per
    image.

    Args:
        denser, lighter: scores of the same shape, element ``i`` of ``denser`` known to be hazier
            than element ``i`` of ``lighter``.
        margin: required score gap.
        mask: optional boolean tensor of the same shape: which pairs count (e.g. only pairs whose
            true densities differ by more than a little). No counted pair gives 0.

    Returns:
        Scalar loss.
    """
    if denser.shape != lighter.shape:
        raise ValueError(f"shapes differ: {tuple(denser.shape)} vs {tuple(lighter.shape)}")
    hinge = F.relu(margin - (denser - lighter))
    if mask is None:
        return hinge.mean()
    if not bool(mask.any()):
        return hinge.sum() * 0.0
    return hinge[mask].mean()


def density_regression_loss(scores: torch.Tensor, density: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of ``sigmoid(r)`` against the true density ``D`` in [0, 1] (soft
    targets): minimised exactly at ``sigmoid(r) = D``, so the map becomes a calibrated density
    rather than a 0/1 decision.

    ``L = mean(-D log sigmoid(r) - (1 - D) log(1 - sigmoid(r)))``.
    """
    return F.binary_cross_entropy_with_logits(scores, density.clamp(0, 1))


def spatial_ranking_loss(scores: torch.Tensor, density: torch.Tensor, min_gap: float = 0.05) -> torch.Tensor:
    """Pairwise logistic (RankNet) loss between the tokens of one image: where the true density of
    token ``p`` exceeds that of token ``q`` by more than ``min_gap``, ``r_p`` should exceed ``r_q``::

        L = mean_{i, (p, q): D_ip > D_iq + gap} softplus(-(r_ip - r_iq))

    It asks for the *order within an image* (what the per-image Spearman measures), which a
    pointwise regression only asks for on average.

    Args:
        scores: ``(b, t)`` haze scores. density: ``(b, t)`` true densities.
        min_gap: density difference below which a pair is ignored.

    Returns:
        Scalar loss (0 when no pair qualifies).
    """
    diff_d = density.unsqueeze(2) - density.unsqueeze(1)  # (b, t, t): D_p - D_q
    diff_r = scores.unsqueeze(2) - scores.unsqueeze(1)
    mask = diff_d > min_gap
    if not bool(mask.any()):
        return scores.sum() * 0.0
    return F.softplus(-diff_r[mask]).mean()


def decorrelation_loss(scores: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Squared Pearson correlation, per image, between token scores and a content signal (e.g.
    the luminance under each token), averaged over images::

        L = mean_i corr(r_i, Y_i)^2

    Used on clear images only: there the true density is 0 everywhere, so whatever variation the
    map has must not follow the content (white walls must not read hazier than dark ones).

    Args:
        scores, content: ``(b, t)``.
    """
    r = scores - scores.mean(dim=1, keepdim=True)
    y = content - content.mean(dim=1, keepdim=True)
    corr = (r * y).sum(1) / (r.norm(dim=1) * y.norm(dim=1) + 1e-6)
    return (corr ** 2).mean()
