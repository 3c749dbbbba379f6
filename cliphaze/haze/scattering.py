"""The atmospheric scattering model and the haze synthesiser.

Koschmieder's model, as used by every synthetic dehazing benchmark::

    I(x) = J(x) t(x) + A (1 - t(x)),      t(x) = exp(-beta(x) d(x))

``J`` is the clear scene radiance, ``A`` the global airlight (the colour of the haze), ``d`` the
scene depth and ``beta`` the scattering coefficient. Homogeneous haze has one ``beta`` per image
(RESIDE, SOTS); non-homogeneous haze (NH-HAZE, Dense-Haze) looks like patchy clouds, which we model
by modulating ``beta`` with multi-octave smooth noise::

    beta(x) = beta * (1 - p + 2 p * noise(x))       (noise in [0, 1], p = patchiness in [0, 1])

so the mean of ``beta(x)`` stays ``beta`` and ``p = 0`` is homogeneous haze. The haze density the
CLIP guide is asked to predict is ``1 - t``. Derived in ``notebooks/00_haze_and_data.ipynb``
(sections "The scattering model" and "Non-homogeneous haze").

Shapes: b batch, h height, w width (see :mod:`cliphaze.shapes`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from cliphaze.haze.depth import ramp_depth_proxy
from cliphaze.haze.noise import smooth_noise

__all__ = ["HazeSample", "HazeConfig", "apply_scattering", "synthesize_haze", "HAZE_KINDS"]

HAZE_KINDS = ("homogeneous", "nonhomogeneous")


@dataclass
class HazeSample:
    """One synthesised batch; every tensor is float32 on the input's device.

    Attributes:
        hazy: ``(b, 3, h, w)`` hazy image ``I`` in [0, 1].
        clear: ``(b, 3, h, w)`` the clear image ``J`` it came from.
        transmission: ``(b, 1, h, w)`` ``t`` in (0, 1].
        airlight: ``(b, 3, 1, 1)`` ``A``.
        density: ``(b, 1, h, w)`` ``1 - t``, the haze density in [0, 1).
        depth: ``(b, 1, h, w)`` the depth ``d`` used.
        beta: ``(b,)`` mean scattering coefficient.
        patchiness: ``(b,)`` ``p`` (0 for homogeneous haze).
        kind: ``"homogeneous"`` or ``"nonhomogeneous"``.
    """

    hazy: torch.Tensor
    clear: torch.Tensor
    transmission: torch.Tensor
    airlight: torch.Tensor
    density: torch.Tensor
    depth: torch.Tensor
    beta: torch.Tensor
    patchiness: torch.Tensor
    kind: str

    def __len__(self) -> int:
        return self.hazy.shape[0]

    def describe(self, i: int = 0) -> dict:
        """Plain numbers describing item ``i`` (for captions, tables and logs)."""
        return {
            "kind": self.kind,
            "beta": float(self.beta[i]),
            "patchiness": float(self.patchiness[i]),
            "mean_density": float(self.density[i].mean()),
            "airlight": [round(float(a), 3) for a in self.airlight[i].flatten()],
        }


@dataclass
class HazeConfig:
    """Ranges the synthesiser samples from (uniformly, per image).

    Defaults cover thin to dense haze: with depth in [0, 1], ``beta`` in [0.3, 3.0] gives mean
    transmission from about 0.85 to about 0.2. Airlight is near-white with a slight tint (real
    haze is grey to bluish), never darker than 0.6.
    """

    kind: str = "nonhomogeneous"
    beta: tuple[float, float] = (0.3, 3.0)
    airlight: tuple[float, float] = (0.7, 1.0)
    airlight_tint: float = 0.05
    patchiness: tuple[float, float] = (0.5, 1.0)
    octaves: int = 4
    depth_floor: float = 0.1
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in HAZE_KINDS:
            raise ValueError(f"kind must be one of {HAZE_KINDS}, got {self.kind!r}")
        for name in ("beta", "airlight", "patchiness"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f"{name} range ({lo}, {hi}) is reversed")
        if self.beta[0] < 0:
            raise ValueError("beta must be >= 0")
        if not (0 <= self.patchiness[0] and self.patchiness[1] <= 1):
            raise ValueError("patchiness must lie in [0, 1]")


def apply_scattering(clear: torch.Tensor, transmission: torch.Tensor, airlight: torch.Tensor) -> torch.Tensor:
    """``I = J t + A (1 - t)``.

    Args:
        clear: ``(b, 3, h, w)`` scene radiance ``J`` in [0, 1].
        transmission: ``(b, 1, h, w)`` or ``(b, 3, h, w)`` transmission ``t`` in [0, 1].
        airlight: ``(b, 3, 1, 1)`` (or broadcastable) airlight ``A``.

    Returns:
        ``(b, 3, h, w)`` hazy image; per channel a convex combination of ``J`` and ``A``.
    """
    return clear * transmission + airlight * (1.0 - transmission)


def batch_depth(depth: torch.Tensor, b: int, h: int, w: int) -> torch.Tensor:
    """A given depth map as a float32 CPU ``(b, 1, h, w)`` batch.

    Args:
        depth: ``(1, h, w)``, ``(1, 1, h, w)`` (shared by the batch) or ``(b, 1, h, w)``.

    Raises:
        ValueError: any other shape (the message gives the expected one).
    """
    depth = depth.float().cpu()
    if depth.ndim == 3:
        depth = depth.unsqueeze(0)
    if depth.shape[0] == 1 and b > 1:
        depth = depth.expand(b, -1, -1, -1)
    if tuple(depth.shape) != (b, 1, h, w):
        raise ValueError(f"depth must be (b, 1, h, w) = {(b, 1, h, w)}, got {tuple(depth.shape)}")
    return depth


def _uniform(lo: float, hi: float, n: int, generator: torch.Generator | None) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=generator)


def synthesize_haze(
    clear: torch.Tensor,
    kind: str = "nonhomogeneous",
    config: HazeConfig | None = None,
    depth: torch.Tensor | None = None,
    beta: float | torch.Tensor | None = None,
    airlight: float | torch.Tensor | None = None,
    patchiness: float | torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    seed: int | None = None,
) -> HazeSample:
    """Add homogeneous or non-homogeneous haze to a batch of clear images.

    Implements ``I = J t + A (1 - t)`` with ``t = exp(-beta(x) d(x))`` (module docstring). Any
    parameter left ``None`` is drawn from ``config``'s ranges per image; random draws come from
    ``generator`` (or a fresh one seeded with ``seed``) on the CPU, so a seed gives the same haze
    on every device.

    Args:
        clear: ``(b, 3, h, w)`` or ``(3, h, w)`` clear images in [0, 1].
        kind: ``"homogeneous"`` (one beta per image) or ``"nonhomogeneous"`` (beta modulated by
            smooth noise). Overrides ``config.kind``.
        config: sampling ranges (:class:`HazeConfig`); defaults to ``HazeConfig(kind)``.
        depth: ``(b, 1, h, w)`` relative depth in [0, 1] (e.g. from a disparity map); default: a
            random smooth ramp (:func:`cliphaze.haze.depth.ramp_depth_proxy`). Depth is raised to
            ``config.depth_floor`` so that even the nearest pixel gets a little haze.
        beta: mean scattering coefficient, scalar or ``(b,)``.
        airlight: scalar (grey), ``(3,)``, or ``(b, 3)`` airlight.
        patchiness: ``p`` in [0, 1] for non-homogeneous haze, scalar or ``(b,)``.
        generator: torch CPU generator.
        seed: used only when ``generator`` is None.

    Returns:
        :class:`HazeSample` with hazy, clear, transmission, airlight, density = 1 - t, depth.
    """
    if clear.ndim == 3:
        clear = clear.unsqueeze(0)
    if clear.ndim != 4 or clear.shape[1] != 3:
        raise ValueError(f"clear must be (b, 3, h, w) or (3, h, w), got shape {tuple(clear.shape)}")
    config = HazeConfig(kind=kind) if config is None else HazeConfig(**{**config.__dict__, "kind": kind})
    if generator is None:
        generator = torch.Generator().manual_seed(seed if seed is not None else torch.seed() % 2**63)
    b, _, h, w = clear.shape
    dev = clear.device
    clear = clear.float()

    depth = ramp_depth_proxy(b, h, w, generator=generator) if depth is None else batch_depth(depth, b, h, w)
    depth = config.depth_floor + (1.0 - config.depth_floor) * depth.clamp(0, 1)

    def per_image(value, rng):
        if value is None:
            return _uniform(*rng, b, generator)
        v = torch.as_tensor(value, dtype=torch.float32).flatten().cpu()
        return v.expand(b).clone() if v.numel() == 1 else v

    beta_t = per_image(beta, config.beta)
    if kind == "homogeneous":
        p = torch.zeros(b)
        beta_map = beta_t.view(b, 1, 1, 1).expand(b, 1, h, w)
    else:
        p = per_image(patchiness, config.patchiness).clamp(0, 1)
        noise = smooth_noise(b, h, w, octaves=config.octaves, generator=generator)
        beta_map = beta_t.view(b, 1, 1, 1) * (1 - p.view(b, 1, 1, 1) + 2 * p.view(b, 1, 1, 1) * noise)

    if airlight is None:
        base = _uniform(*config.airlight, b, generator).view(b, 1)
        tint = (torch.rand(b, 3, generator=generator) * 2 - 1) * config.airlight_tint
        a = (base + tint).clamp(0.0, 1.0)
    else:
        a = torch.as_tensor(airlight, dtype=torch.float32).cpu()
        a = a.expand(b, 3) if a.numel() in (1, 3) else a.reshape(b, 3)
    a = a.reshape(b, 3, 1, 1).clone()

    t = torch.exp(-beta_map * depth)
    t, a, depth = t.to(dev), a.to(dev), depth.to(dev)
    hazy = apply_scattering(clear, t, a).clamp(0, 1)
    return HazeSample(
        hazy=hazy, clear=clear, transmission=t, airlight=a, density=1.0 - t, depth=depth,
        beta=beta_t, patchiness=p, kind=kind,
    )
