"""What a running pipeline prints (csadetect/pipelines/progress.py): the progress line (counter names
and values only), ``--progress_seconds`` and its defaults, counters and the index gauge read from a
real run's metrics, the stop signals, and ``pipeline_main``'s exit codes after a stop."""
from __future__ import annotations

import json
import os
import signal

import apache_beam as beam
import pytest
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from csadetect.config.profiles import FN_API_RUNNER
from csadetect.pipelines import pipeline_main, progress
from csadetect.pipelines.progress import (
    INDEX_GAUGE, ProgressOptions, Stopped, Watcher, counter_values, format_progress, index_version, progress_seconds,
)
from csadetect.transforms.common import NAMESPACE


def test_progress_line_has_the_outcome_counters_rate_and_version():
    counts = {"received": 12, "hit": 3, "non_hit": 7, "dead_lettered": 2, "report": 3, "hit_review": 1,
              "error_hash_ValueError": 1}
    line = format_progress(counts, 3725.9, 0.25, 4)
    assert line == ("progress 1:02:05  received 12  hits 3  non-hits 7  dead letters 2  reports 3  "
                    "awaiting review 1  0.2 events/s  indicators v4")
    assert "\n" not in line


def test_progress_line_without_rate_version_or_outcome_counters():
    assert format_progress({}, 0) == "progress 0:00:00"
    assert format_progress({"received": 1}, 59) == ("progress 0:00:59  received 1  hits 0  non-hits 0  dead letters 0  "
                                                    "reports 0  awaiting review 0")
    # another pipeline (feedback): its own counters by name, at most eight
    line = format_progress({f"c{i}": i for i in range(10)}, 5)
    assert line.startswith("progress 0:00:05  c0 0  c1 1") and "c8" not in line


@pytest.mark.parametrize("argv, streaming, seconds", [
    ([], True, progress.STREAMING_DEFAULT_SECONDS),
    ([], False, 0.0),
    (["--progress_seconds", "5"], False, 5.0),
    (["--progress_seconds=0"], True, 0.0),
    (["--progress_seconds", "-3"], True, 0.0),
])
def test_progress_seconds(argv, streaming, seconds):
    assert progress_seconds(PipelineOptions(argv), streaming) == seconds
    assert PipelineOptions(argv).view_as(ProgressOptions).progress_seconds == (float(argv[-1].split("=")[-1])
                                                                              if argv else None)


class _Count(beam.DoFn):
    def process(self, x):
        Metrics.counter(NAMESPACE, "received").inc()
        Metrics.counter(NAMESPACE, "hit" if x % 2 else "non_hit").inc()
        Metrics.gauge(NAMESPACE, INDEX_GAUGE).set(7)
        yield x


def _counted_run():
    p = beam.Pipeline(options=PipelineOptions(runner=FN_API_RUNNER))
    _ = p | beam.Create([1, 2, 3, 4, 5]) | beam.ParDo(_Count())
    return p, p.run()


def test_counters_and_index_version_from_a_real_run():
    _, result = _counted_run()
    result.wait_until_finish()
    counts = counter_values(result)
    assert counts["received"] == 5 and counts["hit"] == 3 and counts["non_hit"] == 2
    assert index_version(result) == 7  # the gauge wins over a version noted at start
    ticks = iter([100.0, 110.0])
    watcher = Watcher(result, 30, clock=lambda: next(ticks))
    assert watcher.line() == ("progress 0:00:10  received 5  hits 3  non-hits 2  dead letters 0  reports 0  "
                              "awaiting review 0  0.5 events/s  indicators v7")


def test_noted_version_is_shown_without_a_gauge(monkeypatch):
    monkeypatch.setattr(progress._STATE, "index_version", None)
    p = beam.Pipeline(options=PipelineOptions(runner=FN_API_RUNNER))
    _ = p | beam.Create([1])
    result = p.run()
    result.wait_until_finish()
    assert index_version(result) is None
    progress.note_index_version(3)
    assert index_version(result) == 3


def test_run_and_watch_batch_ends_by_itself():
    p = beam.Pipeline(options=PipelineOptions(runner=FN_API_RUNNER))
    _ = p | beam.Create([1, 2]) | beam.ParDo(_Count())
    result = progress.run_and_watch(p, p.options.view_as(StandardOptions))
    assert counter_values(result)["received"] == 2 and progress.stopped_by() is None


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_stop_signals_raise_stopped_and_restore_the_handlers(signum):
    before = signal.getsignal(signum)
    with pytest.raises(Stopped) as stop:
        with progress._stop_signals():
            os.kill(os.getpid(), signum)
            for _ in range(100):  # the handler runs between bytecodes of the main thread
                pass
    assert stop.value.signum == signum and isinstance(stop.value, KeyboardInterrupt)
    assert signal.getsignal(signum) is before


def test_pipeline_main_after_a_stop_prints_the_summary_and_exits_130(capsys, monkeypatch):
    def run(argv):
        monkeypatch.setattr(progress._STATE, "stopped_by", signal.SIGINT)
        return {"received": 4}

    assert pipeline_main([], "prog", "doc", ProgressOptions, run, lambda r: r) == 130
    out, err = capsys.readouterr()
    assert json.loads(out) == {"received": 4} and "Traceback" not in err


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_pipeline_main_stopped_before_a_result_is_one_line(capsys, signum, code):
    def run(argv):
        raise Stopped(signum)

    assert pipeline_main([], "prog", "doc", ProgressOptions, run, lambda r: r) == code
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and signal.Signals(signum).name in err


def test_help_lists_progress_seconds(capsys):
    from csadetect.pipelines.detect import main

    assert main(["--help"]) == 0
    assert "--progress_seconds" in capsys.readouterr().out


def _count_once(x):
    Metrics.counter(NAMESPACE, "received").inc()
    return x


def test_the_streaming_direct_runner_counts_every_bundle():
    """Beam's BundleBasedDirectRunner (--streaming) alone counts only the first bundle of each step
    (here 1 of 5); run_and_watch applies the fix for every local run."""
    from apache_beam.testing.test_stream import TestStream

    progress.fix_direct_runner_metrics()
    assert progress.fix_direct_runner_metrics() is False  # once per process
    stream = TestStream()
    for i in range(5):  # five bundles
        stream = stream.add_elements([i]).advance_processing_time(1).advance_watermark_to(i + 1)
    p = beam.Pipeline(runner="BundleBasedDirectRunner", options=PipelineOptions(["--streaming"]))
    _ = p | stream | beam.Map(_count_once)
    result = p.run()
    result.wait_until_finish()
    assert counter_values(result) == {"received": 5}
