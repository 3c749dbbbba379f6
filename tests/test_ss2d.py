"""SS2D: VMamba v0 parameter layout and initialisation, shapes, gradients, global receptive field."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cliphaze.shapes import check
from cliphaze.ssm import SS2D, last_backend, selective_scan_reference


def vmamba_v0_state_shapes(c, n=16, ratio=2.0, k=4, d_conv=3):
    d, r = int(ratio * c), math.ceil(c / 16)
    return {
        "in_proj.weight": (2 * d, c), "conv2d.weight": (d, 1, d_conv, d_conv), "conv2d.bias": (d,),
        "x_proj_weight": (k, r + 2 * n, d), "dt_projs_weight": (k, d, r), "dt_projs_bias": (k, d),
        "A_logs": (k * d, n), "Ds": (k * d,), "out_norm.weight": (d,), "out_norm.bias": (d,),
        "out_proj.weight": (c, d),
    }


def test_parameter_names_and_shapes_match_vmamba_v0():
    model = SS2D(48)
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == vmamba_v0_state_shapes(48)


def test_directions_and_no_z_variant_shapes():
    assert SS2D(16, directions=2).x_proj_weight.shape == (2, 1 + 32, 32)
    cheap = SS2D(16, d_state=1, ssm_ratio=1.0)
    assert cheap.in_proj.weight.shape == (16, 16)     # no z half
    assert cheap.A_logs.shape == (4 * 16, 1)


def test_initialisation():
    torch.manual_seed(0)
    model = SS2D(32, d_state=8)
    check(model.A_logs, torch.log(torch.arange(1, 9.0)).expand(4 * 64, 8), rtol=0, atol=0, name="A_logs")
    check(model.Ds, torch.ones(4 * 64), rtol=0, atol=0, name="Ds")
    dt = F.softplus(model.dt_projs_bias)
    assert dt.min() >= 1e-3 * (1 - 1e-5) and dt.max() <= 0.1 * (1 + 1e-5)
    # log-uniform on [1e-3, 0.1]: the median of log dt is near the middle of the interval
    assert abs(dt.log().median().item() - 0.5 * (math.log(1e-3) + math.log(0.1))) < 0.3
    bound = model.dt_rank ** -0.5
    assert model.dt_projs_weight.abs().max() <= bound


@pytest.mark.parametrize(("b", "h", "w"), [(1, 1, 1), (2, 4, 4), (1, 3, 7), (3, 5, 2)])
@pytest.mark.parametrize("directions", [1, 2, 4])
def test_output_shape_any_size(b, h, w, directions):
    model = SS2D(8, d_state=4, directions=directions)
    assert model(torch.randn(b, h, w, 8)).shape == (b, h, w, 8)


def test_gradient_reaches_every_parameter():
    torch.manual_seed(0)
    for d_state in (4, 1):
        model = SS2D(8, d_state=d_state)
        model(torch.randn(2, 3, 5, 8)).square().sum().backward()
        for name, p in model.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, f"d_state={d_state}: no gradient for {name}"


def perturbation_reach(model, h, w, pixel):
    """Which output pixels change when one input pixel changes (float64, no rounding doubt)."""
    torch.manual_seed(1)
    x = torch.randn(1, h, w, model.d_model, dtype=torch.float64)
    x2 = x.clone()
    x2[0, pixel[0], pixel[1]] += 1.0
    with torch.no_grad():
        return (model(x2) - model(x)).abs().amax(-1)[0] > 0


def test_one_layer_has_a_global_receptive_field():
    torch.manual_seed(0)
    model = SS2D(8, d_state=4).double()
    reach = perturbation_reach(model, 7, 9, (3, 4))
    assert reach.all(), f"{int((~reach).sum())} output pixels unaffected"


def test_one_direction_is_causal_in_row_major_order():
    """With only the row-major scan, a pixel cannot influence pixels before its 3x3 neighbourhood."""
    torch.manual_seed(0)
    model = SS2D(8, d_state=4, directions=1).double()
    h, w, (i, j) = 7, 9, (3, 4)
    reach = perturbation_reach(model, h, w, (i, j))
    first_reached = (i - 1) * w + (j - 1)              # the conv spreads the change by one pixel
    flat = reach.flatten()
    assert not flat[:first_reached].any()
    assert flat[first_reached:].all()


def test_backends_give_the_same_module_output():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 6, 16)
    outs = {}
    for backend in ("reference", "fast_cpu", "chunked"):
        torch.manual_seed(0)
        model = SS2D(16, d_state=4, backend=backend)
        outs[backend] = model(x)
        assert last_backend() == backend
    for backend in ("fast_cpu", "chunked"):
        check(outs[backend], outs["reference"], rtol=1e-5, atol=1e-5, name=backend)


def test_matches_vmamba_v0_forward_written_out():
    """VMamba v0's forward_core, transcribed step by step (stack of h-w / w-h orders and flips)."""
    torch.manual_seed(0)
    model = SS2D(16, d_state=4).double()
    x = torch.randn(2, 3, 5, 16, dtype=torch.float64)
    B_, H, W, _ = x.shape
    xz = model.in_proj(x)
    xi, z = xz.chunk(2, dim=-1)
    xi = F.silu(model.conv2d(xi.permute(0, 3, 1, 2)))
    L, K, d = H * W, 4, model.d_inner
    x_hwwh = torch.stack([xi.reshape(B_, -1, L), xi.transpose(2, 3).reshape(B_, -1, L)], dim=1)
    xs = torch.cat([x_hwwh, torch.flip(x_hwwh, dims=[-1])], dim=1)
    x_dbl = torch.einsum("bkdl,kcd->bkcl", xs, model.x_proj_weight)
    dts, Bs, Cs = torch.split(x_dbl, [model.dt_rank, 4, 4], dim=2)
    dts = torch.einsum("bkrl,kdr->bkdl", dts, model.dt_projs_weight)
    out_y = selective_scan_reference(xs.reshape(B_, -1, L), dts.reshape(B_, -1, L),
                                     -torch.exp(model.A_logs), Bs, Cs, model.Ds,
                                     delta_bias=model.dt_projs_bias.reshape(-1),
                                     delta_softplus=True).reshape(B_, K, -1, L)
    inv_y = torch.flip(out_y[:, 2:4], dims=[-1])
    wh_y = out_y[:, 1].reshape(B_, -1, W, H).transpose(2, 3).reshape(B_, -1, L)
    invwh_y = inv_y[:, 1].reshape(B_, -1, W, H).transpose(2, 3).reshape(B_, -1, L)
    y = out_y[:, 0] + inv_y[:, 0] + wh_y + invwh_y
    y = model.out_norm(y.transpose(1, 2).reshape(B_, H, W, d)) * F.silu(z)
    expected = model.out_proj(y)
    check(model(x), expected, rtol=1e-10, atol=1e-12, name="SS2D vs VMamba v0 transcription")


def test_gradcheck_small_float64():
    torch.manual_seed(0)
    model = SS2D(4, d_state=2, ssm_ratio=1.0).double()
    x = torch.randn(1, 2, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(model, (x,), eps=1e-6, atol=1e-6)


def test_bad_arguments():
    with pytest.raises(ValueError, match="channels-last"):
        SS2D(8)(torch.randn(1, 8, 4, 4))
    with pytest.raises(ValueError, match="directions"):
        SS2D(8, directions=3)
    with pytest.raises(ValueError, match="d_conv"):
        SS2D(8, d_conv=2)
    with pytest.raises(ValueError, match="dt_rank"):
        SS2D(8, dt_rank=0)
