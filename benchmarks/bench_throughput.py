"""End-to-end throughput of image events, side by side with pytx, in one run (issue 15, items 2-4).

What it measures, on the same 3.1 MP (and 1.0 MP) event sets as ``bench_stages`` (its cached
workload: crops of generated pictures and scikit-image photos, 20% framed, every 10th a crop of a
known picture, every 25th an exact copy of a known picture so reports are sealed and signed; a
signed snapshot of 100,000 random + the known indicators; report keys):

* ``hashing``: images/s per CPU second on one pinned core, interleaved rounds, from the events'
  JPEG bytes: the reduced JPEG decode alone (``load_image``, the practical limit), ``hash_image``
  plain, ``hash_image_with_views`` with ``preprocess.views`` and the pipeline's digests (the
  pipeline configuration), and pytx's ``PdqSignal.hash_from_bytes``. Targets: >= 150/s and
  >= 0.8x the reduced decode.
* ``batch``: ``python -m csadetect.pipelines.detect --runner FnApiRunner`` (through ``bench_stages``'s
  pinned child, which notes the CPU time spent before the graph starts), default detectors on (PDQ,
  views, exact hashes, embedding, classifier, sealing, signing). Steady state = (N - 20) events /
  (CPU s after start-up of the N-event run - the same of a run on the first 20 events). Beside it
  the pytx loop baseline (``PdqSignal.hash_from_bytes`` + ``PDQIndex.query`` per event, as in
  ``bench_known``) and our own plain loop (``hash_image`` + views + ``match_image``), one pinned
  core, CPU time. Target: >= 100 events/s per core.
* ``stream``: the same events published (``csadetect publish``) onto a topic of the Pub/Sub emulator
  (``tests/pubsub_emulator.py``) beforehand, then ``csadetect.pipelines.detect --streaming --runner
  DirectRunner --input_subscription ...`` pinned to one core, ``--progress_seconds 1``. Each progress
  line gives the events done (hits + non-hits + dead letters, counted where they are decided); the
  CPU time of the pipeline process and its children is sampled from ``/proc`` when the line arrives.
  Steady state = events done / CPU s between the line where 20 events were done and the line where
  all were; a few more lines give what the runner burns with nothing to do.
* ``scaling`` (first image size only): the batch pipeline on the DirectRunner, both cores free, with
  1 process (in-memory), with ``--direct_running_mode=multi_processing`` and 1 and 2 workers (the
  events in 1 file, and split into 2 files). Wall-clock events/s in steady state
  (the same 20-event subtraction, on wall time), the speed-up against 1 process (target >= 1.8x),
  and the CPU seconds of each process of the run (runner, SDK workers) sampled from ``/proc`` every
  0.2 s, with the time during which both workers were running at once. The load average is printed
  beside it.

Every run is a child process; nothing loads from the internet. Data is cached under
``benchmarks/.data/stages/`` (the workload) and ``benchmarks/.data/throughput/`` (event subsets,
shards, outputs, the last results).

    python -m benchmarks.bench_throughput                   # everything, 250 events; writes benchmarks/throughput.md
    python -m benchmarks.bench_throughput --only hashing,batch --sizes 3
    python -m benchmarks.bench_throughput --events 60 --no-write              # quick smoke run (~10 min)
    python -m benchmarks.bench_throughput --only stream --sizes 1 --profile-stream --no-write
    python -m benchmarks.bench_throughput --render          # format the last saved measurement again

The full run (250 events, both sizes) takes about 15-20 minutes here: most of it is the scaling part's
pipeline runs, each paying the start-up of TensorFlow and the models in every process.
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

from benchmarks import bench_stages as stages  # noqa: F401 (importable from here as before)
from benchmarks.bench_stages import MATCH_ENV, SIZES, SMALL, config_path, kept_notes, log, table  # noqa: F401
from benchmarks.throughput_common import (BUSY, CLK, IDLE_LINES, OUT_MD, PARTS, POOL, PROGRESS, ROOT, STALL, TARGETS,
                                          WORK, f1)
from benchmarks.throughput_pinned import child_hashing, child_loops, part_batch, part_hashing, run_child
from benchmarks.throughput_proc import TreeSampler, _proc_table, role, thread_cpu
from benchmarks.throughput_report import render, render_size, running_at_once, verdict
from benchmarks.throughput_scaling import MIN_DELTA, MP, SCALING, W1, W2, part_scaling, run_sampled
from benchmarks.throughput_stream import (DETECT, EXPERIMENTS, IDLE_FRAMES, SAMPLE_EVERY, _sampled,
                                          child_detect_experiment, detect_experiment, part_stream)
from benchmarks.throughput_workload import _outdirs, contents, event_glob, workload

# The shared names live in benchmarks.throughput_common, the workload in benchmarks.throughput_workload, the CPU
# time from /proc in benchmarks.throughput_proc, the one-core parts (hashing, batch) and their children in
# benchmarks.throughput_pinned, the streaming part and its profiler in benchmarks.throughput_stream, the scaling
# part in benchmarks.throughput_scaling and the markdown in benchmarks.throughput_report; only main stays here.
# Every name is re-exported, so what imported it from here still does. The children still run as
# ``python -m benchmarks.bench_throughput --child ...`` (run_child, detect_experiment).
__all__ = [
    "ROOT", "WORK", "OUT_MD", "PARTS", "POOL", "CLK", "BUSY", "STALL", "IDLE_LINES", "PROGRESS", "TARGETS", "f1",
    "workload", "event_glob", "contents", "_outdirs",
    "_proc_table", "thread_cpu", "role", "TreeSampler",
    "child_hashing", "child_loops", "run_child", "part_hashing", "part_batch",
    "EXPERIMENTS", "child_detect_experiment", "IDLE_FRAMES", "SAMPLE_EVERY", "_sampled", "part_stream", "DETECT",
    "detect_experiment",
    "run_sampled", "MP", "W1", "W2", "SCALING", "MIN_DELTA", "part_scaling",
    "running_at_once", "verdict", "render_size", "render",
    "main",
]


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_throughput", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(PARTS), help=f"parts, comma-separated: {','.join(PARTS)} (default all)")
    ap.add_argument("--events", type=int, default=POOL, help=f"events per image size (default {POOL})")
    ap.add_argument("--sizes", default="3,1", help="image sizes: 3 (2048x1536) and/or 1 (1152x864) MP")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the hashing comparison (default 3)")
    ap.add_argument("--cpu", type=int, default=0, help="core the one-core measurements are pinned to")
    ap.add_argument("--out", default=str(OUT_MD), help="markdown output")
    ap.add_argument("--no-write", action="store_true", help="print only")
    ap.add_argument("--scaling-repeat", type=int, default=4,
                    help="the scaling part runs the events this many times over (default 4: the work then "
                         "outweighs each process's start-up)")
    ap.add_argument("--profile-stream", action="store_true",
                    help="take stack samples of the streaming pipeline's threads (adds two tables)")
    ap.add_argument("--render", action="store_true", help="only format the last saved measurement again")
    ap.add_argument("--match", help="JSON of match settings for the pipeline runs, e.g. "
                    "'{\"embedding_query_region_shares\": [0.8]}' (a setting's cost end to end; default: the defaults)")
    ap.add_argument("--child", choices=["hashing", "loops"], help=argparse.SUPPRESS)
    ap.add_argument("--base", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--child"] and argv[1:2] and argv[1] in {f"detect-{x}" for x in EXPERIMENTS}:
        return child_detect_experiment(argv[1][len("detect-"):], argv[2:])
    args = ap.parse_args(argv)
    if args.child:
        fn = child_hashing if args.child == "hashing" else child_loops
        print(json.dumps(fn(Path(args.base), args.n, args.rounds, args.cpu)))
        return 0
    parts = [p for p in args.only.split(",") if p]
    bad = [p for p in parts if p not in PARTS]
    if bad:
        print(f"--only: unknown part {bad[0]!r} (choose from {', '.join(PARTS)})", file=sys.stderr)
        return 2
    parts = [p for p in PARTS if p in parts]
    sizes = [s for s in args.sizes.split(",") if s]
    if any(s not in SIZES for s in sizes):
        print(f"--sizes: choose from {', '.join(SIZES)}", file=sys.stderr)
        return 2
    tag = ""
    if args.match:
        from csadetect.config.settings import ConfigError, load_settings

        try:
            load_settings(overrides={"match": json.loads(args.match)})
        except (ValueError, ConfigError) as err:
            print(f"--match: {err}", file=sys.stderr)
            return 2
        os.environ[MATCH_ENV] = args.match
        tag = "-match-" + "".join(c if c.isalnum() else "_" for c in args.match)[:60]
    WORK.mkdir(parents=True, exist_ok=True)
    saved = WORK / f"results-{'-'.join(sizes)}-{args.events}-{'-'.join(parts)}{tag}.json"
    if args.render:
        results = json.loads(saved.read_text())
    else:
        load0, started = os.getloadavg()[0], time.time()
        results = {"events": args.events, "parts": parts, "sizes": {}, "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
        for key in sizes:
            label, _ = SIZES[key]
            t_data = time.time()
            base = workload(key, args.events)
            started += time.time() - t_data  # the run time stated leaves out generating the data
            log(f"{label}: {args.events} events in {base}")
            results["sizes"][key] = {}
            for part in parts:
                if part == "scaling" and key != sizes[0]:
                    continue  # wall-clock runs: the first image size only (the full run stays under ~20 min)
                fn = {"hashing": part_hashing, "batch": part_batch, "stream": part_stream, "scaling": part_scaling}[part]
                t0 = time.time()
                results["sizes"][key][part] = fn(base, args)
                log(f"  {part} done in {time.time() - t0:.0f} s")
        results["load"] = [load0, os.getloadavg()[0]]
        results["elapsed"] = time.time() - started
        saved.write_text(json.dumps(results))
    text = render(results, args)
    if args.match:
        text = f"Pipeline runs with the match settings `{args.match}` over the defaults.\n\n" + text
    print(text)
    if not args.no_write:
        Path(args.out).write_text(text)
        log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
