"""Window attention: partitioning, shapes for any size, the shifted-window mask, full-attention limit."""

from __future__ import annotations

import pytest
import torch

from cliphaze.block import (
    WindowAttention,
    relative_position_index,
    shifted_region_labels,
    window_attention_mask,
    window_merge,
    window_partition,
)
from cliphaze.shapes import check, check_shape


def test_partition_merge_roundtrip_and_order():
    x = torch.arange(2 * 8 * 12 * 3, dtype=torch.float32).view(2, 8, 12, 3)
    win = check_shape(window_partition(x, 4), (2 * 2 * 3, 16, 3), "windows")
    # window 1 of image 0 is rows 0-3, columns 4-7, tokens row-major
    check(win[1].view(4, 4, 3), x[0, 0:4, 4:8], name="second window")
    check(window_merge(win, 4, 8, 12), x, name="merge(partition(x))")
    with pytest.raises(ValueError, match="pad first"):
        window_partition(torch.zeros(1, 7, 8, 1), 4)


def test_relative_position_index_covers_all_offsets():
    ws = 3
    idx = relative_position_index(ws)
    assert idx.shape == (9, 9)
    assert set(idx.flatten().tolist()) == set(range((2 * ws - 1) ** 2))
    assert (idx.diagonal() == (ws - 1) * (2 * ws - 1) + (ws - 1)).all()  # zero offset in the middle


@pytest.mark.parametrize(
    "b,h,w,c,heads,ws,shift",
    [(1, 8, 8, 8, 1, 4, False), (2, 7, 5, 8, 2, 4, True), (1, 1, 1, 4, 1, 8, True),
     (3, 9, 17, 6, 3, 4, True), (1, 13, 4, 4, 4, 3, 1), (2, 5, 11, 8, 1, 8, False)],
)
def test_shapes_any_size(b, h, w, c, heads, ws, shift):
    torch.manual_seed(0)
    attn = WindowAttention(c, num_heads=heads, window_size=ws, shift=shift)
    x = torch.randn(b, h, w, c)
    y, probs = attn(x, return_attention=True)
    check_shape(y, (b, h, w, c), "output")
    assert torch.isfinite(y).all()
    hp, wp = -(-h // ws) * ws, -(-w // ws) * ws
    check_shape(probs, (b, (hp // ws) * (wp // ws), heads, ws * ws, ws * ws), "attention")


def _full_attention_reference(attn: WindowAttention, x: torch.Tensor) -> torch.Tensor:
    """Plain self-attention over all h*w pixels with the module's weights and bias table."""
    b, h, w, c = x.shape
    ws, heads, hd = attn.window_size, attn.num_heads, attn.head_dim
    tokens = x.reshape(b, h * w, c)
    q, k, v = attn.qkv(tokens).view(b, h * w, 3, heads, hd).permute(2, 0, 3, 1, 4)
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    ys, xs = ys.flatten(), xs.flatten()
    index = (ys[:, None] - ys[None, :] + ws - 1) * (2 * ws - 1) + (xs[:, None] - xs[None, :] + ws - 1)
    bias = attn.relative_position_bias_table[index].permute(2, 0, 1)  # (heads, hw, hw)
    probs = ((q @ k.transpose(-2, -1)) / hd**0.5 + bias).softmax(-1)
    out = (probs @ v).transpose(1, 2).reshape(b, h * w, c)
    return attn.proj(out).view(b, h, w, c)


@pytest.mark.parametrize("h,w,shift", [(8, 8, False), (5, 7, False), (6, 8, True), (1, 3, False)])
def test_equals_full_attention_when_window_covers_image(h, w, shift):
    torch.manual_seed(1)
    attn = WindowAttention(8, num_heads=2, window_size=8, shift=shift).double()
    x = torch.randn(2, h, w, 8, dtype=torch.float64)
    check(attn(x), _full_attention_reference(attn, x), rtol=1e-10, atol=1e-12, name="window = full attention")


def _interaction_matrix(attn: WindowAttention, h: int, w: int) -> torch.Tensor:
    """(h*w, h*w) bool: output pixel p depends on input pixel q (exact zero test on the Jacobian)."""
    torch.manual_seed(2)
    x = torch.randn(1, h, w, attn.dim, dtype=torch.float64, requires_grad=True)
    y = attn(x)
    rows = []
    for p in range(h * w):
        (g,) = torch.autograd.grad(y[0, p // w, p % w].sum(), x, retain_graph=True)
        rows.append(g[0].abs().sum(-1).flatten() > 0)
    return torch.stack(rows)


@pytest.mark.parametrize("h,w,ws,shift", [(8, 8, 4, 2), (7, 10, 4, 2), (9, 6, 3, 1), (8, 8, 4, 0)])
def test_attention_never_crosses_a_shifted_region(h, w, ws, shift):
    attn = WindowAttention(4, num_heads=1, window_size=ws, shift=shift).double()
    labels = shifted_region_labels(h, w, ws, shift).flatten()
    expected = labels[:, None] == labels[None, :]
    assert torch.equal(_interaction_matrix(attn, h, w), expected)


def test_interaction_test_detects_a_missing_mask(monkeypatch):
    """Without the mask, the cyclic roll lets far-apart pixels attend: the test above must see it."""
    h, w, ws, shift = 8, 8, 4, 2
    attn = WindowAttention(4, num_heads=1, window_size=ws, shift=shift).double()

    def no_mask(h_, w_, shift_, device):
        return torch.ones(window_attention_mask(h_, w_, ws, shift_).shape, dtype=torch.bool)

    monkeypatch.setattr(attn, "_mask", no_mask)
    labels = shifted_region_labels(h, w, ws, shift).flatten()
    crosses = _interaction_matrix(attn, h, w) & ~(labels[:, None] == labels[None, :])
    # pixel (0, 0) and pixel (7, 7) share a rolled window, so an unmasked roll connects them
    assert crosses.any() and crosses[0, h * w - 1]


def test_mask_lets_every_real_query_see_itself_and_hides_padding():
    allowed = window_attention_mask(7, 6, 4, 2)  # (nw, t, t)
    assert allowed.shape == (4, 16, 16)
    real = torch.zeros(8, 8, dtype=torch.bool)
    real[:7, :6] = True
    real_w = window_partition(torch.roll(real, (-2, -2), (0, 1))[None, :, :, None], 4)[..., 0]
    assert allowed.diagonal(dim1=1, dim2=2)[real_w].all()
    assert not allowed.transpose(1, 2)[~real_w].any()  # no query attends to a padded key


def test_padded_keys_are_ignored():
    """A window that overlaps the zero padding attends over its real pixels only."""
    torch.manual_seed(3)
    attn = WindowAttention(4, num_heads=2, window_size=4).double()
    x = torch.randn(1, 6, 6, 4, dtype=torch.float64)  # padded to 8x8
    # the window at rows 0-3, columns 4-7 holds real columns 4-5 and two padded columns
    expected = _full_attention_reference(attn, x[:, 0:4, 4:6])
    check(attn(x)[:, 0:4, 4:6], expected, rtol=1e-10, atol=1e-12, name="window with padding")


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="multiple of num_heads"):
        WindowAttention(6, num_heads=4)
    with pytest.raises(ValueError, match="shift"):
        WindowAttention(4, window_size=4, shift=4)
    with pytest.raises(ValueError, match="channel-last"):
        WindowAttention(4)(torch.zeros(1, 4, 8, 8))


def test_gradient_reaches_bias_table_and_projections():
    torch.manual_seed(4)
    attn = WindowAttention(4, num_heads=2, window_size=4, shift=True)
    attn(torch.randn(2, 9, 7, 4)).square().mean().backward()
    for name, p in attn.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize(("b", "h", "w", "shift", "heads"),
                         [(1, 16, 16, False, 1), (2, 13, 21, True, 2), (1, 5, 7, True, 1), (3, 24, 16, 3, 2)])
def test_fused_inference_path_equals_explicit_attention(b, h, w, shift, heads):
    """Without autograd the layer runs PyTorch's fused attention; it must give the explicit
    softmax(QK^T/sqrt(d) + B + mask) V of the training path to float rounding, masks included."""
    torch.manual_seed(0)
    layer = WindowAttention(8, num_heads=heads, window_size=4, shift=shift).eval()
    with torch.no_grad():
        layer.relative_position_bias_table.normal_()           # a bias that matters
    x = torch.randn(b, h, w, 8)
    explicit = layer(x)                                        # grad enabled: explicit path
    assert explicit.requires_grad
    with torch.no_grad():
        fused = layer(x)
    check(fused, explicit.detach(), rtol=1e-5, atol=1e-6, name="fused vs explicit attention")
