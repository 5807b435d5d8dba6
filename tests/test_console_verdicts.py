"""Decisions in the review console (issue 5): a verdict stored, published to the feedback folder
in the feedback pipeline's format and audited; a reviewer refused (403) while a supervisor's
change is published with a later ``decided_at``, and stale changes refused; a report with an
invalid signature that cannot be confirmed; requests for missing information to the provider;
the batch feedback pipeline reading the verdicts; and, on the real Pub/Sub emulator, reports from
the report topic, verdicts on the feedback topic and requests on the provider-requests topic.

FastAPI's TestClient against the app, on the reports of console_helpers.py (benign and
synthetic)."""
from __future__ import annotations

import json
import re
import time
from datetime import date

import pytest
from fastapi.testclient import TestClient

from csadetect.console.app import create_app
from csadetect.core.timeutil import parse_time
from csadetect.reports.schema import to_json_line
from tests.console_helpers import (QUEUE_ORDER, add_users, audit_file, console_config, csrf_of, login, queue_ids,
                                   records, rid)
from tests.console_helpers import console, crafted  # noqa: F401 - the fixtures
from tests.pubsub_emulator import PubSubAdmin


# ---------------------------------------------------------------------------- verdicts


def test_verdict_is_stored_published_to_the_feedback_dir_and_audited(console, crafted, tmp_path):
    from csadetect.feedback.verdicts import parse_verdict

    client, app, _ = console
    c = client()
    login(c, "rita")
    known = rid(crafted, "known")
    token = csrf_of(c)
    r = c.post(f"/reports/{known}/verdict", follow_redirects=False, data={
        "csrf_token": token, "verdict": "confirmed", "reason": "matches_known_indicator",
        "note": "the picture in the report is the indexed one", "delay_notification": "1", "based_on": ""})
    assert r.status_code == 303
    assert r.headers["location"].endswith("?done=verdict") and known not in r.headers["location"]  # on to the next
    [msg] = records(tmp_path / "centre" / "verdicts")
    assert msg == {"report_id": known, "verdict": "confirmed", "reason": "matches_known_indicator",
                   "decided_at": "2026-11-28T12:00:00Z", "delay_notification": True}
    assert parse_verdict(json.dumps(msg))["verdict"] == "confirmed"  # what the feedback pipeline reads
    [v] = app.state.console.store.verdicts(known)
    assert v["decided_by"] == "rita" and v["note"] == "the picture in the report is the indexed one"
    assert app.state.console.store.get_report(known)["status"] == "confirmed"
    assert audit_file(tmp_path)[-1]["action"] == "verdict" and audit_file(tmp_path)[-1]["report_id"] == known
    html = c.get(f"/reports/{known}").text
    assert "Only a supervisor can change it" in html and 'id="verdict-form"' not in html
    # bad input is refused
    new = rid(crafted, "new")
    for data in ({"verdict": "maybe", "reason": "x"}, {"verdict": "confirmed", "reason": "benign_content"},
                 {"verdict": "manifestly_unfounded", "reason": "other"}):
        assert c.post(f"/reports/{new}/verdict", data=dict(data, csrf_token=token)).status_code == 400


def test_reviewer_cannot_overturn_a_verdict_supervisor_can_and_it_is_published(console, crafted, tmp_path):
    client, app, clock = console
    rita, sam = client(), client()
    login(rita, "rita")
    login(sam, "sam")
    new = rid(crafted, "new")
    rita_token, sam_token = csrf_of(rita), csrf_of(sam)
    assert rita.post(f"/reports/{new}/verdict", data={"csrf_token": rita_token, "verdict": "confirmed",
                                                      "reason": "new_material_confirmed"},
                     follow_redirects=False).status_code == 303
    first = app.state.console.store.latest_verdict(new)
    r = rita.post(f"/reports/{new}/verdict", data={"csrf_token": rita_token, "verdict": "manifestly_unfounded",
                                                    "reason": "benign_content", "based_on": str(first["id"])})
    assert r.status_code == 403 and "only a supervisor" in r.text
    vera = client()
    login(vera, "vera")
    assert vera.post(f"/reports/{new}/verdict", data={"csrf_token": csrf_of(vera), "verdict": "manifestly_unfounded",
                                                      "reason": "benign_content"}).status_code == 403
    assert len(app.state.console.store.verdicts(new)) == 1
    # a supervisor changes it (same second on the clock: the revision is still later)
    r = sam.post(f"/reports/{new}/verdict", follow_redirects=False, data={
        "csrf_token": sam_token, "verdict": "manifestly_unfounded", "reason": "benign_content",
        "note": "benign proxy picture", "based_on": str(first["id"])})
    assert r.status_code == 303 and r.headers["location"] == f"/reports/{new}?done=changed"
    history = app.state.console.store.verdicts(new)
    assert [(v["verdict"], v["decided_by"], v["supersedes"]) for v in history] == [
        ("confirmed", "rita", None), ("manifestly_unfounded", "sam", first["id"])]
    msgs = [m for m in records(tmp_path / "centre" / "verdicts") if m["report_id"] == new]
    assert [m["verdict"] for m in msgs] == ["confirmed", "manifestly_unfounded"]
    assert parse_time(msgs[1]["decided_at"]) > parse_time(msgs[0]["decided_at"])
    assert [e["action"] for e in audit_file(tmp_path) if e["report_id"] == new and e["action"].startswith("verdict")] == [
        "verdict", "verdict_changed"]
    assert app.state.console.store.get_report(new)["status"] == "manifestly_unfounded"
    # a change based on a stale page is refused
    r = sam.post(f"/reports/{new}/verdict", data={"csrf_token": sam_token, "verdict": "confirmed",
                                                   "reason": "new_material_confirmed", "based_on": str(first["id"])})
    assert r.status_code == 409


def test_report_with_a_bad_signature_cannot_be_confirmed(console, crafted):
    client, app, _ = console
    c = client()
    login(c, "rita")
    bad = rid(crafted, "tampered")
    assert app.state.console.store.get_report(bad)["signature_status"] == "invalid"
    html = c.get(f"/reports/{bad}").text
    assert "does not verify" in html and re.search(r'value="confirmed" id="v-confirmed"\s+disabled', html)
    token = csrf_of(c)
    r = c.post(f"/reports/{bad}/verdict", data={"csrf_token": token, "verdict": "confirmed",
                                                "reason": "matches_known_indicator"})
    assert r.status_code == 409 and "signature" in r.text
    assert c.post(f"/reports/{bad}/verdict", data={"csrf_token": token, "verdict": "manifestly_unfounded",
                                                   "reason": "insufficient_evidence"},
                  follow_redirects=False).status_code == 303


def test_request_for_missing_information_goes_to_the_provider(console, crafted, tmp_path):
    client, app, _ = console
    c = client()
    login(c, "rita")
    known = rid(crafted, "known_urgent")
    token = csrf_of(c)
    r = c.post(f"/reports/{known}/info-request", follow_redirects=False,
               data={"csrf_token": token, "missing": ["device", "ip_port"], "note": "please add the upload's IP"})
    assert r.status_code == 303
    [msg] = records(tmp_path / "centre" / "requests")
    assert msg["report_id"] == known and msg["missing"] == ["ip_port", "device"] and msg["provider_id"] == "demo-provider"
    assert msg["note"] == "please add the upload's IP" and re.fullmatch(r"[0-9a-f]{32}", msg["request_id"])
    assert app.state.console.store.get_report(known)["status"] == "info_requested"
    assert audit_file(tmp_path)[-1]["action"] == "request_info"
    assert c.post(f"/reports/{known}/info-request", data={"csrf_token": token, "missing": ["nonsense"]}).status_code == 400
    assert c.post(f"/reports/{known}/info-request", data={"csrf_token": token, "missing": ["other"]}).status_code == 400
    assert queue_ids(c.get("/?status=info_requested").text) == [known]


# ------------------------------------------------------------- the feedback pipeline reads it


@pytest.mark.slow
def test_feedback_pipeline_reads_the_console_verdicts(console, crafted, tmp_path):
    from csadetect.pipelines.feedback import run as feedback_run  # lazy: Beam, for this slow test only

    client, _, _ = console
    c = client()
    login(c, "rita")
    token = csrf_of(c)
    for name, verdict, reason in (("known", "confirmed", "matches_known_indicator"),
                                  ("new", "manifestly_unfounded", "benign_content")):
        assert c.post(f"/reports/{rid(crafted, name)}/verdict", follow_redirects=False,
                      data={"csrf_token": token, "verdict": verdict, "reason": reason}).status_code == 303
    out = tmp_path / "feedback"
    fb = feedback_run(["--report_glob", str(crafted["reports_dir"] / "*.jsonl"),
                  "--verdict_glob", str(tmp_path / "centre" / "verdicts" / "*.jsonl"), "--out_dir", str(out),
                  "--notifications_dir", "", "--min_verdicts", "1", "--now", "2026-11-28T12:00:00Z",
                  "--public_key", crafted["paths"]["provider_public_key"], "--runner", "FnApiRunner"])
    precision = {r["detector"]: r for r in records(out / fb.run_id) if "precision" in r and "floor" not in r}
    assert precision["known-hash"]["confirmed"] == 1 and precision["known-hash"]["precision"] == 1.0
    assert precision["new-material-classifier"]["manifestly_unfounded"] == 1


# ------------------------------------------------------------------- Pub/Sub (emulator)


@pytest.mark.emulator
def test_reports_from_the_report_topic_and_verdicts_to_the_feedback_topic(emulator, tmp_path, crafted):
    admin = PubSubAdmin(emulator)
    reports_topic = admin.topic("console-reports")
    reports_sub = admin.subscription(reports_topic, "console-reports-sub")
    feedback_topic = admin.topic("console-feedback")
    feedback_sub = admin.subscription(feedback_topic, "console-feedback-sub")
    requests_topic = admin.topic("console-provider-requests")
    requests_sub = admin.subscription(requests_topic, "console-provider-requests-sub")
    for item in crafted["reports"].values():
        admin.publish(reports_topic, to_json_line(item["report"]).encode(), report_id=item["report"]["report_id"])
    admin.publish(reports_topic, to_json_line(crafted["reports"]["known"]["report"]).encode())  # redelivered
    admin.publish(reports_topic, b"{not json")
    cfg = console_config(tmp_path, crafted["paths"], crafted["reports_dir"], reports_dir=None, subscription=reports_sub,
                         feedback_topic=feedback_topic, feedback_dir=None, provider_requests_topic=requests_topic,
                         provider_requests_dir=None)
    app = create_app(cfg)
    add_users(app.state.console.store)
    try:
        with TestClient(app) as c:
            deadline = time.monotonic() + 60
            while app.state.console.store.counts({})["all"] < 5 and time.monotonic() < deadline:
                time.sleep(0.3)
            login(c, "rita")
            assert queue_ids(c.get("/").text) == [rid(crafted, n) for n in QUEUE_ORDER]
            deadline = time.monotonic() + 30
            while app.state.console.ingest.counts["invalid"] < 1 and time.monotonic() < deadline:
                time.sleep(0.3)
            assert app.state.console.ingest.counts["duplicate"] == 1 and app.state.console.ingest.counts["invalid"] == 1
            token = csrf_of(c)
            groom = rid(crafted, "grooming")
            until = date.fromtimestamp(time.time() + 60 * 86400).isoformat()
            assert c.post(f"/reports/{groom}/verdict", follow_redirects=False, data={
                "csrf_token": token, "verdict": "confirmed", "reason": "grooming_confirmed",
                "delay_notification": "1", "delay_until": until, "note": "stays here"}).status_code == 303
            known = rid(crafted, "known")
            assert c.post(f"/reports/{known}/info-request", follow_redirects=False, data={
                "csrf_token": token, "missing": ["country"]}).status_code == 303
            got = []
            deadline = time.monotonic() + 30
            while not got and time.monotonic() < deadline:
                got = admin.pull(feedback_sub)
            assert [json.loads(m.data) for m in got] == [{
                "report_id": groom, "verdict": "confirmed", "reason": "grooming_confirmed",
                "decided_at": json.loads(got[0].data)["decided_at"], "delay_notification": True,
                "delay_until": f"{until}T00:00:00Z"}]
            assert got[0].attributes["report_id"] == groom
            asked = []
            deadline = time.monotonic() + 30
            while not asked and time.monotonic() < deadline:
                asked = admin.pull(requests_sub)
            assert json.loads(asked[0].data)["missing"] == ["country"]
            assert all(o["topic_done"] for o in app.state.console.store.outbox_for(groom))
    finally:
        admin.close()
