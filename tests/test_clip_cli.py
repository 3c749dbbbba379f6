"""``cliphaze density`` and ``cliphaze clip info`` end to end (shipped backbone, small image)."""

from __future__ import annotations

import json

import torch

from cliphaze.cli import main
from cliphaze.io import read_image, save_image


def test_density_command_writes_a_map(tmp_path, capsys):
    image = torch.rand(3, 48, 80, generator=torch.Generator().manual_seed(0))
    src = save_image(image, tmp_path / "in.png")
    out = tmp_path / "out" / "density.png"
    assert main(["density", str(src), "-o", str(out)]) == 0
    density = read_image(out)
    assert tuple(density.shape) == (3, 48, 80)  # grey PNG read back as RGB
    assert "haze-clip-small" in capsys.readouterr().out


def test_density_command_default_output_name_and_crops(tmp_path):
    src = save_image(torch.full((3, 40, 40), 0.5), tmp_path / "flat.png")
    assert main(["density", str(src), "--method", "crops", "--prompts", "hand"]) == 0
    assert (tmp_path / "flat_density.png").is_file()


def test_clip_info(capsys):
    assert main(["clip", "info"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["shipped_checkpoint_present"] is True
