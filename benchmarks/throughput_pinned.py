"""The throughput benchmark's measurements on one pinned core (``benchmarks.bench_throughput``): the
children that time the hashing methods (``child_hashing``) and the plain per-event loops, ours and pytx
(``child_loops``), how a child is run (``run_child``), and the parts that run them: ``hashing`` and
``batch`` (the FnApiRunner pipeline through ``bench_stages``' pinned child, beside the loops).
``bench_throughput`` re-exports every name.
"""
from __future__ import annotations

import base64
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from benchmarks.bench_stages import SMALL, log
from benchmarks.throughput_common import ROOT, WORK
from benchmarks.throughput_workload import contents

__all__ = ["child_hashing", "child_loops", "run_child", "part_hashing", "part_batch"]


# --------------------------------------------------------------------------- hashing (child, one core)


def child_hashing(base: Path, n: int, rounds: int, cpu: int) -> dict:
    from threatexchange.signal_type.pdq.signal import PdqSignal

    from benchmarks.bench_known import pin_one_core
    from csadetect.media.hashing import hash_image, hash_image_with_views, load_image
    from csadetect.media.preprocess import views
    from csadetect.signals import digests

    pin_one_core(cpu)
    images = contents(base, n)
    algos = tuple(digests())
    methods = {
        "decode": ("reduced JPEG decode alone (`load_image`: the practical limit)", load_image, images),
        "plain": ("`hash_image` (plain: PDQ + 8 dihedral + MD5 + SHA-256)", hash_image, images),
        "pipeline": ("`hash_image_with_views` + `preprocess.views` + the pipeline's digests (pipeline configuration)",
                     lambda b: hash_image_with_views(b, preprocess=views, digests=algos), images),
        "pytx": ("pytx `PdqSignal.hash_from_bytes`", PdqSignal.hash_from_bytes, images[:max(4, n // 4)]),
    }
    for _, fn, batch in methods.values():  # warm-up (first calls, lazy imports)
        fn(batch[0])
    rates: dict[str, list[float]] = {k: [] for k in methods}
    for r in range(rounds):
        for key, (_, fn, batch) in methods.items():
            c0 = time.process_time()
            for b in batch:
                fn(b)
            rates[key].append(len(batch) / (time.process_time() - c0))
        log(f"    round {r + 1}/{rounds}: " + ", ".join(f"{k} {v[-1]:.0f}/s" for k, v in rates.items()))
    return {"n": n, "rounds": rounds, "mean_kb": sum(map(len, images)) / len(images) / 1024,
            "rows": {k: {"name": methods[k][0], "rate": statistics.median(v), "images": len(methods[k][2])}
                     for k, v in rates.items()}}


# --------------------------------------------------------------------------- plain loops, ours and pytx (child, one core)


def child_loops(base: Path, n: int, rounds: int, cpu: int) -> dict:
    """bench_known's side-by-side loops: ours (``hash_image`` + views, ``match_image``) and pytx
    (``hash_from_bytes``, ``PDQIndex.query``) per event, indexes loaded beforehand; CPU time."""
    import pyarrow.parquet as pq
    from threatexchange.signal_type.pdq.pdq_index import PDQIndex
    from threatexchange.signal_type.pdq.signal import PdqSignal

    from benchmarks.bench_known import pin_one_core
    from csadetect.config.settings import MatchSettings
    from csadetect.indicators.index import load_index
    from csadetect.media.hashing import hash_image
    from csadetect.media.preprocess import views

    pin_one_core(cpu)
    lines = (base / "events.jsonl").read_bytes().splitlines()[:n]
    index = load_index(str(base / "db"), str(base / "keys" / "public.pem"), MatchSettings())
    version = (base / "db" / "CURRENT").read_text().strip()
    table_ = pq.read_table(base / "db" / "versions" / version / "indicators.parquet",
                           columns=["indicator_id", "kind", "value"]).to_pylist()
    pytx_index = PDQIndex(entries=[(r["value"], r["indicator_id"]) for r in table_ if r["kind"] == "pdq"])
    hits = {"ours": 0, "pytx": 0}

    def ours():
        for line in lines:
            content = base64.b64decode(json.loads(line)["content_b64"])
            hits["ours"] += bool(index.match_image(hash_image(content, preprocess=views)))

    def pytx():
        for line in lines:
            h = PdqSignal.hash_from_bytes(base64.b64decode(json.loads(line)["content_b64"]))
            hits["pytx"] += bool(h and pytx_index.query(h))

    rates: dict[str, list[float]] = {"ours": [], "pytx": []}
    for _ in range(rounds):
        for key, fn in (("ours", ours), ("pytx", pytx)):
            c0 = time.process_time()
            fn()
            rates[key].append(len(lines) / (time.process_time() - c0))
    return {"n": len(lines), "rounds": rounds, "ours": statistics.median(rates["ours"]),
            "pytx": statistics.median(rates["pytx"]), "hits_ours": hits["ours"] // rounds, "hits_pytx": hits["pytx"] // rounds}


def run_child(*args: str, cpu: Optional[int] = None, module: str = "benchmarks.bench_throughput") -> dict:
    cmd = [sys.executable, "-m", module, *args]
    pin = (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, preexec_fn=pin)
    if proc.returncode != 0:
        raise RuntimeError(f"child {' '.join(args[:2])} failed:\n{proc.stderr[-3000:]}")
    sys.stderr.write("".join(line + "\n" for line in proc.stderr.splitlines() if line.startswith("    round")))
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- parts


def part_hashing(base: Path, args) -> dict:
    n = min(args.events, 60)
    log(f"  hashing: {n} images, {args.rounds} rounds, one core")
    return run_child("--child", "hashing", "--base", str(base), "--n", str(n), "--rounds", str(args.rounds),
                     "--cpu", str(args.cpu))


def part_batch(base: Path, args) -> dict:
    """FnApiRunner on one pinned core (bench_stages' child), N events and the first SMALL; the loops."""
    res = {}
    for tag, limit in (("full", 0), ("small", SMALL)):
        log(f"  batch: FnApiRunner, {'all' if not limit else limit} events, one core")
        out = WORK / "out" / f"{base.name}-batch-{tag}"
        t0 = time.perf_counter()
        res[tag] = run_child("--child", "beam", "--base", str(base), "--out", str(out), "--limit", str(limit),
                             cpu=args.cpu, module="benchmarks.bench_stages")
        res[tag]["process_wall"] = time.perf_counter() - t0
    loop_n = min(args.events, 100)
    log(f"  batch: plain loops (ours, pytx), {loop_n} events, one core")
    res["loops"] = run_child("--child", "loops", "--base", str(base), "--n", str(loop_n), "--rounds",
                             str(max(1, args.rounds - 1)), "--cpu", str(args.cpu))
    return res
