"""CLIPHaze as a user runs it: guide + network, any image size, bounded memory, one-line loading.

:class:`CLIPHaze` bundles the frozen CLIP guide with a :class:`~cliphaze.model.CLIPHazeNet`:

1. *Guidance once per image.* The guide sees the whole image, shrunk so its long side is at most
   ``guide_side`` pixels (CLIP works at low resolution anyway: the shipped small CLIP has a 64-pixel
   input and an 8x8-pixel patch grid), and its density map is upsampled to the image size. Every
   tile and every block then reads that one map (or the one set of tokens).
2. *Pad and crop.* The network reflect-pads to a multiple of 4 and crops back (any size works).
3. *Tiles for large images.* An image with more than ``max_pixels`` pixels is processed in
   overlapping tiles of about ``tile x tile`` pixels, starting on the 4-pixel grid of the
   down-sampling. Tile outputs are blended with weights that are 0 in a margin of ``overlap / 4``
   pixels at a cut and then ramp linearly to 1 (edges on the image border keep weight 1), so
   seams fade out instead of showing::

       J(x) = sum_k w_k(x) J_k(x) / sum_k w_k(x)

   Peak memory is the network's activations on one tile plus a few full-size float32 buffers
   (input, density map, accumulated output, accumulated weight: 32 bytes per pixel, about 400 MB
   for a 4000x3000 photo), independent of the image size otherwise. Measured for ``tiny`` on a
   random 4000x3000 image with the default tiles (1024 pixels): 2.8 GB peak resident memory of the
   whole Python process and 286 s on one CPU thread of a shared machine.

*Tiles are an approximation.* Window attention and convolutions are local, but the Mamba path
scans a whole map, so a pixel's output depends (weakly) on everything in its tile: tiled and
untiled outputs agree only approximately (lesson 05 measures by how much); a single tile that
covers the image gives exactly the untiled result.

Lesson: ``notebooks/05_full_training.ipynb``, section "Inference on real photos".

Shapes: b batch, h, w image size (see :mod:`cliphaze.shapes`).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from cliphaze.block.guidance import Guidance
from cliphaze.defaults import (
    GUIDE_SIDE,
    MAX_PIXELS,
    SHIPPED_GUIDE,
    SHIPPED_MODEL,
    SHIPPED_MODEL_FILE,
    TILE_OVERLAP,
)
from cliphaze.model.checkpoint import load_checkpoint
from cliphaze.model.guide import build_guide, check_guide
from cliphaze.model.network import CLIPHazeNet
from cliphaze.model.presets import NetworkConfig

__all__ = ["CLIPHaze", "build_model", "load_model", "SHIPPED_MODELS", "tile_starts", "tile_ends", "blend_weights",
           "default_model_path", "NonFiniteOutputError"]


class NonFiniteOutputError(RuntimeError):
    """The network produced NaN or infinite values: a broken checkpoint, never a black image."""

#: Models shipped in ``cliphaze/assets`` (name -> file).
SHIPPED_MODELS = {SHIPPED_MODEL: SHIPPED_MODEL_FILE}


def default_model_path(name: str = SHIPPED_MODEL) -> Path:
    """Path of a shipped model file (it may not exist in a fresh clone before training)."""
    from cliphaze.paths import ASSETS_DIR

    return ASSETS_DIR / SHIPPED_MODELS[name]


def tile_starts(size: int, tile: int, overlap: int, align: int = 4) -> list[int]:
    """Start offsets of tiles of about ``tile`` pixels covering ``[0, size)``, overlapping by >= ``overlap``.

    Starts are multiples of ``align`` (the network's down-sampling factor): a tile that starts off
    that grid would pair different pixels in the strided convolutions than the whole image does.
    Tile ``k`` spans ``[start_k, start_{k+1} + overlap)`` rounded as above; the last tile ends at
    ``size`` and may be up to ``align - 1`` pixels longer than ``tile``.

    Args:
        size: image length along one axis.
        tile: tile length (``tile > overlap``).
        overlap: minimum overlap between neighbours.
        align: starts are multiples of this.

    Returns:
        sorted start offsets (``[0]`` when one tile covers the axis).
    """
    if tile >= size:
        return [0]
    if overlap >= tile - align:
        raise ValueError(f"overlap ({overlap}) must be smaller than the tile ({tile}) minus {align}")
    step = ((tile - overlap) // align) * align
    starts = list(range(0, size - tile, step))
    last = ((size - tile) // align) * align
    if last > starts[-1]:
        starts.append(last)
    return starts


def tile_ends(starts: list[int], size: int, tile: int) -> list[int]:
    """End offsets matching :func:`tile_starts` (the last tile ends at ``size``)."""
    return [min(s + tile, size) for s in starts[:-1]] + [size]


def blend_weights(length: int, overlap: int, at_start: bool, at_end: bool) -> torch.Tensor:
    """1-D blending window of a tile: zero margin, then a linear ramp, at inner edges.

    With margin ``m = overlap // 4`` and ramp length ``r = overlap - 2 m``, the weight at distance
    ``i`` from an inner edge is ``clamp((i - m + 1) / (r + 1), 0, 1)``; edges on the image border
    (``at_start`` / ``at_end``) keep weight 1. The zero margin means a pixel is never taken from the
    ``m`` pixels nearest a tile's cut, where the network saw padding instead of the true
    neighbourhood; two neighbours overlapping by ``overlap`` still cover every pixel with positive
    total weight (the margins of the two tiles do not meet, since ``2 m < overlap``).

    Args:
        length: tile length.
        overlap: overlap with each neighbour.
        at_start, at_end: the tile touches the image border there.

    Returns:
        ``(length,)`` float32 weights in [0, 1].
    """
    i = torch.arange(length, dtype=torch.float32)
    w = torch.ones(length)
    if overlap > 0:
        m = overlap // 4
        r = overlap - 2 * m
        if not at_start:
            w = torch.minimum(w, ((i - m + 1) / (r + 1)).clamp(0, 1))
        if not at_end:
            w = torch.minimum(w, ((length - i - m) / (r + 1)).clamp(0, 1))
    return w


class CLIPHaze(nn.Module):
    """The dehazing model: frozen CLIP guide + trainable :class:`~cliphaze.model.CLIPHazeNet`.

    Args:
        net: the network.
        guide: a :class:`cliphaze.clip.HazeGuide` (or anything with ``.density(x, size)`` and
            ``.tokens(x)``), or None for a network whose aggregation needs no guidance.
        guide_spec: the guide's name (recorded in checkpoints).
        guide_side: the guide sees the image shrunk to at most this long side (module docstring).

    The guide is kept outside the module tree on purpose: it is frozen, it is not part of the
    network's ``state_dict`` (its weights live in their own files), and it is never trained.
    """

    def __init__(self, net: CLIPHazeNet, guide=None, guide_spec: str | None = None, guide_side: int = GUIDE_SIDE):
        super().__init__()
        if net.needs and guide is None:
            raise ValueError(f"a network with aggregation={net.config.aggregation!r} reads "
                             f"{', '.join(sorted(net.needs))} from a CLIP guide; give one")
        self.net = net
        object.__setattr__(self, "guide", guide)  # not a sub-module: frozen, saved separately
        self.guide_spec = guide_spec if guide is not None else None
        self.guide_side = guide_side
        self.meta: dict = {}

    @property
    def config(self) -> NetworkConfig:
        return self.net.config

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    # ------------------------------------------------------------------------------ guidance
    @torch.no_grad()
    def guidance(self, hazy: torch.Tensor) -> Guidance:
        """CLIP guidance for a batch, computed once per image: only what the network needs.

        Args:
            hazy: ``(b, 3, h, w)`` in [0, 1].

        Returns:
            :class:`~cliphaze.block.Guidance` with ``density`` ``(b, 1, h, w)`` and/or ``tokens``
            ``(b, t, e)`` (as :attr:`CLIPHazeNet.needs` asks) on ``hazy``'s device; it also
            reads as the dict ``{"density": ..., "tokens": ...}``.
        """
        needs = self.net.needs
        if not needs:
            return Guidance()
        h, w = hazy.shape[-2:]
        small = hazy
        if max(h, w) > self.guide_side:
            s = self.guide_side / max(h, w)
            small = F.interpolate(hazy, size=(max(1, round(h * s)), max(1, round(w * s))), mode="bilinear",
                                  align_corners=False, antialias=True).clamp(0, 1)
        density = tokens = None
        if "density" in needs:
            density = self.guide.density(small, size=(h, w)).to(hazy.device, torch.float32)
        if "tokens" in needs:
            tokens = self.guide.tokens(small).to(hazy.device, torch.float32)
        return Guidance(density=density, tokens=tokens)

    def forward(self, hazy: torch.Tensor, density: torch.Tensor | None = None,
                tokens: torch.Tensor | None = None) -> torch.Tensor:
        """Dehaze a batch (unclamped, differentiable in the network's parameters).

        Args:
            hazy: ``(b, 3, h, w)`` in [0, 1].
            density, tokens: precomputed guidance (computed with the guide when both are None).

        Returns:
            ``(b, 3, h, w)`` restored images (not clamped).
        """
        if density is None and tokens is None:
            return self.net(hazy, guidance=self.guidance(hazy))
        return self.net(hazy, density=density, tokens=tokens)

    # ------------------------------------------------------------------------------ images
    @torch.no_grad()
    def dehaze_tensor(self, hazy: torch.Tensor, tile: int | None = None, overlap: int = TILE_OVERLAP,
                      max_pixels: int = MAX_PIXELS, return_density: bool = False):
        """Dehaze one image of any size, tiled when it is large (module docstring).

        Args:
            hazy: ``(3, h, w)`` float in [0, 1] on any device (the result comes back there).
            tile: tile side in pixels; None tiles with side ``sqrt(max_pixels)`` (rounded down to
                a multiple of 4) when ``h w > max_pixels`` and runs one pass otherwise; ``0``
                forces a single pass.
            overlap: tile overlap and blending ramp in pixels.
            max_pixels: largest image processed in one pass when ``tile`` is None.
            return_density: also return the ``(1, h, w)`` density map (None without one).

        Returns:
            ``(3, h, w)`` float32 in [0, 1] (and the density map when asked).
        """
        if hazy.ndim != 3 or hazy.shape[0] != 3:
            raise ValueError(f"dehaze expects one RGB image (3, h, w), got shape {tuple(hazy.shape)}")
        was_training = self.net.training
        self.net.eval()
        try:
            out_device = hazy.device
            dev = self.device
            x = hazy.to(dev, torch.float32).clamp(0, 1).unsqueeze(0)
            h, w = x.shape[-2:]
            g = self.guidance(x)
            if tile is None:
                tile = max(64, math.isqrt(max_pixels) // 4 * 4) if h * w > max_pixels else 0
            use_amp = dev.type == "cuda"
            if tile == 0 or (tile >= h and tile >= w):
                with torch.autocast(dev.type, enabled=use_amp):
                    out = self.net(x, guidance=g).float()
            else:
                out = self._tiled(x, g, tile, overlap, use_amp)
            bad = int((~torch.isfinite(out)).sum())
            if bad:
                raise NonFiniteOutputError(
                    f"the model's output has {bad} NaN or infinite value(s) of {out.numel()}; the checkpoint "
                    "is broken (e.g. its training diverged): use another model; nothing was written")
            out = out.clamp_(0, 1)[0].to(out_device)
            if return_density:
                dens = g.density[0].to(out_device) if g.density is not None else None
                return out, dens
            return out
        finally:
            self.net.train(was_training)

    def _tiled(self, x: torch.Tensor, g: Guidance, tile: int, overlap: int, use_amp: bool) -> torch.Tensor:
        """Blend the network's outputs on overlapping tiles (module docstring equation)."""
        if tile <= overlap:
            raise ValueError(f"tile ({tile}) must be larger than overlap ({overlap})")
        _, _, h, w = x.shape
        acc = torch.zeros(1, 3, h, w, device=x.device)
        weight = torch.zeros(1, 1, h, w, device=x.device)
        m = self.net.multiple
        ys, xs = tile_starts(h, tile, overlap, m), tile_starts(w, tile, overlap, m)
        for y0, y1 in zip(ys, tile_ends(ys, h, tile)):
            wy = blend_weights(y1 - y0, overlap, y0 == 0, y1 == h).to(x.device)
            for x0, x1 in zip(xs, tile_ends(xs, w, tile)):
                wx = blend_weights(x1 - x0, overlap, x0 == 0, x1 == w).to(x.device)
                dens = g.density[..., y0:y1, x0:x1] if g.density is not None else None
                with torch.autocast(x.device.type, enabled=use_amp):
                    part = self.net(x[..., y0:y1, x0:x1], guidance=Guidance(dens, g.tokens)).float()
                wt = (wy[:, None] * wx[None, :])[None, None]
                acc[..., y0:y1, x0:x1] += part * wt
                weight[..., y0:y1, x0:x1] += wt
        return acc / weight

    @torch.no_grad()
    def dehaze(self, image, tile: int | None = None, overlap: int = TILE_OVERLAP, max_pixels: int = MAX_PIXELS,
               return_density: bool = False):
        """Dehaze one image given as a tensor, a PIL image, an array or a file path.

        Args:
            image: ``(3, h, w)`` float tensor in [0, 1] (also ``(1, 3, h, w)``; uint8 is divided
                by 255), a PIL image, an ``(h, w, 3)`` uint8/float array, or an image path.
            tile, overlap, max_pixels: see :meth:`dehaze_tensor`.
            return_density: also return the density map.

        Returns:
            For a tensor input: a ``(3, h, w)`` float32 tensor in [0, 1] on the input's device
            (``(1, 3, h, w)`` for a batched input of one). For a PIL image: an RGB 8-bit PIL image.
            For an array or a path: a ``(3, h, w)`` tensor. With ``return_density`` a pair
            ``(result, density (1, h, w) tensor or None)``.
        """
        from PIL import Image

        from cliphaze.io import read_image, to_pil, to_tensor

        batched = False
        if isinstance(image, (str, os.PathLike)):
            tensor = read_image(image)
        elif isinstance(image, torch.Tensor) and image.ndim == 4:
            if image.shape[0] != 1:
                raise ValueError(f"dehaze takes one image; got a batch of {image.shape[0]} (loop over it)")
            tensor, batched = to_tensor(image[0]), True
        else:
            tensor = to_tensor(image)
        out = self.dehaze_tensor(tensor, tile=tile, overlap=overlap, max_pixels=max_pixels,
                                 return_density=return_density)
        result, dens = out if return_density else (out, None)
        if isinstance(image, Image.Image):
            result = to_pil(result)
        elif batched:
            result = result.unsqueeze(0)
        return (result, dens) if return_density else result

    def describe(self) -> str:
        """One line: preset widths, parameters, aggregation and guide."""
        n = sum(p.numel() for p in self.net.parameters())
        c = self.config
        return (f"CLIPHaze network dims={c.dims} depths={c.depths} params={n:,} aggregation={c.aggregation} "
                f"guide={self.guide_spec or 'none'}")


def build_model(config: NetworkConfig | str = "tiny", guide: str | None = SHIPPED_GUIDE,
                device: str | torch.device = "cpu", guide_side: int = GUIDE_SIDE) -> CLIPHaze:
    """A freshly initialised :class:`CLIPHaze`.

    Args:
        config: preset name or :class:`NetworkConfig`.
        guide: guide spec (:mod:`cliphaze.model.guide`); ignored (no guide) when the config's
            aggregation needs no guidance (``config.needs`` is empty).
        device: where the network and the guide run.
        guide_side: see :class:`CLIPHaze`.

    Returns:
        the model (network in train mode).
    """
    from cliphaze.model.presets import get_preset

    cfg = get_preset(config) if isinstance(config, str) else config
    g = build_guide(guide, device=device) if cfg.needs else None
    if cfg.needs and g is None:
        raise ValueError(f"aggregation={cfg.aggregation!r} needs a CLIP guide (got guide={guide!r})")
    if "tokens" in cfg.needs and cfg.clip_dim is None:
        cfg = cfg.with_(clip_dim=int(g.clip.embed_dim))
    net = CLIPHazeNet(cfg).to(device)
    return CLIPHaze(net, g, guide_spec=guide if g is not None else None, guide_side=guide_side)


def load_model(name_or_path: str | os.PathLike = SHIPPED_MODEL, device: str | torch.device = "cpu") -> CLIPHaze:
    """Load a trained model, ready to dehaze (eval mode).

    Args:
        name_or_path: a shipped model name (``"cliphaze-tiny"``) or a checkpoint path (e.g.
            ``runs/tiny/best.pt`` written by ``cliphaze train``).
        device: ``"cpu"``, ``"cuda"``, ...

    Returns:
        :class:`CLIPHaze` in eval mode, with the checkpoint's ``meta`` in ``model.meta``.

    Raises:
        CheckpointError: missing or broken file (named).
        FileNotFoundError: the guide the checkpoint needs is missing.

    Warns:
        GuideMismatchWarning: the guide files on disk differ from those used in training.
    """
    key = str(name_or_path)
    path = default_model_path(key) if key in SHIPPED_MODELS else Path(key)
    if key in SHIPPED_MODELS and not path.is_file():
        from cliphaze.model.checkpoint import CheckpointError

        raise CheckpointError(f"{path}: the shipped model {key!r} is missing from this checkout "
                              "(restore it with git, or train one with `cliphaze train`)")
    payload = load_checkpoint(path, map_location="cpu")
    cfg = NetworkConfig.from_dict(payload["network"])
    guide_info = payload.get("guide")
    check_guide(guide_info, source=str(path))
    guide_side = int(payload.get("meta", {}).get("guide_side", GUIDE_SIDE))
    model = build_model(cfg, guide=guide_info["name"] if guide_info else None, device="cpu", guide_side=guide_side)
    try:
        model.net.load_state_dict(payload["state_dict"])
    except RuntimeError as err:
        from cliphaze.model.checkpoint import CheckpointError

        raise CheckpointError(f"{path}: weights do not fit the recorded architecture ({str(err)[:300]})") from err
    model.meta = dict(payload.get("meta", {}))
    model.meta["path"] = str(path)
    model = model.to(device)
    if model.guide is not None and torch.device(device).type != "cpu":
        model.guide.clip.to(device)
    model.net.eval()
    return model
