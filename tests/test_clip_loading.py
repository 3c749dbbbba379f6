"""Loading CLIP backbones: tiny config, local files, missing weights, DA-CLIP key layout.

Everything here uses ``tiny-test-clip`` (random weights, 16-d): tiny so it runs in a second.
"""

from __future__ import annotations

import time

import pytest
import torch

from cliphaze.clip import MissingWeightsError, load_clip
from cliphaze.clip.small_clip import TINY_TEST_CLIP_NAME, save_small_clip
from cliphaze.shapes import check, check_shape


@pytest.fixture(scope="module")
def tiny():
    return load_clip(TINY_TEST_CLIP_NAME, pretrained="random", seed=0)


def test_tiny_config_loads_and_embeds(tiny):
    x = torch.rand(2, 3, 40, 56, generator=torch.Generator().manual_seed(0))
    e = check_shape(tiny.encode_image(x), (2, tiny.embed_dim), "image embedding")
    check(e.norm(dim=-1), torch.ones(2), 1e-5, 1e-5, "unit norm")
    t = check_shape(tiny.encode_text(["a hazy photo", "a clear photo", "fog"]), (3, tiny.embed_dim), "text")
    check(t.norm(dim=-1), torch.ones(3), 1e-5, 1e-5, "unit norm")
    assert not any(p.requires_grad for p in tiny.parameters()), "backbone must be frozen"


def test_random_backbones_differ_by_seed_and_identity():
    a = load_clip(TINY_TEST_CLIP_NAME, pretrained="random", seed=0)
    b = load_clip(TINY_TEST_CLIP_NAME, pretrained="random", seed=1)
    assert a.info.identity != b.info.identity
    assert not torch.allclose(a.encode_text(["haze"]), b.encode_text(["haze"]))


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_local_state_dict_round_trip(tiny, tmp_path, suffix):
    path = tmp_path / f"tiny{suffix}"
    state = {k: v.contiguous() for k, v in tiny.model.state_dict().items()}
    if suffix == ".pt":
        torch.save(state, path)
    else:
        from safetensors.torch import save_file

        save_file(state, str(path))
    loaded = load_clip(TINY_TEST_CLIP_NAME, pretrained=str(path))
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    check(loaded.encode_image(x), tiny.encode_image(x), 1e-6, 1e-6, "image embedding after round trip")
    check(loaded.encode_text(["hazy"]), tiny.encode_text(["hazy"]), 1e-6, 1e-6, "text embedding after round trip")
    assert str(path) in loaded.info.source


def test_compact_checkpoint_round_trip(tiny, tmp_path):
    """Compact format: fp16, only caption-vocabulary token rows kept, other rows restored as zeros."""
    path = save_small_clip(tiny.model, tmp_path / "compact.pt", model_name=TINY_TEST_CLIP_NAME)
    loaded = load_clip(str(path))
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    check(loaded.encode_image(x), tiny.encode_image(x), 2e-2, 2e-2, "image embedding (fp16 storage)")
    check(loaded.encode_text(["a hazy photo"]), tiny.encode_text(["a hazy photo"]), 2e-2, 2e-2, "caption words kept")
    unknown = loaded.tokenize(["zebra"])[0, 1]
    assert loaded.model.token_embedding.weight[unknown].abs().sum() == 0, "rows outside the vocabulary load as zeros"


def test_local_dir_round_trip(tiny, tmp_path):
    import json

    import open_clip

    folder = tmp_path / "tinydir"
    folder.mkdir()
    cfg = open_clip.get_model_config(TINY_TEST_CLIP_NAME)
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg, "preprocess_cfg": {}}))
    torch.save(tiny.model.state_dict(), folder / "open_clip_pytorch_model.bin")
    loaded = load_clip(f"local-dir:{folder}")
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    check(loaded.encode_image(x), tiny.encode_image(x), 1e-6, 1e-6, "local-dir image embedding")


def test_missing_pretrained_weights_fail_at_once_with_a_clear_message(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    start = time.perf_counter()
    with pytest.raises(MissingWeightsError) as err:
        load_clip("ViT-B-32", pretrained="openai")
    elapsed = time.perf_counter() - start
    assert elapsed < 15, f"took {elapsed:.1f} s: must not wait on the hub (open_clip alone retries ~45 s)"
    msg = str(err.value)
    assert "ViT-B-32" in msg and "openai" in msg and "open_clip_pytorch_model.bin" in msg
    assert "pretrained='/path/to/" in msg and "load_clip()" in msg


def test_missing_local_file_and_unknown_tag(tmp_path):
    with pytest.raises(MissingWeightsError, match="nothing.pt"):
        load_clip(TINY_TEST_CLIP_NAME, pretrained=str(tmp_path / "nothing.pt"))
    with pytest.raises(ValueError, match="neither a file nor a pretrained tag"):
        load_clip("ViT-B-32", pretrained="no-such-tag")
    with pytest.raises(ValueError, match="needs weights"):
        load_clip("ViT-B-32")


def test_daclip_missing_file_is_immediate(tmp_path):
    from cliphaze.clip.daclip import load_daclip

    with pytest.raises(MissingWeightsError, match="daclip_ViT-B-32.pt|missing.pt"):
        load_daclip(tmp_path / "missing.pt", model_name=TINY_TEST_CLIP_NAME)


def _daclip_checkpoint(tiny, path, zero_scale):
    """A tiny checkpoint with DA-CLIP's key layout (clip.*, visual.*, visual_control.* with the
    ControlTransformer wrapper and its zero_modules)."""
    import copy

    g = torch.Generator().manual_seed(7)
    state = {f"clip.{k}": v for k, v in tiny.model.state_dict().items()}
    state.update({f"visual.{k}": v for k, v in tiny.model.visual.state_dict().items()})
    ctrl = copy.deepcopy(tiny.model.visual)
    with torch.no_grad():
        for p in ctrl.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    for k, v in ctrl.state_dict().items():
        k = k.replace("transformer.", "transformer.transformer.", 1) if k.startswith("transformer.") else k
        state[f"visual_control.{k}"] = v
    width = tiny.model.visual.conv1.out_channels
    zero = []
    for i in range(len(tiny.model.visual.transformer.resblocks)):
        w = zero_scale * torch.randn(width, width, generator=g)
        b = zero_scale * torch.randn(width, generator=g)
        state[f"visual_control.transformer.zero_modules.{i}.weight"] = w
        state[f"visual_control.transformer.zero_modules.{i}.bias"] = b
        zero.append((w, b))
    state["logit_scale"] = tiny.model.logit_scale.detach().clone()
    torch.save(state, path)
    return ctrl, zero


def test_daclip_key_layout_and_zero_controller_equals_clip(tiny, tmp_path):
    from cliphaze.clip.daclip import load_daclip

    path = tmp_path / "daclip_tiny.pt"
    _daclip_checkpoint(tiny, path, zero_scale=0.0)
    d = load_daclip(path, model_name=TINY_TEST_CLIP_NAME)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    check(d.encode_image(x), tiny.encode_image(x), 1e-5, 1e-6, "DA-CLIP content with zero controller = CLIP")
    check_shape(d.encode_degradation(x), (2, tiny.embed_dim), "degradation embedding")
    assert d.info.identity.startswith("daclip:")


def test_daclip_content_matches_hook_reference(tiny, tmp_path):
    """Content embedding against an independent reference built from open_clip's own forward with
    hooks: the controller's block outputs, through the zero modules, are added after the frozen
    blocks in reverse order (the original pops them from the end of the list)."""
    from cliphaze.clip.daclip import load_daclip

    path = tmp_path / "daclip_tiny.pt"
    ctrl, zero = _daclip_checkpoint(tiny, path, zero_scale=0.3)
    d = load_daclip(path, model_name=TINY_TEST_CLIP_NAME)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    xn = tiny.normalise(x)
    outs = []
    hooks = [blk.register_forward_hook(lambda m, i, o: outs.append(o)) for blk in ctrl.transformer.resblocks]
    with torch.no_grad():
        degradation = ctrl(xn)
    for h in hooks:
        h.remove()
    controls = [o @ w.t() + b for o, (w, b) in zip(outs, zero)]
    blocks = tiny.model.visual.transformer.resblocks
    n = len(blocks)
    hooks = [blk.register_forward_hook(lambda m, i, o, j=j: o + controls[n - 1 - j]) for j, blk in enumerate(blocks)]
    with torch.no_grad():
        content = tiny.model.visual(xn)
    for h in hooks:
        h.remove()
    check(d.encode_image(x, normalize=False), content, 1e-5, 1e-6, "DA-CLIP content embedding")
    check(d.encode_degradation(x, normalize=False), degradation, 1e-5, 1e-6, "DA-CLIP degradation embedding")
