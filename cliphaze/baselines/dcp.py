"""The dark channel prior (He, Sun and Tang, CVPR 2009 / TPAMI 2011), with guided-filter refinement.

The classical baseline every dehazing table starts from. In haze-free outdoor patches at least
one colour channel is close to zero somewhere (shadows, colourful objects); haze lifts that
minimum towards the airlight, so the *dark channel* measures haze::

    dark(I)(x) = min_{y in patch(x)} min_c I_c(y)                         (15 x 15 patch)
    A          = brightest input pixel among the 0.1 % highest dark-channel pixels
    t~(x)      = 1 - omega * dark(I / A)(x)                                 (omega = 0.95)
    t          = guided_filter(gray(I), t~, radius, eps)                    (edge-aware refinement)
    J          = (I - A) / max(t, t0) + A                                   (t0 = 0.1)

``omega < 1`` keeps a little haze for depth perception; ``t0`` stops noise blowing up where the
haze is dense. The guided filter (He, Sun and Tang, ECCV 2010) replaces the original soft matting:
``q = a * I + b`` fitted in every window, O(1) per pixel with box filters.

The prior fails on large bright regions (sky, white walls: their dark channel is high without
haze, so they are over-dehazed into dark, noisy patches) and when haze is so dense that no dark
pixel remains. Lesson: ``notebooks/00_haze_and_data.ipynb``, section "The dark channel prior".

Shapes: b batch, h height, w width.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["DCPResult", "box_filter", "dark_channel", "estimate_airlight", "guided_filter", "dehaze_dcp", "dcp_transmission"]


def _as_batch(image: torch.Tensor) -> torch.Tensor:
    if image.ndim == 3:
        image = image.unsqueeze(0)
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"expected an RGB image (3, h, w) or batch (b, 3, h, w), got {tuple(image.shape)}")
    return image


def dark_channel(image: torch.Tensor, patch: int = 15) -> torch.Tensor:
    """Dark channel: minimum over colour channels, then over a ``patch x patch`` window.

    Args:
        image: ``(b, 3, h, w)`` in [0, 1].
        patch: odd window size (15 in the paper).

    Returns:
        ``(b, 1, h, w)``. Borders use replicate padding, so no artificial zeros enter the minimum.
    """
    if patch % 2 != 1:
        raise ValueError("patch must be odd")
    m = image.amin(dim=1, keepdim=True)
    r = patch // 2
    m = F.pad(m, (r, r, r, r), mode="replicate")
    return -F.max_pool2d(-m, kernel_size=patch, stride=1)


def estimate_airlight(image: torch.Tensor, dark: torch.Tensor, top_fraction: float = 0.001) -> torch.Tensor:
    """Airlight: among the ``top_fraction`` pixels with the highest dark channel, the brightest one.

    Args:
        image: ``(b, 3, h, w)``.
        dark: ``(b, 1, h, w)`` its dark channel.
        top_fraction: share of pixels considered (0.1 % in the paper).

    Returns:
        ``(b, 3, 1, 1)`` airlight. "Brightest" is the largest channel sum, as in the paper.
    """
    b, _, h, w = image.shape
    k = max(1, int(round(h * w * top_fraction)))
    idx = dark.view(b, -1).topk(k, dim=1).indices  # (b, k)
    flat = image.reshape(b, 3, -1)
    cand = torch.gather(flat, 2, idx.unsqueeze(1).expand(b, 3, k))  # (b, 3, k)
    best = cand.sum(dim=1).argmax(dim=1)  # (b,)
    return cand[torch.arange(b), :, best].view(b, 3, 1, 1)


def box_filter(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over a ``(2 r + 1)^2`` window, O(1) per pixel with cumulative sums.

    Windows are truncated at the border and normalised by the number of pixels they cover.

    Args:
        x: ``(b, c, h, w)``.
        radius: window radius ``r``.

    Returns:
        ``(b, c, h, w)`` box-filtered ``x`` (computed in float64 to avoid cumulative-sum drift).
    """
    dtype = x.dtype
    x = x.to(torch.float64)

    def along(t: torch.Tensor, dim: int) -> torch.Tensor:
        n = t.shape[dim]
        c = torch.cumsum(t, dim=dim)
        c = torch.cat([torch.zeros_like(c.narrow(dim, 0, 1)), c], dim=dim)
        i = torch.arange(n, device=t.device)
        hi = (i + radius + 1).clamp(max=n)
        lo = (i - radius).clamp(min=0)
        return c.index_select(dim, hi) - c.index_select(dim, lo)

    ones = torch.ones(1, 1, x.shape[2], x.shape[3], dtype=torch.float64, device=x.device)
    count = along(along(ones, 2), 3)
    return (along(along(x, 2), 3) / count).to(dtype)


def guided_filter(guide: torch.Tensor, src: torch.Tensor, radius: int = 60, eps: float = 1e-3) -> torch.Tensor:
    """Edge-preserving smoothing of ``src`` steered by a grey ``guide`` (He et al., ECCV 2010).

    In every window: ``a = cov(I, p) / (var(I) + eps)``, ``b = mean(p) - a mean(I)``; output
    ``q = mean(a) * I + mean(b)``.

    Args:
        guide: ``(b, 1, h, w)`` guidance image (grey input image).
        src: ``(b, 1, h, w)`` image to filter (the coarse transmission).
        radius: window radius.
        eps: regularisation; larger means smoother.

    Returns:
        ``(b, 1, h, w)`` filtered ``src``.
    """
    mean_i = box_filter(guide, radius)
    mean_p = box_filter(src, radius)
    cov_ip = box_filter(guide * src, radius) - mean_i * mean_p
    var_i = box_filter(guide * guide, radius) - mean_i * mean_i
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return box_filter(a, radius) * guide + box_filter(b, radius)


@dataclass
class DCPResult:
    """Output of :func:`dehaze_dcp`: dehazed ``(b, 3, h, w)``, refined and coarse transmission
    ``(b, 1, h, w)``, airlight ``(b, 3, 1, 1)`` and the dark channel ``(b, 1, h, w)``."""

    dehazed: torch.Tensor
    transmission: torch.Tensor
    coarse_transmission: torch.Tensor
    airlight: torch.Tensor
    dark: torch.Tensor


def dehaze_dcp(
    image: torch.Tensor,
    patch: int = 15,
    omega: float = 0.95,
    t0: float = 0.1,
    top_fraction: float = 0.001,
    refine: bool = True,
    radius: int = 60,
    eps: float = 1e-3,
) -> DCPResult:
    """Dehaze with the dark channel prior (module docstring has the equations).

    Args:
        image: ``(3, h, w)`` or ``(b, 3, h, w)`` hazy image(s) in [0, 1].
        patch: dark-channel window (15).
        omega: haze kept for depth perception (0.95).
        t0: lower bound on the transmission in the recovery (0.1).
        top_fraction: share of dark-channel pixels used to find the airlight (0.001).
        refine: refine the transmission with the guided filter (else use the blocky coarse one).
        radius, eps: guided-filter window radius and regularisation (radius 60 and eps 1e-3 suit
            images of about 600 x 400; scale the radius with the image size).

    Returns:
        :class:`DCPResult`; ``dehazed`` is clamped to [0, 1].
    """
    image = _as_batch(image).float()
    dark = dark_channel(image, patch)
    airlight = estimate_airlight(image, dark, top_fraction).clamp_min(1e-3)
    coarse = 1.0 - omega * dark_channel(image / airlight, patch)
    if refine:
        gray = (0.299 * image[:, 0:1] + 0.587 * image[:, 1:2] + 0.114 * image[:, 2:3])
        t = guided_filter(gray, coarse, radius=radius, eps=eps).clamp(0.0, 1.0)
    else:
        t = coarse
    dehazed = ((image - airlight) / t.clamp_min(t0) + airlight).clamp(0.0, 1.0)
    return DCPResult(dehazed=dehazed, transmission=t, coarse_transmission=coarse, airlight=airlight, dark=dark)


def dcp_transmission(image: torch.Tensor, **kwargs) -> torch.Tensor:
    """Refined DCP transmission ``t`` ``(b, 1, h, w)``; ``1 - t`` is the classical density map."""
    return dehaze_dcp(image, **kwargs).transmission
