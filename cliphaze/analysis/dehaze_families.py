"""Dehazers scored per haze family, so a family held out of training shows as its own row.

A dehazer trained on synthetic haze can learn the generator rather than haze (a network trained
on one depth-ramp generator cleared thin haze and failed on dense indoor haze). The protocol here:
haze the same clear test photos once with every family of :data:`cliphaze.haze.HAZE_FAMILIES`
(seeded, so every method sees identical inputs; ``real-depth`` hazes real colour + depth pairs
instead), score every method with :func:`cliphaze.evaluate.evaluate` (PSNR on RGB [0, 1] per image,
SSIM from ``pytorch_msssim``), and print one row per family. The family a model never trained on
is marked: the gap between it and the trained families is the generalisation gap. Lessons:
``notebooks/06_evaluation.ipynb``.

Shapes: images ``(3, h, w)`` in [0, 1].
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path

import torch

__all__ = ["family_pairs", "evaluate_families", "family_markdown", "generalisation_gap", "write_family_csv"]


def family_pairs(photos: Sequence[torch.Tensor], names: Sequence[str], families: Sequence[str],
                 seed: int = 1234, hazes_per_pair: int = 2, real_max_side: int | None = 320,
                 **options) -> dict[str, list[dict]]:
    """Seeded hazy/clear pairs per family, as :func:`cliphaze.evaluate.evaluate` takes them.

    Args:
        photos: clear ``(3, h, w)`` test photos (never trained on).
        names: a label per photo.
        families: family names; ``"real-depth"`` uses the real colour + depth pairs available
            (:func:`cliphaze.haze.real_depth.real_depth_pairs`), ``hazes_per_pair`` draws each.
        seed: haze seed (the same seed gives the same pairs).
        hazes_per_pair: haze draws per real colour + depth pair.
        real_max_side: area-downsample the real pairs (colour and depth alike) to this longer side
            (None: full size; the motorcycle is 741 x 497, the indoor frames 640 x 480).
        **options: passed to :func:`cliphaze.haze.synthesize` (``dense``, ``airlight_colour``, ...).

    Returns:
        family -> list of ``{"hazy", "clear", "name"}``.
    """
    from cliphaze.analysis.density_eval import family_eval_sets

    real_pairs = None
    if "real-depth" in families:
        from cliphaze.haze.real_depth import real_depth_pairs

        real_pairs = [_shrink_pair(p, real_max_side) for p in real_depth_pairs()]
    sets = family_eval_sets(families, photos, names, seed=seed, real_pairs=real_pairs,
                            hazes_per_pair=hazes_per_pair, **options)
    return {family: [{"hazy": h[0], "clear": c[0], "name": n} for h, c, n in zip(s.hazy, s.clear, s.names)]
            for family, s in sets.items()}


def _shrink_pair(pair, max_side: int | None):
    """A real colour + depth pair area-downsampled to ``max_side`` (unchanged when already smaller)."""
    import dataclasses

    import torch.nn.functional as F

    h, w = pair.colour.shape[-2:]
    if max_side is None or max(h, w) <= max_side:
        return pair
    size = (max(1, round(h * max_side / max(h, w))), max(1, round(w * max_side / max(h, w))))
    return dataclasses.replace(pair, colour=F.interpolate(pair.colour[None].float(), size=size, mode="area")[0],
                               depth=F.interpolate(pair.depth[None].float(), size=size, mode="area")[0])


def evaluate_families(methods: Sequence, pairs: dict[str, list[dict]], device: str = "cpu") -> dict:
    """Score every method on every family.

    Args:
        methods: :class:`cliphaze.evaluate.Method` objects or specs for :func:`cliphaze.evaluate.get_method`.
        pairs: :func:`family_pairs`.
        device: where learned methods run.

    Returns:
        family -> :class:`cliphaze.evaluate.EvalReport`.
    """
    from cliphaze.evaluate import Method, evaluate, get_method

    resolved = [m if isinstance(m, Method) else get_method(m, device) for m in methods]
    return {family: evaluate(resolved, items, dataset_name=f"{family} haze", device=device, warmup=False)
            for family, items in pairs.items()}


def write_family_csv(reports: dict, path) -> Path:
    """Per-image scores of every family: ``family, method, image, psnr, ssim`` rows, then one
    ``MEAN`` row per (family, method).

    A family mean can hide a subset of images that behaves differently (in ``real-depth``, the
    bright white-walled frames); the per-image rows show it.

    Args:
        reports: :func:`evaluate_families`.
        path: the CSV file (its folder is created).

    Returns:
        ``path`` as a :class:`pathlib.Path`.
    """
    import csv

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["family", "method", "image", "psnr", "ssim"])
        for family, report in reports.items():
            for r in report.rows:
                w.writerow([family, r.method, r.image, f"{r.psnr:.4f}", f"{r.ssim:.6f}"])
        for family, report in reports.items():
            for s in report.summary():
                w.writerow([family, s["method"], "MEAN", f"{s['psnr']:.4f}", f"{s['ssim']:.6f}"])
    return path


def _psnr_by_method(report) -> dict[str, float]:
    return {s["method"]: s["psnr"] for s in report.summary()}


def generalisation_gap(reports: dict, method: str, held_out: str) -> float:
    """Mean PSNR of ``method`` over the trained families minus its PSNR on ``held_out`` (dB).

    Positive: the model is worse on the family it never saw.
    """
    trained = [_psnr_by_method(r)[method] for f, r in reports.items() if f != held_out]
    return statistics.fmean(trained) - _psnr_by_method(reports[held_out])[method]


def family_markdown(reports: dict, held_out: Sequence[str] = ()) -> str:
    """One Markdown row per family: mean PSNR (dB) / SSIM per method, best learned-or-prior in bold.

    Args:
        reports: :func:`evaluate_families`.
        held_out: families left out of the trained model's training (marked in the table).
    """
    methods = next(iter(reports.values())).methods()
    lines = ["| family | images | " + " | ".join(methods) + " |", "|---|---:|" + "---:|" * len(methods)]
    for family, report in reports.items():
        summary = {s["method"]: s for s in report.summary()}
        best = max((s["psnr"] for m, s in summary.items() if m != "hazy"), default=None)
        cells = []
        for m in methods:
            s = summary[m]
            text = f"{s['psnr']:.2f} / {s['ssim']:.3f}"
            cells.append(f"**{text}**" if s["psnr"] == best else text)
        label = f"{family} (held out)" if family in held_out else family
        lines.append(f"| {label} | {summary[methods[0]]['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
