"""Score dehazing methods on a paired dataset with one protocol, and print one table.

Protocol (say it next to every number): PSNR on RGB in [0, 1] per image, then averaged over
images; SSIM from ``pytorch_msssim`` at full resolution on RGB (see :mod:`cliphaze.metrics`);
outputs are clamped to [0, 1]; ground truth as the dataset loader gives it (SOTS GT centre-cropped
to the hazy size). Time is wall-clock inference per megapixel on the evaluating device (loading and
metric computation excluded).

A *method* is any function ``(b, 3, h, w) -> (b, 3, h, w)`` on images in [0, 1]. Built-in specs:

- ``hazy``: the input itself (the floor every method must beat),
- ``dcp``: the dark channel prior (:func:`cliphaze.baselines.dehaze_dcp`),
- ``aodnet``: AOD-Net with its shipped pretrained weights,
- anything else is passed to ``cliphaze.load_model`` (a shipped model name or a checkpoint path).

Lesson 00 introduces the helper; lesson 06 builds the full comparison on it.
"""

from __future__ import annotations

import csv
import math
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from cliphaze.metrics import psnr, ssim

__all__ = ["Method", "EvalRow", "EvalReport", "get_method", "evaluate"]

ImageFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Method:
    """A named image -> image function with its parameter count (None for classical methods)."""

    name: str
    fn: ImageFn
    params: int | None = None


def get_method(spec: str, device: str | torch.device = "cpu") -> Method:
    """Resolve a method spec (``hazy``, ``dcp``, ``aodnet`` or a model name / checkpoint path).

    Args:
        spec: see the module docstring.
        device: where learned methods run.

    Returns:
        :class:`Method` whose ``fn`` maps ``(b, 3, h, w)`` to ``(b, 3, h, w)`` in [0, 1].
    """
    key = spec.strip()
    if key == "hazy":
        return Method("hazy", lambda x: x, None)
    if key == "dcp":
        from cliphaze.baselines import dehaze_dcp

        return Method("dcp", lambda x: dehaze_dcp(x).dehazed, None)
    if key == "aodnet":
        from cliphaze.baselines import load_aodnet

        net = load_aodnet().to(device)

        @torch.no_grad()
        def run_aod(x: torch.Tensor) -> torch.Tensor:
            return net(x.to(device)).clamp(0, 1).to(x.device)

        return Method("aodnet", run_aod, sum(p.numel() for p in net.parameters()))
    from cliphaze import load_model
    model = load_model(key, device=device)

    @torch.no_grad()
    def run_model(x: torch.Tensor) -> torch.Tensor:
        return torch.stack([model.dehaze(img) for img in x]).to(x.device)

    n_params = sum(p.numel() for p in model.parameters()) if hasattr(model, "parameters") else None
    return Method(key, run_model, n_params)


@dataclass
class EvalRow:
    """One image scored by one method."""

    method: str
    image: str
    psnr: float
    ssim: float
    seconds: float
    megapixels: float


@dataclass
class EvalReport:
    """Per-image rows plus summaries; ``dataset`` names what was evaluated."""

    dataset: str
    rows: list[EvalRow] = field(default_factory=list)
    params: dict[str, int | None] = field(default_factory=dict)

    def methods(self) -> list[str]:
        seen: list[str] = []
        for r in self.rows:
            if r.method not in seen:
                seen.append(r.method)
        return seen

    def summary(self) -> list[dict]:
        """One dict per method: n, PSNR mean/std, SSIM mean/std, seconds per megapixel."""
        out = []
        for m in self.methods():
            rs = [r for r in self.rows if r.method == m]
            p = [r.psnr for r in rs]
            s = [r.ssim for r in rs]
            mp = sum(r.megapixels for r in rs)
            out.append(
                {
                    "method": m,
                    "params": self.params.get(m),
                    "n": len(rs),
                    "psnr": statistics.fmean(p),
                    "psnr_std": statistics.pstdev(p) if len(p) > 1 else 0.0,
                    "ssim": statistics.fmean(s),
                    "ssim_std": statistics.pstdev(s) if len(s) > 1 else 0.0,
                    "sec_per_mp": sum(r.seconds for r in rs) / mp if mp > 0 else math.nan,
                }
            )
        return out

    def to_markdown(self) -> str:
        """The summary as a Markdown table (PSNR dB / SSIM, mean +- std over images)."""
        lines = [
            f"Dataset: {self.dataset}. Protocol: PSNR on RGB [0,1] per image then averaged; SSIM pytorch_msssim, full resolution.",
            "",
            "| method | params | images | PSNR (dB) | SSIM | s / MP |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for s in self.summary():
            params = "-" if s["params"] is None else f"{s['params']:,}"
            lines.append(
                f"| {s['method']} | {params} | {s['n']} | {s['psnr']:.2f} ± {s['psnr_std']:.2f} | "
                f"{s['ssim']:.4f} ± {s['ssim_std']:.4f} | {s['sec_per_mp']:.3f} |"
            )
        return "\n".join(lines)

    def write_csv(self, path: str | Path) -> Path:
        """Per-image CSV (method, image, psnr, ssim, seconds, megapixels), then one ``MEAN`` row per method."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["method", "image", "psnr", "ssim", "seconds", "megapixels"])
            for r in self.rows:
                w.writerow([r.method, r.image, f"{r.psnr:.4f}", f"{r.ssim:.6f}", f"{r.seconds:.5f}", f"{r.megapixels:.5f}"])
            for s in self.summary():
                w.writerow([s["method"], "MEAN", f"{s['psnr']:.4f}", f"{s['ssim']:.6f}", "", ""])
        return path


def evaluate(
    methods: Sequence[Method | str] | dict[str, ImageFn],
    dataset: Iterable[dict],
    dataset_name: str = "dataset",
    max_images: int | None = None,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> EvalReport:
    """Score every method on every pair of ``dataset``.

    Args:
        methods: :class:`Method` objects, specs for :func:`get_method`, or ``{name: fn}``.
        dataset: iterable of dicts with ``hazy`` and ``clear`` ``(3, h, w)`` tensors and ``name``
            (as :func:`cliphaze.data.open_benchmark` gives).
        dataset_name: shown in the table.
        max_images: stop after this many pairs.
        device: where learned methods run (images are moved there by the method).
        progress: show a tqdm bar.

    Returns:
        :class:`EvalReport` with one :class:`EvalRow` per (method, image).
    """
    if isinstance(methods, dict):
        resolved = [Method(k, v) for k, v in methods.items()]
    else:
        resolved = [m if isinstance(m, Method) else get_method(m, device) for m in methods]
    report = EvalReport(dataset=dataset_name, params={m.name: m.params for m in resolved})
    items = dataset
    if progress:
        from tqdm.auto import tqdm

        items = tqdm(dataset, desc="evaluating", unit="img")
    for i, item in enumerate(items):
        if max_images is not None and i >= max_images:
            break
        hazy = item["hazy"].unsqueeze(0).float()
        clear = item["clear"].unsqueeze(0).float()
        if hazy.shape != clear.shape:
            raise ValueError(f"{item.get('name', i)}: hazy {tuple(hazy.shape)} and GT {tuple(clear.shape)} differ in size")
        mp = hazy.shape[-1] * hazy.shape[-2] / 1e6
        for m in resolved:
            t0 = time.perf_counter()
            with torch.no_grad():
                out = m.fn(hazy)
            seconds = time.perf_counter() - t0
            out = out.float().clamp(0, 1).cpu()
            report.rows.append(
                EvalRow(
                    method=m.name,
                    image=str(item.get("name", i)),
                    psnr=float(psnr(out, clear)[0]),
                    ssim=float(ssim(out, clear)[0]),
                    seconds=seconds,
                    megapixels=mp,
                )
            )
    return report
