"""``cliphaze clip ...``: command-line access to :mod:`cliphaze.clip`.

- ``cliphaze clip train-small --data FOLDER [FOLDER ...] -o haze_clip_small.pt``: train the small
  haze CLIP from any folders of clear photos (lesson 02, "Training the small haze CLIP").
- ``cliphaze clip learn-prompts --data FOLDER ... -o prompts.pt``: learn a hazy/clear prompt pair
  for a backbone (lesson 02).
- ``cliphaze clip info``: which backbone ``load_clip()`` gives and whether a real CLIP is cached.
- ``cliphaze density``: density maps of images, in :mod:`cliphaze.clip.density_cli` (lesson 01).

Heavy imports happen inside the command functions so ``cliphaze --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys

from cliphaze.cli_types import (
    add_threads_arg,
    fraction,
    non_negative_int,
    positive_float,
    positive_int,
)
from cliphaze.clip.eval_cli import add_evaluate_args
from cliphaze.clip.train_cli import add_train_small_args


def _add_backbone_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="open_clip model name, local-dir:/folder or compact .pt (default: shipped haze-clip-small)")
    p.add_argument("--pretrained", default=None,
                   help="pretrained tag or weight file, e.g. openai; used only when its weights are on this machine "
                   "(default: none)")


def _train_small(args) -> int:
    from cliphaze.clip.train_cli import train_small_command

    return train_small_command(args)


def _learn_prompts(args) -> int:
    import torch

    from cliphaze.clip import load_clip, save_prompts
    from cliphaze.clip.crops import load_photos
    from cliphaze.clip.prompts import PromptLearnerConfig, train_prompts

    torch.set_num_threads(args.threads)
    clip = load_clip(args.model, pretrained=args.pretrained)
    photos = load_photos(args.data)
    config = PromptLearnerConfig(n_ctx=args.n_ctx, steps=args.steps, seed=args.seed, target=args.target, hazy_above=args.hazy_above)
    learner, history = train_prompts(clip, photos, config, progress=True)
    command = "cliphaze clip " + " ".join(sys.argv[sys.argv.index("learn-prompts"):]) if "learn-prompts" in sys.argv else ""
    path = save_prompts(learner, args.output, extra={"final_loss": history["loss"][-1], "data": [str(d) for d in args.data],
                                                     "config": history["config"], "command": command})
    print(f"saved {path} for backbone {clip.info.identity}; final loss {history['loss'][-1]:.4f}")
    return 0


def _info(args) -> int:
    from cliphaze.clip.backbone import find_cached_clip
    from cliphaze.clip.small_config import SHIPPED_SMALL_CLIP

    print(json.dumps({
        "default_backbone": "haze-clip-small (shipped, trained here on synthetic haze; not OpenAI CLIP)",
        "shipped_checkpoint": str(SHIPPED_SMALL_CLIP),
        "shipped_checkpoint_present": SHIPPED_SMALL_CLIP.is_file(),
        "cached_real_clip": find_cached_clip(),
    }, indent=2))
    return 0


def _evaluate(args) -> int:
    from cliphaze.clip.eval_cli import evaluate

    return evaluate(args)


def register(subparsers) -> None:
    """Add ``clip`` (with its sub-commands) to the ``cliphaze`` parser."""
    clip = subparsers.add_parser("clip", help="CLIP backbones, prompt learning and the small haze CLIP")
    sub = clip.add_subparsers(dest="clip_command", metavar="CLIP_COMMAND")
    sub.required = True

    p = sub.add_parser("train-small", help="train the small haze CLIP from folders of clear photos")
    p.add_argument("--data", nargs="+", required=True, help="folders of clear photos (required)")
    p.add_argument("-o", "--output", default="haze_clip_small.pt", help="checkpoint file to write (default: %(default)s)")
    p.add_argument("--steps", type=positive_int, default=1000, help="training steps (default: %(default)s)")
    p.add_argument("--crops", type=positive_int, default=32,
                   help="photo crops per step (ranking: each clear and at two haze levels, plus bright clear "
                   "images; contrastive: each clear and hazed) (default: %(default)s)")
    p.add_argument("--lr", type=positive_float, default=1e-3, help="learning rate (default: %(default)s)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default: %(default)s)")
    add_threads_arg(p)
    add_train_small_args(p)
    p.set_defaults(func=_train_small)

    p = sub.add_parser("learn-prompts", help="learn a hazy/clear prompt pair (CoOp) for a backbone")
    _add_backbone_args(p)
    p.add_argument("--data", nargs="+", required=True,
                   help="folders of clear photos, haze is synthesised (required)")
    p.add_argument("-o", "--output", default="prompts.pt", help="prompt file to write (default: %(default)s)")
    p.add_argument("--steps", type=positive_int, default=300, help="training steps (default: %(default)s)")
    p.add_argument("--n-ctx", type=positive_int, default=4,
                   help="learned context vectors per prompt (default: %(default)s)")
    p.add_argument("--target", default="regions", choices=("regions", "images"),
                   help="label regions by their true density, or whole images as in the paper (default: %(default)s)")
    p.add_argument("--hazy-above", type=fraction, default=0.5,
                   help="density above which a region is 'hazy', in [0, 1] (default: %(default)s)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="random seed (default: %(default)s)")
    add_threads_arg(p)
    p.set_defaults(func=_learn_prompts)

    p = sub.add_parser("evaluate", help="density quality per haze family (leave one family out), against the dark channel")
    _add_backbone_args(p)
    add_evaluate_args(p)
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("info", help="which backbone is used and whether a real CLIP is cached")
    p.set_defaults(func=_info)
