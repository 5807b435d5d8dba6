"""Runner profiles (csadetect/config/direct.yaml, dataflow.yaml, flink.yaml; csadetect/config/profiles.py,
csadetect/pipelines/options.py): loading, applying them under the command line, validation before
the graph, and the masked effective options. The Dataflow translation of the full graphs is in test_dataflow_translation.py."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

import csadetect.pipelines.detect
import csadetect.pipelines.feedback
from csadetect.config.profiles import (
    DETECT_KEYS,
    FN_API_RUNNER,
    MASK,
    available_profiles,
    format_effective,
    load_profile,
    mask,
    profile_settings,
    split_profile_arg,
)
from csadetect.config.settings import ConfigError, load_settings
from csadetect.pipelines.options import apply_profile, check_options, effective_options, local_storage, resolve_profile

REPO = Path(__file__).resolve().parent.parent
FULL_ENV = {
    "GOOGLE_CLOUD_PROJECT": "example-project", "DATAFLOW_REGION": "us-central1",
    "DATAFLOW_TEMP_LOCATION": "gs://example-bucket/tmp", "CSADETECT_BUCKET": "example-bucket",
    "FLINK_MASTER": "flink-jobmanager:8081", "CSADETECT_WORKER_IMAGE": "registry.example/csadetect-worker:1",
}


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_shipped_profiles_load_and_apply(monkeypatch):
    monkeypatch.chdir(REPO)  # the profiles' setup_file is ./setup.py
    assert available_profiles() == ["dataflow", "direct", "flink"]
    for name in available_profiles():
        profile = load_profile(name)
        assert profile.description and profile.path.endswith(f"{name}.yaml")
        argv = apply_profile(["--input_glob=x"], profile, env=FULL_ENV)  # every option name is known to Beam
        check_options(PipelineOptions(argv), profile)
        load_settings(overrides=profile.expanded_settings(FULL_ENV))  # the settings overrides validate
    dataflow = apply_profile([], load_profile("dataflow"), env=FULL_ENV)
    assert {"--runner=DataflowRunner", "--streaming", "--project=example-project", "--region=us-central1",
            "--temp_location=gs://example-bucket/tmp", "--labels=app=csadetect"} <= set(dataflow)
    flink = apply_profile([], load_profile("flink"), env=FULL_ENV)
    assert {"--runner=FlinkRunner", "--flink_master=flink-jobmanager:8081", "--environment_type=DOCKER",
            "--parallelism=4", "--read_via=xlang_pubsub", "--checkpointing_interval=60000",
            "--finish_bundle_before_checkpointing"} <= set(flink)
    direct = apply_profile([], load_profile("direct"), env={})
    assert direct == ["--direct_running_mode=multi_processing", "--direct_num_workers=0"]  # runner stays pinned


def test_unknown_profile_is_one_line_listing_the_available_ones(capsys):
    with pytest.raises(ConfigError) as err:
        load_profile("dataflw")
    assert "unknown profile 'dataflw'" in str(err.value) and "dataflow, direct, flink" in str(err.value)
    assert "\n" not in str(err.value)
    assert csadetect.pipelines.detect.main(["--profile", "dataflw", "--input_glob", "x"]) == 2
    assert csadetect.pipelines.feedback.main(["--profile=nope", "--report_glob=x", "--verdict_glob=y"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: unknown profile 'nope': available profiles are dataflow, direct, flink")


def test_profile_from_a_path_command_line_wins_and_env_expands(tmp_path):
    path = write(tmp_path / "mine.yaml", """
description: a test profile
pipeline_options:
  runner: DataflowRunner
  streaming: true
  project: ${TEST_PROJECT}
  region: ${TEST_REGION:-europe-west4}
  temp_location: gs://${TEST_BUCKET}/tmp
  max_num_workers: 3
  experiments: [use_runner_v2, "shuffle_mode=service"]
  transform_name_mapping: {OldStep: NewStep}
  use_public_ips: false
required: [project]
settings:
  sinks: {report_dir: "gs://${TEST_BUCKET}/reports", review_topic: projects/p/topics/review}
""")
    profile = load_profile(path)
    assert profile.name == "mine" and profile.required == ("project",)
    env = {"TEST_PROJECT": "proj-from-env"}
    argv = apply_profile(["--profile", path, "--max_num_workers=7", "--project", "proj-from-cli"], profile, env=env)
    assert "--profile" not in " ".join(argv)
    assert argv[-3:] == ["--max_num_workers=7", "--project", "proj-from-cli"]  # the command line, untouched
    assert "--max_num_workers=3" not in argv and not any(a.startswith("--project=") for a in argv)  # it wins
    assert "--region=europe-west4" in argv  # ${VAR:-default}
    assert not any(a.startswith("--temp_location") for a in argv)  # $TEST_BUCKET unset: left unset
    assert argv.count("--experiments=use_runner_v2") == 1 and "--experiments=shuffle_mode=service" in argv
    assert '--transform_name_mapping={"OldStep": "NewStep"}' in argv
    assert "--no_use_public_ips" in argv  # a false flag becomes its negation
    options = PipelineOptions(argv).get_all_options()
    assert options["project"] == "proj-from-cli" and options["max_num_workers"] == 7
    assert options["transform_name_mapping"] == {"OldStep": "NewStep"} and options["use_public_ips"] is False
    assert "use_runner_v2" in options["experiments"] and options["streaming"] is True
    # settings: ${VAR} expands; a key whose variable is unset is dropped (the config's value stays)
    assert profile.expanded_settings({}) == {"sinks": {"review_topic": "projects/p/topics/review"}}
    settings = profile_settings(None, load_profile(path))
    assert settings.sinks.review_topic == "projects/p/topics/review" and settings.sinks.report_dir == "out/reports"
    with pytest.raises(ConfigError, match="runner DataflowRunner needs --temp_location|mine profile needs --temp_location"):
        check_options(PipelineOptions(argv), profile)


def test_profile_errors_are_one_line(tmp_path):
    cases = {
        "pipeline_options: {projct: x}": "unknown pipeline option 'projct' (did you mean 'project'?)",
        "pipeline_options: [runner]": "pipeline_options must be a mapping",
        "pipelin_options: {}": "unknown key 'pipelin_options'",
        "pipeline_options: {streaming: maybe}": "streaming is a flag, give true or false",
        "pipeline_options: {project: [a, b]}": "project takes one value, not a list",
        "pipeline_options: {}\nrequired: [regoin]": "unknown pipeline option 'regoin'",
        "pipeline_options: {}\nsettings: {sinks: {report_dirr: x}}": "profile bad: invalid config at sinks.report_dirr",
        "pipeline_options: {runner: [": "not valid YAML",
    }
    for text, message in cases.items():
        path = write(tmp_path / "bad.yaml", text)
        with pytest.raises(ConfigError) as err:
            profile = load_profile(path)
            apply_profile([], profile, env={})
            profile_settings(None, profile)
        assert message in str(err.value), (text, str(err.value))
        assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="profile file not found"):
        load_profile(str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match="--profile needs"):
        split_profile_arg(["--profile"])


def test_a_profile_that_is_a_directory_or_not_text_is_one_line(tmp_path):
    """Before: IsADirectoryError / UnicodeDecodeError tracebacks."""
    folder = tmp_path / "profile.yaml"
    folder.mkdir()
    with pytest.raises(ConfigError, match=r"^cannot read profile .*profile.yaml: Is a directory$"):
        load_profile(str(folder))
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xc7\xff\x00 not text")
    with pytest.raises(ConfigError, match=r"^profile .*binary.yaml is not UTF-8 text \(YAML\)$"):
        load_profile(str(binary))


def test_a_portable_runner_passes_its_job_server_options_through():
    """Flink's job server defines options the Python SDK does not (checkpointing_interval): they
    pass through for a portable runner; for any other runner an unknown name is a typo."""
    flink = load_profile("flink")
    argv = apply_profile(["--checkpointing_interval=5000"], flink, env=FULL_ENV)
    assert "--checkpointing_interval=60000" not in argv and "--checkpointing_interval=5000" in argv


def test_no_profile_changes_nothing(tmp_path):
    argv = ["--input_glob", "events.jsonl", "--runner", "FnApiRunner"]
    assert resolve_profile(argv) == (argv, None)
    # a `profile:` key in the --config file selects one (load_settings ignores the key)
    config = write(tmp_path / "c.yaml", "profile: direct\nprovider: {provider_id: p1}\n")
    argv2, profile = resolve_profile(["--config", config, "--input_glob", "x"])
    assert profile.name == "direct" and argv2[:2] == ["--direct_running_mode=multi_processing", "--direct_num_workers=0"]
    assert load_settings(config).provider.provider_id == "p1"
    # --profile on the command line wins over the config's key
    assert resolve_profile(["--config", config, "--profile", "dataflow"])[1].name == "dataflow"


def test_required_options_are_checked_before_the_graph(monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    for name in ("GOOGLE_CLOUD_PROJECT", "DATAFLOW_REGION", "DATAFLOW_TEMP_LOCATION"):
        monkeypatch.delenv(name, raising=False)
    argv, profile = resolve_profile(["--profile", "dataflow", "--region", "us-central1"])
    with pytest.raises(ConfigError) as err:
        check_options(PipelineOptions(argv), profile)
    assert str(err.value).startswith("the dataflow profile needs --project, --temp_location: give them on the command line")
    assert "$GOOGLE_CLOUD_PROJECT" in str(err.value) and "--region" not in str(err.value).split(":")[0]
    # the command line completes it
    check_options(PipelineOptions(argv + ["--project=p-123456", "--temp_location=gs://b-123/tmp"]), profile)
    # a runner's own requirements hold without a profile; temp_location must be on Cloud Storage
    with pytest.raises(ConfigError, match="runner DataflowRunner needs --region"):
        check_options(PipelineOptions(["--runner=DataflowRunner", "--project=p", "--temp_location=gs://b/t"]))
    with pytest.raises(ConfigError, match="--temp_location on Cloud Storage"):
        check_options(PipelineOptions(["--runner=DataflowRunner", "--project=p", "--region=r", "--temp_location=/tmp"]))
    with pytest.raises(ConfigError, match="--setup_file nope.py not found"):
        check_options(PipelineOptions(["--setup_file=nope.py"]))
    check_options(PipelineOptions(["--runner=FnApiRunner"]))  # local runners need nothing
    # flink: flink_master has a default in Beam ([auto]); the profile requires it to be given
    monkeypatch.delenv("FLINK_MASTER", raising=False)
    argv, profile = resolve_profile(["--profile", "flink", "--environment_config=img:1"])
    with pytest.raises(ConfigError, match=r"the flink profile needs --flink_master\b.*\$FLINK_MASTER"):
        check_options(PipelineOptions(argv), profile)
    # through the entry point: one line, exit code 2
    assert csadetect.pipelines.detect.main(["--profile", "dataflow", "--input_subscription", "projects/p/subscriptions/s"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: the dataflow profile needs --project")


@pytest.mark.parametrize("name,value,shown", [
    ("signing_key", "/keys/provider/private.pem", MASK),
    ("evidence_key", "gs://b/keys/evidence_private.pem", MASK),
    ("dataflow_kms_key", "projects/p/locations/l/keyRings/r/cryptoKeys/k", MASK),
    ("service_account_key_file", "/secrets/sa.json", MASK),
    ("db_password", "hunter2", MASK),
    ("api_token", "abc", MASK),
    ("client_secret", "abc", MASK),
    ("GOOGLE_APPLICATION_CREDENTIALS", "/x.json", MASK),
    ("public_key", "/keys/public.pem", MASK),  # the rule is by name: key paths are never shown
    ("flink_master", "https://admin:s3cret@flink:8081/x", "https://admin:****@flink:8081/x"),
    ("environment_config", "redis://:pw@host:6379/0", "redis://:****@host:6379/0"),
    ("experiments", ["use_runner_v2", "token=abc", "max_workers=3"], ["use_runner_v2", "token=****", "max_workers=3"]),
    ("labels", "team=x,api_key=zzz", "team=x,api_key=****"),
    ("project", "example-project", "example-project"),
    ("input_subscription", "projects/p/subscriptions/s", "projects/p/subscriptions/s"),
    ("max_num_workers", 10, 10),
    ("region", None, None),
])
def test_mask(name, value, shown):
    assert mask(name, value) == shown


def test_effective_options_block(tmp_path):
    options = PipelineOptions([
        "--runner=DataflowRunner", "--project=example-project", "--streaming",
        "--signing_key=/very/secret/signing.pem", "--dataflow_kms_key=projects/p/cryptoKeys/very-secret",
        "--flink_master=http://u:very-secret@h:1", "--experiments=a,password=very-secret",
        "--input_subscription=projects/p/subscriptions/s",
    ])
    settings = load_settings(overrides={"reports": {"evidence_key": "/very/secret/evidence.pem"},
                                        "sinks": {"review_topic": "projects/p/topics/review"}})
    eff = effective_options(options, settings, DETECT_KEYS, load_profile("dataflow"))
    assert eff["runner"] == "DataflowRunner" and eff["profile"] == "dataflow"
    po = eff["pipeline_options"]
    assert po["project"] == "example-project" and po["streaming"] is True
    assert po["signing_key"] == MASK and po["dataflow_kms_key"] == MASK
    assert po["input_subscription"] == "projects/p/subscriptions/s" and "runner" not in po
    assert "direct_num_workers" not in po  # only options that are set
    cfg = eff["config"]
    assert cfg["reports.evidence_key"] == MASK and cfg["sinks.review_topic"] == "projects/p/topics/review"
    assert cfg["grooming.enabled"] is True and cfg["orders"] == ["DEMO-ORDER-2026-1"]
    text = format_effective(eff, "csadetect run")
    assert text.startswith("csadetect run: effective options (profile dataflow)\n  runner: DataflowRunner\n")
    assert "very-secret" not in text and "very/secret" not in text and "very-secret" not in json.dumps(eff)
    assert "    --signing_key=****" in text and "    sinks.review_topic: projects/p/topics/review" in text


def test_local_paths_are_flagged_on_dataflow():
    settings = load_settings(overrides={"sinks": {"report_dir": "gs://b/reports"}})
    dataflow = PipelineOptions(["--runner=DataflowRunner"])
    flagged = local_storage(dataflow, settings)
    assert "indicators.path=.demo/indicators" in flagged and not any("report_dir" in f for f in flagged)
    assert local_storage(PipelineOptions(["--runner=FnApiRunner"]), settings) == []


def test_direct_profile_runs_the_feedback_pipeline_locally(tmp_path, capfd):
    """--profile direct on a batch run: the runner stays the FnApiRunner (pinned, no Prism), with
    the profile's worker processes; the options block names the profile."""
    from csadetect.pipelines.feedback import run

    reports, verdicts = tmp_path / "reports.jsonl", tmp_path / "verdicts.jsonl"
    reports.write_text("")
    verdicts.write_text("")
    outcome = run(["--profile", "direct", "--direct_num_workers=2", "--report_glob", str(reports),
                   "--verdict_glob", str(verdicts), "--out_dir", str(tmp_path / "fb"),
                   "--notifications_dir", str(tmp_path / "n"), "--now", "2026-06-01T00:00:00Z"])
    summary = outcome.summary()
    assert summary["reports"] == 0 and summary["verdicts"] == 0
    err = capfd.readouterr().err
    assert "csadetect feedback: effective options (profile direct)" in err
    block = err.split("effective options (profile direct)", 1)[1]
    assert f"  runner: {FN_API_RUNNER}\n" in block and "--direct_running_mode=multi_processing" in block
    assert "--direct_num_workers=2" in block  # the command line won over the profile's 0


@pytest.mark.parametrize("flag,waits", [([], True), (["--no_wait_until_finish"], False)])
def test_no_wait_until_finish_is_honoured(tmp_path, monkeypatch, flag, waits):
    """A Flex Template launcher passes --no_wait_until_finish: run() then returns once the job is
    launched instead of waiting for a streaming job to end."""
    from unittest import mock

    import apache_beam as beam

    result = mock.MagicMock()
    monkeypatch.setattr(beam.Pipeline, "run", lambda self, *a, **k: result)
    for name in ("r.jsonl", "v.jsonl"):
        (tmp_path / name).write_text("")
    csadetect.pipelines.feedback.run(["--report_glob", str(tmp_path / "r.jsonl"), "--verdict_glob", str(tmp_path / "v.jsonl"),
                            "--out_dir", str(tmp_path / "fb"), "--notifications_dir", str(tmp_path / "n"), *flag])
    assert result.wait_until_finish.called == waits


# -- the demo detection order is for local runs only ---------------------------------------------

TEST_ORDERS = REPO / "tests" / "data" / "test_orders.yaml"


def test_demo_order_only_on_this_machine():
    """`--profile dataflow` used to run real scanning under DEMO-ORDER-2026-1 (not a real order)."""
    from csadetect.config.profiles import check_demo_orders

    demo = load_settings()
    for runner, profile in (("FnApiRunner", None), ("DirectRunner", None), ("FnApiRunner", "direct"),
                            ("DirectRunner", "direct")):
        check_demo_orders(demo, runner, load_profile(profile) if profile else None)
    for runner, profile, where in (("DataflowRunner", "dataflow", "the dataflow profile"),
                                   ("FlinkRunner", "flink", "the flink profile"),
                                   ("FnApiRunner", "flink", "the flink profile"),  # a profile other than direct
                                   ("DataflowRunner", None, "runner DataflowRunner"),
                                   ("PortableRunner", None, "runner PortableRunner"),
                                   ("DataflowRunner", "direct", "runner DataflowRunner")):
        with pytest.raises(ConfigError) as err:
            check_demo_orders(demo, runner, load_profile(profile) if profile else None)
        assert str(err.value) == (f"{where} may not run under the demo detection order DEMO-ORDER-2026-1 (demo: true, "
                                  "not a real order): put your detection orders in a --config file (its `orders:` "
                                  "list replaces the demo's)")
    real = load_settings(str(TEST_ORDERS))
    check_demo_orders(real, "DataflowRunner", load_profile("dataflow"))
    check_demo_orders(real, "FlinkRunner", load_profile("flink"))


class GraphBuilt(Exception):
    pass


def test_run_refuses_the_demo_order_on_dataflow_before_the_graph(monkeypatch, capsys):
    def graph(*args, **kwargs):
        raise GraphBuilt()

    monkeypatch.setattr(csadetect.pipelines.detect, "build_pipeline", graph)
    for name, value in FULL_ENV.items():
        monkeypatch.setenv(name, value)
    argv = ["--profile", "dataflow", "--input_subscription", "projects/example-project/subscriptions/uploads", "--dry_run=True",
            "--no_auth", "--sdk_location=container", "--staging_location=gs://example-bucket/staging",
            f"--setup_file={REPO / 'setup.py'}", "--indicators=gs://example-bucket/indicators"]
    assert csadetect.pipelines.detect.main(argv) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("error: the dataflow profile may not run under the demo detection order")
    assert "effective options" not in err  # refused before anything is printed as accepted
    no_profile = ["--runner=DataflowRunner", "--project=example-project", "--region=europe-west1", "--temp_location=gs://b/t",
                  "--streaming"] + argv[2:]
    assert csadetect.pipelines.detect.main(no_profile) == 2
    assert "error: runner DataflowRunner may not run under the demo detection order" in capsys.readouterr().err
    # with the operator's orders the check passes and the graph is built
    with pytest.raises(GraphBuilt):
        csadetect.pipelines.detect.run(argv + [f"--config={TEST_ORDERS}"])


# -- Beam's local temp folder ---------------------------------------------------------------------

def _beam_temp(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("beam-pipeline-temp*"))


def test_a_graph_that_fails_to_build_leaves_no_beam_temp_folder(tmp_path, monkeypatch):
    """Beam makes ``beam-pipeline-temp*`` with the pipeline and removes it only at the end of its
    run(): a refusal while the graph was built left one per call (the test suite left ~100 a run)."""
    import tempfile

    made = []
    real = csadetect.pipelines.detect.build_pipeline

    def graph(pipeline, *args, **kwargs):
        made.append(pipeline.local_tempdir)
        real(pipeline, *args, **kwargs)  # the whole graph, then the refusal
        raise GraphBuilt()

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(csadetect.pipelines.detect, "build_pipeline", graph)
    for name, value in FULL_ENV.items():
        monkeypatch.setenv(name, value)
    argv = ["--profile", "dataflow", "--input_subscription", "projects/example-project/subscriptions/uploads",
            "--dry_run=True", "--no_auth", "--sdk_location=container", "--staging_location=gs://example-bucket/staging",
            f"--setup_file={REPO / 'setup.py'}", "--indicators=gs://example-bucket/indicators",
            f"--config={TEST_ORDERS}"]
    with pytest.raises(GraphBuilt):
        csadetect.pipelines.detect.run(argv)
    assert len(made) == 1 and Path(made[0]).parent == tmp_path  # the folder was made here, and is gone
    assert _beam_temp(tmp_path) == []


@pytest.mark.parametrize("runs", [True, False])
def test_feedback_leaves_no_beam_temp_folder_run_or_refused(tmp_path, monkeypatch, runs):
    """The same for ``csadetect feedback``: a refusal between the graph and the run (the Pub/Sub
    checks), and a run whose runner returns at once."""
    import tempfile
    from unittest import mock

    import apache_beam as beam

    temp = tmp_path / "temp"
    temp.mkdir()
    made = []

    def run(self, *a, **k):
        made.append(self.local_tempdir)
        if not runs:
            raise GraphBuilt()
        return mock.MagicMock()

    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.setattr(beam.Pipeline, "run", run)
    for name in ("r.jsonl", "v.jsonl"):
        (tmp_path / name).write_text("")
    argv = ["--report_glob", str(tmp_path / "r.jsonl"), "--verdict_glob", str(tmp_path / "v.jsonl"),
            "--out_dir", str(tmp_path / "fb"), "--notifications_dir", str(tmp_path / "n")]
    if runs:
        csadetect.pipelines.feedback.run(argv)
    else:
        with pytest.raises(GraphBuilt):
            csadetect.pipelines.feedback.run(argv)
    assert len(made) == 1 and Path(made[0]).parent == temp
    assert _beam_temp(temp) == []
