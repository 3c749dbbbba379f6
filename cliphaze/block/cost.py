"""Parameter counts and FLOPs of a block (for the README's cost table and lesson 04).

FLOPs are counted, not estimated by hand, wherever PyTorch can count them: a
:class:`torch.utils.flop_counter.FlopCounterMode` run of one forward pass counts every matrix
multiply and convolution (a multiply-add is 2 FLOPs; grouped/depthwise convolutions counted
exactly). The selective scan is a loop of element-wise operations that the counter does not
see, so each SS2D layer adds the estimate VMamba's FLOP counter uses for one scan,
``9 b l D n + b D l`` (``D = k d`` scanned channels, ``n`` state size, ``l = h w``; the ``+ b D l``
is the ``D u`` skip). Other element-wise work (softmax, GELU, LayerNorm, the aggregation's
products) is left out, as in the usual fvcore/VMamba tables; say so next to any number.

Used in ``notebooks/04_trambada_block.ipynb``, section "What a block costs".
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from cliphaze.block.window_attention import explicit_attention

__all__ = ["count_parameters", "parameter_breakdown", "scan_flops", "count_flops", "FlopReport"]


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters in ``module`` (shared parameters counted once).

    Args:
        module: any module.
        trainable_only: count only parameters with ``requires_grad``.

    Returns:
        the count.
    """
    seen, total = set(), 0
    for p in module.parameters():
        if id(p) in seen or (trainable_only and not p.requires_grad):
            continue
        seen.add(id(p))
        total += p.numel()
    return total


def parameter_breakdown(module: nn.Module) -> dict[str, int]:
    """Parameters per direct child (e.g. ``norm1``, ``attn``, ``mamba``, ``aggregation``, ``ffn``).

    Args:
        module: a module such as :class:`~cliphaze.block.TrambaDA`.

    Returns:
        ``{child_name: count}`` plus ``"total"``; children without parameters are omitted.
    """
    out = {name: count_parameters(child) for name, child in module.named_children()}
    out = {k: v for k, v in out.items() if v}
    out["total"] = count_parameters(module)
    return out


def scan_flops(b: int, l: int, scanned_channels: int, d_state: int) -> int:
    """VMamba's estimate of one selective scan's FLOPs: ``9 b l D n + b D l``.

    Args:
        b: batch.
        l: sequence length ``h w``.
        scanned_channels: ``D = k d`` (all directions together).
        d_state: ``n``.

    Returns:
        FLOPs (an int).
    """
    return 9 * b * l * scanned_channels * d_state + b * scanned_channels * l


@dataclass
class FlopReport:
    """FLOPs of one forward pass.

    Attributes:
        counted: matmul / convolution FLOPs counted by ``FlopCounterMode``.
        scan: selective-scan FLOPs (estimate, :func:`scan_flops`), summed over SS2D layers.
        total: ``counted + scan``.
        by_module: counted FLOPs per direct child module (``FlopCounterMode``'s hierarchy).
    """

    counted: int
    scan: int
    by_module: dict[str, int]

    @property
    def total(self) -> int:
        return self.counted + self.scan


def count_flops(module: nn.Module, *args, **kwargs) -> FlopReport:
    """FLOPs of ``module(*args, **kwargs)`` (one forward pass, no gradient).

    SS2D layers are recognised by their ``A_logs`` parameter of shape ``(k d, n)`` (the VMamba
    parameter layout), so any SS2D implementation with that layout is counted.

    Args:
        module: the module to run.
        *args, **kwargs: its inputs (e.g. ``x (b, c, h, w)``, ``density=...``).

    Returns:
        :class:`FlopReport`.
    """
    scan_total = 0
    hooks = []

    def scan_hook(layer, inputs, output):
        nonlocal scan_total
        x = inputs[0]  # (b, h, w, c) channel-last SS2D input
        scanned, n = layer.A_logs.shape
        scan_total += scan_flops(x.shape[0], x.shape[1] * x.shape[2], scanned, n)

    for m in module.modules():
        if isinstance(getattr(m, "A_logs", None), torch.Tensor) and m.A_logs.ndim == 2:
            hooks.append(m.register_forward_hook(scan_hook))
    counter = FlopCounterMode(display=False, depth=2)
    try:
        with torch.no_grad(), explicit_attention(), counter:
            module(*args, **kwargs)
    finally:
        for h in hooks:
            h.remove()
    by_module: dict[str, int] = {}
    root = type(module).__name__
    for name, counts in counter.get_flop_counts().items():
        parts = name.split(".")
        if name != "Global" and len(parts) == 2 and parts[0] == root:
            by_module[parts[1]] = int(sum(counts.values()))
    return FlopReport(counted=int(counter.get_total_flops()), scan=scan_total, by_module=by_module)
