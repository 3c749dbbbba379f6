"""Analysis helpers: receptive fields, cost measurement, prompt-pair scores, weights vs density."""

import math

import pytest
import torch
import torch.nn as nn

from cliphaze.analysis import (
    aggregation_weights,
    binned_curve,
    block_path_erfs,
    effective_receptive_field,
    erf_radius,
    prompt_pair_scores,
)
from cliphaze.analysis.cost import (
    CostRow,
    FullSelfAttention,
    cost_table,
    growth_exponent,
    make_layer,
)
from cliphaze.shapes import check


def test_erf_of_a_3x3_box_filter_is_the_3x3_square():
    conv = nn.Conv2d(1, 1, 3, padding=1, bias=False)
    nn.init.ones_(conv.weight)
    erf = effective_receptive_field(conv, torch.randn(2, 1, 9, 9))
    expected = torch.zeros(9, 9, dtype=torch.float64)
    expected[3:6, 3:6] = 1.0
    check(erf, expected, rtol=0, atol=1e-12, name="box-filter ERF")
    assert erf_radius(erf, mass=1.0) == 1
    assert erf_radius(erf, mass=1 / 9) == 0


def test_erf_centre_outside_the_output_is_an_error():
    with pytest.raises(ValueError, match="outside"):
        effective_receptive_field(lambda x: x, torch.randn(1, 1, 4, 4), centre=(4, 0))


def test_attention_erf_stays_in_its_window_and_mamba_erf_covers_the_map():
    from cliphaze.block import TrambaDA

    torch.manual_seed(0)
    block = TrambaDA(8, num_heads=1, window_size=4, aggregation="sum", d_state=4, ssm_ratio=1.0)
    maps = block_path_erfs(block, torch.randn(1, 8, 12, 12), centre=(5, 5))
    outside = torch.ones(12, 12, dtype=torch.bool)
    outside[4:8, 4:8] = False  # the 4x4 window holding pixel (5, 5)
    assert float(maps.attention[outside].abs().max()) == 0.0
    assert float(maps.attention[~outside].min()) > 0.0
    # four scan directions: every pixel reaches the centre
    assert float(maps.mamba.min()) > 0.0
    assert set(maps.as_dict()) == {"attention path", "Mamba path", "fused block"}


def test_full_attention_equals_one_window_covering_the_map():
    from cliphaze.block import WindowAttention

    torch.manual_seed(0)
    window = WindowAttention(8, num_heads=2, window_size=6)
    with torch.no_grad():
        window.relative_position_bias_table.zero_()  # full attention has no position bias
    full = FullSelfAttention(8, num_heads=2)
    full.load_state_dict({k: v for k, v in window.state_dict().items() if k.startswith(("qkv", "proj"))})
    x = torch.randn(2, 6, 6, 8)
    check(full(x), window(x), rtol=1e-5, atol=1e-6, name="full attention vs one 6x6 window")


def test_growth_exponent_recovers_linear_and_quadratic():
    rows = [CostRow("lin", s, s * s, 3e-6 * s * s, 1.0) for s in (32, 64, 128)]
    rows += [CostRow("quad", s, s * s, 1e-9 * (s * s) ** 2, 1.0) for s in (32, 64, 128)]
    assert growth_exponent(rows, "lin") == pytest.approx(1.0)
    assert growth_exponent(rows, "quad") == pytest.approx(2.0)
    assert math.isnan(growth_exponent(rows, "lin", min_side=128))


def test_cost_table_measures_and_skips_full_attention_above_the_limit():
    rows = cost_table(sizes=(8, 16), kinds=("attention", "full-attention"), dim=4, repeats=1, max_gb=2e-5,
                      isolate=False, window_size=4)
    by = {(r.kind, r.side): r for r in rows}
    assert by[("attention", 16)].seconds > 0
    assert by[("full-attention", 8)].seconds > 0  # scores (64 tokens)^2 * 4 bytes = 16 kB: measured
    assert "skipped" in by[("full-attention", 16)].note and math.isnan(by[("full-attention", 16)].seconds)


def test_make_layer_keeps_shape_for_every_kind():
    x = torch.randn(1, 8, 10, 12)
    for kind in ("attention", "mamba", "full-attention", "block"):
        with torch.no_grad():
            assert make_layer(kind, 8, window_size=4, d_state=4).eval()(x).shape == x.shape
    with pytest.raises(ValueError, match="unknown kind"):
        make_layer("conv")


def test_binned_curve_known_values():
    x = torch.tensor([0.05, 0.06, 0.55, 0.95, 1.0])
    y = torch.tensor([1.0, 3.0, 5.0, 7.0, 9.0])
    c = binned_curve(x, y, bins=2)
    check(c["mean"], torch.tensor([2.0, 7.0], dtype=torch.float64), rtol=0, atol=1e-12, name="bin means")
    check(c["count"], torch.tensor([2.0, 3.0], dtype=torch.float64), rtol=0, atol=0, name="bin counts")
    assert float(c["std"][0]) == pytest.approx(1.0)
    assert math.isnan(float(binned_curve(x, y, bins=4, min_count=2)["mean"][3])) is False
    assert math.isnan(float(binned_curve(x, y, bins=4, min_count=2)["mean"][2]))


@pytest.fixture(scope="module")
def test_clip():
    from cliphaze.clip import load_clip

    return load_clip("tiny-test-clip", pretrained="random", seed=0)


def test_swapping_a_prompt_pair_flips_every_score(test_clip):
    g = torch.Generator().manual_seed(0)
    clear = torch.rand(3, 3, 32, 32, generator=g)
    hazy = 0.5 * clear + 0.45
    pair = ("hazy image", "clear image")
    scores = prompt_pair_scores(test_clip, clear, list(hazy), {"pair": pair, "swapped": pair[::-1]})
    a, b = scores
    check(a.hazy + b.hazy, torch.ones(3), rtol=0, atol=1e-5, name="p + p_swapped (hazy)")
    check(a.clear + b.clear, torch.ones(3), rtol=0, atol=1e-5, name="p + p_swapped (clear)")
    assert a.auroc + b.auroc == pytest.approx(1.0)


def test_aggregation_weights_follow_the_density_formula():
    from cliphaze.model import build_model, get_preset

    torch.manual_seed(0)
    cfg = get_preset("tiny", dims=(8, 8, 8), depths=(0, 1, 1, 0, 0), heads=(1, 1, 1), d_state=2)
    model = build_model(cfg, guide="tiny-test-clip").eval()
    with torch.no_grad():
        for m in model.net.modules():
            if type(m).__name__ == "DensityAwareAggregation":
                c = m.dim
                m.proj.weight.zero_()
                m.proj.bias.zero_()
                m.proj.weight[c:] = 4.0   # l_m = 4 M - 2, l_a = 0  ->  W_m = sigmoid(4 M - 2)
                m.proj.bias[c:] = -2.0
    curves = aggregation_weights(model, torch.rand(3, 18, 22))
    assert [cv.size for cv in curves] == [(8, 10), (4, 5)]  # image cropped to 16x20, blocks at 1/2 and 1/4
    for cv in curves:
        check(cv.w_m, torch.sigmoid(4 * cv.density - 2), rtol=1e-5, atol=1e-6, name=f"W_m of {cv.block}")
