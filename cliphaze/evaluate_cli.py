"""``cliphaze eval``: one PSNR/SSIM table for several methods on one paired dataset."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from cliphaze.cli_types import EXIT_CODES_HELP, add_threads_arg, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="score dehazing methods (PSNR/SSIM, time per megapixel) on a paired dataset",
        description="Score methods on any supported paired dataset (see data/README.md) with one protocol: "
        "PSNR on RGB [0,1] per image then averaged; SSIM from pytorch_msssim at full resolution.",
        epilog=EXIT_CODES_HELP,
    )
    p.add_argument("--data", required=True, help="dataset folder in any supported layout (required)")
    p.add_argument(
        "--methods",
        default="hazy,dcp,aodnet",
        help="comma-separated: hazy, dcp, aodnet, a shipped model name or a checkpoint path (default: %(default)s)",
    )
    p.add_argument("--split", default="test", choices=["train", "test", "all"], help="benchmark split (default: %(default)s)")
    p.add_argument("--layout", default="auto", help="force a dataset layout, e.g. sots-indoor (default: auto, detect)")
    p.add_argument("--max-images", type=positive_int, default=None,
                   help="evaluate at most this many pairs (default: all)")
    p.add_argument("--csv", type=Path, default=None,
                   help="write per-image scores and means to this CSV file (default: none)")
    p.add_argument("--markdown", type=Path, default=None,
                   help="write the results table, the machine it ran on and this command to a Markdown file "
                   "(default: none)")
    p.add_argument("--no-warmup", action="store_true", help="time the first image too (default: one untimed run first)")
    p.add_argument("--device", default="cpu", help="device for learned methods (default: %(default)s)")
    p.add_argument("--families", nargs="+", metavar="FAMILY", default=None,
                   help="instead of a paired dataset: --data is a folder of clear photos, hazed once per haze "
                   "family (ramp, fields, room, real-depth, fog; seeded), one row per family (default: off)")
    p.add_argument("--held-out", nargs="*", metavar="FAMILY", default=[],
                   help="with --families: families the model never trained on, marked in the table, and the "
                   "generalisation gap printed for each learned method (default: none)")
    p.add_argument("--max-side", type=positive_int, default=256,
                   help="with --families: longer side of the clear photos after resizing (default: %(default)s)")
    p.add_argument("--seed", type=int, default=1234, help="with --families: haze seed (default: %(default)s)")
    add_threads_arg(p)
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
    import torch

    from cliphaze.hostinfo import cpu_description

    cpu = cpu_description()
    dev = device
    if device.startswith("cuda") and torch.cuda.is_available():
        dev = f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return [f"Timings: device {dev}, CPU {cpu}, {torch.get_num_threads()} torch thread(s), torch {torch.__version__}; "
            "seconds per megapixel exclude image loading and metrics; on a shared machine they vary by tens of percent."]


def _check_report_path(path: Path | None, flag: str, images) -> None:
    """Refuse a report file that is a folder or one of the input ``images`` (paths)."""
    from cliphaze.cli_types import UserError

    if path is None:
        return
    if path.is_dir():
        raise UserError(f"{path}: is a folder; {flag} takes a file name")
    inputs = {Path(q).resolve() for q in images}
    if path.resolve() in inputs:
        raise UserError(f"{path}: is an image of the dataset; {flag} would replace it, choose another file")


def run(args: argparse.Namespace) -> int:
    """Run ``cliphaze eval`` (exit status: see :mod:`cliphaze.cli_types`)."""
    from cliphaze.cli_types import UserError, apply_threads

    apply_threads(args)
    if args.families:
        return run_families(args)
    from cliphaze.data import open_benchmark
    from cliphaze.evaluate import evaluate, get_method
    from cliphaze.io import ImageReadError
    from cliphaze.serialization import CheckpointError

    data = Path(args.data)
    if data.exists() and not data.is_dir():
        raise UserError(f"{data}: is a file; --data takes a dataset folder (see cliphaze data check)")
    import warnings

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            dataset = open_benchmark(args.data, split=args.split, layout=args.layout)
    except (FileNotFoundError, ValueError) as err:
        raise UserError(f"{err}") from None
    for w in caught:
        print(f"cliphaze eval: warning: {w.message}", file=sys.stderr)
    if len(dataset) == 0:
        raise UserError(f"{args.data}: no pairs in split {args.split!r}; try --split all")
    n = len(dataset) if args.max_images is None else min(len(dataset), args.max_images)
    print(f"{args.data}: {len(dataset)} pair(s) in split {args.split!r}; evaluating {n}")
    images = [q for pair in dataset.pairs for q in (pair.hazy, pair.clear)]
    _check_report_path(args.csv, "--csv", images)
    _check_report_path(args.markdown, "--markdown", images)
    try:
        methods = [get_method(m, args.device) for m in args.methods.split(",") if m.strip()]
    except (CheckpointError, FileNotFoundError, ValueError) as err:
        raise UserError(f"--methods: {err}") from None
    except RuntimeError as err:  # e.g. an unknown --device
        raise UserError(f"--methods {args.methods} on device {args.device!r}: {str(err)[:200]}") from None
    if not methods:
        raise UserError(f"--methods {args.methods!r} names no method; e.g. hazy,dcp,aodnet,cliphaze-tiny")
    try:
        report = evaluate(methods, dataset, dataset_name=f"{Path(args.data).name} ({args.split} split)",
                          max_images=args.max_images, progress=True, device=args.device, warmup=not args.no_warmup)
    except (ImageReadError, ValueError) as err:  # an unreadable image or a size mismatch mid-way
        raise UserError(f"{err}; run cliphaze data check {args.data} for a full report") from None
    print(report.to_markdown())
    try:
        if args.csv:
            print(f"per-image scores: {report.write_csv(args.csv)}")
        if args.markdown:
            path = report.write_markdown(args.markdown, command=canonical_command(args),
                                         notes=machine_notes(args.device))
            print(f"results table: {path}")
    except OSError as err:
        raise UserError(f"{err.filename or args.csv or args.markdown}: cannot write ({err.strerror or err}); "
                        "choose a file in a folder you can write to") from None
    return 0


def run_families(args: argparse.Namespace) -> int:
    """``cliphaze eval --families``: every method on seeded haze of each family over clear photos."""
    from cliphaze.analysis.dehaze_families import (
        evaluate_families,
        family_markdown,
        family_pairs,
        generalisation_gap,
        write_family_csv,
    )
    from cliphaze.cli_types import UserError
    from cliphaze.clip.crops import load_photos
    from cliphaze.evaluate import get_method
    from cliphaze.haze import HAZE_FAMILIES
    from cliphaze.io import ImageReadError, list_images
    from cliphaze.serialization import CheckpointError

    unknown = [f for f in list(args.families) + list(args.held_out) if f not in HAZE_FAMILIES]
    if unknown:
        raise UserError(f"--families/--held-out: unknown haze families {unknown}; choose from {sorted(HAZE_FAMILIES)}")
    data = Path(args.data)
    if not data.is_dir():
        raise UserError(f"{data}: not a folder; with --families, --data takes a folder of clear photos")
    files = list_images(data)
    if not files:
        raise UserError(f"{data}: holds no images; with --families, --data takes a folder of clear photos")
    try:
        photos = load_photos([data], max_side=args.max_side)
    except (ImageReadError, FileNotFoundError) as err:
        raise UserError(f"{err}") from None
    n = len(photos) if args.max_images is None else min(len(photos), args.max_images)
    photos, names = photos[:n], [f.stem for f in files[:n]]
    _check_report_path(args.csv, "--csv", files)
    _check_report_path(args.markdown, "--markdown", files)
    print(f"{data}: {len(files)} clear photo(s); hazing {n} per family (longer side {args.max_side})")
    try:
        methods = [get_method(m, args.device) for m in args.methods.split(",") if m.strip()]
    except (CheckpointError, FileNotFoundError, ValueError) as err:
        raise UserError(f"--methods: {err}") from None
    pairs = family_pairs(photos, names, args.families, seed=args.seed)
    reports = evaluate_families(methods, pairs, device=args.device)
    table = family_markdown(reports, held_out=args.held_out)
    lines = ["Protocol: PSNR (dB) / SSIM on RGB [0,1] per image then averaged (pytorch_msssim); "
             f"each family hazes the same {n} photos of {data.name} (seed {args.seed}); real-depth hazes the "
             "real colour + depth pairs instead.", "", table]
    for held in args.held_out:
        if held in reports:
            for m in reports[held].methods():
                if m == "hazy":
                    continue
                gap = generalisation_gap(reports, m, held)
                why = ("trained on nothing: how much harder the held-out family is in itself" if m == "dcp"
                       else "mean PSNR over the other families minus PSNR on the held-out family")
                lines.append(f"\nGeneralisation gap of {m} on {held}: {gap:+.2f} dB ({why})")
    text = "\n".join(lines)
    print(text)
    if args.csv:
        try:
            print(f"per-image scores: {write_family_csv(reports, args.csv)}")
        except OSError as err:
            raise UserError(f"{args.csv}: cannot write ({err.strerror or err})") from None
    if args.markdown:
        try:
            args.markdown.parent.mkdir(parents=True, exist_ok=True)
            args.markdown.write_text(text + "\n")
        except OSError as err:
            raise UserError(f"{args.markdown}: cannot write ({err.strerror or err})") from None
        print(f"family table: {args.markdown}")
    return 0
