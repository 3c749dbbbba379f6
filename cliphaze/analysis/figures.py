"""Quantities behind two of lesson 06's figures: CLIP prompt-pair scores, and learned weights vs density.

*Prompt-pair scores (the CLIPHaze paper's Figure 1 idea).* For a whole image with unit embedding
``v`` and a prompt pair with unit embeddings ``(t_hazy, t_clear)``::

    p_hazy(v) = softmax(s [v . t_hazy, v . t_clear])_0            (s = CLIP's logit scale)

A pair that "understands" haze gives hazy images ``p_hazy`` near 1 and clear images near 0; the
AUROC of ``p_hazy`` over the two groups measures how well it separates them regardless of the
threshold. The paper's point: the hand-written pair ("hazy image" / "clear image") separates
poorly and learned prompts separate well. :func:`prompt_pair_scores` computes both numbers for
any prompt pairs (:func:`cliphaze.clip.density.prompt_pair_embeddings` resolves them).

*Aggregation weights vs density.* The density-aware aggregation sets, per pixel and channel,
``W_m = sigmoid(alpha_k M + beta_k)`` (:class:`cliphaze.block.DensityAwareAggregation`). After
training, :func:`aggregation_weights` reads ``W_m`` from every TrambaDA block of a model on one
image (averaged over channels) next to the density map resized to that block's resolution, and
:func:`binned_curve` turns the pairs into a curve ``E[W_m | M]`` with its spread. The paper's
intuition predicts a rising curve (dense haze -> global Mamba path); a flat curve at 0.5 means the
network did not learn to use the map.

Lesson: ``notebooks/06_evaluation.ipynb``, sections "Figure 1" and "Figure 4".

Shapes: n images, b batch, c channels, h, w sizes, e embedding width.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["PromptScores", "prompt_pair_scores", "WeightCurve", "aggregation_weights", "binned_curve"]


@dataclass
class PromptScores:
    """``p_hazy`` of every clear and hazy image under one prompt pair.

    Attributes:
        name: the pair's label.
        clear: ``(n_clear,)`` ``p_hazy`` of the clear images (ideal: 0).
        hazy: ``(n_hazy,)`` ``p_hazy`` of the hazy images (ideal: 1).
        auroc: probability that a random hazy image scores above a random clear one.
        accuracy: share of images on the right side of 0.5.
    """

    name: str
    clear: torch.Tensor
    hazy: torch.Tensor
    auroc: float
    accuracy: float


def _embed(clip, images: Sequence[torch.Tensor] | torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    if isinstance(images, torch.Tensor) and images.ndim == 4:
        images = list(images)
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            chunk = images[i: i + batch_size]
            size = tuple(chunk[0].shape[-2:])
            if all(tuple(im.shape[-2:]) == size for im in chunk):
                out.append(clip.encode_image(torch.stack([im.float() for im in chunk])))
            else:  # different sizes: one at a time (encode_image resizes each to CLIP's input)
                out.extend(clip.encode_image(im.float()[None]) for im in chunk)
    return torch.cat(out)


def prompt_pair_scores(
    clip,
    clear: Sequence[torch.Tensor] | torch.Tensor,
    hazy: Sequence[torch.Tensor] | torch.Tensor,
    pairs: Mapping[str, object],
) -> list[PromptScores]:
    """Whole-image ``p_hazy`` of clear and hazy images under several prompt pairs.

    Args:
        clip: a :class:`cliphaze.clip.FrozenCLIP`.
        clear: clear images, each ``(3, h, w)`` in [0, 1] (sizes may differ), or ``(n, 3, h, w)``.
        hazy: hazy images, same conventions.
        pairs: label -> prompt pair in any form
            :func:`cliphaze.clip.density.prompt_pair_embeddings` accepts (``None`` for the
            hand-written pair, ``(hazy, clear)`` strings or lists, learned prompts).

    Returns:
        one :class:`PromptScores` per pair, in the order of ``pairs``.
    """
    from cliphaze.analysis.density_eval import auroc
    from cliphaze.clip.density import hazy_probability, prompt_pair_embeddings

    v_clear, v_hazy = _embed(clip, clear), _embed(clip, hazy)
    out = []
    with torch.no_grad():
        for name, prompts in pairs.items():
            pair = prompt_pair_embeddings(clip, prompts)
            p_c = hazy_probability(v_clear, pair, clip.logit_scale).cpu()
            p_h = hazy_probability(v_hazy, pair, clip.logit_scale).cpu()
            scores = torch.cat([p_h, p_c])
            labels = torch.cat([torch.ones_like(p_h), torch.zeros_like(p_c)]).bool()
            acc = float(((scores > 0.5) == labels).float().mean())
            out.append(PromptScores(name, p_c, p_h, auroc(scores, labels), acc))
    return out


@dataclass
class WeightCurve:
    """``W_m`` of one TrambaDA block next to the density at the same positions.

    Attributes:
        block: the block's module name in the network (e.g. ``"encoder1.0"``).
        size: ``(h, w)`` of the block's map.
        density: ``(h w,)`` density ``M`` resized to the block's map.
        w_m: ``(h w,)`` Mamba weight averaged over channels.
        w_m_channels: ``(c, h w)`` per-channel weights.
    """

    block: str
    size: tuple[int, int]
    density: torch.Tensor
    w_m: torch.Tensor
    w_m_channels: torch.Tensor


@torch.no_grad()
def aggregation_weights(model, hazy: torch.Tensor, density: torch.Tensor | None = None) -> list[WeightCurve]:
    """Read every TrambaDA block's ``W_m`` of a :class:`cliphaze.model.CLIPHaze` on one image.

    Args:
        model: a CLIPHaze model (``model.net`` holds the blocks; a ``guidance="density"`` model
            for a meaningful curve).
        hazy: ``(3, h, w)`` or ``(1, 3, h, w)`` in [0, 1]; cropped to multiples of 4 so that block
            maps align exactly with the resized density.
        density: ``(1, 1, h, w)`` map to pair the weights with (default: the model's own guide
            map, the one the aggregation read). Pass the true density ``1 - t`` of a synthetic
            image to plot weights against the real haze instead.

    Returns:
        one :class:`WeightCurve` per block, in network order.
    """
    from cliphaze.block import TrambaDA
    from cliphaze.block.aggregation import resize_density

    x = hazy[None] if hazy.ndim == 3 else hazy
    h, w = (x.shape[-2] // 4) * 4, (x.shape[-1] // 4) * 4
    x = x[..., :h, :w].float().to(model.device)
    guidance = model.guidance(x)
    if density is None:
        density = guidance["density"]
        if density is None:
            raise ValueError("the model has no density guide: pass the density map to pair the weights with")
    density = density[..., :h, :w].float()
    was = model.net.training
    model.net.eval()
    model.net(x, **guidance)
    model.net.train(was)
    curves = []
    for name, block in model.net.named_modules():
        if isinstance(block, TrambaDA) and block.last_weights is not None:
            w_m = block.last_weights[1][0].float().cpu()  # (c, hb, wb)
            hb, wb = w_m.shape[-2:]
            m = resize_density(density.cpu(), hb, wb)[0, 0]
            curves.append(WeightCurve(name, (hb, wb), m.flatten(), w_m.mean(0).flatten(), w_m.flatten(1)))
    return curves


def binned_curve(x: torch.Tensor, y: torch.Tensor, bins: int = 10, lo: float = 0.0, hi: float = 1.0,
                 min_count: int = 1) -> dict[str, torch.Tensor]:
    """Mean and standard deviation of ``y`` in equal-width bins of ``x``.

    Args:
        x, y: ``(n,)`` paired values.
        bins: number of bins over ``[lo, hi]`` (values outside are clipped into the end bins).
        min_count: bins with fewer points get NaN.

    Returns:
        ``{"centre": (bins,), "mean": (bins,), "std": (bins,), "count": (bins,)}`` (population std).
    """
    x, y = x.flatten().double(), y.flatten().double()
    if x.shape != y.shape:
        raise ValueError(f"x and y differ in size: {tuple(x.shape)} vs {tuple(y.shape)}")
    idx = ((x - lo) / (hi - lo) * bins).floor().long().clamp(0, bins - 1)
    count = torch.bincount(idx, minlength=bins).double()
    s1 = torch.bincount(idx, weights=y, minlength=bins)
    s2 = torch.bincount(idx, weights=y * y, minlength=bins)
    mean = s1 / count.clamp_min(1)
    std = (s2 / count.clamp_min(1) - mean**2).clamp_min(0).sqrt()
    bad = count < min_count
    mean[bad], std[bad] = float("nan"), float("nan")
    centre = lo + (torch.arange(bins, dtype=torch.float64) + 0.5) * (hi - lo) / bins
    return {"centre": centre, "mean": mean, "std": std, "count": count}


def resize_like(image: torch.Tensor, size: int) -> torch.Tensor:
    """``(3, h, w)`` image shrunk (area) so that its long side is ``size`` (helper for grids)."""
    h, w = image.shape[-2:]
    s = size / max(h, w)
    if s >= 1:
        return image
    return F.interpolate(image[None], size=(max(1, round(h * s)), max(1, round(w * s))), mode="area")[0]
