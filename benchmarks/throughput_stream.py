"""The throughput benchmark's streaming part (``benchmarks.bench_throughput``, ``stream``): the events
published onto the Pub/Sub emulator, then the streaming pipeline on one pinned core read line by line
(``part_stream``); with ``--profile-stream`` the pipeline runs in a child of the benchmark that samples its
threads' stacks (``child_detect_experiment``, ``_sampled``). ``DETECT`` and ``detect_experiment`` are the
pipeline's command lines, which the scaling part uses too. ``bench_throughput`` re-exports every name.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Optional

from benchmarks.bench_stages import SMALL, log
from benchmarks.throughput_common import IDLE_LINES, PROGRESS, ROOT, STALL
from benchmarks.throughput_proc import TreeSampler, thread_cpu
from benchmarks.throughput_workload import _outdirs

__all__ = ["EXPERIMENTS", "child_detect_experiment", "IDLE_FRAMES", "SAMPLE_EVERY", "_sampled", "part_stream",
           "DETECT", "detect_experiment"]


EXPERIMENTS = ("profile",)


def child_detect_experiment(which: str, argv: list[str]) -> int:
    """``csadetect.pipelines.detect`` in this child with ``profile``: no change to the graph; stack
    samples of every thread and the model loads while the graph runs (:func:`_sampled`;
    ``--profile-stream``). (The scaling experiments of the first version, a ``Reshuffle`` before the
    stateful report dedup, became the pipeline's own behaviour with several local workers:
    ``csadetect.transforms.common.spread_before_state``.)"""
    from csadetect.pipelines import detect

    return _sampled(detect, argv, Path(os.environ["THROUGHPUT_PROFILE"]))


IDLE_FRAMES = ("threading.py", "queue.py", "selectors.py", "concurrent/futures/thread.py", "socket.py",
               "grpc/_channel.py")  # leaf frames of a thread that waits (a blocking Pub/Sub pull included)
SAMPLE_EVERY = 0.005  # s between stack samples


def _sampled(detect, argv: list[str], path: Path) -> int:
    """Run ``detect.main(argv)`` with a sampling profiler: from the moment the graph starts to run,
    every SAMPLE_EVERY s a thread takes the Python stack of every other thread
    (``sys._current_frames``) and keeps those not parked in a wait (a leaf frame in threading, queue,
    selectors ...). The counts by leaf function (own) and by every function on the stack
    (inclusive) go to ``path`` as JSON. cProfile cannot do this: the runner's executor threads never
    end, and a profiler stopped from another thread charges their open frames wrongly."""
    import collections

    own: collections.Counter = collections.Counter()
    incl: collections.Counter = collections.Counter()
    total = [0]
    stop = threading.Event()

    def key(code) -> str:
        f = code.co_filename.split("site-packages/")[-1].split("/work/main/")[-1]
        return f"{f}:{code.co_firstlineno} {code.co_name}"

    def loop():
        me = threading.get_ident()
        while not stop.wait(SAMPLE_EVERY):
            for ident, frame in sys._current_frames().items():  # pylint: disable=protected-access
                if ident == me or frame.f_code.co_filename.endswith(IDLE_FRAMES):
                    continue
                total[0] += 1
                own[key(frame.f_code)] += 1
                seen = set()
                while frame is not None:
                    k = key(frame.f_code)
                    if k not in seen:
                        seen.add(k)
                        incl[k] += 1
                    frame = frame.f_back

    from csadetect.models import loader

    loads: collections.Counter = collections.Counter()  # model loads by kind while the graph runs
    kind_load = loader.ModelKind.load

    def counted_load(self, *a, **kw):
        loads[self.name] += 1
        return kind_load(self, *a, **kw)

    loader.ModelKind.load = counted_load
    run_and_wait = detect.run_and_wait

    def sampled_run_and_wait(*a, **kw):
        loads.clear()  # the start-up checks load each model once before the graph runs
        threading.Thread(target=loop, daemon=True).start()
        return run_and_wait(*a, **kw)

    detect.run_and_wait = sampled_run_and_wait
    try:
        return detect.main(argv)
    finally:
        stop.set()
        path.write_text(json.dumps({"samples": total[0], "own": own.most_common(40), "incl": incl.most_common(80),
                                    "model_loads": dict(loads)}))


def part_stream(base: Path, args) -> dict:
    if shutil.which("gcloud") is None:
        return {"skipped": "gcloud is not installed: the Pub/Sub emulator is not available"}
    from tests.pubsub_emulator import PubSubAdmin, pubsub_emulator, stop

    n = args.events
    with pubsub_emulator() as host:
        admin = PubSubAdmin(host)
        topic = admin.topic("uploads")
        sub = admin.subscription(topic, "uploads-pipeline")
        env = dict(os.environ, PUBSUB_EMULATOR_HOST=host)
        inline = True  # csadetect.core.pubsub's emulator channel takes any pull (fix_direct_runner_pubsub)
        events = base / "events.jsonl"
        media = None
        log(f"  stream: publishing {n} events ({'inline' if inline else 'content by reference'}) onto the emulator ({host})")
        t0 = time.perf_counter()
        pub = subprocess.run([sys.executable, "-m", "csadetect", "publish", str(events),
                              "--topic", topic], cwd=ROOT, env=env, capture_output=True, text=True)
        if pub.returncode != 0:
            raise RuntimeError(f"csadetect publish failed: {pub.stderr[-2000:]}")
        publish_s = time.perf_counter() - t0
        out, cfg = _outdirs(base, "stream")
        if media is not None:
            import yaml

            config = yaml.safe_load(cfg.read_text())
            config["content"] = {"allowed_uri_prefixes": [str(media) + "/"]}
            cfg.write_text(yaml.safe_dump(config))
        module = detect_experiment("profile") if args.profile_stream else DETECT
        env["THROUGHPUT_PROFILE"] = str(out / "profile.json")
        cmd = [sys.executable, *module, "--config", str(cfg), "--streaming",
               "--runner", "DirectRunner", "--input_subscription", sub, "--progress_seconds", "1"]
        log("  stream: DirectRunner --streaming, one core")
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                preexec_fn=lambda: os.sched_setaffinity(0, {args.cpu}))
        sampler = TreeSampler(proc.pid).start()
        points: list[tuple[float, int, float, dict]] = []  # (wall s, events done, tree CPU s, counters)
        tail: list[str] = []
        after: Optional[int] = None
        threads: list = []
        failed = ""
        deadline = time.monotonic() + max(300, n * 2)
        try:
            for line in proc.stdout:
                tail = (tail + [line.rstrip()])[-30:]
                if line.startswith("progress ") and "received" in line:
                    counts = {k: int(v) for k, v in PROGRESS.findall(line)}
                    done = counts.get("hits", 0) + counts.get("non-hits", 0) + counts.get("dead letters", 0)
                    points.append((time.perf_counter() - t0, done, sampler.sample(), counts))
                    if done >= n:
                        after = after + 1 if after is not None else 0
                        threads = threads or thread_cpu(proc.pid)
                        if after >= IDLE_LINES:  # a few more lines: what the runner burns with nothing to do
                            break
                if "Received message larger than max" in line:
                    failed = line.strip()
                if failed and len(tail) >= 30 or time.monotonic() > deadline or (
                        points and points[-1][0] - max((p[0] for p in points if p[1] > 0), default=0.0) > STALL):
                    break
        finally:
            rest: list[str] = []  # keep reading, so a full pipe never blocks the pipeline while it stops
            drain = threading.Thread(target=lambda: rest.extend(proc.stdout), daemon=True)
            drain.start()
            stop(proc, timeout=60)
            drain.join(timeout=5)
            sampler.stop()
            tail = (tail + [line.rstrip() for line in rest])[-30:]
        admin.close()
    res = {"n": n, "publish_s": publish_s, "points": [p[:3] for p in points], "per_process": sampler.per_process(),
           "tail": tail[-8:], "threads": threads, "inline": inline, "failed": failed}
    if args.profile_stream and (out / "profile.json").exists():
        res["profile"] = json.loads((out / "profile.json").read_text())
    complete = [p for p in points if p[1] >= n]
    if not complete:
        res["incomplete"] = f"{points[-1][1] if points else 0} of {n} events done" + (
            f" ({failed[:200]})" if failed else " before the time limit or with no progress for {STALL} s")
        return res
    first, last = next(p for p in points if p[1] >= SMALL), complete[0]
    idle = complete[-1]
    res["counts"] = last[3]
    res["idle_cores"] = (idle[2] - last[2]) / (idle[0] - last[0]) if idle[0] > last[0] else None
    res.update({"first_line_done": first[1], "steady": (last[1] - first[1]) / max(last[2] - first[2], 1e-9),
                "steady_wall": (last[1] - first[1]) / max(last[0] - first[0], 1e-9), "wall": last[0],
                "cpu": last[2], "startup_cpu": first[2], "startup_wall": first[0]})
    return res


DETECT = ["-m", "csadetect.pipelines.detect"]


def detect_experiment(which: str) -> list[str]:
    return ["-m", "benchmarks.bench_throughput", "--child", f"detect-{which}"]
