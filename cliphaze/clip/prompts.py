"""Learned hazy/clear prompts (CoOp, Zhou et al. 2022; CLIP-LIT, Liang et al. 2023).

A hand-written prompt is a point in token-embedding space chosen by a person. CoOp makes the
words themselves learnable: for class ``c`` the text encoder reads::

    [SOS] ctx_c,1 ... ctx_c,M [class words] . [EOS]

where the ``ctx`` vectors (``M = n_ctx`` per class, each of the text width) replace word-token
embeddings *before* the positional embedding is added; then the frozen text transformer (causal
mask), ``ln_final``, the end-of-text feature and the text projection give the class embedding
``t_c`` (:meth:`cliphaze.clip.frozen.FrozenCLIP.encode_prompt_embeddings`). With
``class_words=None`` the prompt is entirely learnable, as in CLIP-LIT. Training keeps both CLIP
encoders frozen and minimises::

    L = CE( s * [v . t_hazy, v . t_clear], y ),      y = 0 for a hazy image, 1 for a clear one

(``s`` = CLIP's logit scale, 100 for OpenAI CLIP). Hazy images are synthesised from clear photos
(:class:`cliphaze.clip.crops.HazeCropSampler`); image embeddings do not depend on the
prompts, so a pool of them is computed once and the steps only run the text tower. The paper
labels whole images hazy or clear (``target="images"``); by default we label *regions* (projected
patch tokens) by the true density under them (hazy above ``hazy_above = 0.5``), because the
prompts are used to score regions (``PromptLearnerConfig``: the paper does not give its exact
recipe; this is our reconstruction, and both variants are measured in lesson 02).

Learned prompts only make sense for the backbone they were learned with: :func:`save_prompts`
stores the backbone's identity (:class:`cliphaze.clip.backbone.BackboneInfo`) and
:func:`load_prompts` refuses any other backbone with :class:`PromptBackboneMismatch`.

Lesson: ``notebooks/02_prompt_learning.ipynb``. Shapes: k classes (2), m = n_ctx, w_t text width,
n context length, e joint width, b batch.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from cliphaze.clip.frozen import FrozenCLIP

__all__ = [
    "PromptLearner",
    "PromptLearnerConfig",
    "PromptBackboneMismatch",
    "embed_pool",
    "train_prompts",
    "save_prompts",
    "load_prompts",
    "PROMPT_FORMAT",
]

PROMPT_FORMAT = "cliphaze-prompts-v1"
PLACEHOLDER = "X"


class PromptBackboneMismatch(ValueError):
    """Learned prompts loaded for a backbone other than the one they were learned with."""


class PromptLearner(nn.Module):
    """``n_ctx`` learnable context vectors per class, spliced into the frozen text encoder.

    Args:
        clip: the frozen backbone (gives the token embeddings and text width).
        n_ctx: learnable vectors per class (``M``).
        class_words: words kept after the context, e.g. ``("hazy", "clear")`` (CoOp), or None for
            fully learnable prompts (CLIP-LIT).
        init: ``"random"`` (``N(0, 0.02^2)``, CoOp's init) or a pair of phrases whose word
            embeddings initialise each class's context, e.g. ``("a hazy photo of", "a clear photo
            of")`` (each must tokenise to exactly ``n_ctx`` tokens).
        seed: seed for the random init.

    Attributes:
        ctx: ``(2, m, w_t)`` the learnable vectors (the only parameters).
    """

    def __init__(self, clip: FrozenCLIP, n_ctx: int = 4, class_words: Sequence[str] | None = None,
                 init: str | Sequence[str] = "random", seed: int = 0):
        super().__init__()
        if n_ctx < 1:
            raise ValueError("n_ctx must be >= 1")
        self.n_ctx = n_ctx
        self.class_words = tuple(class_words) if class_words is not None else None
        self.init_spec = init if isinstance(init, str) else tuple(init)
        self.identity = clip.info.identity
        tail = [f" {w}." if w else "." for w in (self.class_words or ("", ""))]
        # Template: placeholders at positions 1..m (after the start token), then the class words.
        self.templates = [" ".join([PLACEHOLDER] * n_ctx) + t for t in tail]
        with torch.no_grad():
            emb, eot = clip.token_embeddings(self.templates)  # (2, n, w_t), (2,)
            ids = clip.tokenize(self.templates)
            x_id = int(clip.tokenize([PLACEHOLDER])[0, 1])
            if not bool((ids[:, 1 : 1 + n_ctx] == x_id).all()):
                raise RuntimeError("placeholder tokens did not land at positions 1..n_ctx")
            if init == "random":
                g = torch.Generator().manual_seed(seed)
                ctx = torch.randn(2, n_ctx, clip.text_width, generator=g) * 0.02
            else:
                if len(init) != 2:
                    raise ValueError("init must be 'random' or a (hazy phrase, clear phrase) pair")
                word_emb, word_eot = clip.token_embeddings(list(init))
                if not bool((word_eot == n_ctx + 1).all()):
                    raise ValueError(f"each init phrase must be exactly n_ctx={n_ctx} tokens; got {(word_eot - 1).tolist()}")
                ctx = word_emb[:, 1 : 1 + n_ctx].clone().cpu()
        self.register_buffer("prefix", emb[:, :1].detach().clone(), persistent=False)  # start token
        self.register_buffer("suffix", emb[:, 1 + n_ctx :].detach().clone(), persistent=False)  # words, EOS, padding
        self.register_buffer("eot_index", eot.detach().clone(), persistent=False)
        self.ctx = nn.Parameter(ctx.to(emb.device, torch.float32))

    def prompt_embeddings(self) -> torch.Tensor:
        """``(2, n, w_t)``: ``[SOS] ctx [class words . EOS pad]`` as token embeddings."""
        return torch.cat([self.prefix, self.ctx, self.suffix], dim=1)

    def text_embeddings(self, clip: FrozenCLIP) -> torch.Tensor:
        """``(2, e)`` unit embeddings (hazy, clear) through the frozen text encoder.

        Raises:
            PromptBackboneMismatch: ``clip`` is not the backbone the prompts belong to.
        """
        if clip.info.identity != self.identity:
            raise PromptBackboneMismatch(
                f"these prompts were learned for backbone '{self.identity}', not '{clip.info.identity}'; "
                "learn prompts for this backbone (cliphaze clip learn-prompts) or load its backbone"
            )
        return clip.encode_prompt_embeddings(self.prompt_embeddings(), self.eot_index)

    def describe(self) -> str:
        kind = "CoOp, class words " + "/".join(self.class_words) if self.class_words else "fully learnable (CLIP-LIT)"
        return f"learned prompts: {self.n_ctx} vectors per class, {kind}"


@dataclass
class PromptLearnerConfig:
    """Hyper-parameters of :func:`train_prompts` (defaults: the shipped prompts).

    ``target`` chooses what a training example is:

    - ``"images"``: one embedding per crop, hazy if its mean density ``1 - t`` is at least
      :data:`cliphaze.clip.captions.CLEAR_BELOW`: the paper's setting (hazy vs clear images).
    - ``"regions"`` (default): one projected patch token per region of a crop, hazy if the true
      density under it exceeds ``hazy_above``. The density map scores *regions*, so this trains
      the prompts on the quantity they will be used for. Our reconstruction choice: with the
      shipped backbone it ranks density far better than image-level prompts (the table in
      ``notebooks/02_prompt_learning.ipynb`` and ``cliphaze/assets/haze_clip_small_card.md``).
    """

    n_ctx: int = 4
    class_words: tuple[str, str] | None = None
    init: str | tuple[str, str] = "random"
    steps: int = 300
    batch: int = 256
    lr: float = 5e-3
    pool_crops: int = 512
    target: str = "regions"
    hazy_above: float = 0.5
    seed: int = 0


def embed_pool(clip: FrozenCLIP, photos, n_crops: int, seed: int = 0, batch_size: int = 128,
               target: str = "images", hazy_above: float = 0.5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Embed ``n_crops`` clear crops and their hazy twins once (the prompts never change them).

    Args:
        clip: frozen backbone; crops are cut at its input size.
        photos: clear photos ``(3, h, w)``.
        n_crops: clear crops (each also hazed: ``2 n_crops`` images).
        seed: seeds crops and haze.
        batch_size: images per encoder call.
        target: ``"images"`` (one global embedding per image) or ``"regions"`` (every projected
            patch token at the native grid, labelled by the true density under it).
        hazy_above: density threshold for ``"regions"``.

    Returns:
        ``(embeddings (m, e), labels (m,), densities (m,))``; label 0 = hazy, 1 = clear;
        ``m = 2 n_crops`` for images, ``2 n_crops gh gw`` for regions.
    """
    from cliphaze.clip.captions import CLEAR_BELOW
    from cliphaze.clip.crops import HazeCropSampler

    if target not in ("images", "regions"):
        raise ValueError(f"target must be 'images' or 'regions', got {target!r}")
    size = min(clip.image_size)
    sampler = HazeCropSampler(photos, size=size, seed=seed)
    embs, dens = [], []
    with torch.no_grad():
        remaining = n_crops
        while remaining > 0:
            n = min(batch_size // 2, remaining)
            images, _, density, maps = sampler.batch_with_maps(n)
            images = images.to(clip.device)
            if target == "images":
                embs.append(clip.encode_image(images).cpu())
                dens.append(density)
            else:
                tokens, grid = clip.image_tokens(images, return_grid=True)
                embs.append(tokens.reshape(-1, tokens.shape[-1]).cpu())
                dens.append(F.adaptive_avg_pool2d(maps, grid).flatten())
            remaining -= n
    emb, density = torch.cat(embs), torch.cat(dens)
    threshold = CLEAR_BELOW if target == "images" else hazy_above
    labels = (density < threshold).long() if target == "images" else (density <= threshold).long()
    return emb, labels, density


def train_prompts(
    clip: FrozenCLIP,
    photos,
    config: PromptLearnerConfig | None = None,
    progress: bool | Callable[[int, float], None] = False,
    pool: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
) -> tuple[PromptLearner, dict]:
    """Learn a hazy/clear prompt pair with the encoders frozen (module docstring: the loss).

    Args:
        clip: frozen backbone.
        photos: clear photos ``(3, h, w)`` (haze is synthesised), ignored when ``pool`` is given.
        config: :class:`PromptLearnerConfig`.
        progress: ``True`` for a tqdm bar, or a callable ``progress(step, loss)``.
        pool: precomputed :func:`embed_pool` output (lessons reuse it).

    Returns:
        ``(learner, history)``; history has ``"loss"`` and ``"accuracy"`` per step (on the
        minibatch), ``"seconds"`` and ``"config"``.
    """
    config = config or PromptLearnerConfig()
    torch.manual_seed(config.seed)
    learner = PromptLearner(clip, n_ctx=config.n_ctx, class_words=config.class_words, init=config.init, seed=config.seed)
    if pool is None:
        pool = embed_pool(clip, photos, config.pool_crops, seed=config.seed, target=config.target, hazy_above=config.hazy_above)
    emb, labels = pool[0].to(clip.device), pool[1].to(clip.device)
    opt = torch.optim.Adam(learner.parameters(), lr=config.lr)
    g = torch.Generator().manual_seed(config.seed)
    history = {"loss": [], "accuracy": [], "config": asdict(config)}
    steps = range(config.steps)
    bar = None
    if progress is True:
        from tqdm.auto import tqdm

        bar = steps = tqdm(steps, desc="prompt learning", leave=True)
    start = time.perf_counter()
    for step in steps:
        idx = torch.randint(0, emb.shape[0], (config.batch,), generator=g).to(clip.device)
        logits = clip.logit_scale * emb[idx] @ learner.text_embeddings(clip).t()
        loss = F.cross_entropy(logits, labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history["loss"].append(loss.item())
        history["accuracy"].append((logits.argmax(1) == labels[idx]).float().mean().item())
        if bar is not None and step % 10 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
        elif callable(progress) and (step % 25 == 0 or step == config.steps - 1):
            progress(step, loss.item())
    history["seconds"] = time.perf_counter() - start
    return learner, history


def save_prompts(learner: PromptLearner, path: str | os.PathLike, extra: dict | None = None) -> Path:
    """Save learned prompts (a few KB) tied to their backbone's identity.

    The file holds ``{"format", "identity", "n_ctx", "class_words", "init", "ctx" (2, m, w_t),
    "extra"}``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({
        "format": PROMPT_FORMAT,
        "identity": learner.identity,
        "n_ctx": learner.n_ctx,
        "class_words": list(learner.class_words) if learner.class_words else None,
        "init": learner.init_spec if isinstance(learner.init_spec, str) else list(learner.init_spec),
        "ctx": learner.ctx.detach().cpu().clone(),
        "extra": extra or {},
    }, path)
    return path


def load_prompts(path: str | os.PathLike, clip: FrozenCLIP) -> PromptLearner:
    """Load prompts saved by :func:`save_prompts` for ``clip``.

    Raises:
        PromptBackboneMismatch: the file was learned for another backbone (the message names both).
        ValueError: not a prompt file.
    """
    from cliphaze.serialization import safe_torch_load

    payload = safe_torch_load(Path(path), map_location="cpu", what="prompt file")
    if not isinstance(payload, dict) or payload.get("format") != PROMPT_FORMAT:
        raise ValueError(f"{path}: not a cliphaze prompt file")
    if payload["identity"] != clip.info.identity:
        raise PromptBackboneMismatch(
            f"{path}: prompts learned for backbone '{payload['identity']}' cannot be used with "
            f"'{clip.info.identity}'; learn prompts for this backbone (cliphaze clip learn-prompts)"
        )
    if payload["ctx"].shape[-1] != clip.text_width:
        raise PromptBackboneMismatch(f"{path}: context width {payload['ctx'].shape[-1]} != text width {clip.text_width}")
    learner = PromptLearner(clip, n_ctx=payload["n_ctx"], class_words=payload["class_words"], init="random")
    with torch.no_grad():
        learner.ctx.copy_(payload["ctx"].to(learner.ctx.device))
    learner.init_spec = payload["init"] if isinstance(payload["init"], str) else tuple(payload["init"])
    learner.extra = payload.get("extra", {})
    return learner
