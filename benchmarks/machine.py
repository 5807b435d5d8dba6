"""The benchmarks' progress lines and the machine facts their tables name: one place for ``log`` (a
line to stderr, flushed, so it interleaves with a child process's) and for reading the CPU model and
the memory from ``/proc``. Each benchmark still words its own machine line from these (which library
versions it names depends on what it measures).
"""
from __future__ import annotations

import sys
from typing import Optional


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


def cpu_model(default: str = "?") -> str:
    """The CPU's model name from ``/proc/cpuinfo``, or ``default`` where it cannot be read."""
    try:
        with open("/proc/cpuinfo") as fh:
            return next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        return default


def memory_gib() -> Optional[float]:
    """Total memory (``MemTotal`` of ``/proc/meminfo``) in GiB, or None where it cannot be read."""
    try:
        with open("/proc/meminfo") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("MemTotal")) / 2**20
    except (OSError, StopIteration):
        return None
