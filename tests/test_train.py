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
