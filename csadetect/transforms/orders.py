"""ApplyOrders: run a detector on an event only while a detection order covers it (Art. 7, 10).

Each event gets the orders that are active *now* for its service and for the detection types its
kind can have (images and videos: ``known``, ``new``; text: ``grooming``). The check runs per
event against the clock, so an order that reaches its end date stops its detectors without a
restart. Events that no active order covers are dropped unscanned at once (counted, nothing kept).
"""
from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Optional, Sequence

import apache_beam as beam
from apache_beam import pvalue

from csadetect.core.timeutil import Clock, utc_now
from csadetect.transforms.common import DEAD_LETTER, counter, guarded

NOT_COVERED = "not_covered"
TYPES_BY_KIND = {"image": ("known", "new"), "video": ("known", "new"), "text": ("grooming",)}


def covering(orders: Sequence, kind: str, service: str, now: datetime) -> tuple:
    """``((detection_type, order_id, legal_basis), ...)``: for each detection type the event's kind
    can have, the first active order that covers it on ``service``."""
    out = []
    for dtype in TYPES_BY_KIND.get(kind, ()):
        for order in orders:
            if order.covers(dtype, service, now):
                out.append((dtype, order.order_id, order.legal_basis()))
                break
    return tuple(out)


class ApplyOrdersFn(beam.DoFn):
    def __init__(self, orders: Sequence, clock: Optional[Clock] = None):
        self._orders = tuple(orders)
        self._clock = clock

    @guarded("orders")
    def process(self, event):
        now = (self._clock or utc_now)()
        granted = covering(self._orders, event.kind, event.service, now)
        if not granted:
            # nothing may run on it: dropped at once, like a non-hit; only counters remain
            counter("non_hit").inc()
            counter(f"not_covered_{event.kind}").inc()
            yield pvalue.TaggedOutput(NOT_COVERED, event.kind)
            return
        counter(f"scanned_{event.kind}").inc()
        yield dataclasses.replace(event, orders=granted)


class ApplyOrders(beam.PTransform):
    """Outputs: main = covered Events (``orders`` set); ``not_covered`` = the kinds of the dropped
    events (no ids: they feed the id-free stats); ``dead_letter`` = DeadLetter (an unexpected
    error on one event)."""

    def __init__(self, orders: Sequence, clock: Optional[Clock] = None):
        super().__init__()
        self._orders = tuple(orders)
        self._clock = clock

    def expand(self, events):
        fn = ApplyOrdersFn(self._orders, self._clock)
        return events | "Gate" >> beam.ParDo(fn).with_outputs(NOT_COVERED, DEAD_LETTER, main="covered")
