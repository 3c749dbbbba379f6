"""Training: reproducibility, exact resume, divergence handling, config and CLI (lesson 05)."""

from __future__ import annotations

import json

import pytest
import torch

from cliphaze.train import TrainConfig, TrainingDiverged, batch_indices, lr_factor, train


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    """Six small clear photos from scikit-image (no shared data needed)."""
    from skimage import data

    from cliphaze.io import save_image

    folder = tmp_path_factory.mktemp("clear")
    for name in ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "cat"):
        img = torch.from_numpy(getattr(data, name)()).permute(2, 0, 1).float() / 255
        img = torch.nn.functional.interpolate(img[None], size=(48, 56), mode="area")[0]
        save_image(img, folder / f"{name}.png")
    return folder


def _config(folder, out, **kw) -> TrainConfig:
    base = dict(preset="tiny", guide="tiny-test-clip", data=[str(folder)], val_data=[str(folder)], val_count=2,
                val_crop=32, crop=32, batch_size=2, steps=4, warmup_steps=2, val_every=2, log_every=1, out=str(out))
    base.update(kw)
    return TrainConfig(**base)


def _params(model) -> dict:
    return {k: v.clone() for k, v in model.net.state_dict().items()}


def test_lr_schedule():
    f = [lr_factor(s, warmup=10, total=110, min_ratio=0.1) for s in range(110)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert f[10] == pytest.approx(1.0) and f[-1] == pytest.approx(0.1, abs=1e-3)
    assert all(a >= b for a, b in zip(f[10:], f[11:]))  # cosine decays monotonically


def test_batch_order_is_a_function_of_the_step():
    a = [batch_indices(s, 3, 7, seed=1) for s in range(6)]
    b = [batch_indices(s, 3, 7, seed=1) for s in range(6)]
    assert a == b
    epoch0 = [i for batch in a for e, i in batch if e == 0]
    assert sorted(epoch0) == list(range(7))  # each epoch is a permutation
    assert a != [batch_indices(s, 3, 7, seed=2) for s in range(6)]


def test_seeded_runs_repeat(photo_folder, tmp_path):
    r1 = train(_config(photo_folder, tmp_path / "a"), progress=False, log=lambda m: None)
    r2 = train(_config(photo_folder, tmp_path / "b"), progress=False, log=lambda m: None)
    assert r1["history"]["loss"] == r2["history"]["loss"]
    assert len(r1["history"]["loss"]) == 4
    for k, v in _params(r1["model"]).items():
        assert torch.equal(v, r2["model"].net.state_dict()[k]), k


def test_resume_is_exact(photo_folder, tmp_path):
    straight = train(_config(photo_folder, tmp_path / "straight"), progress=False, log=lambda m: None)
    first = train(_config(photo_folder, tmp_path / "split"), stop_at=2, progress=False, log=lambda m: None)
    assert first["step"] == 2 and (tmp_path / "split" / "last.pt").is_file()
    resumed = train(_config(photo_folder, tmp_path / "split"), resume=True, progress=False, log=lambda m: None)
    assert resumed["step"] == 4
    assert resumed["history"]["loss"] == straight["history"]["loss"]
    for k, v in _params(straight["model"]).items():
        assert torch.equal(v, resumed["model"].net.state_dict()[k]), f"{k} differs after resume"


def test_resume_refuses_a_different_config(photo_folder, tmp_path):
    train(_config(photo_folder, tmp_path / "r"), stop_at=2, progress=False, log=lambda m: None)
    with pytest.raises(ValueError, match="differs in .*lr"):
        train(_config(photo_folder, tmp_path / "r", lr=5e-3), resume=True, progress=False, log=lambda m: None)


def test_resume_refuses_a_changed_guide(photo_folder, tmp_path):
    from cliphaze.model import load_checkpoint, save_checkpoint

    train(_config(photo_folder, tmp_path / "g"), stop_at=2, progress=False, log=lambda m: None)
    last = tmp_path / "g" / "last.pt"
    payload = load_checkpoint(last)
    payload["guide"] = {"name": "tiny-test-clip", "files": {"weights.pt": "0" * 64}}
    save_checkpoint(payload, last)
    with pytest.raises(ValueError, match="guide changed"):
        train(_config(photo_folder, tmp_path / "g"), resume=True, progress=False, log=lambda m: None)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(photo_folder, tmp_path):
    from cliphaze.data import SyntheticHazeDataset
    from cliphaze.model import load_checkpoint

    cfg = _config(photo_folder, tmp_path / "nan", steps=6)
    good = SyntheticHazeDataset(photo_folder, crop=32, seed=0)

    class PoisonAfter:
        """The real dataset, except that targets after step 2 contain a NaN pixel (a corrupt ground truth)."""

        def __init__(self):
            self.calls = 0

        def __len__(self):
            return len(good)

        def set_epoch(self, e):
            good.set_epoch(e)

        def __getitem__(self, i):
            self.calls += 1
            item = dict(good[i])
            if self.calls > 2 * cfg.batch_size:
                item["clear"] = item["clear"].clone()
                item["clear"][0, 0, 0] = float("nan")
            return item

    val = [(good[0]["hazy"], good[0]["clear"])]
    with pytest.raises(TrainingDiverged, match=r"step 3.*last\.pt at step 2"):
        train(cfg, datasets=(PoisonAfter(), val), progress=False, log=lambda m: None)
    ckpt = load_checkpoint(tmp_path / "nan" / "last.pt")
    assert ckpt["train"]["step"] == 2
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())


def test_checkpoints_and_records(photo_folder, tmp_path):
    from cliphaze.model import load_model

    result = train(_config(photo_folder, tmp_path / "c"), progress=False, log=lambda m: None)
    run = tmp_path / "c"
    assert {"last.pt", "best.pt", "config.json", "history.json"} <= {p.name for p in run.iterdir()}
    history = json.loads((run / "history.json").read_text())
    assert [v["step"] for v in history["val"]] == [2, 4]
    assert {"loss", "psnr", "lr", "images_per_s"} <= set(history["records"][0])
    model = load_model(run / "best.pt")
    assert model.meta["train_config"]["crop"] == 32
    assert result["best_psnr"] == max(v["val_psnr"] for v in history["val"])


def test_config_file_and_flags(photo_folder, tmp_path):
    from cliphaze.cli import main

    cfg_file = tmp_path / "cfg.json"
    cfg = _config(photo_folder, tmp_path / "cli", steps=2, val_every=2).to_dict()
    cfg["lr"] = 0.5  # overridden by the flag below
    cfg_file.write_text(json.dumps(cfg))
    rc = main(["train", "--config", str(cfg_file), "--lr", "2e-3", "--no-progress"])
    assert rc == 0
    saved = json.loads((tmp_path / "cli" / "config.json").read_text())
    assert saved["lr"] == 2e-3 and saved["steps"] == 2
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"lr": 1e-3, "colour": "blue"}))
    assert main(["train", "--config", str(bad)]) == 2


def test_bad_config_values():
    with pytest.raises(ValueError, match="data_kind"):
        TrainConfig(data_kind="video")
    with pytest.raises(ValueError, match="loss weights"):
        TrainConfig(l1_weight=0, ssim_weight=0, freq_weight=0)


@pytest.mark.slow
def test_stage1_learns_prompts_and_the_model_keeps_them(photo_folder, tmp_path):
    """``prompts="learn"`` runs stage 1, saves prompts.pt, and the checkpoint reloads with that pair."""
    from cliphaze.model import load_model

    cfg = _config(photo_folder, tmp_path / "s1", prompts="learn", steps=2, val_every=2)
    train(cfg, progress=False, log=lambda m: None)
    assert (tmp_path / "s1" / "prompts.pt").is_file()
    model = load_model(tmp_path / "s1" / "best.pt")
    assert model.guide_spec.endswith("prompts.pt")
    assert "learned prompts" in model.guide.describe()


# ---------------------------------------------------------------------------------- data loading
def test_step_sampler_replays_batch_indices_from_any_step_and_splits_over_ranks():
    from cliphaze.train import StepBatchSampler

    full = list(StepBatchSampler(7, 4, seed=3, start=0, end=6))
    assert full == [batch_indices(s, 4, 7, seed=3) for s in range(6)]
    assert list(StepBatchSampler(7, 4, seed=3, start=4, end=6)) == full[4:]  # resume starts mid-run
    shares = [list(StepBatchSampler(7, 4, seed=3, start=0, end=6, rank=r, world_size=2)) for r in range(2)]
    assert [a + b for a, b in zip(*shares)] == full  # rank 0 then rank 1 = the global batch
    with pytest.raises(ValueError, match="split evenly"):
        StepBatchSampler(7, 3, seed=3, start=0, end=1, world_size=2)


@pytest.mark.parametrize("workers", [0, 2])
def test_loader_gives_the_seeded_samples_in_any_worker(photo_folder, workers):
    """DataLoader batches equal items read by hand with set_epoch (per-item seeds (seed, epoch, index))."""
    from cliphaze.data import SyntheticHazeDataset
    from cliphaze.train import make_loader

    ds = SyntheticHazeDataset(photo_folder, crop=16, seed=5)
    cfg = TrainConfig(crop=16, batch_size=4, seed=5, num_workers=workers)
    batches = list(make_loader(ds, cfg, start=1, end=4))  # 4 items/step over 6 images: crosses an epoch
    assert len(batches) == 3
    ref = SyntheticHazeDataset(photo_folder, crop=16, seed=5)
    for step, (hazy, clear) in zip(range(1, 4), batches):
        expected_hazy, expected_clear = [], []
        for epoch, index in batch_indices(step, 4, len(ref), seed=5):
            ref.set_epoch(epoch)
            expected_hazy.append(ref[index]["hazy"])
            expected_clear.append(ref[index]["clear"])
        assert torch.equal(hazy, torch.stack(expected_hazy)) and torch.equal(clear, torch.stack(expected_clear))


def test_weight_decay_groups_exempt_marked_parameters():
    from cliphaze.model import CLIPHazeNet
    from cliphaze.train import weight_decay_groups

    net = CLIPHazeNet("tiny")
    decay, no_decay = weight_decay_groups(net, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    exempt = {id(p) for p in no_decay["params"]}
    names = {n: id(p) for n, p in net.named_parameters()}
    marked = [n for n in names if n.endswith(("A_logs", "Ds"))]
    assert marked and all(names[n] in exempt for n in marked)  # A_logs is 2-D, yet exempt
    assert all(p.ndim > 1 and not getattr(p, "_no_weight_decay", False) for p in decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(names)


# ---------------------------------------------------------------------------------- what is trained
def test_train_accepts_a_network_config_or_a_model(photo_folder, tmp_path):
    from cliphaze.model import build_model, get_preset

    net_cfg = get_preset("tiny", aggregation="sum", directions=2)
    r = train(_config(photo_folder, tmp_path / "cfg", steps=2, aggregation="sum"), network=net_cfg, progress=False,
              log=lambda m: None)
    assert r["model"].net.config == net_cfg and r["model"].guide is None
    torch.manual_seed(0)
    model = build_model(net_cfg, guide=None)
    before = _params(model)
    r2 = train(_config(photo_folder, tmp_path / "model", steps=2, aggregation="sum"), network=model, progress=False,
               log=lambda m: None)
    assert r2["model"] is model
    assert any(not torch.equal(before[k], v) for k, v in model.net.state_dict().items())  # it trained
    with pytest.raises(TypeError, match="NetworkConfig or a CLIPHaze"):
        train(_config(photo_folder, tmp_path / "bad"), network="tiny", progress=False, log=lambda m: None)


# ---------------------------------------------------------------------------------- safety
def test_checkpoints_are_plain_data(photo_folder, tmp_path):
    train(_config(photo_folder, tmp_path / "plain", steps=2), progress=False, log=lambda m: None)
    for name in ("last.pt", "best.pt"):
        payload = torch.load(tmp_path / "plain" / name, weights_only=True)  # raises on any non-plain object
        assert payload["meta"]["train_config"]["crop"] == 32
    last = torch.load(tmp_path / "plain" / "last.pt", weights_only=True)
    assert [g["weight_decay"] for g in last["train"]["optimizer"]["param_groups"]] == [1e-4, 0.0]


def test_an_existing_run_is_refused_without_resume_or_overwrite(photo_folder, tmp_path):
    from cliphaze.train import RunFolderInUse

    out = tmp_path / "run"
    train(_config(photo_folder, out, steps=2), progress=False, log=lambda m: None)
    stamp = (out / "last.pt").stat().st_mtime_ns, (out / "best.pt").read_bytes()
    with pytest.raises(RunFolderInUse, match=r"already holds a training run \(last\.pt, best\.pt, history\.json\)"):
        train(_config(photo_folder, out, steps=2), progress=False, log=lambda m: None)
    assert ((out / "last.pt").stat().st_mtime_ns, (out / "best.pt").read_bytes()) == stamp  # untouched
    with pytest.raises(ValueError, match="exclude each other"):
        train(_config(photo_folder, out, steps=2), resume=True, overwrite=True, progress=False, log=lambda m: None)
    (out / "last.pt").unlink()
    with pytest.raises(RunFolderInUse, match="no last.pt to resume from"):
        train(_config(photo_folder, out, steps=2), resume=True, progress=False, log=lambda m: None)
    messages = []
    r = train(_config(photo_folder, out, steps=2, seed=1), overwrite=True, progress=False, log=messages.append)
    assert any("--overwrite: removed" in m for m in messages) and r["step"] == 2
    assert json.loads((out / "config.json").read_text())["seed"] == 1


def test_cli_refuses_an_existing_run_in_the_one_error_style(photo_folder, tmp_path, capsys):
    from cliphaze.cli import main

    out = tmp_path / "cli_run"
    args = ["train", "--preset", "tiny", "--guide", "tiny-test-clip", "--data", str(photo_folder), "--crop", "32",
            "--batch-size", "2", "--steps", "2", "--val-every", "2", "--warmup-steps", "1", "--out", str(out),
            "--no-progress"]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"cliphaze train: error: {out}: already holds a training run") and "--overwrite" in err
    assert "Traceback" not in err
    assert main([*args, "--overwrite"]) == 0


@pytest.mark.parametrize("flag, value", [("--steps", "0"), ("--batch-size", "-2"), ("--crop", "0"),
                                         ("--threads", "0"), ("--lr", "0"), ("--lr", "nan"), ("--val-every", "0"),
                                         ("--warmup-steps", "-1"), ("--weight-decay", "-1e-4"),
                                         ("--min-lr-ratio", "1.5"), ("--num-workers", "-1"), ("--steps", "2.5")])
def test_cli_rejects_bad_numbers_in_the_parser(flag, value, capsys):
    from cliphaze.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["train", flag, value])
    assert exc.value.code == 2
    assert f"argument {flag}" in capsys.readouterr().err


def test_bad_values_from_a_config_file_are_named(tmp_path, capsys):
    from cliphaze.cli import main

    f = tmp_path / "cfg.json"
    f.write_text(json.dumps({"steps": 0, "lr": -1, "warmup_steps": -3, "preset": "huge"}))
    assert main(["train", "--config", str(f)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"cliphaze train: error: {f}: invalid training config")
    for what in ("steps must be an integer >= 1", "lr must be > 0", "warmup_steps must be an integer >= 0",
                 "preset must be one of"):
        assert what in err, what


def test_non_finite_parameters_stop_before_anything_is_written(photo_folder, tmp_path):
    """A parameter turning NaN between save points: no last.pt/best.pt; the message says none exists."""
    from cliphaze.model import build_model

    model = build_model("tiny", guide="tiny-test-clip")

    def poison(rec):  # called at step 2 after the update, before that step's save point
        if rec.get("step") == 2:
            with torch.no_grad():
                model.net.head.bias[0] = float("nan")

    out = tmp_path / "nanparam"
    with pytest.raises(TrainingDiverged, match=r"parameters became non-finite by step 2 \(head\.bias\).*"
                                               r"No checkpoint was written yet"):
        train(_config(photo_folder, out), network=model, callback=poison, progress=False, log=lambda m: None)
    assert not (out / "last.pt").exists() and not (out / "best.pt").exists()


def test_nan_validation_stops_and_names_the_real_last_good_checkpoint(photo_folder, tmp_path):
    """Validation PSNR turning NaN at the second save point leaves step 2's last.pt and best.pt untouched."""
    from cliphaze.data import SyntheticHazeDataset
    from cliphaze.model import load_checkpoint

    ds = SyntheticHazeDataset(photo_folder, crop=32, seed=0)
    hazy, clear = ds[0]["hazy"], ds[0]["clear"]

    class PoisonedValidation(list):
        """One validation pair whose hazy image gets a NaN pixel after the first validation."""

        def __iter__(self):
            yield from super().__iter__()
            self[0] = (hazy.clone().index_put_((torch.tensor(0),), torch.tensor(float("nan"))), clear)

    out = tmp_path / "nanval"
    with pytest.raises(TrainingDiverged, match=r"validation PSNR is nan at step 4.*last\.pt at step 2; "
                                               r"best\.pt is from step 2"):
        train(_config(photo_folder, out, aggregation="static"), datasets=(ds, PoisonedValidation([(hazy, clear)])),
              progress=False, log=lambda m: None)
    assert load_checkpoint(out / "last.pt")["train"]["step"] == 2
    assert load_checkpoint(out / "best.pt")["meta"]["step"] == 2
    assert [v["step"] for v in json.loads((out / "history.json").read_text())["val"]] == [2]


def test_haze_family_options_reach_the_dataset(photo_folder, tmp_path):
    from cliphaze.haze.families import AIRLIGHT_COLOURS, HAZE_FAMILIES
    from cliphaze.train import build_datasets
    from cliphaze.train.cli import FLAG_CHOICES

    assert FLAG_CHOICES["haze_families"] == tuple(HAZE_FAMILIES)  # the CLI's copy of the names is current
    assert FLAG_CHOICES["haze_airlight_colour"] == AIRLIGHT_COLOURS
    cfg = _config(photo_folder, tmp_path / "fam", steps=2, haze_families=["fields", "fog"], haze_dense=0.5,
                  haze_airlight_colour="warm", haze_noise=0.01, haze_jpeg=[60, 90], haze_bright=0.25)
    train_set, val = build_datasets(cfg)
    assert train_set.families == ("fields", "fog") and train_set.dense == 0.5 and train_set.jpeg == (60, 90)
    assert train_set.airlight_colour == "warm" and train_set.noise == 0.01 and train_set.bright == 0.25
    r = train(cfg, progress=False, log=lambda m: None)
    assert r["step"] == 2 and all(torch.isfinite(torch.tensor(r["history"]["loss"])))
    with pytest.raises(ValueError, match="only act on haze families"):
        TrainConfig(haze_noise=0.02)
    with pytest.raises(ValueError, match="haze_bright only act on haze families"):
        TrainConfig(haze_bright=0.2)
    with pytest.raises(ValueError, match="haze_bright is a probability"):
        TrainConfig(haze_families=["ramp"], haze_bright=2.0)
    with pytest.raises(ValueError, match="haze_families must name one or more"):
        TrainConfig(haze_families=["smog"])
    default_set, _ = build_datasets(_config(photo_folder, tmp_path / "plain"))
    assert default_set.families is None  # no families: the original synthesiser, as before


def test_cli_passes_haze_families(photo_folder, tmp_path):
    from cliphaze.cli import build_parser
    from cliphaze.train.cli import config_from_args

    args = build_parser().parse_args(["train", "--families", "ramp", "room", "--haze-jpeg", "50", "95",
                                      "--haze-bright", "0.2", "--data", str(photo_folder)])
    cfg = config_from_args(args)
    assert cfg.haze_families == ["ramp", "room"] and cfg.haze_jpeg == [50, 95] and cfg.threads == 1
    assert cfg.haze_bright == 0.2
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--haze-bright", "1.5"])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--families", "smog"])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--haze-jpeg", "50", "101"])


def test_train_help_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys, argparse\nimport cliphaze.train.cli as c\np = argparse.ArgumentParser()\n"
            "c.register(p.add_subparsers())\nprint('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# ---------------------------------------------------------------------------------- several processes
def _torchrun(args: list[str], nproc: int = 2):
    import os
    import subprocess
    import sys

    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           "-m", "cliphaze", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_and_resume_exactly(photo_folder, tmp_path):
    """torchrun, 2 CPU processes (gloo), global batch 4 = 2 x 2: same parameters as one process with batch 4
    (float rounding of the gradient all-reduce aside); a killed-and-resumed 2-process run equals the straight one
    bit for bit; only rank 0 writes."""
    from cliphaze.model import load_checkpoint

    common = dict(batch_size=4, steps=4, val_every=2)
    flags = ["train", "--guide", "tiny-test-clip", "--data", str(photo_folder), "--val-data", str(photo_folder),
             "--val-count", "2", "--val-crop", "32", "--crop", "32", "--batch-size", "4", "--steps", "4",
             "--warmup-steps", "2", "--val-every", "2", "--log-every", "1", "--no-progress"]
    straight = _torchrun([*flags, "--out", str(tmp_path / "ddp")])
    assert straight.stdout.count("val PSNR") == 2  # rank 0 logs, the other rank is silent
    _torchrun([*flags, "--out", str(tmp_path / "ddp_split"), "--stop-at", "2"])
    _torchrun([*flags, "--out", str(tmp_path / "ddp_split"), "--resume"])
    one = train(_config(photo_folder, tmp_path / "one", **common), progress=False, log=lambda m: None)

    ddp = load_checkpoint(tmp_path / "ddp" / "last.pt")
    resumed = load_checkpoint(tmp_path / "ddp_split" / "last.pt")
    assert ddp["train"]["step"] == resumed["train"]["step"] == 4
    for k, v in ddp["state_dict"].items():
        assert torch.equal(v, resumed["state_dict"][k]), f"{k}: resumed 2-process run differs"
        ref = one["model"].net.state_dict()[k]
        assert torch.allclose(v, ref, rtol=1e-4, atol=1e-6), f"{k}: max |diff| {(v - ref).abs().max():.3g}"
    assert ddp["train"]["history"]["loss"] == pytest.approx(one["history"]["loss"], rel=1e-5)
    assert not list((tmp_path / "ddp").glob(".*.tmp"))


def test_cli_aggregation_choices_are_the_library_kinds():
    from cliphaze.block import AGGREGATION_KINDS
    from cliphaze.train.cli import FLAG_CHOICES

    assert FLAG_CHOICES["aggregation"] == AGGREGATION_KINDS


def test_cli_still_reads_the_old_guidance_flag():
    from cliphaze.cli import build_parser
    from cliphaze.train.cli import config_from_args

    assert config_from_args(build_parser().parse_args(["train", "--guidance", "none"])).aggregation == "static"
    assert config_from_args(build_parser().parse_args(["train", "--aggregation", "sum"])).aggregation == "sum"


def test_aggregation_flag_overrides_an_old_config_file(tmp_path):
    from cliphaze.cli import build_parser
    from cliphaze.train.cli import config_from_args

    f = tmp_path / "old.json"
    f.write_text(json.dumps({"guidance": "density", "steps": 3}))
    cfg = config_from_args(build_parser().parse_args(["train", "--config", str(f), "--aggregation", "sum"]))
    assert cfg.aggregation == "sum" and cfg.steps == 3
    assert config_from_args(build_parser().parse_args(["train", "--config", str(f)])).aggregation == "density"


def test_bad_device_out_and_data_fail_before_anything_is_written(photo_folder, tmp_path, capsys):
    from cliphaze.cli import main

    base = ["train", "--guide", "tiny-test-clip", "--steps", "1", "--crop", "32", "--batch-size", "2", "--no-progress"]
    a_file = tmp_path / "file.txt"
    a_file.write_text("not a folder")
    cases = [(["--data", str(photo_folder), "--out", str(a_file)], "is a file, not a folder"),
             (["--data", str(photo_folder), "--out", str(tmp_path / "o1"), "--device", "gpu"], "not a device name"),
             (["--data", str(tmp_path / "absent"), "--out", str(tmp_path / "o2")], "does not exist")]
    if not torch.cuda.is_available():
        cases.append((["--data", str(photo_folder), "--out", str(tmp_path / "o3"), "--device", "cuda"],
                      "torch sees no CUDA device"))
    for args, what in cases:
        assert main([*base, *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("cliphaze train: error: ") and what in err and "Traceback" not in err, err
    assert not any((tmp_path / name).exists() for name in ("o1", "o2", "o3"))  # no empty run folders left
