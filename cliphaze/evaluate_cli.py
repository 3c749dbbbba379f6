"""``cliphaze eval``: one PSNR/SSIM table for several methods on one paired dataset."""

from __future__ import annotations

import argparse
import shlex
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
    p.add_argument("--markdown", type=Path, default=None,
                   help="write the results table, the machine it ran on and this command to a Markdown file")
    p.add_argument("--no-warmup", action="store_true", help="time the first image too (default: one untimed run first)")
    p.add_argument("--device", default="cpu", help="device for learned methods (default: %(default)s)")
    p.set_defaults(func=run)


def canonical_command(args: argparse.Namespace) -> str:
    """The ``cliphaze eval`` command line equivalent to ``args`` (written under the Markdown table)."""
    parts = ["cliphaze", "eval", "--data", shlex.quote(str(args.data)), "--methods", shlex.quote(args.methods)]
    if args.split != "test":
        parts += ["--split", args.split]
    if args.layout != "auto":
        parts += ["--layout", args.layout]
    if args.max_images is not None:
        parts += ["--max-images", str(args.max_images)]
    if args.csv:
        parts += ["--csv", shlex.quote(str(args.csv))]
    if args.markdown:
        parts += ["--markdown", shlex.quote(str(args.markdown))]
    if args.no_warmup:
        parts.append("--no-warmup")
    if args.device != "cpu":
        parts += ["--device", args.device]
    return " ".join(parts)


def machine_notes(device: str) -> list[str]:
    """Lines saying where the timings come from (CPU model, threads, device, torch version)."""
    import platform

    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    dev = device
    if device.startswith("cuda") and torch.cuda.is_available():
        dev = f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return [f"Timings: device {dev}, CPU {cpu}, {torch.get_num_threads()} torch thread(s), torch {torch.__version__}; "
            "seconds per megapixel exclude image loading and metrics; on a shared machine they vary by tens of percent."]


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
    report = evaluate(methods, dataset, dataset_name=f"{Path(args.data).name} ({args.split} split)",
                      max_images=args.max_images, progress=True, device=args.device, warmup=not args.no_warmup)
    print(report.to_markdown())
    if args.csv:
        print(f"per-image scores: {report.write_csv(args.csv)}")
    if args.markdown:
        path = report.write_markdown(args.markdown, command=canonical_command(args), notes=machine_notes(args.device))
        print(f"results table: {path}")
    return 0
