"""Zero-shot haze-density maps from CLIP and a hazy/clear prompt pair.

For an image region with embedding ``v`` and the prompt embeddings ``t_hazy``, ``t_clear`` (all
unit vectors), CLIP's zero-shot classifier gives::

    p_hazy = softmax(s * [v . t_hazy, v . t_clear])_0 = sigmoid(s * (v . t_hazy - v . t_clear))

with ``s`` CLIP's logit scale (100 for OpenAI CLIP). A *prompt ensemble* replaces each prompt by
the renormalised mean of several phrasings' embeddings (Radford et al. 2021, section 3.1.4).
Doing this per region gives the density map ``M`` that CLIPHaze's aggregation module consumes
(``docs/design.md``, section 1). Two ways to get region embeddings:

- ``method="crops"``: slide a square window over the image, embed every crop with the full image
  encoder, and blend the crops' ``p_hazy`` back into a map with a tent (bilinear) window so each
  pixel is a weighted mean of the crops covering it. Faithful to how CLIP was trained (one
  embedding per image), but one forward pass per crop.
- ``method="dense"``: one forward pass; every patch token projected into the joint space
  (:meth:`FrozenCLIP.image_tokens`) is scored, giving a ``gh x gw`` map, upsampled bilinearly.

Both return ``(b, 1, h, w)`` in [0, 1] at any requested size. Lesson:
``notebooks/01_clip_zero_shot_density.ipynb``, sections "How a prompt pair scores an image" and
"Density maps: crops and dense tokens".

Shapes: b batch, e joint embedding width, t tokens, k prompts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cliphaze.clip.frozen import FrozenCLIP

__all__ = [
    "HAND_WRITTEN_PAIR",
    "ENSEMBLE_PAIR",
    "prompt_pair_embeddings",
    "hazy_probability",
    "crop_windows",
    "density_map",
]

#: The hand-written pair of the CLIPHaze paper ("hazy image" / "clear image").
HAND_WRITTEN_PAIR = ("hazy image", "clear image")
#: A small prompt ensemble (several phrasings per class).
ENSEMBLE_PAIR = (
    ["a hazy photo", "a photo with haze", "a foggy image", "a picture taken in thick haze"],
    ["a clear photo", "a photo with no haze", "a haze-free image", "a clean sharp picture"],
)


def prompt_pair_embeddings(clip: FrozenCLIP, prompts=None) -> torch.Tensor:
    """Resolve any prompt specification to the two unit embeddings ``(2, e)``: row 0 hazy, row 1 clear.

    Args:
        clip: the frozen backbone.
        prompts: ``None`` (the hand-written pair :data:`HAND_WRITTEN_PAIR`); a pair
            ``(hazy, clear)`` where each is a string or a list of strings (an ensemble: mean of the
            unit embeddings, renormalised); an object with ``text_embeddings(clip)`` (a
            :class:`cliphaze.clip.prompts.PromptLearner`, i.e. learned prompts); or a ``(2, e)``
            tensor of embeddings.

    Returns:
        ``(2, e)`` unit vectors.
    """
    if prompts is None:
        prompts = HAND_WRITTEN_PAIR
    if isinstance(prompts, torch.Tensor):
        if prompts.ndim != 2 or prompts.shape[0] != 2:
            raise ValueError(f"prompt embeddings must be (2, e), got {tuple(prompts.shape)}")
        return F.normalize(prompts.to(clip.device, torch.float32), dim=-1)
    if hasattr(prompts, "text_embeddings"):
        return prompts.text_embeddings(clip)
    if isinstance(prompts, str) or len(prompts) != 2:
        raise ValueError("prompts must be None, a (hazy, clear) pair, learned prompts or a (2, e) tensor")
    rows = []
    for side in prompts:
        texts = [side] if isinstance(side, str) else list(side)
        rows.append(F.normalize(clip.encode_text(texts).mean(dim=0), dim=-1))
    return torch.stack(rows)


def hazy_probability(embeddings: torch.Tensor, pair: torch.Tensor, logit_scale: torch.Tensor | float) -> torch.Tensor:
    """``p_hazy = softmax(s [v . t_hazy, v . t_clear])_0`` for unit embeddings ``v``.

    Args:
        embeddings: ``(..., e)`` unit image (or token) embeddings.
        pair: ``(2, e)`` unit prompt embeddings (hazy, clear).
        logit_scale: ``s``.

    Returns:
        ``(...)`` probabilities in [0, 1].
    """
    logits = logit_scale * embeddings @ pair.t()  # (..., 2)
    return logits.softmax(dim=-1)[..., 0]


def crop_windows(h: int, w: int, crop: int, stride: int) -> list[tuple[int, int]]:
    """Top-left corners of ``crop x crop`` windows covering an ``h x w`` image with at most
    ``stride`` between neighbours (the last window on each axis touches the border)."""

    def starts(n: int) -> list[int]:
        if n <= crop:
            return [0]
        count = -(-(n - crop) // stride) + 1
        return sorted({round(i * (n - crop) / (count - 1)) for i in range(count)})

    return [(y, x) for y in starts(h) for x in starts(w)]


def _tent(n: int, device) -> torch.Tensor:
    """Bilinear (tent) weights over ``n`` pixels, strictly positive so every pixel is covered."""
    r = torch.arange(n, device=device, dtype=torch.float32)
    return 1.0 - (2 * (r + 0.5) / n - 1).abs() + 1e-3


def _crops_map(clip: FrozenCLIP, x: torch.Tensor, pair: torch.Tensor, crop: int | None, stride: int | None, batch_size: int) -> torch.Tensor:
    b, _, h, w = x.shape
    crop = min(crop or max(8, min(h, w) // 4), h, w)
    stride = stride or max(1, crop // 2)
    windows = crop_windows(h, w, crop, stride)
    weight1d_y, weight1d_x = _tent(crop, x.device), _tent(crop, x.device)
    tent = weight1d_y[:, None] * weight1d_x[None, :]
    num = torch.zeros(b, 1, h, w, device=x.device)
    den = torch.zeros(1, 1, h, w, device=x.device)
    patches = torch.stack([x[:, :, y : y + crop, xx : xx + crop] for y, xx in windows], dim=1)  # (b, n, 3, c, c)
    flat = patches.flatten(0, 1)
    probs = []
    for i in range(0, flat.shape[0], batch_size):
        probs.append(hazy_probability(clip.encode_image(flat[i : i + batch_size]), pair, clip.logit_scale))
    probs = torch.cat(probs).view(b, len(windows))
    for j, (y, xx) in enumerate(windows):
        num[:, :, y : y + crop, xx : xx + crop] += probs[:, j].view(b, 1, 1, 1) * tent
        den[:, :, y : y + crop, xx : xx + crop] += tent
    return num / den


def density_map(
    clip: FrozenCLIP,
    x: torch.Tensor,
    prompts=None,
    method: str = "dense",
    size: tuple[int, int] | int | None = None,
    crop: int | None = None,
    stride: int | None = None,
    short_side: int | None = None,
    batch_size: int = 64,
) -> torch.Tensor:
    """Zero-shot haze density ``p_hazy`` per region (module docstring: equations and methods).

    Args:
        clip: :class:`FrozenCLIP` backbone.
        x: ``(b, 3, h, w)`` (or ``(3, h, w)``) images in [0, 1], any size.
        prompts: see :func:`prompt_pair_embeddings` (None: the hand-written pair).
        method: ``"dense"`` (patch tokens, one pass) or ``"crops"`` (sliding crops).
        size: output ``(h_out, w_out)`` or an int for a square; default: the input size.
        crop: crop side in pixels for ``"crops"`` (default: a quarter of the short side).
        stride: crop step (default: half the crop, so crops overlap by half).
        short_side: input short side for ``"dense"`` (default: the model's input size).
        batch_size: crops per encoder call.

    Returns:
        ``(b, 1, h_out, w_out)`` float32 in [0, 1].
    """
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected images (b, 3, h, w), got {tuple(x.shape)}")
    x = x.to(clip.device, torch.float32)
    b, _, h, w = x.shape
    if size is None:
        size = (h, w)
    elif isinstance(size, int):
        size = (size, size)
    with torch.no_grad():
        pair = prompt_pair_embeddings(clip, prompts)
        if method == "dense":
            tokens, (gh, gw) = clip.image_tokens(x, short_side=short_side, return_grid=True)
            coarse = hazy_probability(tokens, pair, clip.logit_scale).view(b, 1, gh, gw)
        elif method == "crops":
            coarse = _crops_map(clip, x, pair, crop, stride, batch_size)
        else:
            raise ValueError(f"method must be 'dense' or 'crops', got {method!r}")
        out = F.interpolate(coarse, size=tuple(size), mode="bilinear", align_corners=False)
    return out.clamp_(0.0, 1.0)

