"""One entry point, ``selective_scan``, that picks a backend and says which one it used.

Backends (the ladder of notebook 03):

- ``"reference"``: the readable loop (:mod:`cliphaze.ssm.reference`); slow, for checking.
- ``"fast_cpu"``: in-place time-major scan with a reverse-time backward (:mod:`cliphaze.ssm.fast_cpu`).
- ``"compiled"``: the loop compiled by numba, with a reverse-time backward
  (:mod:`cliphaze.ssm.compiled`); CPU tensors only.
- ``"chunked"``: two-level chunked scan, few large ops (:mod:`cliphaze.ssm.chunked`).
- ``"mamba_ssm"``: mamba-ssm's CUDA kernel ``selective_scan_fn`` (CUDA tensors only).

Choice, first match wins: the ``backend=`` argument; the environment variable
``CLIPHAZE_SCAN_BACKEND``; otherwise by device: CUDA tensors use ``mamba_ssm`` when it can be
imported and ``chunked`` when not, CPU tensors use ``compiled`` when numba can be imported and
``fast_cpu`` when not. ``"auto"`` (argument or environment) asks for that device rule explicitly.
"""

from __future__ import annotations

import functools
import os

import torch

from .chunked import selective_scan_chunked
from .compiled import numba_available, selective_scan_compiled
from .fast_cpu import selective_scan_fast_cpu
from .reference import selective_scan_reference

__all__ = ["selective_scan", "resolve_backend", "last_backend", "mamba_ssm_available",
           "BACKENDS", "ENV_VAR"]

BACKENDS = ("reference", "fast_cpu", "compiled", "chunked", "mamba_ssm")
ENV_VAR = "CLIPHAZE_SCAN_BACKEND"

_last_backend: str | None = None


@functools.lru_cache(maxsize=1)
def _load_mamba_ssm_fn():
    """mamba-ssm's ``selective_scan_fn``, or None when it cannot be imported.

    Any exception counts as "not available": a mamba-ssm wheel built for another CUDA or torch
    version fails with OSError/RuntimeError rather than ImportError. Cached; tests clear the cache.
    """
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except Exception:  # noqa: BLE001 - see docstring
        return None
    return selective_scan_fn


def mamba_ssm_available() -> bool:
    """True when ``mamba_ssm.ops.selective_scan_interface.selective_scan_fn`` imports."""
    return _load_mamba_ssm_fn() is not None


def resolve_backend(device: torch.device | str, backend: str | None = None) -> str:
    """Name the backend :func:`selective_scan` would use for tensors on ``device``.

    Args:
        device: where the scan's tensors live.
        backend: one of :data:`BACKENDS`, ``"auto"`` or None (then ``$CLIPHAZE_SCAN_BACKEND``,
            then the device rule of the module docstring).

    Returns:
        One of :data:`BACKENDS`.

    Raises:
        ValueError: unknown backend name (from the argument or the environment variable).
        RuntimeError: ``"mamba_ssm"`` requested for non-CUDA tensors or without mamba-ssm installed;
            ``"compiled"`` requested for non-CPU tensors or without numba installed.
    """
    device = torch.device(device)
    source = "backend argument"
    name = backend
    if name is None:
        name, source = os.environ.get(ENV_VAR) or "auto", f"environment variable {ENV_VAR}"
    name = name.strip().lower()
    if name not in BACKENDS + ("auto",):
        raise ValueError(f"unknown selective-scan backend {name!r} (from the {source}); "
                         f"choose one of {BACKENDS} or 'auto'")
    if name == "auto":
        if device.type == "cuda":
            return "mamba_ssm" if mamba_ssm_available() else "chunked"
        if device.type == "cpu" and numba_available():
            return "compiled"
        return "fast_cpu"
    if name == "mamba_ssm":
        if device.type != "cuda":
            raise RuntimeError(f"backend 'mamba_ssm' needs CUDA tensors (got device {device}); "
                               "use 'fast_cpu' or 'chunked' here")
        if not mamba_ssm_available():
            raise RuntimeError("backend 'mamba_ssm' requested but mamba_ssm cannot be imported "
                               "(pip install 'cliphaze[cuda]' on a machine with CUDA and nvcc)")
    if name == "compiled":
        if device.type != "cpu":
            raise RuntimeError(f"backend 'compiled' runs on CPU tensors only (got device {device}); "
                               "use 'mamba_ssm' or 'chunked' there")
        if not numba_available():
            raise RuntimeError(f"backend 'compiled' requested (from the {source}) but numba cannot "
                               "be imported (pip install numba); 'fast_cpu' needs nothing extra")
    return name


def last_backend() -> str | None:
    """The backend used by the most recent :func:`selective_scan` call in this process (or None)."""
    return _last_backend


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                   return_last_state=False, *, backend=None):
    """Selective scan (Mamba's S6) with mamba-ssm's exact signature, on the best backend.

    Drop-in for ``mamba_ssm.ops.selective_scan_interface.selective_scan_fn``:

        h_t = exp(delta_t A) * h_{t-1} + delta_t B_t u_t,   y_t = <C_t, h_t>,
        out = (y + D u) * silu(z),   delta = softplus(delta + delta_bias) if delta_softplus.

    Args:
        u: (b, d, l).
        delta: (b, d, l).
        A: (d, n), real.
        B, C: (b, n, l) or grouped (b, g, n, l) (channel i uses group ``i // (d / g)``).
        D: optional (d,).
        z: optional (b, d, l).
        delta_bias: optional (d,).
        delta_softplus: softplus on ``delta + delta_bias``.
        return_last_state: also return the final state (no gradient flows through it).
        backend: see :func:`resolve_backend`; :func:`last_backend` reports the one used.

    Returns:
        ``out`` (b, d, l) in u's dtype (math in float32, float64 for float64 inputs), and with
        ``return_last_state`` also the last state (b, d, n).

    Derived in notebook 03 (sections "The loop" to "Which backend runs").
    """
    global _last_backend
    name = resolve_backend(u.device if isinstance(u, torch.Tensor) else "cpu", backend)
    args = (u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
    if name == "reference":
        result = selective_scan_reference(*args)
    elif name == "fast_cpu":
        result = selective_scan_fast_cpu(*args)
    elif name == "compiled":
        result = selective_scan_compiled(*args)
    elif name == "chunked":
        result = selective_scan_chunked(*args)
    else:
        result = _load_mamba_ssm_fn()(*args)
    _last_backend = name
    return result
