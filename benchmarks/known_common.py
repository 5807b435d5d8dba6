"""Names every part of the known-material benchmark (``benchmarks.bench_known``) uses: the repository
root, the matching threshold, the seed, where generated data is cached and where Meta's test vectors are
read, the log, the machine's description, the process's RSS, pinning to one core, the interleaved rounds
that time each side alike, and the number and table formats of the report. ``bench_known`` re-exports
every name.
"""
from __future__ import annotations

import ctypes
import gc
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from benchmarks.machine import cpu_model, log, memory_gib

__all__ = ["ROOT", "THRESHOLD", "SEED", "DATA_DIR", "SHARED", "log", "machine", "_LIBC", "rss", "pin_one_core",
           "interleaved", "fmt", "table"]

ROOT = Path(__file__).resolve().parent.parent

THRESHOLD = 31
SEED = 20240611
DATA_DIR = ROOT / "benchmarks" / ".data"
SHARED = Path(os.environ.get("CSAD_SHARED_TESTDATA", "/work/shared/testdata")) / "threatexchange" / "pdq"


# --------------------------------------------------------------------------- machine and timing


def machine() -> dict:
    model = cpu_model(platform.processor() or "?")
    gib = memory_gib()
    mem = f"{gib:.0f} GiB" if gib is not None else "?"
    import apache_beam
    import faiss
    import threatexchange  # noqa: F401
    from importlib.metadata import version

    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory": mem,
        "python": platform.python_version(),
        "versions": f"apache-beam {apache_beam.__version__}, faiss-cpu {faiss.__version__}, numpy {np.__version__}, "
        f"pillow {Image.__version__}, threatexchange {version('threatexchange')}, pdqhash {version('pdqhash')}",
    }


_LIBC = ctypes.CDLL(None) if sys.platform.startswith("linux") else None


def rss() -> int:
    """Resident set size in bytes, after returning freed heap to the OS."""
    gc.collect()
    if _LIBC is not None and hasattr(_LIBC, "malloc_trim"):
        _LIBC.malloc_trim(0)
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def pin_one_core(cpu: int) -> None:
    os.sched_setaffinity(0, {cpu})
    try:
        import faiss

        faiss.omp_set_num_threads(1)
    except ImportError:
        pass


def interleaved(methods: dict[str, tuple[Callable[[], int], int]], rounds: int) -> dict[str, float]:
    """Median rate (items/s) per method; ``methods[name] = (run_once -> items, repeats per round)``.
    Methods alternate within each round, so background load affects them alike."""
    rates: dict[str, list[float]] = {name: [] for name in methods}
    for r in range(rounds):
        for name, (fn, reps) in methods.items():
            t0 = time.perf_counter()
            items = sum(fn() for _ in range(reps))
            rates[name].append(items / (time.perf_counter() - t0))
        log(f"  round {r + 1}/{rounds}: " + ", ".join(f"{n} {v[-1]:,.0f}/s" for n, v in rates.items()))
    return {name: statistics.median(v) for name, v in rates.items()}


def fmt(x: float, digits: int = 0) -> str:
    if x >= 100 or digits == 0:
        return f"{x:,.0f}"
    return f"{x:,.{digits}f}"


def table(headers: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)
