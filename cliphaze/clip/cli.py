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
from pathlib import Path


def _add_backbone_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="open_clip model name, local-dir:/folder or compact .pt (default: shipped haze-clip-small)")
    p.add_argument("--pretrained", default=None, help="pretrained tag or weight file (e.g. openai)")


def _train_small(args) -> int:
    import torch

    from cliphaze.clip.small_clip import (
        SmallClipTrainConfig,
        load_photos,
        save_small_clip,
        train_small_clip,
    )

    torch.set_num_threads(args.threads)
    photos = load_photos(args.data)
    print(f"{len(photos)} clear photos from {', '.join(args.data)}", flush=True)
    config = SmallClipTrainConfig(steps=args.steps, crops_per_step=args.crops, lr=args.lr, seed=args.seed)

    def progress(step, loss, token_loss):
        print(f"step {step:5d}  image loss {loss:.4f}  token loss {token_loss:.4f}", flush=True)

    model, history = train_small_clip(photos, config, progress=progress)
    card = {
        "command": "cliphaze clip " + " ".join(sys.argv[sys.argv.index("train-small"):]) if "train-small" in sys.argv else "",
        "data": [str(d) for d in args.data],
        "n_photos": len(photos),
        "train_seconds": round(history["seconds"], 1),
        "final_loss": history["loss"][-1],
        "history": {"step": history["step"], "loss": history["loss"], "token_loss": history["token_loss"]},
        "config": history["config"],
    }
    path = save_small_clip(model, args.output, card=card)
    print(f"saved {path} ({path.stat().st_size / 1e6:.2f} MB) after {history['seconds']:.0f} s", flush=True)
    return 0


def _learn_prompts(args) -> int:
    import torch

    from cliphaze.clip import load_clip, save_prompts
    from cliphaze.clip.prompts import PromptLearnerConfig, train_prompts
    from cliphaze.clip.small_clip import load_photos

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
    from cliphaze.clip.small_clip import SHIPPED_SMALL_CLIP

    print(json.dumps({
        "default_backbone": "haze-clip-small (shipped, trained here on synthetic haze; not OpenAI CLIP)",
        "shipped_checkpoint": str(SHIPPED_SMALL_CLIP),
        "shipped_checkpoint_present": SHIPPED_SMALL_CLIP.is_file(),
        "cached_real_clip": find_cached_clip(),
    }, indent=2))
    return 0


def _evaluate(args) -> int:
    import time

    import torch
    import torch.nn.functional as F

    from cliphaze.clip import (
        ENSEMBLE_PAIR,
        HAND_WRITTEN_PAIR,
        density_map,
        hazy_probability,
        load_clip,
        load_prompts,
        prompt_pair_embeddings,
    )
    from cliphaze.clip.evaluation import (
        dcp_density,
        density_benchmark,
        hazy_clear_accuracy,
        make_eval_set,
    )
    from cliphaze.clip.small_clip import load_photos
    from cliphaze.io import list_images, read_image

    torch.set_num_threads(args.threads)
    names = [p.name for p in list_images(args.test)][: args.limit]
    photos = load_photos([args.test])[: args.limit]
    eval_set = make_eval_set(photos, names, seed=args.seed)
    clip = load_clip(args.model, pretrained=args.pretrained)
    random_clip = load_clip(clip.info.model_name, pretrained="random")
    learned = load_prompts(args.prompts, clip) if args.prompts else None
    print(f"backbone: {clip.info.description} [{clip.info.identity}]; {len(photos)} held-out photos from {args.test}", flush=True)

    def dm(c, prompts, method, **kw):
        return lambda x: density_map(c, x, prompts, method=method, **kw)

    methods = {
        "hand-written pair, dense": dm(clip, HAND_WRITTEN_PAIR, "dense"),
        "hand-written pair, crops": dm(clip, HAND_WRITTEN_PAIR, "crops"),
        "prompt ensemble, dense": dm(clip, ENSEMBLE_PAIR, "dense"),
    }
    if learned is not None:
        methods["learned prompts, dense"] = dm(clip, learned, "dense")
        methods["learned prompts, crops"] = dm(clip, learned, "crops")
        methods["learned prompts, dense (short side 128)"] = dm(clip, learned, "dense", short_side=2 * min(clip.image_size))
    if args.train:
        # A fair control: the random network also gets prompts learned on its own features
        # (with two classes, learned prompts act as a linear probe on frozen features).
        from cliphaze.clip.prompts import PromptLearnerConfig, train_prompts

        train_photos = load_photos(args.train)
        random_learned, _ = train_prompts(random_clip, train_photos, PromptLearnerConfig())
        image_level, _ = train_prompts(clip, train_photos, PromptLearnerConfig(target="images", pool_crops=1024, batch=64))
        methods["learned prompts (image-level, as in the paper), dense"] = dm(clip, image_level, "dense")
        methods["learned prompts (image-level, as in the paper), crops"] = dm(clip, image_level, "crops")
        methods["random-init CLIP, learned prompts, dense"] = dm(random_clip, random_learned, "dense")
        methods["random-init CLIP, learned prompts, crops"] = dm(random_clip, random_learned, "crops")
    methods["random-init CLIP, hand-written, dense"] = dm(random_clip, HAND_WRITTEN_PAIR, "dense")
    methods["random-init CLIP, hand-written, crops"] = dm(random_clip, HAND_WRITTEN_PAIR, "crops")
    methods["dark channel 1 - t_DCP"] = dcp_density
    results = density_benchmark(eval_set, methods, resolution=args.resolution, threshold=args.threshold)
    table = {k: {**v.as_row(), "s/image": round(v.seconds_per_image, 4)} for k, v in results.items()}
    report = {"command": "cliphaze clip " + " ".join(sys.argv[sys.argv.index("evaluate"):]) if "evaluate" in sys.argv else "",
              "backbone": clip.info.identity, "eval": {"data": args.test, "n_images": len(photos), "seed": args.seed,
              "haze": "nonhomogeneous, HazeConfig defaults", "resolution": args.resolution, "threshold": args.threshold,
              "positive_fraction": round(next(iter(results.values())).positive_fraction, 3)}, "density": table}

    if args.sots:
        sots = Path(args.sots)
        hazy = [read_image(p) for p in list_images(sots / "hazy")]
        gts = []
        for p in list_images(sots / "GT"):
            g = read_image(p)
            if tuple(g.shape[1:]) != tuple(hazy[0].shape[1:]):  # GT carries a 10 px border
                dh, dw = (g.shape[1] - hazy[0].shape[1]) // 2, (g.shape[2] - hazy[0].shape[2]) // 2
                g = g[:, dh : dh + hazy[0].shape[1], dw : dw + hazy[0].shape[2]]
            gts.append(g)
        images = hazy + gts
        labels = torch.tensor([True] * len(hazy) + [False] * len(gts))
        sots_rows = {}
        for pname, prompts in (("hand-written pair", HAND_WRITTEN_PAIR), ("prompt ensemble", ENSEMBLE_PAIR), ("learned prompts", learned)):
            if prompts is None:
                continue
            with torch.no_grad():
                pair = prompt_pair_embeddings(clip, prompts)
                p_global = torch.cat([hazy_probability(clip.encode_image(im[None]), pair, clip.logit_scale) for im in images])
                p_dense = torch.stack([density_map(clip, im[None], pair, method="dense").mean() for im in images])
            sots_rows[f"{pname}, whole image"] = {k: round(v, 3) for k, v in hazy_clear_accuracy(p_global, labels).items()}
            sots_rows[f"{pname}, mean of dense map"] = {k: round(v, 3) for k, v in hazy_clear_accuracy(p_dense, labels).items()}
        with torch.no_grad():
            d = torch.stack([dcp_density(im[None]).mean() for im in images])
        # DCP has no natural 0.5 threshold: only its AUROC is comparable.
        sots_rows["dark channel mean(1 - t_DCP)"] = {"auroc": round(hazy_clear_accuracy(d, labels)["auroc"], 3)}
        report["sots"] = {"data": args.sots, "n_hazy": len(hazy), "n_clear": len(gts), "rows": sots_rows}

    image = F.interpolate(eval_set.hazy[0], size=(512, 512), mode="bilinear", align_corners=False)
    timing = {}
    for name, fn in (("dense", dm(clip, learned if learned is not None else HAND_WRITTEN_PAIR, "dense")),
                     ("crops", dm(clip, learned if learned is not None else HAND_WRITTEN_PAIR, "crops")),
                     ("dark channel", dcp_density)):
        with torch.no_grad():
            fn(image)
            runs = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                fn(image)
                runs.append(time.perf_counter() - t0)
        timing[name] = round(sorted(runs)[len(runs) // 2], 4)
    report["timing_512_seconds_median"] = timing
    report["threads"] = args.threads
    report["repeats"] = args.repeats
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n")
    return 0


def register(subparsers) -> None:
    """Add ``clip`` (with its sub-commands) to the ``cliphaze`` parser."""
    clip = subparsers.add_parser("clip", help="CLIP backbones, prompt learning and the small haze CLIP")
    sub = clip.add_subparsers(dest="clip_command", metavar="CLIP_COMMAND")
    sub.required = True

    p = sub.add_parser("train-small", help="train the small haze CLIP from folders of clear photos")
    p.add_argument("--data", nargs="+", required=True, help="folders of clear photos")
    p.add_argument("-o", "--output", default="haze_clip_small.pt")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--crops", type=int, default=48, help="clear crops per step (each also hazed: batch 2x)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=_train_small)

    p = sub.add_parser("learn-prompts", help="learn a hazy/clear prompt pair (CoOp) for a backbone")
    _add_backbone_args(p)
    p.add_argument("--data", nargs="+", required=True, help="folders of clear photos (haze is synthesised)")
    p.add_argument("-o", "--output", default="prompts.pt")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--n-ctx", type=int, default=4)
    p.add_argument("--target", default="regions", choices=("regions", "images"),
                   help="label regions by their true density (default) or whole images (the paper)")
    p.add_argument("--hazy-above", type=float, default=0.5, help="density above which a region is 'hazy'")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=_learn_prompts)

    p = sub.add_parser("evaluate", help="density quality on held-out synthetic haze, SOTS accuracy, timing")
    _add_backbone_args(p)
    p.add_argument("--prompts", default=None, help="learned prompt file for the backbone")
    p.add_argument("--test", required=True, help="folder of clear photos never used in training")
    p.add_argument("--train", nargs="*", default=None, help="training photo folders: also learn prompts for the random-init control")
    p.add_argument("--sots", default=None, help="SOTS-style folder with hazy/ and GT/ (zero-shot accuracy)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N photos")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("-o", "--output", default=None, help="write the report as JSON")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("info", help="which backbone is used and whether a real CLIP is cached")
    p.set_defaults(func=_info)
