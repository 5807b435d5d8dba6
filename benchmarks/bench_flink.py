"""Scaling on a real Flink cluster (issue 16): the streaming detection pipeline at parallelism 1 and 2
on one local TaskManager with 2 slots (Kafka source with 2 partitions, one Python SDK worker process
per parallel task), events per second through the whole graph.

    python -m benchmarks.bench_flink [--events 600] [--rounds 1] [--out benchmarks/flink.md]

Method, per parallelism: a new topic and a new job; a warm-up batch (100 events) is published and
waited for (job start, model loading, first checkpoint); then the measured batch is published in one
go and timed until every one of its events is accounted for in the id-free stats (scanned +
dead-lettered) and every hit of it is reported. Rate = measured events / that time (wall clock: the
figure includes the 2 s windows of the file sinks, ~1 window at the end). The two parallelisms run
one after the other on the same cluster, ``--rounds`` times, alternating. The workload is
``tests/flink_stream.py``'s mix (20 % known copies, 2 % for review, 8 % malformed, 10 % chat
messages, the rest ordinary pictures). Needs ``make flink-deps``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from csadetect.cluster import artifacts
from csadetect.cluster.local import LocalCluster
from tests import flink_stream as fs
from tests.conftest import make_report_keys

REPO = Path(__file__).resolve().parent.parent


def _accounted(out: str) -> int:
    c = fs.counts(out)
    return c["scanned"] + c["dead_lettered"]


def one_run(cluster, work: Path, keys: dict, parallelism: int, n_events: int, tag: str) -> dict:
    work.mkdir(parents=True)
    paths = fs.build_indicators(work, keys)
    warm = fs.build_stream(paths["known"], 100, seed=1, tag=f"w{tag}")
    batch = fs.build_stream(paths["known"], n_events, seed=2, tag=f"m{tag}")
    topic = f"bench-{tag}"
    fs.create_topic(cluster.kafka_bootstrap, topic)
    proc = fs.start_pipeline(cluster, paths, topic, work / "detect.log", parallelism=parallelism, group=f"g{tag}")
    out = paths["out"]
    try:
        fs.publish(cluster.kafka_bootstrap, topic, warm.events)
        if not fs.wait_for(lambda: _accounted(out) >= len(warm), 600, (proc,), every=1):
            raise RuntimeError(f"warm-up did not finish: {(work / 'detect.log').read_text()[-2000:]}")
        t0 = time.monotonic()
        fs.publish(cluster.kafka_bootstrap, topic, batch.events)

        def done():
            reported = {r["event_id"] for r in fs.reports(out)}
            return _accounted(out) >= len(warm) + len(batch) and reported >= batch.hits
        if not fs.wait_for(done, 900, (proc,), every=0.5):
            raise RuntimeError("the measured batch did not finish")
        seconds = time.monotonic() - t0
    finally:
        proc.terminate()
        cluster.cancel_jobs()
        time.sleep(3)
    return {"parallelism": parallelism, "events": len(batch), "seconds": round(seconds, 1),
            "events_per_s": round(len(batch) / seconds, 2)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "flink.md")
    args = parser.parse_args(argv)
    gone = artifacts.missing()
    if gone:
        print("missing (make flink-deps): " + "; ".join(gone), file=sys.stderr)
        return 1
    load_start = os.getloadavg()[0]
    results = {1: [], 2: []}
    with tempfile.TemporaryDirectory(prefix="bench-flink-") as tmp:
        tmp = Path(tmp)
        keys = make_report_keys(tmp / "keys")
        cluster = LocalCluster(tmp / "cluster", slots=2).start()
        try:
            for rnd in range(args.rounds):
                for p in ((1, 2) if rnd % 2 == 0 else (2, 1)):
                    r = one_run(cluster, tmp / f"r{rnd}p{p}", keys, p, args.events, f"{rnd}p{p}")
                    print(json.dumps(r), flush=True)
                    results[p].append(r["events_per_s"])
        finally:
            cluster.stop()
    med = {p: statistics.median(v) for p, v in results.items()}
    ratio = med[2] / med[1]
    import apache_beam

    lines = [
        "# Flink scaling (issue 16)", "",
        f"Regenerate: `python -m benchmarks.bench_flink --events {args.events} --rounds {args.rounds}` "
        f"(measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}). Machine: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}; apache-beam {apache_beam.__version__}, "
        f"Flink {artifacts.FLINK_VERSION}, Kafka {artifacts.KAFKA_VERSION}. Load average (1 min) {load_start:.2f} at the start, "
        f"{os.getloadavg()[0]:.2f} at the end. Method: the docstring of `benchmarks/bench_flink.py`.", "",
        "| parallelism | events measured | events/s (median of rounds) | rounds | vs parallelism 1 |",
        "|---|---|---|---|---|",
    ]
    for p in (1, 2):
        lines.append(f"| {p} | {args.events} | {med[p]:.2f} | {', '.join(f'{x:.2f}' for x in results[p])} | "
                     f"{med[p] / med[1]:.2f}x |")
    lines += ["", f"Parallelism 2 gives {ratio:.2f}x the throughput of parallelism 1 on this 2-core machine, where the "
              "JobManager, TaskManager, job server, Kafka broker and the benchmark's own producer share the two cores "
              "with the Python SDK workers."]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
