"""The grooming section of the model benchmark (``benchmarks.bench_models``): the streaming path now
(``EncodeMessagesFn`` + ``ConversationStateFn``, driven in-process) against the per-message path of
``BEFORE_COMMIT`` (read with ``git show``) and batched scoring, and ``ClassifyGrooming`` on Beam's
FnApiRunner (``bench_grooming_beam``); ``bench_grooming`` appends its markdown section. ``bench_models``
re-exports every name.
"""
from __future__ import annotations

import datetime as dt
import importlib.util
import subprocess
import sys
import time

from benchmarks.models_common import (ROOT, dir_size, fmt_rate, interleaved, log, med, memory, memory_line, spread,
                                      tf_one_thread)

BEFORE_COMMIT = "72feb25"  # transforms/grooming.py (now csadetect/) before micro-batched encoding (per-message DoFn)
STREAM_TARGET = 2000  # messages/s per core (issue 3)


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

    def streaming_tf_encoder(b):
        run_now = streaming_now(b)

        def run():
            saved = mg.NUMPY_MAX_MESSAGES
            mg.NUMPY_MAX_MESSAGES = 0  # every message encoded by TensorFlow, as in the release before
            try:
                run_now()
            finally:
                mg.NUMPY_MAX_MESSAGES = saved
        return run

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
    if model.numpy_encoder:
        for b in args.encode_batches:
            variants[f"tf b{b}"] = streaming_tf_encoder(b)
            labels[f"tf b{b}"] = (f"streaming, every message encoded by TensorFlow (the release before the numpy "
                                  f"encoder: `NUMPY_MAX_MESSAGES = 0`), bundles of {b} message{'s' if b > 1 else ''}")
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
        + "".join(f"Bundles of {b}: the numpy encoder **{med(rates[f'now b{b}']) / med(rates[f'tf b{b}']):.2f}x** "
                  "the TensorFlow encoder, side by side. " for b in args.encode_batches if f"tf b{b}" in rates)
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


def beam_minor() -> str:
    """The installed Beam's ``major.minor`` (the SDK harness defaults quoted in the notes are its own)."""
    import apache_beam

    return ".".join(apache_beam.__version__.split(".")[:2])
