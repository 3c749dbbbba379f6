"""The CoOp text path, dense tokens and zero-shot density maps (tiny random CLIP: runs in a second)."""

from __future__ import annotations

import pytest
import torch

from cliphaze.clip import (
    PromptLearner,
    density_map,
    hazy_probability,
    load_clip,
    prompt_pair_embeddings,
)
from cliphaze.clip.density import crop_windows
from cliphaze.clip.small_clip import TINY_TEST_CLIP_NAME
from cliphaze.shapes import check, check_shape


@pytest.fixture(scope="module")
def tiny():
    return load_clip(TINY_TEST_CLIP_NAME, pretrained="random", seed=0)


def test_coop_path_equals_encode_text_for_real_words(tiny):
    texts = ["a hazy photo of a street", "a clear image", "fog"]
    emb, eot = tiny.token_embeddings(texts)
    check(tiny.encode_prompt_embeddings(emb, eot), tiny.encode_text(texts), 1e-6, 1e-6, "CoOp path vs encode_text")


def test_prompt_learner_with_word_context_equals_encode_text(tiny):
    """Context vectors set to the embeddings of real words reproduce open_clip's encode_text of the
    sentence, with and without class words (CoOp and CLIP-LIT layouts)."""
    learner = PromptLearner(tiny, n_ctx=4, init=("a hazy photo of", "a clear photo of"))
    check(learner.text_embeddings(tiny), tiny.encode_text(["a hazy photo of.", "a clear photo of."]), 1e-6, 1e-6, "CLIP-LIT layout")
    coop = PromptLearner(tiny, n_ctx=3, class_words=("hazy", "clear"), init=("a photo of", "a photo of"))
    check(coop.text_embeddings(tiny), tiny.encode_text(["a photo of hazy.", "a photo of clear."]), 1e-6, 1e-6, "CoOp layout")


def test_prompt_learner_gradients_reach_only_the_context(tiny):
    learner = PromptLearner(tiny, n_ctx=2, seed=0)
    learner.text_embeddings(tiny).sum().backward()
    assert learner.ctx.grad is not None and learner.ctx.grad.abs().sum() > 0
    assert all(p.grad is None for p in tiny.parameters())
    with pytest.raises(ValueError, match="exactly n_ctx"):
        PromptLearner(tiny, n_ctx=2, init=("a very hazy photo", "x"))


def test_image_tokens_grid_and_shapes(tiny):
    x = torch.rand(2, 3, 45, 90, generator=torch.Generator().manual_seed(0))
    tokens, (gh, gw) = tiny.image_tokens(x, return_grid=True)
    assert (gh, gw) == tiny.token_grid(45, 90) == (4, 8)
    check_shape(tokens, (2, gh * gw, tiny.embed_dim), "tokens")
    check(tokens.norm(dim=-1), torch.ones(2, gh * gw), 1e-5, 1e-5, "unit tokens")
    tokens_big, grid_big = tiny.image_tokens(x, short_side=64, return_grid=True)
    assert grid_big == (8, 16)


def test_native_grid_tokens_reproduce_open_clip_visual(tiny):
    """At the native grid, the wrapper's visual forward (positional embedding not interpolated)
    gives exactly open_clip's last hidden state, checked through the class-token route: the
    projected, layer-normed class token is encode_image."""
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    v = tiny.model.visual
    captured = {}
    h = v.ln_post.register_forward_hook(lambda m, i, o: captured.setdefault("ln_post", o))
    tiny.encode_image(x)
    h.remove()
    expected = captured["ln_post"][:, 1:] @ v.proj
    tokens = tiny.image_tokens(x, normalize=False)
    check(tokens, expected, 1e-5, 1e-6, "projected patch tokens")


def test_hazy_probability_is_a_two_way_softmax():
    g = torch.Generator().manual_seed(0)
    v = torch.nn.functional.normalize(torch.randn(5, 8, generator=g), dim=-1)
    pair = torch.nn.functional.normalize(torch.randn(2, 8, generator=g), dim=-1)
    expected = torch.sigmoid(100.0 * (v @ pair[0] - v @ pair[1]))
    check(hazy_probability(v, pair, 100.0), expected, 1e-6, 1e-7, "p_hazy")


def test_prompt_ensemble_is_mean_of_unit_embeddings(tiny):
    hazy, clear = ["a hazy photo", "fog"], ["a clear photo"]
    pair = prompt_pair_embeddings(tiny, (hazy, clear))
    expected = torch.nn.functional.normalize(tiny.encode_text(hazy).mean(0), dim=-1)
    check(pair[0], expected, 1e-6, 1e-6, "ensemble")
    check(pair[1], tiny.encode_text(clear)[0], 1e-6, 1e-6, "single prompt")


@pytest.mark.parametrize("method", ["dense", "crops"])
def test_density_map_shape_range_and_batch_consistency(tiny, method):
    g = torch.Generator().manual_seed(2)
    x = torch.rand(3, 3, 37, 53, generator=g)
    maps = check_shape(density_map(tiny, x, method=method), (3, 1, 37, 53), "density")
    assert maps.min() >= 0 and maps.max() <= 1
    resized = check_shape(density_map(tiny, x, method=method, size=(16, 24)), (3, 1, 16, 24), "resized density")
    one_by_one = torch.cat([density_map(tiny, x[i : i + 1], method=method, size=(16, 24)) for i in range(3)])
    check(resized, one_by_one, 1e-4, 1e-5, f"{method}: batch vs one image at a time")
    check_shape(density_map(tiny, x[0], method=method, size=20), (1, 1, 20, 20), "square size from an int")


def test_crop_windows_cover_the_image():
    for h, w, c, s in [(37, 53, 12, 6), (10, 10, 16, 8), (64, 100, 20, 20)]:
        cover = torch.zeros(h, w)
        for y, x in crop_windows(h, w, min(c, h, w), s):
            cover[y : y + min(c, h, w), x : x + min(c, h, w)] += 1
        assert cover.min() >= 1, (h, w, c, s)


def test_density_rejects_bad_input(tiny):
    with pytest.raises(ValueError):
        density_map(tiny, torch.rand(1, 4, 16, 16))
    with pytest.raises(ValueError, match="method"):
        density_map(tiny, torch.rand(1, 3, 16, 16), method="pixels")
