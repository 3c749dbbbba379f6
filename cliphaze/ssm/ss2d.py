"""SS2D: the four-direction selective scan over a 2-D feature map (VMamba v0 layout).

Derived in notebook 03, section 9 "SS2D: the Mamba path of the TrambaDA block" (its receptive
field in section 10). For x (b, h, w, c):

    x, z   = in_proj(x)                      (b, h, w, d) each, d = ssm_ratio * c
    x      = silu(depthwise_conv(x))         (b, d, h, w)
    xs     = cross_scan(x)                   (b, k, d, l)
    [dt_k, B_k, C_k] = x_proj_weight[k] @ xs_k          (r + 2n channels per direction)
    delta_k = dt_projs_weight[k] @ dt_k      (b, k, d, l), bias dt_projs_bias (softplus in the scan)
    A = -exp(A_logs)                         (k d, n)
    ys     = selective_scan(xs, delta, A, B, C, Ds)   one scan, k d channels, B/C grouped by direction
    y      = out_norm(cross_merge(ys))       LayerNorm over d
    out    = out_proj(y * silu(z))           (b, h, w, c)

Parameter names and shapes are those of the public VMamba v0 / MambaIR ``SS2D`` so that
``state_dict``s interchange: ``in_proj.weight`` (2d or d, c), ``conv2d.weight`` (d, 1, k, k) and
``conv2d.bias`` (d,), ``x_proj_weight`` (k, r + 2n, d), ``dt_projs_weight`` (k, d, r),
``dt_projs_bias`` (k, d), ``A_logs`` (k d, n), ``Ds`` (k d,), ``out_norm`` LayerNorm(d),
``out_proj.weight`` (c, d). With ``d_state == 1`` the z gate is dropped (VMamba's cheap
"no-z" variant): ``in_proj`` then maps c -> d only and ``out = out_proj(out_norm(y))``.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..shapes import check_shape
from .cross_scan import DIRECTIONS, cross_merge, cross_scan
from .dispatch import selective_scan

__all__ = ["SS2D", "dt_bias_init"]


def dt_bias_init(d: int, k: int = 1, dt_min: float = 1e-3, dt_max: float = 0.1,
                 dt_init_floor: float = 1e-4, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mamba's delta-bias initialisation: ``softplus^-1(dt)``, ``dt = exp(U[log dt_min, log dt_max])``.

    So that at initialisation ``softplus(bias)`` (the step size for a zero projection) is spread
    log-uniformly over [dt_min, dt_max], floored at ``dt_init_floor``.

    Returns:
        (k, d) tensor; ``softplus`` of it recovers dt.
    """
    dt = torch.exp(torch.rand(k, d, generator=generator) * (math.log(dt_max) - math.log(dt_min))
                   + math.log(dt_min)).clamp(min=dt_init_floor)
    return dt + torch.log(-torch.expm1(-dt))          # inverse of softplus


class SS2D(nn.Module):
    """Four-direction (or 1/2-direction) 2-D selective scan, channels last.

    Args:
        d_model: channels ``c`` of the input and output.
        d_state: state size ``n`` per channel (16; 1 gives VMamba's no-z variant).
        ssm_ratio: ``d = int(ssm_ratio * c)`` channels inside the scan.
        dt_rank: rank ``r`` of the delta projection; ``"auto"`` = ``ceil(c / 16)``.
        d_conv: odd kernel size of the depthwise convolution before the scan (3).
        directions: ``k`` in {1, 2, 4}: row-major only, row-major both ways, or VMamba's four.
        dropout: dropout after ``out_proj``.
        backend: selective-scan backend (see :func:`cliphaze.ssm.resolve_backend`); None = auto.

    Shapes:
        forward(x: (b, h, w, c)) -> (b, h, w, c), any h, w >= 1 and batch b.

    Initialisation (as Mamba / VMamba): ``A_logs = log(1..n)`` per channel, ``Ds = 1``,
    ``dt_projs_weight ~ U(-r^-1/2, r^-1/2)``, ``dt_projs_bias`` from :func:`dt_bias_init`,
    ``x_proj_weight ~ U(-d^-1/2, d^-1/2)`` (nn.Linear's default), the rest PyTorch defaults.
    """

    def __init__(self, d_model: int, d_state: int = 16, ssm_ratio: float = 2.0,
                 dt_rank: int | str = "auto", d_conv: int = 3, directions: int = 4,
                 dropout: float = 0.0, backend: str | None = None):
        super().__init__()
        if d_model < 1 or d_state < 1:
            raise ValueError(f"d_model and d_state must be >= 1, got {d_model}, {d_state}")
        if directions not in DIRECTIONS:
            raise ValueError(f"directions must be one of {DIRECTIONS}, got {directions!r}")
        if d_conv < 1 or d_conv % 2 == 0:
            raise ValueError(f"d_conv must be a positive odd kernel size, got {d_conv}")
        d_inner = int(ssm_ratio * d_model)
        if d_inner < 1:
            raise ValueError(f"ssm_ratio * d_model must be >= 1, got {ssm_ratio} * {d_model}")
        if dt_rank == "auto":
            dt_rank = math.ceil(d_model / 16)
        if not isinstance(dt_rank, int) or dt_rank < 1:
            raise ValueError(f"dt_rank must be 'auto' or a positive int, got {dt_rank!r}")
        self.d_model, self.d_state, self.d_inner, self.dt_rank = d_model, d_state, d_inner, dt_rank
        self.directions, self.backend = directions, backend
        self.use_z = d_state > 1
        k = directions

        self.in_proj = nn.Linear(d_model, d_inner * (2 if self.use_z else 1), bias=False)
        self.conv2d = nn.Conv2d(d_inner, d_inner, d_conv, padding=(d_conv - 1) // 2,
                                groups=d_inner, bias=True)
        self.act = nn.SiLU()
        bound = d_inner ** -0.5
        self.x_proj_weight = nn.Parameter(
            torch.empty(k, dt_rank + 2 * d_state, d_inner).uniform_(-bound, bound))
        self.dt_projs_weight = nn.Parameter(
            torch.empty(k, d_inner, dt_rank).uniform_(-dt_rank ** -0.5, dt_rank ** -0.5))
        self.dt_projs_bias = nn.Parameter(dt_bias_init(d_inner, k))
        A = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(k * d_inner, 1)
        self.A_logs = nn.Parameter(torch.log(A))                          # (k d, n)
        self.Ds = nn.Parameter(torch.ones(k * d_inner))                   # (k d,)
        self.A_logs._no_weight_decay = True
        self.Ds._no_weight_decay = True
        self.out_norm = nn.LayerNorm(d_inner)
        self.out_proj = nn.Linear(d_inner, d_model, bias=False)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def extra_repr(self) -> str:
        return (f"d_model={self.d_model}, d_inner={self.d_inner}, d_state={self.d_state}, "
                f"dt_rank={self.dt_rank}, directions={self.directions}, z_gate={self.use_z}")

    def forward_core(self, x: torch.Tensor) -> torch.Tensor:
        """Cross-scan, selective scan and cross-merge: (b, d, h, w) -> (b, h, w, d) (before norm)."""
        b, d, h, w = x.shape
        k, n, r, l = self.directions, self.d_state, self.dt_rank, h * w
        xs = cross_scan(x, k)                                                        # (b, k, d, l)
        # Projections laid out (b, k, l, .): B and C are then handed to the scan as (b, k, n, l)
        # views of (b, k, l, n) memory, the layout the compiled scan reads (no transpose copy).
        x_dbl = torch.einsum("bkdl,kcd->bklc", xs, self.x_proj_weight)               # (b, k, l, r+2n)
        dts, Bs, Cs = torch.split(x_dbl, [r, n, n], dim=3)
        Bs, Cs = Bs.transpose(2, 3), Cs.transpose(2, 3)                              # (b, k, n, l)
        dts = torch.einsum("bklr,kdr->bkdl", dts, self.dt_projs_weight)              # (b, k, d, l)
        # The scan runs in float32 as in VMamba (float64 inputs stay float64, for gradcheck).
        f = torch.float64 if x.dtype == torch.float64 else torch.float32
        ys = selective_scan(
            xs.to(f).reshape(b, k * d, l), dts.to(f).reshape(b, k * d, l),
            -torch.exp(self.A_logs.to(f)), Bs.to(f), Cs.to(f),   # views: each backend lays them out
            self.Ds.to(f), z=None, delta_bias=self.dt_projs_bias.to(f).reshape(-1),
            delta_softplus=True, backend=self.backend,
        ).reshape(b, k, d, l)
        return cross_merge(ys, h, w).permute(0, 2, 3, 1)                             # (b, h, w, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x (b, h, w, c). Returns: (b, h, w, c)."""
        if x.dim() != 4 or x.shape[-1] != self.d_model:
            raise ValueError(f"SS2D expects (b, h, w, {self.d_model}) channels-last input, "
                             f"got shape {tuple(x.shape)}")
        b, h, w, _ = x.shape
        xz = self.in_proj(x)
        if self.use_z:
            x, z = xz.chunk(2, dim=-1)                                                # (b, h, w, d)
        else:
            x, z = xz, None
        # The permuted view is channels-last memory: the depthwise convolution runs on it directly
        # (no copy, and faster than on NCHW on CPU).
        x = self.act(self.conv2d(x.permute(0, 3, 1, 2)))                             # (b, d, h, w)
        y = self.out_norm(self.forward_core(x).to(x.dtype))
        if z is not None:
            y = y * F.silu(z)
        out = self.dropout(self.out_proj(y))
        return check_shape(out, (b, h, w, self.d_model), "SS2D output")
