"""Where upload events come from: Pub/Sub (native or cross-language), Kafka, or files.

``--read_via`` picks how events are read; everything after ``ReadEvents`` is the same graph:

* ``native`` (default): ``--input_subscription`` through Python's ``beam.io.ReadFromPubSub``
  (DirectRunner, Dataflow), ``--input_glob`` (JSON Lines) or ``--input_media_glob`` (media files).
* ``xlang_pubsub``: ``--input_subscription`` through the cross-language (Java)
  ``apache_beam.io.external.gcp.pubsub.ReadFromPubSub``. Python's own Pub/Sub read only runs on
  Dataflow and the Python direct runner, which swap it out (Beam issue #27443); on Flink (and other
  portable runners) Pub/Sub must be read through Java.
* ``kafka``: ``--kafka_bootstrap_servers`` + ``--kafka_topic`` (+ ``--kafka_consumer_config k=v``,
  repeatable) through ``apache_beam.io.kafka.ReadFromKafka`` (Java). Record values are the event
  bodies, keys are ignored. The read position lives in the runner's checkpoints (Flink) or its
  persistent state (Dataflow). ``--kafka_commit_offsets`` also commits it to the consumer group
  (``group.id``) when the runner finalises a checkpoint, for lag monitoring; it is off by default
  because on Flink (Beam 2.62's runner) the commit step, which requires stable input, fails the job
  at the first completed checkpoint ("State backend must be locked when retrieving the current key").

Before a local run starts (DirectRunner, FnApiRunner), :func:`preflight_pubsub` checks every
Pub/Sub subscription the built graph reads and every topic it writes (flags and config alike),
with a short timeout: a missing one, a denied one, missing credentials or an emulator that is not
running stop the run with one line naming it (:mod:`csadetect.core.pubsub`), not with the runner's
tracebacks. A run with no input, or with two, names the three input flags.

Cross-language reads are expanded by a Java expansion service when the pipeline is built:
``--expansion_service host:port`` (on Flink: a Java expansion service whose default environment is
``EMBEDDED``; the job server's own would give the Java transforms a ``DOCKER`` environment),
``--expansion_service /path/to/expansion-service.jar`` (started here; needs ``java``),
or nothing: Beam then starts its own Java expansion service from the released jar
(``beam-sdks-java-io-google-cloud-platform-expansion-service`` for Pub/Sub,
``beam-sdks-java-io-expansion-service`` for Kafka), which needs ``java`` on PATH and the jar in
``~/.apache_beam/cache/jars`` or a download from Maven Central. Both reads are unbounded: they
need ``--streaming``.

Running on Flink (run for real by ``tests/test_flink_cluster.py`` on a local cluster that
``make flink-up`` / :mod:`csadetect.cluster` starts; runbook: docs/deploy.md, "Flink")::

    # Beam 2.62 everywhere: its Python SDK, Beam's Flink 1.19 job server (FlinkJobServerDriver from
    # beam-runners-flink-1.19, or the shaded beam-runners-flink-1.19-job-server-2.62.0.jar) and an
    # expansion service with KafkaIO whose Java transforms run EMBEDDED in the TaskManagers:
    java -cp 'JOBSERVER_JARS/*' org.apache.beam.runners.flink.FlinkJobServerDriver \\
        --flink-master=FLINK_HOST:8081 --job-port=8099 --artifact-port=8098 --expansion-port=8096
    java -cp 'JOBSERVER_JARS/*' org.apache.beam.sdk.expansion.service.ExpansionService 8097 \\
        --defaultEnvironmentType=EMBEDDED
    python -m apache_beam.runners.worker.worker_pool_main --service_port=50000   # beside each TaskManager

    python -m csadetect.pipelines.detect --config CONFIG.yaml --streaming \\
        --runner=PortableRunner --job_endpoint=localhost:8099 \\
        --environment_type=EXTERNAL --environment_config=localhost:50000 --sdk_worker_parallelism=2 \\
        --read_via=kafka --kafka_bootstrap_servers=broker1:9092 --kafka_topic=uploads \\
        --kafka_consumer_config group.id=csadetect --kafka_consumer_config auto.offset.reset=earliest \\
        --expansion_service=localhost:8097 --parallelism=2 \\
        --checkpointing_interval=60000  # job-server options, passed through

    # Pub/Sub instead of Kafka (documented, not run here: PubsubIO's expansion service needs the
    # beam-sdks-java-io-google-cloud-platform jars on the expansion service's class path):
    #   --read_via=xlang_pubsub --input_subscription=projects/P/subscriptions/uploads
    # The topic must exist before the job starts: KafkaIO reads the partitions it finds at start.
    # --environment_type=DOCKER --environment_config=REGISTRY/csadetect-worker:TAG runs the Python
    # workers in containers instead, where the TaskManagers have a Docker engine.

``REGISTRY/csadetect-worker:TAG`` is an SDK container built ``FROM apache/beam_python3.11_sdk:2.62.0``
with ``requirements.txt`` and this package installed (vPDQ builds against FFmpeg's development
packages, so staging with ``--setup_file`` at worker start-up is slow and fragile). The workers
read the indicator snapshot, models and keys from ``gs://`` or any Beam filesystem (see
``csadetect/indicators/snapshot.py``, ``csadetect/models/loader.py``); the Java read needs Google credentials on the
TaskManagers for Pub/Sub. Pub/Sub messages are acknowledged, and Kafka offsets committed, when
Flink finalises a checkpoint: without ``--checkpointing_interval`` nothing is ever acknowledged.
"""
from __future__ import annotations

import dataclasses
import json
import mimetypes
import os
import re
from typing import Optional

import apache_beam as beam
from apache_beam.coders import BytesCoder
from apache_beam.io import fileio, textio
from apache_beam.io.external.gcp.pubsub import ReadFromPubSub as XlangReadFromPubSub
from apache_beam.io.kafka import ReadFromKafka
from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.transforms.external import BeamJarExpansionService, JavaJarExpansionService

from csadetect.config.profiles import runner_family
from csadetect.config.settings import ConfigError
from csadetect.core import fs, pubsub
from csadetect.core.ids import derived_id
from csadetect.core.timeutil import utc_iso
from csadetect.media.hashing import is_video_path

READ_VIA = ("native", "xlang_pubsub", "kafka")
INPUT_FLAGS = ("--input_subscription", "--input_glob", "--input_media_glob")
_HOST_PORT = r"(?:\[[0-9A-Fa-f:.%]+\]|[A-Za-z0-9._-]+):(\d{1,5})"  # host:port, [v6]:port
ADDRESS = re.compile(f"^{_HOST_PORT}$")
BOOTSTRAP = re.compile(rf"^(?:[A-Za-z][A-Za-z0-9_+.-]*://)?{_HOST_PORT}$")  # a Kafka listener may name its protocol
# Beam's Gradle target of the Java expansion service that holds PubsubIO's external read
PUBSUB_EXPANSION_TARGET = "sdks:java:io:google-cloud-platform:expansion-service:shadowJar"


def add_input_args(parser) -> None:
    """The input options of the detection pipeline (``DetectOptions``)."""
    src = parser.add_argument_group("input (exactly one)")
    src.add_argument("--input_subscription", default=None, help="projects/P/subscriptions/S (Pub/Sub)")
    src.add_argument("--input_glob", default=None, help="JSON Lines files of events (one event per line)")
    src.add_argument("--input_media_glob", default=None, help="media files; each becomes an upload event")
    via = parser.add_argument_group("how events are read (Flink: see csadetect/pipelines/sources.py)")
    via.add_argument("--read_via", default="native",
                     help="native (default: Python Pub/Sub read, or files) | xlang_pubsub (Pub/Sub through the "
                          "Java read, for Flink and other portable runners) | kafka")
    via.add_argument("--kafka_bootstrap_servers", default=None, help="host:port[,host:port...] (--read_via kafka)")
    via.add_argument("--kafka_topic", default=None, help="topic of upload events (--read_via kafka)")
    via.add_argument("--kafka_consumer_config", action="append", default=None, metavar="KEY=VALUE",
                     help="extra Kafka consumer property, repeatable (e.g. group.id=csadetect)")
    via.add_argument("--kafka_commit_offsets", action="store_true", default=False,
                     help="also commit the read offsets to the consumer group (group.id) at checkpoints; "
                          "not on Flink with Beam 2.62, where the commit step fails the job")
    via.add_argument("--expansion_service", default=None,
                     help="Java expansion service for xlang_pubsub/kafka: host:port, or a local expansion-service "
                          "jar; default: Beam starts the released jar (needs java)")


def check_pubsub_path(flag: str, path: str, kind: str = "subscriptions") -> None:
    """One line naming ``flag`` for a Pub/Sub ``kind`` path (``subscriptions`` or ``topics``) that
    Beam would reject only while the graph is built (a traceback after the models and the indicator
    database were loaded): not ``projects/P/<kind>/NAME``, or a project name Beam refuses."""
    pattern = pubsub.PATTERNS[kind]
    if not pattern.match(path):
        raise ConfigError(f"{flag} must look like projects/P/{kind}/{kind[0].upper()}, not {path[:80]!r}")
    try:
        from apache_beam.io.gcp.pubsub import parse_subscription, parse_topic
    except ImportError:  # Beam without its GCP extras: the format check above is all we can do
        return
    try:
        (parse_subscription if kind == "subscriptions" else parse_topic)(path)
    except ValueError as exc:
        raise ConfigError(f"{flag} {path[:80]!r}: {str(exc).splitlines()[0]}") from None


def _host_port(pattern: re.Pattern, text: str) -> bool:
    """Whether ``text`` matches ``pattern`` (one of the ``host:port`` forms) with a port 1-65535."""
    m = pattern.match(text)
    return bool(m) and 0 < int(m.group(1)) < 65536


def _check_bootstrap(servers: str) -> None:
    """``--kafka_bootstrap_servers``: host:port entries, comma-separated (a Kafka client would only
    fail in the Java read, after the models loaded, or retry a bad address for ever)."""
    entries = [e.strip() for e in servers.split(",") if e.strip()]
    for entry in entries:
        if not _host_port(BOOTSTRAP, entry):
            raise ConfigError(f"--kafka_bootstrap_servers takes host:port[,host:port...], not {entry[:80]!r}")
    if not entries:
        raise ConfigError(f"--kafka_bootstrap_servers takes host:port[,host:port...], not {servers[:80]!r}")


def _check_expansion_service(given: str) -> None:
    """``--expansion_service``: ``host:port`` or a jar (a path or URL; a local one must exist:
    :func:`check_input_files`). Anything else would fail when the read is expanded, after the
    models loaded, with a gRPC traceback."""
    if given.endswith(".jar"):
        return
    if not _host_port(ADDRESS, given):
        raise ConfigError(f"--expansion_service takes host:port or an expansion-service .jar, not {given[:80]!r}")


def check_globs(globs) -> None:
    """Before a local run: one line for a file glob (``(flag, pattern)`` pairs; None patterns skipped)
    that matches no file, or that names a directory (a glob's matches are files only), where Beam
    would fail deep in the run with a traceback. Remote globs
    (gs://...) are left to the runner: the launcher may hold no credentials."""
    for flag, pattern in globs:
        if not pattern or fs.is_url(pattern):
            continue
        try:
            found = next(iter(fs.match(pattern)), None)
        except Exception:  # pylint: disable=broad-except  # Beam raises when nothing matches
            found = None
        if found is None:
            raise ConfigError(f"{flag} {pattern[:200]!r} matches no file")
        if os.path.isdir(pattern):  # a directory named without a pattern: Beam would fail to read it
            raise ConfigError(f"{flag} {pattern[:200]!r} is a directory: give a pattern of its files, "
                              f"e.g. {os.path.join(pattern, '*')[:200]!r}")


def check_input_files(source: "Source") -> None:
    """:func:`check_globs` for the detection pipeline's file inputs, and a local expansion-service
    jar that is not there (Beam would raise FileNotFoundError when it starts the jar to expand the
    read, after the models loaded)."""
    check_globs((("--input_glob", source.glob), ("--input_media_glob", source.media_glob)))
    jar = source.expansion_service or ""
    if jar.endswith(".jar") and not fs.is_url(jar) and not os.path.isfile(jar):
        raise ConfigError(f"--expansion_service {jar[:200]!r}: no such jar file")


def _consumer_config(entries) -> tuple[tuple[str, str], ...]:
    out = {}
    for entry in entries or ():
        key, sep, value = str(entry).partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--kafka_consumer_config takes KEY=VALUE, got {str(entry)[:80]!r}")
        out[key.strip()] = value.strip()
    return tuple(sorted(out.items()))


@dataclasses.dataclass(frozen=True)
class Source:
    """Where events come from; ``validate`` raises a one-line ConfigError for a bad combination."""

    subscription: Optional[str] = None
    glob: Optional[str] = None
    media_glob: Optional[str] = None
    read_via: str = "native"
    kafka_bootstrap_servers: Optional[str] = None
    kafka_topic: Optional[str] = None
    kafka_consumer_config: tuple = ()  # ((key, value), ...) or a list of "key=value" strings
    kafka_commit_offsets: bool = False
    expansion_service: Optional[str] = None

    @classmethod
    def from_options(cls, opts) -> "Source":
        """From parsed ``DetectOptions`` (not validated yet)."""
        return cls(
            subscription=opts.input_subscription,
            glob=opts.input_glob,
            media_glob=opts.input_media_glob,
            read_via=getattr(opts, "read_via", None) or "native",
            kafka_bootstrap_servers=getattr(opts, "kafka_bootstrap_servers", None),
            kafka_topic=getattr(opts, "kafka_topic", None),
            kafka_consumer_config=tuple(getattr(opts, "kafka_consumer_config", None) or ()),
            kafka_commit_offsets=bool(getattr(opts, "kafka_commit_offsets", False)),
            expansion_service=getattr(opts, "expansion_service", None),
        )

    @property
    def unbounded(self) -> bool:
        """True for the streaming sources (Pub/Sub, Kafka): they need ``--streaming``."""
        return bool(self.subscription) or self.read_via == "kafka"

    def consumer_config(self) -> dict[str, str]:
        """The Kafka consumer properties: ``bootstrap.servers`` plus ``--kafka_consumer_config``."""
        extra = dict(_consumer_config(
            e if isinstance(e, str) else f"{e[0]}={e[1]}" for e in self.kafka_consumer_config))
        if "bootstrap.servers" in extra:
            raise ConfigError("give the Kafka brokers once, with --kafka_bootstrap_servers "
                              "(not bootstrap.servers in --kafka_consumer_config)")
        return {"bootstrap.servers": self.kafka_bootstrap_servers, **extra}

    def topics(self) -> list[str]:
        return [t.strip() for t in (self.kafka_topic or "").split(",") if t.strip()]

    def validate(self) -> "Source":
        via = self.read_via
        if via not in READ_VIA:
            raise ConfigError(f"--read_via must be one of {', '.join(READ_VIA)}, not {str(via)[:40]!r}")
        kafka_given = [f"--{n}" for n, v in (("kafka_bootstrap_servers", self.kafka_bootstrap_servers),
                                             ("kafka_topic", self.kafka_topic),
                                             ("kafka_consumer_config", self.kafka_consumer_config)) if v]
        if self.kafka_commit_offsets:
            kafka_given.append("--kafka_commit_offsets")
        if via != "kafka" and kafka_given:
            raise ConfigError(f"{', '.join(kafka_given)} only apply with --read_via kafka (read_via is {via})")
        if via == "native":
            if self.expansion_service:
                raise ConfigError("--expansion_service only applies with --read_via xlang_pubsub or kafka")
            given = [flag for flag, value in zip(INPUT_FLAGS, (self.subscription, self.glob, self.media_glob)) if value]
            if not given:
                raise ConfigError("no input: give one of --input_subscription, --input_glob or --input_media_glob "
                                  "(none of them was given)")
            if len(given) > 1:
                raise ConfigError(f"give exactly one input of --input_subscription, --input_glob or --input_media_glob, "
                                  f"not {' and '.join(given)}")
            if self.subscription:
                check_pubsub_path("--input_subscription", self.subscription)
            return self
        if self.expansion_service:
            _check_expansion_service(self.expansion_service)
        files = [f for f, v in (("--input_glob", self.glob), ("--input_media_glob", self.media_glob)) if v]
        if via == "xlang_pubsub":
            if files:
                raise ConfigError(f"--read_via xlang_pubsub reads --input_subscription only; drop {' and '.join(files)}")
            if not self.subscription:
                raise ConfigError("--read_via xlang_pubsub needs --input_subscription projects/P/subscriptions/S")
            check_pubsub_path("--input_subscription", self.subscription)
            return self
        # kafka
        if files or self.subscription:
            extra = files + (["--input_subscription"] if self.subscription else [])
            raise ConfigError(f"--read_via kafka reads --kafka_topic only; drop {' and '.join(extra)}")
        missing = [n for n, v in (("--kafka_bootstrap_servers host:port[,host:port]", self.kafka_bootstrap_servers),
                                  ("--kafka_topic", self.topics())) if not v]
        if missing:
            raise ConfigError(f"--read_via kafka needs {' and '.join(missing)}")
        _check_bootstrap(self.kafka_bootstrap_servers)
        config = self.consumer_config()  # KEY=VALUE entries, brokers given once
        if self.kafka_commit_offsets and "group.id" not in config:
            raise ConfigError("--kafka_commit_offsets needs a consumer group: --kafka_consumer_config group.id=NAME")
        return self


def pubsub_resources(pipeline) -> tuple[list[str], list[str]]:
    """The Pub/Sub subscriptions (and topics read directly) and the topics written to by Python's
    own ``ReadFromPubSub`` / ``WriteToPubSub`` in ``pipeline``'s graph, in graph order: every input,
    verdict and output named by a flag or by the config file alike."""
    from apache_beam.pipeline import PipelineVisitor

    try:
        from apache_beam.io.gcp.pubsub import ReadFromPubSub, WriteToPubSub  # lazy: Beam's GCP extras may be absent
    except ImportError:  # then no graph can hold a Pub/Sub read or write
        return [], []

    reads: list[str] = []
    writes: list[str] = []

    class _Find(PipelineVisitor):
        def enter_composite_transform(self, applied):
            self.visit_transform(applied)

        def visit_transform(self, applied):
            t = applied.transform
            if isinstance(t, ReadFromPubSub):
                reads.append(t._source.full_subscription or t._source.full_topic)  # pylint: disable=protected-access
            elif isinstance(t, WriteToPubSub):
                writes.append(t.full_topic)

    pipeline.visit(_Find())
    return list(dict.fromkeys(r for r in reads if r)), list(dict.fromkeys(w for w in writes if w))


def preflight_pubsub(pipeline, runner=None, timeout: float = pubsub.CHECK_SECONDS) -> int:
    """Before a local run starts: every Pub/Sub subscription the graph reads and every topic it
    writes must exist and answer within ``timeout`` seconds, else one ConfigError line naming the
    resource (not found, permission denied, no credentials, emulator or service unreachable)
    instead of a stream of tracebacks from the runner's threads. Runs only for the local runners
    (Dataflow and portable runners read through their own workers and credentials). Returns the
    number of resources checked."""
    if runner_family(runner if runner is not None else "DirectRunner") != "direct":
        return 0
    reads, writes = pubsub_resources(pipeline)
    return check_pubsub(reads, writes, runner, timeout)


def check_pubsub(reads, writes, runner=None, timeout: float = pubsub.CHECK_SECONDS) -> int:
    """The check of :func:`preflight_pubsub` for resources named directly (empty names skipped):
    ``reads`` (subscriptions, or topics) and ``writes`` (topics). Local runners only."""
    if runner_family(runner if runner is not None else "DirectRunner") != "direct":
        return 0
    reads, writes = [r for r in reads if r], [w for w in writes if w]
    if not (reads or writes):
        return 0
    try:
        if reads:
            client = pubsub.subscriber()
            try:
                for path in reads:
                    if pubsub.TOPIC.match(path):
                        pubsub.check_topic(pubsub.publisher(), path, timeout)
                    else:
                        pubsub.check_subscription(client, path, timeout)
            finally:
                client.close()
        if writes:
            client = pubsub.publisher()
            for path in writes:
                pubsub.check_topic(client, path, timeout)
    except pubsub.PubSubError as exc:
        raise ConfigError(str(exc)) from None
    return len(reads) + len(writes)


def expansion_service_for(source: Source, default_target: Optional[str]):
    """What to hand a cross-language transform as its expansion service: the ``host:port``
    address given, a ``JavaJarExpansionService`` for a local jar path, Beam's released jar for
    ``default_target`` (a Gradle target), or None (the transform's own default)."""
    given = source.expansion_service
    if given:
        return JavaJarExpansionService(given) if given.endswith(".jar") else given
    if default_target:
        return BeamJarExpansionService(default_target)
    return None


def source_transform(source: Source) -> beam.PTransform:
    """The Beam read transform for ``source`` (not applied: applying a cross-language transform
    contacts its expansion service). ``ReadEvents`` adds the per-source steps after it."""
    if source.read_via == "xlang_pubsub":
        return XlangReadFromPubSub(subscription=source.subscription, with_attributes=True,
                                   expansion_service=expansion_service_for(source, PUBSUB_EXPANSION_TARGET))
    if source.read_via == "kafka":
        config = source.consumer_config()
        return ReadFromKafka(
            consumer_config=config,
            topics=source.topics(),
            commit_offset_in_finalize=source.kafka_commit_offsets,
            # the time it was read (wall-clock watermark): windows close on time even when a
            # partition is idle. (With the records' CreateTime the SDF read's watermark only moves
            # with newer records, so the last window's reports would wait for the next upload.) After
            # a restore, replayed events are timestamped again and their rows may be written a second
            # time, with the same report_id: consumers collapse them (docs/deploy.md, "Flink").
            timestamp_policy=ReadFromKafka.processing_time_policy,
            expansion_service=expansion_service_for(source, None),  # None: beam-sdks-java-io-expansion-service
        )
    if source.subscription:
        return beam.io.ReadFromPubSub(subscription=source.subscription, with_attributes=True)
    if source.glob:
        # lines as bytes: a line that is not valid UTF-8 becomes a `[parse] not valid UTF-8` dead
        # letter in ParseEvents instead of failing the read (and with it the whole run)
        return ReadEventLines(source.glob, coder=BytesCoder())
    return fileio.MatchFiles(source.media_glob)


# Beam reads text in 8 KiB pieces and grows a line by concatenating them, which is quadratic in the
# line's length: an event with a 3 MP upload inline is a ~580 KB line, about 70 reads and 20 MB
# copied (2 ms of CPU per event under the profiler, benchmarks/stages.md). With 1 MiB pieces a line
# takes one or two reads; memory stays at about two pieces per open file.
EVENT_READ_BUFFER = 1 << 20


class _EventLinesSource(textio._TextSource):  # pylint: disable=protected-access
    """Beam's text source with :data:`EVENT_READ_BUFFER` as its read size (its ``buffer_size``)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, buffer_size=EVENT_READ_BUFFER, **kwargs)


class ReadEventLines(beam.io.ReadFromText):
    """``ReadFromText`` (splittable, any Beam filesystem) reading in :data:`EVENT_READ_BUFFER` pieces."""

    _source_class = _EventLinesSource


def media_file_event(path: str) -> bytes:
    """An upload event for a media file (content read later through its URI)."""
    mime = mimetypes.guess_type(path)[0] or ("video/mp4" if is_video_path(path) else "image/jpeg")
    kind = "video" if mime.startswith("video/") else "image"
    event = {
        "event_id": "file-" + derived_id(path, length=24),
        "provider": "local-files",
        "service": "files",
        "kind": kind,
        "occurred_at": utc_iso(),
        "account": "local",
        "mime": mime,
        "content_uri": path,
    }
    return json.dumps(event).encode()


def _encode_line(line) -> bytes:
    """A line of an events file as bytes (ReadFromText gives bytes; decoding is ParseEvents' job)."""
    return bytes(line) if isinstance(line, (bytes, bytearray)) else line.encode("utf-8", "surrogatepass")


def _kafka_value(record) -> bytes:
    """A Kafka record (key, value) -> the event body; a null value (tombstone) becomes b"" (a
    dead letter downstream, never an exception)."""
    value = record[1]
    return b"" if value is None else bytes(value)


def _media_event(meta) -> bytes:
    return media_file_event(meta.path)


class ReadEvents(beam.PTransform):
    """Raw event bodies (bytes or PubsubMessage) from the configured source."""

    def __init__(self, source: Source):
        super().__init__()
        self._source = source

    @property
    def source(self) -> Source:
        return self._source

    def expand(self, pbegin):
        s = self._source
        if s.read_via in ("xlang_pubsub", "kafka"):
            if not pbegin.pipeline.options.view_as(StandardOptions).streaming:
                raise ConfigError(f"--read_via {s.read_via} reads an unbounded stream: it needs --streaming")
        read = source_transform(s)
        if s.read_via == "xlang_pubsub":
            return pbegin | "XlangPubSub" >> read  # PubsubMessage elements (with attributes)
        if s.read_via == "kafka":
            return pbegin | "Kafka" >> read | "KafkaValues" >> beam.Map(_kafka_value)
        if s.subscription:
            return pbegin | "PubSub" >> read
        if s.glob:
            return pbegin | "Files" >> read | "Encode" >> beam.Map(_encode_line)
        return pbegin | "MatchMedia" >> read | "MediaEvent" >> beam.Map(_media_event)
