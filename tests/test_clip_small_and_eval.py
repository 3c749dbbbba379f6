"""The small haze CLIP's captions and loss, the density metrics, and the shipped checkpoint."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cliphaze.analysis.density_eval import auroc, score_density, spearman
from cliphaze.clip.captions import STRENGTH_WORDS, caption_vocabulary, make_caption, strength_of
from cliphaze.clip.losses import contrastive_loss_unique
from cliphaze.shapes import check


def test_captions_follow_the_haze_and_vary():
    rng = random.Random(0)
    assert strength_of(0.0) is None and strength_of(0.2) == "thin" and strength_of(0.4) == "moderate" and strength_of(0.8) == "thick"
    thick = {make_caption(0.8, "nonhomogeneous", rng) for _ in range(200)}
    clear = {make_caption(0.0, "homogeneous", rng) for _ in range(200)}
    assert len(thick) > 10 and len(clear) >= 5, "several phrasings"
    assert not any(w in c.split() for c in thick for w in STRENGTH_WORDS["thin"])
    assert all(("haze" in c or "fog" in c or "mist" in c or "hazy" in c or "foggy" in c or "misty" in c) for c in thick)
    vocab = set(caption_vocabulary())
    assert thick <= vocab and clear <= vocab


def _clip_loss(img, txt, scale):
    logits = scale * img @ txt.t()
    target = torch.arange(img.shape[0])
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


def test_unique_caption_loss_equals_clip_loss_without_duplicates():
    g = torch.Generator().manual_seed(0)
    img = F.normalize(torch.randn(6, 8, generator=g), dim=-1)
    txt = F.normalize(torch.randn(6, 8, generator=g), dim=-1)
    check(contrastive_loss_unique(img, txt, torch.arange(6), torch.tensor(10.0)), _clip_loss(img, txt, 10.0), 1e-6, 1e-7, "loss")


def test_duplicate_captions_are_positives():
    """Two images share a caption: by hand, image->text uses the unique captions and
    text->image targets both images with weight 1/2."""
    g = torch.Generator().manual_seed(1)
    img = F.normalize(torch.randn(3, 8, generator=g), dim=-1)
    txt = F.normalize(torch.randn(2, 8, generator=g), dim=-1)
    index = torch.tensor([0, 0, 1])
    s = 5.0
    logits = s * img @ txt.t()
    i2t = -(logits.log_softmax(1)[torch.arange(3), index]).mean()
    lt = logits.t().log_softmax(1)
    t2i = -(0.5 * (lt[0, 0] + lt[0, 1]) + lt[1, 2]) / 2
    check(contrastive_loss_unique(img, txt, index, torch.tensor(s)), 0.5 * (i2t + t2i), 1e-6, 1e-7, "duplicate-aware loss")


def test_token_level_loss_by_hand():
    from cliphaze.clip.captions import density_level
    from cliphaze.clip.losses import token_level_loss

    g = torch.Generator().manual_seed(2)
    tokens = torch.randn(2, 4, 8, generator=g)  # a 2 x 2 token grid
    text = F.normalize(torch.randn(4, 8, generator=g), dim=-1)
    maps = torch.tensor([[0.0, 0.2], [0.4, 0.9]]).repeat_interleave(3, 0).repeat_interleave(3, 1)[None, None].repeat(2, 1, 1, 1)
    maps[1] = 0.0
    assert density_level(torch.tensor([0.0, 0.2, 0.4, 0.9, 0.05, 0.3])).tolist() == [0, 1, 2, 3, 1, 2]
    labels = torch.tensor([0, 1, 2, 3, 0, 0, 0, 0])
    logits = 7.0 * F.normalize(tokens, dim=-1).reshape(8, 8) @ text.t()
    check(token_level_loss(tokens, text, maps, torch.tensor(7.0)), F.cross_entropy(logits, labels), 1e-6, 1e-7, "token loss")


@pytest.mark.parametrize("recipe", ["ranking", "contrastive"])
def test_training_runs_and_round_trips(tmp_path, recipe):
    """Two steps on the tiny config (not a quality test): shapes, history and the compact file,
    which is plain data (loads with weights_only=True)."""
    from cliphaze.clip import load_clip
    from cliphaze.clip.compact import save_small_clip
    from cliphaze.clip.small_config import TINY_TEST_CLIP_NAME
    from cliphaze.clip.small_train import SmallClipTrainConfig, train_small_clip

    g = torch.Generator().manual_seed(0)
    photos = list(F.interpolate(torch.rand(3, 3, 5, 7, generator=g), size=(50, 70), mode="bilinear", align_corners=False))
    config = SmallClipTrainConfig(steps=2, crops_per_step=4, log_every=1, model_name=TINY_TEST_CLIP_NAME, recipe=recipe)
    model, history = train_small_clip(photos, config)
    assert history["step"] == [0, 1] and len(history["token_loss"]) == 2 and np.isfinite(history["loss"]).all()
    if recipe == "ranking":
        assert len(history["rank_loss"]) == 2 and np.isfinite(history["regression_loss"]).all()
    else:
        assert "rank_loss" not in history
    path = save_small_clip(model, tmp_path / "m.pt", model_name=TINY_TEST_CLIP_NAME, card={"note": "test"})
    payload = torch.load(path, weights_only=True)
    assert payload["card"] == {"note": "test"} and payload["format"] == "cliphaze-compact-clip-v1"
    loaded = load_clip(str(path))
    x = torch.rand(1, 3, 32, 32, generator=g)
    with torch.no_grad():
        expected = F.normalize(model.encode_image(loaded.normalise(x)), dim=-1)
    check(loaded.encode_image(x), expected, 2e-2, 2e-2, "trained model after compact round trip")


def test_spearman_and_auroc_against_references():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    a = rng.normal(size=300)
    b = a + rng.normal(size=300)
    b[:20] = b[0]  # ties
    assert abs(spearman(torch.tensor(a), torch.tensor(b)) - spearmanr(a, b).statistic) < 1e-12
    y = rng.random(300) > 0.6
    s = np.round(a * 2) / 2  # ties in the scores
    pairs = (s[y][:, None] > s[~y][None, :]).mean() + 0.5 * (s[y][:, None] == s[~y][None, :]).mean()
    assert abs(auroc(torch.tensor(s), torch.tensor(y)) - pairs) < 1e-12
    assert np.isnan(auroc(torch.tensor(s), torch.ones(300, dtype=torch.bool)))


def test_score_density_perfect_and_inverted():
    g = torch.Generator().manual_seed(0)
    d = F.interpolate(torch.rand(2, 1, 4, 4, generator=g), size=(32, 32), mode="bilinear", align_corners=False)
    good = score_density(d ** 2, d, threshold=0.5, resolution=16)
    bad = score_density(1 - d, d, threshold=0.5, resolution=16)
    assert good.spearman_per_image > 0.999 and good.auroc_pooled > 0.999
    assert bad.spearman_per_image < -0.999 and bad.auroc_pooled < 0.001


@pytest.fixture(scope="module")
def shipped():
    from cliphaze.clip import SHIPPED_SMALL_CLIP, load_clip

    if not SHIPPED_SMALL_CLIP.is_file():
        pytest.fail(f"shipped checkpoint missing: {SHIPPED_SMALL_CLIP}")
    return load_clip()


def test_shipped_checkpoint_is_small_and_named_honestly(shipped):
    from cliphaze.clip import SHIPPED_SMALL_CLIP, shipped_prompts_path

    assert SHIPPED_SMALL_CLIP.stat().st_size < 5_000_000
    assert shipped.info.model_name == "haze-clip-small" and "not OpenAI CLIP" in shipped.info.description
    assert shipped_prompts_path().is_file()


def test_shipped_clip_tokens_average_to_the_image_embedding(shipped):
    """haze-clip-small pools by averaging: the mean projected token is the image embedding."""
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    tokens = shipped.image_tokens(x, normalize=False)
    check(tokens.mean(1), shipped.encode_image(x, normalize=False), 1e-4, 1e-5, "mean token vs image embedding")


def test_shipped_clip_beats_a_random_clip_on_density():
    """On photos shipped with scikit-image (never in training), with synthetic patchy haze, the
    shipped backbone + learned prompts ranks haze density better than the same architecture at
    random initialisation."""
    from skimage import data

    from cliphaze.analysis.density_eval import make_eval_set
    from cliphaze.clip import HazeGuide, load_clip
    from cliphaze.io import to_tensor

    photos = [to_tensor(f()) for f in (data.astronaut, data.coffee, data.chelsea)]
    photos = [F.interpolate(p[None], size=(160, 200), mode="bilinear", align_corners=False, antialias=True)[0] for p in photos]
    ev = make_eval_set(photos, seed=0)
    trained = HazeGuide(prompts="learned", method="dense")
    random_guide = HazeGuide(load_clip("haze-clip-small", pretrained="random"), prompts="hand", method="dense")
    true = torch.cat(ev.density)

    def pooled(guide):
        return score_density(torch.cat([guide.density(h) for h in ev.hazy]), true, resolution=16)

    ours, rand = pooled(trained), pooled(random_guide)
    assert ours.spearman_pooled > rand.spearman_pooled + 0.2, (ours, rand)
    assert ours.spearman_per_image > rand.spearman_per_image, (ours, rand)
