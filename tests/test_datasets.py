"""Paired and synthetic datasets: item contents, augmentation, image conversions, errors, seeding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from test_data_layouts import build_benchmark, hazy_colour, scene_colour, write_pair, write_rgb
from torch.utils.data import DataLoader

from cliphaze.data import PairingError, SyntheticHazeDataset, open_benchmark, random_crop_flip
from cliphaze.haze import HazeConfig, apply_scattering
from cliphaze.io import ImageReadError
from cliphaze.shapes import check, check_shape


def gradient_pair(root, name="000", h=12, w=16):
    """A pair whose pixels are all different (hazy = (clear + 1) / 2), to follow crops and flips."""
    ys, xs = np.mgrid[0:h, 0:w]
    clear = np.stack([ys * 10, xs * 10, (ys + xs) * 5], axis=2).astype(np.uint8)
    hazy = ((clear.astype(np.float64) + 255) / 2).round().astype(np.uint8)
    for sub, arr in (("hazy", hazy), ("GT", clear)):
        (root / sub).mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(root / sub / f"{name}.png")
    return clear


def test_paired_item_has_documented_keys_and_shapes(tmp_path):
    root = build_benchmark(tmp_path, "nh-haze")
    ds = open_benchmark(root, split="test")
    item = ds[0]
    assert set(item) == {"hazy", "clear", "name", "hazy_path", "clear_path"}
    check_shape(item["hazy"], (3, 8, 8), "hazy")
    check_shape(item["clear"], (3, 8, 8), "clear")
    assert item["name"] == "51_hazy"
    assert item["hazy_path"].endswith("51_hazy.png") and item["clear_path"].endswith("51_GT.png")
    expected = torch.tensor(scene_colour(51), dtype=torch.float32).view(3, 1, 1) / 255
    check(item["clear"], expected.expand(3, 8, 8), rtol=0, atol=1e-6, name="GT colour of scene 51")
    with pytest.raises(IndexError):
        ds[len(ds)]
    assert [it["name"] for it in ds] == ["51_hazy", "52_hazy", "53_hazy", "54_hazy", "55_hazy"]  # plain iteration stops


def test_crop_and_flip_are_identical_for_hazy_and_clear(tmp_path):
    root = tmp_path / "pairs"
    gradient_pair(root)
    ds = open_benchmark(root, split="all", crop=(5, 7), flip=True, seed=3)
    flipped = 0
    for epoch in range(12):
        ds.set_epoch(epoch)
        item = ds[0]
        check_shape(item["hazy"], (3, 5, 7), "hazy crop")
        # The same window of both images: the pixelwise relation hazy = (clear + 1) / 2 survives.
        check(item["hazy"], (item["clear"] + 1) / 2, rtol=0, atol=1 / 255, name="paired crop")
        flipped += bool(item["clear"][1, 0, 0] > item["clear"][1, 0, -1])  # x-gradient reversed
    assert 0 < flipped < 12  # both orientations occur over the epochs
    # seed + epoch + index fix the sample.
    ds.set_epoch(4)
    a = ds[0]
    b = open_benchmark(root, split="all", crop=(5, 7), flip=True, seed=3)
    b.set_epoch(4)
    assert torch.equal(a["hazy"], b[0]["hazy"])


def test_random_crop_flip_enlarges_small_images_to_cover_the_crop():
    img = torch.rand(3, 6, 10)
    ramp = torch.linspace(0, 1, 10).expand(1, 6, 10)
    out_img, out_ramp = random_crop_flip([img, ramp], 16, flip=False, generator=torch.Generator().manual_seed(0))
    check_shape(out_img, (3, 16, 16), "enlarged crop")
    check_shape(out_ramp, (1, 16, 16), "enlarged map")
    assert (out_ramp[0, :, 1:] >= out_ramp[0, :, :-1]).all()  # resized, not mirrored: still monotone
    with pytest.raises(ValueError, match="share"):
        random_crop_flip([img, torch.rand(1, 5, 10)], 4, flip=False)


def test_size_mismatch_names_both_files(tmp_path):
    root = build_benchmark(tmp_path, "nh-haze")
    write_rgb(root / "52_GT.png", scene_colour(52), size=10)
    ds = open_benchmark(root, split="test")
    with pytest.raises(PairingError, match="size mismatch") as err:
        ds[1]
    assert "52_hazy.png" in str(err.value) and "52_GT.png" in str(err.value)


def test_unreadable_hazy_image_is_named(tmp_path):
    root = build_benchmark(tmp_path, "nh-haze")
    (root / "53_hazy.png").write_bytes(b"this is not a png")
    ds = open_benchmark(root, split="test")
    with pytest.raises(ImageReadError, match="53_hazy.png"):
        ds[2]


def test_grayscale_rgba_and_16bit_inputs_follow_read_image_rules(tmp_path):
    root = tmp_path / "mixed_formats"
    (root / "hazy").mkdir(parents=True)
    (root / "GT").mkdir()
    Image.fromarray(np.full((8, 8), 200, np.uint8), mode="L").save(root / "hazy" / "a.png")
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., :3] = (145, 20, 255)
    rgba[..., 3] = 255
    Image.fromarray(rgba, mode="RGBA").save(root / "GT" / "a.png")
    Image.fromarray(np.full((8, 8), 30000, np.uint16)).save(root / "hazy" / "b.png")  # 16-bit gray
    write_rgb(root / "GT" / "b.png", scene_colour(1))
    ds = open_benchmark(root, split="all")
    a, b = ds[0], ds[1]
    assert a["hazy"].shape == (3, 8, 8) and torch.all(a["hazy"] == 200 / 255)  # gray -> 3 equal channels
    check(a["clear"][:, 0, 0], torch.tensor([145, 20, 255]) / 255, rtol=0, atol=1e-6, name="opaque RGBA")
    assert b["hazy"].dtype == torch.float32
    check(b["hazy"], torch.full((3, 8, 8), 30000 / 65535), rtol=0, atol=1e-7, name="16-bit keeps precision")
    # Transparency is refused, naming the file.
    rgba[0, 0, 3] = 0
    Image.fromarray(rgba, mode="RGBA").save(root / "GT" / "a.png")
    with pytest.raises(ImageReadError, match="a.png.*transparent"):
        ds[0]


def test_paired_batches_collate(tmp_path):
    root = build_benchmark(tmp_path, "sots-indoor")
    loader = DataLoader(open_benchmark(root, crop=4, flip=True), batch_size=3)
    batch = next(iter(loader))
    check_shape(batch["hazy"], (3, 3, 4, 4), "hazy batch")
    assert batch["name"] == ["1400_1", "1400_10", "1400_5"]


@pytest.fixture
def clear_folder(tmp_path):
    folder = tmp_path / "clear_photos"
    for k in range(3):
        write_rgb(folder / "train" / f"{k}.png", scene_colour(k + 5), size=24)
    # one image smaller than the crop, in another sub-folder, with structure to crop
    small = np.random.default_rng(0).integers(0, 256, (10, 14, 3), dtype=np.uint8)
    (folder / "val").mkdir()
    Image.fromarray(small).save(folder / "val" / "small.jpg")
    return folder


def test_synthetic_item_shapes_and_physics(clear_folder):
    ds = SyntheticHazeDataset(clear_folder, crop=16, kind="mixed", seed=1)
    assert len(ds) == 4
    assert {ds[i]["name"] for i in range(4)} == {"train/0", "train/1", "train/2", "val/small"}
    item = ds[3]
    assert set(item) == {"hazy", "clear", "transmission", "density", "airlight", "name", "params"}
    check_shape(item["hazy"], (3, 16, 16), "hazy")
    check_shape(item["clear"], (3, 16, 16), "clear")
    check_shape(item["transmission"], (1, 16, 16), "transmission")
    check_shape(item["density"], (1, 16, 16), "density")
    check_shape(item["airlight"], (3, 1, 1), "airlight")
    check(item["density"], 1 - item["transmission"], name="density = 1 - t")
    hazy = apply_scattering(item["clear"][None], item["transmission"][None], item["airlight"][None])[0]
    check(item["hazy"], hazy.clamp(0, 1), name="I = J t + A (1 - t)")
    assert item["params"]["kind"] in ("homogeneous", "nonhomogeneous")
    assert isinstance(item["params"]["beta"], float)


def test_synthetic_is_reproducible_per_seed_index_epoch(clear_folder):
    a = SyntheticHazeDataset(clear_folder, crop=16, length=8, seed=7)
    b = SyntheticHazeDataset(clear_folder, crop=16, length=8, seed=7)
    for i in (0, 5):
        assert torch.equal(a[i]["hazy"], b[i]["hazy"]) and a[i]["params"] == b[i]["params"]
    assert torch.equal(a[2]["hazy"], a[2]["hazy"])  # reading twice does not advance any state
    assert a[1]["name"] == a[5]["name"] and not torch.equal(a[1]["hazy"], a[5]["hazy"])  # cycled, new haze
    first = a[0]["hazy"]
    a.set_epoch(1)
    assert not torch.equal(a[0]["hazy"], first)
    b.set_epoch(1)
    assert torch.equal(a[0]["hazy"], b[0]["hazy"])
    c = SyntheticHazeDataset(clear_folder, crop=16, length=8, seed=8)
    assert not torch.equal(c[0]["hazy"], first)


def test_synthetic_kinds_and_config(clear_folder):
    homo = SyntheticHazeDataset(clear_folder, crop=8, kind="homogeneous", length=6)
    assert all(homo[i]["params"]["patchiness"] == 0.0 for i in range(6))
    mixed = SyntheticHazeDataset(clear_folder, crop=8, kind="mixed", length=16)
    assert {mixed[i]["params"]["kind"] for i in range(16)} == {"homogeneous", "nonhomogeneous"}
    thin = SyntheticHazeDataset(clear_folder, crop=8, kind="nonhomogeneous", config=HazeConfig(beta=(0.5, 0.5)))
    assert all(thin[i]["params"]["beta"] == 0.5 for i in range(4))
    with pytest.raises(ValueError, match="kind"):
        SyntheticHazeDataset(clear_folder, kind="fog")


def test_synthetic_batches_collate(clear_folder):
    batch = next(iter(DataLoader(SyntheticHazeDataset(clear_folder, crop=8), batch_size=4)))
    check_shape(batch["hazy"], (4, 3, 8, 8), "hazy batch")
    check_shape(batch["airlight"], (4, 3, 1, 1), "airlight batch")


def test_synthetic_reports_every_unreadable_file(clear_folder):
    (clear_folder / "train" / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    (clear_folder / "notes.png").write_bytes(b"")
    with pytest.raises(ImageReadError) as err:
        SyntheticHazeDataset(clear_folder)
    msg = str(err.value)
    assert "2 of 6 images" in msg and "broken.jpg" in msg and "notes.png" in msg
    lazy = SyntheticHazeDataset(clear_folder, crop=8, validate=False)
    names = [p.name for p in lazy.files]
    with pytest.raises(ImageReadError, match="broken.jpg"):
        lazy[names.index("broken.jpg")]


def test_synthetic_empty_or_missing_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        SyntheticHazeDataset(tmp_path / "empty")
    with pytest.raises(FileNotFoundError):
        SyntheticHazeDataset(tmp_path / "missing")


def test_pairs_written_by_helpers_match_their_colour_rule(tmp_path):
    # The fixture rule every pairing test relies on: hazy colour = (GT colour + 1) / 2.
    write_pair(tmp_path / "hazy" / "x.png", tmp_path / "GT" / "x.png", 9)
    item = open_benchmark(tmp_path, split="all")[0]
    check(item["hazy"][:, 0, 0], torch.tensor(hazy_colour(9), dtype=torch.float32) / 255, rtol=0, atol=1e-6)
