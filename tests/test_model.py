"""The CLIPHaze network, its presets, guidance plumbing and checkpoints (lesson 05)."""

from __future__ import annotations

import warnings

import pytest
import torch

from cliphaze.model import (
    TEST_GUIDE,
    CheckpointError,
    CLIPHaze,
    CLIPHazeNet,
    GuideMismatchWarning,
    NetworkConfig,
    build_model,
    get_preset,
    load_checkpoint,
    load_model,
    preset_cost,
    save_checkpoint,
)
from cliphaze.shapes import check


def _randomise_head(net: CLIPHazeNet, seed: int = 0) -> None:
    """The head starts at zero (identity network); give it weights so outputs depend on the input."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        net.head.weight.copy_(torch.randn(net.head.weight.shape, generator=g) * 0.05)
        net.head.bias.copy_(torch.randn(net.head.bias.shape, generator=g) * 0.05)


@pytest.fixture(scope="module")
def guided_model() -> CLIPHaze:
    torch.manual_seed(0)
    model = build_model("tiny", guide=TEST_GUIDE)
    _randomise_head(model.net)
    return model.eval()


@pytest.mark.parametrize("size", [(1, 1), (3, 5), (37, 23), (64, 64), (70, 33)])
def test_any_size_keeps_shape(size):
    torch.manual_seed(0)
    net = CLIPHazeNet(get_preset("tiny", aggregation="static")).eval()
    _randomise_head(net)
    x = torch.rand(2, 3, *size)
    with torch.no_grad():
        y = net(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("size", [(5, 9), (41, 30)])
def test_guided_model_any_size(guided_model, size):
    x = torch.rand(3, *size)
    out, density = guided_model.dehaze(x, return_density=True)
    assert out.shape == x.shape and density.shape == (1, *size)
    assert 0 <= float(out.min()) and float(out.max()) <= 1


def test_untrained_network_is_identity():
    """Zero-initialised head: J = 0 * I - 0 + I (soft reconstruction starts as the identity)."""
    net = CLIPHazeNet(get_preset("tiny", aggregation="static"))
    x = torch.rand(1, 3, 24, 20)
    check(net(x), x, rtol=0, atol=0, name="untrained output")


def test_padding_does_not_leak_between_images():
    """Batch items are independent (padding and guidance are per image)."""
    net = CLIPHazeNet(get_preset("tiny", aggregation="static")).eval()
    _randomise_head(net)
    a, b = torch.rand(1, 3, 30, 26), torch.rand(1, 3, 30, 26)
    with torch.no_grad():
        both = net(torch.cat([a, b]))
        check(both[:1], net(a), rtol=1e-5, atol=1e-5, name="first image in a batch")


def test_guidance_computed_once_and_reaches_every_block(guided_model):
    calls = {"density": 0}
    guide = guided_model.guide
    original = guide.density

    def counting(x, size=None):
        calls["density"] += 1
        return original(x, size=size)

    seen = []
    hooks = [blk.register_forward_hook(lambda m, args, kwargs, out: seen.append((args[0].shape[-2:], kwargs["density"].shape[-2:])),
                                       with_kwargs=True)
             for stage in (guided_model.net.encoder1, guided_model.net.bottleneck, guided_model.net.decoder1)
             for blk in stage.blocks]
    guide.density = counting
    try:
        with torch.no_grad():
            guided_model(torch.rand(2, 3, 40, 48))
    finally:
        guide.density = original
        for h in hooks:
            h.remove()
    assert calls["density"] == 1
    assert len(seen) == sum(get_preset("tiny").depths[1:4])
    for feature_size, density_size in seen:
        assert feature_size == density_size  # resized once per level, not inside each block


def test_density_changes_the_output():
    """The guidance is really used: a different density map gives a different result."""
    torch.manual_seed(0)
    net = CLIPHazeNet("tiny").eval()
    _randomise_head(net)
    for p in net.parameters():  # move the zero-initialised aggregation projections off zero
        if p.ndim > 1:
            torch.nn.init.normal_(p, std=0.1) if p.abs().sum() == 0 else None
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        y0 = net(x, density=torch.zeros(1, 1, 32, 32))
        y1 = net(x, density=torch.ones(1, 1, 32, 32))
    assert (y0 - y1).abs().max() > 1e-4


def test_missing_guidance_is_an_error():
    net = CLIPHazeNet("tiny")
    with pytest.raises(ValueError, match="density map"):
        net(torch.rand(1, 3, 16, 16))


def test_semantic_guidance_runs():
    model = build_model(get_preset("tiny", aggregation="semantic"), guide=TEST_GUIDE)
    assert model.config.clip_dim == model.guide.clip.embed_dim
    out = model.dehaze(torch.rand(3, 20, 28))
    assert out.shape == (3, 20, 28)


def test_presets_and_costs():
    costs = {name: preset_cost(name, size=64) for name in ("tiny", "mid", "small")}
    # "mid" sits between the two in parameters and in compute
    assert 0 < costs["tiny"]["params"] < costs["mid"]["params"] < costs["small"]["params"]
    assert 0 < costs["tiny"]["gflops"] < costs["mid"]["gflops"] < costs["small"]["gflops"]
    assert costs["tiny"]["scan_gflops"] > 0
    with pytest.raises(KeyError, match="unknown preset"):
        get_preset("huge")
    cfg = get_preset("small")
    assert NetworkConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown network config keys"):
        NetworkConfig.from_dict({**cfg.to_dict(), "colour": 1})
    with pytest.raises(ValueError, match="divisible"):
        NetworkConfig(dims=(16, 24, 30), heads=(1, 2, 4))


def test_checkpoint_round_trip(tmp_path, guided_model):
    from cliphaze.model import guide_fingerprint

    path = tmp_path / "m.pt"
    save_checkpoint({"network": guided_model.config.to_dict(), "state_dict": guided_model.net.state_dict(),
                     "guide": guide_fingerprint(TEST_GUIDE), "meta": {"note": "test"}}, path)
    assert not list(tmp_path.glob(".*tmp"))  # the temporary file was renamed away
    loaded = load_model(path)
    assert loaded.meta["note"] == "test"
    x = torch.rand(3, 33, 21)
    check(loaded.dehaze(x), guided_model.dehaze(x), rtol=0, atol=1e-6, name="reloaded model output")


def test_pil_input_gives_pil_output(guided_model):
    from PIL import Image

    img = Image.new("RGB", (31, 17), (200, 190, 180))
    out = guided_model.dehaze(img)
    assert isinstance(out, Image.Image) and out.size == (31, 17)


def test_broken_checkpoints_name_the_file(tmp_path, guided_model):
    missing = tmp_path / "nope.pt"
    with pytest.raises(CheckpointError, match="nope.pt: no such"):
        load_checkpoint(missing)
    good = tmp_path / "good.pt"
    save_checkpoint({"network": guided_model.config.to_dict(), "state_dict": guided_model.net.state_dict()}, good)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="truncated.pt: cannot be read"):
        load_checkpoint(truncated)
    other = tmp_path / "other.pt"
    torch.save({"weights": 1}, other)
    with pytest.raises(CheckpointError, match="other.pt: not a CLIPHaze model checkpoint"):
        load_checkpoint(other)
    with pytest.raises(CheckpointError, match="missing from this checkout|no such"):
        load_model(tmp_path / "absent.pt")


def test_guide_mismatch_warns(tmp_path, monkeypatch):
    """A checkpoint records its guide's file hashes; a changed guide file triggers a warning."""
    import cliphaze.model.guide as guide_mod

    fake = tmp_path / "guide.bin"
    fake.write_bytes(b"version 1")
    monkeypatch.setattr(guide_mod, "guide_files", lambda spec: [fake])
    recorded = guide_mod.guide_fingerprint("haze-clip-small")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert guide_mod.check_guide(recorded, "ckpt.pt")
    fake.write_bytes(b"version 2")
    with pytest.warns(GuideMismatchWarning, match="ckpt.pt.*guide.bin"):
        assert not guide_mod.check_guide(recorded, "ckpt.pt")


def test_shipped_model_beats_hazy_input(repo_root):
    """The shipped checkpoint must clearly improve the bundled samples that have ground truth."""
    from cliphaze.io import list_images, read_image
    from cliphaze.metrics import psnr
    from cliphaze.model import default_model_path

    if not default_model_path().is_file():
        pytest.fail(f"{default_model_path()} is missing: the repository ships it")
    hazy_dir, gt_dir = repo_root / "data" / "samples" / "hazy", repo_root / "data" / "samples" / "GT"
    pairs = [(p, gt_dir / p.name) for p in list_images(hazy_dir) if (gt_dir / p.name).is_file()]
    if not pairs:
        pytest.skip("no sample pairs with ground truth in data/samples")
    model = load_model("cliphaze-tiny")
    gains = []
    for hazy_path, gt_path in pairs:
        hazy, gt = read_image(hazy_path), read_image(gt_path)
        out = model.dehaze(hazy)
        gains.append(float(psnr(out, gt) - psnr(hazy, gt)))
    mean_gain = sum(gains) / len(gains)
    assert mean_gain > 2.0, f"shipped model improves PSNR by only {mean_gain:.2f} dB on average ({gains})"


# ---------------------------------------------------------------------------------- guidance as a value
def test_guidance_is_a_typed_value_with_only_what_the_network_needs():
    from cliphaze.block import Guidance

    torch.manual_seed(0)
    x = torch.rand(2, 3, 20, 24)
    density_model = build_model("tiny", guide=TEST_GUIDE).eval()
    g = density_model.guidance(x)
    assert isinstance(g, Guidance) and g.provides == {"density"} and g.density.shape == (2, 1, 20, 24)
    semantic_model = build_model(get_preset("tiny", aggregation="semantic"), guide=TEST_GUIDE).eval()
    gs = semantic_model.guidance(x)
    assert gs.provides == {"tokens"} and gs.tokens.shape[0] == 2
    unguided = build_model(get_preset("tiny", aggregation="sum"), guide=TEST_GUIDE)
    assert unguided.guide is None and unguided.guidance(x).provides == frozenset()
    _randomise_head(density_model.net)
    with torch.no_grad():  # the three ways to hand it over agree; the old dict form still reads
        a = density_model.net(x, guidance=g)
        check(density_model.net(x, density=g.density), a, rtol=0, atol=0, name="density= vs guidance=")
        check(density_model.net(x, **g), a, rtol=0, atol=0, name="**guidance (mapping view)")
        check(density_model(x), a, rtol=0, atol=0, name="CLIPHaze computes the same guidance")
    assert g["density"] is g.density and dict(g)["tokens"] is None
    with pytest.raises(ValueError, match="not both"):
        density_model.net(x, density=g.density, guidance=g)
    with pytest.raises(ValueError, match=r"aggregation 'semantic'.*CLIP image tokens"):
        semantic_model.net(x, guidance=g)  # a density map is not what it reads


def test_density_is_validated_once_where_it_enters(monkeypatch):
    import cliphaze.model.network as network

    calls = []
    original = network.check_density
    monkeypatch.setattr(network, "check_density", lambda d, batch=None: calls.append(d.shape) or original(d, batch))
    net = CLIPHazeNet(get_preset("small", depths=(1, 1, 1, 1, 1))).eval()
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        net(x, density=torch.rand(2, 1, 16, 16))
    assert calls == [(2, 1, 16, 16)]  # once per forward, although five blocks read it
    for bad, what in ((torch.rand(2, 1, 16, 16) * 255, r"\[0, 1\]"), (torch.rand(3, 1, 16, 16), "batch"),
                      (torch.full((2, 1, 16, 16), float("nan")), "NaN"), (torch.rand(2, 2, 16, 16), r"\(b, 1, H, W\)")):
        with pytest.raises(ValueError, match=what):
            net(x, density=bad)


def test_configs_name_the_aggregation_and_old_ones_still_load():
    from cliphaze.train import TrainConfig

    old = {**get_preset("tiny").to_dict()}
    old.pop("aggregation")
    for guidance, unguided, kind in (("density", "static", "density"), ("semantic", "static", "semantic"),
                                     ("none", "sum", "sum"), ("none", "static", "static")):
        cfg = NetworkConfig.from_dict({**old, "guidance": guidance, "unguided_aggregation": unguided})
        assert cfg.aggregation == kind
    assert get_preset("tiny", guidance="none").aggregation == "static"  # old keyword, old meaning
    assert get_preset("tiny", aggregation="mamba").needs == frozenset()
    assert "guidance" not in get_preset("tiny").to_dict()
    with pytest.raises(ValueError, match="contradicts"):
        get_preset("tiny", guidance="density", aggregation="sum")
    with pytest.raises(ValueError, match="aggregation must be one of"):
        get_preset("tiny", aggregation="nope")
    assert TrainConfig.from_dict({"guidance": "none"}).aggregation == "static"
    assert TrainConfig.from_dict({"guidance": "semantic"}).aggregation == "semantic"


def test_shipped_checkpoint_keeps_its_parameter_names_and_shapes():
    from cliphaze.model import default_model_path

    payload = load_checkpoint(default_model_path())
    cfg = NetworkConfig.from_dict(payload["network"])
    assert cfg.aggregation == "density"
    net = CLIPHazeNet(cfg)
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in payload["state_dict"].items()} == expected


# ---------------------------------------------------------------------------------- guide specs
def test_guide_specs_are_parsed_in_one_place():
    from cliphaze.model.guide import GuideSpec

    for text in ("haze-clip-small", "tiny-test-clip", "tiny-test-clip@/runs/a/prompts.pt",
                 "open_clip:ViT-B-32/openai", "open_clip:ViT-B-16/laion2b_s34b_b88k@p.pt",
                 "open_clip:tiny-test-clip//data/w.bin"):
        assert str(GuideSpec.parse(text)) == text
    g = GuideSpec.parse("open_clip:tiny-test-clip//data/w.bin@p.pt")
    assert (g.backbone, g.pretrained, g.prompts) == ("tiny-test-clip", "/data/w.bin", "p.pt")
    assert GuideSpec.parse("none") is None and GuideSpec.parse(None) is None
    for bad, what in (("open_clip:ViT-B-32", "open_clip:MODEL/TAG"), ("ViT-B-32", "unknown guide"),
                      ("haze-clip-small@", "nothing after")):
        with pytest.raises(ValueError, match=what):
            GuideSpec.parse(bad)


def test_an_open_clip_model_with_local_weights_guides_training_and_dehazing(tmp_path):
    """``open_clip:MODEL/FILE`` and ``open_clip:MODEL/random`` guides: train, save, reload, dehaze."""
    from cliphaze.clip import load_clip
    from cliphaze.model import build_guide, guide_fingerprint
    from cliphaze.train import TrainConfig, train

    weights = tmp_path / "tiny_clip.bin"
    torch.save(load_clip(TEST_GUIDE, pretrained="random", seed=3).model.state_dict(), weights)
    spec = f"open_clip:{TEST_GUIDE}/{weights}"
    x = torch.rand(1, 3, 32, 32)
    from_file, random0 = build_guide(spec), build_guide(f"open_clip:{TEST_GUIDE}/random")
    assert not torch.equal(from_file.density(x), random0.density(x))  # the file's weights, not seed 0's
    assert guide_fingerprint(spec)["files"] == {weights.name: __import__("hashlib").sha256(
        weights.read_bytes()).hexdigest()}
    photos = tmp_path / "photos"
    photos.mkdir()
    from cliphaze.io import save_image

    for i in range(3):
        save_image(torch.rand(3, 40, 40), photos / f"{i}.png")
    cfg = TrainConfig(guide=spec, data=[str(photos)], crop=32, batch_size=2, steps=2, warmup_steps=1, val_every=2,
                      out=str(tmp_path / "run"))
    train(cfg, progress=False, log=lambda m: None)
    model = load_model(tmp_path / "run" / "best.pt")
    assert model.guide_spec == spec
    check(model.guide.density(x), from_file.density(x), rtol=0, atol=0, name="reloaded guide")
    assert model.dehaze(torch.rand(3, 24, 20)).shape == (3, 24, 20)


def test_missing_open_clip_weights_fail_at_once_naming_them(tmp_path, monkeypatch, capsys):
    import time

    import huggingface_hub.constants

    from cliphaze.cli import main
    from cliphaze.clip import MissingWeightsError
    from cliphaze.model import build_guide

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty_hf_cache"))
    monkeypatch.setenv("HOME", str(tmp_path))  # open_clip's URL cache ~/.cache/clip is empty too
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.perf_counter()
    with pytest.raises(MissingWeightsError, match=r"open_clip:ViT-B-32/openai.*not on this machine.*"
                                                  r"open_clip_pytorch_model.bin"):
        build_guide("open_clip:ViT-B-32/openai")
    assert time.perf_counter() - t0 < 1.0
    with pytest.raises(FileNotFoundError, match="nope.bin"):
        build_guide(f"open_clip:{TEST_GUIDE}/{tmp_path / 'nope.bin'}")
    photos = tmp_path / "photos"
    photos.mkdir()
    from cliphaze.io import save_image

    save_image(torch.rand(3, 40, 40), photos / "a.png")
    rc = main(["train", "--guide", "open_clip:ViT-B-32/openai", "--data", str(photos), "--out",
               str(tmp_path / "run"), "--steps", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("cliphaze train: error: CLIP guide 'open_clip:ViT-B-32/openai'")
    assert "Traceback" not in err and not (tmp_path / "run" / "last.pt").exists()


@pytest.mark.parametrize(("shape", "r"), [((2, 16, 5, 7), 2), ((1, 36, 3, 4), 3)])
def test_pixel_shuffle_equals_pytorch_bit_for_bit(shape, r):
    """The network's PixelShuffle (a view + permute, faster on CPU) is nn.PixelShuffle exactly."""
    from cliphaze.model.network import PixelShuffle

    x = torch.randn(*shape)
    assert torch.equal(PixelShuffle(r)(x), torch.nn.functional.pixel_shuffle(x, r))
    with pytest.raises(ValueError, match="divisible"):
        PixelShuffle(2)(torch.randn(1, 6, 2, 2))
