"""Training the small haze CLIP (``haze-clip-small``) from scratch, and calibrating its prompts.

It is *not* OpenAI CLIP and knows nothing about the world beyond haze: it learns from crops of
clear photos with synthetic haze added and captions generated from the haze
(:mod:`cliphaze.clip.captions`). What it shares with CLIP is the architecture (an open_clip
``CLIP`` built from :data:`cliphaze.clip.small_config.SMALL_CLIP_CONFIG`) and the objective.

Two recipes (``SmallClipTrainConfig.recipe``):

- ``"contrastive"`` (the first shipped guide): CLIP's contrastive loss against the unique
  captions of the batch plus a patch-level term classifying every projected patch token into four
  haze levels (:func:`cliphaze.clip.losses.token_level_loss`), on one haze generator. Measured on
  haze from other generators, its maps followed scene content (white walls read hazy, dark
  texture clear) and saturated to 0/1.
- ``"ranking"`` (the shipped guide; our reconstruction of a content-invariant guide, not a
  published recipe): haze from several families (:class:`cliphaze.clip.crops.HazePairSampler`,
  with one family held out), each crop shown clear and under two haze levels of the same geometry,
  bright textureless clear images, and three more terms on the haze score
  ``r = s z . (c_thick - c_clear)`` (:func:`cliphaze.clip.losses.haze_score`)::

      L = L_img + w_tok L_tok + w_rank (L_rank_tok + L_rank_img) + w_reg L_reg
          + w_sp L_spatial + w_dec L_decorr

  ``L_rank``: the denser twin must score higher than the lighter one and the lighter one higher
  than the clear crop, per token (where the true densities differ by more than 0.02) and per
  image, with a margin (:func:`cliphaze.clip.losses.ranking_loss`); ``L_reg``: ``sigmoid(r)`` of
  every token regressed onto the true density under it (soft-target cross-entropy,
  :func:`cliphaze.clip.losses.density_regression_loss`), which also makes bright clear images
  score 0; ``L_spatial``: within each hazy image, a token with more haze than another must score
  higher (pairwise logistic, :func:`cliphaze.clip.losses.spatial_ranking_loss`; the per-image
  order is what the guide is judged on); ``L_decorr``: on clear images, the squared correlation
  between token scores and the luminance under them (:func:`cliphaze.clip.losses.decorrelation_loss`):
  with no haze, what variation the map has must not follow brightness. The last term was added
  after a 300-step trial without it gave maps whose rank correlation with luminance on clear
  photos was +0.69.

Calibration (:func:`fit_density_prompts`): the learned prompt pair is then fitted, encoders
frozen, so that ``p_hazy = sigmoid(s v . (t_hazy - t_clear))`` of every patch token equals the true
density under it (soft-target cross-entropy instead of CoOp's hard labels): the map the guide
hands the network is a density, not a 0/1 decision.

AdamW (weight decay on matrices only), linear warm-up then cosine decay; ``logit_scale``
learnable and clamped at ``log(100)`` as in CLIP. Lesson: ``notebooks/02_prompt_learning.ipynb``,
section "Training the small haze CLIP".
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

from cliphaze.clip.captions import LEVEL_DENSITIES, make_caption
from cliphaze.clip.crops import HazeCropSampler, HazePairSampler
from cliphaze.clip.losses import (
    contrastive_loss_unique,
    decorrelation_loss,
    density_regression_loss,
    haze_score,
    pool_to_tokens,
    ranking_loss,
    spatial_ranking_loss,
    token_level_loss,
)
from cliphaze.clip.small_config import SMALL_CLIP_NAME, register_small_configs

__all__ = ["RECIPES", "TRAIN_FAMILIES", "SmallClipTrainConfig", "train_small_clip", "fit_density_prompts",
           "density_pool"]

RECIPES = ("ranking", "contrastive")
_LUMA = torch.tensor([0.299, 0.587, 0.114])
#: Families the shipped guide trains on; "real-depth" is held out (it needs matching depth, and it
#: is the family structurally most different from the generators and closest to real rooms).
TRAIN_FAMILIES = ("ramp", "fields", "room", "fog")


@dataclass
class SmallClipTrainConfig:
    """Hyper-parameters of :func:`train_small_clip` (defaults: the shipped checkpoint)."""

    steps: int = 1000
    crops_per_step: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup: int = 100
    seed: int = 0
    model_name: str = SMALL_CLIP_NAME
    log_every: int = 25
    token_weight: float = 1.0
    recipe: str = "ranking"
    families: tuple[str, ...] = TRAIN_FAMILIES
    rank_weight: float = 1.0
    regression_weight: float = 1.0
    margin: float = 1.0
    spatial_weight: float = 1.0
    decorrelation_weight: float = 1.0
    bright_fraction: float = 0.25
    dense_fraction: float = 0.2
    crop_range: tuple[float, float] = (0.3, 1.0)
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.recipe not in RECIPES:
            raise ValueError(f"recipe must be one of {RECIPES}, got {self.recipe!r}")
        self.families = tuple(self.families)
        self.crop_range = tuple(self.crop_range)


def _image_normalise(model) -> Callable[[torch.Tensor], torch.Tensor]:
    from cliphaze.clip.backbone import preprocess_stats

    mean, std = preprocess_stats(model)
    return lambda x: (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)


def _optimizer(model, config: SmallClipTrainConfig) -> torch.optim.Optimizer:
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr, betas=(0.9, 0.98), eps=1e-6,
    )


def _lr_at(step: int, config: SmallClipTrainConfig) -> float:
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    frac = (step - config.warmup) / max(1, config.steps - config.warmup)
    return config.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))


def _contrastive_step(model, tokenizer, normalise, sampler, config):
    images, captions, _, maps = sampler.batch_with_maps(config.crops_per_step)
    unique = sorted(set(captions))
    index = torch.tensor([unique.index(c) for c in captions])
    kind = sampler.rng.choice(("homogeneous", "nonhomogeneous"))
    level_texts = [make_caption(d, kind, sampler.rng) for d in LEVEL_DENSITIES]
    pooled, tokens = model.visual(normalise(images))
    img = F.normalize(pooled, dim=-1)
    txt = F.normalize(model.encode_text(tokenizer(unique + level_texts)), dim=-1)
    scale = model.logit_scale.exp()
    loss_img = contrastive_loss_unique(img, txt[: len(unique)], index, scale)
    loss_tok = token_level_loss(tokens @ model.visual.proj, txt[len(unique):], maps, scale)
    return loss_img + config.token_weight * loss_tok, {"image": loss_img.item(), "token": loss_tok.item()}


def _ranking_step(model, tokenizer, normalise, sampler, config):
    b = sampler.batch(config.crops_per_step)
    images, maps, captions, n, m = b["images"], b["maps"], b["captions"], b["n"], b["m"]
    unique = sorted(set(captions))
    index = torch.tensor([unique.index(c) for c in captions])
    kind = sampler.rng.choice(("homogeneous", "nonhomogeneous"))
    level_texts = [make_caption(d, kind, sampler.rng) for d in LEVEL_DENSITIES]
    pooled, tokens = model.visual(normalise(images))
    z = tokens @ model.visual.proj  # (B, t, e) projected patch tokens
    txt = F.normalize(model.encode_text(tokenizer(unique + level_texts)), dim=-1)
    levels = txt[len(unique):]
    scale = model.logit_scale.exp()
    loss_img = contrastive_loss_unique(F.normalize(pooled, dim=-1), txt[: len(unique)], index, scale)
    loss_tok = token_level_loss(z, levels, maps, scale)
    g = int(round(math.sqrt(z.shape[1])))
    local = pool_to_tokens(maps, (g, z.shape[1] // g))  # (B, t)
    r_tok = haze_score(z, levels[3], levels[0], scale)  # (B, t)
    r_img = haze_score(pooled, levels[3], levels[0], scale)  # (B,)
    clear, lo, hi = slice(0, n), slice(n + m, 2 * n + m), slice(2 * n + m, 3 * n + m)
    rank_tok = 0.5 * (
        ranking_loss(r_tok[hi], r_tok[lo], config.margin, local[hi] - local[lo] > 0.02)
        + ranking_loss(r_tok[lo], r_tok[clear], config.margin, local[lo] - local[clear] > 0.02)
    )
    rank_img = 0.5 * (ranking_loss(r_img[hi], r_img[lo], config.margin)
                      + ranking_loss(r_img[lo], r_img[clear], config.margin))
    loss_reg = density_regression_loss(r_tok, local)
    hazy_rows = slice(n + m, 3 * n + m)
    loss_spatial = spatial_ranking_loss(r_tok[hazy_rows], local[hazy_rows])
    lum = pool_to_tokens((images[: n + m] * _LUMA.view(1, 3, 1, 1)).sum(1, keepdim=True), (g, z.shape[1] // g))
    loss_lum = decorrelation_loss(r_tok[: n + m], lum)
    loss = (loss_img + config.token_weight * loss_tok + config.rank_weight * (rank_tok + rank_img)
            + config.regression_weight * loss_reg + config.spatial_weight * loss_spatial
            + config.decorrelation_weight * loss_lum)
    return loss, {"image": loss_img.item(), "token": loss_tok.item(), "rank": (rank_tok + rank_img).item(),
                  "regression": loss_reg.item(), "spatial": loss_spatial.item(), "decorrelation": loss_lum.item()}


def train_small_clip(
    photos: Sequence[torch.Tensor],
    config: SmallClipTrainConfig | None = None,
    progress: Callable[[int, dict], None] | None = None,
    time_limit_s: float | None = None,
):
    """Train a CLIP from scratch on synthetic hazy/clear crops (module docstring: the recipes).

    Text is encoded once per unique caption of the batch (cheaper, and the loss needs unique
    captions anyway).

    Args:
        photos: clear photos, ``(3, h, w)`` tensors (uint8 or float in [0, 1]).
        config: :class:`SmallClipTrainConfig`.
        progress: called as ``progress(step, running_means)`` every ``config.log_every`` steps,
            with a dict of the running mean of every loss term.
        time_limit_s: stop early (cleanly, keeping the schedule's current state) after this long.

    Returns:
        ``(model, history)``: the trained open_clip ``CLIP`` (eval mode, float32) and a dict with
        ``"step"``, ``"loss"`` (image term), ``"token_loss"`` and, for the ranking recipe,
        ``"rank_loss"`` and ``"regression_loss"`` lists, ``"seconds"`` and ``"config"``.
    """
    import open_clip

    config = config or SmallClipTrainConfig()
    register_small_configs()
    torch.manual_seed(config.seed)
    model = open_clip.create_model(config.model_name, pretrained=None)
    model.train()
    tokenizer = open_clip.get_tokenizer(config.model_name)
    normalise = _image_normalise(model)
    size = model.visual.image_size[0]
    if config.recipe == "ranking":
        sampler = HazePairSampler(photos, size=size, families=config.families, crop_range=config.crop_range,
                                  bright_fraction=config.bright_fraction, dense_fraction=config.dense_fraction,
                                  seed=config.seed)
        step_fn = _ranking_step
    else:
        sampler = HazeCropSampler(photos, size=size, seed=config.seed)
        step_fn = _contrastive_step
    opt = _optimizer(model, config)
    names = {"image": "loss", "token": "token_loss", "rank": "rank_loss", "regression": "regression_loss",
             "spatial": "spatial_loss", "decorrelation": "decorrelation_loss"}
    history = {"step": [], "config": asdict(config)}
    start = time.perf_counter()
    running: dict[str, float] = {}
    model.visual.output_tokens = True  # forward returns (pooled, tokens) so all terms share one pass
    for step in range(config.steps):
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, config)
        loss, terms = step_fn(model, tokenizer, normalise, sampler, config)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        for k, v in terms.items():
            running[k] = v if k not in running else 0.9 * running[k] + 0.1 * v
        if step % config.log_every == 0 or step == config.steps - 1:
            history["step"].append(step)
            for k, v in running.items():
                history.setdefault(names[k], []).append(v)
            if progress is not None:
                progress(step, dict(running))
        if time_limit_s is not None and time.perf_counter() - start > time_limit_s:
            history["stopped_early_at"] = step
            break
    model.visual.output_tokens = False
    history["seconds"] = time.perf_counter() - start
    model.eval()
    return model, history


def density_pool(clip, photos: Sequence[torch.Tensor], n_crops: int, families: Sequence[str] = TRAIN_FAMILIES,
                 seed: int = 0, batch_crops: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Projected patch tokens of ``n_crops`` crops (clear, bright, two haze levels) and the true
    density under each, for :func:`fit_density_prompts`.

    Returns:
        ``(embeddings (N, e), density (N,))``.
    """
    size = min(clip.image_size)
    sampler = HazePairSampler(photos, size=size, families=families, seed=seed + 7)
    embs, dens = [], []
    remaining = n_crops
    with torch.no_grad():
        while remaining > 0:
            n = min(batch_crops, remaining)
            b = sampler.batch(n)
            tokens, grid = clip.image_tokens(b["images"].to(clip.device), return_grid=True)
            embs.append(tokens.reshape(-1, tokens.shape[-1]).cpu())
            dens.append(F.adaptive_avg_pool2d(b["maps"], grid).flatten())
            remaining -= n
    return torch.cat(embs), torch.cat(dens)


def fit_density_prompts(clip, photos: Sequence[torch.Tensor], n_crops: int = 384, steps: int = 300,
                        families: Sequence[str] = TRAIN_FAMILIES, n_ctx: int = 4, lr: float = 5e-3,
                        batch: int = 512, seed: int = 0, init=("a thick hazy photo", "a clean sharp picture"),
                        pool: tuple[torch.Tensor, torch.Tensor] | None = None):
    """Learn a prompt pair whose two-prompt map equals the true density (module docstring).

    ``L = mean_i BCE(sigmoid(s v_i . (t_hazy - t_clear)), D_i)`` over patch tokens ``v_i`` with
    true density ``D_i``; only the context vectors of the two prompts are trained
    (:class:`cliphaze.clip.prompts.PromptLearner`, initialised from the words ``init``).

    Returns:
        ``(learner, history)`` with ``"loss"`` per step, ``"seconds"``, ``"config"``.
    """
    from cliphaze.clip.prompts import PromptLearner

    start = time.perf_counter()
    emb, dens = pool if pool is not None else density_pool(clip, photos, n_crops, families, seed)
    emb = F.normalize(emb.to(clip.device), dim=-1)
    dens = dens.to(clip.device)
    n_words = [len(clip.tokenize([p])[0].nonzero()) - 2 for p in init]
    if n_words[0] == n_words[1]:
        learner = PromptLearner(clip, n_ctx=n_words[0], init=tuple(init), seed=seed)
    else:
        learner = PromptLearner(clip, n_ctx=n_ctx, init="random", seed=seed)
    opt = torch.optim.Adam(learner.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    history = {"loss": [], "config": {"n_crops": n_crops, "steps": steps, "families": list(families),
                                      "n_ctx": learner.n_ctx, "lr": lr, "batch": batch, "seed": seed,
                                      "objective": "soft-target BCE of each token's p_hazy against its true density"}}
    for _ in range(steps):
        idx = torch.randint(0, emb.shape[0], (batch,), generator=g).to(clip.device)
        pair = learner.text_embeddings(clip)
        logits = clip.logit_scale * emb[idx] @ (pair[0] - pair[1])
        loss = density_regression_loss(logits, dens[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history["loss"].append(loss.item())
    history["seconds"] = time.perf_counter() - start
    return learner, history
