"""``cliphaze dehaze`` end to end on temporary folders, including a corrupt file (lesson 05)."""

from __future__ import annotations

import pytest
import torch

from cliphaze.cli import main
from cliphaze.io import read_image, save_image


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A small guided model checkpoint (untrained weights; the CLI plumbing is what is tested)."""
    from cliphaze.model import TEST_GUIDE, build_model, guide_fingerprint, save_checkpoint

    torch.manual_seed(0)
    model = build_model("tiny", guide=TEST_GUIDE)
    with torch.no_grad():
        model.net.head.weight.normal_(0, 0.02)
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    save_checkpoint({"network": model.config.to_dict(), "state_dict": model.net.state_dict(),
                     "guide": guide_fingerprint(TEST_GUIDE)}, path)
    return path


@pytest.fixture()
def inputs(tmp_path):
    folder = tmp_path / "in"
    g = torch.Generator().manual_seed(0)
    save_image(torch.rand(3, 30, 41, generator=g), folder / "a.png")
    save_image(torch.rand(3, 17, 23, generator=g), folder / "b.jpg")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    other = tmp_path / "other"
    save_image(torch.rand(3, 20, 20, generator=g), other / "a.png")  # same name as folder/a.png
    return folder, other


def test_folder_with_corrupt_file(inputs, checkpoint, tmp_path, capsys):
    folder, _ = inputs
    out = tmp_path / "out"
    rc = main(["dehaze", str(folder), "-o", str(out), "--model", str(checkpoint), "--side-by-side", "--density"])
    captured = capsys.readouterr()
    assert rc == 1  # finished, but something was skipped
    assert "broken.png" in captured.err and "cannot be read" in captured.err
    assert {p.name for p in out.iterdir()} == {"a.png", "b.jpg", "a_compare.png", "b_compare.png",
                                              "a_density.png", "b_density.png"}
    assert read_image(out / "a.png").shape == (3, 30, 41)
    assert read_image(out / "b.jpg").shape == (3, 17, 23)
    assert read_image(out / "a_compare.png").shape == (3, 30, 82)


def test_files_globs_and_name_clashes(inputs, checkpoint, tmp_path, capsys):
    folder, other = inputs
    out = tmp_path / "out2"
    rc = main(["dehaze", str(folder / "a.png"), str(folder / "*.jpg"), str(other / "a.png"), "-o", str(out),
               "--model", str(checkpoint), "--tile", "16", "--overlap", "8"])
    assert rc == 0
    assert {p.name for p in out.iterdir()} == {"a.png", "b.jpg", "a_2.png"}
    assert "a_2.png" in capsys.readouterr().out


def test_nothing_to_do_and_bad_model(tmp_path, checkpoint, capsys):
    assert main(["dehaze", str(tmp_path / "missing.png"), "-o", str(tmp_path / "o")]) == 2
    img = tmp_path / "x.png"
    save_image(torch.rand(3, 12, 12), img)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    assert main(["dehaze", str(img), "-o", str(tmp_path / "o"), "--model", str(bad)]) == 2
    assert "bad.pt" in capsys.readouterr().err
