"""ParseEvents: Pub/Sub message bodies (or JSON lines, as bytes) -> validated Events; bad input
(invalid UTF-8 or JSON, failed validation, or any unexpected error) -> dead letters."""
from __future__ import annotations

import apache_beam as beam
from apache_beam import pvalue

from csadetect.events.event import EventError, dead_letter, parse_event
from csadetect.config.settings import Limits
from csadetect.transforms.common import DEAD_LETTER, counter, guarded


def _no_id(_element):
    return None  # an unparsed body: its id is not known (and it may be anything)


class ParseEventFn(beam.DoFn):
    def __init__(self, limits: Limits):
        self._limits = limits
        self._received = counter("received")
        self._dead = counter("dead_lettered")

    @guarded("parse", event_id=_no_id)
    def process(self, element):
        self._received.inc()
        if hasattr(element, "data") and hasattr(element, "attributes"):  # PubsubMessage
            data, attributes = element.data, element.attributes
        else:
            data, attributes = element, None
        try:
            event = parse_event(data, attributes, self._limits)
        except EventError as exc:
            self._dead.inc()
            counter("dead_letter_parse").inc()
            yield pvalue.TaggedOutput(DEAD_LETTER, dead_letter("parse", exc.reason, exc.event_id))
            return
        counter(f"received_{event.kind}").inc()
        yield event


class ParseEvents(beam.PTransform):
    """Outputs: main = Event, ``dead_letter`` = DeadLetter."""

    def __init__(self, limits: Limits):
        super().__init__()
        self._limits = limits

    def expand(self, messages):
        return messages | "Parse" >> beam.ParDo(ParseEventFn(self._limits)).with_outputs(DEAD_LETTER, main="events")
