"""Aggregation modules: weight ranges, density response, guidance handling, bad inputs."""

from __future__ import annotations

import pytest
import torch

from cliphaze.block import (
    AGGREGATION_KINDS,
    DensityAwareAggregation,
    SemanticAwareAggregation,
    make_aggregation,
    resize_density,
)
from cliphaze.shapes import check, check_shape

C, CLIP_DIM = 6, 10


def _inputs(b=2, h=5, w=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, C, h, w, generator=g), torch.randn(b, C, h, w, generator=g),
            torch.randn(b, C, h, w, generator=g), torch.rand(b, 1, 23, 17, generator=g),
            torch.randn(b, 4, CLIP_DIM, generator=g))


def _randomise_last_projection(agg):
    """Move a guided module off its zero-initialised output layer (as training would)."""
    with torch.no_grad():
        torch.manual_seed(5)
        agg.proj.weight.normal_(0, 1.0)
        agg.proj.bias.normal_(0, 0.1)


@pytest.mark.parametrize("kind", AGGREGATION_KINDS)
def test_weights_in_range_and_fusion_formula(kind):
    f_a, f_m, u, density, tokens = _inputs()
    agg = make_aggregation(kind, C, clip_dim=CLIP_DIM)
    if hasattr(agg, "proj"):
        _randomise_last_projection(agg)
    fused, (w_a, w_m) = agg(f_a if agg.uses_attention else None, f_m if agg.uses_mamba else None,
                            features=u, density=density, tokens=tokens)
    check_shape(fused, (2, C, 5, 7), "fused")
    check_shape(w_a, (2, C, 5, 7), "W_a")
    assert (w_a >= 0).all() and (w_a <= 1).all() and (w_m >= 0).all() and (w_m <= 1).all()
    check(w_a + w_m, torch.ones_like(w_a), atol=1e-6, name="W_a + W_m")
    expected = w_a * f_a if not agg.uses_mamba else (w_m * f_m if not agg.uses_attention else w_a * f_a + w_m * f_m)
    check(fused, expected, atol=1e-6, name=f"{kind} fusion")


@pytest.mark.parametrize("kind", ["density", "semantic", "static"])
def test_learned_kinds_start_as_the_fixed_sum(kind):
    f_a, f_m, u, density, tokens = _inputs()
    fused, (w_a, w_m) = make_aggregation(kind, C, clip_dim=CLIP_DIM)(f_a, f_m, features=u, density=density, tokens=tokens)
    reference, _ = make_aggregation("sum", C)(f_a, f_m)
    check(fused, reference, atol=1e-7, name=f"{kind} at initialisation")


def test_density_weights_follow_the_density_map():
    agg = DensityAwareAggregation(C)
    _randomise_last_projection(agg)
    f_a, f_m, _, _, _ = _inputs(b=1)
    flat_thin = torch.full((1, 1, 5, 7), 0.1)
    flat_dense = torch.full((1, 1, 5, 7), 0.9)
    _, (_, wm_thin) = agg(f_a, f_m, density=flat_thin)
    _, (_, wm_dense) = agg(f_a, f_m, density=flat_dense)
    assert not torch.allclose(wm_thin, wm_dense)
    # a one-channel 1x1 projection: W_m per channel is a logistic function of the density
    weight, bias = agg.proj.weight.view(2, C), agg.proj.bias.view(2, C)  # rows: (a, m)
    slope, offset = weight[1] - weight[0], bias[1] - bias[0]
    check(wm_dense[0, :, 0, 0], torch.sigmoid(slope * 0.9 + offset).detach(), atol=1e-6, name="W_m formula")


def test_dense_haze_gets_more_mamba_weight_after_training_on_a_toy_task():
    """Toy task: the right answer is the Mamba features where haze is dense, attention elsewhere."""
    g = torch.Generator().manual_seed(0)
    h = w = 8
    density = torch.zeros(4, 1, h, w)
    density[..., :, w // 2:] = 0.9  # right half dense
    density[..., :, : w // 2] = 0.1
    agg = DensityAwareAggregation(C)
    opt = torch.optim.Adam(agg.parameters(), lr=0.1)
    dense = density.expand(-1, C, -1, -1) > 0.5
    for _ in range(30):
        f_a, f_m = torch.randn(4, C, h, w, generator=g), torch.randn(4, C, h, w, generator=g)
        target = torch.where(dense, f_m, f_a)
        fused, _ = agg(f_a, f_m, density=density)
        loss = (fused - target).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    _, (_, w_m) = agg(f_a, f_m, density=density)
    assert w_m[dense].mean() > 0.8 and w_m[~dense].mean() < 0.2


def test_resize_density_any_resolution_and_validation():
    d = torch.rand(2, 1, 64, 48)
    check_shape(resize_density(d, 8, 6), (2, 1, 8, 6), "shrunk")
    check_shape(resize_density(d[:1], 130, 7, batch=3), (3, 1, 130, 7), "grown and broadcast")
    const = torch.full((1, 1, 9, 9), 0.7)
    check(resize_density(const, 4, 5), torch.full((1, 1, 4, 5), 0.7), atol=1e-6, name="constant map")
    with pytest.raises(ValueError, match=r"\(b, 1, H, W\)"):
        resize_density(torch.rand(2, 3, 8, 8), 8, 8)
    with pytest.raises(ValueError, match="batch"):
        resize_density(d, 8, 8, batch=3)


def test_check_density_is_the_one_value_check():
    """Values are checked once where the map enters (check_density), shapes wherever it is resized."""
    from cliphaze.block import check_density

    d = torch.rand(2, 1, 16, 12)
    assert check_density(d, batch=2) is d and check_density(d[:1], batch=5) is not None
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        check_density(d * 255)
    with pytest.raises(ValueError, match=r"\(b, 1, H, W\)"):
        check_density(torch.rand(2, 3, 8, 8))
    with pytest.raises(ValueError, match="batch"):
        check_density(d, batch=3)
    with pytest.raises(ValueError, match="NaN"):
        check_density(torch.full((1, 1, 2, 2), float("nan")))


def test_each_aggregation_declares_what_it_needs():
    from cliphaze.block import AGGREGATION_KINDS, AGGREGATIONS, aggregation_needs

    assert set(AGGREGATIONS) == set(AGGREGATION_KINDS)
    assert {k: aggregation_needs(k) for k in AGGREGATION_KINDS} == {
        "density": {"density"}, "semantic": {"tokens"}, "sum": set(), "static": set(), "attention": set(),
        "mamba": set()}
    for kind in AGGREGATION_KINDS:  # the instance says the same as its class
        assert make_aggregation(kind, C, clip_dim=CLIP_DIM).needs == aggregation_needs(kind)
    with pytest.raises(ValueError, match="unknown aggregation"):
        aggregation_needs("nope")


@pytest.mark.parametrize("kind", ["density", "semantic"])
def test_missing_guidance_falls_back_or_raises(kind):
    f_a, f_m, u, _, _ = _inputs()
    agg = make_aggregation(kind, C, clip_dim=CLIP_DIM)
    _randomise_last_projection(agg)
    fused, (w_a, w_m) = agg(f_a, f_m, features=u)
    check(fused, 0.5 * f_a + 0.5 * f_m, atol=1e-6, name="fallback to the fixed sum")
    strict = make_aggregation(kind, C, clip_dim=CLIP_DIM, on_missing="raise")
    with pytest.raises(ValueError, match="needs"):
        strict(f_a, f_m, features=u)


def test_semantic_any_token_count_and_responds_to_tokens():
    f_a, f_m, u, _, _ = _inputs()
    agg = SemanticAwareAggregation(C, CLIP_DIM)
    _randomise_last_projection(agg)
    weights = []
    for t in (1, 3, 50):
        tokens = torch.randn(1, t, CLIP_DIM, generator=torch.Generator().manual_seed(t))  # batch 1 broadcast
        _, (_, w_m) = agg(f_a, f_m, features=u, tokens=tokens)
        check_shape(w_m, (2, C, 5, 7), f"W_m with {t} tokens")
        weights.append(w_m)
    assert not torch.allclose(weights[1], weights[2])
    with pytest.raises(ValueError, match="e=10"):
        agg(f_a, f_m, features=u, tokens=torch.randn(2, 3, 7))
    with pytest.raises(ValueError, match="features"):
        agg(f_a, f_m, tokens=torch.randn(2, 3, CLIP_DIM))


def test_semantic_gradients_reach_every_parameter():
    f_a, f_m, u, _, tokens = _inputs()
    agg = SemanticAwareAggregation(C, CLIP_DIM)
    _randomise_last_projection(agg)  # at zero init only the last layer gets gradient, by design
    fused, _ = agg(f_a, f_m, features=u, tokens=tokens)
    fused.square().mean().backward()
    for name, p in agg.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_factory_and_interface_errors():
    with pytest.raises(ValueError, match="unknown aggregation"):
        make_aggregation("average", C)
    with pytest.raises(ValueError, match="clip_dim"):
        make_aggregation("semantic", C)
    f_a, f_m, *_ = _inputs()
    with pytest.raises(ValueError, match="needs f_mamba"):
        make_aggregation("sum", C)(f_a, None)
    with pytest.raises(ValueError, match="c=6"):
        make_aggregation("sum", C)(f_a[:, :3], f_m[:, :3])
    with pytest.raises(ValueError, match="on_missing"):
        make_aggregation("density", C, on_missing="ignore")
