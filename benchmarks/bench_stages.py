"""Per-stage cost breakdown of the detection pipeline, from a profiler (issue 15, item 1).

What it measures: where the CPU time of one image event goes, end to end, with the default
detectors on (PDQ + preprocessing views + dihedral hashes, MD5/SHA-1/SHA-256, embedding,
new-material classifier, sealing of the upload, re-sealing and signing of reports), split into
stages: JPEG decode, view construction, PDQ, digests, embedding thumbnails, embedding model,
classifier, matching, sealing, signing, review store, report/stats writing, and the rest (Beam:
runner, coders, fusion, bundles; csadetect glue in the DoFns; libraries they call).

How: each measurement runs in a child process pinned to one core (``os.sched_setaffinity``),
under ``cProfile`` with a CPU-time clock (``time.process_time``: other load on the machine does not
count, and CPU spent in TensorFlow's threads is charged to the Python call that waits for it):

* ``beam``: ``python -m csadetect.pipelines.detect ... --runner FnApiRunner`` (the SDK worker runs
  in the same thread) on a JSON Lines file of image events;
* ``loop``: the same per-event work without Beam, in a plain loop over the same events (the DoFns'
  own functions: ``parse_event``, ``HashMediaFn.process``, the embedding and classifier handlers'
  ``run_inference`` in batches of 64, ``IndicatorIndex.match_image``, ``pending_report`` +
  ``finalise_report`` for known matches); Beam's overhead is the difference, side by side;

each once without the profiler (the real rates, and the profiler's inflation) and once with it.
Time is attributed to stages by function: a stage is a set of root functions (e.g.
``load_image`` = decode, ``pdq_from_array`` = PDQ, ``seal_content`` = sealing); every function's
own time is split over the stages of its callers in proportion to the time each caller spent in
it (gprof-style propagation over the profile's call graph), and what no stage reaches is the
rest, split by the file of the function that spent it. A separate direct timing (no profiler) in
the loop child gives each PDQ view and each digest on its own.

Workload: ``bench_known``'s end-to-end data (its ``e2e_data``: crops of generated pictures and
scikit-image photos, every 10th a crop of a known picture, a signed snapshot of 100,000 random +
the known PDQ indicators), a few hundred events at 3.1 MP and 1.0 MP, plus exact copies of the
known pictures so that reports are sealed and signed; report keys as ``bench_reports`` makes them.
Cached under ``benchmarks/.data/stages/``.

    python -m benchmarks.bench_stages                  # 250 events at 3 MP and 1 MP; writes benchmarks/stages.md
    python -m benchmarks.bench_stages --render         # format the saved measurement again (notes kept)
    python -m benchmarks.bench_stages --events 40 --sizes 1 --no-write   # smoke run (~3 min; per-event
                                                       # figures need >= ~200 events, the fixed cost is subtracted)
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
             "TF_NUM_INTEROP_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse
import json
import sys
import time
from pathlib import Path

from benchmarks.stages_report import (NOTES_BEGIN, NOTES_END, fmt, kept_notes, machine, marginal, section, summary,
                                      table)
from benchmarks.stages_runs import (REST, STAGES, STARTUP, STARTUP_ROOTS, _cpu, _in, _stage_of, attribute, child_beam,
                                    child_loop, hashing_detail, run_child)
from benchmarks.stages_workload import (BATCH, MATCH_ENV, N_RANDOM, OUT_MD, ROOT, SIZES, SMALL, WORK, config_path,
                                        frame, log, workload)

# The constants, log, the workload and the pipeline config live in benchmarks.stages_workload, the children, the
# attribution of a profile to stages and run_child in benchmarks.stages_runs, the markdown (sections, summary, kept
# notes, machine) in benchmarks.stages_report; only main stays here. bench_throughput, its throughput_* modules and
# other benchmarks (kept_notes) import from here or read attributes of this module, so every name is re-exported.
__all__ = [
    "ROOT", "WORK", "OUT_MD", "SIZES", "N_RANDOM", "SMALL", "BATCH", "log",
    "workload", "frame", "MATCH_ENV", "config_path",
    "_cpu", "child_beam", "child_loop", "hashing_detail",
    "_in", "STAGES", "STARTUP", "STARTUP_ROOTS", "REST", "_stage_of", "attribute",
    "run_child",
    "fmt", "table", "marginal", "section", "NOTES_BEGIN", "NOTES_END", "summary", "kept_notes", "machine",
    "main",
]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_stages", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=250, help="events per image size (default 250)")
    ap.add_argument("--sizes", default="3,1", help="image sizes: 3 (2048x1536) and/or 1 (1152x864) MP")
    ap.add_argument("--cpu", type=int, default=0, help="core the children are pinned to")
    ap.add_argument("--out", default=str(OUT_MD), help="markdown output (parent) / output dir (child)")
    ap.add_argument("--no-write", action="store_true", help="print only")
    ap.add_argument("--render", action="store_true", help="only format the last saved measurement again")
    ap.add_argument("--child", choices=["beam", "loop"], help=argparse.SUPPRESS)
    ap.add_argument("--base", help=argparse.SUPPRESS)
    ap.add_argument("--profile", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--limit", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        fn = child_beam if args.child == "beam" else child_loop
        res = fn(Path(args.base), Path(args.out), args.profile, args.limit)
        print(json.dumps(res))
        return 0

    started = time.time()
    load0 = os.getloadavg()[0]
    sections, numbers, meta = [], {}, {}
    for key in args.sizes.split(","):
        label, size = SIZES[key]
        log(f"{label}: workload ({args.events} events)")
        t_data = time.time()
        base = workload(label, size, args.events)
        started += time.time() - t_data  # the run time stated below leaves out generating the data
        data = json.loads((base / "stages.json").read_text())
        saved = WORK / f"results-{key}-{args.events}.json"
        if args.render:  # format the last measurement again (no runs)
            r = json.loads(saved.read_text())
        else:
            r = {}
            for profile in (False, True):
                for limit in (0, SMALL):
                    for mode in ("beam", "loop"):
                        tag = mode + ("_prof" if profile else "") + (f"_{limit}" if limit else "")
                        r[tag] = run_child(mode, base, tag, profile, args.cpu, limit)
            r["_meta"] = {"load_start": load0, "load_end": os.getloadavg()[0]}
            saved.write_text(json.dumps(r))
        meta = r.get("_meta", {})
        text, nums = section(label, size, args.events, data, r)
        sections.append(text)
        numbers[label] = nums
        log(text + "\n")
    elapsed = time.time() - started
    if args.render:  # the children's time of the saved measurement (data generation not included)
        elapsed = sum(x.get("process_wall", 0) for key in args.sizes.split(",")
                      for x in json.loads((WORK / f"results-{key}-{args.events}.json").read_text()).values())
    minutes = max(1, round(elapsed / 60))
    cmd = "nice -n 10 .venv/bin/python -m benchmarks.bench_stages" + (f" --events {args.events}" if args.events != 250 else "") \
        + (f" --sizes {args.sizes}" if args.sizes != "3,1" else "")
    head = [
        "# Per-stage cost of an image event (issue 15, item 1)",
        "",
        f"Regenerate: `{cmd}` (about {minutes} min here with the data cached under "
        "`benchmarks/.data/stages/`; generating it the first time adds about 2 min). "
        f"Machine: {machine()}. Load average when it started {meta.get('load_start', load0):.2f}, when it ended "
        f"{meta.get('load_end', os.getloadavg()[0]):.2f} "
        "(the machine was shared; CPU-time clocks keep other load out of the figures, not out of cache effects).",
        "",
        "Method: `benchmarks/bench_stages.py` docstring. Every run is a child process pinned to one core; cProfile with "
        "a CPU-time clock; a stage is a set of root functions and every function's own time is split over its "
        "callers' stages in proportion to the time each caller spent in it; \"rest\" is what no stage reaches. "
        "cProfile inflates Python-heavy code (Beam, glue) more than C-heavy code (decode, PDQ, TensorFlow): "
        "compare Beam with the loop stage by stage, and read the unprofiled rates for absolute speed.",
        "",
    ]
    notes = [
        "## What dominates (computed from the tables below)",
        "",
        summary(numbers),
        "",
        "## What to change first (hand-written from this run; kept between the markers when the file is regenerated)",
        "",
        kept_notes(Path(args.out)),
        "",
    ]
    text = "\n".join(head) + "\n" + "\n".join(notes) + "\n" + "\n\n".join(sections) + "\n"
    print(text)
    (WORK / "last-numbers.json").write_text(json.dumps(numbers, default=str))
    if not args.no_write:
        Path(args.out).write_text(text)
        log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
