"""LiveIndex (csadetect.indicators.live): a worker's indicator index refreshed by a background
thread. Matching goes on against the old version while a new one is verified and prepared; the
swap is one assignment (an index object in use never changes); a refused version keeps the old
one; swaps and refusals reach the Beam counters through the match stage. No sleeps or timings:
a threading.Event inside the ``prepare`` hook holds a refresh half-way."""
from __future__ import annotations

import gc
import logging
import threading
import weakref

import apache_beam as beam
import pytest
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from csadetect.config.profiles import FN_API_RUNNER
from csadetect.config.settings import IndicatorSettings, MatchSettings
from csadetect.core.keys import generate_keypair
from csadetect.indicators.live import LiveIndex, newer_index
from csadetect.indicators.rows import Indicator
from csadetect.indicators.snapshot import build_snapshot
from csadetect.transforms import match

OLD, NEW = "0" * 32, "1" * 32
WAIT = 60  # a safety net for a broken test (it would hang), not a timing assertion


@pytest.fixture
def db(tmp_path):
    """Version 1 holds ``old``; more versions are added by the tests."""
    private, public = generate_keypair(tmp_path / "keys")
    path = str(tmp_path / "db")
    build_snapshot([Indicator("old", "md5", OLD)], path, private)
    return path, private, public


def _settings(path, public, poll_seconds=3600.0):
    return IndicatorSettings(path=path, public_key=str(public), poll_seconds=poll_seconds)


def _ids(index, md5):
    return [m.indicator_id for m in index.match({"md5": md5})]


def _add_new(path, private):
    build_snapshot([Indicator("new", "md5", NEW)], path, private, base="latest")


class HeldPrepare:
    """A ``prepare`` hook that stops half-way through a refresh until ``release`` is set: it has
    verified and prepared the new index (``newer_index``) and signals ``entered``."""

    def __init__(self):
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls = 0

    def __call__(self, index, settings):
        new = newer_index(index, settings)
        self.calls += 1
        self.entered.set()
        assert self.release.wait(WAIT), "the test never released the refresh"
        return new


def test_matching_goes_on_with_the_old_version_while_a_refresh_runs(db):
    path, private, public = db
    held = HeldPrepare()
    live = LiveIndex(_settings(path, public, poll_seconds=0.01), MatchSettings(), prepare=held)
    _add_new(path, private)  # before the thread starts: it never sees a half-written version
    live.start()
    try:
        assert held.entered.wait(WAIT)  # the polling thread has version 2 ready and is held
        # meanwhile the matching path answers at once, from version 1
        assert live.current().version == 1 and live.polling
        assert _ids(live.current(), OLD) == ["old"] and _ids(live.current(), NEW) == []
    finally:
        held.release.set()
        live.stop(WAIT)  # the refresh under way finishes (and swaps) before the thread ends
    assert not live.polling
    assert live.version == 2 and _ids(live.current(), NEW) == ["new"]
    assert live.take_counts() == {"snapshot_swapped": 1} and live.take_counts() == {}


def test_an_index_in_use_is_never_changed_by_a_swap(db):
    """A query holds one index object; a swap replaces which object ``current()`` returns and
    leaves the held one exactly as it was (one version per item, never a mix)."""
    path, private, public = db
    live = LiveIndex(_settings(path, public), MatchSettings())
    held = live.current()
    _add_new(path, private)
    build_snapshot([Indicator("newer", "md5", "2" * 32)], path, private, base="latest", disable_ids=["old"])
    assert live.refresh()
    assert held.version == 1 and _ids(held, OLD) == ["old"] and _ids(held, NEW) == []
    now = live.current()
    assert now is not held and now.version == 3
    assert _ids(now, OLD) == [] and _ids(now, NEW) == ["new"] and _ids(now, "2" * 32) == ["newer"]
    assert not live.refresh() and live.current() is now  # nothing newer: no swap


def test_readers_see_whole_versions_during_swaps(db):
    """Reader threads query while the polling thread swaps 1 -> 2 -> 3; every answer is consistent
    with the version of the index object it came from."""
    path, private, public = db
    gate = threading.Semaphore(0)  # one refresh per release
    prepared = threading.Semaphore(0)  # a refresh has read the database (the next version may be written)

    def stepwise(index, settings):
        assert gate.acquire(timeout=WAIT)
        try:
            return newer_index(index, settings)
        finally:
            prepared.release()

    expected = {1: (["old"], []), 2: (["old"], ["new"]), 3: ([], ["new"])}
    live = LiveIndex(_settings(path, public, poll_seconds=0.01), MatchSettings(), prepare=stepwise).start()
    done, seen, wrong = threading.Event(), set(), []

    def reader():
        while not done.is_set():
            index = live.current()
            answer = (_ids(index, OLD), _ids(index, NEW))
            seen.add(index.version)
            if answer != expected.get(index.version):
                wrong.append((index.version, answer))

    readers = [threading.Thread(target=reader) for _ in range(2)]
    for t in readers:
        t.start()
    try:
        _add_new(path, private)
        gate.release()
        assert prepared.acquire(timeout=WAIT)
        build_snapshot([], path, private, base="latest", disable_ids=["old"])
        gate.release()
        assert prepared.acquire(timeout=WAIT)
    finally:
        for _ in range(3):
            gate.release()  # unblock the thread's next polls (they find nothing new)
        live.stop(WAIT)
        done.set()
        for t in readers:
            t.join(WAIT)
    assert live.version == 3 and 1 in seen and seen <= {1, 2, 3}
    assert wrong == []
    assert live.take_counts() == {"snapshot_swapped": 2}


def test_a_refused_version_keeps_the_old_one(db, tmp_path, caplog):
    path, private, public = db
    live = LiveIndex(_settings(path, public), MatchSettings())
    other, _ = generate_keypair(tmp_path / "other")
    build_snapshot([Indicator("forged", "md5", NEW)], path, other)  # version 2, signed by another key
    with caplog.at_level(logging.ERROR, logger="csadetect.indicators.live"):
        assert not live.refresh()
    assert live.version == 1 and _ids(live.current(), OLD) == ["old"] and _ids(live.current(), NEW) == []
    assert live.take_counts() == {"snapshot_rejected": 1}
    line = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(line) == 1 and line[0].endswith("keeping version 1") and "\n" not in line[0]


def test_a_storage_error_keeps_the_old_version_and_polling_goes_on(db, caplog):
    path, private, public = db
    failures = []

    def flaky(index, settings):
        if not failures:
            failures.append(1)
            raise OSError("bucket unreachable")
        return newer_index(index, settings)

    live = LiveIndex(_settings(path, public), MatchSettings(), prepare=flaky)
    _add_new(path, private)
    with caplog.at_level(logging.WARNING, logger="csadetect.indicators.live"):
        assert not live.refresh()
    assert live.version == 1 and live.take_counts() == {}
    assert any("poll failed (OSError); keeping version 1" in r.getMessage() for r in caplog.records)
    assert live.refresh() and live.version == 2


def test_the_thread_ends_when_the_live_index_is_collected(db):
    path, _, public = db
    live = LiveIndex(_settings(path, public, poll_seconds=3600), MatchSettings()).start()
    thread, ref = live._thread, weakref.ref(live)
    assert thread.is_alive()
    del live
    gc.collect()
    assert ref() is None  # the thread does not keep it alive
    thread.join(WAIT)
    assert not thread.is_alive()


_LIVE: dict = {}  # the LiveIndex for _LookupFn: FnApiRunner runs it in this process


class _NoOrder:
    def order_for(self, kind):
        return None  # no detection order: the stage passes the item on unmatched


class _Item:
    event = _NoOrder()


class _LookupFn(match.MatchIndicatorsFn):
    """The match stage with a LiveIndex made by the test (instead of one per process)."""

    def setup(self):
        self._live = _LIVE["live"]
        self._version_gauge = Metrics.gauge("csadetect", "indicator_version")


def test_the_match_stage_counts_the_threads_swaps_and_refusals(db, tmp_path):
    """The Beam counters snapshot_swapped / snapshot_rejected come from the polling thread's counts
    (the thread itself cannot record Beam metrics), each counted once."""
    path, private, public = db
    live = LiveIndex(_settings(path, public), MatchSettings())
    _add_new(path, private)
    assert live.refresh()
    other, _ = generate_keypair(tmp_path / "other")
    build_snapshot([Indicator("forged", "md5", "3" * 32)], path, other)
    assert not live.refresh()
    _LIVE["live"] = live
    try:
        p = TestPipeline(runner=FN_API_RUNNER)
        fn = _LookupFn(live._settings, MatchSettings(), None)
        versions = p | beam.Create([_Item(), _Item(), _Item()]) | beam.ParDo(fn) | beam.Map(lambda m: m.index_version)
        assert_that(versions, equal_to([2, 2, 2]))
        result = p.run()
        result.wait_until_finish()
    finally:
        _LIVE.clear()
    counters = {name: sum(c.committed for c in result.metrics().query(MetricsFilter().with_name(name))["counters"])
                for name in ("snapshot_swapped", "snapshot_rejected")}
    assert counters == {"snapshot_swapped": 1, "snapshot_rejected": 1}
    assert live.take_counts() == {}


def test_streaming_runs_keep_the_latest_live_indexes_between_bundles(db):
    """The streaming DirectRunner tears a DoFn down after every bundle: the match stage (and the
    guard stage) hold the latest KEEP_ALIVE per-process objects (one per tag, common.keep_alive)
    so that they are not rebuilt per bundle, and let older ones go."""
    from csadetect.transforms import common, guard

    path, _, public = db
    saved = dict(common._kept)
    common._kept.clear()
    try:
        holders = [match._Holder(object()) for _ in range(common.KEEP_ALIVE + 3)]
        refs = [weakref.ref(h) for h in holders]
        for i in range(common.KEEP_ALIVE + 2):
            common.keep_alive(f"tag-{i}", holders[i])  # 0 and 1 are let go
        common.keep_alive("tag-2", holders[2])  # acquired again: the most recent now
        common.keep_alive("tag-last", holders[-1])  # lets 3 go
        del holders
        gc.collect()
        alive = [i for i, r in enumerate(refs) if r() is not None]
        assert alive == [2] + list(range(4, common.KEEP_ALIVE + 3))
        assert list(common._kept) == [f"tag-{i}" for i in range(4, common.KEEP_ALIVE + 2)] + ["tag-2", "tag-last"]
    finally:
        common._kept.clear()
        common._kept.update(saved)
    streaming = beam.options.pipeline_options.PipelineOptions(["--streaming"])
    for options, kept in ((streaming, True), (None, False)):
        p = beam.Pipeline(runner="DirectRunner", options=options)
        out = p | beam.Create([]) | match.MatchIndicators(_settings(path, public), MatchSettings())
        fn = out.producer.transform.fn
        assert fn._keep_alive is kept
        from csadetect.config.settings import AllowListSettings, FloodGuardSettings

        guarded = out | guard.GuardMatches(MatchSettings(), AllowListSettings(), FloodGuardSettings())
        assert guarded.matched.producer.transform.fn._keep is kept
