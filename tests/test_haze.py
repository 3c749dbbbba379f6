"""Properties of the scattering model and the haze synthesiser (lesson 00)."""

import pytest
import torch

from cliphaze.haze import (
    HazeConfig,
    apply_scattering,
    depth_from_disparity,
    smooth_noise,
    synthesize_haze,
)


@pytest.fixture
def clear():
    return torch.rand(3, 3, 40, 56, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("kind", ["homogeneous", "nonhomogeneous"])
def test_transmission_range_and_density(clear, kind):
    s = synthesize_haze(clear, kind=kind, seed=1)
    assert s.transmission.shape == (3, 1, 40, 56)
    assert (s.transmission > 0).all() and (s.transmission <= 1).all()
    torch.testing.assert_close(s.density, 1 - s.transmission)
    assert s.kind == kind


@pytest.mark.parametrize("kind", ["homogeneous", "nonhomogeneous"])
def test_hazy_lies_between_clear_and_airlight(clear, kind):
    s = synthesize_haze(clear, kind=kind, seed=2)
    lo = torch.minimum(s.clear, s.airlight.expand_as(s.clear))
    hi = torch.maximum(s.clear, s.airlight.expand_as(s.clear))
    assert (s.hazy >= lo - 1e-6).all() and (s.hazy <= hi + 1e-6).all()
    # and it is exactly the scattering model
    torch.testing.assert_close(s.hazy, apply_scattering(s.clear, s.transmission, s.airlight).clamp(0, 1))


def test_reproducible_with_seed_and_different_without(clear):
    a = synthesize_haze(clear, seed=7)
    b = synthesize_haze(clear, seed=7)
    c = synthesize_haze(clear, seed=8)
    assert torch.equal(a.hazy, b.hazy) and torch.equal(a.transmission, b.transmission)
    assert not torch.equal(a.hazy, c.hazy)


def test_generator_continues_stream(clear):
    g = torch.Generator().manual_seed(0)
    first = synthesize_haze(clear, generator=g).hazy
    second = synthesize_haze(clear, generator=g).hazy
    assert not torch.equal(first, second)


def test_homogeneous_follows_depth(clear):
    depth = torch.linspace(0, 1, 56).view(1, 1, 1, 56).expand(3, 1, 40, 56)
    s = synthesize_haze(clear, kind="homogeneous", depth=depth, beta=2.0, seed=0)
    t = s.transmission[0, 0, 0]
    assert (t[1:] <= t[:-1] + 1e-7).all(), "transmission must fall with depth"
    expected = torch.exp(-2.0 * (0.1 + 0.9 * depth))
    torch.testing.assert_close(s.transmission, expected)


def test_nonhomogeneous_is_patchy_and_homogeneous_is_not():
    flat_depth = torch.ones(1, 1, 64, 64)
    clear = torch.full((1, 3, 64, 64), 0.3)
    homo = synthesize_haze(clear, kind="homogeneous", depth=flat_depth, beta=1.0, seed=0)
    nonh = synthesize_haze(clear, kind="nonhomogeneous", depth=flat_depth, beta=1.0, patchiness=1.0, seed=0)
    assert homo.transmission.std() < 1e-6
    assert nonh.transmission.std() > 0.05


def test_explicit_parameters_are_used(clear):
    s = synthesize_haze(clear, kind="homogeneous", beta=0.0, airlight=0.9, seed=0)
    torch.testing.assert_close(s.transmission, torch.ones_like(s.transmission))
    torch.testing.assert_close(s.hazy, clear)
    assert torch.allclose(s.airlight, torch.full_like(s.airlight, 0.9))


def test_batch_items_are_independent_draws(clear):
    s = synthesize_haze(clear, seed=3)
    assert len(set(s.beta.tolist())) == 3


def test_smooth_noise_range_and_seed():
    a = smooth_noise(2, 30, 50, generator=torch.Generator().manual_seed(1))
    b = smooth_noise(2, 30, 50, generator=torch.Generator().manual_seed(1))
    assert a.shape == (2, 1, 30, 50)
    assert torch.equal(a, b)
    assert a.amin().item() == pytest.approx(0.0) and a.amax().item() == pytest.approx(1.0)


def test_depth_from_disparity_inverts_and_handles_invalid():
    disp = torch.tensor([[10.0, 5.0], [0.0, float("nan")]])
    d = depth_from_disparity(disp)
    assert d.shape == (1, 1, 2, 2)
    assert d[0, 0, 0, 0] == 0.0  # largest disparity = nearest
    assert d[0, 0, 0, 1] == 1.0
    assert d[0, 0, 1, 0] == 1.0 and d[0, 0, 1, 1] == 1.0  # invalid -> far


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="shape"):
        synthesize_haze(torch.rand(1, 4, 8, 8))
    with pytest.raises(ValueError, match="kind"):
        HazeConfig(kind="fog")
    with pytest.raises(ValueError, match="reversed"):
        HazeConfig(beta=(2.0, 1.0))
