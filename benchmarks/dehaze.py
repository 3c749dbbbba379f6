"""The main job's cost: ``cliphaze dehaze`` with the shipped model against the dark channel prior.

For a 512 x 512, a 1 MP (768 x 1365) and a 12 MP (3000 x 4000) image (a bundled sample photo,
resized in memory; nothing is written), each in a fresh subprocess on one thread, it prints the
seconds and seconds per megapixel of ``CLIPHaze.dehaze_tensor`` (guide, network, tiling: what
``cliphaze dehaze`` runs per image, without file I/O), the peak extra resident memory (VmHWM,
reset before the run, minus the resident size before it: model and warm-up excluded), the dark
channel prior's time on the same image in the same process (``cliphaze.baselines.dcp``), and
their ratio. With ``--split`` it also times the components (exclusive time of each module class,
the selective scan separately) with forward hooks, which add a little overhead.

    OMP_NUM_THREADS=1 python benchmarks/dehaze.py             # 512^2, 1 MP, 12 MP (about 3 minutes)
    OMP_NUM_THREADS=1 python benchmarks/dehaze.py --quick     # 512^2 only

Times are process CPU time by default (``--clock cpu``; on a shared machine a single-threaded
run's CPU time is its work, its wall time also counts other processes); ``--clock wall`` for wall
time. Like the command line, the worker keeps freed memory in the process
(:mod:`cliphaze.allocator`); ``CLIPHAZE_MALLOC=system`` measures with the C library's defaults.
The first call of the process (compiling or loading the compiled scan, building masks) is
made on a small crop before timing.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import time

from _memory import reset_peak_rss, rss_mb  # benchmarks/ is on sys.path when run as a script

from cliphaze.hostinfo import cpu_description

SIZES = {"512^2": (512, 512), "1 MP": (768, 1365), "12 MP": (3000, 4000)}
SAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "data", "samples",
                      "hazy", "coffee.png")


def _split_hooks(model):
    """Exclusive time per module class (and the scan) through forward hooks; returns the dict."""
    import cliphaze.ssm.ss2d as ss2d_module

    acc = collections.defaultdict(float)
    stack = []

    def push(name):
        stack.append([name, time.process_time(), 0.0])

    def pop():
        name, t0, child = stack.pop()
        dt = time.process_time() - t0
        acc[name] += dt - child
        if stack:
            stack[-1][2] += dt

    def label(mod):
        name = type(mod).__name__
        if name == "Conv2d":
            return "depthwise conv" if mod.groups > 1 else "conv"
        return {"SS2D": "SS2D (projections, cross-scan/merge)", "WindowAttention": "window attention",
                "Linear": "linear"}.get(name, "other layers")

    for mod in model.net.modules():
        mod.register_forward_pre_hook(lambda m, a: push(label(m)))
        mod.register_forward_hook(lambda m, a, o: pop())
    scan = ss2d_module.selective_scan

    def timed_scan(*a, **k):
        push("selective scan")
        try:
            return scan(*a, **k)
        finally:
            pop()

    ss2d_module.selective_scan = timed_scan
    guidance = model.guidance

    def timed_guidance(x):
        push("guide (CLIP)")
        try:
            return guidance(x)
        finally:
            pop()

    model.guidance = timed_guidance
    return acc, push, pop


def worker(size: str, clock_name: str, split: bool) -> dict:
    import numpy as np
    import torch
    from PIL import Image

    from cliphaze.allocator import keep_freed_memory
    from cliphaze.baselines.dcp import dehaze_dcp
    from cliphaze.model import load_model

    torch.set_num_threads(1)
    keep_freed_memory()                         # as the command line does (cliphaze.allocator)
    clock = time.process_time if clock_name == "cpu" else time.perf_counter
    h, w = SIZES[size]
    photo = Image.open(SAMPLE).convert("RGB").resize((w, h), Image.BICUBIC)
    img = torch.from_numpy(np.asarray(photo).copy()).permute(2, 0, 1).float() / 255
    model = load_model()
    acc = None
    if split:
        acc, push, pop = _split_hooks(model)
    model.dehaze_tensor(img[:, :128, :128])                     # warm-up: JIT cache, masks
    if acc is not None:
        acc.clear()
    base = rss_mb("VmRSS")
    reset_peak_rss()
    t0 = clock()
    if acc is not None:
        push("tiling, padding, blending")
    model.dehaze_tensor(img)
    if acc is not None:
        pop()
    seconds = clock() - t0
    peak = rss_mb("VmHWM") - base
    t0 = clock()
    dehaze_dcp(img)
    dcp = clock() - t0
    return {"seconds": seconds, "peak_mb": peak, "dcp_seconds": dcp, "mp": h * w / 1e6,
            "split": dict(acc) if acc is not None else None}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="512^2 only")
    p.add_argument("--sizes", default=None, help=f"comma-separated subset of {list(SIZES)}")
    p.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    p.add_argument("--split", action="store_true", help="also time the components (hooks)")
    p.add_argument("--worker", nargs=2, metavar=("SIZE", "SPLIT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker[0], args.clock, args.worker[1] == "1")))
        return 0
    sizes = ["512^2"] if args.quick else (args.sizes.split(",") if args.sizes else list(SIZES))
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE=os.environ.get("HF_HUB_OFFLINE", "1"))
    print(f"# cliphaze dehaze (shipped cliphaze-tiny, default tiling) vs dark channel prior, "
          f"1 thread, {args.clock} clock")
    print(f"# CPU: {cpu_description()}")
    print("| image | dehaze s | dehaze s/MP | peak extra MB | DCP s | DCP s/MP | dehaze / DCP |")
    print("|---|---|---|---|---|---|---|")
    splits = {}
    for size in sizes:
        cmd = [sys.executable, os.path.abspath(__file__), "--clock", args.clock, "--worker", size,
               "1" if args.split else "0"]
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if r.returncode != 0:
            print(f"| {size} | failed: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode} |")
            continue
        m = json.loads(r.stdout.strip().splitlines()[-1])
        print(f"| {size} | {m['seconds']:.2f} | {m['seconds'] / m['mp']:.2f} | {m['peak_mb']:.0f} "
              f"| {m['dcp_seconds']:.2f} | {m['dcp_seconds'] / m['mp']:.2f} "
              f"| {m['seconds'] / m['dcp_seconds']:.1f}x |", flush=True)
        splits[size] = m["split"]
    if args.split:
        names = sorted({k for s in splits.values() if s for k in s},
                       key=lambda k: -max(s.get(k, 0) for s in splits.values() if s))
        print("\n# exclusive time per component, % of the dehaze time")
        print("| component | " + " | ".join(splits) + " |")
        print("|---" * (len(splits) + 1) + "|")
        for k in names:
            cells = []
            for s in splits.values():
                total = sum(s.values()) if s else 0
                cells.append(f"{100 * s.get(k, 0) / total:.0f}%" if total else "-")
            print(f"| {k} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
