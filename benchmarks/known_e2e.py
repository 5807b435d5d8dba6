"""The end-to-end part of the known-material benchmark (``benchmarks.bench_known``, ``e2e``): image events
through the Beam pipeline in a child process (``run_pipeline``) on each runner of ``PIPELINE_CONFIGS``,
beside the same per-event work in plain loops, ours and pytx, on one pinned core (``bench_e2e``).
``bench_known`` re-exports every name.
"""
from __future__ import annotations

import base64
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.known_common import DATA_DIR, ROOT, fmt, interleaved, log, pin_one_core, table
from benchmarks.known_data import e2e_data
from benchmarks.known_targets import RESULTS
from csadetect.config.settings import MatchSettings, Settings
from csadetect.indicators.index import load_index
from csadetect.media.hashing import hash_image
from csadetect.media.preprocess import views

__all__ = ["run_pipeline", "PIPELINE_CONFIGS", "bench_e2e"]


# --------------------------------------------------------------------------- end to end


def run_pipeline(work: Path, extra: list[str]) -> dict:
    """Run ``python -m csadetect.pipelines.detect`` in a child process: wall time, CPU time, outcome counts."""

    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [
        sys.executable, "-m", "csadetect.pipelines.detect", "--input_glob", str(work / "events-*.jsonl"),
        "--indicators", str(work / "db"), "--public_key", str(work / "keys" / "public.pem"),
        "--report_dir", str(out / "reports"), "--dead_letter_dir", str(out / "dead"), *extra,
    ]
    if "grooming" in Settings.model_fields:  # image events only: the text classifier is not measured here
        config = work / "bench-config.yaml"
        config.write_text("grooming:\n  enabled: false\n")
        cmd += ["--config", str(config)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"pipeline failed: {' '.join(extra)}\n{proc.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    counts = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"wall": wall, "cpu": cpu, "counts": counts}


PIPELINE_CONFIGS = (
    ("FnApiRunner", ["--runner", "FnApiRunner"]),
    ("DirectRunner --direct_num_workers=1", ["--runner", "DirectRunner", "--direct_num_workers=1"]),
    ("DirectRunner, 2 processes", ["--runner", "DirectRunner", "--direct_num_workers=2",
                                   "--direct_running_mode=multi_processing"]),
)


def bench_e2e(args) -> str:
    from threatexchange.signal_type.pdq.pdq_index import PDQIndex
    from threatexchange.signal_type.pdq.signal import PdqSignal

    import pyarrow.parquet as pq

    if args.quick:
        runs = [("0.8 MP", (1024, 768), 60, 20_000)]
    else:
        sizes = {"1": ("1.0 MP", (1152, 864)), "3": ("3.1 MP", (2048, 1536))}
        runs = [(sizes[k][0], sizes[k][1], args.events, 100_000) for k in args.e2e_mp.split(",")]
    rounds = 2 if args.quick else 3
    rows, notes = [], []
    RESULTS["e2e"] = {}
    for label, size, n, n_random in runs:
        work = DATA_DIR / f"e2e-{size[0]}x{size[1]}-{n}"
        log(f"e2e {label}: events and a signed snapshot in {work} (generated once)")
        data = e2e_data(work, n, size, n_random)
        log("  pipeline: FnApiRunner on 20 events (fixed cost)")
        fixed = run_pipeline(work / "small", ["--runner", "FnApiRunner"])
        results = {}
        for name, extra in PIPELINE_CONFIGS:
            log(f"  pipeline: {name}")
            results[name] = r = run_pipeline(work, extra)
            log(f"    {n / r['wall']:.1f} events/s, {r['cpu'] / r['wall']:.2f} cores, counts {r['counts']}")

        # plain loops in this process on one core: ours (the pipeline DoFns' work) and pytx
        pin_one_core(args.cpu)
        loop_n = min(n, 30 if args.quick else 150)
        sample = []
        for k in range(data["shards"]):
            with open(work / f"events-{k}.jsonl") as fh:
                for line, _ in zip(fh, range(-(-loop_n // data["shards"]))):
                    sample.append(json.loads(line))
        sample = sample[:loop_n]
        t0 = time.perf_counter()
        index = load_index(str(work / "db"), str(work / "keys" / "public.pem"), MatchSettings())
        load_ours = time.perf_counter() - t0
        version = (work / "db" / "CURRENT").read_text().strip()
        values = pq.read_table(work / "db" / "versions" / version / "indicators.parquet", columns=["indicator_id", "value"])
        t0 = time.perf_counter()
        pytx_index = PDQIndex(entries=list(zip(values["value"].to_pylist(), values["indicator_id"].to_pylist())))
        load_pytx = time.perf_counter() - t0
        hits = {"ours": 0, "pytx": 0}

        def ours_loop():
            for ev in sample:
                content = base64.b64decode(ev["content_b64"])
                hits["ours"] += bool(index.match_image(hash_image(content, preprocess=views)))
            return len(sample)

        def pytx_loop():
            for ev in sample:
                h = PdqSignal.hash_from_bytes(base64.b64decode(ev["content_b64"]))
                hits["pytx"] += bool(h and pytx_index.query(h))
            return len(sample)

        log(f"  plain loops over {loop_n} events (one core)")
        loops = interleaved({"ours": (ours_loop, 1), "pytx": (pytx_loop, 1)}, rounds)
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
        del index, pytx_index

        for name, r in results.items():
            c = r["counts"]
            if r["wall"] - fixed["wall"] > 2 and r["cpu"] - fixed["cpu"] > 2:
                excl = f"{fmt((n - 20) / (r['wall'] - fixed['wall']), 1)} / {fmt((n - 20) / (r['cpu'] - fixed['cpu']), 1)}"
            else:
                excl = "n/a (too few events)"
            rows.append([
                label, f"Beam, {name}", fmt(n / r["wall"], 1), f"{r['cpu'] / r['wall']:.2f}", fmt(n / r["cpu"], 1), excl,
                fmt((n / r["cpu"]) / loops["pytx"], 1) + "x",
                f"{c.get('hit', 0)} / {c.get('non_hit', 0)} / {c.get('dead_lettered', 0)}",
            ])
        rows.append([label, "plain loop, ours (hash_image + views, match_image)", fmt(loops["ours"], 1), "1",
                     fmt(loops["ours"], 1), "", fmt(loops["ours"] / loops["pytx"], 1) + "x",
                     f"{hits['ours'] // rounds} of {loop_n} hit"])
        rows.append([label, "plain loop, pytx (hash_from_bytes, PDQIndex.query)", fmt(loops["pytx"], 1), "1",
                     fmt(loops["pytx"], 1), "", "1.0x", f"{hits['pytx'] // rounds} of {loop_n} hit"])
        w, h = size
        notes.append(
            f"{label}: {n} events of {w}x{h} px JPEGs (quality 90, mean {data['mean_kb']:.0f} KB) in "
            f"{data['shards']} JSON Lines files ({data['jsonl_mb']:.0f} MB), {data['known']} of them known; snapshot of "
            f"{data['indicators']:,} PDQ indicators ({data['random']:,} random). Fixed cost of a run (the same "
            f"command on 20 events, FnApiRunner): {fixed['wall']:.1f} s wall, {fixed['cpu']:.1f} CPU s. Index load "
            f"for the loops: ours {load_ours:.1f} s (signature and checksums included), pytx {load_pytx:.1f} s."
        )
        RESULTS["e2e"][label] = {
            "per_core": max(n / r["cpu"] for r in results.values()),
            "per_core_steady": max((n - 20) / max(r["cpu"] - fixed["cpu"], 1e-9) for r in results.values()),
            "loop_ours": loops["ours"], "loop_pytx": loops["pytx"],
        }
    text = [
        "### End to end (Beam, batch)",
        "",
        "`python -m csadetect.pipelines.detect --input_glob 'events-*.jsonl' --indicators DB --public_key KEY ...` in a "
        "child process, default configuration (preprocess views, dihedral hashes, quality gate 50; reports "
        "written as Parquet + JSON Lines; the text grooming classifier switched off, there is no text). Events carry the JPEG inline (base64); pictures are crops of generated "
        "pictures and scikit-image photos; every 10th event is a crop of a known picture (its PDQ is in the "
        "snapshot), the others come from other pictures. Wall time from process start to exit (start-up, "
        "snapshot verification, index load included); cores used = CPU seconds of all processes / wall "
        "seconds; events/s per core = events / CPU seconds. \"Excl. fixed cost\" subtracts a run on 20 events. "
        f"Plain loops: the same per-event work without Beam on a sample of the events, one pinned core, "
        f"median of {rounds} interleaved rounds, index loaded beforehand.",
        "",
        table(["", "", "events/s", "cores used", "events/s per core", "excl. fixed cost: events/s / per core",
               "per core vs pytx loop", "hit / non-hit / dead"], rows),
        "",
        *[f"- {note}" for note in notes],
    ]
    return "\n".join(text)
