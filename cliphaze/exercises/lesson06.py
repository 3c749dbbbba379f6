"""Checks for the exercises of lesson 06 (evaluation).

06.1 PSNR per image, by hand, in float64;
06.2 the per-haze-setting table from the per-image CSV that ``EvalReport.write_csv`` writes;
06.3 the AUROC of a prompt pair by hand: the probability that a random hazy image scores above a
random clear one (ties count one half).
"""

from __future__ import annotations

import math

import torch

from cliphaze.exercises import exercise


@exercise("06.1", "PSNR per image in float64, as cliphaze.metrics.psnr computes it")
def _check_psnr(answer, **context):
    from cliphaze.metrics import psnr

    g = torch.Generator().manual_seed(6)
    target = torch.rand(3, 3, 16, 20, generator=g)
    noise = torch.randn(3, 3, 16, 20, generator=g) * torch.tensor([0.01, 0.05, 0.2]).view(3, 1, 1, 1)
    pred = (target + noise).clamp(0, 1)
    got = answer(pred, target)
    got = torch.as_tensor(got, dtype=torch.float64).flatten()
    want = psnr(pred, target)
    if got.numel() == 1:
        pooled = float(10 * torch.log10(1 / ((pred.double() - target.double()) ** 2).mean()))
        return False, (f"you returned one number ({float(got[0]):.3f} dB) for a batch of 3 images with PSNRs "
                       f"{[round(v, 2) for v in want.tolist()]}; PSNR is per image (MSE over c, h, w of each "
                       f"image), and the MSE pooled over the batch gives {pooled:.3f} dB, which is not their mean")
    if got.numel() != want.numel():
        return False, f"you returned {got.numel()} values for 3 images"
    diff = float((got - want).abs().max())
    if diff < 1e-6:
        return True, f"your PSNRs {[round(v, 3) for v in got.tolist()]} dB equal cliphaze.metrics.psnr to {diff:.1e} dB"
    ratio = float((got / want).mean())
    hint = ("about twice the library's: 10 log10(1 / MSE) uses the squared peak over the MSE, not 20 log10 of it"
            if abs(ratio - 2) < 0.05 else "check the formula 10 log10(peak^2 / MSE) with peak 1 and MSE over c, h, w")
    return False, f"yours {[round(v, 3) for v in got.tolist()]}, library {[round(v, 3) for v in want.tolist()]} dB: {hint}"


def _from_report_rows(report) -> dict:
    return {g: {m: cell["psnr"] for m, cell in per.items()} for g, per in report.by_group().items()}


@exercise("06.2", "mean PSNR per SOTS haze setting and method, from the per-image CSV")
def _check_group_table(answer, report=None, **context):
    if report is None:
        return False, "pass the report the CSV came from: check('06.2', table, report=report)"
    want = _from_report_rows(report)
    if not isinstance(answer, dict):
        return False, f"expected a dict {{setting: {{method: mean PSNR}}}}, got {type(answer).__name__}"
    got = {str(g): per for g, per in answer.items()}
    extra = sorted(set(got) - set(want))
    missing = sorted(set(want) - set(got))
    if extra or missing:
        hint = (" the CSV ends with one MEAN row per method: those are summaries, not images, and have no setting"
                if any("MEAN" in e.upper() for e in extra) else "")
        return False, f"your settings {sorted(got)}, the report's {sorted(want)} (extra {extra}, missing {missing}).{hint}"
    for g in want:
        for m, v in want[g].items():
            if m not in got[g]:
                return False, f"setting {g}: method {m!r} is missing"
            mine = float(got[g][m])
            if not math.isfinite(mine) or abs(mine - v) > 1e-3:
                return False, (f"setting {g}, {m}: yours {mine:.4f} dB, the per-image rows give {v:.4f} dB (mean of "
                               f"the images whose name ends in _{g}; the CSV's psnr column, not ssim)")
    n = sum(len(per) for per in want.values())
    return True, f"all {n} cells of the {len(want)}-setting table agree with EvalReport.by_group to 1e-3 dB"


@exercise("06.3", "AUROC of a prompt pair: P(random hazy scores above random clear), ties one half")
def _check_auroc(answer, **context):
    from cliphaze.analysis.density_eval import auroc

    g = torch.Generator().manual_seed(3)
    # rounded scores, so that ties between a hazy and a clear image occur
    hazy = (torch.rand(40, generator=g) * 0.6 + 0.3).mul(20).round().div(20)
    clear = (torch.rand(30, generator=g) * 0.6).mul(20).round().div(20)
    want = auroc(torch.cat([hazy, clear]), torch.cat([torch.ones(40), torch.zeros(30)]).bool())
    got = float(answer(hazy, clear))
    if abs(got - want) < 1e-9:
        return True, f"your AUROC {got:.4f} equals the library's (Mann-Whitney, ties averaged) {want:.4f}"
    strict = float((hazy[:, None] > clear[None, :]).double().mean())
    loose = float((hazy[:, None] >= clear[None, :]).double().mean())
    if abs(got - strict) < 1e-9 or abs(got - loose) < 1e-9:
        return False, (f"yours {got:.4f}, library {want:.4f}: these scores have ties (a hazy and a clear image with "
                       f"the same score); a tie counts one half, not 0 ({strict:.4f}) or 1 ({loose:.4f})")
    if abs(got - (1 - want)) < 1e-9:
        return False, f"yours {got:.4f} is 1 - {want:.4f}: you measured clear above hazy"
    return False, f"yours {got:.4f}, library {want:.4f}: compare every (hazy, clear) pair and average"
