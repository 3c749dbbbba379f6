"""Leave-one-family-out evaluation of density maps, the ranking and regression losses, the training
sampler of the content-invariant recipe, and the prompt calibration (all tiny: seconds)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cliphaze.analysis.density_eval import (
    check_targets,
    clear_photo_scores,
    family_eval_sets,
    family_table,
    luminance,
)
from cliphaze.clip.losses import (
    decorrelation_loss,
    density_regression_loss,
    haze_score,
    ranking_loss,
    spatial_ranking_loss,
)


def test_ranking_loss_zero_when_ordered_with_margin_positive_when_reversed():
    lighter = torch.tensor([0.0, 1.0, -2.0])
    denser = lighter + 1.5
    assert ranking_loss(denser, lighter, margin=1.0).item() == 0.0
    reversed_loss = ranking_loss(lighter, denser, margin=1.0).item()
    assert reversed_loss == pytest.approx(2.5)  # margin + the gap, for every pair
    # inside the margin: positive but smaller
    assert 0 < ranking_loss(lighter + 0.5, lighter, margin=1.0).item() == pytest.approx(0.5)
    mask = torch.tensor([True, False, False])
    assert ranking_loss(lighter, denser, margin=1.0, mask=mask).item() == pytest.approx(2.5)
    assert ranking_loss(lighter, denser, margin=1.0, mask=torch.zeros(3, dtype=torch.bool)).item() == 0.0


def test_spatial_ranking_loss_by_hand():
    density = torch.tensor([[0.0, 0.5, 0.52]])
    scores = torch.tensor([[0.0, 2.0, -1.0]])
    # qualifying pairs (gap > 0.05): (1, 0) and (2, 0); (2, 1) differs by only 0.02
    expected = (F.softplus(torch.tensor(-2.0)) + F.softplus(torch.tensor(1.0))) / 2
    torch.testing.assert_close(spatial_ranking_loss(scores, density), expected)
    assert spatial_ranking_loss(scores, torch.zeros(1, 3)).item() == 0.0
    ordered = spatial_ranking_loss(torch.tensor([[0.0, 20.0, 30.0]]), density)
    assert ordered.item() < 1e-8


def test_decorrelation_loss_is_the_squared_correlation():
    y = torch.tensor([[0.1, 0.4, 0.2, 0.9]])
    assert decorrelation_loss(3 * y + 1, y).item() == pytest.approx(1.0, abs=1e-5)
    assert decorrelation_loss(-y, y).item() == pytest.approx(1.0, abs=1e-5)
    flat = torch.tensor([[1.0, -1.0, -1.0, 1.0]])
    yy = torch.tensor([[1.0, 1.0, -1.0, -1.0]])  # orthogonal after centring
    assert decorrelation_loss(flat, yy).item() == pytest.approx(0.0, abs=1e-8)


def test_density_regression_is_minimal_at_the_true_density():
    d = torch.tensor([0.1, 0.5, 0.9])
    best = density_regression_loss(torch.logit(d), d)
    for shift in (-0.5, 0.5):
        assert density_regression_loss(torch.logit(d) + shift, d) > best


def test_haze_score_is_the_logit_of_the_two_prompt_map():
    from cliphaze.clip.density import hazy_probability

    g = torch.Generator().manual_seed(0)
    z = torch.randn(5, 8, generator=g)
    pair = F.normalize(torch.randn(2, 8, generator=g), dim=-1)
    p = hazy_probability(F.normalize(z, dim=-1), pair, 7.0)
    torch.testing.assert_close(torch.sigmoid(haze_score(z, pair[0], pair[1], 7.0)), p)


def _photos(n=3, h=40, w=48):
    g = torch.Generator().manual_seed(0)
    return [F.interpolate(torch.rand(1, 3, 5, 6, generator=g), size=(h, w), mode="bilinear")[0] for _ in range(n)]


def test_family_table_scores_the_truth_perfectly_and_flags_content():
    from cliphaze.haze.real_depth import RealDepthPair

    photos = _photos()
    depth = torch.linspace(0, 1, 48).view(1, 1, 48).expand(1, 40, 48).clone()
    pairs = [RealDepthPair("toy", photos[0], depth, "test")]
    sets = family_eval_sets(["fields", "room", "real-depth"], photos, ["a", "b", "c"], seed=0, real_pairs=pairs,
                            hazes_per_pair=2)
    assert len(sets["fields"].hazy) == 3 and len(sets["real-depth"].hazy) == 2
    truth = {id(h): d for es in sets.values() for h, d in zip(es.hazy, es.density)}

    def oracle(x):  # the true density for hazy images, zero for clear ones
        return truth.get(id(x), torch.zeros(1, 1, *x.shape[-2:])).clone()

    def brightness(x):  # a map that follows content: luminance
        return luminance(x)

    table = family_table({"oracle": oracle, "brightness": brightness}, sets, resolution=8)
    for family in sets:
        row = table[family]["oracle"]
        assert row["spearman_per_image"] > 0.99 and row["auroc_hazy_vs_clear"] == 1.0
        assert row["mae"] < 1e-6 and 0.0 <= row["saturated"] <= 1.0
        assert row["clear_mean"] == 0.0 and math.isnan(row["lum_spearman"])  # constant map: no rho
        assert table[family]["brightness"]["lum_spearman"] > 0.99
    ok = check_targets(table["room"]["brightness"])
    assert not ok["|lum spearman| < 0.2"]


def test_clear_photo_scores_by_hand():
    img = torch.linspace(0, 1, 16).view(1, 1, 1, 16).expand(1, 3, 16, 16)
    out = clear_photo_scores([-luminance(img) * 0.1 + 0.3], [img], resolution=16)
    assert out["clear_mean"] == pytest.approx(0.25, abs=1e-6)
    assert out["lum_spearman"] == pytest.approx(-1.0) and out["lum_abs_spearman"] == pytest.approx(1.0)


def test_pair_sampler_orders_haze_and_adds_bright_clear_images():
    from cliphaze.clip.crops import HazePairSampler

    s = HazePairSampler([(p * 255).to(torch.uint8) for p in _photos()], size=16, families=("fields", "room"), seed=0)
    b = s.batch(6)
    n, m = b["n"], b["m"]
    assert (n, m) == (6, 2) and b["images"].shape == (3 * n + m, 3, 16, 16) and len(b["captions"]) == 3 * n + m
    maps = b["maps"]
    lo, hi = maps[n + m : 2 * n + m], maps[2 * n + m :]
    assert (maps[: n + m] == 0).all()
    assert (hi >= lo - 1e-6).all() and float((hi - lo).mean()) > 0.05  # the denser twin is denser everywhere
    bright = b["images"][n : n + m]
    assert float(bright.mean()) > 0.45  # bright content
    with pytest.raises(ValueError, match="real-depth"):
        HazePairSampler(_photos(), size=16, families=("real-depth",))


def test_calibrated_prompts_fit_a_toy_density():
    """fit_density_prompts on a pool whose first embedding axis carries the density: the fitted
    map follows the density (tiny random CLIP, precomputed pool)."""
    from cliphaze.clip import load_clip
    from cliphaze.clip.small_train import fit_density_prompts

    clip = load_clip("tiny-test-clip", pretrained="random", seed=0)
    g = torch.Generator().manual_seed(0)
    d = torch.rand(512, generator=g)
    emb = torch.randn(512, clip.embed_dim, generator=g) * 0.1
    emb[:, 0] = 2 * d - 1
    learner, hist = fit_density_prompts(clip, [], steps=60, pool=(emb, d), lr=5e-2, batch=128)
    pair = learner.text_embeddings(clip).detach()
    p = torch.sigmoid(clip.logit_scale * F.normalize(emb, dim=-1) @ (pair[0] - pair[1]))
    from cliphaze.analysis.density_eval import spearman

    assert spearman(p, d) > 0.9 and hist["loss"][-1] < hist["loss"][0]


def test_family_names_of_the_parser_match_the_registry():
    from cliphaze.clip.eval_cli import FAMILY_NAMES
    from cliphaze.haze import HAZE_FAMILIES

    assert sorted(FAMILY_NAMES) == sorted(HAZE_FAMILIES)


def test_clip_evaluate_command_reports_every_family(tmp_path, capsys):
    import json

    import numpy as np
    from PIL import Image

    from cliphaze.cli import main

    test = tmp_path / "test"
    test.mkdir()
    for i in range(2):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(test / f"{i}.png")
    out = tmp_path / "report.json"
    code = main(["clip", "evaluate", "--model", "tiny-test-clip", "--pretrained", "random", "--test", str(test),
                 "--families", "fields", "room", "real-depth", "--rgbd", "none", "--hazes-per-pair", "1",
                 "--max-side", "48", "-o", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    assert set(report["families"]) == {"fields", "room", "real-depth"}
    row = report["families"]["room"]["dark channel 1 - t_DCP"]
    assert row["n_images"] == 2 and -1 <= row["spearman_per_image"] <= 1
    assert report["families"]["real-depth"]["hand-written pair, dense"]["n_images"] == 1  # the motorcycle
    assert "| room | dark channel 1 - t_DCP |" in capsys.readouterr().out


def test_clip_train_small_command_writes_model_and_calibrated_prompts(tmp_path):
    import numpy as np
    from PIL import Image

    from cliphaze.cli import main
    from cliphaze.clip import load_clip, load_prompts

    data = tmp_path / "photos"
    data.mkdir()
    for i in range(2):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (70, 90, 3), dtype=np.uint8)).save(data / f"{i}.png")
    model, prompts = tmp_path / "m.pt", tmp_path / "p.pt"
    assert main(["clip", "train-small", "--data", str(data), "--steps", "2", "--crops", "2", "--holdout", "fog",
                 "-o", str(model), "--prompts-output", str(prompts), "--prompt-steps", "2", "--prompt-crops", "2"]) == 0
    payload = torch.load(model, weights_only=True)
    assert payload["card"]["holdout"] == "fog" and "fog" not in payload["card"]["config"]["families"]
    clip = load_clip(str(model))
    learner = load_prompts(prompts, clip)  # tied to this checkpoint
    assert learner.extra["config"]["families"] == ["ramp", "fields", "room"]


def test_clip_train_small_loss_weight_flags_reach_the_recipe(tmp_path, monkeypatch):
    """--spatial-weight / --decorrelation-weight set the recipe's weights (recorded in the card), and
    the defaults are the shipped recipe's."""
    import numpy as np
    from PIL import Image

    from cliphaze.cli import main
    from cliphaze.clip.small_train import SmallClipTrainConfig

    data = tmp_path / "photos"
    data.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (70, 90, 3), dtype=np.uint8)).save(data / "0.png")
    for flags, want in (([], (1.0, 1.0)), (["--spatial-weight", "3", "--decorrelation-weight", "0.3"], (3.0, 0.3))):
        model = tmp_path / f"m{len(flags)}.pt"
        assert main(["clip", "train-small", "--data", str(data), "--steps", "1", "--crops", "2", "-o", str(model),
                     *flags]) == 0
        config = torch.load(model, weights_only=True)["card"]["config"]
        assert (config["spatial_weight"], config["decorrelation_weight"]) == want
    default = SmallClipTrainConfig()
    assert (default.spatial_weight, default.decorrelation_weight) == (1.0, 1.0)
