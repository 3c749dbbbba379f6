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


def test_aodnet_weights_match_every_key(shared_data):
    from cliphaze.baselines import AODNet, load_aodnet
    from cliphaze.baselines.aodnet import AODNET_WEIGHTS

    shipped = torch.load(AODNET_WEIGHTS, map_location="cpu", weights_only=True)
    assert set(shipped) == set(AODNet().state_dict())
    # the shipped file is the public snapshot in the development data, tensor for tensor
    original = torch.load(shared_data / "baselines" / "aodnet_dehazer.pth", map_location="cpu", weights_only=True)
    assert all(torch.equal(shipped[k], original[k]) for k in original)
    net = load_aodnet()
    assert all(torch.equal(net.state_dict()[k], shipped[k]) for k in shipped)


def test_aodnet_refuses_a_state_dict_with_a_missing_key(tmp_path):
    from cliphaze.baselines import load_aodnet
    from cliphaze.baselines.aodnet import AODNET_WEIGHTS

    state = torch.load(AODNET_WEIGHTS, map_location="cpu", weights_only=True)
    state.pop("e_conv5.bias")
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(RuntimeError, match="e_conv5.bias"):
        load_aodnet(tmp_path / "broken.pth")


def test_luma_and_protocol_variants_known_values():
    from cliphaze.evaluate import luma, protocol_variants

    assert float(luma(torch.ones(3, 2, 2)).mean()) == pytest.approx(235 / 255, abs=1e-6)
    assert float(luma(torch.zeros(3, 2, 2)).mean()) == pytest.approx(16 / 255, abs=1e-6)
    clear = torch.rand(3, 24, 24, generator=torch.Generator().manual_seed(1))
    same = protocol_variants(clear, clear)
    assert same["PSNR RGB"] == float("inf") and same["PSNR Y (BT.601)"] == float("inf")
    assert all(same[k] == pytest.approx(1.0, abs=1e-6) for k in same if k.startswith("SSIM") and "8-bit" not in k)
    # rounding a float image to 8 bits costs at most half a grey level per pixel: PSNR >= 10 log10(255^2 * 4)
    assert same["PSNR RGB, 8-bit output"] >= 10 * torch.log10(torch.tensor(255.0**2 * 4)).item()
    offset = protocol_variants((clear + 0.1).clamp(0, 1), clear)
    assert offset["PSNR RGB"] < same["PSNR RGB, 8-bit output"]


def test_markdown_table_names_the_command_and_frozen_params(tmp_path):
    from cliphaze.evaluate import EvalReport, Method

    data = _pairs()
    report = evaluate([Method("hazy", lambda x: x), Method("net", lambda x: x, params=1234, frozen_params=99)], data,
                      dataset_name="toy")
    path = report.write_markdown(tmp_path / "results.md", command="cliphaze eval --data toy", notes=["machine X"])
    text = path.read_text()
    assert "| net | 1,234 (+ 99 frozen CLIP) | 3 |" in text
    assert "Produced by `cliphaze eval --data toy`." in text and "machine X" in text
    assert isinstance(report, EvalReport)
    # a rerun replaces only the generated block: text written around it survives
    path.write_text("# Results\n\n" + text + "\nMy reading of the table.\n")
    evaluate({"other": lambda x: x}, data, dataset_name="toy").write_markdown(path, command="cliphaze eval --data new")
    again = path.read_text()
    assert again.startswith("# Results\n") and again.endswith("My reading of the table.\n")
    assert "| other |" in again and "| net |" not in again and again.count("Produced by") == 1


def test_cli_writes_csv_and_markdown(tmp_path):
    from cliphaze.cli import main
    from cliphaze.io import save_image

    root = tmp_path / "bench"
    for i, (c, h) in enumerate((p["clear"], p["hazy"]) for p in _pairs()):
        save_image(c, root / "GT" / f"{i}.png")
        save_image(h, root / "hazy" / f"{i}.png")
    md, csv_path = tmp_path / "results.md", tmp_path / "scores.csv"
    code = main(["eval", "--data", str(root), "--methods", "hazy,dcp", "--split", "all", "--csv", str(csv_path),
                 "--markdown", str(md)])
    assert code == 0
    text = md.read_text()
    assert "| hazy | - | 3 |" in text and "| dcp | - | 3 |" in text
    assert f"cliphaze eval --data {root} --methods hazy,dcp --split all" in text
    rows = list(csv.DictReader(open(csv_path)))
    assert len(rows) == 2 * 3 + 2


def test_model_checkpoint_reports_trainable_and_frozen_params(tmp_path):
    from cliphaze.model import build_model, get_preset, guide_fingerprint, save_checkpoint

    cfg = get_preset("tiny", dims=(8, 8, 8), depths=(0, 1, 0, 0, 0), heads=(1, 1, 1), d_state=2)
    model = build_model(cfg, guide="tiny-test-clip")
    path = save_checkpoint({"network": cfg.to_dict(), "state_dict": model.net.state_dict(),
                            "guide": guide_fingerprint("tiny-test-clip"), "meta": {}}, tmp_path / "m.pt")
    method = get_method(str(path))
    assert method.params == sum(p.numel() for p in model.net.parameters())
    assert method.frozen_params == sum(p.numel() for p in model.guide.clip.parameters()) > 0
    x = torch.rand(1, 3, 16, 16)
    assert torch.allclose(method.fn(x), x, atol=1e-6)  # zero-initialised head: an untrained network returns its input


def test_sots_settings_are_grouped_in_natural_order_with_known_means():
    from cliphaze.evaluate import sots_setting

    assert sots_setting("1400_7") == "7" and sots_setting("img_3") is None and sots_setting("01_hazy") is None
    data = []
    for scene in (1400, 1401):
        for setting, offset in ((1, 0.05), (2, 0.1), (10, 0.2)):
            c = torch.full((3, 16, 16), 0.5)
            data.append({"hazy": c + offset, "clear": c, "name": f"{scene}_{setting}"})
    report = evaluate({"hazy": lambda x: x, "half": lambda x: 0.5 + (x - 0.5) / 2}, data)
    groups = report.by_group()
    assert list(groups) == ["1", "2", "10"]                          # "10" after "2"
    assert groups["10"]["hazy"]["n"] == 2
    assert groups["1"]["hazy"]["psnr"] == pytest.approx(-10 * torch.log10(torch.tensor(0.05 ** 2)).item(), abs=1e-3)
    assert groups["10"]["half"]["psnr"] == pytest.approx(-10 * torch.log10(torch.tensor(0.1 ** 2)).item(), abs=1e-3)
    md = report.to_markdown()
    assert "per haze setting" in md and "| 10 | 2 |" in md and "**" in md
    assert evaluate({"hazy": lambda x: x}, _pairs()).group_markdown() == ""  # no settings: no table
