"""Names shared by the throughput benchmark's parts (``benchmarks.bench_throughput``): where its data and
report live, the parts and their default event count, the /proc clock, the share of a core that counts as
running, the streaming run's limits and the pattern of its progress lines, the targets of issue 15 and the
number format of the report's cells. Kept apart so that the measuring modules and the report import them
without importing each other; ``bench_throughput`` re-exports every name.
"""
from __future__ import annotations

import os
import re

from benchmarks import bench_stages as stages

ROOT = stages.ROOT
WORK = ROOT / "benchmarks" / ".data" / "throughput"
OUT_MD = ROOT / "benchmarks" / "throughput.md"
PARTS = ("hashing", "batch", "stream", "scaling")
POOL = 250  # bench_stages' default event set; smaller --events take its first N events
CLK = os.sysconf("SC_CLK_TCK")
BUSY = 0.25  # share of a core above which a process counts as running (the scaling part's "both running")
STALL = 90.0  # s without a finished event (after the first): the streaming run is given up
IDLE_LINES = 3  # progress lines read after the last event is done (the runner's idle CPU)
PROGRESS = re.compile(r"(received|hits|non-hits|dead letters|reports|awaiting review) (\d+)")
TARGETS = {"hashing": 150.0, "hashing_vs_decode": 0.8, "e2e": 100.0, "scaling": 1.8}


def f1(x: float) -> str:
    return f"{x:,.1f}"
