"""Selective state-space scan (Mamba's S6) and VMamba's four-direction SS2D.

A ladder of exact implementations of one recurrence (notebook ``03_selective_scan.ipynb``):

- :func:`selective_scan_reference`: the readable loop (and the float64 oracle of the tests);
- :func:`selective_scan_fast_cpu`: in-place time-major scan with a reverse-time backward
  (linear time and memory, pure PyTorch; the CPU fallback without numba);
- :func:`selective_scan_compiled`: the loop compiled by numba, with a reverse-time backward
  (linear time and memory; the default on CPU);
- :func:`selective_scan_chunked`: two-level chunked scan without divisions (GPU without mamba-ssm);
- mamba-ssm's CUDA kernel when tensors are on CUDA and it is installed.

:func:`selective_scan` (mamba-ssm's signature) picks one, :func:`last_backend` says which;
:func:`cross_scan` / :func:`cross_merge` turn an image into four sequences and back;
:class:`SS2D` is the Mamba path of the TrambaDA block.
"""

from .chunked import selective_scan_chunked
from .compiled import numba_available, selective_scan_compiled
from .cross_scan import cross_merge, cross_scan, scan_orders
from .dispatch import (
    BACKENDS,
    ENV_VAR,
    last_backend,
    mamba_ssm_available,
    resolve_backend,
    selective_scan,
)
from .fast_cpu import selective_scan_fast_cpu
from .reference import selective_scan_reference
from .ss2d import SS2D, dt_bias_init

__all__ = [
    "SS2D", "selective_scan", "cross_scan", "cross_merge", "scan_orders",
    "selective_scan_reference", "selective_scan_fast_cpu", "selective_scan_compiled",
    "selective_scan_chunked", "resolve_backend", "last_backend", "mamba_ssm_available",
    "numba_available", "dt_bias_init",
    "BACKENDS", "ENV_VAR",
]
