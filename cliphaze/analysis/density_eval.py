"""How good is a density map? Scores against the true haze density ``1 - t``, per haze family.

A synthetic hazy image knows its transmission ``t`` (:func:`cliphaze.haze.synthesize`), so a
predicted density map ``M`` can be scored against ``D = 1 - t``:

- **Spearman's rho** (rank correlation): ``rho = corr(rank(M), rank(D))`` with average ranks for
  ties. Only the *order* matters, so a map that is right up to any monotone recalibration scores
  1. We report it per image (does the map find the thick patches within one picture?) averaged
  over images, and pooled over all pixels of the set (does it also rank images by haze level?).
- **AUROC** (Mann-Whitney, ties averaged):
  ``AUC = (R_pos - n_pos (n_pos + 1) / 2) / (n_pos n_neg)`` with ``R_pos`` the rank sum of the
  positives. Pixel-level for ``D > threshold`` ("dense haze") against the rest, and image-level for
  hazy images against their clear originals (score: the mean of the map).
- **Calibration**: the mean absolute error between map and true density, and the share of
  saturated map cells (below 0.05 or above 0.95): a density map is close to ``D`` and rarely
  saturates; a 0/1 decision saturates.
- **On clear photos** a map that measures haze must be low and must not follow the content: the
  mean map, and Spearman's rho between the map and the luminance ``Y = 0.299 R + 0.587 G + 0.114 B``
  per image (a map that calls white walls hazy has a large positive rho).

**Leave one family out** (:func:`family_table`): the guide is trained on all haze families but one
(:mod:`cliphaze.clip.small_train`) and scored on every family, the held-out one included; the dark
channel prior's ``1 - t_DCP`` (:func:`dcp_density`) is scored on the same images as the control.
Never judge a model only on the generator it was trained on.

Maps are compared at a common, small resolution (area-averaged), which both speeds this up and
removes the interpolation detail that no 8 x 8 token grid can have anyway. Lessons:
``notebooks/01_clip_zero_shot_density.ipynb`` ("Scoring a density map") and
``notebooks/02_prompt_learning.ipynb``.

Shapes: b batch, h, w map size, r resolution of the comparison.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "spearman", "auroc", "DensityScores", "score_density", "make_eval_set", "EvalSet",
    "evaluate_density_method", "hazy_clear_accuracy", "dcp_density", "density_benchmark",
    "luminance", "clear_photo_scores", "family_eval_sets", "family_table", "TARGETS", "check_targets",
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
    """Held-out synthetic hazy images: ``hazy``, ``density`` and ``clear`` are lists (images differ
    in size)."""

    hazy: list[torch.Tensor]
    density: list[torch.Tensor]
    names: list[str]
    clear: list[torch.Tensor] | None = None


def make_eval_set(photos: Sequence[torch.Tensor], names: Sequence[str] | None = None, seed: int = 1234,
                  kind: str = "nonhomogeneous", family: str | None = None, depths: Sequence[torch.Tensor] | None = None,
                  **options) -> EvalSet:
    """Synthesise one hazy version of each photo with a fixed seed.

    Args:
        photos: clear ``(3, h, w)`` tensors (uint8 or float in [0, 1]); use photos the backbone
            never trained on.
        names: labels for the photos.
        seed: the haze seed (the same seed gives the same set).
        kind: ``"nonhomogeneous"`` (default) or ``"homogeneous"``: the original synthesiser
            (:func:`cliphaze.haze.synthesize_haze`), used when ``family`` is None.
        family: a haze family of :data:`cliphaze.haze.HAZE_FAMILIES` instead (
            :func:`cliphaze.haze.synthesize`).
        depths: per photo ``(1, h, w)`` depth, required for ``family="real-depth"``.
        **options: passed to :func:`cliphaze.haze.synthesize` (``dense``, ``airlight_colour``, ...).

    Returns:
        :class:`EvalSet` with ``hazy (1, 3, h, w)``, ``density (1, 1, h, w)`` and ``clear (1, 3, h, w)``
        per photo.
    """
    from cliphaze.haze import synthesize, synthesize_haze

    g = torch.Generator().manual_seed(seed)
    hazy, dens, clear = [], [], []
    for i, p in enumerate(photos):
        p = p.float() / 255.0 if p.dtype == torch.uint8 else p.float()
        if family is None:
            s = synthesize_haze(p[None], kind=kind, generator=g)
        else:
            depth = None if depths is None else depths[i][None]
            s = synthesize(family, p[None], generator=g, depth=depth, **options)
        hazy.append(s.hazy)
        dens.append(s.density)
        clear.append(p[None])
    return EvalSet(hazy, dens, list(names) if names is not None else [str(i) for i in range(len(photos))], clear)


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
    out = {}
    for name, fn in methods.items():
        start = time.perf_counter()
        with torch.no_grad():
            scores = evaluate_density_method(fn, eval_set, resolution=resolution, threshold=threshold)
        scores.seconds_per_image = (time.perf_counter() - start) / max(1, len(eval_set.hazy))
        out[name] = scores
    return out


def luminance(x: torch.Tensor) -> torch.Tensor:
    """``Y = 0.299 R + 0.587 G + 0.114 B`` of ``(b, 3, h, w)`` images -> ``(b, 1, h, w)``."""
    w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def clear_photo_scores(maps: Sequence[torch.Tensor], clear: Sequence[torch.Tensor], resolution: int = 32) -> dict:
    """Mean map and its rank correlation with luminance on clear photos (module docstring).

    Args:
        maps: per photo ``(1, 1, h, w)`` predicted density.
        clear: per photo ``(1, 3, h', w')`` clear image.

    Returns:
        ``{"clear_mean": mean map value, "lum_spearman": mean per-image rho(map, Y),
        "lum_abs_spearman": mean per-image |rho|}`` (images whose map is constant have no rho and
        are left out of the two correlations).
    """
    means, rhos = [], []
    for m, c in zip(maps, clear):
        means.append(float(m.float().mean()))
        mp = F.adaptive_avg_pool2d(m.float(), resolution)
        yp = F.adaptive_avg_pool2d(luminance(c.float()), resolution)
        r = spearman(mp, yp)
        if r == r:
            rhos.append(r)
    return {
        "clear_mean": float(np.mean(means)),
        "lum_spearman": float(np.mean(rhos)) if rhos else float("nan"),
        "lum_abs_spearman": float(np.mean(np.abs(rhos))) if rhos else float("nan"),
    }


def _as_float(p: torch.Tensor) -> torch.Tensor:
    return p.float() / 255.0 if p.dtype == torch.uint8 else p.float()


def family_eval_sets(families: Sequence[str], photos: Sequence[torch.Tensor], names: Sequence[str],
                     seed: int = 1234, real_pairs=None, hazes_per_pair: int = 4, **options) -> dict[str, EvalSet]:
    """One held-out :class:`EvalSet` per family.

    Families other than ``"real-depth"`` haze ``photos`` (each once, seeded by ``seed`` and the
    family's position); ``"real-depth"`` hazes the colour image of every real colour + depth pair
    ``hazes_per_pair`` times (:func:`cliphaze.haze.real_depth.real_depth_pairs`).

    Args:
        families: names from :data:`cliphaze.haze.HAZE_FAMILIES`.
        photos, names: clear test photos never trained on.
        seed: base seed.
        real_pairs: list of :class:`cliphaze.haze.real_depth.RealDepthPair` (default: all available).
        hazes_per_pair: haze draws per real pair.
        **options: passed to :func:`cliphaze.haze.synthesize`.

    Returns:
        family -> :class:`EvalSet`.
    """
    from cliphaze.haze import HAZE_FAMILIES

    out = {}
    floats = [_as_float(p) for p in photos]  # converted once: the clear maps are then shared by all families
    for k, family in enumerate(families):
        if family not in HAZE_FAMILIES:
            raise ValueError(f"unknown haze family {family!r}; choose from {sorted(HAZE_FAMILIES)}")
        if family == "real-depth":
            if real_pairs is None:
                from cliphaze.haze.real_depth import real_depth_pairs

                real_pairs = real_depth_pairs()
            cols = [p.colour for p in real_pairs for _ in range(hazes_per_pair)]
            deps = [p.depth for p in real_pairs for _ in range(hazes_per_pair)]
            labels = [f"{p.name}#{j}" for p in real_pairs for j in range(hazes_per_pair)]
            out[family] = make_eval_set(cols, labels, seed=seed + k, family=family, depths=deps, **options)
        else:
            out[family] = make_eval_set(floats, names, seed=seed + k, family=family, **options)
    return out


#: Targets for a guide on a family left out of its training (issue: "a guide that measures haze").
TARGETS = {"spearman_per_image": 0.70, "clear_mean_below": 0.2, "abs_lum_spearman_below": 0.2}


def family_table(methods: dict[str, Callable[[torch.Tensor], torch.Tensor]], sets: dict[str, EvalSet],
                 resolution: int = 32, threshold: float = 0.5) -> dict:
    """Score every method on every family's set (module docstring: the metrics).

    Args:
        methods: name -> callable ``(1, 3, h, w) -> (1, 1, h, w)`` density map.
        sets: family -> :class:`EvalSet` (with ``clear``).

    Returns:
        ``{family: {method: {"spearman_per_image", "mae", "saturated", "spearman_pooled",
        "auroc_pixels", "auroc_hazy_vs_clear", "clear_mean", "lum_spearman", "lum_abs_spearman",
        "n_images", "s_per_image"}}}``: ``mae`` is the mean absolute difference between map and true
        density (is the map a density?), ``saturated`` the share of map cells below 0.05 or above
        0.95 on hazy images (a 0/1 decision saturates). Maps of clear photos shared by several sets
        are computed once.
    """
    cache: dict[tuple, torch.Tensor] = {}
    table: dict = {}
    for family, es in sets.items():
        table[family] = {}
        for name, fn in methods.items():
            start = time.perf_counter()
            with torch.no_grad():
                hazy_maps = [fn(h) for h in es.hazy]
                clear_maps = []
                for c in es.clear:
                    key = (name, c.data_ptr(), tuple(c.shape))
                    if key not in cache:
                        cache[key] = fn(c)
                    clear_maps.append(cache[key])
            pred = torch.cat([F.adaptive_avg_pool2d(m.float(), resolution) for m in hazy_maps])
            true = torch.cat([F.adaptive_avg_pool2d(d.float(), resolution) for d in es.density])
            scores = score_density(pred, true, threshold=threshold, resolution=resolution)
            per_image = torch.tensor([float(m.mean()) for m in hazy_maps] + [float(m.mean()) for m in clear_maps])
            labels = torch.tensor([True] * len(hazy_maps) + [False] * len(clear_maps))
            unique_clear = {id(c): (m, c) for m, c in zip(clear_maps, es.clear)}.values()
            clear_stats = clear_photo_scores([m for m, _ in unique_clear], [c for _, c in unique_clear], resolution)
            hazy_pooled = torch.cat([F.adaptive_avg_pool2d(m.float(), resolution) for m in hazy_maps])
            table[family][name] = {
                "spearman_per_image": scores.spearman_per_image,
                "mae": float((hazy_pooled - true).abs().mean()),
                "saturated": float(((hazy_pooled < 0.05) | (hazy_pooled > 0.95)).float().mean()),
                "spearman_pooled": scores.spearman_pooled,
                "auroc_pixels": scores.auroc_pooled,
                "auroc_hazy_vs_clear": auroc(per_image, labels),
                **clear_stats,
                "n_images": len(es.hazy),
                "s_per_image": (time.perf_counter() - start) / max(1, len(es.hazy)),
            }
    return table


def check_targets(row: dict, control: dict | None = None) -> dict:
    """Which of :data:`TARGETS` a method's row (of :func:`family_table`) meets; with ``control``
    (the DCP row on the same images), also whether it beats the control's per-image Spearman."""
    out = {
        "spearman >= 0.70": row["spearman_per_image"] >= TARGETS["spearman_per_image"],
        "clear mean < 0.2": row["clear_mean"] < TARGETS["clear_mean_below"],
        "|lum spearman| < 0.2": abs(row["lum_spearman"]) < TARGETS["abs_lum_spearman_below"],
    }
    if control is not None:
        out["spearman > DCP"] = row["spearman_per_image"] > control["spearman_per_image"]
    return out


def _sots_rows(methods: dict, sots) -> dict:
    from pathlib import Path

    from cliphaze.io import list_images, read_image

    sots = Path(sots)
    hazy = [read_image(p) for p in list_images(sots / "hazy")]
    gts = []
    for p in list_images(sots / "GT"):
        g = read_image(p)
        if hazy and tuple(g.shape[1:]) != tuple(hazy[0].shape[1:]):  # SOTS GT carries a 10 px border
            dh, dw = (g.shape[1] - hazy[0].shape[1]) // 2, (g.shape[2] - hazy[0].shape[2]) // 2
            g = g[:, dh : dh + hazy[0].shape[1], dw : dw + hazy[0].shape[2]]
        gts.append(g)
    labels = torch.tensor([True] * len(hazy) + [False] * len(gts))
    rows = {}
    for name, fn in methods.items():
        with torch.no_grad():
            scores = torch.tensor([float(fn(im[None]).mean()) for im in hazy + gts])
        rows[name] = {"auroc_hazy_vs_clear": auroc(scores, labels), "mean_hazy": float(scores[labels].mean()),
                      "mean_clear": float(scores[~labels].mean())}
    return {"data": str(sots), "n_hazy": len(hazy), "n_clear": len(gts), "rows": rows}


def format_family_table(table: dict) -> str:
    """The :func:`family_table` result as one markdown table (a row per family and method)."""
    lines = ["| family | method | Spearman per image | MAE | saturated | AUROC hazy vs clear | mean map on clear | "
             "Spearman(map, Y) on clear | mean abs |", "|---|---|---|---|---|---|---|---|---|"]
    for family, rows in table.items():
        for name, r in rows.items():
            lines.append(f"| {family} | {name} | {r['spearman_per_image']:.3f} | {r['mae']:.3f} | {r['saturated']:.3f} | "
                         f"{r['auroc_hazy_vs_clear']:.3f} | {r['clear_mean']:.3f} | {r['lum_spearman']:+.3f} | "
                         f"{r['lum_abs_spearman']:.3f} |")
    return "\n".join(lines)


def evaluate_command(args) -> int:
    """``cliphaze clip evaluate``: the leave-one-family-out table of a guide against the dark channel."""
    import json
    import sys
    from pathlib import Path

    from cliphaze.clip import (
        HAND_WRITTEN_PAIR,
        density_map,
        load_clip,
        load_prompts,
        shipped_prompts_path,
    )
    from cliphaze.clip.crops import load_photos
    from cliphaze.haze.real_depth import real_depth_pairs
    from cliphaze.io import list_images
    from cliphaze.paths import shared_data_dir

    torch.set_num_threads(args.threads)
    test = args.test
    if test is None:
        shared = shared_data_dir()
        if shared is None or not (shared / "bsds500" / "test").is_dir():
            raise FileNotFoundError("no --test folder given and the development data (bsds500/test) is absent")
        test = shared / "bsds500" / "test"
    names = [p.name for p in list_images(test)][: args.limit]
    photos = load_photos([test], max_side=args.max_side)[: args.limit]
    clip = load_clip(args.model, pretrained=args.pretrained)
    prompts_file = args.prompts
    if prompts_file is None and args.model is None and args.pretrained is None:
        prompts_file = shipped_prompts_path()
    learned = load_prompts(prompts_file, clip) if prompts_file else None
    print(f"backbone: {clip.info.description} [{clip.info.identity}]; {len(photos)} test photos from {test}", flush=True)

    def dm(prompts):
        return lambda x: density_map(clip, x, prompts, method="dense")

    methods = {}
    if learned is not None:
        methods["guide (learned prompts, dense)"] = dm(learned)
    if not getattr(args, "no_hand", False):
        methods["hand-written pair, dense"] = dm(HAND_WRITTEN_PAIR)
    if not getattr(args, "no_dcp", False):
        methods["dark channel 1 - t_DCP"] = dcp_density
    pairs = None
    if "real-depth" in args.families:
        folder = None if args.rgbd in ("none", "") else args.rgbd
        pairs = real_depth_pairs(folder)
        pairs = [_resize_pair(p, args.max_side) for p in pairs]
    sets = family_eval_sets(args.families, photos, names, seed=args.seed, real_pairs=pairs,
                            hazes_per_pair=args.hazes_per_pair)
    table = family_table(methods, sets, resolution=args.resolution, threshold=args.threshold)
    card = _checkpoint_card(args.model)
    report = {
        "command": "cliphaze clip " + " ".join(sys.argv[sys.argv.index("evaluate"):]) if "evaluate" in sys.argv else "",
        "backbone": clip.info.identity, "prompts": str(prompts_file) if prompts_file else None,
        "holdout": card.get("holdout"),
        "eval": {"test": str(test), "n_photos": len(photos), "max_side": args.max_side, "seed": args.seed,
                 "real_pairs": [p.name for p in pairs] if pairs else [], "hazes_per_pair": args.hazes_per_pair,
                 "resolution": args.resolution, "threshold": args.threshold, "threads": args.threads},
        "families": table,
    }
    guide = "guide (learned prompts, dense)"
    if learned is not None:
        report["targets"] = {f: check_targets(rows[guide], rows.get("dark channel 1 - t_DCP")) for f, rows in table.items()}
    if args.sots:
        report["sots"] = _sots_rows(methods, args.sots)
    print(format_family_table(table))
    if args.sots:
        for name, r in report["sots"]["rows"].items():
            print(f"SOTS {name}: AUROC hazy vs clear {r['auroc_hazy_vs_clear']:.3f}")
    text = json.dumps(report, indent=2)
    if args.output:
        Path(args.output).write_text(text + "\n")
        print(f"wrote {args.output}")
    return 0


def _resize_pair(pair, max_side: int):
    from cliphaze.haze.real_depth import RealDepthPair

    h, w = pair.colour.shape[1:]
    scale = max_side / max(h, w)
    if scale >= 1:
        return pair
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    colour = F.interpolate(pair.colour[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0]
    depth = F.interpolate(pair.depth[None], size=size, mode="area")[0]
    return RealDepthPair(pair.name, colour.clamp(0, 1), depth, pair.source)


def _checkpoint_card(model: str | None) -> dict:
    """The training card stored in a compact small-CLIP checkpoint (the shipped one for None), or {}."""
    from pathlib import Path

    from cliphaze.clip.small_config import SHIPPED_SMALL_CLIP

    path = SHIPPED_SMALL_CLIP if model is None else Path(model)
    if not path.is_file():
        return {}
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # not a compact checkpoint: no card to report
        return {}
    return payload.get("card", {}) if isinstance(payload, dict) else {}
