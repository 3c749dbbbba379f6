"""The evaluation helper: known scores, CSV contents, built-in methods."""

import csv

import pytest
import torch

from cliphaze.evaluate import evaluate, get_method


def _pairs():
    g = torch.Generator().manual_seed(0)
    clear = [torch.rand(3, 16, 20, generator=g) for _ in range(3)]
    return [{"hazy": (c + 0.1).clamp(0, 1), "clear": c, "name": f"img{i}.png"} for i, c in enumerate(clear)]


def test_identity_method_scores_infinite_and_offset_known():
    data = [{"hazy": torch.full((3, 16, 16), 0.6), "clear": torch.full((3, 16, 16), 0.5), "name": "flat"}]
    report = evaluate({"hazy": lambda x: x, "oracle": lambda x: torch.full_like(x, 0.5)}, data)
    rows = {r.method: r for r in report.rows}
    assert rows["hazy"].psnr == pytest.approx(20.0, abs=1e-4)  # MSE 0.01
    assert rows["oracle"].psnr == float("inf")
    assert rows["oracle"].ssim == pytest.approx(1.0)


def test_csv_has_every_image_and_a_mean_row(tmp_path):
    report = evaluate({"hazy": lambda x: x}, _pairs(), dataset_name="toy")
    path = report.write_csv(tmp_path / "scores.csv")
    rows = list(csv.DictReader(open(path)))
    assert [r["image"] for r in rows] == ["img0.png", "img1.png", "img2.png", "MEAN"]
    mean = sum(float(r["psnr"]) for r in rows[:3]) / 3
    assert float(rows[3]["psnr"]) == pytest.approx(mean, abs=1e-3)
    md = report.to_markdown()
    assert "| hazy |" in md and "toy" in md


def test_builtin_methods_run_and_dcp_beats_hazy_on_synthetic_haze():
    import skimage.data
    import torch.nn.functional as F

    from cliphaze.haze import synthesize_haze

    img = torch.from_numpy(skimage.data.astronaut()).permute(2, 0, 1).float().unsqueeze(0) / 255
    clear = F.interpolate(img, size=(64, 64), mode="area")
    s = synthesize_haze(clear, kind="homogeneous", beta=1.5, airlight=0.9, seed=0)
    data = [{"hazy": s.hazy[0], "clear": clear[0], "name": "astronaut"}]
    report = evaluate(["hazy", "dcp", "aodnet"], data)
    summary = {s["method"]: s for s in report.summary()}
    assert summary["dcp"]["psnr"] > summary["hazy"]["psnr"]
    assert summary["aodnet"]["params"] == 1761
    assert all(s["sec_per_mp"] >= 0 for s in summary.values())


def test_unknown_method_is_a_clear_error():
    with pytest.raises((ValueError, FileNotFoundError)):
        get_method("no-such-method-or-file")


def test_size_mismatch_names_the_image():
    data = [{"hazy": torch.rand(3, 16, 16), "clear": torch.rand(3, 16, 17), "name": "odd.png"}]
    with pytest.raises(ValueError, match="odd.png"):
        evaluate({"hazy": lambda x: x}, data)
