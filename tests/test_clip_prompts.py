"""Prompt learning: training moves the loss, files round-trip, a mismatched backbone is refused."""

from __future__ import annotations

import pytest
import torch

from cliphaze.clip import (
    PromptBackboneMismatch,
    PromptLearner,
    load_clip,
    load_prompts,
    save_prompts,
)
from cliphaze.clip.prompts import PromptLearnerConfig, embed_pool, train_prompts
from cliphaze.clip.small_clip import TINY_TEST_CLIP_NAME
from cliphaze.shapes import check


@pytest.fixture(scope="module")
def tiny():
    return load_clip(TINY_TEST_CLIP_NAME, pretrained="random", seed=0)


@pytest.fixture(scope="module")
def photos():
    g = torch.Generator().manual_seed(0)
    # Smooth random "photos": low-frequency colour fields upsampled, so haze changes them visibly.
    base = torch.rand(4, 3, 6, 8, generator=g)
    return list(torch.nn.functional.interpolate(base, size=(60, 80), mode="bilinear", align_corners=False))


def test_save_load_round_trip(tiny, tmp_path):
    learner = PromptLearner(tiny, n_ctx=3, class_words=("hazy", "clear"), seed=3)
    path = save_prompts(learner, tmp_path / "p.pt", extra={"note": "test"})
    loaded = load_prompts(path, tiny)
    check(loaded.ctx, learner.ctx, 0, 0, "context vectors")
    check(loaded.text_embeddings(tiny), learner.text_embeddings(tiny), 1e-6, 1e-7, "prompt embeddings")
    assert loaded.class_words == ("hazy", "clear") and loaded.extra == {"note": "test"}
    assert path.stat().st_size < 20_000


def test_mismatched_backbone_is_refused(tiny, tmp_path):
    other = load_clip(TINY_TEST_CLIP_NAME, pretrained="random", seed=1)
    learner = PromptLearner(tiny, n_ctx=2)
    path = save_prompts(learner, tmp_path / "p.pt")
    with pytest.raises(PromptBackboneMismatch, match="learned for backbone"):
        load_prompts(path, other)
    with pytest.raises(PromptBackboneMismatch):
        learner.text_embeddings(other)


def test_not_a_prompt_file(tmp_path, tiny):
    torch.save({"hello": 1}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="not a cliphaze prompt file"):
        load_prompts(tmp_path / "x.pt", tiny)


def test_training_lowers_the_loss_on_a_fixed_pool(tiny, photos):
    pool = embed_pool(tiny, photos, n_crops=64, seed=0)
    assert pool[0].shape == (128, tiny.embed_dim) and set(pool[1].tolist()) <= {0, 1}
    config = PromptLearnerConfig(n_ctx=2, steps=60, batch=128, lr=2e-2, seed=0)
    learner, history = train_prompts(tiny, photos, config, pool=pool)
    emb, labels = pool[0], pool[1]

    def full_loss(l):
        with torch.no_grad():
            logits = tiny.logit_scale * emb @ l.text_embeddings(tiny).t()
            return torch.nn.functional.cross_entropy(logits, labels).item()

    start = PromptLearner(tiny, n_ctx=2, seed=0)
    assert full_loss(learner) < full_loss(start), "prompt learning did not lower the loss"
    assert len(history["loss"]) == 60


def test_region_pool_labels_tokens_by_local_density(tiny, photos):
    emb, labels, density = embed_pool(tiny, photos, n_crops=8, seed=0, target="regions", hazy_above=0.5)
    grid = tiny.token_grid(*tiny.image_size)
    assert emb.shape == (16 * grid[0] * grid[1], tiny.embed_dim)
    assert torch.equal(labels, (density <= 0.5).long())
    assert (density[: 8 * grid[0] * grid[1]] == 0).all(), "the clear twins come first and have no haze"
    with pytest.raises(ValueError, match="target"):
        embed_pool(tiny, photos, n_crops=2, target="pixels")
