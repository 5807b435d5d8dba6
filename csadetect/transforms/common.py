"""Shared pieces of the transforms: the metrics namespace, tags, batching, and the base of the
DoFns that seal or sign. The element types that flow between the stages (``HashedItem``,
``MatchedItem``) are plain data of :mod:`csadetect.reports.hits`. Counters never carry ids, hashes
or content in their names."""
from __future__ import annotations

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference

from csadetect.reports.crypto import ReportKeys

NAMESPACE = "csadetect"
DEAD_LETTER = "dead_letter"
# Each event ends in exactly one of these, so `received = hit + non_hit + dead_lettered`.
OUTCOMES = ("received", "hit", "non_hit", "dead_lettered")


def counter(name: str):
    return Metrics.counter(NAMESPACE, name)


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
