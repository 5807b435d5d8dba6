"""The throughput benchmark's scaling part (``benchmarks.bench_throughput``, ``scaling``): the batch
pipeline on the DirectRunner, unpinned, with 1 process and with 1 and 2 workers of
``multi_processing``, each run's process tree sampled from ``/proc`` (``run_sampled``); the runs and their
options (``SCALING``) and the steady state against a 20-event run (``part_scaling``). ``bench_throughput``
re-exports every name.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.bench_stages import SMALL, log
from benchmarks.throughput_common import ROOT
from benchmarks.throughput_proc import TreeSampler
from benchmarks.throughput_stream import DETECT
from benchmarks.throughput_workload import _outdirs, event_glob

__all__ = ["run_sampled", "MP", "W1", "W2", "SCALING", "MIN_DELTA", "part_scaling"]


def run_sampled(base: Path, tag: str, glob: str, extra: list[str], module: list[str] = DETECT) -> dict:
    """The batch pipeline in a child (no pinning), its process tree sampled from /proc."""
    out, cfg = _outdirs(base, tag)
    cmd = [sys.executable, *module, "--config", str(cfg), "--input_glob", glob, *extra]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = TreeSampler(proc.pid).start()
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    sampler.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"pipeline {tag} failed:\n{stderr[-3000:]}")
    workers = [p["pid"] for p in sampler.per_process() if p["role"] == "SDK worker"]
    return {"wall": wall, "cpu": sum(p["cpu"] for p in sampler.per_process()), "per_process": sampler.per_process(),
            "overlap": sampler.overlap(workers) if workers else {}, "timeline": sampler.compact(),
            "counts": json.loads(stdout.strip().splitlines()[-1])}


MP = ["--runner", "DirectRunner", "--direct_running_mode=multi_processing"]
W1, W2 = MP + ["--direct_num_workers=1"], MP + ["--direct_num_workers=2"]
# (row, files the events are split into, pipeline module, options, the row whose 20-event run stands for
# this row's start-up (same runner and worker count), or None: its own)
SCALING = (
    ("1 process (DirectRunner, in_memory)", 1, DETECT, ["--runner", "DirectRunner", "--direct_num_workers=1"], None),
    ("multi_processing, 1 worker", 1, DETECT, W1, None),
    ("multi_processing, 2 workers", 1, DETECT, W2, None),
    ("multi_processing, 2 workers, 2 files", 2, DETECT, W2, "multi_processing, 2 workers"),
)
MIN_DELTA = 2.0  # s: a steady-state difference smaller than this is noise (too few events)


def part_scaling(base: Path, args) -> dict:
    res = {"load_start": os.getloadavg(), "runs": {}, "repeat": args.scaling_repeat}
    n = args.events * args.scaling_repeat
    for name, shards, module, extra, small_of in SCALING:
        r = {}
        log(f"  scaling: {name}, {n} events")
        r["full"] = run_sampled(base, f"scaling-{len(res['runs'])}", event_glob(base, shards, args.scaling_repeat),
                                extra, module)
        if small_of is None:
            log(f"  scaling: {name}, {SMALL} events")
            r["small"] = run_sampled(base, f"scaling-{len(res['runs'])}-small", str(base / f"events-{SMALL}.jsonl"),
                                     extra, module)
        else:
            r["small_of"] = small_of
        small = r.get("small") or res["runs"][small_of]["small"]
        dw, dc = r["full"]["wall"] - small["wall"], r["full"]["cpu"] - small["cpu"]
        r["steady_wall"] = (n - SMALL) / dw if dw >= MIN_DELTA else None
        r["steady_cpu"] = (n - SMALL) / dc if dc >= MIN_DELTA else None
        log(f"    {n / r['full']['wall']:.1f} events/s wall, steady {r['steady_wall'] or 0:.1f}/s, "
            f"{r['full']['cpu'] / r['full']['wall']:.2f} cores used; per process "
            + ", ".join(f"{p['role']} {p['cpu']:.1f}s" for p in r["full"]["per_process"] if p["cpu"] > 0.5))
        res["runs"][name] = r
    res["load_end"] = os.getloadavg()
    return res
