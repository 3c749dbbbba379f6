"""SyntheticHazeDataset with haze families: per-item draws stay a function of (seed, epoch, index)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cliphaze.data import SyntheticHazeDataset
from cliphaze.haze import apply_scattering


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    return tmp_path


FAMILIES = ("ramp", "fields", "room", "fog")


def test_families_are_drawn_per_item_and_reproducible(folder):
    ds = SyntheticHazeDataset(folder, crop=32, families=FAMILIES, dense=0.5, airlight_colour="any",
                              noise=0.02, jpeg=(50, 90), length=24, seed=3)
    forward = [ds[i] for i in range(24)]
    backward = [ds[i] for i in reversed(range(24))][::-1]
    for a, b in zip(forward, backward):
        assert torch.equal(a["hazy"], b["hazy"]) and a["params"] == b["params"]
    kinds = {it["params"]["kind"] for it in forward}
    assert kinds == set(FAMILIES)
    assert {it["params"]["dense"] for it in forward} == {True, False}
    fresh = SyntheticHazeDataset(folder, crop=32, families=FAMILIES, dense=0.5, airlight_colour="any",
                                 noise=0.02, jpeg=(50, 90), length=24, seed=3)
    assert torch.equal(fresh[5]["hazy"], forward[5]["hazy"])
    ds.set_epoch(1)
    assert not torch.equal(ds[5]["transmission"], forward[5]["transmission"])
    item = forward[0]
    assert item["hazy"].shape == (3, 32, 32) and item["transmission"].shape == (1, 32, 32)


def test_without_options_the_scattering_model_holds_exactly(folder):
    ds = SyntheticHazeDataset(folder, crop=32, families=("room",), length=3)
    for it in ds:
        expected = apply_scattering(it["clear"][None], it["transmission"][None], it["airlight"][None]).clamp(0, 1)[0]
        assert torch.equal(it["hazy"], expected)


def test_default_behaviour_is_unchanged(folder):
    """No ``families``: the original synthesiser, same items as before the option existed."""
    from cliphaze.data.datasets import _sample_generator, random_crop_flip
    from cliphaze.haze import synthesize_haze
    from cliphaze.io import read_image

    ds = SyntheticHazeDataset(folder, crop=32, kind="nonhomogeneous", seed=1)
    item = ds[2]
    gen = _sample_generator(1, 0, 2)
    (clear,) = random_crop_flip([read_image(ds.files[2])], (32, 32), flip=True, generator=gen)
    ref = synthesize_haze(clear, kind="nonhomogeneous", generator=gen)
    assert torch.equal(item["hazy"], ref.hazy[0]) and item["params"]["kind"] == "nonhomogeneous"


def test_bright_share_replaces_clear_crops_and_leaves_other_items_alone(folder):
    """``bright``: that share of items hazes bright, low-texture content instead of the photo crop
    (the random photos here are mid-grey noise, mean about 0.5); bright = 0 draws the same items as
    a dataset without the option, and real-depth items are never replaced."""
    plain = SyntheticHazeDataset(folder, crop=32, families=FAMILIES, length=40, seed=2)
    off = SyntheticHazeDataset(folder, crop=32, families=FAMILIES, length=40, seed=2, bright=0.0)
    assert all(torch.equal(plain[i]["hazy"], off[i]["hazy"]) for i in range(5))
    all_bright = SyntheticHazeDataset(folder, crop=(32, 24), families=FAMILIES, length=40, seed=2, bright=1.0)
    items = [all_bright[i] for i in range(40)]
    assert all(it["name"].endswith("#bright") for it in items)
    assert all(it["clear"].shape == (3, 32, 24) for it in items)
    means = torch.stack([it["clear"].mean() for it in items])
    assert means.min() > 0.55, means.min()                      # bright content, every item
    expected = [apply_scattering(it["clear"][None], it["transmission"][None], it["airlight"][None]).clamp(0, 1)[0]
                for it in items]
    assert all(torch.equal(it["hazy"], e) for it, e in zip(items, expected))   # hazed like any clear crop
    half = SyntheticHazeDataset(folder, crop=32, families=FAMILIES, length=200, seed=2, bright=0.5)
    share = sum(half[i]["name"].endswith("#bright") for i in range(200)) / 200
    assert 0.38 < share < 0.62, share
    real = SyntheticHazeDataset(folder, crop=32, families=("real-depth",), length=3, bright=1.0,
                                real_depth_folder=None)
    assert all(not real[i]["name"].endswith("#bright") for i in range(3))


def test_real_depth_items_use_matching_pairs(folder):
    ds = SyntheticHazeDataset(folder, crop=32, families=("real-depth",), length=2, real_depth_folder=None)
    it = ds[0]
    assert it["name"] == "real-depth/motorcycle" and it["params"]["kind"] == "real-depth"


@pytest.mark.parametrize("kwargs, match", [
    ({"families": ("smoke",)}, "families"),
    ({"families": ()}, "families"),
    ({"families": ("ramp",), "dense": 1.5}, "dense"),
    ({"families": ("ramp",), "airlight_colour": "pink"}, "airlight_colour"),
    ({"families": ("ramp",), "noise": -0.1}, "noise"),
    ({"families": ("ramp",), "jpeg": (90, 10)}, "jpeg"),
    ({"families": ("ramp",), "bright": 1.2}, "bright"),
])
def test_bad_options_are_refused(folder, kwargs, match):
    with pytest.raises(ValueError, match=match):
        SyntheticHazeDataset(folder, crop=32, **kwargs)
