"""Training crops for the small haze CLIP: random crops of clear photos, shown clear and hazed.

:class:`HazeCropSampler` is the original sampler (one haze generator, each crop clear and hazy);
:class:`HazePairSampler` (in :mod:`cliphaze.clip.small_train`) adds haze families, two haze
levels of the same crop and bright, textureless clear content. Lesson:
``notebooks/02_prompt_learning.ipynb``.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from cliphaze.clip.captions import make_caption

__all__ = ["HazeCropSampler", "HazePairSampler", "bright_clear_crops", "load_photos"]


class HazeCropSampler:
    """Batches of (hazy or clear crop, caption) pairs from a list of clear photos.

    Every step draws ``n`` random crops (side ``crop_range`` as a fraction of the photo's short
    side, resized to ``size``), and returns each crop twice: once clear, once with synthetic haze
    (homogeneous with probability ``p_homogeneous``, else non-homogeneous) whose caption is made
    from the crop's own mean density ``mean(1 - t)``, kind and a random phrasing. Showing the
    clear twin beside the hazy crop makes "clear vs hazy" the only difference between them, so
    the contrastive loss cannot be solved from content.

    Args:
        photos: list of ``(3, h, w)`` float tensors in [0, 1] (or uint8).
        size: crop side fed to the model (its ``image_size``).
        crop_range: crop side as a fraction of the short side of the photo.
        p_homogeneous: share of homogeneous haze.
        seed: seeds cropping, haze and phrasing.
    """

    def __init__(self, photos: Sequence[torch.Tensor], size: int, crop_range=(0.2, 0.6), p_homogeneous: float = 0.3, seed: int = 0):
        if not photos:
            raise ValueError("HazeCropSampler needs at least one photo")
        self.photos = list(photos)
        self.size = size
        self.crop_range = crop_range
        self.p_homogeneous = p_homogeneous
        self.generator = torch.Generator().manual_seed(seed)
        self.rng = random.Random(seed)

    def crops(self, n: int) -> torch.Tensor:
        """``(n, 3, size, size)`` random clear crops in [0, 1]."""
        out = []
        for _ in range(n):
            photo = self.photos[self.rng.randrange(len(self.photos))]
            photo = photo.float() / 255.0 if photo.dtype == torch.uint8 else photo
            _, h, w = photo.shape
            side = max(8, int(min(h, w) * self.rng.uniform(*self.crop_range)))
            y, x = self.rng.randrange(h - side + 1), self.rng.randrange(w - side + 1)
            crop = photo[:, y : y + side, x : x + side].unsqueeze(0)
            crop = F.interpolate(crop, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False)
            if self.rng.random() < 0.5:
                crop = crop.flip(-1)
            out.append(crop.clamp(0, 1))
        return torch.cat(out)

    def batch(self, n: int) -> tuple[torch.Tensor, list[str], torch.Tensor]:
        """``n`` crops, clear and hazy: images ``(2n, 3, size, size)``, captions (2n), densities ``(2n,)``."""
        images, captions, density, _ = self.batch_with_maps(n)
        return images, captions, density

    def batch_with_maps(self, n: int) -> tuple[torch.Tensor, list[str], torch.Tensor, torch.Tensor]:
        """Like :meth:`batch`, plus the density maps ``1 - t`` ``(2n, 1, size, size)`` (zeros
        for the clear crops)."""
        from cliphaze.haze import synthesize_haze

        clear = self.crops(n)
        homo = torch.rand(n, generator=self.generator) < self.p_homogeneous
        hazy = torch.empty_like(clear)
        maps = torch.zeros(n, 1, self.size, self.size)
        for kind, mask in (("homogeneous", homo), ("nonhomogeneous", ~homo)):
            if mask.any():
                s = synthesize_haze(clear[mask], kind=kind, generator=self.generator)
                hazy[mask] = s.hazy
                maps[mask] = s.density
        density = maps.mean(dim=(1, 2, 3))
        kinds = ["homogeneous" if homo[i] else "nonhomogeneous" for i in range(n)]
        captions = [make_caption(0.0, "homogeneous", self.rng) for _ in range(n)]
        captions += [make_caption(float(density[i]), kinds[i], self.rng) for i in range(n)]
        return torch.cat([clear, hazy]), captions, torch.cat([torch.zeros(n), density]), torch.cat([torch.zeros_like(maps), maps])


def load_photos(folders: Sequence[str | os.PathLike], max_side: int = 512) -> list[torch.Tensor]:
    """All images in ``folders`` as uint8 ``(3, h, w)`` tensors (longer side at most ``max_side``)."""
    from cliphaze.io import list_images, read_image

    photos = []
    for folder in folders:
        for path in list_images(folder):
            img = read_image(path)
            scale = max_side / max(img.shape[1:])
            if scale < 1:
                img = F.interpolate(img[None], scale_factor=scale, mode="bilinear", antialias=True, align_corners=False)[0]
            photos.append((img * 255 + 0.5).clamp(0, 255).to(torch.uint8))
    if not photos:
        raise FileNotFoundError(f"no images found in {list(map(str, folders))}")
    return photos


def bright_clear_crops(n: int, size: int, photo_crops: torch.Tensor | None, generator: torch.Generator) -> torch.Tensor:
    """Clear images of bright, white and textureless content (walls, sky, snow, white furniture).

    Four kinds, equally likely per image:

    - flat bright colour (near white or pastel, each channel in [0.65, 1]) with gentle shading;
    - a smooth gradient between two bright colours at a random angle (sky, lit walls);
    - a bright low-texture crop: a photo crop blurred, then exposed up by a gain of 1.5 to 3
      (multiplicative, clipped: brightening keeps contrast ratios, unlike haze, which pulls every
      pixel toward the airlight, ``J t + A (1 - t)``, and so must not be imitated here);
    - a white-balanced bright photo crop (grey-world balance, exposure set so the mean is 0.6 to 0.85).

    A little sensor noise (sigma up to 0.01) is added to all. They are the "clear" examples that
    teach the guide that brightness and flatness are not haze.

    Args:
        n: number of images.
        size: side (square).
        photo_crops: ``(m, 3, size, size)`` clear crops to derive the last two kinds from (at least
            ``n``), or None (then only the first two kinds are made).
        generator: torch CPU generator.

    Returns:
        ``(n, 3, size, size)`` float32 in [0, 1].
    """
    ys = torch.linspace(0, 1, size).view(1, size, 1)
    xs = torch.linspace(0, 1, size).view(1, 1, size)
    out = []
    kinds = 4 if photo_crops is not None else 2
    for i in range(n):
        k = int(torch.randint(kinds, (1,), generator=generator))
        r = torch.rand(8, generator=generator)
        if k == 0:
            colour = (0.65 + 0.35 * torch.rand(3, 1, 1, generator=generator))
            shade = 1.0 - 0.15 * r[0] * (ys * torch.cos(r[1] * 6.283) + xs * torch.sin(r[1] * 6.283)).abs()
            img = colour * shade
        elif k == 1:
            c0 = 0.6 + 0.4 * torch.rand(3, 1, 1, generator=generator)
            c1 = 0.6 + 0.4 * torch.rand(3, 1, 1, generator=generator)
            ang = float(r[2]) * 6.283
            ramp = (xs * torch.cos(torch.tensor(ang)) + ys * torch.sin(torch.tensor(ang)))
            ramp = (ramp - ramp.min()) / (ramp.max() - ramp.min()).clamp_min(1e-6)
            img = c0 * (1 - ramp) + c1 * ramp
        elif k == 2:
            src = photo_crops[i % photo_crops.shape[0]][None]
            blur = max(1, int(size * (0.05 + 0.1 * float(r[3]))))
            src = F.avg_pool2d(F.pad(src, (blur,) * 4, mode="replicate"), 2 * blur + 1, stride=1)[0]
            img = src * (1.5 + 1.5 * float(r[4]))
        else:
            src = photo_crops[i % photo_crops.shape[0]]
            mean = src.mean(dim=(1, 2), keepdim=True).clamp_min(1e-3)
            img = src * (mean.mean() / mean)
            img = img * ((0.6 + 0.25 * float(r[5])) / img.mean().clamp_min(1e-3))
        img = img.expand(3, size, size) + 0.01 * float(r[6]) * torch.randn(3, size, size, generator=generator)
        out.append(img.clamp(0, 1))
    return torch.stack(out).float()


class HazePairSampler:
    """Batches for the content-invariant recipe: each photo crop clear and under two haze levels.

    For every photo crop ``J`` one family is drawn (from ``families``) and one haze sample made
    with :func:`cliphaze.haze.synthesize` (transmission ``t_1``, airlight ``A``); the denser twin
    uses the *same* geometry and airlight with ``t_2 = max(t_1^k, 0.05)``, ``k ~ U(1.5, 3)``, so
    every pixel of it is at least as hazy. The batch holds, in order: the ``n`` clear crops, ``m``
    bright textureless clear images (:func:`bright_clear_crops`, ``m = round(n * bright_fraction)``),
    the ``n`` lighter and the ``n`` denser hazy crops.

    Args:
        photos: clear photos ``(3, h, w)`` (uint8 or float).
        size: model input side.
        families: haze families to draw from (the held-out family must not be among them).
        crop_range: crop side as a fraction of the photo's short side (up to whole photos: the
            guide sees whole images at inference).
        bright_fraction: bright clear images per photo crop.
        dense_fraction: share of crops hazed with ``dense=True``.
        airlight_colour: passed to :func:`cliphaze.haze.synthesize`.
        seed: seeds everything.
    """

    def __init__(self, photos: Sequence[torch.Tensor], size: int, families: Sequence[str],
                 crop_range=(0.3, 1.0), bright_fraction: float = 0.25, dense_fraction: float = 0.2,
                 airlight_colour: str = "any", seed: int = 0):
        from cliphaze.haze import HAZE_FAMILIES

        if "real-depth" in families:
            raise ValueError("real-depth needs matching depth maps; it cannot haze arbitrary training photos")
        unknown = [f for f in families if f not in HAZE_FAMILIES]
        if unknown or not families:
            raise ValueError(f"families must be a non-empty subset of {sorted(HAZE_FAMILIES)}, got {families!r}")
        self.crop_sampler = HazeCropSampler(photos, size=size, crop_range=crop_range, seed=seed)
        self.size = size
        self.families = tuple(families)
        self.bright_fraction = bright_fraction
        self.dense_fraction = dense_fraction
        self.airlight_colour = airlight_colour
        self.generator = torch.Generator().manual_seed(seed + 1)
        self.rng = self.crop_sampler.rng

    def batch(self, n: int) -> dict:
        """A batch of ``n`` photo crops (module docstring of the class for the order).

        Returns:
            dict with ``images`` ``(3n + m, 3, s, s)``, ``maps`` ``(3n + m, 1, s, s)`` (true
            density, zeros for clear), ``captions`` (list), ``n`` and ``m``.
        """
        from cliphaze.haze import T_MIN, apply_scattering, synthesize

        g = self.generator
        clear = self.crop_sampler.crops(n)
        m = int(round(n * self.bright_fraction))
        bright = bright_clear_crops(m, self.size, self.crop_sampler.crops(m) if m else None, g) if m else clear[:0]
        fam_idx = torch.randint(len(self.families), (n,), generator=g)
        dense = torch.rand(n, generator=g) < self.dense_fraction
        lo = torch.empty_like(clear)
        hi = torch.empty_like(clear)
        t_lo = torch.ones(n, 1, self.size, self.size)
        t_hi = torch.ones(n, 1, self.size, self.size)
        kinds = [""] * n
        for fi, fam in enumerate(self.families):
            for dn in (False, True):
                mask = (fam_idx == fi) & (dense == dn)
                if not bool(mask.any()):
                    continue
                s = synthesize(fam, clear[mask], generator=g, dense=dn, airlight_colour=self.airlight_colour)
                k = 1.5 + 1.5 * torch.rand(int(mask.sum()), 1, 1, 1, generator=g)
                t2 = s.transmission.pow(k).clamp_min(T_MIN)
                lo[mask], t_lo[mask] = s.hazy, s.transmission
                hi[mask], t_hi[mask] = apply_scattering(clear[mask], t2, s.airlight).clamp(0, 1), t2
                for j, i in enumerate(torch.nonzero(mask).flatten().tolist()):
                    kinds[i] = "nonhomogeneous" if float(s.density[j].std()) > 0.05 else "homogeneous"
        d_lo, d_hi = 1 - t_lo, 1 - t_hi
        images = torch.cat([clear, bright, lo, hi])
        zeros = torch.zeros(n + m, 1, self.size, self.size)
        maps = torch.cat([zeros, d_lo, d_hi])
        captions = [make_caption(0.0, "homogeneous", self.rng) for _ in range(n + m)]
        captions += [make_caption(float(d_lo[i].mean()), kinds[i], self.rng) for i in range(n)]
        captions += [make_caption(float(d_hi[i].mean()), kinds[i], self.rng) for i in range(n)]
        return {"images": images, "maps": maps, "captions": captions, "n": n, "m": m}
