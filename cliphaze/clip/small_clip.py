"""``haze-clip-small``: a small CLIP trained from scratch here, on synthetic haze, so that every
lesson has a working CLIP offline.

It is *not* OpenAI CLIP and knows nothing about the world beyond haze: it was trained by
:func:`train_small_clip` on crops of clear photos with synthetic haze added
(:func:`cliphaze.haze.synthesize_haze`) and captions generated from the haze parameters
(:func:`make_caption`). What it shares with CLIP is the architecture (an open_clip ``CLIP`` built
from a registered config, so it loads through the same factory as ``ViT-B-32``) and the objective.

**Objective.** For a batch of ``b`` images with embeddings ``u_i`` and captions with embeddings
``v_j`` (all L2-normalised), CLIP's symmetric InfoNCE is::

    L = 1/2 [ CE(s * U V^T, targets) + CE(s * V U^T, targets) ],     s = exp(logit_scale)

with ``targets`` the diagonal. Generated captions repeat inside a batch ("a thick hazy photo"
twice), and the diagonal would then call an image's own caption a negative. We therefore
contrast images against the *unique* captions of the batch (:func:`contrastive_loss_unique`):
image -> text is a cross-entropy over the ``k`` unique captions with the image's caption as the
target; text -> image is a cross-entropy whose target distribution is uniform over all images
carrying that caption (several positives). With all captions distinct this is exactly CLIP's loss.
A second, patch-level term (:func:`token_level_loss`) classifies every projected patch token
against captions of four haze levels, labelled by the true density under the patch: trained with
the image term alone, the model told hazy from clear images but its patch tokens did not rank
local haze (measured; see ``cliphaze/assets/haze_clip_small_card.md``), and the dense density map
needs exactly that. Derived in ``notebooks/02_prompt_learning.ipynb``, section "Training the small
haze CLIP".

**Compact checkpoint.** open_clip's token-embedding table has 49408 rows whatever the width; at
width 128 that alone is 6.3 M numbers. Only the rows of tokens that occur in the caption
vocabulary (a few dozen) ever receive a gradient, so :func:`save_small_clip` stores just those rows
(fp16) with their ids, and :func:`load_small_clip_state` restores the rest as **zeros**: a word the
model never saw contributes nothing but its position. Everything else is stored in fp16 and
loaded as float32.

Shapes: b batch, k unique captions, e joint embedding width.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from cliphaze.paths import ASSETS_DIR

__all__ = [
    "SMALL_CLIP_NAME",
    "TINY_TEST_CLIP_NAME",
    "SMALL_CLIP_CONFIG",
    "TINY_TEST_CLIP_CONFIG",
    "SHIPPED_SMALL_CLIP",
    "CHECKPOINT_FORMAT",
    "register_small_configs",
    "caption_vocabulary",
    "make_caption",
    "strength_of",
    "contrastive_loss_unique",
    "token_level_loss",
    "density_level",
    "LEVEL_DENSITIES",
    "HazeCropSampler",
    "SmallClipTrainConfig",
    "train_small_clip",
    "save_small_clip",
    "load_small_clip_state",
    "file_digest",
]

SMALL_CLIP_NAME = "haze-clip-small"
TINY_TEST_CLIP_NAME = "tiny-test-clip"
CHECKPOINT_FORMAT = "cliphaze-compact-clip-v1"
SHIPPED_SMALL_CLIP = ASSETS_DIR / "haze_clip_small.pt"

#: The shipped small CLIP: a 4-layer ViT on 64 x 64 inputs with 8 x 8 patches (an 8 x 8 token
#: grid), a 3-layer text transformer over 24 tokens, a 128-d joint space. ``pool_type="avg"``: the
#: image embedding is the mean of the projected patch tokens, so every patch token lives in the
#: same space as the global embedding (what the dense density method needs).
SMALL_CLIP_CONFIG = {
    "embed_dim": 128,
    "vision_cfg": {"image_size": 64, "layers": 4, "width": 128, "head_width": 32, "patch_size": 8, "pool_type": "avg"},
    "text_cfg": {"context_length": 24, "vocab_size": 49408, "width": 128, "heads": 4, "layers": 3},
}

#: A randomly initialised CLIP for unit tests only: tiny so a forward pass takes milliseconds.
TINY_TEST_CLIP_CONFIG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 16, "head_width": 8, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1},
}

_REGISTERED = False


def register_small_configs() -> None:
    """Register ``haze-clip-small`` and ``tiny-test-clip`` with open_clip (idempotent).

    open_clip only reads configs from JSON files (``open_clip.add_model_config``), so the two
    dicts above are written to a temporary folder once per process; open_clip parses them when
    the folder is added, and the folder is removed straight after.
    """
    global _REGISTERED
    if _REGISTERED:
        return
    import open_clip

    with tempfile.TemporaryDirectory(prefix="cliphaze_clip_cfg_") as tmp:
        folder = Path(tmp)
        for name, cfg in ((SMALL_CLIP_NAME, SMALL_CLIP_CONFIG), (TINY_TEST_CLIP_NAME, TINY_TEST_CLIP_CONFIG)):
            (folder / f"{name}.json").write_text(json.dumps(cfg))
        open_clip.add_model_config(folder)
    if SMALL_CLIP_NAME not in open_clip.list_models():
        raise RuntimeError(f"open_clip did not register the {SMALL_CLIP_NAME} config")
    _REGISTERED = True


# ---------------------------------------------------------------------------------------------
# Captions from haze parameters
# ---------------------------------------------------------------------------------------------

STRENGTH_WORDS = {
    "thin": ("thin", "light", "faint"),
    "moderate": ("moderate", "medium"),
    "thick": ("thick", "dense", "heavy"),
}
KIND_WORDS = {
    "homogeneous": ("uniform", "even"),
    "nonhomogeneous": ("patchy", "uneven", "non-uniform"),
}
HAZE_NOUNS = ("haze", "fog", "mist")
HAZE_ADJECTIVES = {"haze": "hazy", "fog": "foggy", "mist": "misty"}
HAZY_TEMPLATES = (
    "a photo with {strength} {kind} {noun}",
    "a {strength} {adj} photo",
    "an image covered in {strength} {noun}",
    "a photo of a scene in {kind} {noun}",
    "a {adj} image",
    "a picture taken in {strength} {noun}",
    "a {adj} picture with {kind} {noun}",
)
CLEAR_TEMPLATES = (
    "a clear photo",
    "a clear image",
    "a haze-free photo",
    "a photo with no {noun}",
    "a clean sharp picture",
    "a photo of a clear scene",
    "a clear picture with no {noun}",
)
#: Mean density 1 - t of a crop below which it is captioned clear, and the strength buckets.
CLEAR_BELOW = 0.05
STRENGTH_EDGES = (0.3, 0.55)


def strength_of(mean_density: float) -> str | None:
    """Strength bucket of a crop from its mean density ``mean(1 - t)``.

    Returns ``None`` (clear) below :data:`CLEAR_BELOW`, else ``"thin"`` below 0.3, ``"moderate"``
    below 0.55 and ``"thick"`` above.
    """
    if mean_density < CLEAR_BELOW:
        return None
    if mean_density < STRENGTH_EDGES[0]:
        return "thin"
    if mean_density < STRENGTH_EDGES[1]:
        return "moderate"
    return "thick"


def make_caption(mean_density: float, kind: str, rng: random.Random) -> str:
    """A caption describing a (hazy or clear) crop, in one of several phrasings.

    Args:
        mean_density: mean of ``1 - t`` over the crop (0 for a clear crop).
        kind: ``"homogeneous"`` or ``"nonhomogeneous"`` (from :class:`cliphaze.haze.HazeSample`).
        rng: Python random generator (phrasing, synonyms).

    Returns:
        e.g. ``"a photo with thick patchy fog"``, ``"a misty image"`` or ``"a haze-free photo"``.
        Varying templates and synonyms makes the text tower learn *haze*, not one sentence, so
        prompts never seen verbatim ("hazy image") still land in the right place.
    """
    strength = strength_of(mean_density)
    noun = rng.choice(HAZE_NOUNS)
    if strength is None:
        return rng.choice(CLEAR_TEMPLATES).format(noun=noun)
    return rng.choice(HAZY_TEMPLATES).format(
        strength=rng.choice(STRENGTH_WORDS[strength]), kind=rng.choice(KIND_WORDS[kind]),
        noun=noun, adj=HAZE_ADJECTIVES[noun],
    )


#: Representative mean densities of the four levels (clear, thin, moderate, thick) used to
#: caption *patches* in the token-level term of the training loss.
LEVEL_DENSITIES = (0.0, 0.175, 0.425, 0.775)


def density_level(density: torch.Tensor) -> torch.Tensor:
    """Level index 0 (clear), 1 (thin), 2 (moderate), 3 (thick) of densities ``1 - t`` (any shape),
    with the same edges as :func:`strength_of`."""
    edges = torch.tensor([CLEAR_BELOW, *STRENGTH_EDGES], dtype=density.dtype, device=density.device)
    return torch.bucketize(density, edges, right=True)


#: Words the prompt lessons use beyond the captions; their token rows are kept in the compact
#: checkpoint (they are trained only if they also occur in captions).
EXTRA_PROMPT_TEXT = ("hazy image", "clear image", "X X X X X X X X", "a photo of a")


def caption_vocabulary() -> list[str]:
    """Every caption :func:`make_caption` can produce, plus :data:`EXTRA_PROMPT_TEXT`."""
    out = set(EXTRA_PROMPT_TEXT)
    for noun in HAZE_NOUNS:
        for t in CLEAR_TEMPLATES:
            out.add(t.format(noun=noun))
        for t in HAZY_TEMPLATES:
            for words in STRENGTH_WORDS.values():
                for s in words:
                    for kinds in KIND_WORDS.values():
                        for k in kinds:
                            out.add(t.format(strength=s, kind=k, noun=noun, adj=HAZE_ADJECTIVES[noun]))
    return sorted(out)


# ---------------------------------------------------------------------------------------------
# Loss with duplicate captions
# ---------------------------------------------------------------------------------------------


def contrastive_loss_unique(
    image_emb: torch.Tensor, text_emb_unique: torch.Tensor, caption_index: torch.Tensor, logit_scale: torch.Tensor
) -> torch.Tensor:
    """Symmetric CLIP loss against the unique captions of a batch (module docstring).

    Args:
        image_emb: ``(b, e)`` L2-normalised image embeddings.
        text_emb_unique: ``(k, e)`` L2-normalised embeddings of the ``k`` distinct captions.
        caption_index: ``(b,)`` long, which unique caption belongs to image ``i``.
        logit_scale: scalar ``s`` (already exponentiated).

    Returns:
        Scalar loss ``(L_i2t + L_t2i) / 2``. ``L_i2t = CE(s u_i . V^T, caption_index_i)``;
        ``L_t2i`` is the cross-entropy of ``softmax_i(s v_j . u_i)`` against the uniform
        distribution over the images whose caption is ``j`` (every duplicate is a positive).
    """
    logits = logit_scale * image_emb @ text_emb_unique.t()  # (b, k)
    loss_i2t = F.cross_entropy(logits, caption_index)
    k = text_emb_unique.shape[0]
    positives = F.one_hot(caption_index, k).t().to(logits.dtype)  # (k, b)
    target = positives / positives.sum(dim=1, keepdim=True)
    loss_t2i = -(target * F.log_softmax(logits.t(), dim=1)).sum(dim=1).mean()
    return 0.5 * (loss_i2t + loss_t2i)


def token_level_loss(tokens: torch.Tensor, level_text: torch.Tensor, density_maps: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Patch-level term: every projected patch token classified against four level captions.

    ``L_tok = mean_{i, p} CE(s * z_ip . [c_clear, c_thin, c_moderate, c_thick], level(D_ip))``,
    where ``z_ip`` is patch ``p`` of image ``i`` (unit-normalised), ``c_*`` the caption embeddings
    of the levels and ``D_ip`` the true mean density ``1 - t`` under the patch. This is the
    region-caption alignment of RegionCLIP-style training, with captions generated from the
    known local haze; it is what makes the dense tokens of the small CLIP meaningful.

    Args:
        tokens: ``(b, t, e)`` projected patch tokens (not yet normalised), ``t = gh * gw``.
        level_text: ``(4, e)`` unit caption embeddings, in level order.
        density_maps: ``(b, 1, H, W)`` true density of each image; pooled to the token grid.
        logit_scale: scalar ``s``.

    Returns:
        Scalar loss.
    """
    b, t, _ = tokens.shape
    g = int(round(math.sqrt(t)))
    local = F.adaptive_avg_pool2d(density_maps, (g, t // g)).flatten(1)  # (b, t)
    logits = logit_scale * F.normalize(tokens, dim=-1) @ level_text.t()  # (b, t, 4)
    return F.cross_entropy(logits.reshape(b * t, -1), density_level(local).reshape(-1))


# ---------------------------------------------------------------------------------------------
# Training data: random crops of clear photos, half of them hazed
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


@dataclass
class SmallClipTrainConfig:
    """Hyper-parameters of :func:`train_small_clip` (defaults: the shipped checkpoint)."""

    steps: int = 1500
    crops_per_step: int = 48
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup: int = 100
    seed: int = 0
    model_name: str = SMALL_CLIP_NAME
    log_every: int = 25
    token_weight: float = 1.0
    extra: dict = field(default_factory=dict)


def _image_normalise(model) -> Callable[[torch.Tensor], torch.Tensor]:
    from cliphaze.clip.backbone import preprocess_stats

    mean, std = preprocess_stats(model)
    return lambda x: (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)


def train_small_clip(
    photos: Sequence[torch.Tensor],
    config: SmallClipTrainConfig | None = None,
    progress: Callable[[int, float, float], None] | None = None,
    time_limit_s: float | None = None,
):
    """Train a CLIP from scratch on synthetic hazy/clear crops (module docstring: objective).

    The loss is the image-level :func:`contrastive_loss_unique` plus ``config.token_weight`` times
    :func:`token_level_loss` (every patch token against captions of the four haze levels).
    AdamW (weight decay on matrices only), linear warm-up then cosine decay; ``logit_scale``
    learnable and clamped at ``log(100)`` as in CLIP. Text is encoded once per unique caption of
    the batch (cheaper, and the loss needs unique captions anyway).

    Args:
        photos: clear photos, ``(3, h, w)`` tensors (uint8 or float in [0, 1]).
        config: :class:`SmallClipTrainConfig`.
        progress: called as ``progress(step, image_loss, token_loss)`` (running means) every
            ``config.log_every`` steps.
        time_limit_s: stop early (cleanly, keeping the schedule's current state) after this long.

    Returns:
        ``(model, history)``: the trained open_clip ``CLIP`` (eval mode, float32) and a dict with
        ``"step"``, ``"loss"`` (image term), ``"token_loss"`` lists, ``"seconds"`` and ``"config"``.
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
    sampler = HazeCropSampler(photos, size=size, seed=config.seed)

    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr, betas=(0.9, 0.98), eps=1e-6,
    )

    def lr_at(step: int) -> float:
        if step < config.warmup:
            return config.lr * (step + 1) / config.warmup
        frac = (step - config.warmup) / max(1, config.steps - config.warmup)
        return config.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))

    history = {"step": [], "loss": [], "token_loss": [], "config": asdict(config)}
    start = time.perf_counter()
    running = running_tok = None
    model.visual.output_tokens = True  # forward returns (pooled, tokens) so both terms share one pass
    for step in range(config.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        images, captions, _, maps = sampler.batch_with_maps(config.crops_per_step)
        unique = sorted(set(captions))
        index = torch.tensor([unique.index(c) for c in captions])
        # One fresh phrasing per density level (clear, thin, moderate, thick) for the patch term.
        kind = sampler.rng.choice(("homogeneous", "nonhomogeneous"))
        level_texts = [make_caption(d, kind, sampler.rng) for d in LEVEL_DENSITIES]
        pooled, tokens = model.visual(normalise(images))
        img = F.normalize(pooled, dim=-1)
        txt = F.normalize(model.encode_text(tokenizer(unique + level_texts)), dim=-1)
        scale = model.logit_scale.exp()
        loss_img = contrastive_loss_unique(img, txt[: len(unique)], index, scale)
        loss_tok = token_level_loss(tokens @ model.visual.proj, txt[len(unique):], maps, scale)
        loss = loss_img + config.token_weight * loss_tok
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        running = loss_img.item() if running is None else 0.9 * running + 0.1 * loss_img.item()
        running_tok = loss_tok.item() if running_tok is None else 0.9 * running_tok + 0.1 * loss_tok.item()
        if step % config.log_every == 0 or step == config.steps - 1:
            history["step"].append(step)
            history["loss"].append(running)
            history["token_loss"].append(running_tok)
            if progress is not None:
                progress(step, running, running_tok)
        if time_limit_s is not None and time.perf_counter() - start > time_limit_s:
            history["stopped_early_at"] = step
            break
    model.visual.output_tokens = False
    history["seconds"] = time.perf_counter() - start
    model.eval()
    return model, history


# ---------------------------------------------------------------------------------------------
# Compact checkpoint
# ---------------------------------------------------------------------------------------------


def save_small_clip(model, path: str | os.PathLike, model_name: str = SMALL_CLIP_NAME, card: dict | None = None) -> Path:
    """Save ``model`` as a compact fp16 checkpoint (module docstring: only caption token rows).

    Args:
        model: open_clip ``CLIP`` built from ``model_name``'s config.
        path: output ``.pt`` file.
        model_name: registered open_clip config name (stored, checked at load).
        card: optional JSON-able training record stored with the weights.

    Returns:
        ``path``. The file holds ``{"format", "model_name", "config", "state_dict" (fp16, without
        the token table), "token_ids", "token_rows" (fp16), "card"}``.
    """
    import open_clip

    register_small_configs()
    tokenizer = open_clip.get_tokenizer(model_name)
    ids = tokenizer(caption_vocabulary()).flatten().unique()
    ids = ids[ids != 0]  # 0 is padding ("!" in the BPE vocabulary, never in our captions)
    state = {k: v.detach().to(torch.float16) for k, v in model.state_dict().items() if k != "token_embedding.weight"}
    rows = model.token_embedding.weight.detach()[ids].to(torch.float16)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "model_name": model_name,
        "config": open_clip.get_model_config(model_name),
        "state_dict": state,
        "token_ids": ids,
        "token_rows": rows,
        "card": card or {},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(buffer.getvalue())
    os.replace(tmp, path)
    return path


def load_small_clip_state(model, payload: dict) -> None:
    """Fill ``model`` from a compact checkpoint ``payload`` (rows not stored become zeros)."""
    state = {k: v.float() for k, v in payload["state_dict"].items()}
    table = torch.zeros_like(model.token_embedding.weight)
    table[payload["token_ids"].long()] = payload["token_rows"].float()
    state["token_embedding.weight"] = table
    model.load_state_dict(state, strict=True)


def file_digest(path: str | os.PathLike, n: int = 12) -> str:
    """First ``n`` hex digits of the file's SHA-256 (identifies a checkpoint)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:n]
