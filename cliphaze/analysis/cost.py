"""Time and peak memory against map size: attention path, Mamba path, full attention, fused block.

The claim being measured (``docs/design.md``, section 1): window attention and the selective scan both cost
``O(l)`` in the number of pixels ``l = h w`` (window attention ``l * ws^2``, the scan ``l * k d n``),
while full self-attention over the map costs ``O(l^2)`` time and, when the ``l x l`` score matrix
is materialised as here, ``O(l^2)`` memory. Four layers, all channels-first ``(b, c, h, w)``:

==================  ========================================================================
kind                layer
==================  ========================================================================
``attention``       :class:`~cliphaze.block.WindowAttention` (the block's local path)
``mamba``           :class:`~cliphaze.ssm.SS2D` (the block's global path)
``full-attention``  :class:`FullSelfAttention`: one softmax over all ``l`` tokens (no windows)
``block``           :class:`~cliphaze.block.TrambaDA` (both paths, fixed-sum aggregation,
                    feed-forward)
==================  ========================================================================

*Measuring.* Time: median wall-clock of ``repeats`` forward passes after one warm-up, no gradient.
Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` above the memory held before the call; on
Linux CPUs the increase of the process's resident-set high-water mark (``VmHWM``, reset through
``/proc/self/clear_refs`` before the call) during the first forward pass. In a long-lived process
that number is only a lower bound (the C allocator reuses memory freed by earlier calls without
raising the mark), so :func:`cost_table` by default measures every cell in a fresh Python process
(``isolate=True``: about two seconds of start-up per cell, and the peak is that of a cold
allocator). Elsewhere memory is reported as NaN. Full attention is skipped, with the reason, when
its score matrix alone would exceed ``max_gb``.

:func:`growth_exponent` fits ``time ~ l^alpha`` by least squares on log-log axes: ``alpha`` near 1
is linear in pixels, near 2 quadratic. Fixed per-call overhead flattens the curve at small sizes,
so fit on the larger sizes.

Used by ``benchmarks/cost.py`` (the table up to 1024^2) and ``notebooks/06_evaluation.ipynb``,
section "Figure 6: cost against image size".

Shapes: b batch, c channels, h, w the map's size, l = h w.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn

__all__ = ["COST_KINDS", "FullSelfAttention", "make_layer", "peak_memory_mb", "measure", "measure_cell", "CostRow",
           "cost_table",
           "growth_exponent", "format_cost_table"]

COST_KINDS = ("attention", "mamba", "full-attention", "block")


class FullSelfAttention(nn.Module):
    """Multi-head self-attention over all ``l = h w`` pixels of a map, scores materialised.

    ``softmax(Q K^T / sqrt(d_head)) V`` with ``Q, K, V`` from one linear layer and an output
    projection (no position bias: it does not change the cost). The ``(heads, l, l)`` score matrix
    is built explicitly, as in the original Transformer, so memory grows as ``l^2`` (fused
    memory-efficient kernels avoid that memory, not the ``l^2`` time).

    Args:
        dim: channels ``c``.
        num_heads: heads (dividing ``c``).

    Forward: ``(b, h, w, c)`` channel-last (like :class:`~cliphaze.block.WindowAttention`) ->
    ``(b, h, w, c)``.
    """

    def __init__(self, dim: int, num_heads: int = 1):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        qkv = self.qkv(x.reshape(b, h * w, c)).view(b, h * w, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # (b, heads, l, d_head)
        attn = ((q * self.head_dim**-0.5) @ k.transpose(-2, -1)).softmax(dim=-1)  # (b, heads, l, l)
        out = (attn @ v).transpose(1, 2).reshape(b, h, w, c)
        return self.proj(out)


class _ChannelsFirst(nn.Module):
    """Wrap a channel-last ``(b, h, w, c)`` layer as ``(b, c, h, w) -> (b, c, h, w)``."""

    def __init__(self, layer: nn.Module):
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def make_layer(kind: str, dim: int = 16, num_heads: int = 1, window_size: int = 8, d_state: int = 8,
               ssm_ratio: float = 1.0, directions: int = 4) -> nn.Module:
    """One of :data:`COST_KINDS` as a channels-first module ``(b, c, h, w) -> (b, c, h, w)``.

    Args:
        kind: ``"attention"``, ``"mamba"``, ``"full-attention"`` or ``"block"``.
        dim: channels ``c``.
        num_heads: attention heads.
        window_size: attention window ``ws``.
        d_state, ssm_ratio, directions: SS2D's ``n``, ``d / c`` and ``k``.

    Returns:
        the module in eval mode (defaults: the ``tiny`` preset's first level).
    """
    from cliphaze.block import TrambaDA, WindowAttention
    from cliphaze.ssm import SS2D

    if kind == "attention":
        layer = _ChannelsFirst(WindowAttention(dim, num_heads, window_size))
    elif kind == "mamba":
        layer = _ChannelsFirst(SS2D(dim, d_state=d_state, ssm_ratio=ssm_ratio, directions=directions))
    elif kind == "full-attention":
        layer = _ChannelsFirst(FullSelfAttention(dim, num_heads))
    elif kind == "block":
        layer = TrambaDA(dim, num_heads=num_heads, window_size=window_size, aggregation="sum", d_state=d_state,
                         ssm_ratio=ssm_ratio, directions=directions)
    else:
        raise ValueError(f"unknown kind {kind!r}; choose one of {COST_KINDS}")
    return layer.eval()


def _status_kb(field: str) -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return float(line.split()[1])
    except OSError:
        pass
    return math.nan


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:  # "5" resets VmHWM to the current RSS (Linux)
            f.write("5")
        return True
    except OSError:
        return False


def peak_memory_mb(fn: Callable[[], object], device: str | torch.device = "cpu") -> float:
    """Peak memory in MB (1e6 bytes) that ``fn()`` adds on ``device`` (module docstring: how).

    Returns:
        MB; NaN where it cannot be measured (CPU outside Linux).
    """
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 1e6
    if not _reset_peak_rss():
        fn()
        return math.nan
    before = _status_kb("VmRSS")
    fn()
    return max(0.0, (_status_kb("VmHWM") - before) * 1024 / 1e6)


def measure(layer: nn.Module, x: torch.Tensor, repeats: int = 3) -> tuple[float, float]:
    """Median forward seconds (after a warm-up) and peak memory MB of ``layer(x)``, no gradient.

    Args:
        layer: any module.
        x: its input (on the layer's device).
        repeats: timed runs (the median is returned).

    Returns:
        ``(seconds, peak_mb)``.
    """
    sync = torch.cuda.synchronize if x.device.type == "cuda" else (lambda: None)

    def run():
        with torch.no_grad():
            layer(x)
        sync()

    mb = peak_memory_mb(run, x.device)  # doubles as the warm-up
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), mb


@dataclass
class CostRow:
    """One measurement: ``kind`` at ``side x side`` (``pixels = side^2``); ``seconds`` and
    ``peak_mb`` are NaN when skipped, with ``note`` saying why."""

    kind: str
    side: int
    pixels: int
    seconds: float
    peak_mb: float
    note: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def measure_cell(kind: str, side: int, dim: int = 16, batch: int = 1, repeats: int = 3,
                 device: str | torch.device = "cpu", seed: int = 0, **layer_kwargs) -> tuple[float, float]:
    """Build :func:`make_layer` ``(kind)`` and a seeded ``(batch, dim, side, side)`` input, then :func:`measure`.

    Returns:
        ``(seconds, peak_mb)``.
    """
    torch.manual_seed(seed)
    layer = make_layer(kind, dim, **layer_kwargs).to(device)
    x = torch.randn(batch, dim, side, side, device=device)
    return measure(layer, x, repeats)


def _measure_isolated(kind: str, side: int, **kwargs) -> tuple[float, float]:
    """:func:`measure_cell` in a fresh Python process (same interpreter, one torch thread)."""
    import json
    import os
    import subprocess
    import sys

    code = ("import json, sys, torch; torch.set_num_threads(1); from cliphaze.analysis.cost import measure_cell; "
            "a = json.loads(sys.argv[1]); print(json.dumps(measure_cell(a.pop('kind'), a.pop('side'), **a)))")
    args = json.dumps({"kind": kind, "side": side, **{k: (str(v) if isinstance(v, torch.device) else v)
                                                        for k, v in kwargs.items()}})
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code, args], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"measuring {kind} at {side}^2 failed:\n{out.stderr[-2000:]}")
    seconds, mb = json.loads(out.stdout.strip().splitlines()[-1])
    return float(seconds), float(mb)


def cost_table(
    sizes: Sequence[int] = (128, 256, 512, 1024),
    kinds: Sequence[str] = COST_KINDS,
    dim: int = 16,
    batch: int = 1,
    repeats: int = 3,
    max_gb: float = 2.0,
    device: str | torch.device = "cpu",
    seed: int = 0,
    isolate: bool = True,
    progress: Callable[[CostRow], None] | None = None,
    **layer_kwargs,
) -> list[CostRow]:
    """Measure every kind at every ``side x side`` map size.

    Args:
        sizes: map sides.
        kinds: subset of :data:`COST_KINDS`.
        dim: channels ``c`` of the map.
        batch: ``b``.
        repeats: timed runs per cell (median).
        max_gb: skip full attention when its ``(b, heads, l, l)`` float32 scores exceed this.
        device: where to run.
        seed: seeds the layers and the input.
        isolate: measure each cell in a fresh process (module docstring: why); False measures in
            this process (faster; CPU memory then only a lower bound).
        progress: called with each finished row (e.g. ``print``).
        **layer_kwargs: passed to :func:`make_layer` (``window_size``, ``d_state``, ...).

    Returns:
        one :class:`CostRow` per (kind, size), sizes in the outer loop.
    """
    heads = layer_kwargs.get("num_heads", 1)
    rows = []
    for side in sizes:
        for kind in kinds:
            l = side * side
            score_gb = batch * heads * l * l * 4 / 1e9
            if kind == "full-attention" and score_gb > max_gb:
                row = CostRow(kind, side, l, math.nan, math.nan, f"skipped: scores alone need {score_gb:.1f} GB")
            else:
                kw = dict(dim=dim, batch=batch, repeats=repeats, device=str(device), seed=seed, **layer_kwargs)
                seconds, mb = _measure_isolated(kind, side, **kw) if isolate else measure_cell(kind, side, **kw)
                row = CostRow(kind, side, l, seconds, mb)
            rows.append(row)
            if progress is not None:
                progress(row)
    return rows


def growth_exponent(rows: Sequence[CostRow], kind: str, min_side: int = 0, field: str = "seconds") -> float:
    """Least-squares slope ``alpha`` of ``log(field)`` against ``log(pixels)`` for one kind.

    Args:
        rows: :func:`cost_table` output.
        kind: which layer.
        min_side: ignore sizes below this (fixed overhead dominates there).
        field: ``"seconds"`` or ``"peak_mb"``.

    Returns:
        ``alpha`` (1: linear in pixels, 2: quadratic); NaN with fewer than two usable points.
    """
    pts = [(math.log(r.pixels), math.log(getattr(r, field))) for r in rows
           if r.kind == kind and r.side >= min_side and getattr(r, field) == getattr(r, field) and getattr(r, field) > 0]
    if len(pts) < 2:
        return math.nan
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx if sxx > 0 else math.nan


def format_cost_table(rows: Sequence[CostRow]) -> str:
    """A Markdown table: one line per size, time (ms) and peak memory (MB) per kind."""
    kinds = list(dict.fromkeys(r.kind for r in rows))
    sides = list(dict.fromkeys(r.side for r in rows))
    head = "| map | " + " | ".join(f"{k} ms | {k} MB" for k in kinds) + " |"
    sep = "|---|" + "---:|---:|" * len(kinds)
    lines = [head, sep]
    for s in sides:
        cells = []
        for k in kinds:
            r = next((r for r in rows if r.side == s and r.kind == k), None)
            if r is None or r.seconds != r.seconds:
                cells += ["-", "-"]
            else:
                cells += [f"{1e3 * r.seconds:.1f}", f"{r.peak_mb:.0f}" if r.peak_mb == r.peak_mb else "n/a"]
        lines.append(f"| {s}x{s} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
