"""Selective-scan speed and memory: every CPU rung side by side, plus a public peer (one thread).

At (d_inner, d_state) = (32, 8) (the shipped ``tiny`` model's widest level) and (256, 16), with
four directions (so the scan runs ``4 d_inner`` channels with B/C grouped per direction, exactly
as SS2D calls it), batch 1 and L = 64^2, 128^2, 256^2, one run prints for each backend: forward
and forward+backward milliseconds (median of ``--repeats`` runs after one warm-up; a case whose
first run takes over 2 s is timed by that run alone), nanoseconds per (channel, state, step)
element of the forward, forward+backward over forward, and the peak extra resident memory (the
process's VmHWM, reset before the run, minus its resident size before; each case runs in a fresh
subprocess, so allocator caches of other cases do not hide it).

Backends: ``reference`` (the readable loop; forward only where its projected time is under
``--loop-max-s``, forward+backward once at d_inner = 32, L = 32^2, since its autograd backward is
quadratic in L), ``fast_cpu`` (pure PyTorch), ``compiled`` (numba), and ``mambapy``, the parallel
(Blelloch) scan of the public ``mambapy`` package (``pip install 'cliphaze[bench]'``), timed
through its own ``selective_scan`` recipe (``deltaA = exp(delta A)``, ``BX = delta B u``,
``pscan``, ``y = hs C + D u``) on the same inputs in its (b, l, d) layout; it keeps
(b, l, d, n) tensors, so it is skipped above ``--peer-max-gb``. ``chunked`` can be added with
``--backends``. Every backend's forward output is checked against ``compiled`` (the "max rel
diff" column), so the table compares equal computations.

    OMP_NUM_THREADS=1 python benchmarks/scan.py            # the full table (about 10 minutes)
    OMP_NUM_THREADS=1 python benchmarks/scan.py --quick    # (32, 8) at L = 32^2 and 64^2 (about a minute)

Times are process CPU time by default (``--clock cpu``): on a shared machine a single-threaded
run's CPU time is its work, while its wall time also counts the time other processes held the
core; ``--clock wall`` measures wall time. On a machine with CUDA the same cases also run on the
GPU (chunked, fast_cpu's algorithm and, if importable, mamba-ssm's kernel). The scan itself is
derived in notebooks/03_selective_scan.ipynb.
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
from _memory import reset_peak_rss, rss_mb  # benchmarks/ is on sys.path when run as a script

from cliphaze.hostinfo import cpu_description

WIDTHS = ((32, 8), (256, 16))          # (d_inner, d_state)
LENGTHS = (64 * 64, 128 * 128, 256 * 256)
QUICK_WIDTHS = ((32, 8),)
QUICK_LENGTHS = (32 * 32, 64 * 64)
LOOP_BACKWARD_CASE = (32, 8, 32 * 32)   # the only case where the loop's quadratic backward runs
K = 4
CLOCKS = {"cpu": time.process_time, "wall": time.perf_counter}
_clock = time.process_time


def make_case(d_inner: int, l: int, device: str = "cpu", requires_grad: bool = False, N: int = 16):
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


def mambapy_available() -> bool:
    try:
        import mambapy.pscan  # noqa: F401
    except Exception:  # noqa: BLE001 - any failure means "not installed" here
        return False
    return True


def mambapy_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """Our arguments -> mambapy's ``Mamba.selective_scan`` recipe (mambapy/mamba.py) and back.

    mambapy takes (b, l, d) sequences and one ungrouped B, C (b, l, n); here B/C are grouped per
    direction, so ``delta B`` is formed per group. The layout changes and the softplus happen
    outside the part mambapy computes but inside the timing (every backend pays its own).
    """
    from mambapy.pscan import pscan

    b, kd, l = u.shape
    g, n = B.shape[1], B.shape[2]
    dt = delta + delta_bias[:, None] if delta_bias is not None else delta
    dt = torch.nn.functional.softplus(dt) if delta_softplus else dt
    x, dt = u.transpose(1, 2), dt.transpose(1, 2)                           # (b, l, kd)
    Bl = B.permute(0, 3, 1, 2)                                              # (b, l, g, n)
    Cl = C.permute(0, 3, 1, 2)
    deltaA = torch.exp(dt.unsqueeze(-1) * A)                                # (b, l, kd, n)
    BX = (dt * x).view(b, l, g, kd // g, 1) * Bl.unsqueeze(3)              # (b, l, g, kd/g, n)
    hs = pscan(deltaA, BX.reshape(b, l, kd, n))
    y = (hs.view(b, l, g, kd // g, n) @ Cl.unsqueeze(-1)).reshape(b, l, kd)
    if D is not None:
        y = y + D * x
    return y.transpose(1, 2)


def scan_fn(backend: str):
    from cliphaze import ssm

    if backend == "mamba_ssm":
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
        return selective_scan_fn
    if backend == "mambapy":
        return mambapy_scan
    return {"reference": ssm.selective_scan_reference, "fast_cpu": ssm.selective_scan_fast_cpu,
            "compiled": ssm.selective_scan_compiled, "chunked": ssm.selective_scan_chunked}[backend]


def _time(fn, repeats: int, sync=lambda: None, clock=None) -> float:
    clock = clock or _clock
    times = []
    for _ in range(repeats):
        sync()
        t0 = clock()
        fn()
        sync()
        times.append(clock() - t0)
    return statistics.median(times) * 1e3


def worker(backend: str, d_inner: int, n: int, l: int, modes: list[str], repeats: int) -> dict:
    """Measure one case in this (fresh) process; returns ms and peak extra MB per mode, the
    first call's time (JIT compile or cache load for ``compiled``) and the forward's largest
    difference from the compiled scan, relative to the largest output."""
    torch.set_num_threads(1)
    fn = scan_fn(backend)
    result = {}
    t0 = time.perf_counter()
    with torch.no_grad():
        out = fn(**make_case(d_inner, min(l, 64), N=n), delta_softplus=True)
    result["first_call_s"] = time.perf_counter() - t0
    if "fwd_bwd" in modes:
        # The backward has kernels of its own (compiled, or loaded from numba's cache, on first
        # use): warm them up too, or the first timed forward+backward pays for it (several
        # seconds on a slow machine, where a first run over 2 s would be reported as the timing).
        w = make_case(d_inner, min(l, 64), requires_grad=True, N=n)
        fn(**w, delta_softplus=True).sum().backward()
    if backend != "compiled":
        from cliphaze.ssm import selective_scan_compiled
        xs = make_case(d_inner, min(l, 4096), N=n)
        with torch.no_grad():
            mine, ref = fn(**xs, delta_softplus=True), selective_scan_compiled(**xs, delta_softplus=True)
        result["max_rel_diff"] = float((mine - ref).abs().max() / ref.abs().max())
    del out
    for mode in modes:
        x = make_case(d_inner, l, requires_grad=(mode == "fwd_bwd"), N=n)

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
        base = rss_mb("VmRSS")
        reset_peak_rss()
        first_ms = _time(run, 1)
        peak = max(0.0, rss_mb("VmHWM") - base)
        # A case that takes over 2 s is timed by that first run alone (warm-up effects are then
        # negligible and repeats would push the full table past ten minutes).
        ms = first_ms if first_ms > 2000 else _time(run, repeats)   # the first run was the warm-up
        result[mode] = {"ms": ms, "peak_mb": peak}
    return result


def run_case_in_subprocess(backend, d_inner, n, l, modes, repeats, clock) -> dict:
    cmd = [sys.executable, __file__, "--clock", clock, "--worker", backend, str(d_inner), str(n),
           str(l), ",".join(modes), str(repeats)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"benchmark worker failed: {' '.join(cmd)}\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def cpu_table(widths, lengths, repeats, backends, loop_max_s, peer_max_gb, chunked_max_gb,
              clock) -> list[dict]:
    rows = []
    cases = [(d, n, l) for d, n in widths for l in lengths]
    if LOOP_BACKWARD_CASE not in cases and "reference" in backends:
        cases.insert(0, LOOP_BACKWARD_CASE)
    loop_ns = 150.0            # the loop's forward ns/element, updated from its first measurement
    for d_inner, n, l in cases:
        elements = K * d_inner * n * l
        ref = {}

        def skip(backend, note, d_inner=d_inner, n=n, l=l):
            rows.append(dict(d=d_inner, n=n, l=l, backend=backend, note=note))
            print(format_row(rows[-1]), flush=True)

        for backend in backends:
            modes, note = ["fwd", "fwd_bwd"], ""
            if backend == "reference":
                projected = loop_ns * elements * 1e-9
                if projected > loop_max_s:
                    skip(backend, f"skipped: > {loop_max_s:.0f} s (projected {projected:.0f} s)")
                    continue
                if (d_inner, n, l) != LOOP_BACKWARD_CASE:
                    modes, note = ["fwd"], "fwd only (backward quadratic in L)"
            if backend == "mambapy":
                if not mambapy_available():
                    skip(backend, "not installed (pip install 'cliphaze[bench]')")
                    continue
                est_gb = 8 * elements * 4 / 1e9
                if est_gb > peer_max_gb:
                    skip(backend, f"skipped: ~{est_gb:.0f} GB of (b, l, d, n) tensors")
                    continue
            if backend == "compiled":
                from cliphaze.ssm import numba_available
                if not numba_available():
                    skip(backend, "numba not installed")
                    continue
            if backend == "chunked":
                est_gb = 10 * elements * 4 / 1e9
                if est_gb > chunked_max_gb:
                    skip(backend, f"skipped: ~{est_gb:.0f} GB of autograd tensors")
                    continue
            r = run_case_in_subprocess(backend, d_inner, n, l, modes, repeats, clock)
            row = dict(d=d_inner, n=n, l=l, backend=backend, note=note, elements=elements,
                       diff=r.get("max_rel_diff"), first=r["first_call_s"])
            for mode in modes:
                row[mode] = r[mode]["ms"]
                row[mode + "_mb"] = r[mode]["peak_mb"]
            if backend == "reference":
                ref = row
                loop_ns = row["fwd"] * 1e6 / elements
            for mode in ("fwd", "fwd_bwd"):
                if mode in row and mode in ref and backend != "reference":
                    row[mode + "_speedup"] = ref[mode] / row[mode]
            rows.append(row)
            print(format_row(row), flush=True)
    return rows


def gpu_table(widths, lengths, repeats) -> list[dict]:
    from cliphaze.ssm import mamba_ssm_available

    backends = ["chunked", "fast_cpu"] + (["mamba_ssm"] if mamba_ssm_available() else [])
    rows = []
    for d_inner, n in widths:
        for l in lengths:
            for backend in backends:
                fn = scan_fn(backend)
                row = dict(d=d_inner, n=n, l=l, backend=backend + " (cuda)", note="",
                           elements=K * d_inner * n * l)
                for mode in ("fwd", "fwd_bwd"):
                    x = make_case(d_inner, l, "cuda", requires_grad=(mode == "fwd_bwd"), N=n)

                    def run(x=x, mode=mode, fn=fn):
                        if mode == "fwd":
                            with torch.no_grad():
                                fn(**x, delta_softplus=True)
                        else:
                            fn(**x, delta_softplus=True).sum().backward()

                    run()
                    torch.cuda.reset_peak_memory_stats()
                    base = torch.cuda.memory_allocated()
                    row[mode] = _time(run, repeats, torch.cuda.synchronize, time.perf_counter)
                    row[mode + "_mb"] = (torch.cuda.max_memory_allocated() - base) / 2**20
                rows.append(row)
                print(format_row(row), flush=True)
    return rows


HEADER = ("| d_inner, n | L | backend | fwd ms | fwd ns/el | fwd+bwd ms | (fwd+bwd)/fwd | peak MB fwd "
          "| peak MB fwd+bwd | speed-up vs loop (fwd / fwd+bwd) | max rel diff vs compiled | note |\n"
          + "|---" * 12 + "|")


def format_row(row: dict) -> str:
    def f(key, fmt):
        return format(row[key], fmt) if row.get(key) is not None else "-"

    if "elements" not in row:
        row["elements"] = K * row["d"] * row["n"] * row["l"]
    ns = format(row["fwd"] * 1e6 / row["elements"], ".2f") if "fwd" in row else "-"
    ratio = format(row["fwd_bwd"] / row["fwd"], ".2f") if "fwd" in row and "fwd_bwd" in row else "-"
    side = int(round(row["l"] ** 0.5))
    speed = f"{f('fwd_speedup', '.0f')} / {f('fwd_bwd_speedup', '.0f')}"
    return (f"| {row['d']}, {row['n']} | {side}^2 | {row['backend']} | {f('fwd', '.1f')} | {ns} "
            f"| {f('fwd_bwd', '.1f')} | {ratio} | {f('fwd_mb', '.0f')} | {f('fwd_bwd_mb', '.0f')} "
            f"| {speed} | {f('diff', '.1e')} | {row.get('note', '')} |")


def compile_times(clock_name: str) -> str:
    """First compiled call in a fresh process with an empty numba cache, then with the cache."""
    import tempfile

    code = ("import time, torch; t = time.perf_counter(); "
            "from cliphaze.ssm import selective_scan_compiled as f; "
            "x = {k: v.requires_grad_() for k, v in __import__('scan').make_case(4, 64, N=8).items()}; "
            "f(**x, delta_softplus=True).sum().backward(); print(time.perf_counter() - t)")
    out = []
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_CACHE_DIR=cache,
                   PYTHONPATH=os.pathsep.join([os.path.dirname(os.path.abspath(__file__)),
                                               os.environ.get("PYTHONPATH", "")]))
        for _ in range(2):
            r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
            if r.returncode != 0:
                return f"compile-time check failed: {r.stderr[-500:]}"
            out.append(float(r.stdout.split()[-1]))
    return (f"compiled backend, first forward+backward in a fresh process (wall time, numba "
            f"import included): {out[0]:.1f} s with an empty cache (compiling), "
            f"{out[1]:.1f} s with the cache")


def main(argv=None) -> int:
    global _clock
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="(32, 8) at L = 32^2 and 64^2 only (about a minute)")
    p.add_argument("--repeats", type=int, default=None, help="timed runs per case (median); default 3, quick 5")
    p.add_argument("--backends", default="reference,fast_cpu,compiled,mambapy")
    p.add_argument("--clock", choices=sorted(CLOCKS), default="cpu")
    p.add_argument("--loop-max-s", type=float, default=20.0,
                   help="run the reference loop only where its projected forward time is below this")
    p.add_argument("--peer-max-gb", type=float, default=4.0)
    p.add_argument("--chunked-max-gb", type=float, default=3.0)
    p.add_argument("--worker", nargs=6, metavar=("BACKEND", "D", "N", "L", "MODES", "REPEATS"),
                   help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    _clock = CLOCKS[args.clock]
    torch.set_num_threads(1)
    if args.worker:
        backend, d, n, l, modes, reps = args.worker
        print(json.dumps(worker(backend, int(d), int(n), int(l), modes.split(","), int(reps))))
        return 0
    widths = QUICK_WIDTHS if args.quick else WIDTHS
    lengths = QUICK_LENGTHS if args.quick else LENGTHS
    repeats = args.repeats or (5 if args.quick else 3)
    print(f"# selective scan, 1 thread, K={K} directions, batch 1, median of {repeats} runs, "
          f"{args.clock} clock; torch {torch.__version__}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    print(f"# CPU: {cpu_description()}")
    print(HEADER, flush=True)
    t0 = time.perf_counter()
    cpu_table(widths, lengths, repeats, args.backends.split(","), args.loop_max_s,
              args.peer_max_gb, args.chunked_max_gb, args.clock)
    if "compiled" in args.backends.split(","):
        print("\n# " + compile_times(args.clock))
    if torch.cuda.is_available():
        print("\n# CUDA (" + torch.cuda.get_device_name() + ")")
        print(HEADER)
        gpu_table(widths, lengths, repeats)
    print(f"\n# total benchmark time {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
