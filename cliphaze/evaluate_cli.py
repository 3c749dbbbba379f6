"""``cliphaze eval``: one PSNR/SSIM table for several methods on one paired dataset."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="score dehazing methods (PSNR/SSIM, time per megapixel) on a paired dataset",
        description="Score methods on any supported paired dataset (see data/README.md) with one protocol: "
        "PSNR on RGB [0,1] per image then averaged; SSIM from pytorch_msssim at full resolution.",
    )
    p.add_argument("--data", required=True, help="dataset folder (any supported layout)")
    p.add_argument(
        "--methods",
        default="hazy,dcp,aodnet",
        help="comma-separated: hazy, dcp, aodnet, a shipped model name or a checkpoint path (default: %(default)s)",
    )
    p.add_argument("--split", default="test", choices=["train", "test", "all"], help="benchmark split (default: %(default)s)")
    p.add_argument("--layout", default="auto", help="force a dataset layout (default: detect)")
    p.add_argument("--max-images", type=int, default=None, help="evaluate at most this many pairs")
    p.add_argument("--csv", type=Path, default=None, help="write per-image scores and means to this CSV")
    p.add_argument("--device", default="cpu", help="device for learned methods (default: %(default)s)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from cliphaze.data import open_benchmark
    from cliphaze.evaluate import evaluate, get_method

    try:
        dataset = open_benchmark(args.data, split=args.split, layout=args.layout)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if len(dataset) == 0:
        print(f"error: {args.data}: no pairs in split {args.split!r}", file=sys.stderr)
        return 2
    try:
        methods = [get_method(m, args.device) for m in args.methods.split(",") if m.strip()]
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    report = evaluate(methods, dataset, dataset_name=f"{args.data} ({args.split})", max_images=args.max_images, progress=True)
    print(report.to_markdown())
    if args.csv:
        print(f"per-image scores: {report.write_csv(args.csv)}")
    return 0
