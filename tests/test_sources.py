"""Event sources (csadetect/pipelines/sources.py): option parsing and one-line validation for
``--read_via native|xlang_pubsub|kafka``, the Beam read transform built for each mode (checked
WITHOUT applying it: a cross-language transform contacts its Java expansion service when applied,
and there is no Java, Maven Central or Flink here), and the native paths end to end."""
from __future__ import annotations

import json

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from csadetect.config.profiles import FN_API_RUNNER
from csadetect.events.event import make_event
from csadetect.config.settings import ConfigError, load_settings
from csadetect.pipelines import sources
from csadetect.pipelines.detect import DetectOptions
from csadetect.pipelines.sources import ReadEvents, Source, source_transform
from csadetect.transforms.common import DEAD_LETTER
from csadetect.transforms.parse import ParseEvents

SUB = "projects/example-project/subscriptions/uploads"


def _source(*argv) -> Source:
    return Source.from_options(PipelineOptions(list(argv)).view_as(DetectOptions))


def _payload(transform) -> dict:
    """The configuration row a cross-language transform sends to its expansion service."""
    from apache_beam.coders import RowCoder
    from apache_beam.portability.api import external_transforms_pb2

    payload = external_transforms_pb2.ExternalConfigurationPayload.FromString(transform._payload)
    return RowCoder(payload.schema).decode(payload.payload)._asdict()


# ----------------------------------------------------------------------------- options


def test_defaults_are_the_native_read():
    s = _source("--input_glob", "events/*.jsonl")
    assert s.read_via == "native" and s.glob == "events/*.jsonl" and s.expansion_service is None
    assert s.validate() is s and not s.unbounded
    assert Source(glob="x").validate().read_via == "native"  # positional/keyword use as before
    assert Source(SUB).validate().unbounded


def test_kafka_options_parse():
    s = _source("--read_via", "kafka", "--kafka_bootstrap_servers", "b1:9092,b2:9092", "--kafka_topic", "uploads",
                "--kafka_consumer_config", "group.id=csadetect", "--kafka_consumer_config", "auto.offset.reset=earliest",
                "--expansion_service", "localhost:8097", "--streaming").validate()
    assert s.read_via == "kafka" and s.unbounded and s.topics() == ["uploads"]
    assert s.consumer_config() == {"bootstrap.servers": "b1:9092,b2:9092", "group.id": "csadetect",
                                   "auto.offset.reset": "earliest"}
    assert s.expansion_service == "localhost:8097"


def test_xlang_pubsub_options_parse():
    s = _source("--read_via=xlang_pubsub", f"--input_subscription={SUB}").validate()
    assert s.read_via == "xlang_pubsub" and s.subscription == SUB and s.unbounded


def test_help_lists_the_source_options(capsys):
    from csadetect.pipelines.detect import main

    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for flag in ("--read_via", "--kafka_bootstrap_servers", "--kafka_topic", "--kafka_consumer_config",
                 "--expansion_service", "--input_subscription", "--input_glob", "--input_media_glob"):
        assert flag in out


@pytest.mark.parametrize("argv, message", [
    (["--read_via", "pulsar", "--input_glob", "x"], "--read_via must be one of native, xlang_pubsub, kafka"),
    (["--read_via", "kafka", "--kafka_topic", "t"], "--read_via kafka needs --kafka_bootstrap_servers"),
    (["--read_via", "kafka", "--kafka_bootstrap_servers", "b:9092"], "--read_via kafka needs --kafka_topic"),
    (["--read_via", "kafka"], "needs --kafka_bootstrap_servers host:port[,host:port] and --kafka_topic"),
    (["--read_via", "kafka", "--kafka_bootstrap_servers", "b:9092", "--kafka_topic", "t", "--input_subscription", SUB],
     "--read_via kafka reads --kafka_topic only; drop --input_subscription"),
    (["--read_via", "kafka", "--kafka_bootstrap_servers", "b:9092", "--kafka_topic", "t",
      "--kafka_consumer_config", "group.id"], "--kafka_consumer_config takes KEY=VALUE, got 'group.id'"),
    (["--read_via", "kafka", "--kafka_bootstrap_servers", "b:9092", "--kafka_topic", "t",
      "--kafka_consumer_config", "bootstrap.servers=c:9092"], "give the Kafka brokers once"),
    (["--read_via", "xlang_pubsub"], "--read_via xlang_pubsub needs --input_subscription"),
    (["--read_via", "xlang_pubsub", "--input_subscription", SUB, "--input_glob", "x"],
     "--read_via xlang_pubsub reads --input_subscription only; drop --input_glob"),
    (["--read_via", "xlang_pubsub", "--input_subscription", "uploads"], "must look like projects/P/subscriptions/S"),
    (["--read_via", "xlang_pubsub", "--input_subscription", "projects/p/subscriptions/s"], "Invalid PubSub project"),
    (["--input_glob", "x", "--kafka_topic", "t"], "--kafka_topic only apply with --read_via kafka"),
    (["--input_glob", "x", "--expansion_service", "localhost:8097"], "--expansion_service only applies with"),
    ([], "no input: give one of --input_subscription, --input_glob or --input_media_glob (none of them was given)"),
    (["--input_glob", "x", "--input_media_glob", "y"],
     "give exactly one input of --input_subscription, --input_glob or --input_media_glob, "
     "not --input_glob and --input_media_glob"),
])
def test_validation_errors_are_one_line(argv, message):
    with pytest.raises(ConfigError) as exc:
        _source(*argv).validate()
    assert message in str(exc.value) and "\n" not in str(exc.value)


# ------------------------------------------------------------- the transform per mode


def test_native_pubsub_transform():
    from apache_beam.io.gcp.pubsub import ReadFromPubSub

    read = source_transform(Source(SUB).validate())
    assert type(read) is ReadFromPubSub
    assert read.with_attributes is True and read._source.full_subscription == SUB


def test_native_file_transforms(tmp_path):
    from apache_beam.io import fileio

    (tmp_path / "a.jsonl").write_text("{}\n")
    read = source_transform(Source(glob=str(tmp_path / "*.jsonl")).validate())
    assert isinstance(read, beam.io.ReadFromText) and read._source._pattern.get() == str(tmp_path / "*.jsonl")
    assert read._source._buffer_size == sources.EVENT_READ_BUFFER  # not Beam's 8 KiB pieces
    media = source_transform(Source(media_glob=str(tmp_path / "*.jpg")).validate())
    assert type(media) is fileio.MatchFiles and media._file_pattern == str(tmp_path / "*.jpg")


def test_xlang_pubsub_transform_with_an_expansion_service_address():
    from apache_beam.io.external.gcp.pubsub import ReadFromPubSub as XlangReadFromPubSub

    read = source_transform(Source(SUB, read_via="xlang_pubsub", expansion_service="localhost:8097").validate())
    assert type(read) is XlangReadFromPubSub
    assert read.params.subscription == SUB and read.params.topic is None
    assert read.params.with_attributes is True and read.params.id_label is None
    assert read.expansion_service == "localhost:8097"


def test_xlang_pubsub_default_expansion_service_is_beams_gcp_jar():
    """No address: Beam's released GCP IO expansion service jar, started with java when applied
    (nothing is started or downloaded to build the transform)."""
    from apache_beam.transforms.external import BeamJarExpansionService

    read = source_transform(Source(SUB, read_via="xlang_pubsub").validate())
    svc = read.expansion_service
    assert isinstance(svc, BeamJarExpansionService)
    assert svc.gradle_target == sources.PUBSUB_EXPANSION_TARGET
    assert "google-cloud-platform-expansion-service" in svc.path_to_jar and beam.__version__ in svc.path_to_jar


def test_xlang_pubsub_expansion_service_from_a_local_jar(tmp_path):
    from apache_beam.transforms.external import JavaJarExpansionService

    jar = str(tmp_path / "beam-sdks-java-io-google-cloud-platform-expansion-service-2.62.0.jar")
    read = source_transform(Source(SUB, read_via="xlang_pubsub", expansion_service=jar).validate())
    assert type(read.expansion_service) is JavaJarExpansionService and read.expansion_service.path_to_jar == jar


def test_kafka_transform():
    from apache_beam.io.kafka import ReadFromKafka

    source = Source(read_via="kafka", kafka_bootstrap_servers="b1:9092,b2:9092", kafka_topic="uploads",
                    kafka_consumer_config=("group.id=csadetect", "auto.offset.reset=earliest"),
                    kafka_commit_offsets=True, expansion_service="localhost:8097").validate()
    read = source_transform(source)
    assert type(read) is ReadFromKafka
    assert read._urn == ReadFromKafka.URN_WITHOUT_METADATA and read._expansion_service == "localhost:8097"
    row = _payload(read)
    assert row["consumer_config"] == {"bootstrap.servers": "b1:9092,b2:9092", "group.id": "csadetect",
                                      "auto.offset.reset": "earliest"}
    assert list(row["topics"]) == ["uploads"]
    assert row["key_deserializer"] == row["value_deserializer"] == ReadFromKafka.byte_array_deserializer
    assert row["commit_offset_in_finalize"] is True  # asked for, with a consumer group
    assert row["timestamp_policy"] == ReadFromKafka.processing_time_policy  # windows close when partitions idle
    plain = Source(read_via="kafka", kafka_bootstrap_servers="b:9092", kafka_topic="u",
                   kafka_consumer_config=("group.id=g",)).validate()
    assert _payload(source_transform(plain))["commit_offset_in_finalize"] is False  # the default: no commit step
    with pytest.raises(ConfigError, match="--kafka_commit_offsets needs a consumer group"):
        Source(read_via="kafka", kafka_bootstrap_servers="b:9092", kafka_topic="u", kafka_commit_offsets=True).validate()
    assert row["max_num_records"] is None and row["max_read_time"] is None  # unbounded


def test_kafka_default_expansion_service_and_no_group():
    from apache_beam.transforms.external import BeamJarExpansionService

    read = source_transform(Source(read_via="kafka", kafka_bootstrap_servers="b:9092", kafka_topic="a, b").validate())
    assert isinstance(read._expansion_service, BeamJarExpansionService)
    assert "beam-sdks-java-io-expansion-service" in read._expansion_service.path_to_jar
    row = _payload(read)
    assert list(row["topics"]) == ["a", "b"] and row["commit_offset_in_finalize"] is False


# ------------------------------------------------------------------- ReadEvents


def _streaming_pipeline(runner="BundleBasedDirectRunner"):
    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = True
    return BeamTestPipeline(runner=runner, options=options, blocking=False)


@pytest.mark.parametrize("source", [
    Source(SUB, read_via="xlang_pubsub", expansion_service="localhost:1"),
    Source(read_via="kafka", kafka_bootstrap_servers="b:9092", kafka_topic="t", expansion_service="localhost:1"),
])
def test_unbounded_xlang_reads_need_streaming(source, monkeypatch):
    """Refused while the graph is built, before any expansion service is contacted."""
    monkeypatch.setattr(sources, "source_transform", lambda s: pytest.fail("must not get this far"))
    p = BeamTestPipeline(runner=FN_API_RUNNER, blocking=False)
    with pytest.raises(ConfigError, match=f"--read_via {source.read_via} reads an unbounded stream: it needs --streaming"):
        p | ReadEvents(source)


def test_readevents_uses_source_transform_and_labels(monkeypatch):
    """ReadEvents applies exactly what source_transform returns, under a stable label (Dataflow
    streaming updates match transforms by name: the native Pub/Sub read stays ReadEvents/PubSub)."""
    seen = []

    def fake(source):
        seen.append(source)
        return beam.Create([b"x"])

    monkeypatch.setattr(sources, "source_transform", fake)
    labels = {}
    for source in (Source(SUB, read_via="xlang_pubsub"),
                   Source(read_via="kafka", kafka_bootstrap_servers="b:9092", kafka_topic="t")):
        p = _streaming_pipeline()
        p | "ReadEvents" >> ReadEvents(source)
        labels[source.read_via] = {t.unique_name for t in p.to_runner_api().components.transforms.values()}
    assert len(seen) == 2
    assert "ReadEvents/XlangPubSub" in labels["xlang_pubsub"]
    assert {"ReadEvents/Kafka", "ReadEvents/KafkaValues"} <= labels["kafka"]

    monkeypatch.undo()
    p = _streaming_pipeline()
    p | "ReadEvents" >> ReadEvents(Source(SUB).validate())  # the native read: built, never run
    names = {t.unique_name for t in p.to_runner_api().components.transforms.values()}
    assert "ReadEvents/PubSub" in names


def test_kafka_values_are_the_event_bodies(monkeypatch):
    """Kafka records are (key, value): values go on as event bodies (keys ignored); a null value
    becomes a dead letter, not an exception."""
    good = json.dumps(make_event("k-1", b"\xff\xd8\xff")).encode()
    records = [(b"key-1", good), (None, b"not json"), (b"key-3", None)]
    monkeypatch.setattr(sources, "source_transform", lambda s: beam.Create(records))
    source = Source(read_via="kafka", kafka_bootstrap_servers="b:9092", kafka_topic="t").validate()
    p = _streaming_pipeline()
    raw = p | ReadEvents(source)
    assert_that(raw, equal_to([good, b"not json", b""]), label="Bodies")
    parsed = raw | ParseEvents(load_settings().limits)
    assert_that(parsed.events | beam.Map(lambda e: e.event_id), equal_to(["k-1"]), label="Events")
    assert_that(parsed[DEAD_LETTER] | beam.Map(lambda d: d.stage), equal_to(["parse", "parse"]), label="Dead")
    p.run().wait_until_finish()


def test_native_glob_and_media_paths_still_work(tmp_path):
    events = [make_event(f"e{i}", b"\xff\xd8\xff") for i in range(3)]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in events) + "\n")
    (tmp_path / "media").mkdir()
    for name in ("a.jpg", "b.png", "c.mp4"):
        (tmp_path / "media" / name).write_bytes(b"x")
    p = BeamTestPipeline(runner=FN_API_RUNNER, blocking=False)
    lines = p | "Lines" >> ReadEvents(Source(glob=str(path)).validate())
    assert_that(lines | beam.Map(lambda b: json.loads(b)["event_id"]), equal_to(["e0", "e1", "e2"]), label="Glob")
    media = p | "Media" >> ReadEvents(Source(media_glob=str(tmp_path / "media" / "*")).validate())
    assert_that(media | beam.Map(lambda b: (json.loads(b)["kind"], json.loads(b)["mime"])),
                equal_to([("image", "image/jpeg"), ("image", "image/png"), ("video", "video/mp4")]), label="Media")
    p.run().wait_until_finish()


def test_detect_reexports_the_moved_names():  # the names tests and users import from csadetect.pipelines.detect
    import csadetect.pipelines.detect as detect

    assert detect.ReadEvents is ReadEvents and detect.Source is Source


def test_file_source_reads_lines_as_bytes_and_survives_invalid_utf8(tmp_path):
    """Issue 12: a line that is not UTF-8 reaches ParseEvents as bytes (a dead letter there), it
    does not fail the read."""
    from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
    from apache_beam.testing.util import assert_that, equal_to

    from csadetect.pipelines.sources import ReadEvents, Source

    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"a": 1}\n\xff\xfe broken\n{"b": "\xc3\xa9"}\n')
    with BeamTestPipeline(runner=FN_API_RUNNER) as p:
        lines = p | ReadEvents(Source(glob=str(path)))
        assert_that(lines, equal_to([b'{"a": 1}', b"\xff\xfe broken", b'{"b": "\xc3\xa9"}']))


# ------------------------------------------------------- the Pub/Sub pre-flight check


def _pubsub_graph():
    """A streaming graph that reads a subscription and writes two topics (built, never run)."""
    from apache_beam.io.gcp.pubsub import WriteToPubSub

    options = PipelineOptions(["--streaming", "--runner=DirectRunner"])
    p = beam.Pipeline(options=options)
    raw = p | "ReadEvents" >> ReadEvents(Source(SUB).validate())
    raw | "A" >> beam.Map(lambda m: m.data) | "ToA" >> WriteToPubSub("projects/example-project/topics/reports")
    raw | "B" >> beam.Map(lambda m: m.data) | "ToB" >> WriteToPubSub("projects/example-project/topics/dead-letters")
    return p


def test_pubsub_resources_of_a_graph(tmp_path):
    reads, writes = sources.pubsub_resources(_pubsub_graph())
    assert reads == [SUB]
    assert writes == ["projects/example-project/topics/reports", "projects/example-project/topics/dead-letters"]
    p = BeamTestPipeline(runner=FN_API_RUNNER, blocking=False)
    p | ReadEvents(Source(media_glob=str(tmp_path / "*.jpg")).validate())
    assert sources.pubsub_resources(p) == ([], [])


def test_preflight_leaves_remote_runners_and_file_graphs_alone(monkeypatch, tmp_path):
    """Dataflow and portable runners check their resources themselves: nothing is contacted."""
    monkeypatch.setattr(sources.pubsub, "subscriber", lambda: pytest.fail("must not contact Pub/Sub"))
    monkeypatch.setattr(sources.pubsub, "publisher", lambda: pytest.fail("must not contact Pub/Sub"))
    for runner in ("DataflowRunner", "PortableRunner", "FlinkRunner"):
        assert sources.preflight_pubsub(_pubsub_graph(), runner) == 0
    p = BeamTestPipeline(runner=FN_API_RUNNER, blocking=False)
    p | ReadEvents(Source(media_glob="/nonexistent/*.jpg").validate())
    assert sources.preflight_pubsub(p, "FnApiRunner") == 0


def test_preflight_with_the_emulator_down_is_one_line(monkeypatch):
    """PUBSUB_EMULATOR_HOST names a port where nothing listens: one line naming it, at once."""
    from tests.pubsub_emulator import free_port

    host = f"127.0.0.1:{free_port()}"
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", host)
    with pytest.raises(ConfigError) as exc:
        sources.preflight_pubsub(_pubsub_graph(), "DirectRunner", timeout=3)
    msg = str(exc.value)
    assert f"the Pub/Sub emulator at {host} (PUBSUB_EMULATOR_HOST) is unreachable" in msg and "\n" not in msg
    assert f"--host-port={host}" in msg


def test_a_local_glob_that_matches_nothing_is_one_line_before_anything_runs(tmp_path, capsys):
    """`run --input_glob` and `feedback --report_glob/--verdict_glob` whose pattern matches no file:
    one `error:` line and exit 2 (Beam would fail deep in the run with a traceback)."""
    from csadetect.cli.main import main

    (tmp_path / "verdicts.jsonl").write_text("")
    cases = [
        (["run", "--input_glob", str(tmp_path / "none-*.jsonl")], "--input_glob"),
        (["run", "--input_media_glob", str(tmp_path / "none-*.jpg")], "--input_media_glob"),
        (["feedback", "--report_glob", str(tmp_path / "reports" / "**.jsonl"),
          "--verdict_glob", str(tmp_path / "verdicts.jsonl")], "--report_glob"),
        (["feedback", "--report_glob", str(tmp_path / "verdicts.jsonl"),
          "--verdict_glob", str(tmp_path / "centre" / "*.jsonl")], "--verdict_glob"),
    ]
    for argv, flag in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        pattern = argv[argv.index(flag) + 1]
        assert err == f"error: {flag} {pattern!r} matches no file", err


def test_event_lines_longer_and_shorter_than_the_read_buffer(tmp_path):
    from apache_beam.testing.test_pipeline import TestPipeline
    from apache_beam.testing.util import assert_that, equal_to

    size = sources.EVENT_READ_BUFFER
    lines = [b"x" * n for n in (1, 10, size - 1, size, size + 1, 2 * size + 7, 600_000)] + [b"%d" % i for i in range(500)]
    (tmp_path / "a.jsonl").write_bytes(b"\n".join(lines[:7]) + b"\n")
    (tmp_path / "b.jsonl").write_bytes(b"\r\n".join(lines[7:]))  # CRLF, no newline at the end
    with TestPipeline(runner=FN_API_RUNNER) as p:
        got = p | sources.ReadEventLines(str(tmp_path / "*.jsonl"), coder=beam.coders.BytesCoder())
        assert_that(got | beam.Map(lambda line: (len(line), line[:3])), equal_to([(len(x), x[:3]) for x in lines]))
