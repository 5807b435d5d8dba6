"""One command line (issue 13 §2 and §6): misspelt flags stop a command with one line and the
nearest flag (pipelines: csadetect/pipelines/options.py check_flags; other commands:
csadetect/cli/main.py), dashes and underscores are the same everywhere (csadetect/config/flags.py),
`COMMAND --config FILE` works like `csadetect --config FILE COMMAND`, and TensorFlow's start-up
noise stays off stderr unless --verbose (csadetect/models/loader.py import_tensorflow)."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

import csadetect.pipelines.detect as detect
import csadetect.pipelines.feedback as feedback
from csadetect.cli.main import SETTINGS_COMMANDS, _walk, build_parser, check_argv, main, normalise_argv
from csadetect.config.flags import normalise, respell, suggest
from csadetect.config.settings import ConfigError
from csadetect.pipelines.options import DetectOptions, FeedbackOptions, check_flags, known_options, launch

REPO = Path(__file__).resolve().parent.parent


# -- the spelling helpers -----------------------------------------------------------------------


def test_respell_and_normalise():
    known = {"public_key", "report_dir", "public-key-file", "job-server-timeout", "job_server_timeout"}
    assert respell("public-key", known) == "public_key"
    assert respell("public_key_file", known) == "public-key-file"
    assert respell("job-server-timeout", known) == "job-server-timeout"  # both known: as given
    assert respell("nothing-like-it", known) == "nothing-like-it"
    argv = ["--public-key=k.pem", "--report-dir", "--value-like", "-x", "plain", "--", "--report-dir"]
    assert normalise(argv, known) == ["--public_key=k.pem", "--report_dir", "--value-like", "-x", "plain", "--",
                                      "--report-dir"]


def test_suggest():
    assert suggest("report_dirr", ["report_dir", "review_dir"]) == " (did you mean --report_dir?)"
    assert suggest("public-kye", ["public_key"]) == " (did you mean --public_key?)"
    assert suggest("zzzzzz", ["report_dir"]) == ""


# -- pipeline commands: Beam parses their flags -------------------------------------------------


def _no_graph(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the pipeline was built despite a bad flag")

    monkeypatch.setattr(detect, "build_pipeline", refuse)
    monkeypatch.setattr(detect, "print_effective", refuse)


def test_a_misspelt_pipeline_flag_stops_run_before_anything_runs(monkeypatch, capsys):
    """`--report_dirr` used to exit 0 behind a buried Beam warning, echoed as accepted."""
    _no_graph(monkeypatch)
    assert detect.main(["--input_glob", "x.jsonl", "--report_dirr", "out"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: unknown option --report_dirr for csadetect run (did you mean --report_dir?); "
                   "see csadetect run --help (Beam's pipeline options are accepted too)"]
    with pytest.raises(ConfigError, match=r"--nme=x for|unknown option --nme for csadetect feedback"):
        feedback.run(["--report_glob=a", "--verdict_glob=b", "--nme=x"])


def test_the_other_pipelines_option_is_refused_by_name(monkeypatch):
    _no_graph(monkeypatch)
    with pytest.raises(ConfigError, match=r"--report_glob is not an option of csadetect run \(it is one of "
                                          r"csadetect feedback\)"):
        check_flags(["--report_glob=x"], DetectOptions)
    with pytest.raises(ConfigError, match=r"--input_glob is not an option of csadetect feedback"):
        check_flags(["--input_glob", "x"], FeedbackOptions)
    check_flags(["--public_key=k", "--config", "c.yaml", "--window_seconds=5"], FeedbackOptions)  # shared ones


def test_beams_own_options_stay_accepted():
    beam = ["--runner=DataflowRunner", "--project=p", "--region=europe-west1", "--streaming", "--temp_location=gs://b/t",
            "--max_num_workers=3", "--no_use_public_ips", "--experiments=a", "--flink_master=h:8081",
            "--environment_type=DOCKER", "--direct_num_workers=2", "--setup_file=./setup.py", "--profile", "direct"]
    check_flags(beam, DetectOptions)
    check_flags(beam, FeedbackOptions)
    assert {"runner", "project", "streaming", "flink_master", "report_dir", "report_glob"} <= set(known_options())


def test_a_portable_runner_passes_job_server_options_on_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        check_flags(["--checkpointing_interval=5000"], DetectOptions, runner="FlinkRunner")
    assert "--checkpointing_interval is not a Beam Python option" in caplog.text
    with pytest.raises(ConfigError, match="unknown option --checkpointing_interval"):
        check_flags(["--checkpointing_interval=5000"], DetectOptions, runner="FnApiRunner")


def test_dashes_and_underscores_both_reach_beam():
    start = launch(["--public-key", "k.pem", "--report-dir=out/r", "--input-glob", "e.jsonl"], DetectOptions,
                   lambda settings, opts: settings)
    assert (start.opts.public_key, start.opts.report_dir, start.opts.input_glob) == ("k.pem", "out/r", "e.jsonl")


def test_run_exits_2_with_one_line_from_the_command_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "csadetect", "run", "--input_glob", str(tmp_path / "e.jsonl"),
                          "--report_dirr", str(tmp_path / "r")], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "error: unknown option --report_dirr for csadetect run (did you mean --report_dir?); "
        "see csadetect run --help (Beam's pipeline options are accepted too)"]
    assert out.stdout == ""


# -- csadetect's own commands (argparse) --------------------------------------------------------


def test_a_misspelt_flag_names_the_nearest_one(capsys):
    assert main(["tune", "--scorez", "s.jsonl", "--target-precision", "0.9"]) == 2
    assert capsys.readouterr().err == ("error: unrecognized option --scorez for csadetect tune (did you mean "
                                       "--scores?); see csadetect tune --help\n")
    assert main(["review", "decide", "ID", "--confirm", "--reviwer", "x"]) == 2
    assert "--reviwer for csadetect review decide (did you mean --reviewer?)" in capsys.readouterr().err
    assert main(["--verbsoe", "hash", "x"]) == 2
    assert "(did you mean --verbose?)" in capsys.readouterr().err
    assert main(["hash", "x", "--verbsoe"]) == 2
    assert "(did you mean --verbose?)" in capsys.readouterr().err


def test_both_spellings_work_on_every_command():
    parser = build_parser()
    argv = ["--config", "c.yaml", "match", "--public_key", "k.pem", "--indicators=DB", "a.jpg"]
    assert normalise_argv(parser, argv) == ["--config", "c.yaml", "match", "--public-key", "k.pem",
                                            "--indicators=DB", "a.jpg"]
    argv = ["tune", "--target_precision=0.9", "--scores", "--not-a-flag-but-a-value", "--write_config", "x.yaml"]
    fixed = normalise_argv(parser, argv)
    assert fixed == ["tune", "--target-precision=0.9", "--scores", "--not-a-flag-but-a-value", "--write-config",
                     "x.yaml"]
    assert check_argv(parser, fixed) is None
    # a pass-through command's flags are Beam's: left to the pipeline (launch respells them)
    assert normalise_argv(parser, ["run", "--public-key", "k"]) == ["run", "--public-key", "k"]
    assert check_argv(parser, ["run", "--anything-goes-here"]) is None


def test_every_settings_command_takes_config_after_its_name():
    parser = build_parser()
    leaves = {path: p for path, p in _walk(parser) if path}
    covered = [path for path in leaves if any(
        len(rule) == len(path) and all(r in ("*", w) for r, w in zip(rule, path)) for rule in SETTINGS_COMMANDS)]
    for must in (("hash",), ("match",), ("indicators", "from-media"), ("review", "list"), ("review", "decide"),
                 ("retention", "run"), ("complaints", "add"), ("console",), ("console", "adduser"),
                 ("console", "audit", "verify"), ("transparency",)):
        assert must in covered, must
    for path in covered:
        assert any("--config" in a.option_strings for a in leaves[path]._actions), path


@pytest.mark.parametrize("argv", [
    ["--config", "{cfg}", "review", "list"],
    ["review", "list", "--config", "{cfg}"],
    ["retention", "holds", "--config={cfg}"],
    ["--config", "{cfg}", "retention", "holds", "--config", "{cfg}"],
])
def test_config_before_or_after_the_command_is_the_same_setting(tmp_path, capsys, argv):
    cfg = tmp_path / "missing.yaml"
    rc = main([a.format(cfg=cfg) for a in argv])
    assert rc != 0
    assert f"config file not found: {cfg}" in capsys.readouterr().err


def test_two_different_config_files_are_refused(tmp_path, capsys):
    assert main(["--config", str(tmp_path / "a.yaml"), "review", "list", "--config", str(tmp_path / "b.yaml")]) == 2
    assert "two config files given" in capsys.readouterr().err


# -- TensorFlow's start-up noise ----------------------------------------------------------------

CHAT = {"conversation_id": "c1", "sender": "a", "sent_at": "2026-01-01T00:00:00Z", "text": "how was your day",
        "participants_minor": True}
NOISE = ("cuInit", "oneDNN", "cuda drivers", "absl::InitializeLog", "cpu_feature_guard")


def _grooming(tmp_path, *top, after=()):
    chat = tmp_path / "chat.jsonl"
    chat.write_text(json.dumps(CHAT) + "\n")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # conftest's; a user's shell has none
    return subprocess.run([sys.executable, "-m", "csadetect", *top, "grooming", "score", str(chat), *after],
                          cwd=REPO, env=env, capture_output=True, text=True)


def test_tensorflow_noise_stays_off_stderr_unless_verbose(tmp_path):
    quiet = _grooming(tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    assert json.loads(quiet.stdout)["conversation_id"] == "c1"
    assert not [line for line in quiet.stderr.splitlines() if any(n in line for n in NOISE)], quiet.stderr
    # TensorFlow prints some of this noise on every start (which depends on the CPU: the oneDNN notice
    # on Intel CPUs with AVX-512, the CUDA stub's notices on others); --verbose (before or after the
    # command) lets it through
    for verbose in (_grooming(tmp_path, "--verbose"), _grooming(tmp_path, after=["--verbose"])):
        assert verbose.returncode == 0 and verbose.stdout == quiet.stdout
        assert any(n in verbose.stderr for n in NOISE), verbose.stderr


def test_a_failing_tensorflow_import_shows_what_it_printed(tmp_path):
    """A broken TensorFlow: what it wrote to fd 2 while failing is shown, then the error."""
    fake = tmp_path / "tensorflow"
    fake.mkdir()
    (fake / "__init__.py").write_text("import os\nos.write(2, b'cuInit: the real reason it broke\\n')\n"
                                      "raise ImportError('broken tensorflow')\n")
    code = ("import sys; sys.path.insert(0, %r)\n"
            "from csadetect.models.loader import import_tensorflow\n"
            "try:\n    import_tensorflow()\nexcept ImportError as exc:\n    print('raised', exc)\n") % str(tmp_path)
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.stdout.strip() == "raised broken tensorflow"
    assert "cuInit: the real reason it broke" in out.stderr


def test_verbose_is_ours_on_a_pipeline_command_too(monkeypatch, capsys):
    """`csadetect run --verbose`: the flag is taken off before Beam sees the rest, holds while the
    command runs, and does not outlive it (main() may be called again in one process)."""
    import os

    import csadetect.cli.main as cli_main

    _no_graph(monkeypatch)
    monkeypatch.delenv("CSADETECT_VERBOSE", raising=False)
    assert main(["run", "--verbose", "--input_glob", "x.jsonl", "--report_dirr", "out"]) == 2
    err = capsys.readouterr().err
    assert "--report_dirr" in err and "--verbose" not in err
    seen = {}

    def fake_run(args):
        seen.update(verbose=os.environ.get("CSADETECT_VERBOSE"), extra=list(args.extra))
        return 0

    monkeypatch.setattr(cli_main, "_cmd_run", fake_run)
    assert main(["run", "--verbose", "--input_glob", "x.jsonl"]) == 0
    assert seen == {"verbose": "1", "extra": ["--input_glob", "x.jsonl"]}
    assert "CSADETECT_VERBOSE" not in os.environ


@pytest.mark.parametrize("argv, message", [
    (["hash", "x.jpg", "--seconds-per-hash", "abc"],
     "error: csadetect hash: argument --seconds-per-hash: invalid float value: 'abc'; see csadetect hash --help"),
    (["tune", "--scores", "s.jsonl", "--target-precision", "2"],
     "error: csadetect tune: argument --target-precision: must be between 0 and 1; see csadetect tune --help"),
    (["console", "adduser", "bob", "--role", "king"],
     "error: csadetect console adduser: argument --role: invalid choice: 'king' (choose from 'reviewer', "
     "'supervisor'); see csadetect console adduser --help"),
    (["review", "decide", "0123abcd", "--reviewer", "a"],
     "error: csadetect review decide: one of the arguments --confirm --reject is required; "
     "see csadetect review decide --help"),
    ([], "error: csadetect: the following arguments are required: COMMAND; see csadetect --help"),
])
def test_a_bad_value_or_missing_argument_is_one_line_exit_2(capsys, argv, message):
    """argparse printed its usage block and then the reason (several lines): now the reason alone."""
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and err == message + "\n"


@pytest.mark.parametrize("kind", ["directory", "binary"])
@pytest.mark.parametrize("argv, code", [(["hash", "x.jpg"], 2), (["review", "list"], 1), (["run"], 2)])
def test_a_config_that_is_a_directory_or_not_text_is_one_line(tmp_path, capsys, kind, argv, code):
    """Before: IsADirectoryError / UnicodeDecodeError tracebacks from the settings loader."""
    cfg = tmp_path / "cfg.yaml"
    if kind == "directory":
        cfg.mkdir()
        message = f"error: config file {cfg} is a directory: give the YAML file\n"
    else:
        cfg.write_bytes(b"\xc7\xff\x00\x01 binary")
        message = f"error: config file {cfg} is not UTF-8 text (YAML)\n"
    assert main([*argv, "--config", str(cfg)]) == code
    assert capsys.readouterr().err == message


def test_demo_refuses_a_bad_config_before_making_or_removing_anything(tmp_path, capsys):
    """Before: the demo made its media, keys and snapshot and emptied its derived outputs, then
    stopped at the bad --config."""
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("match:\n  pdq_threshold: lots\n")
    out = tmp_path / "out"
    (out / "feedback").mkdir(parents=True)
    (out / "feedback" / "keep.json").write_text("{}\n")
    argv = ["demo", "--workdir", str(tmp_path / "work"), "--out", str(out), "--config", str(cfg)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: invalid config at match.pdq_threshold") and err.count("\n") == 1
    assert not (tmp_path / "work").exists() and (out / "feedback" / "keep.json").exists()


@pytest.mark.parametrize("value, reason", [("-5", "must be from 0 to 100 (PDQ quality), not -5"),
                                           ("101", "must be from 0 to 100 (PDQ quality), not 101"),
                                           ("high", "not a whole number: 'high'")])
def test_import_min_quality_is_a_pdq_quality(capsys, value, reason):
    with pytest.raises(SystemExit) as done:
        main(["indicators", "import", "x.txt", "--min-quality", value])
    assert done.value.code == 2
    assert capsys.readouterr().err == (f"error: csadetect indicators import: argument --min-quality: {reason}; "
                                       "see csadetect indicators import --help\n")
