"""ResolveContent: fetch ``content_uri`` bytes through Beam's filesystems (gs://, local, ...).

This is the one stage that reads content from storage, so it is explicit in the graph."""
from __future__ import annotations

import dataclasses

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.io.filesystems import FileSystems

from csadetect.events.event import dead_letter
from csadetect.config.settings import Limits
from csadetect.transforms.common import DEAD_LETTER, counter


def read_uri(uri: str, max_bytes: int) -> bytes:
    with FileSystems.open(uri, compression_type="uncompressed") as fh:
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"content exceeds the limit of {max_bytes} bytes")
    if not data:
        raise ValueError("content is empty")
    return data


class ResolveContentFn(beam.DoFn):
    def __init__(self, limits: Limits):
        self._limits = limits

    def process(self, event):
        if event.content is not None or event.content_uri is None:
            yield event
            return
        try:
            data = read_uri(event.content_uri, self._limits.max_content_bytes)
        except ValueError as exc:
            reason = str(exc)
        except Exception as exc:  # any filesystem error: missing object, permission...
            reason = f"content_uri unreadable ({type(exc).__name__})"
        else:
            yield dataclasses.replace(event, content=data)
            return
        counter("dead_lettered").inc()
        yield pvalue.TaggedOutput(DEAD_LETTER, dead_letter("content", reason, event.event_id))


class ResolveContent(beam.PTransform):
    def __init__(self, limits: Limits):
        super().__init__()
        self._limits = limits

    def expand(self, events):
        return events | "Fetch" >> beam.ParDo(ResolveContentFn(self._limits)).with_outputs(DEAD_LETTER, main="events")
