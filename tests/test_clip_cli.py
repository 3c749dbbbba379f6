"""``cliphaze density`` and ``cliphaze clip info`` end to end (shipped backbone, small images)."""

from __future__ import annotations

import json

import torch

from cliphaze.cli import main
from cliphaze.io import read_image, save_image


def test_density_command_writes_a_map(tmp_path, capsys):
    image = torch.rand(3, 48, 80, generator=torch.Generator().manual_seed(0))
    src = save_image(image, tmp_path / "in" / "in.png")
    out = tmp_path / "out"
    assert main(["density", str(src), "-o", str(out)]) == 0
    density = read_image(out / "in_density.png")
    assert tuple(density.shape) == (3, 48, 80)  # grey PNG read back as RGB
    assert "haze-clip-small" in capsys.readouterr().out


def test_density_command_folders_default_output_and_crops(tmp_path, monkeypatch, capsys):
    """A folder in, maps in outputs/density (never beside the photos), the count printed."""
    folder = tmp_path / "photos"
    save_image(torch.full((3, 40, 40), 0.5), folder / "flat.png")
    save_image(torch.rand(3, 24, 30, generator=torch.Generator().manual_seed(1)), folder / "noise.jpg")
    monkeypatch.chdir(tmp_path)
    assert main(["density", "photos", "--method", "crops", "--prompts", "hand"]) == 0
    assert sorted(p.name for p in (tmp_path / "outputs" / "density").iterdir()) == ["flat_density.png",
                                                                                   "noise_density.png"]
    assert sorted(p.name for p in folder.iterdir()) == ["flat.png", "noise.jpg"]
    assert "photos: 2 image(s)" in capsys.readouterr().out


def test_density_refuses_to_write_beside_its_inputs(tmp_path, capsys):
    src = save_image(torch.rand(3, 20, 20), tmp_path / "x.png")
    before = src.read_bytes()
    assert main(["density", str(src), "-o", str(tmp_path)]) == 2
    assert main(["density", str(src), "-o", str(src)]) == 2
    err = capsys.readouterr().err
    assert "cliphaze density: error:" in err and "x.png" in err and "Traceback" not in err
    assert src.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["x.png"]


def test_clip_info(capsys):
    assert main(["clip", "info"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["shipped_checkpoint_present"] is True
