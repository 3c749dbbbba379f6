"""``cliphaze data check``: report, problem list and exit status on miniature benchmarks."""

from __future__ import annotations

import pytest
from test_data_layouts import build_benchmark, scene_colour, write_rgb

from cliphaze.cli import main


def run_check(capsys, *args) -> tuple[int, str]:
    code = main(["data", "check", *map(str, args)])
    return code, capsys.readouterr().out


def test_good_benchmark_reports_layout_and_splits(tmp_path, capsys):
    root = build_benchmark(tmp_path, "nh-haze")
    code, out = run_check(capsys, root)
    assert code == 0
    assert "nh-haze: NH-HAZE 2020" in out and "(detected)" in out
    assert "55 hazy, 55 GT" in out
    assert "55 (test: 5, train: 50)" in out
    assert "0 unreadable, 0 size mismatches" in out
    assert out.rstrip().endswith("OK: 55 pairs, every image pairs and reads")


def test_sots_indoor_border_crop_is_reported(tmp_path, capsys):
    code, out = run_check(capsys, build_benchmark(tmp_path, "sots-indoor"))
    assert code == 0
    assert "sub-folders hazy/ (6 hazy) and gt/ (2 GT)" in out
    assert "GT border cropped for 6" in out


def test_every_problem_is_listed_and_exit_is_nonzero(tmp_path, capsys):
    root = build_benchmark(tmp_path, "o-haze")
    (root / "GT" / "02_outdoor_GT.jpg").unlink()  # hazy without GT
    (root / "hazy" / "05_outdoor_hazy.jpg").unlink()  # GT without hazy
    write_rgb(root / "GT" / "07_outdoor_GT.jpg", scene_colour(7), size=12)  # size mismatch
    (root / "hazy" / "09_outdoor_hazy.jpg").write_bytes(b"not a jpeg")  # unreadable
    write_rgb(root / "hazy" / "IMG_0001.jpg", scene_colour(1))  # fits no naming
    code, out = run_check(capsys, root)
    assert code == 1
    problems = out.split("PROBLEMS (5):")[1]
    assert "hazy without GT: hazy/02_outdoor_hazy.jpg" in problems
    assert "GT without hazy: GT/05_outdoor_GT.jpg" in problems
    assert "size mismatch" in problems and "07_outdoor_hazy.jpg is 8x8" in problems and "07_outdoor_GT.jpg is 12x12" in problems
    assert "unreadable:" in problems and "09_outdoor_hazy.jpg" in problems
    assert "unrecognised name" in problems and "hazy/IMG_0001.jpg" in problems


def test_quick_and_split_options(tmp_path, capsys):
    root = build_benchmark(tmp_path, "i-haze")
    (root / "hazy" / "33_indoor_hazy.jpg").write_bytes(b"broken")
    code, out = run_check(capsys, root, "--split", "train")
    assert code == 0 and "read 60 files of the 30 pairs in split 'train'" in out  # scene 33 is test
    code, out = run_check(capsys, root, "--quick")
    assert code == 0 and "not read (--quick)" in out
    code, out = run_check(capsys, root, "--split", "test")
    assert code == 1 and "33_indoor_hazy.jpg" in out


def test_split_the_benchmark_does_not_have_is_a_problem(tmp_path, capsys):
    code, out = run_check(capsys, build_benchmark(tmp_path, "its"), "--split", "test", "--quick")
    assert code == 1 and "no 'test' pairs" in out
    code, out = run_check(capsys, build_benchmark(tmp_path, "paired-clear"), "--split", "test")
    assert code == 0 and "note" in out and "no split information" in out and "(no split: 4)" in out


def test_split_folders_get_one_section_each(tmp_path, capsys):
    root = build_benchmark(tmp_path, "dehazeformer")
    write_rgb(root / "val" / "hazy" / "1.png", scene_colour(1))
    code, out = run_check(capsys, root)
    assert code == 0
    assert "[test/]" in out and "[train/]" in out
    assert "sots-indoor" in out and "paired" in out
    assert "not scanned (only train/ and test/ are splits): val/" in out


def test_half_a_benchmark_or_a_folder_of_benchmarks_is_pointed_elsewhere(tmp_path, capsys):
    build_benchmark(tmp_path / "all", "sots-indoor")
    build_benchmark(tmp_path / "all", "i-haze")
    code, out = run_check(capsys, tmp_path / "all")
    assert code == 2 and "check each one on its own: I-HAZE/ (i-haze, 35 pairs), indoor/ (sots-indoor, 6 pairs)" in out
    code, out = run_check(capsys, tmp_path / "all" / "indoor" / "hazy")
    assert code == 2 and "hazy/ is one half of a paired benchmark" in out


def test_forced_layout(tmp_path, capsys):
    root = build_benchmark(tmp_path, "nh-haze-2021")
    code, out = run_check(capsys, root, "--layout", "dense-haze", "--quick")
    assert code == 0 and "dense-haze" in out and "(forced)" in out and "(the complete benchmark has 55)" in out
    code, out = run_check(capsys, root, "--layout", "sots-indoor", "--quick")
    assert code == 1 and "unrecognised name" in out
    code, out = run_check(capsys, root, "--layout", "paired")
    assert code == 2 and "does not fit layout 'paired'" in out and "needs hazy/ and GT/ sub-folders" in out
    with pytest.raises(SystemExit):
        main(["data", "check", str(root), "--layout", "no-such-layout"])


def test_clear_photo_folder_is_not_a_paired_benchmark(tmp_path, capsys):
    for k in range(3):
        write_rgb(tmp_path / "photos" / "train" / f"{k}.jpg", scene_colour(k))
    (tmp_path / "photos" / "train" / "bad.jpg").write_bytes(b"")
    code, out = run_check(capsys, tmp_path / "photos")
    assert code == 2
    assert "not a paired benchmark" in out and "found 4 images" in out
    assert "3 readable, 1 unreadable" in out and "bad.jpg" in out
    assert "SyntheticHazeDataset" in out
    assert main(["data", "check", str(tmp_path / "missing")]) == 2
    assert "cliphaze data check: error:" in capsys.readouterr().err
    assert main(["data", "check", str(tmp_path / "photos" / "train" / "0.jpg")]) == 2
    assert "0.jpg: is a file" in capsys.readouterr().err


def test_symlinked_sub_folder_is_read(tmp_path, capsys):
    """A folder assembled from links counts every image behind them (a link loop is read once)."""
    for k in range(2):
        write_rgb(tmp_path / "real" / f"{k}.jpg", scene_colour(k))
    write_rgb(tmp_path / "photos" / "own.jpg", scene_colour(2))
    (tmp_path / "photos" / "linked").symlink_to(tmp_path / "real", target_is_directory=True)
    (tmp_path / "real" / "loop").symlink_to(tmp_path / "photos", target_is_directory=True)
    code, out = run_check(capsys, tmp_path / "photos")
    assert code == 2 and "found 3 images" in out


def test_real_sots_indoor_dev(shared_data, capsys):
    code, out = run_check(capsys, shared_data / "sots-indoor-dev", "--quick")
    assert code == 0
    assert "sots-indoor" in out and "75 (test: 75)" in out and "75 hazy" in out and "25 GT" in out
