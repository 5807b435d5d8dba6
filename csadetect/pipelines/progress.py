"""A running pipeline shows it is alive, and stops cleanly.

* :class:`ProgressOptions`: ``--progress_seconds N``, one line of counters on stderr every N
  seconds while the pipeline runs (default 30 for ``--streaming``, off for batch runs, which
  print their summary at the end anyway; 0 switches it off).
* :func:`format_progress`: that line: events received, hits, non-hits, dead letters, reports,
  items awaiting review, events/s since the previous line and the indicator snapshot version.
  Counter names and values only (the ``csadetect`` metrics namespace): nothing about an item.
* :func:`run_and_watch`: the pipelines' ``run_and_wait``: the Pub/Sub pre-flight check
  (:func:`csadetect.pipelines.sources.preflight_pubsub`), the run, the progress lines from
  ``result.metrics()`` polled by a thread (the DirectRunner's ``wait_until_finish`` takes no
  timeout, so the main thread only waits), and Ctrl-C (SIGINT) or SIGTERM: the pipeline is
  cancelled, the caller prints the usual summary line, and :func:`stopped_by` tells
  :func:`csadetect.pipelines.pipeline_main` to exit with 128 + the signal number (130 for Ctrl-C).

Batch runs on the FnApiRunner return from ``pipeline.run()`` only when they are done, so they show
no lines while running; the DirectRunner in streaming mode, Dataflow and portable runners do.
"""
from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
import time
import weakref
from typing import Optional

from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

from csadetect.config.profiles import runner_family
from csadetect.core import pubsub
from csadetect.pipelines.sources import preflight_pubsub
from csadetect.transforms.common import NAMESPACE

LOG = logging.getLogger("csadetect.progress")
STREAMING_DEFAULT_SECONDS = 30.0
CANCEL_SECONDS = 5.0  # how long a stop waits for the runner to cancel before the summary is printed
INDEX_GAUGE = "indicator_version"  # a gauge in NAMESPACE, when the match stage sets one
# (counter, label) in the order the line shows them; `received = hit + non_hit + dead_lettered`
FIELDS = (("received", "received"), ("hit", "hits"), ("non_hit", "non-hits"), ("dead_lettered", "dead letters"),
          ("report", "reports"), ("hit_review", "awaiting review"))


class ProgressOptions(PipelineOptions):
    """``--progress_seconds``: both pipelines (Beam collects every options class it knows)."""

    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument("--progress_seconds", type=float, default=None,
                            help="print one line of counters on stderr every N seconds while the pipeline runs "
                                 f"(default {STREAMING_DEFAULT_SECONDS:g} with --streaming, off for batch; 0 = off)")


class Stopped(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived (a KeyboardInterrupt, so no ``except Exception`` swallows it)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class _State:
    stopped_by: Optional[int] = None
    index_version = None


_STATE = _State()


def stopped_by() -> Optional[int]:
    """The signal that stopped the last :func:`run_and_watch`, or None when it ended by itself."""
    return _STATE.stopped_by


def note_index_version(version) -> None:
    """The indicator snapshot version checked at start-up, shown until the pipeline reports its own."""
    _STATE.index_version = version


def progress_seconds(options: PipelineOptions, streaming: bool) -> float:
    value = options.view_as(ProgressOptions).progress_seconds
    if value is None:
        return STREAMING_DEFAULT_SECONDS if streaming else 0.0
    return max(0.0, float(value))


def _metrics(result, kind: str) -> list:
    """``result.metrics()`` results of ``kind`` in our namespace; retried when a runner's threads
    change its metric maps while they are read; [] when the runner reports no metrics."""
    for _ in range(5):
        try:
            return list(result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))[kind])
        except RuntimeError:  # "dictionary changed size during iteration" under a running DirectRunner
            time.sleep(0.05)
        except Exception:  # some runners do not report metrics
            return []
    return []


def counter_values(result) -> dict[str, int]:
    """Committed counter values of the run, by name (attempted where a runner has no committed)."""
    out: dict[str, int] = {}
    for c in _metrics(result, "counters"):
        value = c.committed if c.committed is not None else c.attempted
        out[c.key.metric.name] = out.get(c.key.metric.name, 0) + int(value or 0)
    return out


def index_version(result):
    """The indicator snapshot version: the match stage's gauge when there is one, else the
    version noted at start-up (None when neither is known)."""
    values = []
    for g in _metrics(result, "gauges"):
        if g.key.metric.name == INDEX_GAUGE:
            value = g.committed if g.committed is not None else g.attempted
            if value is not None and getattr(value, "value", None) is not None:
                values.append(int(value.value))
    return max(values) if values else _STATE.index_version


def format_progress(counts: dict, elapsed: float, rate: Optional[float] = None, version=None) -> str:
    """One line: elapsed time, the outcome counters, events/s and the snapshot version. Counter
    names and values only."""
    minutes, seconds = divmod(int(max(0.0, elapsed)), 60)
    hours, minutes = divmod(minutes, 60)
    parts = [f"progress {hours}:{minutes:02d}:{seconds:02d}"]
    if any(name in counts for name, _ in FIELDS):
        parts += [f"{label} {int(counts.get(name, 0))}" for name, label in FIELDS]
    else:  # another pipeline (feedback): its own counters, by name
        parts += [f"{name} {int(value)}" for name, value in sorted(counts.items())[:8]]
    if rate is not None:
        parts.append(f"{rate:.1f} events/s")
    if version is not None:
        parts.append(f"indicators v{version}")
    return "  ".join(parts)


class Watcher:
    """Writes :func:`format_progress` lines for ``result`` every ``seconds`` from a daemon thread."""

    def __init__(self, result, seconds: float, stream=None, clock=time.monotonic):
        self._result = result
        self._seconds = seconds
        self._stream = stream
        self._clock = clock
        self._started = clock()
        self._last = (self._started, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="csadetect-progress", daemon=True)

    def start(self) -> "Watcher":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def line(self) -> str:
        counts = counter_values(self._result)
        now = self._clock()
        received = int(counts.get("received", 0))
        then, before = self._last
        rate = (received - before) / (now - then) if now > then else None
        self._last = (now, received)
        return format_progress(counts, now - self._started, rate, index_version(self._result))

    def _loop(self) -> None:
        while not self._stop.wait(self._seconds):
            try:
                line = self.line()
            except Exception as exc:  # a progress line must never stop the pipeline
                line = f"progress: counters unavailable ({type(exc).__name__})"
            stream = self._stream or sys.stderr
            stream.write(line + "\n")
            stream.flush()


def _raise_stopped(signum, _frame):
    raise Stopped(signum)


@contextlib.contextmanager
def _stop_signals():
    """SIGINT and SIGTERM raise :class:`Stopped` in the main thread while inside (also when the
    process started with SIGINT ignored, as background jobs of a shell do); the previous
    handlers come back afterwards. Outside the main thread nothing is installed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _raise_stopped) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _cancel(result, timeout: float = CANCEL_SECONDS) -> None:
    """Cancel the run, waiting at most ``timeout`` seconds: the DirectRunner's cancel joins its
    worker threads, one of which may sit in a 30-second Pub/Sub pull; they are daemon threads and
    end with the process."""

    def cancel():
        try:
            result.cancel()
        except Exception as exc:  # a runner that cannot cancel: the process ends anyway
            LOG.warning("could not cancel the pipeline (%s)", type(exc).__name__)

    thread = threading.Thread(target=cancel, name="csadetect-cancel", daemon=True)
    thread.start()
    thread.join(timeout)


def fix_direct_runner_metrics() -> bool:
    """Make the DirectRunner's streaming mode count every bundle, not only the first one of each
    step. Returns True when it patched (once per process), False when it was done already.

    Beam's ``BundleBasedDirectRunner`` (what ``DirectRunner`` runs for ``--streaming``) gives each
    bundle a new ``MetricsContainer`` and asks the worker thread's ``StateSampler`` for the step's
    scoped states with it; the sampler caches those states by step name together with the FIRST
    container, so every later bundle of the step counts into that old, already committed container
    and commits an empty one: ``result.metrics()`` then shows the counts of the first bundle only
    (5 elements in 5 bundles count 1; ``tests/test_progress.py`` shows it). Dropping the step's
    cached states before each bundle gives each bundle's states its own container. The sampler
    keeps a list of every state it made, so each bundle leaves three small objects behind: fine
    for a local run, and this runner is only for local runs."""
    from apache_beam.runners.direct import executor  # lazy: only the DirectRunner's runs need it

    call = executor.TransformExecutor.call
    if getattr(call, "csadetect_counts_every_bundle", False):
        return False

    def call_with_fresh_states(self, state_sampler):
        states = getattr(state_sampler, "_states_by_name", None)
        if isinstance(states, dict):
            step = self._applied_ptransform.full_label  # pylint: disable=protected-access
            for name in [n for n in states if getattr(n, "step_name", None) == step]:
                del states[name]
        return call(self, state_sampler)

    call_with_fresh_states.csadetect_counts_every_bundle = True
    executor.TransformExecutor.call = call_with_fresh_states
    return True


def fix_direct_runner_pubsub() -> bool:
    """Make the DirectRunner read Pub/Sub through :func:`csadetect.core.pubsub.subscriber`, whose
    emulator channel has no 4 MiB receive limit: Beam's streaming DirectRunner pulls 10 messages at
    a time with a new client of its own for every pull, and 10 events with a 3 MP upload inline
    each are more than 4 MiB, so with the emulator every pull failed and no event got through.
    Beam's ``_PubSubReadEvaluator._read_from_pubsub`` is replaced by :func:`_read_from_pubsub`:
    the same pull (waiting less on an idle subscription), acknowledgement and timestamps, through
    one client of ours per read transform (:func:`direct_runner_subscriber`). Returns True when it
    patched (once per process)."""
    from apache_beam.runners.direct import transform_evaluator as evaluators  # lazy: DirectRunner runs only

    reader = evaluators._PubSubReadEvaluator  # pylint: disable=protected-access
    if getattr(reader._read_from_pubsub, "csadetect_subscriber", False):
        return False
    reader._read_from_pubsub = _read_from_pubsub
    return True


_SUBSCRIBERS = weakref.WeakKeyDictionary()  # the DirectRunner's read transform -> our client
_SUBSCRIBERS_LOCK = threading.Lock()


def direct_runner_subscriber(transform):
    """Our Pub/Sub client for the DirectRunner's read ``transform`` (an applied PTransform): one
    per transform, closed when the transform goes."""
    with _SUBSCRIBERS_LOCK:
        client = _SUBSCRIBERS.get(transform)
        if client is None:
            client = _SUBSCRIBERS[transform] = pubsub.subscriber()
            weakref.finalize(transform, client.close)
    return client


# How long one DirectRunner pull waits on an idle subscription (Beam's own: 30 s). The pipeline's
# watermark is the lowest of its inputs', and an input's moves only when its pull returns, so an
# idle subscription (the verdicts while uploads flow, or the other way round) held every window
# and every verdict-driven report back for up to 30 s.
DIRECT_PULL_SECONDS = 5.0


def _read_from_pubsub(self, timestamp_attribute):
    """Beam 2.62's ``_PubSubReadEvaluator._read_from_pubsub`` (``self`` is the evaluator), pulling
    through :func:`direct_runner_subscriber`: up to 10 messages, acknowledged at once (the
    DirectRunner does not retry a bundle), each stamped with ``timestamp_attribute`` (milliseconds
    or RFC 3339) when the message has it, else with its publish time. A pull waits at most
    ``DIRECT_PULL_SECONDS`` on an idle subscription (Beam's: 30 s)."""
    from apache_beam.io.gcp.pubsub import PubsubMessage
    from apache_beam.utils.timestamp import Timestamp

    def element(message):
        parsed = PubsubMessage._from_message(message)  # pylint: disable=protected-access
        if timestamp_attribute and timestamp_attribute in parsed.attributes:
            value = parsed.attributes[timestamp_attribute]
            try:
                timestamp = Timestamp(micros=int(value) * 1000)
            except ValueError:
                try:
                    timestamp = Timestamp.from_rfc3339(value)
                except ValueError as e:
                    raise ValueError(f"Bad timestamp value: {e}") from e
        else:
            # nothing of the message in the error (Beam's own puts all of it, the upload's content too)
            if message.publish_time is None:
                raise ValueError("a Pub/Sub message has no publish time")
            try:
                timestamp = Timestamp.from_utc_datetime(message.publish_time)
            except ValueError as e:
                raise ValueError(f"a Pub/Sub message has a bad publish time: {e}") from e
        return timestamp, parsed

    from google.api_core.exceptions import DeadlineExceeded

    client = direct_runner_subscriber(self._applied_ptransform)  # pylint: disable=protected-access
    try:
        response = client.pull(subscription=self._sub_name, max_messages=10,  # pylint: disable=protected-access
                               timeout=DIRECT_PULL_SECONDS)
    except DeadlineExceeded:  # nothing arrived within the deadline: an empty pull, as the emulator answers
        return []
    results = [element(received.message) for received in response.received_messages]
    ack_ids = [received.ack_id for received in response.received_messages]
    if ack_ids:
        client.acknowledge(subscription=self._sub_name, ack_ids=ack_ids)  # pylint: disable=protected-access
    return results


_read_from_pubsub.csadetect_subscriber = True


def run_and_watch(pipeline, std, wait: bool = True):
    """Check the graph's Pub/Sub resources, run ``pipeline`` and (unless ``wait`` is False: a
    Flex Template launcher must not wait) wait for it with progress lines; SIGINT or SIGTERM
    cancels it and is remembered for :func:`stopped_by`. Returns the runner's result."""
    _STATE.stopped_by = None
    preflight_pubsub(pipeline, std.runner)
    if runner_family(std.runner or "DirectRunner") == "direct":
        fix_direct_runner_metrics()
        fix_direct_runner_pubsub()
    seconds = progress_seconds(pipeline.options, bool(std.streaming))
    with _stop_signals():
        result = pipeline.run()
        if not wait:
            return result
        watcher = Watcher(result, seconds).start() if seconds > 0 else None
        try:
            result.wait_until_finish()
        except Stopped as stop:
            _STATE.stopped_by = stop.signum
            if watcher is not None:
                watcher.stop()
            print(f"{signal.Signals(stop.signum).name}: stopping the pipeline (the counters so far follow)",
                  file=sys.stderr, flush=True)
            _cancel(result)
        finally:
            if watcher is not None:
                watcher.stop()
    return result
