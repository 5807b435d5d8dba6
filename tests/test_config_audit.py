"""Misconfigurations that used to be accepted silently (csadetect/config/): NaN and infinity, a YAML key
given twice, an empty --config path, batch sizes the wrong way round, no report format, an order's
date given as a number, a login back-off above its cap, an empty provider id, and in runner profiles
an option given twice, a ``$VAR`` that is never read, and a ``profile:`` path or remote config read
from the wrong place. Each now fails with one ConfigError line naming the setting."""
from __future__ import annotations

import pytest

from csadetect.cli.main import main
from csadetect.config import profiles
from csadetect.config.profiles import load_profile, profile_name
from csadetect.config.settings import ConfigError, load_settings


def one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize("overrides, where", [
    ({"match": {"thresholds": {"by_source": {"partner": {"pdq": float("nan")}}}}},
     "match.thresholds.by_source.partner.pdq"),
    ({"limits": {"video_budget_seconds": float("inf")}}, "limits.video_budget_seconds"),
    ({"limits": {"max_video_seconds": "inf"}}, "limits.max_video_seconds"),
    ({"content": {"read_timeout_seconds": float("inf")}}, "content.read_timeout_seconds"),
    ({"match": {"embedding_query_turn_gate": float("inf")}}, "match.embedding_query_turn_gate"),
])
def test_nan_and_infinity_are_refused(overrides, where):
    """A NaN distance passes no comparison (the threshold filtered nothing); .inf turned a guard off."""
    with pytest.raises(ConfigError) as err:
        load_settings(overrides=overrides)
    assert one_line(err).startswith(f"invalid config at {where}: ") and "finite number" in str(err.value)


def test_a_key_given_twice_is_refused(tmp_path):
    """PyYAML kept the last `match:`, so the first one's pdq_threshold went back to the default."""
    path = tmp_path / "c.yaml"
    path.write_text("match:\n  pdq_threshold: 20\nmatch:\n  quality_gate: 70\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_settings(str(path))
    assert one_line(err) == f"config file {path} is not valid YAML: key 'match' given twice in one mapping (line 3)"
    path.write_text("match:\n  pdq_threshold: 20\n  pdq_threshold: 10\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="key 'pdq_threshold' given twice"):
        load_settings(str(path))
    # a << merge may still be overridden
    path.write_text("""orders:
  - &o {order_id: A, authority: x, detection_types: [known], services: [photos],
        start: 2026-01-01T00:00:00Z, end: 2030-01-01T00:00:00Z}
  - <<: *o
    order_id: B
""", encoding="utf-8")
    assert [o.order_id for o in load_settings(str(path)).orders] == ["A", "B"]


def test_a_key_given_twice_in_a_profile_is_refused(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("pipeline_options:\n  runner: DataflowRunner\n  runner: FlinkRunner\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_profile(str(path))
    assert "key 'runner' given twice" in one_line(err)


def test_an_option_given_twice_with_and_without_dashes_is_refused(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("pipeline_options:\n  runner: DataflowRunner\n  --runner: FlinkRunner\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_profile(str(path))
    assert one_line(err) == "profile p: pipeline option 'runner' given twice"


def test_an_empty_config_path_is_refused(capsys):
    """`--config=` (an unset variable in a script) used to run on the defaults without a word."""
    with pytest.raises(ConfigError) as err:
        load_settings("")
    assert one_line(err).startswith("the config file path is empty")
    assert main(["--config=", "review", "list"]) != 0
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: the config file path is empty: give --config a YAML file or leave it out"]


def test_batch_sizes_the_wrong_way_round_are_refused():
    """Beam's BatchElements refused them only while the graph was built, with a traceback."""
    with pytest.raises(ConfigError) as err:
        load_settings(overrides={"embedding": {"batching": {"min_batch_size": 100, "max_batch_size": 10}}})
    assert one_line(err).startswith("invalid config at embedding.batching.max_batch_size: ")
    with pytest.raises(ConfigError, match="new_material.batching.max_batch_size"):
        load_settings(overrides={"new_material": {"batching": {"min_batch_size": 8, "max_batch_size": 4}}})
    s = load_settings(overrides={"embedding": {"batching": {"min_batch_size": 8, "max_batch_size": 8}}})
    assert s.embedding.batching.max_batch_size == 8


def test_no_report_format_or_a_repeated_one_is_refused():
    """`formats: []` with report_dir set wrote reports nowhere; a repeated one broke the graph."""
    with pytest.raises(ConfigError) as err:
        load_settings(overrides={"sinks": {"formats": []}})
    assert one_line(err).startswith("invalid config at sinks.formats: ") and "at least one" in str(err.value)
    with pytest.raises(ConfigError, match="sinks.formats: .*listed twice"):
        load_settings(overrides={"sinks": {"formats": ["jsonl", "jsonl"]}})
    assert load_settings(overrides={"sinks": {"formats": ["jsonl"]}}).sinks.formats == ("jsonl",)


def _order(start, end="2030-01-01T00:00:00Z"):
    return {"orders": [{"order_id": "X", "authority": "a", "detection_types": ["known"], "services": ["photos"],
                        "start": start, "end": end}]}


@pytest.mark.parametrize("start", [2026, "2026", 1767225600, 0.5])
def test_an_order_date_given_as_a_number_is_refused(start):
    """`start: 2026` was read as 2026 seconds after 1970: an order active since 1970."""
    with pytest.raises(ConfigError) as err:
        load_settings(overrides=_order(start))
    assert one_line(err).startswith("invalid config at orders.0.start: ") and "not a number" in str(err.value)


def test_an_order_date_as_a_date_still_works():
    import datetime as dt
    s = load_settings(overrides=_order(dt.date(2026, 1, 1), "2027-01-01"))
    assert s.orders[0].start.year == 2026 and s.orders[0].end.year == 2027


def test_a_login_backoff_above_the_lockout_is_refused():
    """The first wait above the longest one was cut to it without a word."""
    with pytest.raises(ConfigError) as err:
        load_settings(overrides={"console": {"login_backoff_seconds": 600, "login_lockout_seconds": 300}})
    assert one_line(err).startswith("invalid config at console.login_lockout_seconds: ")
    load_settings(overrides={"console": {"login_backoff_seconds": 300, "login_lockout_seconds": 300}})


def test_an_empty_provider_id_is_refused():
    with pytest.raises(ConfigError, match="provider.provider_id"):
        load_settings(overrides={"provider": {"provider_id": ""}})


@pytest.mark.parametrize("value, bad", [
    ("gs://$CSADETECT_BUCKET/reports", "$CSADETECT_BUCKET"),
    ("gs://${CSADETECT_BUCKET/reports", "${"),
    ("gs://${1}/reports", "${"),
])
def test_a_placeholder_that_is_never_read_is_refused(tmp_path, value, bad):
    """It was passed on as literal text: reports went to a bucket called `$CSADETECT_BUCKET`."""
    path = tmp_path / "p.yaml"
    path.write_text(f"pipeline_options: {{}}\nsettings:\n  sinks:\n    report_dir: '{value}'\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_profile(str(path))
    assert one_line(err).startswith(f"profile p: settings.sinks.report_dir has {bad!r}")
    path.write_text(f"pipeline_options:\n  project: '{value}'\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="pipeline_options.project has"):
        load_profile(str(path))
    path.write_text("pipeline_options:\n  project: '${P:-a}-${Q}'\n", encoding="utf-8")
    assert load_profile(str(path)).pipeline_options["project"] == "${P:-a}-${Q}"


def test_a_profile_path_in_a_config_is_relative_to_that_file(tmp_path, monkeypatch):
    """It fell back to the working directory when the file was not beside the config, without a word."""
    (tmp_path / "conf").mkdir()
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "prod.yaml").write_text("pipeline_options: {}\n", encoding="utf-8")
    config = tmp_path / "conf" / "c.yaml"
    config.write_text("profile: prod.yaml\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path / "work")
    name, _ = profile_name(["--config", str(config)])
    assert name == str(tmp_path / "conf" / "prod.yaml")
    with pytest.raises(ConfigError) as err:
        load_profile(name)
    assert one_line(err) == f"profile file not found: {tmp_path / 'conf' / 'prod.yaml'}"


def test_the_profile_key_of_a_remote_config_is_read(monkeypatch):
    """A gs:// config's `profile:` key was skipped (only local files were read): the run had no profile."""
    texts = {"gs://b/prod.yaml": "profile: dataflow\n", "gs://b/rel.yaml": "profile: p/mine.yaml\n"}
    monkeypatch.setattr(profiles, "_read_text", lambda path: texts[path])
    assert profile_name(["--config", "gs://b/prod.yaml"])[0] == "dataflow"
    with pytest.raises(ConfigError) as err:
        profile_name(["--config=gs://b/rel.yaml"])
    assert "must be an absolute local path" in one_line(err)


@pytest.mark.parametrize("argv", [["--config=", "review", "list"], ["review", "list", "--config="],
                                  ["--config", " ", "review", "list"]])
def test_an_empty_config_path_on_the_command_line_is_one_line(argv, capsys):
    """`--config=` (an unset shell variable) in either place: one line and exit 2, not a run on the defaults."""
    from csadetect.cli.main import main

    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: the config file path is empty: give --config a YAML file or leave it out"]


@pytest.mark.parametrize("section,key,value,kind", [
    ("sinks", "report_topic", "reports", "topics"),
    ("sinks", "dead_letter_topic", "projects/p/subscriptions/d", "topics"),
    ("review", "verdict_subscription", "projects/p/topics/v", "subscriptions"),
    ("feedback", "subscription", "verdicts", "subscriptions"),
    ("feedback", "notifications_topic", "projects//topics/n", "topics"),
    ("console", "feedback_topic", "projects/p/topics/v w", "topics"),
])
def test_a_malformed_pubsub_path_in_the_config_is_one_line(section, key, value, kind):
    """Beam would refuse it only while the graph is built, after the models and indicators loaded
    (on Dataflow: in the launcher); the command line's own paths are checked by pipelines.options."""
    with pytest.raises(ConfigError) as err:
        load_settings(overrides={section: {key: value}})
    assert str(err.value) == f"invalid config at {section}.{key}: must look like projects/P/{kind}/NAME"


def test_well_formed_or_empty_pubsub_paths_pass():
    settings = load_settings(overrides={"sinks": {"report_topic": "projects/p-1/topics/reports", "review_topic": ""},
                                        "feedback": {"subscription": "projects/p/subscriptions/v"}})
    assert settings.sinks.report_topic == "projects/p-1/topics/reports" and settings.sinks.review_topic == ""
