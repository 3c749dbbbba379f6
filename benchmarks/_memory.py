"""Peak resident memory of the running process, for the benchmarks (Linux ``/proc``).

``rss_mb("VmRSS")`` is the memory in use now, ``rss_mb("VmHWM")`` the peak since the last
:func:`reset_peak_rss`; a benchmark reports ``VmHWM - VmRSS(before)`` as the extra memory one call
needed.
"""

from __future__ import annotations


def rss_mb(field: str) -> float:
    """``VmRSS``, ``VmHWM``, ... of this process in MB (NaN where /proc does not say)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak_rss() -> None:
    """Reset ``VmHWM`` to the current RSS (writing "5" to /proc/self/clear_refs)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
