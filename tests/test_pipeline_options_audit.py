"""Misconfigured command lines of ``csadetect run`` and ``csadetect feedback`` stop before any work
with one ``error:`` line and exit code 2 (csadetect/pipelines/options.py, sources.py): a value
argparse refuses, seconds that are negative, zero or not finite, an option only a streaming run
reads given to a batch run, a malformed Pub/Sub path or Kafka address, a missing expansion-service
jar, a glob naming a directory, streaming on the FnApiRunner, and an output directory that is a
file. Only the pre-flight checks run here: no graph, no models, no indicator database."""
from __future__ import annotations

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from csadetect.config.settings import ConfigError
from csadetect.pipelines import detect, feedback
from csadetect.pipelines.options import DetectOptions, check_values_of
from csadetect.pipelines.sources import Source


@pytest.fixture
def files(tmp_path):
    (tmp_path / "events.jsonl").write_text("{}\n")
    (tmp_path / "verdicts.jsonl").write_text("")
    (tmp_path / "reports.jsonl").write_text("")
    (tmp_path / "a-file").write_text("x")
    return tmp_path


def _run(files):
    return ["--input_glob", str(files / "events.jsonl"), "--report_dir", str(files / "out" / "r"),
            "--dead_letter_dir", str(files / "out" / "d")]


def _feedback(files):
    return ["--report_glob", str(files / "reports.jsonl"), "--verdict_glob", str(files / "verdicts.jsonl"),
            "--out_dir", str(files / "out" / "f"), "--notifications_dir", str(files / "out" / "n")]


def _one_line(capsys, main, argv) -> str:
    assert main(argv) == 2, argv
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err.strip()


def test_a_value_argparse_refuses_is_one_line_not_beams_usage_block(files, capsys):
    """Before: Beam's argparse printed its usage block (20 lines) and exited by itself."""
    err = _one_line(capsys, detect.main, _run(files) + ["--window_seconds", "abc"])
    assert err == "error: csadetect run: argument --window_seconds: invalid int value: 'abc'; see csadetect run --help"
    err = _one_line(capsys, feedback.main, _feedback(files) + ["--min_verdicts", "many"])
    assert err == ("error: csadetect feedback: argument --min_verdicts: invalid int value: 'many'; "
                   "see csadetect feedback --help")


@pytest.mark.parametrize("pipeline, argv, message", [
    ("run", ["--poll_seconds", "-1"], "--poll_seconds must be more than 0 seconds, not -1.0"),
    ("run", ["--poll_seconds", "0"], "--poll_seconds must be more than 0 seconds, not 0.0"),  # was: ignored
    ("run", ["--poll_seconds", "nan"], "--poll_seconds must be more than 0 seconds, not nan"),
    ("run", ["--streaming", "--window_seconds", "0"], "--window_seconds must be more than 0 seconds, not 0"),
    ("run", ["--streaming", "--window_seconds", "-5"], "--window_seconds must be more than 0 seconds, not -5"),
    ("run", ["--progress_seconds", "-3"], "--progress_seconds must be 0 or more seconds, not -3.0"),
    ("feedback", ["--streaming", "--unknown_grace_seconds", "0"], "--unknown_grace_seconds must be more than 0"),
    ("feedback", ["--streaming", "--unknown_grace_seconds", "inf"], "--unknown_grace_seconds must be more than 0"),
    ("feedback", ["--streaming", "--precision_every_seconds", "-1"], "--precision_every_seconds must be 0 or more"),
    ("feedback", ["--streaming", "--precision_every_seconds", "nan"], "--precision_every_seconds must be 0 or more"),
    ("feedback", ["--streaming", "--window_seconds", "-1"], "--window_seconds must be more than 0 seconds"),
])
def test_seconds_that_are_negative_zero_or_not_finite_are_refused(files, capsys, pipeline, argv, message):
    main, base = (detect.main, _run(files)) if pipeline == "run" else (feedback.main, _feedback(files))
    assert message in _one_line(capsys, main, base + argv)


def test_zero_where_zero_means_something_still_passes():
    options = PipelineOptions(["--streaming", "--precision_every_seconds", "0", "--progress_seconds", "0",
                               "--window_seconds", "1", "--unknown_grace_seconds", "0.5"])
    check_values_of(options, ["--streaming", "--precision_every_seconds", "0", "--window_seconds", "1"])


@pytest.mark.parametrize("pipeline, argv, message", [
    ("run", ["--window_seconds", "30"], "--window_seconds only apply with --streaming (a batch run would ignore it)"),
    ("feedback", ["--precision_every_seconds", "5"], "--precision_every_seconds only apply with --streaming"),
    ("feedback", ["--unknown_grace_seconds=5", "--window-seconds", "2"],
     "--window_seconds, --unknown_grace_seconds only apply with --streaming (a batch run would ignore them)"),
])
def test_a_streaming_only_option_in_a_batch_run_is_refused(files, capsys, pipeline, argv, message):
    main, base = (detect.main, _run(files)) if pipeline == "run" else (feedback.main, _feedback(files))
    assert message in _one_line(capsys, main, base + argv)


def test_streaming_only_options_set_by_a_profile_are_left_alone():
    """Only what the command line gives is refused: a profile's window_seconds is not the user's."""
    check_values_of(PipelineOptions(["--window_seconds", "30"]), given=["--input_glob", "x"])


@pytest.mark.parametrize("pipeline, argv, message", [
    ("run", ["--report_topic", "reports"], "--report_topic must look like projects/P/topics/T, not 'reports'"),
    ("run", ["--dead_letter_topic", "projects/p/topics/dead"], "--dead_letter_topic 'projects/p/topics/dead': "
                                                               "Invalid PubSub project name: 'p'."),
    ("run", ["--streaming", "--review_dir", "r", "--verdict_subscription", "projects/example-project/topics/v"],
     "--verdict_subscription must look like projects/P/subscriptions/S"),
    ("feedback", ["--streaming", "--report_glob=", "--report_subscription", "bogus"],
     "--report_subscription must look like projects/P/subscriptions/S, not 'bogus'"),
    ("feedback", ["--notifications_topic", "projects/example-project/subscriptions/n"],
     "--notifications_topic must look like projects/P/topics/T"),
])
def test_a_malformed_pubsub_path_is_one_line_before_the_graph(files, capsys, pipeline, argv, message):
    """Before: accepted, then a ValueError traceback from Beam while the graph was built (after the
    models and the indicator database were loaded), or a credentials error that hid the typo."""
    main, base = (detect.main, _run(files)) if pipeline == "run" else (feedback.main, _feedback(files))
    assert message in _one_line(capsys, main, base + argv)


def test_an_empty_pubsub_path_switches_the_output_off_and_passes():
    check_values_of(PipelineOptions(["--report_topic=", "--verdict_subscription="]))


def _kafka(*extra) -> Source:
    argv = ["--read_via", "kafka", "--kafka_topic", "uploads", *extra]
    return Source.from_options(PipelineOptions(argv).view_as(DetectOptions))


@pytest.mark.parametrize("servers", ["nonsense", "b:99999", "b:", ":9092", "b:9092,,c", " , ", "b 9092"])
def test_a_malformed_kafka_bootstrap_is_refused(servers):
    with pytest.raises(ConfigError) as exc:
        _kafka("--kafka_bootstrap_servers", servers).validate()
    assert str(exc.value).startswith("--kafka_bootstrap_servers takes host:port[,host:port...], not ")


@pytest.mark.parametrize("servers", ["b:9092", "b1:9092, b2:9092", "[::1]:9092", "SASL_SSL://b.example:9093",
                                     "10.0.0.1:9092,"])
def test_well_formed_kafka_bootstraps_pass(servers):
    assert _kafka("--kafka_bootstrap_servers", servers).validate().kafka_bootstrap_servers == servers


def test_an_expansion_service_is_an_address_or_a_jar():
    for good in ("localhost:8097", "[::1]:8097", "/opt/expansion-service.jar", "https://repo.example/x.jar"):
        _kafka("--kafka_bootstrap_servers", "b:9092", "--expansion_service", good).validate()
    for bad in ("foo", "localhost", "localhost:0", "localhost:port"):
        with pytest.raises(ConfigError) as exc:
            _kafka("--kafka_bootstrap_servers", "b:9092", "--expansion_service", bad).validate()
        assert str(exc.value) == f"--expansion_service takes host:port or an expansion-service .jar, not {bad!r}"


def test_a_local_expansion_service_jar_that_is_not_there_is_one_line(files, capsys):
    """Before: FileNotFoundError traceback when Beam started the jar, after the models loaded."""
    jar = str(files / "none.jar")
    argv = ["--read_via", "kafka", "--kafka_bootstrap_servers", "b:9092", "--kafka_topic", "t", "--streaming",
            "--expansion_service", jar, "--report_dir", str(files / "r"), "--dead_letter_dir", str(files / "d")]
    assert _one_line(capsys, detect.main, argv) == f"error: --expansion_service {jar!r}: no such jar file"


def test_a_glob_naming_a_directory_is_one_line(files, capsys):
    """Before: `run --input_glob DIR` started the run and failed with an IsADirectoryError traceback."""
    err = _one_line(capsys, detect.main, ["--input_glob", str(files)])
    assert err == (f"error: --input_glob {str(files)!r} is a directory: give a pattern of its files, "
                   f"e.g. {str(files / '*')!r}")
    argv = _feedback(files)
    argv[argv.index("--verdict_glob") + 1] = str(files)
    assert f"error: --verdict_glob {str(files)!r} is a directory" in _one_line(capsys, feedback.main, argv)


def test_streaming_on_the_fnapi_runner_is_refused(files, capsys):
    """Before: it ran, and failed at the first file window with an OverflowError traceback."""
    err = _one_line(capsys, detect.main, _run(files) + ["--streaming", "--runner", "FnApiRunner"])
    assert "--streaming runs on the DirectRunner on this machine" in err


@pytest.mark.parametrize("pipeline, flag, sub", [("run", "--report_dir", ""), ("run", "--dead_letter_dir", "dead"),
                                                 ("feedback", "--out_dir", ""), ("feedback", "--notifications_dir", "n")])
def test_an_output_directory_that_is_a_file_stops_before_the_run(files, capsys, pipeline, flag, sub):
    """Before: a batch run wrote everything else and failed at its end with a NotADirectoryError
    traceback (or, with nothing to write there, ran and exited 0)."""
    main, argv = (detect.main, _run(files)) if pipeline == "run" else (feedback.main, _feedback(files))
    target = files / "a-file" / sub if sub else files / "a-file"
    argv = argv + [flag, str(target)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    what = "is a file" if not sub else f"lies under {files / 'a-file'}, a file"
    assert errors == [f"error: output directory {target} {what}, not a directory"]
    assert "run id" not in err and "indicators: snapshot version" not in err


def test_verdicts_without_a_review_store_stop_before_the_pubsub_check(files, capsys, monkeypatch):
    """Before: refused only in build_pipeline, after the indicator database and the models loaded
    (and, locally, hidden behind the Pub/Sub pre-flight, which needs credentials or the emulator)."""
    monkeypatch.setattr(detect, "check_pubsub", lambda *a, **k: pytest.fail("the Pub/Sub check came first"))
    err = _one_line(capsys, detect.main, _run(files) + ["--streaming", "--verdict_subscription",
                                                         "projects/my-project/subscriptions/v", "--review_dir="])
    assert err == "error: review.verdict_subscription needs sinks.review_dir (the review store)"
