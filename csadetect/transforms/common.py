"""Shared pieces of the transforms: the metrics namespace, tags, batching, the base of the
DoFns that seal or sign, and :func:`guarded`, which turns any per-element exception of a DoFn into
a dead letter (so no single event can stop the pipeline). The element types that flow between the stages (``HashedItem``,
``MatchedItem``) are plain data of :mod:`csadetect.reports.hits`. Counters never carry ids, hashes
or content in their names."""
from __future__ import annotations

import collections
import functools
import logging
import threading
from typing import Callable, Optional

import apache_beam as beam
import objsize
from apache_beam import pvalue
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference
from apache_beam.options.pipeline_options import StandardOptions

from csadetect.events.event import DeadLetter, dead_letter
from csadetect.reports.crypto import ReportKeys

LOG = logging.getLogger("csadetect.transforms")

# Beam's SDK worker weighs every value it puts into or reads through its state cache with
# ``objsize.get_deep_size``, whose default first walks the globals of every loaded module to
# exclude them. With TensorFlow loaded that walk is 2.8 ms per state access (each report's
# deduplication state, each grooming message's conversation state), against 0.02 ms without it,
# and the weights come out the same: Beam's own filter already skips modules, classes and
# functions. This is objsize's public default (``default_settings``), set once per worker
# process when the transforms are imported (benchmarks/stages.md, "Beam's own cost").
objsize.default_settings.update(exclude_modules_globals=False)

NAMESPACE = "csadetect"
DEAD_LETTER = "dead_letter"
# Each event ends in exactly one of these, so `received = hit + non_hit + dead_lettered`.
OUTCOMES = ("received", "hit", "non_hit", "dead_lettered")
# A failure past Decide: the event was already counted as a hit, so its dead letter is counted here.
AFTER_HIT = "hit_dead_lettered"


def counter(name: str):
    return Metrics.counter(NAMESPACE, name)


def element_event_id(element) -> Optional[str]:
    """The event id of anything a stage handles: an Event, a HashedItem, a MatchedItem, a report
    or grooming-flag dict, a ``(key, value)`` pair of those; None when there is none. Never raises."""
    try:
        for _ in range(4):
            if isinstance(element, dict):
                value = element.get("event_id")
                return value if isinstance(value, str) else None
            if isinstance(element, tuple) and len(element) == 2:
                element = element[1]  # (key, value) or (event, vector)
                if isinstance(element, tuple) and len(element) == 2:
                    element = element[0]
                continue
            value = getattr(element, "event_id", None)
            if isinstance(value, str):
                return value
            inner = getattr(element, "event", None) or getattr(element, "item", None)
            if inner is None:
                return None
            element = inner
    except Exception:  # an element so odd that even looking at it fails: no id
        return None
    return None


def failure_reason(stage: str, exc: BaseException) -> str:
    """The one-line reason of a dead letter for an unexpected exception: its type only (an
    exception's message may quote content)."""
    return f"{stage} failed ({type(exc).__name__})"


def record_failure(stage: str, exc: BaseException, element, outcome: Optional[str] = "dead_lettered",
                   event_id: Callable = element_event_id):
    """Count one failed element (``error_<stage>_<ExceptionType>``, plus ``outcome`` when given),
    log one id-free line, and return its dead letter."""
    kind = type(exc).__name__
    counter(f"error_{stage}_{kind}").inc()
    if outcome:
        counter(outcome).inc()
    LOG.warning("%s: one element failed (%s) and was dead-lettered", stage, kind)
    return dead_letter(stage, failure_reason(stage, exc), event_id(element))


def _dead_letter_in(element) -> Optional[DeadLetter]:
    """The DeadLetter an element is, or carries as the value of a ``(key, value)`` pair."""
    if isinstance(element, DeadLetter):
        return element
    if isinstance(element, tuple) and len(element) == 2 and isinstance(element[1], DeadLetter):
        return element[1]
    return None


def guarded(stage: str, *, outcome: Optional[str] = "dead_lettered", to_main: bool = False, emit: bool = True,
            event_id: Callable = element_event_id):
    """Decorator for a DoFn's ``process``: any exception on one element becomes a dead letter
    (stage, ``"<stage> failed (<ExceptionType>)"``, the event id made printable; never content)
    and the counters ``error_<stage>_<ExceptionType>`` and ``outcome`` (``dead_lettered``, so that
    ``received = hit + non_hit + dead_lettered`` holds; stages after ``Decide``, whose events were
    already counted as hits, pass ``hit_dead_lettered``).

    Where the dead letter goes: the stage's ``dead_letter`` output; with ``to_main=True`` (a stage
    whose step has no tagged outputs, which adding them would rename on Dataflow) its main output,
    where the next guarded stage, or :func:`split_dead_letters`, passes it on. A
    :class:`~csadetect.events.event.DeadLetter` arriving as the element (or as the value of a
    ``(key, value)`` pair) is handed on the same way, unkeyed and untouched. ``emit=False``: nothing is emitted (a sweep driven by ticks), only counted and logged.

    The element's outputs are held until ``process`` returns, so a failing element emits nothing
    but its dead letter. The wrapper keeps ``process``'s signature (``functools.wraps``), so Beam
    still sees its DoFn parameters (timestamps, state, timers)."""

    def route(letter):
        return letter if to_main else pvalue.TaggedOutput(DEAD_LETTER, letter)

    def wrap(process):
        @functools.wraps(process)
        def guarded_process(self, element, *args, **kwargs):
            passed = _dead_letter_in(element)
            if passed is not None:
                if emit:
                    yield route(passed)
                return
            try:
                outputs = list(process(self, element, *args, **kwargs) or ())
            except Exception as exc:  # any per-element failure: a dead letter, never a stopped pipeline
                letter = record_failure(stage, exc, element, outcome, event_id)
                if emit:
                    yield route(letter)
                return
            yield from outputs

        return guarded_process

    return wrap


class _SplitDeadLettersFn(beam.DoFn):
    def process(self, element):
        if isinstance(element, DeadLetter):
            yield pvalue.TaggedOutput(DEAD_LETTER, element)
        else:
            yield element


def split_dead_letters(pcoll, label: str = "SplitDeadLetters", main: str = "records"):
    """Dead letters a ``to_main`` stage left on its main output -> the ``dead_letter`` output;
    everything else -> ``main``. Returns the outputs tuple (``.<main>``, ``[DEAD_LETTER]``)."""
    return pcoll | label >> beam.ParDo(_SplitDeadLettersFn()).with_outputs(DEAD_LETTER, main=main)


def batching_kwargs(batching, streaming: bool) -> dict:
    """``beam.BatchElements`` arguments from a :class:`csadetect.config.settings.Batching` (None: defaults);
    the max batch duration applies in streaming only."""
    out = {"min_batch_size": batching.min_batch_size if batching else 1,
           "max_batch_size": batching.max_batch_size if batching else 64}
    duration = (batching.max_batch_duration_secs if batching else 1.0) if streaming else None
    if duration:
        out["max_batch_duration_secs"] = duration
    return out


class RunInferenceKeepingTimestamps:
    """``RunInference(handler)`` that gives every element its own timestamp back afterwards: Beam's
    ``BatchElements`` stamps its batches at the end of the window, which would break the
    event-time timers downstream (report de-duplication). Timestamps travel as the keys of a
    ``KeyedModelHandler``. Use as ``pcoll | RunInferenceKeepingTimestamps.transform(handler)``, with a
    handler built on :class:`csadetect.models.loader.BatchedModelHandler`."""

    @staticmethod
    def transform(handler):
        @beam.ptransform_fn
        def _run(pcoll):
            return (
                pcoll
                | "KeyByTimestamp" >> beam.Map(lambda x, ts=beam.DoFn.TimestampParam: (ts, x))
                | "RunInference" >> RunInference(KeyedModelHandler(handler))
                | "Restamp" >> beam.MapTuple(lambda ts, x: beam.window.TimestampedValue(x, ts))
            )

        return _run()


class KeysDoFn(beam.DoFn):
    """Base of the DoFns that seal or sign: loads the provider's report keys
    (:class:`csadetect.reports.crypto.ReportKeys`) once per DoFn instance, in ``setup``."""

    def __init__(self, reports_settings):
        self._reports = reports_settings
        self._keys = None

    def setup(self):
        self._keys = ReportKeys.load(self._reports)


# Shared (apache_beam.utils.shared) keeps only the last object acquired in the whole process alive
# once no DoFn holds it, and the streaming DirectRunner sets a DoFn up and tears it down for every
# bundle: with several stages acquiring their own Shared objects, a stage's per-process state (the
# indicator index and its polling thread, the flood guard's window) would be rebuilt for every
# bundle. In streaming runs the latest few are therefore held here, one per tag (a worker has one
# per stage; a test process running many pipelines keeps no more than these). Batch runners keep
# their DoFns for the whole run and need none of this.
KEEP_ALIVE = 8
_kept: "collections.OrderedDict[str, object]" = collections.OrderedDict()
_kept_lock = threading.Lock()


def keep_alive(tag: str, holder) -> None:
    """Hold a Shared object of this process between bundles (see above); the oldest beyond
    ``KEEP_ALIVE`` is let go (collected once no DoFn holds it)."""
    with _kept_lock:
        _kept[tag] = holder
        _kept.move_to_end(tag)
        while len(_kept) > KEEP_ALIVE:
            _kept.popitem(last=False)


def kept(tag: str, load: Callable[[], object]):
    """The object :func:`keep_alive` holds under ``tag`` in this process, made by ``load`` the first
    time. For RunInference's models: its Shared lets a model go once no DoFn holds it, and the
    streaming DirectRunner tears the DoFn down after every bundle (of at most 10 Pub/Sub messages),
    so each bundle loaded the embedding model and the classifier again and retraced their graphs
    (a quarter of the streaming CPU time, benchmarks/throughput.md). Put the model's path in
    ``tag``: a new model path loads a new model."""
    with _kept_lock:
        if tag in _kept:
            _kept.move_to_end(tag)
            return _kept[tag]
    obj = load()
    keep_alive(tag, obj)
    return obj


def spread_before_state(pcoll, label: str):
    """``pcoll`` through a ``Reshuffle`` (a fusion break) when the local runner works with several
    workers (``--direct_num_workers`` other than 1), else ``pcoll`` as it is. The FnApiRunner never
    splits a stateful stage over its workers, so a stateful step fused into the stage that reads,
    hashes and matches (``DedupReports``, the grooming conversation state) put all of that work on
    one worker (issue 15, item 4). Dataflow and Flink shuffle by key before a stateful step
    themselves, and one local worker gains nothing from the break: their graphs stay as they were."""
    from apache_beam.options.pipeline_options import DirectOptions

    options = pcoll.pipeline.options
    if options is None or options.view_as(DirectOptions).direct_num_workers == 1:
        return pcoll
    return pcoll | label >> beam.Reshuffle()


def is_streaming(pcoll) -> bool:
    """Whether the pipeline ``pcoll`` belongs to runs in streaming mode."""
    options = pcoll.pipeline.options
    return bool(options is not None and options.view_as(StandardOptions).streaming)
