"""Checks for the exercises of lesson 05 (the full network and its training).

05.1 the head features ``(K, B)`` that make the soft reconstruction exact, for known ``t`` and ``A``;
05.2 the learning-rate multiplier (linear warm-up, then cosine) at any step;
05.3 a network trained on one fixed batch must beat the hazy input on that batch.
"""

from __future__ import annotations

import math

import torch

from cliphaze.exercises import exercise


def _haze_sample(seed: int = 0, size: int = 24):
    from cliphaze.haze import synthesize_haze

    g = torch.Generator().manual_seed(seed)
    clear = torch.rand(2, 3, size, size, generator=g) * 0.8 + 0.1
    return synthesize_haze(clear, kind="nonhomogeneous", seed=seed)


@exercise("05.1", "head features (K, B) from t and A that make J = K*I - B + I the clear image")
def _check_head_features(answer, **context):
    from cliphaze.model import soft_reconstruction

    sample = _haze_sample()
    t, airlight = sample.transmission, sample.airlight
    feats = answer(t, airlight)
    if not isinstance(feats, torch.Tensor):
        return False, f"expected a tensor of shape (b, 4, h, w), got {type(feats).__name__}"
    want = (t.shape[0], 4, *t.shape[-2:])
    if tuple(feats.shape) != want:
        return False, (f"your features have shape {tuple(feats.shape)}, the head outputs {want}: "
                       "channel 0 is K (one gain, transmission has no colour), channels 1-3 are B")
    restored = soft_reconstruction(feats.to(sample.hazy.dtype), sample.hazy)
    err = float((restored - sample.clear).abs().max())
    if err < 1e-4:
        return True, f"soft_reconstruction(your K, B) recovers the clear image to {err:.1e}"
    k = feats[:, :1]
    k_err = float((k - (1 / t - 1)).abs().max())
    hint = ("K is off: J = (1/t - 1) I - A (1/t - 1) + I, so K = 1/t - 1, not 1/t (the '+ I' already adds one I)"
            if k_err > 1e-4 else "K is right, B is off: B = A (1/t - 1) (one value per colour channel)")
    return False, f"soft_reconstruction(your K, B) is {err:.3f} away from the clear image (max abs); {hint}"


@exercise("05.2", "the learning-rate multiplier at a step: linear warm-up, then cosine to min_ratio")
def _check_lr_factor(answer, **context):
    from cliphaze.train.loop import lr_factor

    cases = [(0, 10, 100, 0.05), (9, 10, 100, 0.05), (10, 10, 100, 0.05), (55, 10, 100, 0.05), (99, 10, 100, 0.05),
             (150, 10, 100, 0.05), (0, 1, 20, 0.0), (7, 3, 20, 0.1), (900, 100, 3500, 0.05)]
    worst = 0.0
    for case in cases:
        got, want = float(answer(*case)), lr_factor(*case)
        if not math.isfinite(got) or abs(got - want) > 1e-9:
            step, warmup, total, r = case
            if step < warmup:
                hint = "in warm-up the multiplier is (step + 1) / warmup, so the first step already moves"
            elif step >= total:
                hint = "after the last step the schedule stays at min_ratio (clamp the progress p at 1)"
            else:
                hint = ("after warm-up p = (step - warmup) / (total - warmup) and the multiplier is "
                        "r + (1 - r) (1 + cos(pi p)) / 2")
            return False, (f"at step {step} (warmup {warmup}, total {total}, min_ratio {r}) yours gives {got:.6f}, "
                           f"the library's lr_factor {want:.6f}: {hint}")
        worst = max(worst, abs(got - want))
    return True, f"agrees with cliphaze.train.loop.lr_factor at {len(cases)} steps (max difference {worst:.1e})"


@exercise("05.3", "overfit one fixed batch: the trained network must beat the hazy input on it by >= 1 dB")
def _check_overfit(answer, hazy=None, clear=None, density=None, **context):
    from cliphaze.metrics import psnr

    if hazy is None or clear is None:
        return False, "pass the batch you trained on: check('05.3', net, hazy=hazy, clear=clear)"
    if not isinstance(answer, torch.nn.Module):
        return False, f"expected the trained network (a torch.nn.Module), got {type(answer).__name__}"
    was = answer.training
    answer.eval()
    with torch.no_grad():
        out = answer(hazy, density=density) if density is not None else answer(hazy)
    answer.train(was)
    p_in = float(psnr(hazy, clear).mean())
    p_out = float(psnr(out.clamp(0, 1), clear).mean())
    gain = p_out - p_in
    if gain >= 1.0:
        return True, f"on your batch the network scores {p_out:.2f} dB against {p_in:.2f} dB for the hazy input ({gain:+.2f} dB)"
    hint = ("it still returns its input: did the optimiser step run (zero_grad, backward, step) on this network?"
            if abs(gain) < 1e-6 else "train longer or with a higher learning rate (1e-3 to 3e-3), on the same batch every step")
    return False, f"on your batch the network scores {p_out:.2f} dB, the hazy input {p_in:.2f} dB ({gain:+.2f} dB < 1 dB): {hint}"
