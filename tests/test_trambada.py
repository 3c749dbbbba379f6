"""The TrambaDA block: shapes, gradients, batch equivariance, determinism, guidance, cost helper."""

from __future__ import annotations

import pytest
import torch

from cliphaze.block import (
    AGGREGATION_KINDS,
    TrambaDA,
    count_flops,
    count_parameters,
    make_aggregation,
    parameter_breakdown,
    scan_flops,
)
from cliphaze.shapes import check, check_shape

CLIP_DIM = 12


def _block(kind="density", dim=8, seed=0, **kw):
    torch.manual_seed(seed)
    kw = {"num_heads": 2, "window_size": 4, "d_state": 4, "ssm_ratio": 1.0, **kw}
    return TrambaDA(dim, aggregation=kind, clip_dim=CLIP_DIM, **kw)


def _guidance(b, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 1, 19, 13, generator=g), torch.randn(b, 3, CLIP_DIM, generator=g)


def _unzero_aggregation(block):
    """Guided aggregations start at zero output weights; move them so all parameters get gradient."""
    proj = getattr(block.aggregation, "proj", None)
    if proj is not None:
        with torch.no_grad():
            proj.weight.normal_(0, 0.5)


@pytest.mark.parametrize("kind", AGGREGATION_KINDS)
@pytest.mark.parametrize("b,c,h,w,shift", [(1, 8, 4, 4, False), (2, 8, 7, 5, True), (1, 4, 1, 9, True),
                                           (2, 8, 9, 9, False)])
def test_shapes_every_aggregation(kind, b, c, h, w, shift):
    block = _block(kind, dim=c, shift=shift, num_heads=2 if c % 2 == 0 else 1)
    density, tokens = _guidance(b)
    out, (w_a, w_m) = block(torch.randn(b, c, h, w), density=density, tokens=tokens, return_weights=True)
    check_shape(out, (b, c, h, w), "block output")
    check_shape(block.last_weights[1], (b, c, h, w), "last W_m")
    assert torch.isfinite(out).all()
    check(w_a + w_m, torch.ones_like(w_a), atol=1e-6, name="W_a + W_m")


@pytest.mark.parametrize("kind,ffn", [("density", "gdfn"), ("semantic", "mlp"), ("static", "gdfn"),
                                      ("attention", "mlp"), ("mamba", "gdfn")])
def test_gradients_reach_every_parameter(kind, ffn):
    block = _block(kind, ffn=ffn)
    _unzero_aggregation(block)
    density, tokens = _guidance(2)
    block(torch.randn(2, 8, 6, 5), density=density, tokens=tokens).square().mean().backward()
    for name, p in block.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_single_path_blocks_do_not_build_the_other_path():
    assert _block("attention").mamba is None and _block("mamba").attn is None
    full, attn_only = _block("sum"), _block("attention")
    assert count_parameters(full) == count_parameters(attn_only) + count_parameters(full.mamba)


@pytest.mark.parametrize("kind", ["density", "semantic"])
def test_equivariant_to_batch_order(kind):
    block = _block(kind, shift=True)
    _unzero_aggregation(block)
    x = torch.randn(3, 8, 5, 6)
    density, tokens = _guidance(3)
    perm = torch.tensor([2, 0, 1])
    out = block(x, density=density, tokens=tokens)
    out_perm = block(x[perm], density=density[perm], tokens=tokens[perm])
    check(out_perm, out[perm], rtol=1e-5, atol=1e-6, name="block(x[perm]) vs block(x)[perm]")


def test_deterministic_given_a_seed():
    x = torch.randn(2, 8, 6, 6, generator=torch.Generator().manual_seed(3))
    density, tokens = _guidance(2)
    a = _block("semantic", seed=7)(x, density=density, tokens=tokens)
    block = _block("semantic", seed=7)
    b1 = block(x, density=density, tokens=tokens)
    b2 = block(x, density=density, tokens=tokens)
    check(b1, a, rtol=0, atol=0, name="same seed, same block")
    check(b2, b1, rtol=0, atol=0, name="same block, second call")
    c = _block("semantic", seed=8)(x, density=density, tokens=tokens)
    assert not torch.equal(a, c)


def test_without_guidance_uses_the_documented_default():
    block = _block("density")
    _unzero_aggregation(block)
    x = torch.randn(1, 8, 5, 5)
    out, (w_a, w_m) = block(x, return_weights=True)
    check(w_m, torch.full_like(w_m, 0.5), atol=0, name="W_m without density")
    u, f_a, f_m = block.paths(x)
    mid = x + 0.5 * f_a + 0.5 * f_m
    expected = mid + block.ffn(block.norm2(mid.permute(0, 2, 3, 1)).permute(0, 3, 1, 2))
    check(out, expected, rtol=1e-5, atol=1e-6, name="block without guidance")
    strict = _block("density", on_missing="raise")
    with pytest.raises(ValueError, match="density map"):
        strict(x)


def test_accepts_an_aggregation_instance_and_rejects_mismatches():
    block = _block(make_aggregation("static", 8))
    check_shape(block(torch.randn(1, 8, 4, 4)), (1, 8, 4, 4), "output")
    with pytest.raises(ValueError, match="dim 6"):
        _block(make_aggregation("static", 6))
    with pytest.raises(ValueError, match="ffn"):
        _block(ffn="conv")
    with pytest.raises(ValueError, match=r"c=8"):
        _block()(torch.randn(1, 4, 4, 4))


def test_cost_helper_counts_what_it_claims():
    block = _block("sum", ffn="mlp", mlp_ratio=2.0, window_size=4)
    b, h, w, c = 2, 4, 8, 8
    parts = parameter_breakdown(block)
    assert parts["total"] == sum(v for k, v in parts.items() if k != "total") == count_parameters(block)
    report = count_flops(block, torch.randn(b, c, h, w))
    hidden = 16
    assert report.by_module["ffn"] == 2 * b * h * w * (c * hidden + hidden * c)
    # attention: qkv and proj projections, plus Q K^T and P V over 2 windows of 16 tokens
    t, windows = 16, 2
    qkv_proj = 2 * b * h * w * c * 4 * c
    scores = 2 * 2 * b * windows * t * t * c
    assert report.by_module["attn"] == qkv_proj + scores
    k, d, n = 4, block.mamba.d_inner, block.mamba.d_state
    assert report.scan == scan_flops(b, h * w, k * d, n) == 9 * b * h * w * k * d * n + b * k * d * h * w
    assert report.total == report.counted + report.scan
