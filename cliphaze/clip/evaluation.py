"""How good is a density map? Scores against the true haze density ``1 - t``.

A synthetic hazy image knows its transmission ``t`` (:func:`cliphaze.haze.synthesize_haze`), so a
predicted density map ``M`` can be scored against ``D = 1 - t``:

- **Spearman's rho** (rank correlation): ``rho = corr(rank(M), rank(D))`` with average ranks for
  ties. Only the *order* matters, so a map that is right up to any monotone recalibration scores
  1. We report it per image (does the map find the thick patches within one picture?) averaged
  over images, and pooled over all pixels of the set (does it also rank images by haze level?).
- **AUROC** of ``M`` for the pixels with ``D > threshold`` ("dense haze") against the rest:
  the probability that a random dense-haze pixel gets a higher score than a random thin one,
  computed with the Mann-Whitney statistic ``AUC = (R_pos - n_pos (n_pos + 1) / 2) / (n_pos n_neg)``
  (``R_pos`` the rank sum of the positives, average ranks for ties). Pooled over the set.

Maps are compared at a common, small resolution (area-averaged), which both speeds this up and
removes the interpolation detail that no 8 x 8 token grid can have anyway. Implemented with torch
and scipy's ``rankdata`` only. Lesson: ``notebooks/01_clip_zero_shot_density.ipynb``, "Scoring a
density map".

Shapes: b batch, h, w map size, r resolution of the comparison.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "spearman", "auroc", "DensityScores", "score_density", "make_eval_set", "EvalSet",
    "evaluate_density_method", "hazy_clear_accuracy", "dcp_density", "density_benchmark",
]


def _rank(x: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(x, method="average")


def spearman(prediction: torch.Tensor, target: torch.Tensor) -> float:
    """Spearman rank correlation of two equally sized tensors (flattened); NaN if one is constant."""
    a = prediction.detach().double().flatten().cpu().numpy()
    b = target.detach().double().flatten().cpu().numpy()
    if a.size != b.size:
        raise ValueError(f"sizes differ: {a.size} vs {b.size}")
    ra, rb = _rank(a), _rank(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    return float((ra * rb).sum() / denom) if denom > 0 else float("nan")


def auroc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Area under the ROC curve of ``scores`` for boolean ``labels`` (Mann-Whitney, ties averaged).

    Returns NaN when only one class is present.
    """
    s = scores.detach().double().flatten().cpu().numpy()
    y = labels.detach().flatten().cpu().numpy().astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    r = _rank(s)
    return float((r[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


@dataclass
class DensityScores:
    """Scores of predicted maps against the true density (module docstring)."""

    spearman_per_image: float
    spearman_pooled: float
    auroc_pooled: float
    n_images: int
    positive_fraction: float

    def as_row(self) -> dict:
        return {"spearman (per image)": round(self.spearman_per_image, 3), "spearman (pooled)": round(self.spearman_pooled, 3),
                "AUROC (pooled)": round(self.auroc_pooled, 3)}


def score_density(prediction: torch.Tensor, true_density: torch.Tensor, threshold: float = 0.5, resolution: int = 32) -> DensityScores:
    """Score ``(b, 1, h, w)`` predicted maps against the true density ``(b, 1, h', w')``.

    Both are area-averaged to ``resolution x resolution`` (per image) before ranking.

    Args:
        prediction: predicted density, any scale (only ranks matter).
        true_density: ``1 - t`` from the synthesiser.
        threshold: ``D > threshold`` marks "dense haze" pixels for the AUROC.
        resolution: comparison grid side ``r``.

    Returns:
        :class:`DensityScores`.
    """
    p = F.adaptive_avg_pool2d(prediction.float(), resolution)
    d = F.adaptive_avg_pool2d(true_density.float(), resolution)
    per = [spearman(p[i], d[i]) for i in range(p.shape[0])]
    per = [v for v in per if v == v]
    labels = d > threshold
    return DensityScores(
        spearman_per_image=float(np.mean(per)) if per else float("nan"),
        spearman_pooled=spearman(p, d),
        auroc_pooled=auroc(p, labels),
        n_images=p.shape[0],
        positive_fraction=float(labels.float().mean()),
    )


@dataclass
class EvalSet:
    """Held-out synthetic hazy images: ``hazy`` and ``density`` are lists (images differ in size)."""

    hazy: list[torch.Tensor]
    density: list[torch.Tensor]
    names: list[str]


def make_eval_set(photos: Sequence[torch.Tensor], names: Sequence[str] | None = None, seed: int = 1234,
                  kind: str = "nonhomogeneous") -> EvalSet:
    """Synthesise one hazy version of each photo with a fixed seed.

    Args:
        photos: clear ``(3, h, w)`` tensors (uint8 or float in [0, 1]); use photos the backbone
            never trained on.
        names: labels for the photos.
        seed: the haze seed (the same seed gives the same set).
        kind: ``"nonhomogeneous"`` (default) or ``"homogeneous"``.

    Returns:
        :class:`EvalSet` with ``hazy (1, 3, h, w)`` and ``density (1, 1, h, w)`` per photo.
    """
    from cliphaze.haze import synthesize_haze

    g = torch.Generator().manual_seed(seed)
    hazy, dens = [], []
    for p in photos:
        p = p.float() / 255.0 if p.dtype == torch.uint8 else p.float()
        s = synthesize_haze(p[None], kind=kind, generator=g)
        hazy.append(s.hazy)
        dens.append(s.density)
    return EvalSet(hazy, dens, list(names) if names is not None else [str(i) for i in range(len(photos))])


def evaluate_density_method(method: Callable[[torch.Tensor], torch.Tensor], eval_set: EvalSet, **kwargs) -> DensityScores:
    """Run ``method(hazy (1, 3, h, w)) -> (1, 1, h, w)`` on every image and score it."""
    preds, trues = [], []
    for hazy, dens in zip(eval_set.hazy, eval_set.density):
        m = method(hazy)
        preds.append(F.adaptive_avg_pool2d(m.float(), kwargs.get("resolution", 32)))
        trues.append(F.adaptive_avg_pool2d(dens.float(), kwargs.get("resolution", 32)))
    return score_density(torch.cat(preds), torch.cat(trues), **kwargs)


def hazy_clear_accuracy(p_hazy: torch.Tensor, is_hazy: torch.Tensor) -> dict:
    """Zero-shot classification from per-image ``p_hazy`` (``(n,)``) against ``is_hazy`` labels.

    Returns:
        ``{"accuracy": fraction with (p > 0.5) == is_hazy, "hazy_recall", "clear_recall",
        "auroc": threshold-free separation}``.
    """
    pred = p_hazy > 0.5
    y = is_hazy.bool()
    return {
        "accuracy": float((pred == y).float().mean()),
        "hazy_recall": float(pred[y].float().mean()) if y.any() else float("nan"),
        "clear_recall": float((~pred[~y]).float().mean()) if (~y).any() else float("nan"),
        "auroc": auroc(p_hazy, y),
    }


def dcp_density(image: torch.Tensor) -> torch.Tensor:
    """The classical reference map ``1 - t_DCP`` ``(b, 1, h, w)`` (guided-filter radius scaled with
    the image: 60 px at a 400 px short side, as :func:`cliphaze.baselines.dcp.dehaze_dcp` advises)."""
    from cliphaze.baselines.dcp import dcp_transmission

    radius = max(4, round(60 * min(image.shape[-2:]) / 400))
    return 1.0 - dcp_transmission(image, radius=radius)


def density_benchmark(eval_set: EvalSet, methods: dict, resolution: int = 32, threshold: float = 0.5) -> dict:
    """Score several density methods on one held-out set.

    Args:
        eval_set: :func:`make_eval_set` output.
        methods: name -> callable ``(1, 3, h, w) -> (1, 1, h, w)``.

    Returns:
        name -> :class:`DensityScores` (with an extra attribute ``seconds_per_image``).
    """
    import time

    out = {}
    for name, fn in methods.items():
        start = time.perf_counter()
        with torch.no_grad():
            scores = evaluate_density_method(fn, eval_set, resolution=resolution, threshold=threshold)
        scores.seconds_per_image = (time.perf_counter() - start) / max(1, len(eval_set.hazy))
        out[name] = scores
    return out
