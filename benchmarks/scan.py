"""Selective-scan speed and memory: every backend on SS2D-sized problems (single CPU thread).

For d_inner in {64, 128, 192}, N = 16 and four directions (so the scan runs 4 * d_inner channels
with B/C grouped per direction, exactly as SS2D calls it), batch 1 and L = 64^2, 128^2, 256^2, it
prints forward and forward+backward milliseconds (median of ``--repeats`` runs after one warm-up;
a case whose first run takes over 2 s is timed by that run alone),
nanoseconds per (channel, state, step) element, the ratio of forward+backward to forward, the peak
extra resident memory of each (CPU: the process's VmHWM after resetting it, measured in a fresh
subprocess per case; CUDA: ``torch.cuda.max_memory_allocated``) and the speed-up over the
reference loop.

The readable reference loop is timed forward only up to L = 128^2, and forward+backward only at
d_inner = 64, L = 32^2 (an extra row): its autograd backward is quadratic in L (every
``x[:, :, t]`` slice gets a full-size gradient), minutes at larger sizes. The chunked scan is a
GPU algorithm (few large operations, several (b, d, L, n) tensors kept for autograd); on CPU it
runs up to ``--chunked-max-l`` and ``--chunked-max-gb`` and the skipped rows say so.

    OMP_NUM_THREADS=1 python benchmarks/scan.py            # the full table (about 5-10 minutes)
    OMP_NUM_THREADS=1 python benchmarks/scan.py --quick    # d_inner 64, L = 32^2 and 64^2 (about a minute)

On a machine with CUDA the same cases also run on the GPU (chunked, fast_cpu's algorithm and, if
importable, mamba-ssm's kernel). Timings on a shared CPU vary by 10-30% between runs: compare
medians, not single runs. The scan itself is derived in notebooks/03_selective_scan.ipynb.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch

D_INNERS = (64, 128, 192)
LENGTHS = (64 * 64, 128 * 128, 256 * 256)
QUICK_D_INNERS = (64,)
QUICK_LENGTHS = (32 * 32, 64 * 64)
K, N = 4, 16


def make_case(d_inner: int, l: int, device: str = "cpu", requires_grad: bool = False):
    """SS2D-shaped scan inputs at VMamba's initialisation: (1, K d, l) sequences, A = -(1..N)."""
    gen = torch.Generator().manual_seed(0)
    kd = K * d_inner
    dt_bias = torch.log(torch.expm1(torch.exp(torch.rand(kd, generator=gen) * (torch.log(torch.tensor(0.1))
                                                                                 - torch.log(torch.tensor(1e-3)))
                                              + torch.log(torch.tensor(1e-3)))))
    x = dict(u=torch.randn(1, kd, l, generator=gen), delta=torch.randn(1, kd, l, generator=gen) * 0.1,
             A=-torch.arange(1, N + 1, dtype=torch.float32).repeat(kd, 1),
             B=torch.randn(1, K, N, l, generator=gen), C=torch.randn(1, K, N, l, generator=gen),
             D=torch.ones(kd), delta_bias=dt_bias)
    return {k: v.to(device).requires_grad_(requires_grad) for k, v in x.items()}


def scan_fn(backend: str):
    from cliphaze import ssm

    if backend == "mamba_ssm":
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
        return selective_scan_fn
    return {"reference": ssm.selective_scan_reference, "fast_cpu": ssm.selective_scan_fast_cpu,
            "chunked": ssm.selective_scan_chunked}[backend]


def _rss_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak_rss() -> None:
    with open("/proc/self/clear_refs", "w") as f:   # "5" resets VmHWM to the current RSS (Linux)
        f.write("5")


def _time(fn, repeats: int, sync=lambda: None) -> float:
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def worker(backend: str, d_inner: int, l: int, modes: list[str], repeats: int) -> dict:
    """Measure one case in this (fresh) process; returns ms and peak extra MB per mode."""
    torch.set_num_threads(1)
    fn = scan_fn(backend)
    result = {}
    for mode in modes:
        x = make_case(d_inner, l, requires_grad=(mode == "fwd_bwd"))

        def run(x=x, mode=mode):
            if mode == "fwd":
                with torch.no_grad():
                    fn(**x, delta_softplus=True)
            else:
                fn(**x, delta_softplus=True).sum().backward()
                for v in x.values():
                    v.grad = None

        # Peak memory from the first run, measured from a fresh high-water mark: later runs may
        # reuse memory the allocator kept, which would hide the true peak.
        base = _rss_mb("VmRSS")
        _reset_peak_rss()
        first_ms = _time(run, 1)
        peak = max(0.0, _rss_mb("VmHWM") - base)
        # A case that takes over 2 s is timed by that first run alone (warm-up effects are then
        # negligible and repeats would push the full table past ten minutes).
        ms = first_ms if first_ms > 2000 else _time(run, repeats)   # the first run was the warm-up
        result[mode] = {"ms": ms, "peak_mb": peak}
    return result


def run_case_in_subprocess(backend, d_inner, l, modes, repeats) -> dict:
    cmd = [sys.executable, __file__, "--worker", backend, str(d_inner), str(l), ",".join(modes),
           str(repeats)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"benchmark worker failed: {' '.join(cmd)}\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def cpu_table(d_inners, lengths, repeats, chunked_max_gb, chunked_max_l, backends,
              loop_backward_case) -> list[dict]:
    rows = []
    cases = [(d, l) for d in d_inners for l in lengths]
    if loop_backward_case not in cases:
        cases.insert(0, loop_backward_case)
    for d_inner, l in cases:
        elements = K * d_inner * N * l
        ref = {}
        for backend in backends:
            modes, note = ["fwd", "fwd_bwd"], ""
            if backend == "reference":
                if l > 128 * 128:
                    rows.append(dict(d=d_inner, l=l, backend=backend, note="skipped: loop too slow"))
                    print(format_row(rows[-1]), flush=True)
                    continue
                if (d_inner, l) != loop_backward_case:
                    modes, note = ["fwd"], "fwd only (backward quadratic in L)"
            if backend == "chunked":
                est_gb = 10 * elements * 4 / 1e9
                if l > chunked_max_l:
                    rows.append(dict(d=d_inner, l=l, backend=backend,
                                     note=f"skipped on CPU above L = {chunked_max_l} (a GPU algorithm)"))
                    print(format_row(rows[-1]), flush=True)
                    continue
                if est_gb > chunked_max_gb:
                    rows.append(dict(d=d_inner, l=l, backend=backend,
                                     note=f"skipped: ~{est_gb:.0f} GB of autograd tensors"))
                    print(format_row(rows[-1]), flush=True)
                    continue
            r = run_case_in_subprocess(backend, d_inner, l, modes, repeats)
            row = dict(d=d_inner, l=l, backend=backend, note=note, elements=elements)
            for mode in r:
                row[mode] = r[mode]["ms"]
                row[mode + "_mb"] = r[mode]["peak_mb"]
            if backend == "reference":
                ref = row
            for mode in ("fwd", "fwd_bwd"):
                if mode in row and mode in ref and backend != "reference":
                    row[mode + "_speedup"] = ref[mode] / row[mode]
            rows.append(row)
            print(format_row(row), flush=True)
    return rows


def gpu_table(d_inners, lengths, repeats) -> list[dict]:
    from cliphaze.ssm import mamba_ssm_available

    backends = ["chunked", "fast_cpu"] + (["mamba_ssm"] if mamba_ssm_available() else [])
    rows = []
    for d_inner in d_inners:
        for l in lengths:
            for backend in backends:
                fn = scan_fn(backend)
                row = dict(d=d_inner, l=l, backend=backend + " (cuda)", note="", elements=K * d_inner * N * l)
                for mode in ("fwd", "fwd_bwd"):
                    x = make_case(d_inner, l, "cuda", requires_grad=(mode == "fwd_bwd"))

                    def run(x=x, mode=mode, fn=fn):
                        if mode == "fwd":
                            with torch.no_grad():
                                fn(**x, delta_softplus=True)
                        else:
                            fn(**x, delta_softplus=True).sum().backward()

                    run()
                    torch.cuda.reset_peak_memory_stats()
                    base = torch.cuda.memory_allocated()
                    row[mode] = _time(run, repeats, torch.cuda.synchronize)
                    row[mode + "_mb"] = (torch.cuda.max_memory_allocated() - base) / 2**20
                rows.append(row)
                print(format_row(row), flush=True)
    return rows


HEADER = ("| d_inner | L | backend | fwd ms | fwd ns/el | fwd+bwd ms | (fwd+bwd)/fwd | peak MB fwd "
          "| peak MB fwd+bwd | speed-up vs loop (fwd / fwd+bwd) | note |\n" + "|---" * 11 + "|")


def format_row(row: dict) -> str:
    def f(key, fmt):
        return format(row[key], fmt) if key in row else "-"

    if "elements" not in row:
        row["elements"] = K * row["d"] * N * row["l"]
    ns = format(row["fwd"] * 1e6 / row["elements"], ".2f") if "fwd" in row else "-"
    ratio = format(row["fwd_bwd"] / row["fwd"], ".2f") if "fwd" in row and "fwd_bwd" in row else "-"
    side = int(round(row["l"] ** 0.5))
    speed = f"{f('fwd_speedup', '.0f')} / {f('fwd_bwd_speedup', '.0f')}"
    return (f"| {row['d']} | {side}^2 | {row['backend']} | {f('fwd', '.1f')} | {ns} | {f('fwd_bwd', '.1f')} "
            f"| {ratio} | {f('fwd_mb', '.0f')} | {f('fwd_bwd_mb', '.0f')} | {speed} | {row.get('note', '')} |")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="d_inner 64, L = 32^2 and 64^2 only (about a minute)")
    p.add_argument("--repeats", type=int, default=None, help="timed runs per case (median); default 3, quick 5")
    p.add_argument("--backends", default="reference,fast_cpu,chunked")
    p.add_argument("--chunked-max-gb", type=float, default=3.0)
    p.add_argument("--chunked-max-l", type=int, default=64 * 64,
                   help="longest sequence for the chunked scan on CPU (it is slower than fast_cpu there)")
    p.add_argument("--worker", nargs=5, metavar=("BACKEND", "D", "L", "MODES", "REPEATS"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.worker:
        backend, d, l, modes, reps = args.worker
        print(json.dumps(worker(backend, int(d), int(l), modes.split(","), int(reps))))
        return 0
    d_inners = QUICK_D_INNERS if args.quick else D_INNERS
    lengths = QUICK_LENGTHS if args.quick else LENGTHS
    repeats = args.repeats or (5 if args.quick else 3)
    print(f"# selective scan, 1 thread, N={N}, K={K} directions, batch 1, median of {repeats} runs; "
          f"torch {torch.__version__}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    print(HEADER, flush=True)
    t0 = time.perf_counter()
    # The loop's quadratic backward is timed once, on the smallest case.
    cpu_table(d_inners, lengths, repeats, args.chunked_max_gb, args.chunked_max_l,
              args.backends.split(","), loop_backward_case=(64, 32 * 32))
    if torch.cuda.is_available():
        print("\n# CUDA (" + torch.cuda.get_device_name() + ")")
        print(HEADER)
        gpu_table(d_inners, lengths, repeats)
    print(f"\n# total benchmark time {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
