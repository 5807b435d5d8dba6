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
import base64
import json
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Optional

from benchmarks import bench_stages as stages
from benchmarks.bench_stages import MATCH_ENV, SIZES, SMALL, config_path, kept_notes, log, table

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


# --------------------------------------------------------------------------- workload


def workload(key: str, n: int) -> Path:
    """A directory with the first ``n`` events of bench_stages' cached workload (``events.jsonl``), its
    first SMALL events (``events-20.jsonl``), and links to its snapshot, keys and report keys (so
    ``bench_stages.config_path`` works on it)."""
    if n <= SMALL:
        raise SystemExit(f"--events must be above {SMALL} (the start-up run uses the first {SMALL})")
    label, size = SIZES[key]
    pool = stages.workload(label, size, max(n, POOL))
    base = WORK / f"{size[0]}x{size[1]}-{n}"
    if (base / "ready").exists():
        return base
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    for name in ("db", "keys", "report-keys", "report-keys.json", "stages.json"):
        (base / name).symlink_to(pool / name)
    lines = (pool / "events.jsonl").read_bytes().splitlines(True)[:n]
    (base / "events.jsonl").write_bytes(b"".join(lines))
    (base / f"events-{SMALL}.jsonl").write_bytes(b"".join(lines[:SMALL]))
    (base / "ready").write_text("")
    return base


def event_glob(base: Path, files: int, repeat: int = 1) -> str:
    """The events, ``repeat`` times (copies get their own event ids: ``ev-00001-r2``), as ``files``
    files (round-robin; made on first use), as an ``--input_glob``."""
    if files == 1 and repeat == 1:
        return str(base / "events.jsonl")
    d = base / f"x{repeat}-files{files}"
    if not (d / "ready").exists():
        d.mkdir(exist_ok=True)
        lines = (base / "events.jsonl").read_bytes().splitlines(True)
        n = len(lines)
        for r in range(1, repeat):
            for line in lines[:n]:
                ev = json.loads(line)
                ev["event_id"] = f"{ev['event_id']}-r{r}"
                lines.append((json.dumps(ev) + "\n").encode())
        for i in range(files):
            (d / f"events-{i}.jsonl").write_bytes(b"".join(lines[i::files]))
        (d / "ready").write_text("")
    return str(d / "events-*.jsonl")


def contents(base: Path, n: int) -> list[bytes]:
    """The JPEG bytes of the first ``n`` events."""
    out = []
    with open(base / "events.jsonl", "rb") as fh:
        for line, _ in zip(fh, range(n)):
            out.append(base64.b64decode(json.loads(line)["content_b64"]))
    return out


# --------------------------------------------------------------------------- process CPU from /proc


def _proc_table() -> dict[int, tuple[int, float, str]]:
    """pid -> (parent pid, CPU seconds (user + system), short command) of every process."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        out[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / CLK, cmd)
    return out


def thread_cpu(pid: int, top: int = 6) -> list[tuple[str, float]]:
    """CPU seconds of a process's busiest threads: (name, CPU s), largest first."""
    out = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        out.append((stat[stat.index("(") + 1:stat.rindex(")")], (int(fields[11]) + int(fields[12])) / CLK))
    return sorted(out, key=lambda x: -x[1])[:top]


def role(cmd: str) -> str:
    if "sdk_worker_main" in cmd or "worker_pool_main" in cmd:
        return "SDK worker"
    if "csadetect.pipelines.detect" in cmd or "--child detect-" in cmd:
        return "pipeline (runner)"
    return cmd.split()[0].rsplit("/", 1)[-1] if cmd else "?"


class TreeSampler:
    """CPU seconds of a process and all its descendants, sampled from /proc every ``every`` s by a
    thread (a descendant's CPU stays counted after it exits: its last sample is kept)."""

    def __init__(self, pid: int, every: float = 0.2):
        self.pid, self.every = pid, every
        self.last: dict[int, tuple[float, str]] = {}  # pid -> (cpu s, role)
        self.timeline: list[tuple[float, dict[int, float]]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.t0 = time.perf_counter()

    def sample(self) -> float:
        procs = _proc_table()
        tree, frontier = set(), {self.pid}
        while frontier:
            tree |= frontier
            frontier = {p for p, (pp, _, _) in procs.items() if pp in frontier} - tree
        now = {p: procs[p][1] for p in tree if p in procs}
        with self._lock:
            for p, cpu in now.items():
                self.last[p] = (cpu, self.last[p][1] if p in self.last else role(procs[p][2]))
            self.timeline.append((time.perf_counter() - self.t0, dict(now)))
            return sum(c for c, _ in self.last.values())

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self.sample()

    def start(self) -> "TreeSampler":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def per_process(self) -> list[dict]:
        return [{"pid": p, "role": r, "cpu": c} for p, (c, r) in sorted(self.last.items())]

    def compact(self, step: float = 1.0) -> list:
        """[seconds since start, [CPU s of each process of the run, in pid order]] about every ``step`` s."""
        pids = sorted(self.last)
        out, next_t, seen = [], 0.0, {}
        for t, cpu in self.timeline:
            seen.update(cpu)  # a process that has exited keeps its last value
            if t >= next_t:
                out.append([round(t, 1), [round(seen.get(p, 0.0), 2) for p in pids]])
                next_t = t + step
        return out

    def overlap(self, pids: list[int]) -> dict:
        """Seconds during which 0, 1, 2 ... of ``pids`` each used more than BUSY of a core."""
        busy: dict[int, float] = {}
        for (t0, a), (t1, b) in zip(self.timeline, self.timeline[1:]):
            dt = t1 - t0
            if dt <= 0:
                continue
            k = sum(1 for p in pids if p in a and p in b and (b[p] - a[p]) / dt > BUSY)
            busy[k] = busy.get(k, 0.0) + dt
        return busy


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


def _outdirs(base: Path, tag: str) -> tuple[Path, Path]:
    out = WORK / "out" / f"{base.name}-{tag}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    return out, config_path(base, out)


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


# --------------------------------------------------------------------------- markdown


def running_at_once(timeline: list, columns: list[int]) -> dict[int, float]:
    """From ``TreeSampler.compact()``: seconds during which 0, 1, 2 ... of the processes in ``columns``
    each used more than BUSY of a core."""
    out: dict[int, float] = {}
    for (t0, a), (t1, b) in zip(timeline, timeline[1:]):
        dt = t1 - t0
        if dt > 0:
            k = sum(1 for i in columns if (b[i] - a[i]) / dt > BUSY)
            out[k] = out.get(k, 0.0) + dt
    return out


def verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def render_size(label: str, n: int, data: dict, r: dict) -> tuple[str, list[list[str]]]:
    """One image size's sections, and its rows of the targets table."""
    text, targets = [f"## {label}: {n} events", ""], []
    fr = data.get("framed", {})
    text += [f"Events: the first {n} of `bench_stages`' {label} workload (mean JPEG {data['mean_kb']:.0f} KB, quality 90; "
             f"of its {data['n']}: {fr.get('letterbox', 0)} letterboxed, {fr.get('canvas', 0)} on a screenshot-like canvas, "
             f"{data['known']} crops of known pictures, {data.get('exact', 0)} exact copies of known pictures); snapshot of "
             f"{data['indicators']:,} indicators ({data['random']:,} random PDQ).", ""]
    h = r.get("hashing")
    if h:
        rows = h["rows"]
        dec, pipe, plain = rows["decode"]["rate"], rows["pipeline"]["rate"], rows["plain"]["rate"]
        text += ["### Hashing, one core", "",
                 f"{h['n']} event pictures (pytx: the first {rows['pytx']['images']}), median of {h['rounds']} interleaved "
                 "rounds, images per CPU second of the pinned child.", "",
                 table(["", "images/s per CPU s", "ms per image", "x reduced decode", "x pytx"],
                       [[v["name"], f1(v["rate"]), f"{1000 / v['rate']:.2f}", f"{v['rate'] / dec:.2f}x",
                         f"{v['rate'] / rows['pytx']['rate']:.1f}x"] for v in rows.values()]), ""]
        targets.append([f"{label}: hashing >= {TARGETS['hashing']:.0f} images/s per core (pipeline configuration)",
                        f"{pipe:.0f}/s (plain {plain:.0f}/s; pytx {rows['pytx']['rate']:.1f}/s)",
                        verdict(pipe >= TARGETS["hashing"])])
        targets.append([f"{label}: hashing >= {TARGETS['hashing_vs_decode']}x the reduced decode, same run",
                        f"{pipe / dec:.2f}x (plain {plain / dec:.2f}x; decode {dec:.0f}/s)",
                        verdict(pipe / dec >= TARGETS["hashing_vs_decode"])])
    b = r.get("batch")
    loops = b.get("loops") if b else None
    if b:
        full, small = b["full"], b["small"]
        work = (full["cpu"] - full["startup_cpu"]) - (small["cpu"] - small["startup_cpu"])
        steady = (n - SMALL) / work if work >= MIN_DELTA / 2 else None  # else: noise (too few events)
        b["steady"] = steady
        text += ["### End to end, batch (FnApiRunner, one pinned core)", "",
                 "`python -m csadetect.pipelines.detect --input_glob events.jsonl --config ... --runner FnApiRunner` "
                 "(bench_stages' child: default detectors, reports sealed and signed, review store and stats written). "
                 f"Steady state = ({n} - {SMALL}) / (CPU s after start-up of the {n}-event run - the same of the "
                 f"{SMALL}-event run). Loops: the same events in a plain loop, indexes loaded beforehand, CPU time.", "",
                 table(["path", "events/s (wall, whole run)", "events/s per CPU s (whole run)",
                        "steady state, events/s per CPU s", "ms per event", "vs pytx loop", "reports"],
                       [["Beam, FnApiRunner", f1(n / full["wall"]), f1(n / full["cpu"]),
                         f1(steady) if steady else "n/a (too few events)", f"{1000 / steady:.1f}" if steady else "",
                         f"{steady / loops['pytx']:.1f}x" if loops and steady else "",
                         f"{full['reports']} ({full['signed']} signed, {full['sealed']} sealed)"]]
                       + ([["plain loop, ours (`hash_image` + views, `match_image`)", "", f1(loops["ours"]), f1(loops["ours"]),
                            f"{1000 / loops['ours']:.1f}", f"{loops['ours'] / loops['pytx']:.1f}x",
                            f"{loops['hits_ours']} of {loops['n']} match"],
                           ["plain loop, pytx (`hash_from_bytes`, `PDQIndex.query`)", "", f1(loops["pytx"]), f1(loops["pytx"]),
                            f"{1000 / loops['pytx']:.1f}", "1.0x", f"{loops['hits_pytx']} of {loops['n']} match"]] if loops else [])),
                 "",
                 f"Start-up (imports, TensorFlow, snapshot and model checks, before the graph runs): "
                 f"{full['startup_cpu']:.1f} CPU s; the {SMALL}-event run took {small['cpu']:.1f} CPU s in all.", ""]
        targets.append([f"{label}: end to end, batch (FnApiRunner) >= {TARGETS['e2e']:.0f} events/s per core",
                        (f"{steady:.1f}/s steady" if steady else "steady state n/a (too few events)")
                        + f" ({n / full['cpu']:.1f}/s with start-up)"
                        + (f"; pytx loop {loops['pytx']:.1f}/s, our loop {loops['ours']:.1f}/s" if loops else ""),
                        verdict(bool(steady and steady >= TARGETS["e2e"]))])
    s = r.get("stream")
    if s:
        text += ["### End to end, streaming (DirectRunner against the Pub/Sub emulator, one pinned core)", ""]
        if "skipped" in s:
            text += [f"Not measured: {s['skipped']}.", ""]
            targets.append([f"{label}: end to end, streaming >= 100 events/s per core", "not measured", s["skipped"]])
        elif "incomplete" in s:
            text += [f"Incomplete: {s['incomplete']}. Last lines:", "", "```", *s["tail"], "```", ""]
            targets.append([f"{label}: end to end, streaming >= 100 events/s per core", s["incomplete"], "**not met**"])
        else:
            c = s["counts"]
            how = ("inline (`content_b64`; the DirectRunner pulls 10 at once, more than the 4 MiB the Pub/Sub "
                   "library's emulator channel took before `csadetect.core.pubsub.subscriber` lifted it)")
            text += [f"{n} events published onto the emulator first ({s['publish_s']:.0f} s), {how}; then "
                     "`python -m csadetect.pipelines.detect --streaming --runner DirectRunner --input_subscription ... "
                     "--progress_seconds 1`. CPU s = the pipeline process and its children, from /proc, sampled at each "
                     f"progress line; steady state from the line where {s['first_line_done']} events were done "
                     f"({s['startup_wall']:.0f} s, {s['startup_cpu']:.1f} CPU s after the start) to the line where all "
                     f"{n} were.", "",
                     table(["path", "events/s (wall, whole run)", "events/s per CPU s (whole run)",
                            "steady state, events/s (wall)", "steady state, events/s per CPU s", "vs pytx loop",
                            "hits / non-hits / dead / reports"],
                           [["Beam, DirectRunner --streaming", f1(n / s["wall"]), f1(n / s["cpu"]), f1(s["steady_wall"]),
                             f1(s["steady"]), f"{s['steady'] / loops['pytx']:.1f}x" if loops else "",
                             f"{c.get('hits', 0)} / {c.get('non-hits', 0)} / {c.get('dead letters', 0)} / {c.get('reports', 0)}"]]),
                     "",
                     f"With nothing left to do the runner used {s['idle_cores'] or 0:.2f} cores (the {IDLE_LINES} progress "
                     "lines after the last event). Busiest threads of the pipeline process, CPU s, at the last event: "
                     + ", ".join(f"{name} {cpu:.1f}" for name, cpu in s["threads"]) + ".",
                     ""]
            if s.get("profile"):
                pr = s["profile"]
                k = max(pr["samples"], 1)
                text += [f"Where the pipeline's threads were (`--profile-stream`: {pr['samples']} stack samples every "
                         f"{SAMPLE_EVERY * 1000:.0f} ms from the graph's start, threads parked in a wait left out; the "
                         "rates above are from the same, slightly slowed run). Share of samples, leaf function (own) "
                         "and anywhere on the stack (inclusive):", "",
                         table(["own: function", "%"], [[f"`{f}`", f"{100 * c / k:.1f}"] for f, c in pr["own"][:15]]), "",
                         table(["inclusive: function", "%"], [[f"`{f}`", f"{100 * c / k:.1f}"] for f, c in pr["incl"][:30]]),
                         "", "Models loaded while the graph ran (`ModelKind.load` calls after start-up): "
                         + (", ".join(f"{kind} {c}" for kind, c in pr.get("model_loads", {}).items()) or "none") + ".", ""]
            targets.append([f"{label}: end to end, streaming (DirectRunner, emulator) >= {TARGETS['e2e']:.0f} events/s per core",
                            f"{s['steady']:.1f}/s steady ({n / s['cpu']:.1f}/s with start-up)",
                            verdict(s["steady"] >= TARGETS["e2e"])])
    sc = r.get("scaling")
    if sc:
        n = n * sc.get("repeat", 1)  # the scaling runs' event count
        runs = sc["runs"]
        keys = list(runs)
        ref, ref_mp = runs[keys[0]]["steady_wall"], runs[keys[1]]["steady_wall"]
        rows = []
        for key, x in runs.items():
            full = x["full"]
            procs = "; ".join(f"{p['role']} {p['cpu']:.1f}" for p in full["per_process"] if p["cpu"] >= 0.3)
            workers = [i for i, p in enumerate(full["per_process"]) if p["role"] == "SDK worker" and p["cpu"] >= 0.3]
            ov = running_at_once(full.get("timeline") or [], workers)
            both = f"{ov.get(2, 0.0):.0f} of {sum(ov.values()):.0f} s" if len(workers) >= 2 else ""
            sw = x["steady_wall"]
            rows.append([key, f1(n / full["wall"]), f1(sw) if sw else "n/a (too few events)",
                         f"{sw / ref:.2f}x" if sw and ref else "", f"{sw / ref_mp:.2f}x" if sw and ref_mp else "",
                         f"{full['cpu'] / full['wall']:.2f}", procs, both])
        plain2 = max((x["steady_wall"] or 0.0 for k, x in runs.items() if "2 workers" in k), default=0.0)
        la0, la1 = sc["load_start"], sc["load_end"]
        text += ["### Scaling: 2 worker processes against 1 (item 4), both cores free", "",
                 "`python -m csadetect.pipelines.detect --runner DirectRunner ...` unpinned, on the events "
                 f"{sc.get('repeat', 1)} times over ({n} events; copies with their own event ids), in 1 file or "
                 f"split round-robin into 2. Steady state on wall time: ({n} - {SMALL}) / (wall s of the {n}-event run "
                 f"- wall s of a {SMALL}-event run with the same runner options; the 2-file row reuses that "
                 "run of the 1-file row). With several workers the pipeline puts a `Reshuffle` before its stateful "
                 "steps (`csadetect.transforms.common.spread_before_state`), which the FnApiRunner otherwise fused into "
                 "the stage that hashes and ran on one worker only. CPU s per process from /proc, sampled every 0.2 s, start-up included (each "
                 "SDK worker imports TensorFlow and loads the models and the snapshot itself, about 8 CPU s); \"both "
                 f"running\": time during which each of the 2 SDK workers used more than {BUSY:g} of a core (with "
                 "another job on the second core, two workers running at once get about half a core each). Load average (1 min) "
                 f"{la0[0]:.2f} at the start, {la1[0]:.2f} at the end.", "",
                 table(["configuration", "events/s (wall, whole run)", "steady state, events/s (wall)",
                        "x 1 process", "x multi_processing 1 worker", "cores used", "CPU s per process",
                        "both workers running"], rows), ""]
        measured = f"{plain2 / ref:.2f}x" if plain2 and ref else "n/a (too few events)"
        targets.append([f"{label}: 2 worker processes >= {TARGETS['scaling']}x one process (DirectRunner multi_processing)",
                        measured + " (steady state, wall, against 1 process in_memory)",
                        verdict(bool(plain2 and ref and plain2 / ref >= TARGETS["scaling"]))])
    return "\n".join(text), targets


def render(results: dict, args) -> str:
    sections, targets = [], []
    for key, r in results["sizes"].items():
        label, _ = SIZES[key]
        data = json.loads((workload(key, results["events"]) / "stages.json").read_text())
        text, rows = render_size(label, results["events"], data, r)
        sections.append(text)
        targets += rows
    cmd = "nice -n 10 .venv/bin/python -m benchmarks.bench_throughput" + (
        f" --events {results['events']}" if results["events"] != POOL else "") + (
        f" --only {','.join(results['parts'])}" if tuple(results["parts"]) != PARTS else "") + (
        f" --sizes {','.join(results['sizes'])}" if list(results["sizes"]) != ["3", "1"] else "")
    la = results["load"]
    head = [
        "# Throughput of image events, end to end, side by side with pytx (issue 15, items 2-4)",
        "",
        f"Regenerate: `{cmd}` (about {max(1, round(results['elapsed'] / 60))} min here with the workload cached; "
        f"measured {results['when']}). Machine: {stages.machine()}. Load average (1 min) {la[0]:.2f} when it started, "
        f"{la[1]:.2f} when it ended: the per-core figures count CPU time, the scaling figures wall time, which other "
        "load on the machine slows. Method: the docstring of `benchmarks/bench_throughput.py`.",
        "",
        "## Targets",
        "",
        table(["target", "measured", ""], targets),
        "",
        "## Notes (hand-written; kept between the markers when the file is regenerated)",
        "",
        kept_notes(Path(args.out)),
        "",
    ]
    return "\n".join(head) + "\n" + "\n\n".join(sections) + "\n"


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
