"""What CPU a timing was measured on: model name, compiler target and vector instruction set.

Why it matters: the compiled scan (:mod:`cliphaze.ssm.compiled`) keeps a 16-number state in
vector registers. With AVX-512 that is one register and one instruction per operation; with
AVX2 it is two 8-wide registers, and on AMD's Zen 1 cores every 256-bit instruction is itself
split into two 128-bit halves. The same kernel then runs at a different speed per element (the
README's performance section gives both kinds of machine), and a CPU model name such as
"AMD EPYC" does not tell these machines apart. Every
benchmark header and every timing note of ``cliphaze eval`` therefore names the target LLVM
compiles for (the one numba uses, e.g. ``znver1``, ``icelake-server``) and the widest vector
instruction set the CPU offers.
"""

from __future__ import annotations

import platform

__all__ = ["cpu_model", "cpu_features", "vector_isa", "cpu_description"]


def cpu_model() -> str:
    """The CPU model name (``/proc/cpuinfo``'s ``model name`` on Linux), else what Python reports."""
    name = platform.processor() or platform.machine() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            name = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), name)
    except OSError:
        pass
    return name


def cpu_features() -> tuple[str | None, set[str]]:
    """``(LLVM target name, feature names)`` of this CPU.

    From llvmlite (installed with numba, so it is the target the compiled scan is built for);
    without it, the ``flags`` line of ``/proc/cpuinfo`` and no target name.
    """
    try:
        import llvmlite.binding as llvm

        name = llvm.get_host_cpu_name()
        feats = llvm.get_host_cpu_features()
        return name, {k for k, on in feats.items() if on}
    except Exception:  # noqa: BLE001 - llvmlite missing or too old: fall back to /proc/cpuinfo
        pass
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
        return None, set(flags)
    except OSError:
        return None, set()


def vector_isa(features: set[str]) -> str:
    """The widest x86 vector instruction set in ``features`` ("AVX-512", "AVX2", "AVX", "SSE"),
    or "unknown" (another architecture, or no information)."""
    if "avx512f" in features:
        return "AVX-512"
    if "avx2" in features:
        return "AVX2"
    if "avx" in features:
        return "AVX"
    if any(f.startswith("sse") for f in features):
        return "SSE"
    return "unknown"


def cpu_description() -> str:
    """One line for a timing note, e.g. ``"AMD EPYC (LLVM target znver1, AVX2, no AVX-512)"``."""
    name, feats = cpu_features()
    isa = vector_isa(feats)
    parts = ([f"LLVM target {name}"] if name else []) + [isa]
    if isa in ("AVX2", "AVX", "SSE"):
        parts.append("no AVX-512")
    return f"{cpu_model()} ({', '.join(parts)})"
