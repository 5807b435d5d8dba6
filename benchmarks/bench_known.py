"""Known-material detection speed, side by side with Meta's ``threatexchange`` (pytx) in one run.

Three parts, each measured against the reference on the same data in the same process, in
interleaved rounds (so other load on the machine hits both sides alike; ratios are the result):

* ``hashing``: images/s on one pinned core from ~3 MP JPEG bytes: ``csadetect.media.hashing.hash_image``
  (plain, and the pipeline configuration with ``csadetect.media.preprocess.views``) against
  ``PdqSignal.hash_from_bytes``, plus full decoding alone and our reduced-size decode alone; PDQ
  conformance (distance to pytx's hash, and to Meta's reference hashes of the test vectors).
* ``matching``: single-hash and batched queries/s against a database of random PDQ hashes (1M and
  10M by default) for ``IndicatorIndex`` (multi-index hashing and flat) against pytx's
  ``PDQIndex``; recall against numpy brute force at threshold 31 (inclusive); bytes per indicator
  (process RSS delta around each build, and ``memory_stats``); build times.
* ``e2e``: image events/s through the Beam pipeline (``python -m csadetect.pipelines.detect``, batch) from a
  JSON Lines file of base64 JPEG events, with a signed snapshot of random + known indicators, on
  the FnApiRunner and the DirectRunner; cores used = CPU seconds / wall seconds. Reference side
  by side: pytx hashing + ``PDQIndex.query`` per event in a plain Python loop.

Everything is generated (benign synthetic pictures, scikit-image sample photos, random hashes;
fixed seeds) and cached under ``benchmarks/.data/``; Meta's test vectors are read in place from
``$CSAD_SHARED_TESTDATA`` (default /work/shared/testdata) when present.

    python -m benchmarks.bench_known                 # everything; writes benchmarks/known.md
    python -m benchmarks.bench_known --quick         # smoke run of each part, < 1 min, no write
    python -m benchmarks.bench_known --only matching --sizes 1000000
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy / faiss load their thread pools

import argparse
import sys
import time
from pathlib import Path

from benchmarks.known_common import (_LIBC, DATA_DIR, ROOT, SEED, SHARED, THRESHOLD, fmt, interleaved, log, machine,
                                     pin_one_core, rss, table)
from benchmarks.known_data import PHOTOS, _photo, e2e_data, image_set, random_db
from benchmarks.known_e2e import PIPELINE_CONFIGS, bench_e2e, run_pipeline
from benchmarks.known_hashing import bench_hashing, reference_vectors
from benchmarks.known_matching import bench_matching, brute_force, make_queries, snapshot_of
from benchmarks.known_targets import RESULTS, targets_table

# The shared names (constants, log, machine, timing, table format) live in benchmarks.known_common, the generated
# pictures, hashes and end-to-end events in benchmarks.known_data, the parts in benchmarks.known_hashing,
# benchmarks.known_matching and benchmarks.known_e2e, RESULTS and the targets table in benchmarks.known_targets;
# only main stays here. bench_stages (e2e_data) and bench_throughput (pin_one_core) import from here, so every
# name is re-exported. RESULTS is one dict the parts fill in place: rebinding bench_known.RESULTS would not
# reach them.
__all__ = [
    "ROOT", "THRESHOLD", "SEED", "DATA_DIR", "SHARED", "log", "machine", "_LIBC", "rss", "pin_one_core",
    "interleaved", "fmt", "table",
    "_photo", "PHOTOS", "image_set", "random_db", "e2e_data",
    "reference_vectors", "bench_hashing",
    "make_queries", "brute_force", "snapshot_of", "bench_matching",
    "run_pipeline", "PIPELINE_CONFIGS", "bench_e2e",
    "RESULTS", "targets_table",
    "main",
]


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_known", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small smoke run of each part (< 1 min); does not write")
    ap.add_argument("--only", choices=["hashing", "matching", "e2e"], action="append", help="run only this part (repeatable)")
    ap.add_argument("--sizes", default=None, help="indicator counts for matching, e.g. 1000000,10000000")
    ap.add_argument("--events", type=int, default=1000, help="events per end-to-end run")
    ap.add_argument("--e2e-mp", default="1,3", help="end-to-end image sizes: 1 (1152x864) and/or 3 (2048x1536) MP")
    ap.add_argument("--faiss-mih-max", type=int, default=1_000_000,
                    help="also measure raw FAISS IndexBinaryMultiHash up to this many indicators")
    ap.add_argument("--cpu", type=int, default=0, help="core to pin single-core measurements to")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "known.md"), help="markdown output")
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args(argv)
    parts = args.only or ["hashing", "matching", "e2e"]
    started = time.time()
    mach = machine()
    sections = []
    for part in parts:
        t0 = time.time()
        sections.append({"hashing": bench_hashing, "matching": bench_matching, "e2e": bench_e2e}[part](args))
        log(sections[-1] + "\n")
        log(f"{part} done in {time.time() - t0:.0f}s")
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    cmd = "python -m benchmarks.bench_known" + ("".join(f" --only {p}" for p in args.only) if args.only else "")
    if args.sizes:
        cmd += f" --sizes {args.sizes}"
    if args.quick:
        cmd += " --quick"
    head = [
        "## Known-material detection speed vs Meta's threatexchange",
        "",
        f"Reproduce: `{cmd}` (about {max(1, round((time.time() - started) / 60))} min here; `--quick` for a smoke run). "
        f"Machine: {mach['cpu']}, {mach['cores']} cores, {mach['memory']} RAM, Python {mach['python']}; "
        f"{mach['versions']}. Both sides run in the same process on the same data, interleaved, so "
        "the ratios hold even with other load on the machine; absolute rates vary with it.",
    ]
    targets = targets_table()
    text = "\n".join(head) + "\n\n" + (targets + "\n\n" if targets else "") + "\n\n".join(sections) + "\n"
    print(text)
    if not args.quick and not args.no_write:
        Path(args.out).write_text(text)
        log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
