"""A frozen CLIP behind one small interface: images in [0, 1], embeddings out.

:class:`FrozenCLIP` wraps an open_clip model (any CLIP with an open_clip ``VisionTransformer``;
ResNet and timm towers give global embeddings only) and gives:

- ``encode_image(x)``: ``(b, 3, h, w)`` in [0, 1] -> ``(b, e)`` unit vectors. CLIP's input
  normalisation ``(x - mean) / std`` and the resize to the model's input size happen inside.
- ``image_tokens(x)``: ``(b, t, e)`` patch tokens *projected into the joint space*,
  ``ln_post(z_i) @ proj`` for every patch token ``z_i`` of the last layer (the same map CLIP
  applies to its class token), unit-normalised, with the token grid ``(gh, gw)`` from
  :meth:`FrozenCLIP.token_grid`. Inputs of any size: the image is resized so its short side is
  the model's input size (keeping the aspect ratio, sides rounded to whole patches) and the
  learned positional embeddings are bicubically interpolated to that grid.
  *Simplification:* for OpenAI CLIP, whose training only aligned the class token, projected patch
  tokens are noisy (MaskCLIP, Zhou et al. 2022, uses the value path of the last attention
  instead); for ``haze-clip-small`` the image embedding *is* the mean of these tokens
  (``pool_type="avg"``), so they live in the joint space by construction.
- ``encode_text(["a hazy photo", ...])``: ``(k, e)`` unit vectors.
- ``encode_prompt_embeddings(embeddings, eot_index)``: the CoOp path. Token embeddings (where
  learnable context vectors may replace some words) + positional embedding -> frozen text
  transformer with its causal mask -> ``ln_final`` -> the end-of-text token's features ->
  ``@ text_projection``. With the embeddings of real words it equals ``encode_text``.

All parameters are frozen (``requires_grad=False``) and the model stays in eval mode; gradients
still flow to *inputs* (learnable prompts). Lessons: ``notebooks/01_clip_zero_shot_density.ipynb``
("How a prompt pair scores an image", "Dense tokens") and ``notebooks/02_prompt_learning.ipynb``
("Where the learnable vectors enter").

Shapes: b batch, e joint embedding width, t tokens (gh * gw), k prompts, n context length,
w_t text width.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from cliphaze.clip.backbone import BackboneInfo, preprocess_stats

__all__ = ["FrozenCLIP"]


class FrozenCLIP(nn.Module):
    """Frozen open_clip model with the interface the density maps and the network use.

    Args:
        model: an open_clip ``CLIP`` (from :func:`cliphaze.clip.backbone.create_backbone`).
        info: :class:`BackboneInfo` describing it (``identity`` ties learned prompts to it).
        tokenizer: open_clip tokenizer for the model (default: ``open_clip.get_tokenizer``).
    """

    def __init__(self, model: nn.Module, info: BackboneInfo, tokenizer=None):
        super().__init__()
        import open_clip

        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.info = info
        self.tokenizer = tokenizer or open_clip.get_tokenizer(info.model_name)
        mean, std = preprocess_stats(model)
        self.register_buffer("pixel_mean", mean.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", std.view(1, 3, 1, 1), persistent=False)
        visual = model.visual
        size = getattr(visual, "image_size", 224)
        self.image_size = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
        patch = getattr(visual, "patch_size", None)
        self.patch_size = (tuple(patch) if isinstance(patch, (tuple, list)) else (patch, patch)) if patch else None
        self.context_length = int(model.context_length)

    # ----------------------------------------------------------------------------- properties
    def train(self, mode: bool = True):  # noqa: D401 - frozen: always eval
        """Always stays in eval mode (the backbone is frozen)."""
        return super().train(False)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def embed_dim(self) -> int:
        """Width ``e`` of the joint embedding space."""
        proj = self.model.text_projection
        return proj.out_features if isinstance(proj, nn.Linear) else proj.shape[1]

    @property
    def text_width(self) -> int:
        """Width of the text transformer (size of one token embedding)."""
        return self.model.token_embedding.weight.shape[1]

    @property
    def logit_scale(self) -> torch.Tensor:
        """CLIP's temperature ``s = exp(logit_scale)`` (100 for OpenAI CLIP), capped at 100."""
        return self.model.logit_scale.detach().exp().clamp(max=100.0).reshape(())

    @property
    def has_tokens(self) -> bool:
        """Whether :meth:`image_tokens` is available (an open_clip ViT image tower)."""
        v = self.model.visual
        return all(hasattr(v, a) for a in ("conv1", "class_embedding", "positional_embedding", "ln_post")) and getattr(v, "attn_pool", None) is None

    # ----------------------------------------------------------------------------- images
    def normalise(self, x: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """Resize ``(b, 3, h, w)`` images in [0, 1] to ``size`` (default: model input) and
        apply ``(x - mean) / std``. Bicubic with antialiasing, like CLIP's PIL preprocessing."""
        if x.ndim == 3:
            x = x.unsqueeze(0)
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected images (b, 3, h, w) in [0, 1], got {tuple(x.shape)}")
        size = size or self.image_size
        x = x.to(self.pixel_mean.device, torch.float32)
        if tuple(x.shape[-2:]) != tuple(size):
            x = F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
        return (x - self.pixel_mean) / self.pixel_std

    def encode_image(self, x: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """Global image embeddings.

        Args:
            x: ``(b, 3, h, w)`` in [0, 1]; resized (aspect ratio not kept: the whole image is
                seen, as crops in the density methods are square anyway).
            normalize: return unit vectors (default).

        Returns:
            ``(b, e)``.
        """
        z = self.model.encode_image(self.normalise(x))
        return F.normalize(z, dim=-1) if normalize else z

    def token_grid(self, h: int, w: int, short_side: int | None = None) -> tuple[int, int]:
        """Token grid ``(gh, gw)`` used by :meth:`image_tokens` for an ``h x w`` input.

        The image is resized so its short side is ``short_side`` pixels (default: the model's
        input size), keeping the aspect ratio; each side is rounded to whole patches. The grid
        is capped at :attr:`max_tokens` tokens (default 8x the trained grid): attention costs
        ``t^2``, and a 1x4000 image would otherwise ask for a 64 x 32000 grid (terabytes). A
        capped grid keeps the aspect ratio as far as whole patches allow (at least one row).
        """
        if self.patch_size is None:
            raise NotImplementedError(f"{self.info.model_name}: image tower has no patch grid")
        short_side = short_side or min(self.image_size)
        scale = short_side / min(h, w)
        ph, pw = self.patch_size
        gh, gw = max(1, round(h * scale / ph)), max(1, round(w * scale / pw))
        cap = self.max_tokens
        if gh * gw > cap:
            s = (cap / (gh * gw)) ** 0.5
            gh, gw = max(1, int(gh * s)), max(1, int(gw * s))
            gh, gw = min(gh, max(1, cap // gw)), min(gw, max(1, cap // gh))
        return gh, gw

    @property
    def max_tokens(self) -> int:
        """Largest token grid :meth:`image_tokens` builds: 8 times the trained grid (bounded memory)."""
        cap = getattr(self, "_max_tokens", None)
        if cap is None:
            g = getattr(self.model.visual, "grid_size", None)
            cap = 8 * int(g[0]) * int(g[1]) if g else 8 * 14 * 14
        return cap

    @max_tokens.setter
    def max_tokens(self, value: int) -> None:
        if int(value) < 1:
            raise ValueError(f"max_tokens must be at least 1, got {value}")
        self._max_tokens = int(value)

    def _positional_embedding(self, gh: int, gw: int) -> torch.Tensor:
        """Class + patch positional embeddings ``(1 + gh * gw, width)``, patch part bicubically
        interpolated from the trained grid when ``(gh, gw)`` differs."""
        v = self.model.visual
        pos = v.positional_embedding
        g0h, g0w = v.grid_size
        if (gh, gw) == (g0h, g0w):
            return pos
        cls, grid = pos[:1], pos[1:]
        grid = grid.reshape(1, g0h, g0w, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(gh, gw), mode="bicubic", align_corners=False)
        return torch.cat([cls, grid.permute(0, 2, 3, 1).reshape(gh * gw, -1)])

    def image_tokens(
        self, x: torch.Tensor, short_side: int | None = None, normalize: bool = True, return_grid: bool = False
    ):
        """Patch tokens projected into the joint space (module docstring: the simplification).

        ``token_i = ln_post(z_i) @ proj`` for the last-layer patch tokens ``z_i``; row-major over
        the grid (``token[gy * gw + gx]``).

        Args:
            x: ``(b, 3, h, w)`` in [0, 1], any size.
            short_side: input short side in pixels (default: the model's input size); larger
                gives a finer grid at more cost.
            normalize: unit-normalise every token (default).
            return_grid: also return ``(gh, gw)``.

        Returns:
            ``(b, t, e)`` with ``t = gh * gw``, or ``((b, t, e), (gh, gw))``.
        """
        if not self.has_tokens:
            raise NotImplementedError(f"{self.info.model_name}: dense tokens need an open_clip ViT image tower")
        if x.ndim == 3:
            x = x.unsqueeze(0)
        gh, gw = self.token_grid(x.shape[-2], x.shape[-1], short_side)
        ph, pw = self.patch_size
        v = self.model.visual
        z = v.conv1(self.normalise(x, (gh * ph, gw * pw)))  # (b, width, gh, gw)
        z = z.flatten(2).transpose(1, 2)  # (b, t, width)
        cls = v.class_embedding.view(1, 1, -1).expand(z.shape[0], 1, -1).to(z.dtype)
        z = torch.cat([cls, z], dim=1) + self._positional_embedding(gh, gw).to(z.dtype)
        z = v.ln_pre(z)
        z = v.transformer(z)
        tokens = v.ln_post(z[:, 1:])
        if v.proj is not None:
            tokens = tokens @ v.proj
        tokens = F.normalize(tokens, dim=-1) if normalize else tokens
        return (tokens, (gh, gw)) if return_grid else tokens

    # ----------------------------------------------------------------------------- text
    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        """``(k, n)`` token ids (start, words, end-of-text, zero padding)."""
        if isinstance(texts, str):
            texts = [texts]
        return self.tokenizer(list(texts)).to(self.device)

    def encode_text(self, texts: Sequence[str] | torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """Text embeddings ``(k, e)`` of ``k`` strings (or a ``(k, n)`` token tensor)."""
        tokens = texts if isinstance(texts, torch.Tensor) else self.tokenize(texts)
        z = self.model.encode_text(tokens)
        return F.normalize(z, dim=-1) if normalize else z

    def token_embeddings(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Word-token embeddings of ``texts`` and the end-of-text positions.

        Returns:
            ``(embeddings (k, n, w_t), eot_index (k,))``; ``eot_index`` is where open_clip's
            argmax pooling reads the sentence feature (the end-of-text id is the largest id).
        """
        tokens = self.tokenize(texts)
        return self.model.token_embedding(tokens), tokens.argmax(dim=-1)

    def encode_prompt_embeddings(self, embeddings: torch.Tensor, eot_index: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """CoOp text path: token embeddings (with learnable vectors spliced in) -> text embedding.

        ``h = Transformer(E + P; causal mask)``, ``y = ln_final(h)[eot] @ W_text``, the same
        computation as open_clip's ``encode_text`` after its embedding lookup.

        Args:
            embeddings: ``(k, n, w_t)`` token embeddings (``n`` = context length).
            eot_index: ``(k,)`` position of the end-of-text token in each row.
            normalize: unit-normalise the result.

        Returns:
            ``(k, e)``; differentiable with respect to ``embeddings``.
        """
        m = self.model
        if getattr(m, "text_pool_type", "argmax") != "argmax" or not hasattr(m, "token_embedding"):
            raise NotImplementedError(f"{self.info.model_name}: the CoOp path needs an open_clip text tower with end-of-text (argmax) pooling")
        cast = m.transformer.get_cast_dtype()
        x = embeddings.to(cast) + m.positional_embedding.to(cast)
        x = m.transformer(x, attn_mask=m.attn_mask)
        x = m.ln_final(x)
        x = x[torch.arange(x.shape[0], device=x.device), eot_index]
        proj = m.text_projection
        if proj is not None:
            x = proj(x) if isinstance(proj, nn.Linear) else x @ proj
        return F.normalize(x, dim=-1) if normalize else x

    def extra_repr(self) -> str:
        return f"{self.info.description}, embed_dim={self.embed_dim}, image_size={self.image_size}, patch={self.patch_size}"
