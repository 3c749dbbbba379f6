"""Haze families: several independent ways to make a transmission map, behind one function.

A model that only ever saw one haze generator learns that generator (issue: a density guide
trained on ramp + value-noise haze scored 0.83 on it and 0.45 on other haze). Each family below
builds the optical depth ``tau(x) = -ln t(x)`` differently; all then share the scattering model
(:func:`cliphaze.haze.apply_scattering`)::

    I = J t + A (1 - t),       t = clip(exp(-tau), T_MIN, 1),   T_MIN = 0.05

============  ====================================================================================
family        optical depth ``tau``
============  ====================================================================================
ramp          ``beta (1 - p + 2 p n(x)) d(x)``: the smooth ramp depth proxy times multi-octave value
              noise (:func:`cliphaze.haze.synthesize_haze`'s model; ``p = 0`` for 30 % of images)
fields        ``beta (0.1 + 0.9 F(x))`` with ``F`` a content-independent mix of a power-law
              (fractional Brownian) field, Gaussian blobs and soft bands: no depth, no ramp
room          ``beta d(x)`` with ``d`` the piecewise-planar depth of a box room with box fronts
              (:func:`cliphaze.haze.depth.room_depth`)
real-depth    ``beta d(x)`` with a *measured* depth that belongs to the clear image (pass
              ``depth=``; :mod:`cliphaze.haze.real_depth` provides matching colour + depth pairs)
fog           ``beta P(y) (0.1 + 0.9 d(x)) (1 + a (n(x) - 1/2))``: ground fog whose density decays
              with height above a tilted layer top ``y_0``: ``P(y) = exp(-max(0, y_0 - y) / H)``
============  ====================================================================================

Options shared by every family (each drawn per image from the generator):

- ``airlight_colour``: ``"near-white"`` (the default; ``A ~ U(0.7, 1)`` plus a +-0.05 tint per
  channel, as :class:`cliphaze.haze.HazeConfig`), ``"grey"``, ``"warm"`` (sodium / sunset:
  ``A (1, 0.9, 0.72)``), ``"cool"`` (``A (0.78, 0.9, 1)``) or ``"any"`` (one of grey, warm, cool,
  near-white per image), with the level ``A ~ U(0.6, 1)`` for the coloured ones;
- ``dense=True``: ``beta`` from the dense range, so that ``t`` reaches ``T_MIN = 0.05``;
- ``noise``: sensor noise, Gaussian with standard deviation ``sigma`` (float, or a range drawn per
  image) plus Poisson-like shot noise ``sigma sqrt(I)``, added to the hazy image only;
- ``jpeg_quality``: re-encode the hazy image as JPEG (int or a range drawn per image).

``transmission`` and ``density = 1 - t`` are always exact (before noise and JPEG), so
``hazy == J t + A (1 - t)`` holds bit for bit when both are off. Lesson:
``notebooks/00_haze_and_data.ipynb``, section "Haze families".

Shapes: b batch, h height, w width (see :mod:`cliphaze.shapes`).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence

import numpy as np
import torch

from cliphaze.haze.depth import ramp_depth_proxy, room_depth
from cliphaze.haze.noise import band_field, blob_field, fbm_field, smooth_noise
from cliphaze.haze.scattering import HazeSample, apply_scattering, batch_depth

__all__ = ["HAZE_FAMILIES", "AIRLIGHT_COLOURS", "T_MIN", "synthesize", "draw_airlight", "add_sensor_noise",
           "jpeg_recompress", "family_optical_depth"]

T_MIN = 0.05
AIRLIGHT_COLOURS = ("near-white", "grey", "warm", "cool", "any")
_TINTS = {"grey": (1.0, 1.0, 1.0), "warm": (1.0, 0.9, 0.72), "cool": (0.78, 0.9, 1.0)}
#: Mean scattering coefficient ranges (normal, dense) per family; depth-like maps lie in [0.1, 1].
_BETA = {
    "ramp": ((0.3, 3.0), (2.5, 5.0)),
    "fields": ((0.3, 2.5), (2.0, 4.5)),
    "room": ((0.4, 3.0), (2.5, 5.0)),
    "real-depth": ((0.4, 3.0), (2.5, 5.0)),
    "fog": ((0.5, 3.0), (2.5, 5.5)),
}


def _u(lo: float, hi: float, n: int, g: torch.Generator | None) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def _tau_ramp(b, h, w, beta, g, depth=None):
    d = ramp_depth_proxy(b, h, w, generator=g) if depth is None else depth
    d = 0.1 + 0.9 * d
    p = _u(0.0, 1.0, b, g) * (torch.rand(b, generator=g) >= 0.3)
    n = smooth_noise(b, h, w, octaves=4, generator=g)
    pv = p.view(b, 1, 1, 1)
    return beta.view(b, 1, 1, 1) * (1 - pv + 2 * pv * n) * d, d, p


def _tau_fields(b, h, w, beta, g, depth=None):
    weights = torch.rand(b, 3, generator=g) * (torch.rand(b, 3, generator=g) < 0.7)
    weights[weights.sum(1) == 0, 0] = 1.0
    fields = torch.cat([fbm_field(b, h, w, generator=g), blob_field(b, h, w, generator=g),
                        band_field(b, h, w, generator=g)], dim=1)
    f = (weights.view(b, 3, 1, 1) * fields).sum(1, keepdim=True)
    lo, hi = f.amin(dim=(2, 3), keepdim=True), f.amax(dim=(2, 3), keepdim=True)
    f = (f - lo) / (hi - lo).clamp_min(1e-8)
    d = 0.1 + 0.9 * f
    return beta.view(b, 1, 1, 1) * d, d, torch.ones(b)


def _tau_room(b, h, w, beta, g, depth=None):
    d = room_depth(b, h, w, generator=g) if depth is None else depth
    d = 0.1 + 0.9 * d
    return beta.view(b, 1, 1, 1) * d, d, torch.zeros(b)


def _tau_real(b, h, w, beta, g, depth=None):
    if depth is None:
        raise ValueError(
            "family 'real-depth' needs the measured depth of the clear image (depth=...): a real "
            "depth map pasted onto an unrelated photo is not physical; use "
            "cliphaze.haze.real_depth.real_depth_pairs() for matching colour + depth pairs"
        )
    d = 0.1 + 0.9 * depth
    return beta.view(b, 1, 1, 1) * d, d, torch.zeros(b)


def _tau_fog(b, h, w, beta, g, depth=None):
    ys = torch.linspace(0, 1, h).view(1, 1, h, 1)
    xs = torch.linspace(-0.5, 0.5, w).view(1, 1, 1, w)
    top = _u(0.1, 0.8, b, g).view(b, 1, 1, 1)
    tilt = _u(-0.3, 0.3, b, g).view(b, 1, 1, 1)
    scale = _u(0.03, 0.3, b, g).view(b, 1, 1, 1)
    profile = torch.exp(-(top + tilt * xs - ys).clamp_min(0) / scale)
    d = ramp_depth_proxy(b, h, w, generator=g) if depth is None else depth
    d = 0.1 + 0.9 * d
    amp = _u(0.0, 1.0, b, g).view(b, 1, 1, 1)
    n = smooth_noise(b, h, w, octaves=3, generator=g)
    return beta.view(b, 1, 1, 1) * profile * d * (1 + amp * (n - 0.5)), d, amp.flatten()


_TAU: dict[str, Callable] = {"ramp": _tau_ramp, "fields": _tau_fields, "room": _tau_room,
                             "real-depth": _tau_real, "fog": _tau_fog}

#: The registry: family name -> one-line description (the equations are in the module docstring).
HAZE_FAMILIES = {
    "ramp": "ramp depth proxy x multi-octave value noise (the original synthesiser)",
    "fields": "content-independent power-law fields, blobs and bands, no depth",
    "room": "piecewise-planar depth of a box room with box fronts",
    "real-depth": "measured depth of the matching colour image (motorcycle, RGB-D frames)",
    "fog": "ground fog: density decaying with height above a tilted layer, optional noise",
}


def family_optical_depth(family: str, b: int, h: int, w: int, beta: torch.Tensor,
                         generator: torch.Generator | None, depth: torch.Tensor | None = None):
    """``(tau (b, 1, h, w), depth-like map (b, 1, h, w), per-image modulation (b,))`` of ``family``."""
    if family not in _TAU:
        raise ValueError(f"unknown haze family {family!r}; choose one of {sorted(HAZE_FAMILIES)}")
    return _TAU[family](b, h, w, beta, generator, depth)


def draw_airlight(b: int, colour: str = "near-white", generator: torch.Generator | None = None) -> torch.Tensor:
    """Airlight ``(b, 3, 1, 1)`` of the given colour family (module docstring)."""
    if colour not in AIRLIGHT_COLOURS:
        raise ValueError(f"airlight_colour must be one of {AIRLIGHT_COLOURS}, got {colour!r}")
    rows = []
    names = ("near-white", "grey", "warm", "cool")
    picks = torch.randint(4, (b,), generator=generator)
    for i in range(b):
        c = names[int(picks[i])] if colour == "any" else colour
        if c == "near-white":
            base = _u(0.7, 1.0, 1, generator)
            a = (base + (torch.rand(3, generator=generator) * 2 - 1) * 0.05).clamp(0, 1)
        else:
            level = _u(0.6, 1.0, 1, generator)
            a = (level * torch.tensor(_TINTS[c])).clamp(0, 1)
        rows.append(a)
    return torch.stack(rows).view(b, 3, 1, 1)


def add_sensor_noise(x: torch.Tensor, sigma: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """``x + sigma (z_1 + sqrt(x) z_2)``, ``z`` standard normal (read + shot noise), clipped to [0, 1].

    Args:
        x: ``(b, 3, h, w)`` in [0, 1]. sigma: ``(b,)``.
    """
    b = x.shape[0]
    z1 = torch.randn(x.shape, generator=generator).to(x.device)
    z2 = torch.randn(x.shape, generator=generator).to(x.device)
    s = sigma.view(b, 1, 1, 1).to(x.device)
    return (x + s * (z1 + x.clamp_min(0).sqrt() * z2)).clamp(0, 1)


def jpeg_recompress(x: torch.Tensor, quality: Sequence[int]) -> torch.Tensor:
    """Encode and decode every image ``(b, 3, h, w)`` as JPEG at ``quality[i]`` (Pillow, 4:2:0)."""
    from PIL import Image

    out = []
    for img, q in zip(x, quality):
        arr = (img.detach().cpu().clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="JPEG", quality=int(q))
        dec = np.array(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
        out.append(torch.from_numpy(dec).permute(2, 0, 1).float() / 255.0)
    return torch.stack(out).to(x.device)


def _per_image(value, b: int, g: torch.Generator | None) -> torch.Tensor | None:
    if value is None:
        return None
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return _u(float(value[0]), float(value[1]), b, g)
    v = torch.as_tensor(value, dtype=torch.float32).flatten()
    return v.expand(b).clone() if v.numel() == 1 else v


def synthesize(
    family: str,
    clear: torch.Tensor,
    generator: torch.Generator | None = None,
    *,
    seed: int | None = None,
    depth: torch.Tensor | None = None,
    beta: float | tuple[float, float] | torch.Tensor | None = None,
    airlight: float | torch.Tensor | None = None,
    airlight_colour: str = "near-white",
    dense: bool = False,
    noise: float | tuple[float, float] | None = None,
    jpeg_quality: int | tuple[int, int] | None = None,
) -> HazeSample:
    """Haze a batch of clear images with one family (module docstring: equations and options).

    Args:
        family: a key of :data:`HAZE_FAMILIES`.
        clear: ``(b, 3, h, w)`` or ``(3, h, w)`` in [0, 1].
        generator: torch CPU generator (all draws come from it, so a seed gives the same haze on
            every device); None: a fresh one seeded with ``seed``.
        seed: used only when ``generator`` is None.
        depth: ``(b, 1, h, w)`` relative depth in [0, 1]; required for ``"real-depth"``, replaces
            the drawn depth of ``"ramp"``, ``"room"`` and ``"fog"``, ignored by ``"fields"``.
        beta: mean scattering coefficient: scalar, ``(b,)``, or a ``(lo, hi)`` range; default the
            family's normal (or dense) range.
        airlight: explicit airlight (scalar grey, ``(3,)`` or ``(b, 3)``); overrides ``airlight_colour``.
        airlight_colour: ``"near-white"``, ``"grey"``, ``"warm"``, ``"cool"`` or ``"any"``.
        dense: draw ``beta`` from the dense range (``t`` down to 0.05).
        noise: sensor noise ``sigma``: a float or a ``(lo, hi)`` range per image; None/0: none.
        jpeg_quality: JPEG quality (int or ``(lo, hi)`` range per image); None: no recompression.

    Returns:
        :class:`cliphaze.haze.HazeSample` with ``kind = family``; ``transmission`` in [0.05, 1],
        ``density = 1 - t``, ``depth`` the family's depth-like map in [0.1, 1], ``beta`` ``(b,)``
        and ``patchiness`` the family's per-image modulation strength.
    """
    if family not in HAZE_FAMILIES:
        raise ValueError(f"unknown haze family {family!r}; choose one of {sorted(HAZE_FAMILIES)}")
    if clear.ndim == 3:
        clear = clear.unsqueeze(0)
    if clear.ndim != 4 or clear.shape[1] != 3:
        raise ValueError(f"clear must be (b, 3, h, w) or (3, h, w), got shape {tuple(clear.shape)}")
    if generator is None:
        generator = torch.Generator().manual_seed(seed if seed is not None else torch.seed() % 2**63)
    b, _, h, w = clear.shape
    dev = clear.device
    clear = clear.float()
    if depth is not None:
        depth = batch_depth(depth, b, h, w).clamp(0, 1)
    beta_t = _per_image(_BETA[family][1 if dense else 0] if beta is None else beta, b, generator)
    tau, d, mod = family_optical_depth(family, b, h, w, beta_t, generator, depth)
    t = torch.exp(-tau).clamp(T_MIN, 1.0)
    if airlight is None:
        a = draw_airlight(b, airlight_colour, generator)
    else:
        a = torch.as_tensor(airlight, dtype=torch.float32).cpu()
        a = (a.expand(b, 3) if a.numel() in (1, 3) else a.reshape(b, 3)).reshape(b, 3, 1, 1).clone()
    t, a, d = t.to(dev), a.to(dev), d.to(dev)
    hazy = apply_scattering(clear, t, a).clamp(0, 1)
    sigma = _per_image(noise, b, generator)
    if sigma is not None and bool((sigma > 0).any()):
        hazy = add_sensor_noise(hazy, sigma, generator)
    quality = _per_image(jpeg_quality, b, generator)
    if quality is not None:
        hazy = jpeg_recompress(hazy, [int(round(float(q))) for q in quality])
    return HazeSample(hazy=hazy, clear=clear, transmission=t, airlight=a, density=1.0 - t, depth=d,
                      beta=beta_t, patchiness=mod.float(), kind=family)

