"""Benchmark layouts: every distributed naming scheme, its split, and what must not pair.

The fixture folders mimic each benchmark with 8x8 images. Every scene has its own colour ``c``
and its hazy images are ``(c + 1) / 2`` (haze towards white), so a hazy image paired with the
wrong GT is caught by :func:`assert_correctly_paired`. ``test_datasets.py`` and
``test_data_cli.py`` reuse the builders below.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cliphaze.data import (
    LayoutError,
    PairingError,
    get_layout,
    match_clear_to_hazy,
    open_benchmark,
    scan_benchmark,
)

SIZE = 8  # every fixture image is SIZE x SIZE (SOTS-indoor GT: SIZE + 20)


def scene_colour(k: int) -> np.ndarray:
    """A distinct RGB uint8 colour for scene index k < 64 (levels 0.1..0.9 on a 4x4x4 grid)."""
    levels = np.round((0.1 + 0.8 * np.arange(4) / 3) * 255).astype(np.uint8)
    return np.array([levels[k % 4], levels[(k // 4) % 4], levels[(k // 16) % 4]], dtype=np.uint8)


def hazy_colour(k: int) -> np.ndarray:
    return ((scene_colour(k).astype(np.float64) + 255.0) / 2.0).round().astype(np.uint8)


def write_rgb(path: Path, colour: np.ndarray, size: int = SIZE, border: int = 0) -> Path:
    """A flat ``colour`` image (with a white ``border``), PNG or JPEG by suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.full((size + 2 * border, size + 2 * border, 3), 255, dtype=np.uint8)
    arr[border:border + size, border:border + size] = colour
    kw = {"quality": 95} if path.suffix.lower() in (".jpg", ".jpeg") else {}
    Image.fromarray(arr).save(path, **kw)
    return path


def write_pair(hazy: Path, gt: Path, k: int, gt_border: int = 0) -> None:
    write_rgb(hazy, hazy_colour(k))
    write_rgb(gt, scene_colour(k), border=gt_border)


def build_benchmark(base: Path, name: str) -> Path:
    """Create a miniature of benchmark ``name`` under ``base`` in its distributed layout; returns its root."""
    if name in ("nh-haze", "dense-haze", "nh-haze-2021"):
        folder, n = {"nh-haze": ("NH-HAZE", 55), "dense-haze": ("Dense_Haze", 55), "nh-haze-2021": ("NH-HAZE-2021", 25)}[name]
        root = base / folder
        for i in range(1, n + 1):
            write_pair(root / f"{i:02d}_hazy.png", root / f"{i:02d}_GT.png", i)
    elif name in ("o-haze", "i-haze"):
        word, n = {"o-haze": ("outdoor", 45), "i-haze": ("indoor", 35)}[name]
        root = base / name.upper()
        for i in range(1, n + 1):
            write_pair(root / "hazy" / f"{i:02d}_{word}_hazy.jpg", root / "GT" / f"{i:02d}_{word}_GT.jpg", i)
    elif name == "its":
        root = base / "ITS_v2"
        for k, scene in enumerate((1, 2, 13)):
            for level, beta in ((1, "0.90179"), (2, "0.61453"), (10, "0.7")):
                write_rgb(root / "hazy" / f"{scene}_{level}_{beta}.png", hazy_colour(k))
            write_rgb(root / "clear" / f"{scene}.png", scene_colour(k))
            write_rgb(root / "trans" / f"{scene}_1.png", scene_colour(0))  # transmission maps: ignored
    elif name == "ots":
        root = base / "OTS_BETA"
        for k, scene in enumerate(("0005", "0008", "0011")):
            for part, (a, beta) in enumerate((("0.8", "0.04"), ("1", "0.2"))):
                write_rgb(root / "haze" / f"part{part + 1}" / f"{scene}_{a}_{beta}.jpg", hazy_colour(k))
            write_rgb(root / "clear" / "clear_images" / f"{scene}.jpg", scene_colour(k))
    elif name == "sots-indoor":
        root = base / "indoor"
        for k, scene in enumerate((1400, 1401)):
            for level in (1, 5, 10):
                write_rgb(root / "hazy" / f"{scene}_{level}.png", hazy_colour(k))
            write_rgb(root / "gt" / f"{scene}.png", scene_colour(k), border=10)
    elif name == "sots-outdoor":
        root = base / "outdoor"
        for k, scene in enumerate(("0001", "0002")):
            write_rgb(root / "hazy" / f"{scene}_0.8_0.2.jpg", hazy_colour(k))
            write_rgb(root / "hazy" / f"{scene}_1_0.16.jpg", hazy_colour(k))
            write_rgb(root / "gt" / f"{scene}.png", scene_colour(k))
    elif name == "dehazeformer":
        # RESIDE-IN as redistributed: test/ in SOTS naming (GT already cropped), train/ renamed pairs.
        root = base / "RESIDE-IN"
        for k, scene in enumerate((1400, 1401)):
            for level in (1, 10):
                write_rgb(root / "test" / "hazy" / f"{scene}_{level}.png", hazy_colour(k))
            write_rgb(root / "test" / "GT" / f"{scene}.png", scene_colour(k))
        for k in range(3):
            write_pair(root / "train" / "hazy" / f"img{k}.png", root / "train" / "GT" / f"img{k}.png", k + 2)
    elif name.startswith("paired-"):
        gt_name = name.split("-", 1)[1]  # GT, gt or clear
        root = base / f"renamed_{gt_name}"
        for k in range(4):
            write_pair(root / "hazy" / f"{k:03d}.png", root / gt_name / f"{k:03d}.png", k)
    else:
        raise ValueError(name)
    return root


def assert_correctly_paired(dataset) -> None:
    """Every item's hazy colour is the haze of its clear colour: a mis-pairing fails here."""
    colours, gt_files = set(), set()
    for i in range(len(dataset)):
        item = dataset[i]
        hazy, clear = item["hazy"], item["clear"]
        assert hazy.shape == clear.shape and hazy.shape[0] == 3 and hazy.dtype == torch.float32
        expected_hazy = (clear + 1.0) / 2.0
        err = (hazy - expected_hazy).abs().max().item()
        assert err < 0.03, f"{item['name']}: hazy does not match its GT (error {err:.3f}), mis-paired?"
        colours.add(tuple((clear.mean(dim=(1, 2)) * 255).round().int().tolist()))
        gt_files.add(item["clear_path"])
    # Distinct scenes keep distinct colours (otherwise the check above could not see a swap).
    assert len(colours) == len(gt_files)


# (name, pairs, pairs per split, layout detected)
CASES = [
    ("nh-haze", 55, {"train": 50, "test": 5}, "nh-haze"),
    ("dense-haze", 55, {"train": 50, "test": 5}, "dense-haze"),
    ("nh-haze-2021", 25, {"train": 20, "test": 5}, "nh-haze-2021"),
    ("o-haze", 45, {"train": 40, "test": 5}, "o-haze"),
    ("i-haze", 35, {"train": 30, "test": 5}, "i-haze"),
    ("its", 9, {"train": 9}, "its"),
    ("ots", 6, {"train": 6}, "ots"),
    ("sots-indoor", 6, {"test": 6}, "sots-indoor"),
    ("sots-outdoor", 4, {"test": 4}, "sots-outdoor"),
    ("paired-GT", 4, {"unknown": 4}, "paired"),
    ("paired-gt", 4, {"unknown": 4}, "paired"),
    ("paired-clear", 4, {"unknown": 4}, "paired"),
]


@pytest.mark.parametrize("name,n_pairs,per_split,layout", CASES, ids=[c[0] for c in CASES])
def test_every_layout_is_detected_and_paired(tmp_path, name, n_pairs, per_split, layout):
    root = build_benchmark(tmp_path, name)
    scan = scan_benchmark(root)
    assert scan.layout_names == [layout]
    assert len(scan.pairs) == n_pairs
    assert scan.counts_by_split() == per_split
    assert not scan.hazy_without_gt and not scan.gt_without_hazy and not scan.unrecognised
    assert_correctly_paired(open_benchmark(root, split="all"))


@pytest.mark.parametrize("name,test_scenes", [("nh-haze", range(51, 56)), ("o-haze", range(41, 46)),
                                              ("i-haze", range(31, 36)), ("nh-haze-2021", range(21, 26))])
def test_standard_test_split_holds_the_documented_scenes(tmp_path, name, test_scenes):
    root = build_benchmark(tmp_path, name)
    test = open_benchmark(root, split="test")
    train = open_benchmark(root, split="train")
    assert sorted(int(p.scene) for p in test.pairs) == list(test_scenes)
    assert not {p.scene for p in test.pairs} & {p.scene for p in train.pairs}
    assert len(test) + len(train) == len(open_benchmark(root, split="all"))


def test_nh_haze_2021_is_told_apart_by_count_without_a_name_hint(tmp_path):
    root = tmp_path / "my_copy"
    for i in range(1, 26):
        write_pair(root / f"{i:02d}_hazy.png", root / f"{i:02d}_GT.png", i)
    assert scan_benchmark(root).layout_names == ["nh-haze-2021"]
    assert scan_benchmark(root, layout="nh-haze").layout_names == ["nh-haze"]


def test_split_folders_decide_the_split(tmp_path):
    root = build_benchmark(tmp_path, "dehazeformer")
    scan = scan_benchmark(root)
    assert scan.layout_names == ["sots-indoor", "paired"]
    assert scan.counts_by_split() == {"test": 4, "train": 3}
    test = open_benchmark(root, split="test")
    assert {p.name for p in test.pairs} == {"1400_1", "1400_10", "1401_1", "1401_10"}
    assert_correctly_paired(test)
    assert_correctly_paired(open_benchmark(root, split="train"))
    # A leaf folder called test/ is the test split.
    assert len(open_benchmark(root / "test", split="test")) == 4


def test_training_and_test_only_benchmarks_refuse_the_other_split(tmp_path):
    with pytest.raises(ValueError, match="no 'test' pairs.*only: train"):
        open_benchmark(build_benchmark(tmp_path, "its"), split="test")
    with pytest.raises(ValueError, match="no 'train' pairs"):
        open_benchmark(build_benchmark(tmp_path, "sots-indoor"), split="train")

def test_paired_folder_without_split_serves_any_split_with_a_warning(tmp_path):
    root = build_benchmark(tmp_path, "paired-GT")
    with pytest.warns(UserWarning, match="no split information.*'test' split"):
        assert len(open_benchmark(root, split="test")) == 4
    with pytest.warns(UserWarning, match="'train' split"):
        assert len(open_benchmark(root, split="train")) == 4


def test_sots_indoor_gt_border_is_centre_cropped(tmp_path):
    root = build_benchmark(tmp_path, "sots-indoor")
    ds = open_benchmark(root, split="test")
    raw_gt = Image.open(ds.pairs[0].clear)
    assert raw_gt.size == (SIZE + 20, SIZE + 20)
    item = ds[0]
    assert item["clear"].shape == (3, SIZE, SIZE)
    # The white border is gone: every pixel is the scene colour.
    expected = torch.tensor(scene_colour(0), dtype=torch.float32).view(3, 1, 1) / 255
    assert (item["clear"] - expected).abs().max() < 1e-6


def test_match_clear_to_hazy_crops_only_the_documented_border(tmp_path):
    root = build_benchmark(tmp_path, "sots-indoor")
    pair = scan_benchmark(root).pairs[0]
    hazy = torch.zeros(3, 6, 9)
    clear = torch.arange(26 * 29, dtype=torch.float32).view(1, 26, 29).expand(3, -1, -1)
    assert torch.equal(match_clear_to_hazy(clear, hazy, pair), clear[:, 10:16, 10:19])
    with pytest.raises(PairingError, match="size mismatch") as err:
        match_clear_to_hazy(torch.zeros(3, 24, 29), hazy, pair)
    assert str(pair.hazy) in str(err.value) and str(pair.clear) in str(err.value)
    nh_pair = scan_benchmark(build_benchmark(tmp_path, "nh-haze")).pairs[0]
    with pytest.raises(PairingError, match="size mismatch"):
        match_clear_to_hazy(torch.zeros(3, 26, 29), hazy, nh_pair)  # no border rule for NH-HAZE


def test_missing_gt_is_named_and_never_silently_dropped(tmp_path):
    root = build_benchmark(tmp_path, "nh-haze")
    (root / "07_GT.png").unlink()
    scan = scan_benchmark(root)
    assert [p.name for p, _ in scan.hazy_without_gt] == ["07_hazy.png"]
    assert len(scan.pairs) == 54
    with pytest.raises(PairingError, match="07_hazy.png"):
        open_benchmark(root, split="test")


def test_gt_without_hazy_warns(tmp_path):
    root = build_benchmark(tmp_path, "o-haze")
    (root / "hazy" / "03_outdoor_hazy.jpg").unlink()
    with pytest.warns(UserWarning, match="03_outdoor_GT.jpg"):
        ds = open_benchmark(root, split="train")
    assert len(ds) == 39


def test_ambiguous_gt_and_unrecognised_names_raise(tmp_path):
    root = build_benchmark(tmp_path, "sots-indoor")
    write_rgb(root / "gt" / "1400.jpg", scene_colour(0), border=10)
    scan = scan_benchmark(root)
    assert all("several ground-truth files" in why for _, why in scan.hazy_without_gt)
    assert len(scan.hazy_without_gt) == 3
    root2 = build_benchmark(tmp_path, "i-haze")
    write_rgb(root2 / "hazy" / "holiday_photo.jpg", hazy_colour(0))
    with pytest.raises(PairingError, match="holiday_photo.jpg"):
        open_benchmark(root2, split="test")


def test_forced_layout_and_unknown_layout(tmp_path):
    root = build_benchmark(tmp_path, "nh-haze")
    assert scan_benchmark(root, layout="dense-haze").layout_names == ["dense-haze"]
    forced_wrong = scan_benchmark(root, layout="o-haze")
    assert not forced_wrong.pairs and len(forced_wrong.unrecognised) == 110
    with pytest.raises(LayoutError, match="unknown layout"):
        scan_benchmark(root, layout="nh_haze_2020")
    assert get_layout("SOTS-indoor").gt_border == 10


def test_folder_of_clear_images_is_not_a_benchmark(tmp_path):
    for k in range(3):
        write_rgb(tmp_path / "photos" / "train" / f"{100 + k}.jpg", scene_colour(k))
    with pytest.raises(LayoutError, match="no file names pair"):
        scan_benchmark(tmp_path / "photos")
    with pytest.raises(LayoutError, match="no such folder"):
        scan_benchmark(tmp_path / "nowhere")


def test_real_sots_indoor_dev_has_75_pairs(shared_data):
    root = shared_data / "sots-indoor-dev"
    ds = open_benchmark(root, split="test")
    assert len(ds) == 75
    assert ds.scan.layout_names == ["sots-indoor"]
    assert {p.clear.name for p in ds.pairs} == {f"{s}.png" for s in range(1400, 1425)}
    assert all(p.clear.stem == p.name.split("_")[0] for p in ds.pairs)
    item = ds[0]
    assert item["hazy"].shape == item["clear"].shape == (3, 460, 620)
