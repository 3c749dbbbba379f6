"""The TrambaDA block (Transformer-Mamba Dual Aggregation), CLIPHaze's unit.

For features ``x`` ``(b, c, h, w)``, density ``M`` ``(b, 1, H, W)`` and CLIP tokens ``T``
``(b, t, e)`` (both optional)::

    u            = LayerNorm(x)                                  (over channels, per pixel)
    F_attn       = WindowAttention(u)                            local path (Swin-style)
    F_mamba      = SS2D(u)                                       global path (VMamba SS2D)
    F, (Wa, Wm)  = Aggregation(F_attn, F_mamba; u, M, T)         F = Wa * F_attn + Wm * F_mamba
    x            = x + F
    out          = x + FFN(LayerNorm(x))

*Feed-forward.* The paper says "feed-forward" without details. The default ``ffn="gdfn"`` is
Restormer's gated depthwise feed-forward network
(``W_out (GELU(dw(W_1 y)) * dw(W_2 y))``, Zamir et al., CVPR 2022): the depthwise 3x3 gives the
sub-layer a little local spatial mixing and the gate lets it suppress channels per pixel, which
image-restoration Transformers (Restormer, and MambaIR's conv-based sub-layer in spirit) found
worth its cost; a plain two-layer MLP (``ffn="mlp"``, ViT/Swin) is available for comparison.
Hidden width ``int(mlp_ratio * c)`` either way.

*Without guidance.* The block runs with ``density=None`` and ``tokens=None``; the aggregation
then does what its ``on_missing`` says (default: the fixed 0.5 / 0.5 sum, see
:mod:`cliphaze.block.aggregation`). Only the paths an aggregation reads are built (the
``attention`` and ``mamba`` ablations have no parameters for the other path).

Derived in ``notebooks/04_trambada_block.ipynb``, section "The TrambaDA block".
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from cliphaze.block.aggregation import Aggregation, make_aggregation
from cliphaze.block.window_attention import WindowAttention
from cliphaze.shapes import check_shape

__all__ = ["TrambaDA", "GatedDepthwiseFFN", "MLP", "FFN_KINDS"]

FFN_KINDS = ("gdfn", "mlp")


class GatedDepthwiseFFN(nn.Module):
    """Restormer's gated depthwise feed-forward network (GDFN).

    ``y -> W_out (GELU(dw_1(W_1 y)) * dw_2(W_2 y))`` with 1x1 projections ``W`` and depthwise 3x3
    convolutions ``dw`` (one conv over the ``2 hidden`` channels, as in Restormer).

    Args:
        dim: channels ``c``.
        hidden: hidden width.

    Forward: ``(b, c, h, w) -> (b, c, h, w)``.
    """

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.project_in = nn.Conv2d(dim, 2 * hidden, 1)
        self.dwconv = nn.Conv2d(2 * hidden, 2 * hidden, 3, padding=1, groups=2 * hidden)
        self.project_out = nn.Conv2d(hidden, dim, 1)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        gate, value = self.dwconv(self.project_in(y)).chunk(2, dim=1)
        return self.project_out(F.gelu(gate) * value)


class MLP(nn.Module):
    """Per-pixel two-layer MLP ``W_2 GELU(W_1 y)`` (ViT / Swin), as 1x1 convolutions.

    Args:
        dim: channels ``c``.
        hidden: hidden width.

    Forward: ``(b, c, h, w) -> (b, c, h, w)``.
    """

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(y)))


class TrambaDA(nn.Module):
    """Transformer-Mamba Dual Aggregation block (see the module docstring for the equations).

    Args:
        dim: channels ``c``.
        num_heads: heads of the window attention (``c`` divisible by it).
        window_size: attention window ``ws``.
        shift: shifted windows (use on alternate blocks).
        aggregation: a kind from :data:`cliphaze.block.AGGREGATION_KINDS` (``"density"``,
            ``"semantic"``, ``"sum"``, ``"static"``, ``"attention"``, ``"mamba"``) or an
            :class:`~cliphaze.block.aggregation.Aggregation` instance.
        d_state, ssm_ratio, directions: SS2D's state size ``n``, expansion ``d / c`` and scan
            directions ``k`` (None: :class:`cliphaze.ssm.SS2D`'s own defaults, kept there only).
        mlp_ratio: hidden width of the feed-forward, ``int(mlp_ratio * c)``.
        clip_dim: width ``e`` of CLIP image tokens (required by ``"semantic"``).
        ffn: ``"gdfn"`` (default) or ``"mlp"``.
        d_conv: depthwise kernel of SS2D.
        ssm_backend: selective-scan backend for SS2D (None = automatic).
        on_missing: guided aggregations without guidance: ``"equal"`` (0.5 / 0.5) or ``"raise"``.
        attn_drop, proj_drop: dropout in the attention path.

    Forward:
        x: ``(b, c, h, w)``, any ``h, w >= 1``.
        density: optional ``(b, 1, H, W)`` (or ``(1, 1, H, W)``) haze density in [0, 1], any
            ``H, W`` (resized to ``h, w``).
        tokens: optional ``(b, t, e)`` CLIP image tokens, any ``t``.
        return_weights: also return ``(W_a, W_m)``.

    Returns:
        ``(b, c, h, w)``; with ``return_weights`` the tuple ``(out, (W_a, W_m))`` (each
        ``(b, c, h, w)``, attached to the graph). Every call also stores detached copies in
        ``self.last_weights`` for visualisation.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 1,
        window_size: int = 8,
        shift: bool = False,
        aggregation: str | Aggregation = "density",
        d_state: int | None = None,
        ssm_ratio: float | None = None,
        directions: int | None = None,
        mlp_ratio: float = 2.0,
        clip_dim: int | None = None,
        ffn: str = "gdfn",
        d_conv: int = 3,
        ssm_backend: str | None = None,
        on_missing: str = "equal",
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ):
        super().__init__()
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        if ffn not in FFN_KINDS:
            raise ValueError(f"ffn must be one of {FFN_KINDS}, got {ffn!r}")
        hidden = int(mlp_ratio * dim)
        if hidden < 1:
            raise ValueError(f"mlp_ratio * dim must be >= 1, got {mlp_ratio} * {dim}")
        self.dim = dim
        if isinstance(aggregation, str):
            aggregation = make_aggregation(aggregation, dim, clip_dim=clip_dim, on_missing=on_missing)
        elif not isinstance(aggregation, Aggregation):
            raise TypeError(f"aggregation must be a kind name or an Aggregation, got {type(aggregation).__name__}")
        elif aggregation.dim != dim:
            raise ValueError(f"aggregation was built for dim {aggregation.dim}, block has dim {dim}")
        self.aggregation = aggregation
        self.norm1 = nn.LayerNorm(dim)
        self.attn = (
            WindowAttention(dim, num_heads, window_size, shift, attn_drop=attn_drop, proj_drop=proj_drop)
            if aggregation.uses_attention
            else None
        )
        if aggregation.uses_mamba:
            from cliphaze.ssm import SS2D  # the scan package is only needed when the path exists

            given = {"d_state": d_state, "ssm_ratio": ssm_ratio, "directions": directions}
            self.mamba = SS2D(dim, d_conv=d_conv, backend=ssm_backend,
                              **{k: v for k, v in given.items() if v is not None})
        else:
            self.mamba = None
        self.norm2 = nn.LayerNorm(dim)
        self.ffn_kind = ffn
        self.ffn = GatedDepthwiseFFN(dim, hidden) if ffn == "gdfn" else MLP(dim, hidden)
        self.last_weights: tuple[torch.Tensor, torch.Tensor] | None = None

    def paths(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Normalised input and the two paths' outputs, before aggregation.

        Args:
            x: ``(b, c, h, w)``.

        Returns:
            ``(u, F_attn, F_mamba)``, each ``(b, c, h, w)`` (``None`` for a path not built).
        """
        u = self.norm1(x.permute(0, 2, 3, 1))  # (b, h, w, c): both paths are channel-last
        f_attn = self.attn(u).permute(0, 3, 1, 2) if self.attn is not None else None
        f_mamba = self.mamba(u).permute(0, 3, 1, 2) if self.mamba is not None else None
        return u.permute(0, 3, 1, 2), f_attn, f_mamba

    def forward(self, x: torch.Tensor, density: torch.Tensor | None = None,
                tokens: torch.Tensor | None = None, return_weights: bool = False):
        if x.ndim != 4 or x.shape[1] != self.dim:
            raise ValueError(f"TrambaDA expects (b, c={self.dim}, h, w), got {tuple(x.shape)}")
        u, f_attn, f_mamba = self.paths(x)
        fused, (w_a, w_m) = self.aggregation(f_attn, f_mamba, features=u, density=density, tokens=tokens)
        x = x + fused
        x = x + self.ffn(self.norm2(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2))
        self.last_weights = (w_a.detach(), w_m.detach())
        x = check_shape(x, (u.shape[0], self.dim, u.shape[2], u.shape[3]), "TrambaDA output")
        return (x, (w_a, w_m)) if return_weights else x
