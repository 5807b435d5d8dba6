"""WriteStats: id-free counters to ``stores.stats_dir`` for the transparency report (docs/data.md).

Stats records (:func:`csadetect.core.stats.stat`) from every stage are summed per (metric, labels) in
each window (the whole run in batch, ``window_seconds`` in streaming) and written as JSON Lines; in
streaming a window's late records are summed and written in a later firing of their own
(:func:`csadetect.transforms.sinks.streaming_windows`): a window's counters are the sum of its files.
``review_seconds`` records are kept one by one (the transparency report needs their distribution).
The pipeline passes the run's own directory, ``<stats_dir>/<RUN_ID>/`` (:mod:`csadetect.core.runs`)."""
from __future__ import annotations

import json
from typing import Optional

import apache_beam as beam

from csadetect.core.stats import stat
from csadetect.transforms.sinks import WriteRecords, streaming_windows


def stat_of(metric: str, **labels):
    """A ``beam.Map`` body: any element -> a stats record with value 1 (the element is dropped)."""
    return lambda _element: stat(metric, 1, **labels)


def _key(record: dict):
    return json.dumps([record["metric"], record.get("labels", {})], sort_keys=True)


def _unkey(key: str, value) -> dict:
    metric, labels = json.loads(key)
    return stat(metric, value, **labels)


class WriteStats(beam.PTransform):
    def __init__(self, stats_dir: Optional[str], streaming: bool = False, window_seconds: int = 60):
        super().__init__()
        self._dir = stats_dir
        self._streaming = streaming
        self._window = window_seconds

    def expand(self, records):
        if self._streaming:
            records = records | "Window" >> streaming_windows(self._window)
        summed = (
            records
            | "Summable" >> beam.Filter(lambda r: r["metric"] != "review_seconds")
            | "Key" >> beam.Map(lambda r: (_key(r), r["value"]))
            | "Sum" >> beam.CombinePerKey(sum)
            | "Record" >> beam.MapTuple(_unkey)
        )
        single = records | "Durations" >> beam.Filter(lambda r: r["metric"] == "review_seconds")
        merged = (summed, single) | "Merge" >> beam.Flatten()
        return merged | "Write" >> WriteRecords("stats", self._dir, None, ("jsonl",), None, None, False,
                                               clean_temp=not self._streaming)
