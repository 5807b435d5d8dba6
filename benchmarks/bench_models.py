"""Model inference speed, size and memory (issue 3 §6), on one pinned core.

* **grooming**: messages/s of the streaming path as ``csadetect.transforms.grooming`` runs it now — the
  real ``EncodeMessagesFn`` (micro-batches of one bundle) and ``ConversationStateFn`` (numpy
  window model), driven in-process with state kept through the DoFn's ``PickleCoder`` — against
  the per-message ``ConversationStateFn`` of commit ``BEFORE_COMMIT`` (read with ``git show``;
  one encoder call and one Keras window-model call per message) driven the same way, against
  ``GroomingModel.score_conversations`` (whole conversations, batched); plus the whole
  ``ClassifyGrooming`` transform, now and before, on Beam's FnApiRunner.
* **embedding**: ``EmbeddingModel.load().embed_arrays(...)`` images/s at batch sizes 1, 8, 32,
  64 on pre-decoded 64x64 uint8 arrays, and with the preprocessing from a decoded PIL image.
* **classifier**: ``NewMaterialClassifier.load().score(embeddings)`` embeddings/s, when
  ``csadetect/models/classifier.py`` exists.

Model size on disk; process RSS growth on load (each model in a fresh process).

    python -m benchmarks.bench_models                 # all; ~7 min; writes benchmarks/models.md
    python -m benchmarks.bench_models --quick         # a < 1 min smoke run (not for the tables)
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTEROP_THREADS",
             "TF_NUM_INTRAOP_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse
import datetime as dt
import importlib.util
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

BEFORE_COMMIT = "72feb25"  # transforms/grooming.py (now csadetect/) before micro-batched encoding (per-message DoFn)
STREAM_TARGET = 2000  # messages/s per core (issue 3)
EMBED_TARGET = 200  # images/s per core, batched, after decode (issue 3)
CLASSIFIER_PENDING = "<!-- classifier: csadetect/models/classifier.py was not there when this ran -->"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def pin_one_core() -> str:
    try:
        core = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
        return f"pinned to core {core}"
    except (AttributeError, OSError):
        return "not pinned (no sched_setaffinity)"


def tf_one_thread():
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass
    return tf


def interleaved(variants: dict, rounds: int, units: dict) -> tuple[dict, dict]:
    """Run every variant once per round, in turn; units[name] items per run. Returns items per
    CPU-second of this process (all its threads; the process is pinned to one core, so this is
    per core and does not count time other processes took the core away) and items per
    wall-clock second, per round."""
    cpu = {name: [] for name in variants}
    wall = {name: [] for name in variants}
    for name, fn in variants.items():  # warm-up (tracing, caches)
        fn()
    for r in range(rounds):
        for name, fn in variants.items():
            c, t = time.process_time(), time.perf_counter()
            fn()
            cpu[name].append(units[name] / (time.process_time() - c))
            wall[name].append(units[name] / (time.perf_counter() - t))
        log(f"  round {r + 1}: " + ", ".join(f"{k}: {v[-1]:,.0f}/s" for k, v in cpu.items()))
    return cpu, wall


def med(values) -> float:
    return float(np.median(values))


def spread(values) -> str:
    """median (min-max)"""
    return f"{fmt_rate(med(values))} ({fmt_rate(min(values))}-{fmt_rate(max(values))})"


def fmt_rate(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:,.1f}"


def dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).glob("*") if f.is_file())


# ----------------------------------------------------------------------------- memory (child)
def _rss_now_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def load_probe(kind: str) -> dict:
    """In a fresh process: RSS after importing TensorFlow + Keras, after loading the model, and
    after its first inference (current RSS from /proc; peak from getrusage). The model's module is
    imported after ``base`` on purpose: its import is part of the load measured."""
    tf_one_thread()
    import keras  # noqa: F401

    base, t0 = _rss_now_mb(), time.perf_counter()
    if kind == "grooming":
        from csadetect.models.grooming import GroomingModel

        model = GroomingModel.load()
        load_s = time.perf_counter() - t0
        loaded = _rss_now_mb()
        model.score_conversations([[{"sender": "a", "text": "hi there", "participants_minor": True}]])
        model.score_encoded_windows([(model.encode(["hi there"]), ["a"])])
    elif kind == "embedding":
        from csadetect.models.embedding import EmbeddingModel

        model = EmbeddingModel.load()
        load_s = time.perf_counter() - t0
        loaded = _rss_now_mb()
        model.embed_arrays(np.zeros((64, model.input_size, model.input_size, 3), np.uint8))
    elif kind == "classifier":
        from csadetect.models.classifier import NewMaterialClassifier

        model = NewMaterialClassifier.load()
        load_s = time.perf_counter() - t0
        loaded = _rss_now_mb()
        model.score(np.zeros((64, embedding_dim(model)), np.float32))
    else:
        raise SystemExit(f"unknown kind {kind}")
    used = _rss_now_mb()
    return {"base_mb": base, "load_mb": loaded - base, "first_use_mb": used - base, "load_s": load_s,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def memory(kind: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "benchmarks.bench_models", "--load-probe", kind], capture_output=True,
                         text=True, cwd=ROOT, timeout=600)
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["failed"])[-1][:200]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def memory_line(m: dict) -> str:
    if "error" in m:
        return f"memory not measured ({m['error']})"
    return (f"load {m['load_s']:.1f} s; RSS +{m['load_mb']:.0f} MB on load, +{m['first_use_mb']:.0f} MB after "
            f"the first inference (over {m['base_mb']:.0f} MB for Python + TensorFlow + Keras imported; "
            f"process peak {m['peak_mb']:.0f} MB)")


# ----------------------------------------------------------------------------- grooming
class _State:
    """ReadModifyWriteState kept as bytes through the DoFn's coder (a runner without a state cache:
    every message decodes and encodes its conversation's state)."""

    def __init__(self, coder):
        self.coder, self.raw = coder, None

    def read(self):
        return None if self.raw is None else self.coder.decode(self.raw)

    def write(self, value):
        self.raw = self.coder.encode(value)

    def clear(self):
        self.raw = None


class _Timer:
    def set(self, ts):
        self.ts = ts

    def clear(self):
        self.ts = None


def _old_module():
    """transforms/grooming.py at BEFORE_COMMIT, as a module (None when git cannot give it). That
    commit predates the one-package layout: its imports of ``transforms.*`` and ``models.*`` are
    pointed at ``csadetect.transforms`` and ``csadetect.models``."""
    try:
        src = subprocess.run(["git", "show", f"{BEFORE_COMMIT}:transforms/grooming.py"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    src = src.replace("from transforms.", "from csadetect.transforms.").replace("from models.", "from csadetect.models.")
    name = "_grooming_before_" + BEFORE_COMMIT
    spec = importlib.util.spec_from_loader(name, loader=None)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    exec(compile(src, f"{BEFORE_COMMIT}:transforms/grooming.py", "exec"), mod.__dict__)
    return mod


def _events(convs):
    """Corpus conversations -> text Events, arriving interleaved across conversations (message k
    of every open conversation, then k+1, ...), each with its event-time timestamp."""
    from apache_beam.utils.timestamp import Timestamp

    from csadetect.events.event import Event

    t0 = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
    per_conv = []
    for ci, conv in enumerate(convs):
        evs = []
        for k, m in enumerate(conv):
            when = t0 + dt.timedelta(minutes=3 * ci + k)
            iso = when.isoformat().replace("+00:00", "Z")
            evs.append((Event(event_id=f"c{ci}-{k}", provider="bench", service="chat", kind="text", occurred_at=iso,
                              account=f"acct-{m['sender']}", conversation_id=f"c{ci}", sender=m["sender"],
                              text=m["text"], participants_minor=True), Timestamp.of(when.timestamp())))
        per_conv.append(evs)
    out, k = [], 0
    while any(k < len(e) for e in per_conv):
        out += [e[k] for e in per_conv if k < len(e)]
        k += 1
    return out


def bench_grooming(args, lines: list) -> dict:
    tf_one_thread()
    from apache_beam.utils import shared
    from apache_beam.utils.windowed_value import PANE_INFO_UNKNOWN
    from apache_beam.transforms.window import GlobalWindow

    import csadetect.models.grooming as mg
    from training import grooming_corpus
    from csadetect.transforms import grooming as tg

    convs = [list(c.records()) for c in grooming_corpus.generate(args.conversations, seed=11, split="eval")]
    convs = [c for c in convs if c and c[0]["participants_minor"]]
    n_msgs = sum(len(c) for c in convs)
    events = _events(convs)
    log(f"grooming: {len(convs)} conversations, {n_msgs} messages")

    handle = shared.Shared()
    coder = tg.ConversationStateFn.WINDOW.coder

    def state_fn(module):
        fn = module.ConversationStateFn(None, None, 7 * 24 * 3600, handle)
        fn.setup()
        return fn

    new_state = state_fn(tg)
    model = new_state.model
    old = _old_module()
    old_state = state_fn(old) if old is not None else None
    encoders = {}
    for b in args.encode_batches:
        enc = tg.EncodeMessagesFn(None, handle, b)
        enc.setup()
        encoders[b] = enc
    window, pane = GlobalWindow(), PANE_INFO_UNKNOWN  # passed through
    flags = {}

    def run_state(fn, elements, label):
        states, flagged = {}, 0
        for (cid, value), ts in elements:
            st = states.get(cid)
            if st is None:
                st = states[cid] = (_State(coder), _State(coder), _Timer())
            for _ in fn.process((cid, value), timestamp=ts, window_state=st[0], info_state=st[1], expiry=st[2]):
                flagged += 1
        flags[label] = flagged

    def streaming_now(b):
        enc = encoders[b]

        def run():
            encoded = []
            for i in range(0, len(events), b):  # one bundle of b arriving messages
                enc.start_bundle()
                for ev, ts in events[i:i + b]:
                    for wv in enc.process((ev.conversation_id, ev), timestamp=ts, window=window, pane=pane):
                        encoded.append(((wv.value[0], wv.value[1]), wv.timestamp))
                for wv in enc.finish_bundle() or ():
                    encoded.append(((wv.value[0], wv.value[1]), wv.timestamp))
            run_state(new_state, encoded, f"now b{b}")
        return run

    def streaming_before():
        saved = mg.NUMPY_MAX_WINDOWS
        mg.NUMPY_MAX_WINDOWS = 0  # the window model in TensorFlow, as at BEFORE_COMMIT
        try:
            run_state(old_state, [((ev.conversation_id, ev), ts) for ev, ts in events], "before")
        finally:
            mg.NUMPY_MAX_WINDOWS = saved

    def batched():
        model.score_conversations(convs)

    variants, labels = {}, {}
    if old_state is not None:
        variants["before"] = streaming_before
        labels["before"] = (f"streaming, before (`ConversationStateFn` of {BEFORE_COMMIT}: encoder call + Keras "
                            "window-model call per message)")
    for b in args.encode_batches:
        variants[f"now b{b}"] = streaming_now(b)
        labels[f"now b{b}"] = (f"streaming, now (`EncodeMessagesFn` + `ConversationStateFn`), bundles of {b} "
                               f"message{'s' if b > 1 else ''}")
    variants["batched"] = batched
    labels["batched"] = "batched whole conversations (`score_conversations`, replay/evaluation)"
    rates, wall = interleaved(variants, args.rounds, {k: n_msgs for k in variants})
    if len(set(flags.values())) > 1:
        log(f"  WARNING: flag counts differ between paths: {flags}")

    beam_rates = bench_grooming_beam(args, convs, old) if not args.no_beam else {}

    size = dir_size(mg.KIND.reference)
    mem = memory("grooming")
    main_b = max(args.encode_batches)
    now = med(rates[f"now b{main_b}"])
    lines += [
        "## Grooming model",
        "",
        f"{len(convs)} held-out synthetic conversations with a minor (`grooming_corpus.generate({args.conversations}, "
        f"seed=11, split='eval')`), {n_msgs} messages, arriving interleaved across conversations (message k of every "
        "conversation, then k+1, ...). One pinned core; TensorFlow intra/inter-op threads 1, OpenBLAS/OMP threads 1; "
        f"median of {args.rounds} interleaved rounds (min-max in brackets). Per core = messages per CPU-second "
        "of the (pinned) process; wall = messages per elapsed second, lower when other processes share the core. "
        "Streaming rows drive the DoFns' own "
        "`process` in this process, with each conversation's state encoded and decoded through the DoFn's "
        "`PickleCoder` at every message (as a runner without a state cache would); a \"bundle of b\" hands b "
        "arriving messages to `EncodeMessagesFn` between `start_bundle` and `finish_bundle`. A flagged conversation "
        f"is not scored again (both paths); {max(flags.values()) if flags else 0} of the conversations are flagged. "
        "There is no public reference grooming model to run side by side.",
        "",
        f"| scoring | messages/s per core | wall messages/s | target {STREAM_TARGET:,}/s per core |",
        "|---|---:|---:|---|",
    ]
    for name, vals in rates.items():
        m = med(vals)
        target = "" if name == "batched" else ("met" if m >= STREAM_TARGET else "**not met**")
        lines.append(f"| {labels[name]} | {spread(vals)} | {fmt_rate(med(wall[name]))} | {target} |")
    for name, (vals, wvals) in beam_rates.items():
        m = med(vals)
        lines.append(f"| {name} | {spread(vals)} | {fmt_rate(med(wvals))} | "
                     f"{'met' if m >= STREAM_TARGET else '**not met**'} |")
    before = med(rates["before"]) if "before" in rates else None
    lines += [
        "",
        (f"Streaming now, bundles of {main_b}: **{now / before:.1f}x** the per-message path before. " if before else "")
        + f"Model: {size / 1e6:.2f} MB on disk (target <= 20 MB: {'met' if size <= 20e6 else 'not met'}); "
        + memory_line(mem) + ".",
        "",
    ]
    if beam_rates:
        lines += [
            "Beam rows: `ClassifyGrooming` (input `beam.Create` of the same events, timestamped at their "
            "`occurred_at`; output counted) on the FnApiRunner, in-process, batch mode, process pinned to one core; "
            "messages per CPU-second (and per wall second) after subtracting a run of the same pipeline on one "
            f"conversation (pipeline construction, start-up, model load); median of {args.beam_rounds} interleaved "
            "rounds. They include the runner's own per-element work (shuffle to the state step, state, timers), "
            "which the rows above leave out; the batch runner hands `EncodeMessagesFn` large bundles, so its "
            "batches are full. The FnApiRunner's embedded SDK worker caches user state and weighs every value it "
            "caches with `objsize.get_deep_size`, which walks the globals of every loaded module: ~2-3 ms a call "
            "once TensorFlow's ~4,500 modules are imported, a few calls per conversation per bundle (each "
            "`ReadModifyWriteState` commit is a clear and an append). Dataflow's SDK harness runs with that cache "
            f"off unless `--max_cache_memory_usage_mb` is set (default 0 in Beam {beam_minor()}), so the rows marked \"cache "
            "off\" (`worker_handlers.STATE_CACHE_SIZE_MB = 0` in this benchmark) are the closer picture; the last "
            "row shows what the cache costs.",
            "",
        ]
    return {"rates": rates, "beam": beam_rates, "memory": mem, "size": size}


def bench_grooming_beam(args, convs, old) -> dict:
    """ClassifyGrooming now vs before on the FnApiRunner; messages/s excluding the fixed cost.

    The FnApiRunner's embedded SDK worker caches user state (100 MB) and weighs every value it
    caches with ``objsize.get_deep_size``, which walks the globals of every loaded module: ~2-3 ms
    a call once TensorFlow is imported, a few calls per conversation per bundle. Dataflow's SDK
    harness has that cache off unless ``--max_cache_memory_usage_mb`` is set, so the rows are run
    both ways (the cache switched off through ``worker_handlers.STATE_CACHE_SIZE_MB``)."""
    import apache_beam as beam
    from apache_beam.runners.portability.fn_api_runner import worker_handlers

    import csadetect.models.grooming as mg
    from csadetect.config.profiles import FN_API_RUNNER
    from csadetect.transforms import grooming as tg

    events = [ev for ev, _ in _events(convs)]
    small = [ev for ev in events if ev.conversation_id == events[0].conversation_id]

    def stamp(e):
        return beam.window.TimestampedValue(
            e, dt.datetime.fromisoformat(e.occurred_at.replace("Z", "+00:00")).timestamp())

    def run(module, evs):
        with beam.Pipeline(runner=FN_API_RUNNER) as p:
            _ = (p | beam.Create(evs) | beam.Map(stamp) | module.ClassifyGrooming()
                 | beam.combiners.Count.Globally())

    def timed(module, evs, tf_window, cache_mb):
        saved = mg.NUMPY_MAX_WINDOWS, worker_handlers.STATE_CACHE_SIZE_MB
        if tf_window:
            mg.NUMPY_MAX_WINDOWS = 0
        worker_handlers.STATE_CACHE_SIZE_MB = cache_mb
        try:
            c, t = time.process_time(), time.perf_counter()
            run(module, evs)
            return time.process_time() - c, time.perf_counter() - t
        finally:
            mg.NUMPY_MAX_WINDOWS, worker_handlers.STATE_CACHE_SIZE_MB = saved

    default_cache = worker_handlers.STATE_CACHE_SIZE_MB
    variants = {}
    if old is not None:
        variants[f"`ClassifyGrooming` of {BEFORE_COMMIT}, Beam FnApiRunner, SDK state cache off"] = (old, True, 0)
    variants["`ClassifyGrooming` now, Beam FnApiRunner, SDK state cache off"] = (tg, False, 0)
    variants[f"`ClassifyGrooming` now, Beam FnApiRunner, its default {default_cache} MB SDK state cache"] = (
        tg, False, default_cache)
    out = {name: ([], []) for name in variants}
    log("grooming, Beam FnApiRunner:")
    for module, tf_window, cache_mb in variants.values():  # warm-up
        timed(module, small, tf_window, cache_mb)
    n = len(events) - len(small)
    for r in range(args.beam_rounds):
        for name, (module, tf_window, cache_mb) in variants.items():
            fixed_cpu, fixed_wall = timed(module, small, tf_window, cache_mb)
            cpu, wall = timed(module, events, tf_window, cache_mb)
            cpu_rates, wall_rates = out[name]
            cpu_rates.append(n / max(cpu - fixed_cpu, 1e-9))
            wall_rates.append(n / max(wall - fixed_wall, 1e-9))
            log(f"  round {r + 1} {name}: {cpu_rates[-1]:,.0f} msg/s per core (run {cpu:.1f} CPU s / {wall:.1f} s, "
                f"fixed {fixed_cpu:.1f} CPU s / {fixed_wall:.1f} s)")
    return out


# ----------------------------------------------------------------------------- embedding
def bench_embedding(args, lines: list) -> dict:
    tf_one_thread()
    from csadetect.media.synth import synthetic_image
    from csadetect.models.embedding import KIND, EmbeddingModel

    model = EmbeddingModel.load()
    s = model.input_size
    n = args.images
    # decoded pictures as the pipeline has them (JPEGs are decoded at reduced size, long side 512)
    pictures = [synthetic_image(i, (512, 384)) for i in range(min(n, 64))]
    pictures = [pictures[i % len(pictures)] for i in range(n)]
    arrays = np.stack([model.preprocess(p) for p in pictures])
    assert arrays.shape == (n, s, s, 3) and arrays.dtype == np.uint8
    log(f"embedding: {n} images, {s}x{s} inputs; batches {args.embed_batches}")

    variants = {f"b{b}": (lambda b=b: model.embed_arrays(arrays, batch_size=b)) for b in args.embed_batches}
    big = 64 if 64 in args.embed_batches else max(args.embed_batches)
    variants["preprocess"] = lambda: [model.preprocess(p) for p in pictures]
    variants["pre+embed"] = lambda: model.embed_arrays(np.stack([model.preprocess(p) for p in pictures]),
                                                       batch_size=big)
    rates, wall = interleaved(variants, args.rounds, {k: n for k in variants})
    size = dir_size(KIND.reference)
    mem = memory("embedding")
    lines += [
        "## Image embedding model",
        "",
        f"`EmbeddingModel.load().embed_arrays(arrays, batch_size=b)` on {n} pre-decoded {s}x{s} uint8 RGB arrays "
        "(\"after decode\": what `HashMedia` hands `EmbedImages`); \"with preprocess\" starts from decoded 512x384 "
        "PIL images (`csadetect.media.synth` pictures, the size a 2048x1536 JPEG decodes to with `draft`) and includes "
        f"`preprocess` (resize to {s}x{s}, as `csadetect.models.embedding.model_inputs` does) then `embed_arrays(..., "
        f"batch_size={big})`. The pipeline's `EmbedImages` calls `embed_arrays(..., batch_size=256)`. One pinned "
        f"core, threads 1 everywhere, median of {args.rounds} interleaved rounds (min-max); per core = images per "
        "CPU-second of the process, wall = per elapsed second.",
        "",
        f"| embedding | images/s per core | ms/image (CPU) | wall images/s | target {EMBED_TARGET}/s per core, "
        "batched after decode |",
        "|---|---:|---:|---:|---|",
    ]
    for b in args.embed_batches:
        vals = rates[f"b{b}"]
        m = med(vals)
        target = ("met" if m >= EMBED_TARGET else "**not met**") if b > 1 else ""
        lines.append(f"| after decode, batch {b} | {spread(vals)} | {1000 / m:.2f} | {fmt_rate(med(wall[f'b{b}']))} "
                     f"| {target} |")
    for key, label in (("preprocess", f"preprocess only (decoded 512x384 PIL -> {s}x{s} array)"),
                       ("pre+embed", f"preprocess from decoded PIL + embed, batch {big}")):
        vals = rates[key]
        m = med(vals)
        lines.append(f"| {label} | {spread(vals)} | {1000 / m:.2f} | {fmt_rate(med(wall[key]))} | |")
    lines += [
        "",
        f"Model: {size / 1e6:.2f} MB on disk; {memory_line(mem)}.",
        "",
    ]
    return {"rates": rates, "memory": mem, "size": size}


# ----------------------------------------------------------------------------- classifier
def embedding_dim(classifier) -> int:
    """Input size of the classifier head: its ``dim`` if it says, else the embedding model's."""
    dim = getattr(classifier, "dim", None)
    if not dim:
        from csadetect.models.embedding import KIND

        dim = KIND.metadata().get("dim", 128)
    return int(dim)


def bench_classifier(args, lines: list) -> dict:
    try:
        from csadetect.models.classifier import NewMaterialClassifier  # noqa: F401
    except ImportError as exc:
        log(f"classifier: not measured ({exc})")
        lines += [
            "## New-material classifier head",
            "",
            CLASSIFIER_PENDING,
            f"**Not measured yet**: `csadetect/models/classifier.py` (`NewMaterialClassifier`) was not in the tree when this "
            f"ran ({type(exc).__name__}: {exc}). Rerun `python -m benchmarks.bench_models --only classifier` once "
            "it is: it times `NewMaterialClassifier.load().score(embeddings)` on L2-normalised embeddings, "
            "embeddings scored/s at batch 1, 64 and 1024, model size and RSS growth on load.",
            "",
        ]
        return {"missing": str(exc)}
    tf_one_thread()
    try:
        model = NewMaterialClassifier.load()
        dim = embedding_dim(model)
        rng = np.random.default_rng(0)
        emb = rng.normal(0, 1, (args.embeddings, dim)).astype(np.float32)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        model.score(emb[:8])
    except Exception as exc:  # noqa: BLE001  (a work in progress: report, don't fail the other sections)
        log(f"classifier: failed ({type(exc).__name__}: {exc})")
        lines += ["## New-material classifier head", "", CLASSIFIER_PENDING,
                  f"**Not measured**: loading or scoring failed ({type(exc).__name__}: {str(exc)[:200]}).", ""]
        return {"error": str(exc)}

    batches = (1, 64, 1024)
    n_for = {b: (min(len(emb), 512) if b == 1 else len(emb)) for b in batches}
    variants = {f"b{b}": (lambda b=b: [model.score(emb[i:i + b]) for i in range(0, n_for[b], b)]) for b in batches}
    rates, wall = interleaved(variants, args.rounds, {f"b{b}": n_for[b] for b in batches})
    path = Path(model.path)
    size = dir_size(path) if path.is_dir() else None
    mem = memory("classifier")
    lines += [
        "## New-material classifier head",
        "",
        f"`NewMaterialClassifier.load().score(embeddings)` on random L2-normalised {dim}-d float32 embeddings; "
        f"one pinned core, threads 1, median of {args.rounds} interleaved rounds (min-max); per core = per "
        "CPU-second of the process.",
        "",
        "| classifier | embeddings/s per core | ms/call (CPU) | wall embeddings/s |",
        "|---|---:|---:|---:|",
    ]
    for b in batches:
        vals = rates[f"b{b}"]
        m = med(vals)
        lines.append(f"| batch {b} | {spread(vals)} | {1000 * b / m:.3f} | {fmt_rate(med(wall[f'b{b}']))} |")
    lines += ["", (f"Model: {size / 1e6:.2f} MB on disk; " if size else "") + memory_line(mem) + ".", ""]
    return {"rates": rates, "memory": mem, "size": size}


# ----------------------------------------------------------------------------- main
def beam_minor() -> str:
    """The installed Beam's ``major.minor`` (the SDK harness defaults quoted in the notes are its own)."""
    import apache_beam

    return ".".join(apache_beam.__version__.split(".")[:2])


def machine() -> str:
    cpu = "unknown CPU"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = ""
    try:
        kb = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, StopIteration):
        pass
    versions = []
    for mod in ("tensorflow", "keras", "numpy", "apache_beam", "PIL"):
        try:
            versions.append(f"{mod} {__import__(mod).__version__}")
        except Exception:  # noqa: BLE001
            pass
    return (f"{cpu}, {os.cpu_count()} cores{mem}, Linux {platform.release()}, Python {platform.python_version()}; "
            + ", ".join(versions))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_models", description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", choices=("grooming", "embedding", "classifier"), action="append")
    ap.add_argument("--conversations", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--beam-rounds", type=int, default=3)
    ap.add_argument("--no-beam", action="store_true", help="skip the FnApiRunner rows")
    ap.add_argument("--encode-batches", type=int, nargs="+", default=[1, 8, 64])
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--embed-batches", type=int, nargs="+", default=[1, 8, 32, 64, 256])
    ap.add_argument("--embeddings", type=int, default=8192)
    ap.add_argument("--quick", action="store_true", help="small sizes, one round (a smoke run; writes nothing)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "models.md"))
    ap.add_argument("--load-probe", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    pinned = pin_one_core()
    if args.load_probe:
        print(json.dumps(load_probe(args.load_probe)))
        return 0
    if args.quick:
        args.conversations, args.rounds, args.beam_rounds, args.images, args.embeddings = 20, 1, 1, 64, 1024
    only = set(args.only or SECTIONS)
    header = [
        "# Model inference: speed, size, memory",
        "",
        "Reproduce: `python -m benchmarks.bench_models` (writes this file; `--only grooming|embedding|classifier` "
        "reruns one section and keeps the others). "
        f"Process {pinned}; TensorFlow intra/inter-op threads 1; OpenBLAS/OMP/MKL threads 1. Rates are medians of "
        "interleaved rounds on a shared VM: \"per core\" divides by the CPU seconds of the pinned process, which "
        "moves less with the other load than wall time does. Nothing is timed in unit tests.",
        "",
        f"Machine: {machine()}.",
        "",
    ]
    sections = previous_sections(Path(args.out)) if args.only else {}
    for name, fn in (("grooming", bench_grooming), ("embedding", bench_embedding), ("classifier", bench_classifier)):
        if name not in only:
            continue
        lines: list = []
        t0 = time.perf_counter()
        fn(args, lines)
        lines += [f"_{name}: run {dt.datetime.now(dt.timezone.utc):%Y-%m-%d}, {time.perf_counter() - t0:.0f} s._", ""]
        sections[name] = "\n".join(lines)
    text = "\n".join(header) + "\n" + "\n".join(sections[k] for k in SECTIONS if k in sections)
    print(text)
    if not args.quick:
        Path(args.out).write_text(text.rstrip("\n") + "\n")
    return 0


SECTIONS = {"grooming": "## Grooming model", "embedding": "## Image embedding model",
            "classifier": "## New-material classifier head"}


def previous_sections(path: Path) -> dict:
    """The sections of an earlier models.md, by name (kept by an --only run)."""
    if not path.is_file():
        return {}
    out, current = {}, None
    for line in path.read_text().splitlines():
        if line.startswith("## "):
            current = next((k for k, h in SECTIONS.items() if line.strip() == h), None)
            if current:
                out[current] = []
        if current:
            out[current].append(line)
    return {k: "\n".join(v).rstrip("\n") + "\n" for k, v in out.items()}


if __name__ == "__main__":
    sys.exit(main())
