"""``cliphaze clip train-small``: train the small haze CLIP and, optionally, its calibrated prompts.

One command reproduces the shipped guide (``cliphaze/assets/haze_clip_small_card.md``)::

    cliphaze clip train-small --data BSDS500/train BSDS500/val --holdout real-depth \\
        -o cliphaze/assets/haze_clip_small.pt --prompts-output cliphaze/assets/haze_clip_small_prompts.pt

The card of the checkpoint records the command, the data, the losses and the wall time.
Lesson: ``notebooks/02_prompt_learning.ipynb``, "Training the small haze CLIP".
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cliphaze.cli_types import non_negative_float, positive_int

__all__ = ["add_train_small_args", "train_small_command"]


def add_train_small_args(p: argparse.ArgumentParser) -> None:
    """The flags of ``train-small`` (besides ``--data``, ``-o``, ``--steps``, ``--crops``, ``--lr``,
    ``--seed`` and ``--threads``, defined by the parser itself)."""
    p.add_argument("--recipe", default="ranking", choices=("ranking", "contrastive"),
                   help="ranking: several haze families, two haze levels per crop, bright clear images, "
                   "ranking and density-regression losses (the shipped guide); contrastive: the first recipe "
                   "(one haze generator, caption and patch-level losses) (default: %(default)s)")
    p.add_argument("--holdout", default="real-depth", choices=("real-depth", "ramp", "fields", "room", "fog"),
                   help="haze family left out of training, for the leave-one-family-out test; real-depth is "
                   "never used for training anyway (it needs matching depth) (default: %(default)s)")
    p.add_argument("--spatial-weight", type=non_negative_float, default=1.0,
                   help="ranking recipe: weight of the within-image token ranking term, the order the guide is "
                   "judged on (cliphaze.clip.losses.spatial_ranking_loss) (default: %(default)s)")
    p.add_argument("--decorrelation-weight", type=non_negative_float, default=1.0,
                   help="ranking recipe: weight of the penalty on the correlation between the map and the "
                   "luminance of clear images (cliphaze.clip.losses.decorrelation_loss) (default: %(default)s)")
    p.add_argument("--prompts-output", default=None,
                   help="also fit the calibrated prompt pair for the trained model and save it here "
                   "(default: none)")
    p.add_argument("--prompt-steps", type=positive_int, default=300, help="prompt-fitting steps (default: %(default)s)")
    p.add_argument("--prompt-crops", type=positive_int, default=384, help="crops in the prompt-fitting pool (default: %(default)s)")


def train_small_command(args: argparse.Namespace) -> int:
    """Run ``cliphaze clip train-small`` (see the module docstring)."""
    import time

    import torch

    from cliphaze.clip import load_clip, save_prompts
    from cliphaze.clip.compact import save_small_clip
    from cliphaze.clip.crops import load_photos
    from cliphaze.clip.small_train import (
        TRAIN_FAMILIES,
        SmallClipTrainConfig,
        fit_density_prompts,
        train_small_clip,
    )

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    photos = load_photos(args.data)
    print(f"{len(photos)} clear photos from {', '.join(map(str, args.data))}", flush=True)
    families = tuple(f for f in (*TRAIN_FAMILIES, "real-depth") if f != args.holdout and f != "real-depth")
    config = SmallClipTrainConfig(steps=args.steps, crops_per_step=args.crops, lr=args.lr, seed=args.seed,
                                  recipe=args.recipe, families=families, spatial_weight=args.spatial_weight,
                                  decorrelation_weight=args.decorrelation_weight)
    if args.recipe == "ranking":
        print(f"recipe ranking: families {', '.join(families)}; held out: {args.holdout}", flush=True)

    def progress(step, terms):
        print(f"step {step:5d}  " + "  ".join(f"{k} {v:.4f}" for k, v in terms.items()), flush=True)

    model, history = train_small_clip(photos, config, progress=progress)
    command = "cliphaze clip " + " ".join(sys.argv[sys.argv.index("train-small"):]) if "train-small" in sys.argv else ""
    card = {
        "command": command,
        "data": [str(d) for d in args.data],
        "n_photos": len(photos),
        "holdout": args.holdout if args.recipe == "ranking" else None,
        "train_seconds": round(history["seconds"], 1),
        "final_loss": history["loss"][-1],
        "history": {k: v for k, v in history.items() if k.endswith("loss") or k == "step"},
        "config": history["config"],
    }
    path = save_small_clip(model, args.output, card=card)
    print(f"saved {path} ({Path(path).stat().st_size / 1e6:.2f} MB) after {history['seconds']:.0f} s", flush=True)
    if args.prompts_output:
        clip = load_clip(str(path))
        learner, phist = fit_density_prompts(clip, photos, n_crops=args.prompt_crops, steps=args.prompt_steps,
                                             families=families, seed=args.seed)
        total = time.perf_counter() - start
        save_prompts(learner, args.prompts_output, extra={
            "final_loss": phist["loss"][-1], "data": [str(d) for d in args.data], "config": phist["config"],
            "command": command, "prompt_seconds": round(phist["seconds"], 1), "total_seconds": round(total, 1),
        })
        print(f"saved calibrated prompts {args.prompts_output} for {clip.info.identity} "
              f"(loss {phist['loss'][-1]:.4f}, {phist['seconds']:.0f} s); total {total:.0f} s", flush=True)
    return 0
