"""Write the shipped model's card (``cliphaze/assets/cliphaze_tiny.json``) from its training run.

Everything in the card is read from files, never typed: the run folder's ``config.json``,
``history.json`` and ``best.pt`` (the network config, the guide fingerprint, the step it was
chosen at), the checkpoint copied into ``cliphaze/assets``, and the CSV / Markdown files written by
``cliphaze eval``. Run from the repository root after training and evaluating:

    python docs/make_model_card.py --run runs/tiny --wall-clock "73 min" \\
        --sots-csv docs/results_sots_indoor_dev.csv --families-md docs/results_families.md

The training command stored in the card is rebuilt from the run's ``config.json``
(:func:`training_command`), so it is the command that produced the run, flag for flag.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ASSET = ROOT / "cliphaze" / "assets" / "cliphaze_tiny.pt"
CARD = ROOT / "cliphaze" / "assets" / "cliphaze_tiny.json"

# TrainConfig field -> flag, for the fields that differ from the defaults in a typical run
_LIST_FLAGS = {"data": "--data", "val_data": "--val-data", "haze_families": "--haze-families",
               "haze_jpeg": "--haze-jpeg"}


def training_command(config: dict, defaults: dict) -> str:
    """The ``cliphaze train`` command equivalent to a run's ``config.json`` (non-default fields only)."""
    parts = ["OMP_NUM_THREADS=1", "cliphaze", "train"]
    for key, value in config.items():
        if key in ("out",) or value == defaults.get(key):
            continue
        flag = _LIST_FLAGS.get(key, "--" + key.replace("_", "-"))
        if isinstance(value, bool):
            if value:
                parts.append(flag)
        elif isinstance(value, (list, tuple)):
            parts += [flag, *map(str, value)]
        elif value is not None:
            parts += [flag, str(value)]
    parts += ["--out", str(config.get("out", "runs/tiny"))]
    return " ".join(parts)


def sots_scores(path: Path) -> dict:
    """Mean PSNR / SSIM per method, overall and per SOTS haze setting, from a ``cliphaze eval`` CSV."""
    from cliphaze.evaluate import sots_setting

    rows = [r for r in csv.DictReader(open(path)) if r["image"] != "MEAN"]
    out: dict = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        per = {}
        for r in mine:
            per.setdefault(sots_setting(r["image"]), []).append(float(r["psnr"]))
        out[method] = {"psnr": round(statistics.fmean(float(r["psnr"]) for r in mine), 3),
                       "ssim": round(statistics.fmean(float(r["ssim"]) for r in mine), 4), "n": len(mine),
                       "psnr_per_setting": {k: round(statistics.fmean(v), 2) for k, v in sorted(
                           per.items(), key=lambda kv: int(kv[0]) if kv[0] and kv[0].isdigit() else 0)}}
    return out


def main(argv=None) -> int:
    from cliphaze.model import load_checkpoint
    from cliphaze.train.config import TrainConfig

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, required=True, help="the training run folder")
    p.add_argument("--wall-clock", required=True, help="measured wall time of the training command")
    p.add_argument("--sots-csv", type=Path, required=True, help="cliphaze eval --csv output on SOTS-indoor-dev")
    p.add_argument("--families-md", type=Path, default=None, help="cliphaze eval --families --markdown output")
    p.add_argument("--eval-command", default="", help="the cliphaze eval command that wrote --sots-csv")
    p.add_argument("--families-command", default="", help="the cliphaze eval --families command")
    args = p.parse_args(argv)

    config = json.loads((args.run / "config.json").read_text())
    history = json.loads((args.run / "history.json").read_text())
    best = load_checkpoint(args.run / "best.pt")
    shipped = ASSET.read_bytes()
    if hashlib.sha256(shipped).digest() != hashlib.sha256((args.run / "best.pt").read_bytes()).digest():
        raise SystemExit(f"{ASSET} is not a copy of {args.run / 'best.pt'}: copy it first")
    defaults = TrainConfig().to_dict()
    families = config.get("haze_families") or []
    from cliphaze.haze import HAZE_FAMILIES

    held_out = [f for f in HAZE_FAMILIES if families and f not in families]
    import torch

    n_params = sum(v.numel() for v in best["state_dict"].values() if isinstance(v, torch.Tensor)
                   and v.is_floating_point())
    card = {
        "name": "cliphaze-tiny",
        "file": ASSET.name,
        "what": "CLIPHaze network, preset 'tiny' (density-aware aggregation), trained from scratch on one CPU "
                "thread by one uninterrupted command",
        "training_command": training_command(config, defaults),
        "train_steps": config["steps"],
        "train_wall_clock": args.wall_clock,
        "selected_step": best["meta"]["step"],
        "selection": "best.pt: the highest validation PSNR on synthetic haze over held-out BSDS500 test photos "
                     "(the training families); SOTS-indoor is never used for training or selection",
        "best_validation_psnr": round(best["meta"]["best_val_psnr"], 3),
        "haze_families_trained": families,
        "haze_families_held_out": held_out,
        "guide": best["guide"],
        "data_note": "Synthetic haze from the haze families above over the 300 BSDS500 train+val photos "
                     "(Arbelaez et al., TPAMI 2011; research/education terms; not shipped). Never trained on SOTS.",
        "scores_protocol": "PSNR on RGB [0,1] per image then averaged; SSIM pytorch_msssim at full resolution "
                           "(cliphaze eval)",
        "scores_sots_indoor_dev": sots_scores(args.sots_csv),
        "scores_sots_command": args.eval_command,
        "scores_families_markdown": args.families_md.read_text() if args.families_md else None,
        "scores_families_command": args.families_command,
        "parameters": n_params,
        "sha256": hashlib.sha256(shipped).hexdigest(),
        "size_bytes": len(shipped),
        "validation_history": history.get("val", []),
        "training_curve": [{k: round(r[k], 4) for k in ("step", "loss", "psnr")} for r in history.get("records", [])
                           if r["step"] % 50 == 0],
    }
    CARD.write_text(json.dumps(card, indent=2) + "\n")
    print(f"wrote {CARD}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
