"""Keep freed memory in the process: the one memory setting of the compute commands.

PyTorch's CPU tensors come from the C library's ``malloc``. glibc serves every request above a
threshold (128 KiB, rising to at most 32 MiB as blocks are freed) with a fresh ``mmap`` and gives
it back to the system on ``free``; the next tensor of that size gets fresh pages again, and the
kernel must zero each 4 KiB page on first touch (a "minor page fault"). The network allocates and
frees activations of tens of megabytes per layer. Measured on one 1 MP image (768 x 1365, one
thread, after a 128 x 128 warm-up): 960,000 faults and 5.5-6.1 s of CPU time, 1.9-2.2 s of it in
the kernel, with glibc's defaults; 320,000 faults and 4.1-4.8 s with this setting. Dehazing the
same image again: 450,000-770,000 faults per call with the defaults, none from the third call on
with the setting (2.7-3.0 s instead of 3.9-4.8 s).

:func:`keep_freed_memory` asks glibc (``mallopt``) to serve every request from its heap
(``M_MMAP_MAX = 0``) and never to shrink the heap (``M_TRIM_THRESHOLD``), so freed blocks are
reused without new faults. The cost: the process keeps its peak resident memory until it exits
instead of returning it between images (ten images of 0.26-1.05 MP in one process: 2.40 GB
resident after the first, 2.86 GB from the sixth on, stable). The command line applies it (through
:func:`cliphaze.cli_types.apply_threads`); importing the library never does, since a library
must not change process-wide settings behind its caller's back. ``CLIPHAZE_MALLOC=system``
leaves the C library's defaults in place. Elsewhere than glibc (macOS, Windows, musl) it does
nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

__all__ = ["keep_freed_memory"]

_M_TRIM_THRESHOLD = -1   # mallopt parameter numbers from glibc's <malloc.h>
_M_MMAP_MAX = -4
_NEVER_TRIM = 2**31 - 1  # mallopt takes an int: 2 GiB of free heap top before any is returned

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Serve all allocations from glibc's heap and keep freed memory for reuse (see module doc).

    Returns:
        True when the setting is in effect (now or from an earlier call), False where it does
        not apply: not glibc, ``CLIPHAZE_MALLOC=system``, or ``mallopt`` refused.
    """
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get("CLIPHAZE_MALLOC", "").strip().lower() == "system":
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(_M_MMAP_MAX, 0) == 1
        ok = libc.mallopt(_M_TRIM_THRESHOLD, _NEVER_TRIM) == 1 and ok
    except (OSError, AttributeError):
        return False
    _applied = ok
    return ok
