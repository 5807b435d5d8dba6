"""Report and dead-letter sinks: Pub/Sub topics, Parquet (pyarrow) and JSON Lines files.

File sinks use ``fileio.WriteToFiles`` so the same transform works in batch and streaming (in
streaming the records are first put into fixed windows, one set of files per window, see
:func:`streaming_windows`). Each run
writes into its own run directory (:mod:`csadetect.core.runs`); the pipeline passes it as
``directory``. The temporary files of a write go to a hidden ``.temp-beam-<uuid>`` folder (under
``--temp_location`` when set, else under ``directory``), which a batch write removes once its files
are in place (``Clean<Format>Temp``), so no empty temporary folders pile up."""
from __future__ import annotations

import uuid
from typing import Optional, Sequence

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io import fileio
from apache_beam.options.pipeline_options import GoogleCloudOptions
from apache_beam.options.value_provider import StaticValueProvider
from apache_beam.transforms import trigger, window
from apache_beam.utils.timestamp import Duration

from csadetect.core import runs
from csadetect.reports.schema import REPORT_SCHEMA, to_json_line


class JsonLinesSink(fileio.TextSink):
    def write(self, record):
        self._fh.write(to_json_line(record).encode("utf-8") + b"\n")


class ParquetSink(fileio.FileSink):
    """Buffers the records of one file and writes them as one Parquet table on flush."""

    def __init__(self, schema: pa.Schema):
        self._schema = schema
        self._rows: list = []
        self._fh = None

    def open(self, fh):
        self._fh = fh
        self._rows = []

    def write(self, record):
        self._rows.append(record)

    def flush(self):
        table = pa.Table.from_pylist(self._rows, schema=self._schema)
        pq.write_table(table, self._fh, compression="zstd")
        self._rows = []


# How long after a window's end a late record is still written. A record is late when the watermark
# passed its window before it reached the write: a bundle on Flink that finishes after the
# watermark moved on, a batch flushed by a timer, a replay after a restore. Beam drops late records
# at a GroupByKey without a word (only the runner's droppedDueToLateness counter shows it); here they
# go out in a later pane of their window instead, within this bound.
ALLOWED_LATENESS_SECONDS = 3600


def streaming_windows(seconds: int) -> beam.WindowInto:
    """Fixed windows of ``seconds`` for a streaming sink: one firing when the watermark passes the
    window's end, then one more for each late record, for up to ``ALLOWED_LATENESS_SECONDS``
    (discarding: each firing writes only its own records, to files of their own, see
    :func:`window_file_naming`)."""
    return beam.WindowInto(
        window.FixedWindows(seconds),
        trigger=trigger.AfterWatermark(late=trigger.AfterCount(1)),
        allowed_lateness=Duration(seconds=ALLOWED_LATENESS_SECONDS),
        accumulation_mode=trigger.AccumulationMode.DISCARDING,
    )


def window_file_naming(prefix: str, suffix: str):
    """``fileio`` file naming: in a window, ``<prefix>-<start>-<end>-<12 hex>-<shard>-of-<n><suffix>``,
    where the random part keeps a window's later firings (late records, a replay after a restore)
    from overwriting the files of its first; in the global window (batch), Beam's default names."""
    default = fileio.default_file_naming(prefix, suffix)

    def _name(win, pane, shard_index, total_shards, compression, destination):
        if win is None or win == window.GlobalWindow():
            return default(win, pane, shard_index, total_shards, compression, destination)
        start, end = (t.to_utc_datetime().isoformat() for t in (win.start, win.end))
        return (f"{prefix}-{start}-{end}-{uuid.uuid4().hex[:12]}-{int(shard_index or 0):05d}-of-"
                f"{int(total_shards or 0):05d}{suffix}")

    return _name


def _window_if_streaming(pcoll, streaming: bool, seconds: int, label: str):
    if not streaming:
        return pcoll
    return pcoll | f"{label}Window" >> streaming_windows(seconds)


class WriteRecords(beam.PTransform):
    """Writes dict records to any of: a Pub/Sub topic (one JSON message each, with ``id_attribute``
    copied to a message attribute), Parquet files and JSON Lines files under ``directory``.
    ``clean_temp`` (default: in batch) removes the write's temporary folder once its files are in place."""

    def __init__(
        self,
        prefix: str,
        directory: Optional[str] = None,
        topic: Optional[str] = None,
        formats: Sequence[str] = ("parquet", "jsonl"),
        schema: Optional[pa.Schema] = None,
        id_attribute: Optional[str] = None,
        streaming: bool = False,
        window_seconds: int = 60,
        clean_temp: Optional[bool] = None,
    ):
        super().__init__()
        self._clean_temp = (not streaming) if clean_temp is None else clean_temp
        self._prefix = prefix
        self._dir = directory
        self._topic = topic
        self._formats = tuple(formats) if directory else ()
        self._schema = schema
        self._id_attribute = id_attribute
        self._streaming = streaming
        self._window_seconds = window_seconds

    def expand(self, records):
        outputs = []
        if self._topic:
            id_attr = self._id_attribute

            def to_message(record):
                from apache_beam.io.gcp.pubsub import PubsubMessage

                attrs = {id_attr: str(record[id_attr])} if id_attr and record.get(id_attr) else {}
                return PubsubMessage(to_json_line(record).encode("utf-8"), attrs)

            outputs.append(
                records
                | "ToMessage" >> beam.Map(to_message)
                | "Publish" >> beam.io.WriteToPubSub(self._topic, with_attributes=True)
            )
        if self._formats:
            windowed = _window_if_streaming(records, self._streaming, self._window_seconds, "File")
            if "parquet" in self._formats and self._schema is None:
                raise ValueError("Parquet output needs a schema")
            schema = self._schema
            make_sink = {"jsonl": lambda _dest: JsonLinesSink(), "parquet": lambda _dest: ParquetSink(schema)}
            temp_base = records.pipeline.options.view_as(GoogleCloudOptions).temp_location or self._dir
            for fmt in self._formats:  # step names WriteJsonl / WriteParquet stay stable for --update
                temp = runs.temp_dir(temp_base, uuid.uuid4().hex)
                written = (
                    windowed
                    | f"Write{fmt.capitalize()}"
                    >> fileio.WriteToFiles(
                        path=self._dir,
                        file_naming=window_file_naming(self._prefix, f".{fmt}"),
                        sink=make_sink[fmt],
                        shards=1,
                        temp_directory=StaticValueProvider(str, temp),
                    )
                )
                if self._clean_temp:  # batch: every file is in place once its result is out
                    written = written | f"Clean{fmt.capitalize()}Temp" >> beam.FlatMap(_remove_temp, temp)
                outputs.append(written)
        return outputs


def _remove_temp(file_result, temp: str):
    """After a batch write has moved its files into place: its temporary folder, once empty."""
    runs.remove_empty_dir(temp)
    yield file_result


DEAD_LETTER_SCHEMA = pa.schema(
    [("event_id", pa.string()), ("stage", pa.string()), ("reason", pa.string()), ("at", pa.string())]
)


class WriteReports(WriteRecords):
    def __init__(self, directory=None, topic=None, formats=("parquet", "jsonl"), streaming=False, window_seconds=60):
        super().__init__("reports", directory, topic, formats, REPORT_SCHEMA, "report_id", streaming, window_seconds)


class WriteDeadLetters(beam.PTransform):
    def __init__(self, directory=None, topic=None, streaming=False, window_seconds=60):
        super().__init__()
        self._inner = WriteRecords(
            "dead_letters", directory, topic, ("jsonl",), DEAD_LETTER_SCHEMA, "event_id", streaming, window_seconds
        )

    def expand(self, dead_letters):
        return dead_letters | "ToDict" >> beam.Map(lambda d: d.to_json()) | "Write" >> self._inner
