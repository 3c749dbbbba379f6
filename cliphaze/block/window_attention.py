"""Swin-style window self-attention: the TrambaDA block's local (Transformer) path.

The feature map is cut into non-overlapping ``ws x ws`` windows and every window runs ordinary
multi-head self-attention over its ``ws * ws`` tokens, with a learned relative position bias
(Liu et al., "Swin Transformer", ICCV 2021, eq. 4)::

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_head) + B) V,     B[i, j] = table[rel(i, j)]

where ``rel(i, j)`` indexes the ``(2 ws - 1)^2`` possible 2-D offsets between tokens ``i`` and
``j`` of a window. Cost is linear in the number of pixels (``h w * ws^2`` per head), but the
receptive field of one layer is the window.

*Shifted windows.* Alternate blocks may roll the map by ``s = ws // 2`` before partitioning, so
that windows straddle the previous block's window borders. After the cyclic roll, the bottom and
right windows hold pixels that were far apart in the image; a mask forbids attention between
such regions. The result equals attention inside the windows of a partition of the *un-rolled*
image whose borders sit at ``s, s + ws, s + 2 ws, ...`` (what :func:`shifted_region_labels`
describes and the tests check directly).

*Any h and w.* The map is zero-padded at the bottom/right to multiples of ``ws`` and cropped
back. Unlike the original Swin code (which lets real tokens attend to the zero-padded ones),
padded tokens are masked out as keys here, so the output at real pixels does not depend on the
padding at all; in particular a window that covers the whole image computes exactly full
self-attention over the image (with relative position bias), whatever its size.

Derived in ``notebooks/04_trambada_block.ipynb``, section "Window attention, built inline".

Shapes: b batch, h height, w width, c channels (see :mod:`cliphaze.shapes`); ``ws`` is the
window size, ``nw`` the number of windows, ``t = ws * ws`` tokens per window.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn as nn
import torch.nn.functional as F

from cliphaze.shapes import check_shape

__all__ = [
    "WindowAttention",
    "window_partition",
    "window_merge",
    "relative_position_index",
    "shifted_region_labels",
    "window_attention_mask",
]


def window_partition(x: torch.Tensor, window_size: int) -> torch.Tensor:
    """Cut a channel-last map into non-overlapping windows.

    Args:
        x: ``(b, h, w, c)`` with ``h`` and ``w`` multiples of ``window_size``.
        window_size: ``ws``.

    Returns:
        ``(b * nw, ws * ws, c)`` tokens per window, windows in row-major order within each image
        (``nw = (h / ws) * (w / ws)``), tokens in row-major order within each window.
    """
    b, h, w, c = x.shape
    ws = window_size
    if h % ws or w % ws:
        raise ValueError(f"window_partition needs h, w multiples of {ws}, got {(h, w)}; pad first")
    x = x.view(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b * (h // ws) * (w // ws), ws * ws, c)


def window_merge(windows: torch.Tensor, window_size: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`.

    Args:
        windows: ``(b * nw, ws * ws, c)``.
        window_size: ``ws``.
        h, w: size of the (padded) map, multiples of ``ws``.

    Returns:
        ``(b, h, w, c)``.
    """
    ws = window_size
    nw = (h // ws) * (w // ws)
    b = windows.shape[0] // nw
    c = windows.shape[-1]
    x = windows.view(b, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h, w, c)


def relative_position_index(window_size: int) -> torch.Tensor:
    """Index into the relative-position bias table for every pair of tokens in a window.

    Token ``i`` sits at ``(y_i, x_i)``; the pair's offset ``(y_i - y_j, x_i - x_j)`` lies in
    ``[-(ws-1), ws-1]^2`` and is mapped to ``(y_i - y_j + ws - 1) * (2 ws - 1) + (x_i - x_j + ws - 1)``.

    Args:
        window_size: ``ws``.

    Returns:
        ``(ws * ws, ws * ws)`` long tensor with values in ``[0, (2 ws - 1)^2)``.
    """
    ws = window_size
    ys, xs = torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")
    coords = torch.stack([ys.flatten(), xs.flatten()])  # (2, t)
    rel = coords[:, :, None] - coords[:, None, :] + (ws - 1)  # (2, t, t), each in [0, 2 ws - 2]
    return rel[0] * (2 * ws - 1) + rel[1]


def shifted_region_labels(h: int, w: int, window_size: int, shift: int) -> torch.Tensor:
    """Which shifted window each pixel of the *un-rolled* image belongs to.

    Shifted-window attention equals attention inside the cells of a grid whose lines sit at
    ``shift + k * ws`` (rows and columns); pixels before the first line form their own strip. This
    is the partition the roll-and-mask implementation must reproduce (a test checks that the
    attention of :class:`WindowAttention` never crosses these cells). With ``shift = 0`` it is the
    plain window partition.

    Args:
        h, w: image size (any, not necessarily multiples of ``ws``).
        window_size: ``ws``.
        shift: ``s`` in ``[0, ws)``.

    Returns:
        ``(h, w)`` long tensor; equal labels = same window.
    """
    rows = torch.div(torch.arange(h) - shift, window_size, rounding_mode="floor") + 1
    cols = torch.div(torch.arange(w) - shift, window_size, rounding_mode="floor") + 1
    n_cols = (w + window_size) // window_size + 2
    return rows[:, None] * n_cols + cols[None, :]


def window_attention_mask(h: int, w: int, window_size: int, shift: int) -> torch.Tensor:
    """Which token pairs may attend to each other, per window, for a possibly shifted partition.

    The map (``h, w``: the real size) is padded to ``hp, wp`` (multiples of ``ws``) and, when
    ``shift > 0``, rolled by ``(-shift, -shift)``. Two tokens of the same window may attend when
    (a) the key is a real pixel (not padding) and (b) with a shift, both came from the same region
    of the un-rolled padded map (Swin's three slices per axis: ``[0, hp-ws)``, ``[hp-ws, hp-s)``,
    ``[hp-s, hp)`` of the rolled map).

    Args:
        h, w: real size of the map.
        window_size: ``ws``.
        shift: ``s`` in ``[0, ws)``.

    Returns:
        ``(nw, t, t)`` bool tensor, ``True`` where query ``i`` may attend to key ``j``;
        ``nw = (hp / ws) * (wp / ws)``, ``t = ws * ws``. Every real query can attend at least to
        itself.
    """
    ws = window_size
    hp, wp = -(-h // ws) * ws, -(-w // ws) * ws
    # Region id of every position of the rolled (and padded) map: Swin slices each axis into
    # [0, p-ws), [p-ws, p-s), [p-s, p); the last slice holds what the roll wrapped around.
    region = torch.zeros(hp, wp, dtype=torch.long)
    if shift > 0:
        row_slices = (slice(0, hp - ws), slice(hp - ws, hp - shift), slice(hp - shift, hp))
        col_slices = (slice(0, wp - ws), slice(wp - ws, wp - shift), slice(wp - shift, wp))
        for i, rs in enumerate(row_slices):
            for j, cs in enumerate(col_slices):
                region[rs, cs] = 3 * i + j
    real = torch.zeros(hp, wp, dtype=torch.bool)
    real[:h, :w] = True
    if shift > 0:
        real = torch.roll(real, shifts=(-shift, -shift), dims=(0, 1))
    region_w = window_partition(region[None, :, :, None], ws)[..., 0]  # (nw, t)
    real_w = window_partition(real[None, :, :, None], ws)[..., 0]  # (nw, t)
    same_region = region_w[:, :, None] == region_w[:, None, :]
    return same_region & real_w[:, None, :]


#: Whether inference (no autograd) uses the fused path; :func:`explicit_attention` turns it off.
_FUSED = [True]


@contextlib.contextmanager
def explicit_attention():
    """Run window attention through the explicit ``softmax(Q K^T / sqrt(d) + B + mask) V`` even
    without autograd (the FLOP counter uses it: the fused path recomputes the masked boundary
    windows, which is time, not model FLOPs)."""
    before = _FUSED[0]
    _FUSED[0] = False
    try:
        yield
    finally:
        _FUSED[0] = before


class WindowAttention(nn.Module):
    """Multi-head self-attention inside (optionally shifted) windows, for any ``h, w``.

    Implements ``softmax(Q K^T / sqrt(d_head) + B + mask) V`` per window (module docstring), then
    an output projection. Channel-last like Swin and SS2D.

    Args:
        dim: channels ``c``.
        num_heads: attention heads (``c`` must be divisible); the CLIPHaze description reads as
            single-head, so the block defaults to 1.
        window_size: ``ws``.
        shift: ``True`` rolls by ``ws // 2`` (Swin's shifted windows); an int gives the shift
            explicitly (``0 <= shift < ws``).
        qkv_bias: bias in the Q, K, V projection (Swin: True).
        attn_drop, proj_drop: dropout rates.

    Forward:
        x: ``(b, h, w, c)``, any ``h, w >= 1``.
        return_attention: also return the attention probabilities.

    Returns:
        ``(b, h, w, c)``; with ``return_attention`` also ``(b, nw, heads, t, t)`` probabilities
        over the padded/rolled windows (for pictures and tests).

    Notes:
        When one window covers the whole (padded) map the shift is skipped, as in Swin: rolling a
        single window only splits it into regions and removes context.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 1,
        window_size: int = 8,
        shift: bool | int = False,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ):
        super().__init__()
        if dim < 1 or num_heads < 1 or dim % num_heads:
            raise ValueError(f"dim ({dim}) must be a positive multiple of num_heads ({num_heads})")
        if window_size < 1:
            raise ValueError(f"window_size must be >= 1, got {window_size}")
        shift_px = (window_size // 2 if shift else 0) if isinstance(shift, bool) else int(shift)
        if not 0 <= shift_px < window_size:
            raise ValueError(f"shift must lie in [0, window_size={window_size}), got {shift_px}")
        self.dim, self.num_heads, self.window_size, self.shift = dim, num_heads, window_size, shift_px
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj_drop = nn.Dropout(proj_drop)
        # One learned bias per head and per relative offset (Swin: trunc_normal std 0.02).
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer("relative_position_index", relative_position_index(window_size), persistent=False)
        self._mask_cache: dict[tuple, torch.Tensor] = {}

    def extra_repr(self) -> str:
        return f"dim={self.dim}, num_heads={self.num_heads}, window_size={self.window_size}, shift={self.shift}"

    def relative_position_bias(self) -> torch.Tensor:
        """``(heads, t, t)`` bias ``B`` gathered from the table."""
        t = self.window_size**2
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return bias.view(t, t, self.num_heads).permute(2, 0, 1)

    def _mask(self, h: int, w: int, shift: int, device: torch.device) -> torch.Tensor:
        key = (h, w, shift, str(device))
        if key not in self._mask_cache:
            self._mask_cache[key] = window_attention_mask(h, w, self.window_size, shift).to(device)
        return self._mask_cache[key]

    def _masked_windows(self, h: int, w: int, shift: int, allowed: torch.Tensor) -> torch.Tensor:
        """Indices of the windows where some attention is forbidden (cached per size): the last
        row and column of windows when shifted or padded, none otherwise."""
        key = ("masked", h, w, shift, str(allowed.device))
        if key not in self._mask_cache:
            self._mask_cache[key] = torch.nonzero(~allowed.flatten(1).all(dim=1)).flatten()
        return self._mask_cache[key]

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        if x.ndim != 4 or x.shape[-1] != self.dim:
            raise ValueError(f"WindowAttention expects (b, h, w, c={self.dim}) channel-last, got {tuple(x.shape)}")
        b, h, w, c = x.shape
        ws = self.window_size
        hp, wp = -(-h // ws) * ws, -(-w // ws) * ws
        shift = self.shift if (hp > ws or wp > ws) else 0
        if (hp, wp) != (h, w):
            x = F.pad(x, (0, 0, 0, wp - w, 0, hp - h))  # zero-pad bottom/right; masked as keys below
        if shift:
            x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
        windows = window_partition(x, ws)  # (b * nw, t, c)
        bnw, t, _ = windows.shape
        qkv = self.qkv(windows).view(bnw, t, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # each (b * nw, heads, t, head_dim)
        allowed = self._mask(h, w, shift, x.device)  # (nw, t, t)
        if not return_attention and not torch.is_grad_enabled() and _FUSED[0]:
            masked = self._masked_windows(h, w, shift, allowed)
            out, attn = self._attend_fused(q, k, v, allowed, b, masked), None
        else:
            out, attn = self._attend(q, k, v, allowed, b)
        out = self.proj_drop(self.proj(out.transpose(1, 2).reshape(bnw, t, c)))
        out = window_merge(out, ws, hp, wp)
        if shift:
            out = torch.roll(out, shifts=(shift, shift), dims=(1, 2))
        out = check_shape(out[:, :h, :w, :].contiguous(), (b, h, w, c), "window attention output")
        return (out, attn) if return_attention else out

    def _attend_fused(self, q, k, v, allowed, b, masked):
        """Inference path: the same ``softmax(Q K^T / sqrt(d) + B + mask) V`` through PyTorch's
        fused ``scaled_dot_product_attention`` (1.3-2x faster on one CPU thread at the shipped
        model's sizes, equal to float rounding). Windows are a batch axis. Every window runs with
        the bias ``B`` alone (broadcast, no copy); then the few windows with forbidden pairs
        (``masked``: the last row and column of a shifted or padded map) run again with ``B`` +
        the mask (``finfo.min`` where forbidden, exactly as :meth:`_attend` fills it) and replace
        their first result. Building the full (nw, heads, t, t) mask instead costs more than the
        attention itself at 512 x 512."""
        bnw, heads, t, hd = q.shape
        nw = bnw // b
        bias = self.relative_position_bias().to(q.dtype)                       # (heads, t, t)
        # 4-D inputs (windows x images as the batch axis): PyTorch's fused CPU kernel takes only
        # 4-D attention; 5-D falls back to the unfused math path (measured 2-3x slower).
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias[None], scale=self.scale)
        if masked.numel():
            rows = (masked[None] + nw * torch.arange(b, device=masked.device)[:, None]).flatten()
            mask = bias[None].masked_fill(~allowed[masked][:, None], torch.finfo(q.dtype).min)
            out[rows] = F.scaled_dot_product_attention(
                q[rows], k[rows], v[rows], attn_mask=mask.repeat(b, 1, 1, 1), scale=self.scale)
        return out

    def _attend(self, q, k, v, allowed, b):
        """Explicit attention (training, and when the probabilities are asked for); returns the
        (b*nw, heads, t, head_dim) output and the (b, nw, heads, t, t) probabilities."""
        bnw, _, t, _ = q.shape
        nw = bnw // b
        scores = (q * self.scale) @ k.transpose(-2, -1) + self.relative_position_bias()  # (b*nw, heads, t, t)
        scores = scores.view(b, nw, self.num_heads, t, t)
        # A finite minimum (not -inf): probabilities become exactly 0 after the max-subtracting
        # softmax, yet a padded query whose keys are all masked stays finite (no NaN in backward).
        scores = scores.masked_fill(~allowed[None, :, None], torch.finfo(scores.dtype).min)
        attn = scores.softmax(dim=-1)
        return self.attn_drop(attn).view(bnw, self.num_heads, t, t) @ v, attn
