"""The ablation runner: variants, hand-written prompts, statistics over seeds, one tiny end-to-end run."""

import math

import pytest
import torch

from cliphaze.analysis.ablation import (
    REFERENCE,
    VARIANTS,
    AblationConfig,
    AblationData,
    AblationResult,
    hand_prompt_file,
    run_ablation,
    variant_network,
)
from cliphaze.shapes import check


def test_every_variant_builds_the_network_it_names():
    expected = {"density": ("density", 4), "semantic": ("semantic", 4), "static": ("static", 4), "sum": ("sum", 4),
                "attention-only": ("attention", 4), "mamba-only": ("mamba", 4), "k=1": ("density", 1),
                "k=2": ("density", 2), "hand-prompts": ("density", 4)}
    assert set(VARIANTS) == set(expected)
    for name, (aggregation, k) in expected.items():
        cfg = variant_network(name)
        assert (cfg.aggregation, cfg.directions) == (aggregation, k), name
    assert VARIANTS["hand-prompts"].prompts == "hand" and VARIANTS[REFERENCE].prompts == "learned"


def test_config_adds_the_reference_and_rejects_unknown_variants():
    assert AblationConfig(variants=["sum"]).variants == ["density", "sum"]
    with pytest.raises(ValueError, match="unknown ablation variants"):
        AblationConfig(variants=["sum", "nope"])
    assert AblationConfig.gpu(device="cpu").steps > AblationConfig.cpu().steps


def test_hand_prompt_file_embeds_exactly_the_hand_written_words(tmp_path):
    from cliphaze.clip import load_clip, load_prompts

    clip = load_clip("tiny-test-clip", pretrained="random", seed=0)
    learner = load_prompts(hand_prompt_file(tmp_path / "hand.pt", clip), clip)
    with torch.no_grad():
        check(learner.text_embeddings(clip), clip.encode_text(["hazy image.", "clear image."]), rtol=1e-5, atol=1e-6,
              name="hand-written prompt file vs encode_text")


def _row(variant, seed, syn, ben):
    return {"variant": variant, "seed": seed, "params": 10, "train_seconds": 1.0, "final_loss": 0.1,
            "synthetic_psnr": syn, "synthetic_ssim": 0.5, "benchmark_psnr": ben, "benchmark_ssim": 0.5}


def test_summary_statistics_and_noise_marks():
    rows = [_row("density", s, v, v) for s, v in zip((0, 1, 2), (20.0, 21.0, 22.0))]
    rows += [_row("sum", s, v + 1.0, v + d) for s, v, d in zip((0, 1, 2), (20.0, 21.0, 22.0), (1.0, -1.0, 0.0))]
    result = AblationResult(rows=rows, config=AblationConfig().to_dict(), data="toy")
    s = {e["variant"]: e for e in result.summary()}
    assert s["density"]["synthetic_psnr"] == pytest.approx(21.0)
    assert s["density"]["synthetic_psnr_std"] == pytest.approx(1.0)  # sample std of 20, 21, 22
    assert s["sum"]["synthetic_psnr_diff"] == pytest.approx(1.0) and s["sum"]["synthetic_psnr_diff_std"] == 0.0
    assert s["sum"]["benchmark_psnr_diff"] == pytest.approx(0.0) and s["sum"]["benchmark_psnr_diff_std"] == 1.0
    line = next(ln for ln in result.to_markdown().splitlines() if ln.startswith("| sum |"))
    assert "+1.00 ± 0.00 |" in line  # a constant +1 dB on every seed: beyond noise, no mark
    assert "+0.00 ± 1.00 ~ |" in line  # +1, -1, 0: within noise


def test_one_seed_gives_no_spread_and_no_claim():
    rows = [_row("density", 0, 20.0, 20.0), _row("sum", 0, 21.0, 19.0)]
    result = AblationResult(rows=rows, config=AblationConfig(seeds=[0]).to_dict(), data="toy")
    assert "(1 seed)" in result.to_markdown()
    assert math.isnan(result.summary()[1]["synthetic_psnr_diff_std"])


def test_tiny_run_end_to_end(tmp_path):
    from cliphaze.model import PRESETS

    g = torch.Generator().manual_seed(0)
    photos = []
    for i in range(2):
        path = tmp_path / f"photo{i}.png"
        from cliphaze.io import save_image

        save_image(torch.rand(3, 24, 24, generator=g), path)
        photos.append(path)
    clear = torch.rand(3, 16, 16, generator=g)
    pair = {"hazy": 0.6 * clear + 0.35, "clear": clear, "name": "toy"}
    data = AblationData(photos, [pair], [pair], "toy data")
    cfg = AblationConfig(variants=["mamba-only"], seeds=[0, 1], steps=2, batch_size=2, crop=16, warmup_steps=1,
                         guide="tiny-test-clip")
    result = run_ablation(cfg, data, work_dir=tmp_path / "runs", log=lambda s: None)
    assert [(r["variant"], r["seed"]) for r in result.rows] == [("density", 0), ("mamba-only", 0), ("density", 1),
                                                               ("mamba-only", 1)]  # seed by seed
    params = {r["variant"]: r["params"] for r in result.rows}
    assert params["mamba-only"] < params["density"]  # the attention path is not built
    assert not any(k.startswith("_ablation") for k in PRESETS)  # temporary presets are removed
    assert result.baseline["synthetic_psnr"] == pytest.approx(result.baseline["benchmark_psnr"])
    again = AblationResult.load_json(result.save_json(tmp_path / "abl.json"))
    assert again.rows == result.rows and "| mamba-only |" in again.to_markdown()
