"""``cliphaze haze``: writes a paired dataset in the renamed hazy/ + GT/ layout and skips bad files."""

import json

import numpy as np
from PIL import Image

from cliphaze.cli import main
from cliphaze.io import read_image


def test_haze_cli_writes_pairs_and_maps(tmp_path, capsys):
    src = tmp_path / "clear"
    src.mkdir()
    for i in range(2):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(src / f"p{i}.jpg")
    (src / "broken.png").write_bytes(b"garbage")
    out = tmp_path / "out"
    code = main(["haze", str(src), "-o", str(out), "--kind", "homogeneous", "--beta", "1.0", "--seed", "3", "--maps"])
    assert code == 1  # one unreadable file was skipped and reported
    err = capsys.readouterr().err
    assert "broken.png" in err
    for name in ("p0.png", "p1.png"):
        hazy, gt, t = (read_image(out / d / name) for d in ("hazy", "GT", "transmission"))
        assert hazy.shape == gt.shape == (3, 20, 24)
        assert (t > 0).all()
    params = [json.loads(line) for line in open(out / "params.jsonl")]
    assert {p["image"] for p in params} == {"p0.png", "p1.png"}
    assert all(p["kind"] == "homogeneous" and abs(p["beta"] - 1.0) < 1e-6 for p in params)


def test_haze_cli_is_reproducible(tmp_path):
    src = tmp_path / "clear"
    src.mkdir()
    Image.fromarray(np.full((16, 16, 3), 90, np.uint8)).save(src / "a.png")
    main(["haze", str(src), "-o", str(tmp_path / "o1"), "--seed", "5"])
    main(["haze", str(src), "-o", str(tmp_path / "o2"), "--seed", "5"])
    assert np.array_equal(np.asarray(Image.open(tmp_path / "o1/hazy/a.png")), np.asarray(Image.open(tmp_path / "o2/hazy/a.png")))
