"""Checks of lesson 00 (haze physics and data): ``check("00.K", answer)``.

- 00.1: transmission from depth and ``beta`` exactly as :func:`cliphaze.haze.synthesize_haze` computes it;
- 00.2: invert the scattering model for ``J`` given ``t`` and ``A``;
- 00.3: a *clear* image on which the dark channel prior reads dense haze.
"""

from __future__ import annotations

import torch

from cliphaze.exercises import exercise


def _tensor(x, what: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{what} should return a torch.Tensor, got {type(x).__name__}")
    return x


@exercise("00.1", "transmission t = exp(-beta d) from a depth map, as synthesize_haze computes it")
def _transmission(answer, **context):
    from cliphaze.haze import ramp_depth_proxy, synthesize_haze

    if not callable(answer):
        return False, "pass your function transmission(depth, beta) itself, not its result"
    g = torch.Generator().manual_seed(0)
    depth = ramp_depth_proxy(2, 24, 32, generator=g)
    depth[:, :, -1, -1] = 0.0                                   # make sure the nearest possible pixel is present
    beta = 1.7
    clear = torch.rand(2, 3, 24, 32, generator=g)
    expected = synthesize_haze(clear, kind="homogeneous", depth=depth, beta=beta, airlight=0.9, seed=0).transmission
    got = _tensor(answer(depth.clone(), beta), "transmission(depth, beta)")
    if tuple(got.shape) != tuple(expected.shape):
        return False, f"shape {tuple(got.shape)}, expected {tuple(expected.shape)} (same as depth)"
    err = (got.float() - expected).abs().max().item()
    if err < 1e-5:
        return True, f"matches synthesize_haze's transmission to {err:.1e} (beta = {beta}, depth floor included)"
    near = expected[0, 0, -1, -1].item()
    hint = ""
    plain = torch.exp(-beta * depth)
    if (got.float() - plain).abs().max().item() < 1e-5:
        hint = (f": you returned exp(-beta d) without the depth floor; the synthesiser first lifts depth to 0.1 + 0.9 d, so the nearest "
                f"pixel (d = 0) has t = exp(-0.1 beta) = {near:.3f}, not 1")
    elif got.min().item() < 0 or got.max().item() > 1:
        hint = ": a transmission must lie in (0, 1]; is the sign of the exponent right?"
    return False, f"max |t - t_lib| = {err:.3f}; at the nearest pixel the library gives t = {near:.3f}, yours {got[0, 0, -1, -1].item():.3f}{hint}"


@exercise("00.2", "invert I = J t + A (1 - t) for the clear image J")
def _invert(answer, **context):
    from cliphaze.haze import apply_scattering, synthesize_haze

    if not callable(answer):
        return False, "pass your function recover(hazy, t, A) itself, not its result"
    g = torch.Generator().manual_seed(1)
    clear = torch.rand(2, 3, 24, 32, generator=g)
    s = synthesize_haze(clear, kind="nonhomogeneous", beta=1.0, airlight=torch.tensor([0.8, 0.85, 0.9]), seed=1)
    got = _tensor(answer(s.hazy.clone(), s.transmission.clone(), s.airlight.clone()), "recover(hazy, t, A)")
    if tuple(got.shape) != tuple(clear.shape):
        return False, f"shape {tuple(got.shape)}, expected {tuple(clear.shape)}"
    err = (got.float() - s.clear).abs().max().item()
    rehazed = (apply_scattering(got.float(), s.transmission, s.airlight) - s.hazy).abs().max().item()
    if err < 1e-4:
        return True, (f"recovers J to {err:.1e} (t down to {s.transmission.min().item():.3f}); "
                      f"re-hazing your J gives I back to {rehazed:.1e}")
    hint = ""
    if (got - ((s.hazy - s.airlight) * s.transmission + s.airlight)).abs().max().item() < 1e-5:
        hint = ": you multiplied (I - A) by t; solve I - A = (J - A) t for J, which divides by t"
    elif (got - (s.hazy - s.airlight * (1 - s.transmission))).abs().max().item() < 1e-5:
        hint = ": you removed the airlight term but did not divide by t (that gives J t, not J)"
    return False, f"max |J_yours - J_true| = {err:.3f}; re-hazing your J misses I by {rehazed:.3f}{hint}"


@exercise("00.3", "a clear image (no haze at all) on which the dark channel prior reads mean density > 0.5")
def _dcp_fails(answer, **context):
    from cliphaze.baselines import dehaze_dcp

    x = _tensor(answer, "the answer")
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[1] != 3 or min(x.shape[-2:]) < 32:
        return False, f"give one RGB image (3, h, w) with h, w >= 32; got shape {tuple(answer.shape)}"
    x = x.float()
    if x.min().item() < 0 or x.max().item() > 1:
        return False, f"pixel values must lie in [0, 1]; yours span [{x.min().item():.2f}, {x.max().item():.2f}]"
    res = dehaze_dcp(x[:1], radius=max(4, min(x.shape[-2:]) // 4))
    density = 1.0 - res.transmission
    mean = density.mean().item()
    if mean > 0.5:
        return True, (f"on your clear image (true density 0 everywhere) DCP reads mean density {mean:.2f}, "
                      f"and {100 * (density > 0.5).float().mean().item():.0f}% of the pixels above 0.5")
    return False, (f"DCP reads mean density {mean:.2f} on your image (need > 0.5): it still has dark pixels in most "
                   f"patches; the prior fails where every 15 x 15 patch is bright in all three channels")
