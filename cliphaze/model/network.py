"""The CLIPHaze network: a three-level encoder-decoder of TrambaDA blocks guided by a frozen CLIP.

Data flow for a hazy image ``I`` ``(b, 3, h, w)`` (``c0, c1, c2`` = ``config.dims``)::

    guidance  M = guide.density(I) (b, 1, h, w)  or  T = guide.tokens(I) (b, t, e)   once per image
              (a cliphaze.block.Guidance; which of the two follows from config.needs)
    stem      x0 = Conv3x3(I)                                   (b, c0, h, w)
    encoder   e0 = Blocks_0(x0)                                 (b, c0, h, w)
              e1 = Blocks_1(Down(e0))                           (b, c1, h/2, w/2)
    bottleneck m = Blocks_2(Down(e1))                           (b, c2, h/4, w/4)
    decoder   d1 = Blocks_3(Fuse(Up(m), e1))                    (b, c1, h/2, w/2)
              d0 = Blocks_4(Fuse(Up(d1), e0))                   (b, c0, h, w)
    head      K, B = split(Conv3x3(d0), [1, 3])
    output    J = K * I - B + I                                 (b, 3, h, w)

``Down`` is a strided 2x2 convolution (DehazeFormer's patch embedding), ``Up`` a 1x1 convolution
to 4x the channels followed by PixelShuffle(2), ``Fuse`` concatenates the skip connection and
mixes with a 1x1 convolution (Restormer's choice; DehazeFormer's SK-fusion is an alternative).
Every TrambaDA block receives the same guidance: the density map is checked once where it enters
(:func:`cliphaze.block.check_density`: shape, batch, finite, within [0, 1]) and resized to each
level's resolution once per forward pass, never per block, and the CLIP tokens are shared.

*Output: soft reconstruction.* The paper says the last decoder output and the hazy input together
give the clear image, without the formula. We use DehazeFormer's soft reconstruction
``J = K * I - B + I`` rather than a plain global residual ``J = I + R``: rewriting the scattering
model ``I = J t + A (1 - t)`` gives ``J = I / t - A (1 - t) / t``, i.e. exactly ``K * I - B`` with
``K = 1/t - 1`` (one channel: transmission is colour-free) and ``B = A (1/t - 1)`` (three
channels: airlight has a colour) plus ``I``. The head therefore only has to predict a per-pixel
gain and offset, the physically right shape of the answer, instead of synthesising the image.
The head is initialised at zero, so an untrained network returns its input (``J = I``) and the
loss starts at the hazy image's error.

*Any size.* TrambaDA blocks accept any ``h, w`` (window attention pads internally), but the two
down-sampling steps need ``h, w`` divisible by 4: :meth:`CLIPHazeNet.forward` reflect-pads the
image (and density map) to the next multiple of 4 and crops the result back.

Derived in ``notebooks/05_full_training.ipynb``, section "The network".

Shapes: b batch, c channels, h, w image size (see :mod:`cliphaze.shapes`).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from cliphaze.block import Guidance, TrambaDA, check_density
from cliphaze.model.presets import NetworkConfig, get_preset
from cliphaze.shapes import check_shape

__all__ = ["CLIPHazeNet", "PixelShuffle", "pad_to_multiple", "soft_reconstruction", "density_pyramid"]


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad the bottom and right of ``x`` so that ``h`` and ``w`` are multiples of ``multiple``.

    Reflection padding (the image continues as its mirror, so no artificial edge is created);
    replicate padding when the image is too small to reflect (reflection needs ``pad < size``).

    Args:
        x: ``(b, c, h, w)``.
        multiple: the required divisor.

    Returns:
        ``(padded (b, c, h', w'), (h, w))`` with the original size for :func:`crop`.
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x, (h, w)
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode), (h, w)


class PixelShuffle(nn.Module):
    """``nn.PixelShuffle`` as a view, a permute and one copy: the same values bit for bit, and
    7x faster on one CPU thread at (1, 64, 256, 256) (PyTorch's CPU kernel is a slow gather).

    Forward: ``(b, c r^2, h, w) -> (b, c, h r, w r)``.
    """

    def __init__(self, upscale_factor: int):
        super().__init__()
        self.upscale_factor = upscale_factor

    def extra_repr(self) -> str:
        return f"upscale_factor={self.upscale_factor}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        r = self.upscale_factor
        if c % (r * r):
            raise ValueError(f"PixelShuffle({r}) needs channels divisible by {r * r}, got {c}")
        x = x.reshape(b, c // (r * r), r, r, h, w).permute(0, 1, 4, 2, 5, 3)
        return x.reshape(b, c // (r * r), h * r, w * r)


def soft_reconstruction(features: torch.Tensor, hazy: torch.Tensor) -> torch.Tensor:
    """DehazeFormer's soft reconstruction ``J = K * I - B + I``.

    Args:
        features: ``(b, 4, h, w)``: channel 0 is ``K``, channels 1-3 are ``B``.
        hazy: ``(b, 3, h, w)`` the input image ``I``.

    Returns:
        ``(b, 3, h, w)`` the restored image (not clamped: training sees the raw value).
    """
    k, b = torch.split(features, (1, 3), dim=1)
    return k * hazy - b + hazy


def density_pyramid(density: torch.Tensor, size: tuple[int, int], levels: int = 3) -> list[torch.Tensor]:
    """The density map at full, 1/2 and 1/4 resolution (computed once, shared by all blocks).

    Args:
        density: ``(b, 1, H, W)`` in [0, 1] (any ``H, W``).
        size: ``(h, w)`` of level 0 (divisible by ``2**(levels-1)``).
        levels: number of levels.

    Returns:
        list of ``(b, 1, h / 2^i, w / 2^i)`` maps; bilinear, anti-aliased when shrinking.
    """
    from cliphaze.block import resize_density

    h, w = size
    return [resize_density(density, h >> i, w >> i) for i in range(levels)]


class _Stage(nn.Module):
    """A run of TrambaDA blocks at one resolution that all receive the same guidance."""

    def __init__(self, dim: int, depth: int, heads: int, cfg: NetworkConfig):
        super().__init__()
        self.blocks = nn.ModuleList(
            TrambaDA(
                dim,
                num_heads=heads,
                window_size=cfg.window_size,
                shift=cfg.shift_alternate and i % 2 == 1,
                aggregation=cfg.aggregation,
                d_state=cfg.d_state,
                ssm_ratio=cfg.ssm_ratio,
                directions=cfg.directions,
                mlp_ratio=cfg.mlp_ratio,
                clip_dim=cfg.clip_dim,
                ffn=cfg.ffn,
                on_missing="raise",
            )
            for i in range(depth)
        )

    def forward(self, x, density=None, tokens=None):
        for block in self.blocks:
            x = block(x, density=density, tokens=tokens)
        return x


class CLIPHazeNet(nn.Module):
    """The dehazing network (module docstring has the data flow and the output equation).

    Args:
        config: a :class:`~cliphaze.model.NetworkConfig` or a preset name (``"tiny"``, ...).

    Forward:
        hazy: ``(b, 3, h, w)`` in [0, 1], any ``h, w >= 1``.
        density: ``(b, 1, H, W)`` haze density in [0, 1] aligned with ``hazy`` (any ``H, W``);
            required when ``"density" in config.needs`` (the density-aware aggregation).
        tokens: ``(b, t, e)`` CLIP image tokens; required when ``"tokens" in config.needs``.
        guidance: the same two as one :class:`~cliphaze.block.Guidance` (instead of
            ``density``/``tokens``). Fields the network does not need are ignored.

    Returns:
        ``(b, 3, h, w)`` restored image, not clamped (:meth:`cliphaze.model.CLIPHaze.dehaze`
        clamps to [0, 1]).
    """

    #: ``h`` and ``w`` must be divisible by this inside the network (two 2x down-samplings).
    multiple = 4

    def __init__(self, config: NetworkConfig | str = "tiny"):
        super().__init__()
        cfg = get_preset(config) if isinstance(config, str) else config
        if "tokens" in cfg.needs and cfg.clip_dim is None:
            raise ValueError(f"aggregation={cfg.aggregation!r} reads CLIP tokens and needs clip_dim (the width "
                             "of the guide's image tokens)")
        self.config = cfg
        c0, c1, c2 = cfg.dims
        self.stem = nn.Conv2d(3, c0, 3, padding=1, padding_mode="reflect")
        self.encoder0 = _Stage(c0, cfg.depths[0], cfg.heads[0], cfg)
        self.down0 = nn.Conv2d(c0, c1, 2, stride=2)
        self.encoder1 = _Stage(c1, cfg.depths[1], cfg.heads[1], cfg)
        self.down1 = nn.Conv2d(c1, c2, 2, stride=2)
        self.bottleneck = _Stage(c2, cfg.depths[2], cfg.heads[2], cfg)
        self.up1 = nn.Sequential(nn.Conv2d(c2, 4 * c1, 1), PixelShuffle(2))
        self.fuse1 = nn.Conv2d(2 * c1, c1, 1)
        self.decoder1 = _Stage(c1, cfg.depths[3], cfg.heads[1], cfg)
        self.up0 = nn.Sequential(nn.Conv2d(c1, 4 * c0, 1), PixelShuffle(2))
        self.fuse0 = nn.Conv2d(2 * c0, c0, 1)
        self.decoder0 = _Stage(c0, cfg.depths[4], cfg.heads[0], cfg)
        self.head = nn.Conv2d(c0, 4, 3, padding=1, padding_mode="reflect")
        # Zero head: K = B = 0, so the untrained network is the identity J = I (module docstring).
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    @property
    def needs(self) -> frozenset[str]:
        """What the blocks read from the guide (:attr:`cliphaze.model.NetworkConfig.needs`)."""
        return self.config.needs

    def forward(self, hazy: torch.Tensor, density: torch.Tensor | None = None,
                tokens: torch.Tensor | None = None, guidance: Guidance | None = None) -> torch.Tensor:
        if hazy.ndim != 4 or hazy.shape[1] != 3:
            raise ValueError(f"CLIPHazeNet expects hazy images (b, 3, h, w), got shape {tuple(hazy.shape)}")
        b = hazy.shape[0]
        if guidance is None:
            guidance = Guidance(density=density, tokens=tokens)
        elif density is not None or tokens is not None:
            raise ValueError("give the guidance either as guidance=Guidance(...) or as density=/tokens=, not both")
        g = guidance.require(self.needs, who=f"this network (aggregation {self.config.aggregation!r})")
        g = g.only(self.needs)
        x, (h, w) = pad_to_multiple(hazy, self.multiple)
        hp, wp = x.shape[-2:]
        dens = [None, None, None]
        density, tokens = g.density, g.tokens
        if density is not None:
            check_density(density, batch=b)  # the one check of the map's values (not repeated per block)
            if density.shape[-2:] == (h, w) and (hp, wp) != (h, w):
                density, _ = pad_to_multiple(density, self.multiple)  # keep it aligned with the padded image
            dens = density_pyramid(density.to(x.dtype), (hp, wp))
            dens = [d.expand(b, -1, -1, -1) if d.shape[0] == 1 else d for d in dens]

        e0 = self.encoder0(self.stem(x), dens[0], tokens)
        e1 = self.encoder1(self.down0(e0), dens[1], tokens)
        m = self.bottleneck(self.down1(e1), dens[2], tokens)
        d1 = self.decoder1(self.fuse1(torch.cat([self.up1(m), e1], dim=1)), dens[1], tokens)
        d0 = self.decoder0(self.fuse0(torch.cat([self.up0(d1), e0], dim=1)), dens[0], tokens)
        out = soft_reconstruction(self.head(d0), x)
        out = out[..., :h, :w]
        return check_shape(out, (b, 3, h, w), "CLIPHazeNet output")
