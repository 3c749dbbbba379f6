"""Bad input, as a new user would give it, to every sub-command: never a traceback, never a lost file.

The battery behind these tests (and its before/after table) is described in
``cliphaze/cli_types.py`` (exit codes) and ``cliphaze/cli_batch.py`` (the batch rules). Each test
runs the real command line (:func:`cliphaze.cli.main`) on small generated files; the checks that
need a fresh interpreter (no torch, peak memory) run ``python -m cliphaze`` in a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cliphaze.cli import SUBCOMMANDS, main
from cliphaze.io import read_image, save_image

REPO = Path(__file__).resolve().parents[1]


def _rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    """One file per kind of image a user may hand over (odd but valid, or broken)."""
    import png

    d = tmp_path_factory.mktemp("images")
    files = {}

    def put(name, writer):
        files[name] = d / name
        writer(files[name])

    put("gray.png", lambda p: Image.fromarray(_rgb(20, 24)).convert("L").save(p))
    put("rgba.png", lambda p: Image.fromarray(_rgb(20, 24)).convert("RGBA").save(p))
    put("palette.png", lambda p: Image.fromarray(_rgb(20, 24)).convert("P").save(p))
    put("sixteen.png", lambda p: png.Writer(24, 20, greyscale=False, bitdepth=16).write(
        open(p, "wb"), (np.random.default_rng(1).integers(0, 65536, (20, 72))).tolist()))
    put("one.png", lambda p: Image.fromarray(_rgb(1, 1)).save(p))
    put("three_by_five.png", lambda p: Image.fromarray(_rgb(3, 5)).save(p))
    put("odd.jpg", lambda p: Image.fromarray(_rgb(37, 53)).save(p))
    put("wide.png", lambda p: Image.fromarray(_rgb(1, 700)).save(p))
    put("tall.png", lambda p: Image.fromarray(_rgb(700, 1)).save(p))
    put("two_rows.png", lambda p: Image.fromarray(_rgb(2, 500)).save(p))
    put("corrupt.png", lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10))
    put("notimage.jpg", lambda p: p.write_text("hello"))
    put("transparent.png", lambda p: Image.fromarray(
        np.dstack([_rgb(20, 24), np.full((20, 24), 100, np.uint8)]), "RGBA").save(p))
    put("photo.foo", lambda p: Image.fromarray(_rgb(20, 24)).save(p, format="PNG"))
    put("animated.webp", lambda p: Image.fromarray(_rgb(20, 24)).save(
        p, save_all=True, append_images=[Image.fromarray(_rgb(20, 24, 2))], lossless=True))
    return files


VALID = ["gray.png", "rgba.png", "palette.png", "sixteen.png", "one.png", "three_by_five.png", "odd.jpg",
         "wide.png", "tall.png", "two_rows.png"]
BROKEN = ["corrupt.png", "notimage.jpg", "transparent.png", "photo.foo"]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    """A small guided checkpoint (untrained weights: the command line is what is tested)."""
    from cliphaze.model import TEST_GUIDE, build_model, guide_fingerprint, save_checkpoint

    torch.manual_seed(0)
    model = build_model("tiny", guide=TEST_GUIDE)
    path = tmp_path_factory.mktemp("model") / "model.pt"
    save_checkpoint({"network": model.config.to_dict(), "state_dict": model.net.state_dict(),
                     "guide": guide_fingerprint(TEST_GUIDE)}, path)
    return path


def _command(cmd: str, inputs: list, out: Path, model_file: Path) -> list[str]:
    extra = {"dehaze": ["--model", str(model_file)], "density": ["--prompts", "hand"], "haze": []}[cmd]
    return [cmd, *map(str, inputs), "-o", str(out), *extra]


def _outputs(cmd: str, out: Path, name: str) -> Path:
    stem = Path(name).stem
    return {"dehaze": out / name, "density": out / f"{stem}_density.png", "haze": out / "hazy" / f"{stem}.png"}[cmd]


BATCH_COMMANDS = ["dehaze", "density", "haze"]


@pytest.mark.parametrize("cmd", BATCH_COMMANDS)
def test_odd_but_valid_images_come_out_the_same_size(cmd, images, model_file, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(_command(cmd, [images[n] for n in VALID], out, model_file))
    err = capsys.readouterr().err
    assert rc == 0, err
    for name in VALID:
        h, w = read_image(images[name]).shape[-2:]
        assert read_image(_outputs(cmd, out, name)).shape[-2:] == (h, w), name


@pytest.mark.parametrize("cmd", BATCH_COMMANDS)
def test_a_batch_finishes_and_lists_what_it_skipped(cmd, images, model_file, tmp_path, capsys):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for name in ["gray.png", "odd.jpg", "animated.webp", *BROKEN]:
        (folder / name).write_bytes(images[name].read_bytes())
    out = tmp_path / "out"
    rc = main(_command(cmd, [folder, images["photo.foo"], tmp_path / "missing.png"], out, model_file))
    captured = capsys.readouterr()
    assert rc == 1 and "Traceback" not in captured.err
    summary = captured.err[captured.err.index("skipped"):]
    for name in ["corrupt.png", "notimage.jpg", "transparent.png", "photo.foo", "missing.png"]:
        assert name in summary, name
    assert "animated" in captured.err and "only the first frame" in captured.err
    assert "mixed: 6 image(s); 1 other file(s) ignored" in captured.out  # photo.foo inside the folder
    for name in ["gray.png", "odd.jpg", "animated.webp"]:
        assert _outputs(cmd, out, name).is_file(), name


@pytest.mark.parametrize("cmd", BATCH_COMMANDS)
def test_nothing_to_do_is_exit_2_with_one_error_line(cmd, model_file, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    for inputs in ([tmp_path / "missing.png"], [tmp_path / "empty"], [str(tmp_path / "*.png")]):
        assert main(_command(cmd, inputs, tmp_path / "out", model_file)) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"cliphaze {cmd}: error:") and "Traceback" not in err


@pytest.mark.parametrize("cmd", BATCH_COMMANDS)
def test_output_may_not_hold_an_input(cmd, images, model_file, tmp_path, capsys):
    src = tmp_path / "photos" / "x.png"
    src.parent.mkdir()
    src.write_bytes(images["odd.jpg"].read_bytes())
    before = src.read_bytes()
    for out in (src.parent, src, tmp_path / "photos" / ".." / "photos"):
        assert main(_command(cmd, [src.parent], out, model_file)) == 2
        err = capsys.readouterr().err
        assert f"cliphaze {cmd}: error:" in err and "x.png" in err
    if cmd == "haze":  # OUT/GT would be the input folder
        assert main(_command(cmd, [src.parent], tmp_path, model_file)) == 0  # OUT/hazy, OUT/GT are new
        capsys.readouterr()
        gt = tmp_path / "set" / "GT"
        gt.mkdir(parents=True)
        (gt / "y.png").write_bytes(before)
        assert main(_command(cmd, [gt], tmp_path / "set", model_file)) == 2
    assert src.read_bytes() == before and sorted(p.name for p in src.parent.iterdir()) == ["x.png"]


@pytest.mark.parametrize("cmd", BATCH_COMMANDS)
def test_unwritable_output_is_a_user_error(cmd, images, model_file, tmp_path, capsys):
    assert main(_command(cmd, [images["gray.png"]], images["gray.png"].parent / "gray.png" / "sub", model_file)) == 2
    err = capsys.readouterr().err
    assert "cannot create the output folder" in err or "is a file" in err
    assert "Traceback" not in err


BAD_FLAGS = [
    ["dehaze", "x.png", "-o", "o", "--overlap", "-8"],
    ["dehaze", "x.png", "-o", "o", "--tile", "-5"],
    ["dehaze", "x.png", "-o", "o", "--tile", "abc"],
    ["dehaze", "x.png", "-o", "o", "--threads", "0"],
    ["density", "x.png", "--threads", "-1"],
    ["density", "x.png", "--method", "pixels"],
    ["eval", "--data", "d", "--max-images", "0"],
    ["eval", "--data", "d", "--threads", "0"],
    ["haze", "x.png", "-o", "o", "--beta", "-1"],
    ["haze", "x.png", "-o", "o", "--beta", "nan"],
    ["haze", "x.png", "-o", "o", "--airlight", "2"],
    ["haze", "x.png", "-o", "o", "--patchiness", "-0.1"],
    ["haze", "x.png", "-o", "o", "--seed", "-1"],
    ["clip", "train-small", "--data", "d", "--steps", "0"],
    ["clip", "train-small", "--data", "d", "--crops", "-1"],
    ["clip", "train-small", "--data", "d", "--lr", "0"],
    ["clip", "learn-prompts", "--data", "d", "--n-ctx", "0"],
    ["clip", "learn-prompts", "--data", "d", "--hazy-above", "1.5"],
    ["clip", "evaluate", "--limit", "0"],
    ["clip", "evaluate", "--resolution", "0"],
    ["clip", "evaluate", "--threshold", "2"],
    ["train", "--steps", "0"],
    ["train", "--batch-size", "0"],
    ["train", "--crop", "-64"],
    ["train", "--threads", "0"],
    ["ablate", "--steps", "0", "--out", "a.json"],
    ["ablate", "--seeds", "a,b", "--out", "a.json"],
    ["ablate", "--threads", "0", "--out", "a.json"],
]


@pytest.mark.parametrize("argv", BAD_FLAGS, ids=lambda a: " ".join(a))
def test_bad_numeric_flags_stop_in_the_parser(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"cliphaze {argv[0]}" in err and "error: argument" in err


def test_overlap_must_fit_the_tile(images, model_file, tmp_path, capsys):
    rc = main(["dehaze", str(images["odd.jpg"]), "-o", str(tmp_path / "o"), "--model", str(model_file),
               "--tile", "16", "--overlap", "16"])
    assert rc == 2 and "--overlap 16 must be smaller than --tile 16" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


# ----- checkpoints never execute code -----------------------------------------------------------

class _Payload:
    """Unpickling this would create ``marker`` (what a crafted checkpoint would do)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.fixture()
def malicious(tmp_path) -> tuple[Path, Path]:
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pt"
    torch.save({"format": "cliphaze-model-v1", "network": _Payload(marker), "state_dict": {}}, path)
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"format": "cliphaze-model-v1", "network": {}, "state_dict": {}, "train": _Payload(marker)},
               run / "last.pt")
    return path, marker


def test_the_loader_refuses_a_malicious_pickle(malicious):
    from cliphaze.model import CheckpointError, load_checkpoint

    path, marker = malicious
    with pytest.raises(CheckpointError, match=r"evil\.pt: refused.*could run code"):
        load_checkpoint(path, map_location="cpu")
    assert not marker.exists()


@pytest.mark.parametrize("argv", [
    ["dehaze", "{img}", "-o", "{out}", "--model", "{evil}"],
    ["eval", "--data", str(REPO / "data" / "samples"), "--methods", "hazy,{evil}", "--max-images", "1"],
    ["density", "{img}", "-o", "{out}", "--model", "{evil}"],
    ["density", "{img}", "-o", "{out}", "--prompts", "{evil}"],
    ["train", "--data", "{photos}", "--out", "{run}", "--resume", "--steps", "2", "--no-progress"],
], ids=["dehaze --model", "eval --methods", "density --model", "density --prompts", "train --resume"])
def test_every_command_refuses_a_malicious_pickle(argv, malicious, images, tmp_path, capsys):
    path, marker = malicious
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("odd.jpg", "gray.png", "palette.png"):
        (photos / name).write_bytes(images[name].read_bytes())
    names = {"img": images["odd.jpg"], "out": tmp_path / "out", "evil": path, "run": path.parent / "run",
             "photos": photos}
    rc = main([a.format(**names) for a in argv])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "refused" in err and ("evil.pt" in err or "last.pt" in err) and "Traceback" not in err
    assert not marker.exists()


def test_shipped_files_load_as_plain_data():
    from cliphaze.paths import ASSETS_DIR

    for p in sorted(ASSETS_DIR.glob("*.pt")) + sorted(ASSETS_DIR.glob("*.pth")):
        torch.load(p, map_location="cpu", weights_only=True)


def test_a_model_that_outputs_nan_is_an_error(model_file, images, tmp_path, capsys):
    from cliphaze.model import load_checkpoint, save_checkpoint

    payload = load_checkpoint(model_file)
    state = dict(payload["state_dict"])
    name = next(k for k in state if k.endswith("weight"))
    state[name] = torch.full_like(state[name], float("nan"))
    broken = save_checkpoint({**{k: v for k, v in payload.items() if k != "format"}, "state_dict": state},
                             tmp_path / "nan.pt")
    out = tmp_path / "out"
    rc = main(["dehaze", str(images["odd.jpg"]), "-o", str(out), "--model", str(broken)])
    err = capsys.readouterr().err
    assert rc == 1 and "NaN or infinite" in err and "odd.jpg" in err
    assert list(out.iterdir()) == []


# ----- the other commands ---------------------------------------------------------------------

def test_eval_user_errors(images, tmp_path, capsys):
    samples = REPO / "data" / "samples"
    assert main(["eval", "--data", str(images["gray.png"])]) == 2
    assert "is a file" in capsys.readouterr().err
    target = samples / "hazy" / "coffee.png"
    before = target.read_bytes()
    assert main(["eval", "--data", str(samples), "--methods", "hazy", "--csv", str(target)]) == 2
    assert "would replace it" in capsys.readouterr().err and target.read_bytes() == before
    assert main(["eval", "--data", str(samples), "--methods", "hazy", "--max-images", "1",
                 "--csv", str(images["gray.png"] / "x.csv")]) == 2
    assert "cannot write" in capsys.readouterr().err


def test_haze_keeps_both_pairs_of_a_name_clash(images, tmp_path, capsys):
    folder = tmp_path / "clash"
    folder.mkdir()
    (folder / "x.png").write_bytes(images["gray.png"].read_bytes())
    (folder / "x.jpg").write_bytes(images["odd.jpg"].read_bytes())
    assert main(["haze", str(folder), "-o", str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in (tmp_path / "out" / "hazy").iterdir()) == ["x.png", "x_2.png"]
    assert "written as x_2.png" in capsys.readouterr().out


def test_sub_folders_and_links_are_named_not_skipped_silently(images, model_file, tmp_path, capsys):
    folder = tmp_path / "photos"
    (folder / "nested").mkdir(parents=True)
    (folder / "a.png").write_bytes(images["gray.png"].read_bytes())
    (folder / "linked").symlink_to(images["gray.png"].parent, target_is_directory=True)
    assert main(["dehaze", str(folder), "-o", str(tmp_path / "out"), "--model", str(model_file)]) == 0
    out = capsys.readouterr().out
    assert "photos: 1 image(s)" in out and "sub-folders not read" in out
    assert "linked/ (symbolic link)" in out and "nested/" in out


def test_ablate_is_a_subcommand(capsys):
    assert "ablate" in SUBCOMMANDS
    with pytest.raises(SystemExit) as exit_info:
        main(["ablate", "--help"])
    assert exit_info.value.code == 0 and "usage: cliphaze ablate" in capsys.readouterr().out


# ----- no torch needed to ask for help ----------------------------------------------------------

HELP_COMMANDS = [["--help"], ["dehaze", "--help"], ["density", "--help"], ["haze", "--help"], ["eval", "--help"],
                 ["data", "check", "--help"], ["clip", "--help"], ["clip", "train-small", "--help"],
                 ["clip", "learn-prompts", "--help"], ["clip", "evaluate", "--help"], ["train", "--help"],
                 ["ablate", "--help"], ["env", "--help"]]


@pytest.fixture(scope="module")
def no_torch(tmp_path_factory) -> dict:
    """Environment in which ``import torch`` fails (a shadowing package first on the path)."""
    d = tmp_path_factory.mktemp("no_torch")
    (d / "torch").mkdir()
    (d / "torch" / "__init__.py").write_text("raise ImportError('torch is hidden for this test')\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(d), str(REPO)])}


def test_every_command_is_listed_in_help_and_help_is_plain_text():
    out = subprocess.run([sys.executable, "-m", "cliphaze", "--help"], capture_output=True, text=True, timeout=120)
    assert set(SUBCOMMANDS) <= set(out.stdout.split()) | {c + "," for c in SUBCOMMANDS}
    for argv in HELP_COMMANDS:
        text = subprocess.run([sys.executable, "-m", "cliphaze", *argv], capture_output=True, text=True,
                              timeout=120).stdout
        assert "``" not in text and ":func:" not in text and ":mod:" not in text, argv


def _flags(parser, name=""):
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _flags(sub, f"{name} {sub_name}".strip())
        elif action.option_strings and not isinstance(action, argparse._HelpAction):
            yield name, action


def test_every_flag_says_what_it_does_and_its_default():
    from cliphaze.cli import build_parser

    missing = [f"{cmd} {action.option_strings[-1]}" for cmd, action in _flags(build_parser())
               if action.help != "==SUPPRESS=="
               and not (action.help and ("default" in action.help or "required" in action.help))]
    assert not missing, missing


@pytest.mark.parametrize("argv", HELP_COMMANDS, ids=lambda a: " ".join(a))
def test_help_works_without_torch(argv, no_torch):
    out = subprocess.run([sys.executable, "-m", "cliphaze", *argv], capture_output=True, text=True,
                         env=no_torch, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: cliphaze") and "Traceback" not in out.stderr


def test_env_reports_a_missing_torch(no_torch):
    out = subprocess.run([sys.executable, "-m", "cliphaze", "env"], capture_output=True, text=True,
                         env=no_torch, timeout=120)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "[FAIL] torch" in out.stdout and "torch is hidden for this test" in out.stdout


def test_env_lists_the_declared_dependencies():
    import importlib.metadata
    import re

    from cliphaze.env_check import declared_dependencies

    required, extras = declared_dependencies()
    declared = importlib.metadata.requires("cliphaze")
    assert set(required) == {re.match(r"[\w.-]+", r).group(0) for r in declared if "extra ==" not in r}
    assert "dev" in extras and "notebooks" in extras


# ----- bounded memory for any shape -------------------------------------------------------------

def test_clip_token_grid_is_capped():
    from cliphaze.clip import load_clip

    clip = load_clip()
    for h, w in [(1, 4000), (4000, 1), (2, 3000), (64, 64), (480, 640)]:
        gh, gw = clip.token_grid(h, w)
        assert 1 <= gh * gw <= clip.max_tokens, (h, w, gh, gw)
    assert clip.token_grid(64, 64) == tuple(clip.model.visual.grid_size)  # ordinary images: unchanged


@pytest.mark.slow
@pytest.mark.parametrize("cmd", ["density", "dehaze"])
def test_extreme_aspect_ratio_runs_in_bounded_memory(cmd, tmp_path):
    """A 1x4000 image asked for about 1 TB (density) and used 5 GB (dehaze) before the token cap."""
    Image.fromarray(_rgb(1, 4000)).save(tmp_path / "line.png")
    code = textwrap.dedent(f"""
        import resource, sys
        from cliphaze.cli import main
        rc = main([{cmd!r}, {str(tmp_path / 'line.png')!r}, "-o", {str(tmp_path / 'out')!r}])
        print("PEAK_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        sys.exit(rc)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    peak_gb = int(out.stdout.split("PEAK_KB")[1].split()[0]) / 1e6
    assert peak_gb < 2.0, f"peak resident memory {peak_gb:.2f} GB"


def test_save_image_is_atomic_when_interrupted(tmp_path, monkeypatch):
    def interrupted_save(self, fp, *args, **kwargs):
        Path(fp).write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        save_image(torch.rand(3, 8, 8), tmp_path / "x.png")
    assert list(tmp_path.iterdir()) == []


def test_side_outputs_never_replace_another_output(images, model_file, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.png").write_bytes(images["gray.png"].read_bytes())
    (folder / "a_compare.png").write_bytes(images["odd.jpg"].read_bytes())
    out = tmp_path / "out"
    assert main(["dehaze", str(folder), "-o", str(out), "--model", str(model_file), "--side-by-side"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "a_compare.png", "a_compare_2.png",
                                                    "a_compare_2_compare.png"]
    assert read_image(out / "a_compare_2.png").shape[-2:] == (37, 53)  # the second input, dehazed
    assert read_image(out / "a_compare.png").shape[-2:] == (20, 48)  # a.png beside its result


@pytest.mark.parametrize("argv", [
    ["clip", "train-small", "--data", "{missing}", "--steps", "1", "-o", "{out}"],
    ["clip", "learn-prompts", "--data", "{missing}", "--steps", "1", "-o", "{out}"],
    ["clip", "evaluate", "--test", "{missing}", "--limit", "1"],
    ["clip", "learn-prompts", "--data", "{photos}", "--model", "{evil}", "--steps", "1", "-o", "{out}"],
], ids=["train-small missing data", "learn-prompts missing data", "evaluate missing test", "learn-prompts evil"])
def test_clip_commands_report_file_errors_in_one_line(argv, malicious, images, tmp_path, capsys):
    path, marker = malicious
    names = {"missing": tmp_path / "nothere", "out": tmp_path / "x.pt", "evil": path,
             "photos": images["odd.jpg"].parent}
    assert main([a.format(**names) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"cliphaze clip {argv[1]}: error:") and "Traceback" not in err
    assert ("nothere" in err or "evil.pt" in err) and not marker.exists()
