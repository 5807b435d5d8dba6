"""The local streaming recipe of docs/streaming-local.md, command by command, on the real Pub/Sub
emulator: ``csadetect pubsub setup``, ``csadetect run --streaming`` (DirectRunner, a subprocess),
``csadetect publish``, ``csadetect pubsub pull`` of the reports and dead letters, progress lines,
then Ctrl-C: the summary line and exit code 130. Plus the one-line Pub/Sub errors: a resource that
does not exist (named), no credentials, and a pipeline started on a missing subscription."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from csadetect.cli.main import main
from csadetect.core import pubsub
from csadetect.media import synth
from tests.conftest import signed_indicator_db

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def on_emulator(emulator, monkeypatch):
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", emulator)
    monkeypatch.delenv("PUBSUB_PROJECT_ID", raising=False)
    return emulator


def _run_argv(project: str, cfg: Path, work: Path, subscription: str = "uploads") -> list[str]:
    """`csadetect run --streaming` as docs/streaming-local.md writes it (files under ``work``)."""
    return [sys.executable, "-m", "csadetect", "run", "--config", str(cfg), "--streaming",
            "--input_subscription", f"projects/{project}/subscriptions/{subscription}",
            "--report_topic", f"projects/{project}/topics/reports",
            "--dead_letter_topic", f"projects/{project}/topics/dead-letters",
            "--review_topic", f"projects/{project}/topics/review",
            "--report_dir", "", "--dead_letter_dir", "", "--review_dir", str(work / "review"),
            "--stats_dir", str(work / "stats"),
            "--indicators", str(work / "db"), "--public_key", str(work / "keys" / "public.pem")]


def _all_counted(log: Path, events: int) -> bool:
    """A progress line in ``log`` shows ``events`` received, each a hit, non-hit or dead letter."""
    for line in reversed(log.read_text(errors="replace").splitlines()):
        if line.startswith("progress "):
            n = dict(re.findall(r"(received|hits|non-hits|dead letters) (\d+)", line))
            return int(n["received"]) == events == int(n["hits"]) + int(n["non-hits"]) + int(n["dead letters"])
    return False


def _pull(subscription: str, capsys, wait: float = 2.0) -> list[dict]:
    assert main(["pubsub", "pull", subscription, "--wait", str(wait)]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def test_the_recipe_end_to_end(on_emulator, tmp_path, report_keys, capsys):
    project = "recipe"
    # 1. csadetect pubsub setup: everything created once, then found
    assert main(["pubsub", "setup", "--project", project]) == 0
    out, err = capsys.readouterr()
    flags = json.loads(out)
    assert flags["input_subscription"] == f"projects/{project}/subscriptions/uploads"
    assert flags["report_topic"] == f"projects/{project}/topics/reports"
    assert err.count("created topic") == 5 and err.count("created subscription") == 5
    assert main(["pubsub", "setup", "--project", project]) == 0
    err = capsys.readouterr().err
    assert "created" not in err.replace("0 created", "") and err.count("exists ") == 10

    # the demo's part: a signed indicator database and the provider's report keys
    known, other = synth.jpeg_bytes(synth.synthetic_image(300)), synth.jpeg_bytes(synth.synthetic_image(7700))
    signed_indicator_db(tmp_path, [known])
    cfg = tmp_path / "config.yaml"
    cfg.write_text(json.dumps({"reports": report_keys["reports"]}))
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    (uploads / "a-broken.jpg").write_bytes(known[:500])
    (uploads / "b-chat.json").write_text(json.dumps({"conversation_id": "conv-homework", "participants_minor": True,
                                                     "messages": [{"sender": "kid", "text": "question 4?"},
                                                                  {"sender": "friend", "text": "the answer is 12"}]}))
    (uploads / "c-known.jpg").write_bytes(known)
    (uploads / "d-other.jpg").write_bytes(other)
    (uploads / "e-notes.txt").write_text("not an upload")

    # 2. csadetect run --streaming (DirectRunner pinned by `run`)
    log = tmp_path / "run.log"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    run = subprocess.Popen(_run_argv(project, cfg, tmp_path) + ["--progress_seconds", "2"], cwd=REPO, env=env,
                           stdout=subprocess.PIPE, stderr=open(log, "wb"))
    try:
        # 3. csadetect publish: a directory of pictures, a chat and a file that is not an upload
        assert main(["publish", str(uploads), "--topic", f"projects/{project}/topics/uploads"]) == 1
        out, err = capsys.readouterr()
        assert json.loads(out) == {"topic": f"projects/{project}/topics/uploads", "published": 5, "refused": 1}
        assert f"refused {uploads / 'e-notes.txt'}: not an image" in err

        # 4. csadetect pubsub pull: the report of the known picture, the dead letter of the broken one
        reports, deadline = [], time.monotonic() + 150
        while not reports and time.monotonic() < deadline and run.poll() is None:
            reports = _pull(f"projects/{project}/subscriptions/reports", capsys)
        assert len(reports) == 1, log.read_text()[-3000:]
        assert reports[0]["detection_type"] == "known" and reports[0]["review_status"] == "auto_confirmed"
        dead = []
        while not dead and time.monotonic() < deadline:
            dead = _pull(f"projects/{project}/subscriptions/dead-letters", capsys)
        assert [(d["stage"], d["event_id"].rsplit("-", 1)[1]) for d in dead] == [("hash", "1")]
        prefix = dead[0]["event_id"].rsplit("-", 1)[0]  # ids: <prefix>-1 broken, -2/-3 chat, -4 known, -5 other
        assert reports[0]["event_id"] == f"{prefix}-4"
        # the progress lines: once every event is counted, received = hits + non-hits + dead letters
        while not _all_counted(log, 5) and time.monotonic() < deadline and run.poll() is None:
            time.sleep(0.5)
    finally:
        # 5. Ctrl-C: the summary line, exit code 130, no traceback
        run.send_signal(signal.SIGINT)
        try:
            out, _ = run.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            run.kill()
            out, _ = run.communicate()
    text = log.read_text(errors="replace")
    assert run.returncode == 130, text[-3000:]
    summary = json.loads(out.decode().strip().splitlines()[-1])
    assert {k: summary[k] for k in ("received", "hit", "non_hit", "dead_lettered", "report", "hit_review")} == {
        "received": 5, "hit": 1, "non_hit": 3, "dead_lettered": 1, "report": 1, "hit_review": 0}, text[-3000:]
    assert "SIGINT: stopping the pipeline" in text and "Traceback" not in text
    progress = [line for line in text.splitlines() if line.startswith("progress ")]
    assert progress and "received " in progress[-1] and "events/s" in progress[-1]
    # nothing about the non-hits: neither the other picture's id nor the chat's
    for n in (2, 3, 5):
        assert f"{prefix}-{n}" not in text + out.decode()
    assert "conv-homework" not in text


def test_a_missing_subscription_stops_the_run_with_one_line(on_emulator, tmp_path, report_keys):
    """Before: 412 lines and 10 tracebacks ending in `404 Subscription does not exist`, unnamed."""
    project = "missing-sub"
    assert main(["pubsub", "setup", "--project", project]) == 0
    signed_indicator_db(tmp_path, [synth.jpeg_bytes(synth.synthetic_image(1))])
    cfg = tmp_path / "config.yaml"  # no models: this run never gets to scan anything
    cfg.write_text(json.dumps({"reports": report_keys["reports"], "grooming": {"enabled": False},
                               "embedding": {"enabled": False}, "new_material": {"enabled": False}}))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run(_run_argv(project, cfg, tmp_path, subscription="uplods"), cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 2, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: subscription projects/{project}/subscriptions/uplods does not exist on the "
                      f"Pub/Sub emulator at {on_emulator} (create it: `csadetect pubsub setup`)"]
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert done.stderr.strip().splitlines() == errors  # before the options block and the models: one line


def test_not_found_names_the_resource(on_emulator, capsys):
    assert main(["pubsub", "pull", "projects/nowhere/subscriptions/reprots", "--wait", "0"]) == 1
    assert capsys.readouterr().err == (f"error: subscription projects/nowhere/subscriptions/reprots does not exist on "
                                       f"the Pub/Sub emulator at {on_emulator} (create it: `csadetect pubsub setup`)\n")
    assert main(["publish", "-", "--topic", "projects/nowhere/topics/uplaods"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: topic projects/nowhere/topics/uplaods does not exist") and err.count("\n") == 1


def test_setup_refuses_a_subscription_on_another_topic(on_emulator):
    publisher, subscriber = pubsub.publisher(), pubsub.subscriber()
    pubsub.ensure_topic(publisher, "projects/clash/topics/other")
    pubsub.ensure_subscription(subscriber, "projects/clash/subscriptions/uploads", "projects/clash/topics/other")
    with pytest.raises(pubsub.PubSubError, match="subscription projects/clash/subscriptions/uploads exists but reads "
                                                 "projects/clash/topics/other, not projects/clash/topics/uploads"):
        pubsub.ensure_subscription(subscriber, "projects/clash/subscriptions/uploads", "projects/clash/topics/uploads")


def test_no_project_and_no_credentials_are_one_line(monkeypatch, tmp_path, capsys):
    for name in pubsub.PROJECT_ENVS + (pubsub.EMULATOR_ENV,):
        monkeypatch.delenv(name, raising=False)
    assert main(["pubsub", "setup"]) == 1
    assert capsys.readouterr().err == "error: no project: give --project P (or set PUBSUB_PROJECT_ID)\n"
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    assert main(["pubsub", "setup", "--project", "p"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no Google credentials for Pub/Sub") and "PUBSUB_EMULATOR_HOST" in err
    assert err.count("\n") == 1


def test_error_lines_for_denied_and_unreachable(monkeypatch):
    from google.api_core import exceptions as gexc

    monkeypatch.delenv(pubsub.EMULATOR_ENV, raising=False)
    what = "subscription projects/p/subscriptions/s"
    denied = pubsub.describe(gexc.PermissionDenied("User not authorized to perform this action."), what)
    assert denied.startswith(f"permission denied on {what} (PermissionDenied)") and "roles/pubsub.subscriber" in denied
    down = pubsub.describe(gexc.ServiceUnavailable("DNS resolution failed"), what)
    assert down.startswith("Pub/Sub (pubsub.googleapis.com) is unreachable (subscription projects/p/subscriptions/s)")
    monkeypatch.setenv(pubsub.EMULATOR_ENV, "localhost:8681")
    down = pubsub.describe(gexc.DeadlineExceeded("deadline"), what)
    assert down.startswith("the Pub/Sub emulator at localhost:8681 (PUBSUB_EMULATOR_HOST) is unreachable")
    for line in (denied, down):
        assert "\n" not in line


def test_commands_with_the_emulator_down_are_one_line(monkeypatch, capsys):
    from tests.pubsub_emulator import free_port

    host = f"127.0.0.1:{free_port()}"  # nothing listens there
    monkeypatch.setenv(pubsub.EMULATOR_ENV, host)
    for argv in (["pubsub", "setup", "--project", "p"], ["pubsub", "pull", "projects/p/subscriptions/reports"],
                 ["publish", "-", "--topic", "projects/p/topics/uploads"]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"error: the Pub/Sub emulator at {host} (PUBSUB_EMULATOR_HOST) is unreachable"), err
        assert err.count("\n") == 1
