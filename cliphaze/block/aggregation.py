"""The CLIP-guided Aggregation Module (CAM) and the baselines it is ablated against.

Every aggregation fuses the two paths of a TrambaDA block per pixel and per channel::

    F = W_a * F_attn + W_m * F_mamba,        W_a + W_m = 1,  W_a, W_m in [0, 1]

and differs only in where ``(W_a, W_m)`` come from:

==============  ===================================================================  ===============
kind            weights                                                              ``needs``
==============  ===================================================================  ===============
``density``     density map ``M`` -> 1x1 conv to 2C -> split -> pairwise softmax     ``{"density"}``
``semantic``    bidirectional cross-attention(features, CLIP tokens) -> concat ->    ``{"tokens"}``
                two depthwise convs -> 1x1 conv to 2C -> split -> pairwise softmax
``sum``         fixed 0.5 / 0.5                                                      nothing
``static``      learned per-channel logits, pairwise softmax (same at every pixel)  nothing
``attention``   ``W_a = 1`` (the Mamba path is not built)                            nothing
``mamba``       ``W_m = 1`` (the attention path is not built)                        nothing
==============  ===================================================================  ===============

``needs`` is a class attribute: the one place that says which guidance (fields of
:class:`cliphaze.block.guidance.Guidance`) an aggregation reads. :func:`aggregation_needs` looks it
up by kind, so the network, the model and the training loop ask the guide for exactly that.

*Normalisation.* The paper says the weights come from a channel split of a 2C-channel
projection; it does not give the normalisation. We use a softmax over the pair
``(W_a, W_m) = softmax(l_a, l_m)``, i.e. ``W_m = sigmoid(l_m - l_a)``, so the two paths compete
and the fused feature stays on the scale of its inputs.

*Initialisation (ours).* The last 1x1 projection of the guided modules and the static logits
start at zero, so every learned variant begins as the fixed 0.5 / 0.5 sum and only moves away
from it as far as training asks: the ablation then compares variants from the same starting
function.

*Missing guidance.* A guided module called without its guidance (``density=None`` or
``tokens=None``) falls back to the fixed 0.5 / 0.5 sum when ``on_missing="equal"`` (the default:
the neutral choice, it claims no knowledge about where haze is) or raises when
``on_missing="raise"`` (use it to catch a forgotten argument in a full network).

*Semantic-aware module (a reconstruction).* The paper names the parts (bidirectional
cross-attention between block features and CLIP image tokens, concatenation, two depthwise
convolutions) but not their wiring. We share one similarity matrix ``S = Q_f K_t^T / sqrt(c)``
between the two directions (as in BiXT's bidirectional cross-attention)::

    A  = softmax_t(S) V_t                 (b, hw, c)  each pixel reads the CLIP tokens
    T' = softmax_hw(S)^T V_f              (b, t, c)   each CLIP token reads the image
    B  = softmax_t(S) T'                  (b, hw, c)  the updated tokens, read back per pixel

so both directions land on the pixel grid and can be concatenated; ``M = dw(GELU(dw([A, B])))``
is the semantic embedding that gives the weights as in the density module.

Derived in ``notebooks/04_trambada_block.ipynb``, section "Two ways to choose the weights".

Shapes: b batch, c channels, h, w the block's resolution; ``H, W`` the density map's (any) size;
``t`` CLIP tokens of width ``e`` (``clip_dim``).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from cliphaze.shapes import check_shape

__all__ = [
    "AGGREGATION_KINDS",
    "AGGREGATIONS",
    "Aggregation",
    "DensityAwareAggregation",
    "SemanticAwareAggregation",
    "FixedSumAggregation",
    "StaticAggregation",
    "SinglePathAggregation",
    "aggregation_needs",
    "make_aggregation",
    "resize_density",
    "pair_softmax",
]

AGGREGATION_KINDS = ("density", "semantic", "sum", "static", "attention", "mamba")
_ON_MISSING = ("equal", "raise")


def resize_density(density: torch.Tensor, h: int, w: int, batch: int | None = None) -> torch.Tensor:
    """Bring a haze-density map to a block's resolution.

    Bilinear interpolation (``align_corners=False``), anti-aliased when shrinking so that a
    high-resolution map is averaged rather than sampled. Only the shape is checked here (it costs
    nothing); the values are checked once where the map enters the network
    (:func:`cliphaze.block.guidance.check_density`), not again in every block.

    Args:
        density: ``(b, 1, H, W)`` (or ``(1, 1, H, W)``, broadcast over the batch) in [0, 1].
        h, w: target size.
        batch: expected batch size ``b`` (checked, and a batch of 1 is expanded to it).

    Returns:
        ``(b, 1, h, w)`` float map in [0, 1].

    Raises:
        ValueError: wrong rank or channel count, or a batch that does not match.
    """
    if density.ndim != 4 or density.shape[1] != 1:
        raise ValueError(f"density must be (b, 1, H, W), got shape {tuple(density.shape)}")
    if batch is not None and density.shape[0] not in (1, batch):
        raise ValueError(f"density has batch {density.shape[0]}, features have batch {batch}")
    density = density.float()
    if tuple(density.shape[-2:]) != (h, w):
        shrinking = density.shape[-2] > h or density.shape[-1] > w
        density = F.interpolate(density, size=(h, w), mode="bilinear", align_corners=False, antialias=shrinking)
        density = density.clamp(0.0, 1.0)
    if batch is not None and density.shape[0] != batch:
        density = density.expand(batch, -1, -1, -1)
    return density


def pair_softmax(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``2c`` channels into the two paths' logits and normalise them against each other.

    ``(W_a, W_m) = softmax(l_a, l_m)`` per pixel and channel, computed as
    ``W_a = sigmoid(l_a - l_m)`` and ``W_m = sigmoid(l_m - l_a)`` (the same thing, and each side
    keeps full float32 precision near 0 instead of being ``1 - (almost 1)``).

    Args:
        logits: ``(b, 2c, h, w)`` (or ``(1, 2c, 1, 1)``); channels ``[0, c)`` are ``l_a``,
            ``[c, 2c)`` are ``l_m``.

    Returns:
        ``(W_a, W_m)``, each ``(b, c, h, w)`` in (0, 1), summing to 1.
    """
    l_a, l_m = logits.chunk(2, dim=1)
    return torch.sigmoid(l_a - l_m), torch.sigmoid(l_m - l_a)


class Aggregation(nn.Module):
    """Common interface of every aggregation (see the module docstring).

    Subclasses set ``uses_attention`` / ``uses_mamba`` (the block builds only the paths an
    aggregation reads) and ``needs`` (the :class:`~cliphaze.block.guidance.Guidance` fields it
    reads: ``{"density"}``, ``{"tokens"}`` or nothing), and implement :meth:`weights`.

    Forward:
        f_attn: ``(b, c, h, w)`` attention-path features (``None`` if ``uses_attention`` is False).
        f_mamba: ``(b, c, h, w)`` Mamba-path features (``None`` if ``uses_mamba`` is False).
        features: ``(b, c, h, w)`` the block's normalised input (read by ``semantic``).
        density: ``(b, 1, H, W)`` haze density in [0, 1], any ``H, W`` (read by ``density``).
        tokens: ``(b, t, e)`` CLIP image tokens (read by ``semantic``).

    Returns:
        ``(fused, (W_a, W_m))``: ``fused`` is ``(b, c, h, w)``; the weights are ``(b, c, h, w)``
        (expanded views for the constant baselines).
    """

    uses_attention: bool = True
    uses_mamba: bool = True
    needs: frozenset[str] = frozenset()

    def __init__(self, dim: int):
        super().__init__()
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.dim = dim

    def weights(self, like: torch.Tensor, features=None, density=None, tokens=None):
        """``(W_a, W_m)``, each broadcastable to ``like`` (``(b, c, h, w)``)."""
        raise NotImplementedError

    def forward(self, f_attn=None, f_mamba=None, features=None, density=None, tokens=None):
        like = f_attn if f_attn is not None else f_mamba
        if like is None:
            raise ValueError("aggregation needs at least one path's features")
        if like.ndim != 4 or like.shape[1] != self.dim:
            raise ValueError(f"path features must be (b, c={self.dim}, h, w), got {tuple(like.shape)}")
        for name, needed, f in (("f_attn", self.uses_attention, f_attn), ("f_mamba", self.uses_mamba, f_mamba)):
            if needed and f is None:
                raise ValueError(f"{type(self).__name__} needs {name}")
            if f is not None and f.shape != like.shape:
                raise ValueError(f"{name} has shape {tuple(f.shape)}, expected {tuple(like.shape)}")
        w_a, w_m = self.weights(like, features=features, density=density, tokens=tokens)
        w_a, w_m = w_a.expand_as(like), w_m.expand_as(like)
        if not self.uses_mamba:
            fused = w_a * f_attn
        elif not self.uses_attention:
            fused = w_m * f_mamba
        else:
            fused = w_a * f_attn + w_m * f_mamba
        return fused, (w_a, w_m)


def _equal_weights(like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    half = like.new_full((1, 1, 1, 1), 0.5)
    return half, half


class FixedSumAggregation(Aggregation):
    """``F = 0.5 F_attn + 0.5 F_mamba`` (the unguided baseline; no parameters)."""

    def weights(self, like, features=None, density=None, tokens=None):
        return _equal_weights(like)


class StaticAggregation(Aggregation):
    """Learned per-channel weights, the same at every pixel and for every image.

    ``(W_a, W_m)[c] = softmax(l_a[c], l_m[c])`` with ``2c`` learned logits, zero-initialised
    (starts as the 0.5 / 0.5 sum). The baseline that tells whether *spatial* guidance matters.
    """

    def __init__(self, dim: int):
        super().__init__(dim)
        self.logits = nn.Parameter(torch.zeros(1, 2 * dim, 1, 1))

    def weights(self, like, features=None, density=None, tokens=None):
        return pair_softmax(self.logits)


class SinglePathAggregation(Aggregation):
    """One path only: ``path="attention"`` (``W_a = 1``) or ``path="mamba"`` (``W_m = 1``).

    The block does not build the unused path, so parameter counts and FLOPs are those of a
    single-path block.
    """

    def __init__(self, dim: int, path: str):
        super().__init__(dim)
        if path not in ("attention", "mamba"):
            raise ValueError(f"path must be 'attention' or 'mamba', got {path!r}")
        self.path = path
        self.uses_attention = path == "attention"
        self.uses_mamba = path == "mamba"

    def extra_repr(self) -> str:
        return f"path={self.path}"

    def weights(self, like, features=None, density=None, tokens=None):
        one, zero = like.new_ones((1, 1, 1, 1)), like.new_zeros((1, 1, 1, 1))
        return (one, zero) if self.path == "attention" else (zero, one)


class DensityAwareAggregation(Aggregation):
    """Density-aware CAM (DAM): weights from a haze-density map.

    ``M`` (resized to ``(h, w)``, :func:`resize_density`) -> ``Conv1x1(1 -> 2c)`` -> split ->
    :func:`pair_softmax`. With one input channel this is, per channel ``k``,
    ``W_m[k] = sigmoid(alpha_k M + beta_k)``: each channel learns how fast and from which density
    on it hands the pixel to the global path (``alpha_k > 0`` is the paper's intuition: dense haze
    -> Mamba).

    Args:
        dim: channels ``c``.
        on_missing: ``"equal"`` (0.5 / 0.5 without a density map) or ``"raise"``.
    """

    needs = frozenset({"density"})

    def __init__(self, dim: int, on_missing: str = "equal"):
        super().__init__(dim)
        if on_missing not in _ON_MISSING:
            raise ValueError(f"on_missing must be one of {_ON_MISSING}, got {on_missing!r}")
        self.on_missing = on_missing
        self.proj = nn.Conv2d(1, 2 * dim, kernel_size=1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def weights(self, like, features=None, density=None, tokens=None):
        if density is None:
            if self.on_missing == "raise":
                raise ValueError("DensityAwareAggregation needs a density map (b, 1, H, W)")
            return _equal_weights(like)
        b, _, h, w = like.shape
        m = resize_density(density, h, w, batch=b).to(device=like.device, dtype=like.dtype)
        return pair_softmax(self.proj(m))


class SemanticAwareAggregation(Aggregation):
    """Semantic-aware CAM (SAM): weights from block features cross-attending with CLIP tokens.

    See the module docstring for the equations (a reconstruction: the paper does not give the
    wiring). Single-head cross-attention at width ``c``.

    Args:
        dim: channels ``c``.
        clip_dim: width ``e`` of the CLIP image tokens.
        on_missing: ``"equal"`` (0.5 / 0.5 without tokens) or ``"raise"``.
    """

    needs = frozenset({"tokens"})

    def __init__(self, dim: int, clip_dim: int, on_missing: str = "equal"):
        super().__init__(dim)
        if clip_dim is None or clip_dim < 1:
            raise ValueError(f"semantic aggregation needs clip_dim (width of the CLIP tokens), got {clip_dim}")
        if on_missing not in _ON_MISSING:
            raise ValueError(f"on_missing must be one of {_ON_MISSING}, got {on_missing!r}")
        self.clip_dim, self.on_missing = clip_dim, on_missing
        self.scale = dim**-0.5
        # CLIP tokens live on their own scale: normalise, then map to the block width.
        self.token_norm = nn.LayerNorm(clip_dim)
        self.token_proj = nn.Linear(clip_dim, dim)
        self.q_features = nn.Linear(dim, dim)
        self.k_tokens = nn.Linear(dim, dim)
        self.v_tokens = nn.Linear(dim, dim)
        self.v_features = nn.Linear(dim, dim)
        self.dwconv1 = nn.Conv2d(2 * dim, 2 * dim, 3, padding=1, groups=2 * dim)
        self.dwconv2 = nn.Conv2d(2 * dim, 2 * dim, 3, padding=1, groups=2 * dim)
        self.proj = nn.Conv2d(2 * dim, 2 * dim, kernel_size=1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def semantic_embedding(self, features: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """``M``: the ``(b, 2c, h, w)`` semantic embedding before the weight projection.

        Args:
            features: ``(b, c, h, w)``.
            tokens: ``(b, t, e)`` (or ``(1, t, e)``, broadcast), any ``t >= 1``.
        """
        b, c, h, w = features.shape
        if tokens.ndim != 3 or tokens.shape[-1] != self.clip_dim:
            raise ValueError(f"tokens must be (b, t, e={self.clip_dim}), got {tuple(tokens.shape)}")
        if tokens.shape[0] not in (1, b):
            raise ValueError(f"tokens have batch {tokens.shape[0]}, features have batch {b}")
        tok = self.token_proj(self.token_norm(tokens.to(features.dtype))).expand(b, -1, -1)  # (b, t, c)
        pix = features.flatten(2).transpose(1, 2)  # (b, hw, c)
        sim = (self.q_features(pix) * self.scale) @ self.k_tokens(tok).transpose(1, 2)  # (b, hw, t)
        pix_to_tok = sim.softmax(dim=-1)  # each pixel's distribution over tokens
        tok_to_pix = sim.softmax(dim=1)  # each token's distribution over pixels
        a = pix_to_tok @ self.v_tokens(tok)  # (b, hw, c)
        tok_updated = tok_to_pix.transpose(1, 2) @ self.v_features(pix)  # (b, t, c)
        bb = pix_to_tok @ tok_updated  # (b, hw, c)
        m = torch.cat([a, bb], dim=-1).transpose(1, 2).reshape(b, 2 * c, h, w)
        return self.dwconv2(F.gelu(self.dwconv1(m)))

    def weights(self, like, features=None, density=None, tokens=None):
        if tokens is None:
            if self.on_missing == "raise":
                raise ValueError("SemanticAwareAggregation needs CLIP tokens (b, t, e)")
            return _equal_weights(like)
        if features is None:
            raise ValueError("SemanticAwareAggregation needs the block features (b, c, h, w)")
        check_shape(features, tuple(like.shape), "features")
        return pair_softmax(self.proj(self.semantic_embedding(features, tokens.to(like.device))))


#: Aggregation class of each kind of :data:`AGGREGATION_KINDS`.
AGGREGATIONS: dict[str, type[Aggregation]] = {
    "density": DensityAwareAggregation, "semantic": SemanticAwareAggregation, "sum": FixedSumAggregation,
    "static": StaticAggregation, "attention": SinglePathAggregation, "mamba": SinglePathAggregation,
}


def aggregation_needs(kind: str) -> frozenset[str]:
    """The guidance an aggregation kind reads (its class's ``needs``; empty for the baselines).

    Raises:
        ValueError: unknown kind (the message lists the known ones).
    """
    if kind not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {kind!r}; choose one of {AGGREGATION_KINDS}")
    return AGGREGATIONS[kind].needs


def make_aggregation(kind: str, dim: int, clip_dim: int | None = None, on_missing: str = "equal") -> Aggregation:
    """Build an aggregation by name.

    Args:
        kind: one of :data:`AGGREGATION_KINDS` (``"density"``, ``"semantic"``, ``"sum"``,
            ``"static"``, ``"attention"``, ``"mamba"``).
        dim: channels ``c``.
        clip_dim: width ``e`` of the CLIP tokens (required for ``"semantic"``).
        on_missing: what guided kinds do without guidance (``"equal"`` or ``"raise"``).

    Returns:
        an :class:`Aggregation`.
    """
    if kind == "density":
        return DensityAwareAggregation(dim, on_missing=on_missing)
    if kind == "semantic":
        if clip_dim is None:
            raise ValueError("aggregation='semantic' needs clip_dim, the width of the CLIP image tokens")
        return SemanticAwareAggregation(dim, clip_dim, on_missing=on_missing)
    if kind == "sum":
        return FixedSumAggregation(dim)
    if kind == "static":
        return StaticAggregation(dim)
    if kind in ("attention", "mamba"):
        return SinglePathAggregation(dim, kind)
    raise ValueError(f"unknown aggregation {kind!r}; choose one of {AGGREGATION_KINDS}")
