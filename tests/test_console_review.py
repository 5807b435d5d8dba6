"""The console's routes keep the store true (issue 13 §7): signatures checked again after a
restart with the provider key, a fresh demo's reports as new versions, evidence sealed for another
key (said, with both fingerprints, and archived), claims (the assignee in the queue and on the
report, a second reviewer refused, expiry, release) and verdict reasons per detection type.

FastAPI's TestClient against the real SQLite store; every report is benign and synthetic."""
from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from csadetect.console.app import create_app
from csadetect.core import keys as signing
from csadetect.reports import crypto
from tests.console_helpers import Clock, add_users, console_config, csrf_of, login, queue_ids
from tests.test_console_storage import two_demos  # noqa: F401 - the fixture

MINUTE = 60.0


def rid(two_demos, name: str, demo: str = "first") -> str:  # noqa: F811
    return two_demos[demo]["reports"][name]["report"]["report_id"]


def app_for(tmp_path, two_demos, reports="first", keys="first", clock=None, users=True, **overrides):  # noqa: F811
    """A console on one demo's reports with one demo's keys (the database under ``tmp_path``)."""
    paths = two_demos[keys]["paths"]
    config = console_config(tmp_path, paths, two_demos[reports]["dir"], **overrides)
    app = create_app(config, clock=clock or Clock())
    if users:
        add_users(app.state.console.store)
    return app


def h(client) -> dict:
    return {"X-CSRF-Token": csrf_of(client), "Accept": "application/json"}


def actions(app, report_id=None) -> list[tuple]:
    return [(e["action"], e["user"]) for e in reversed(app.state.console.store.audit_entries(500, report_id))]


def test_a_restart_with_the_provider_key_checks_the_signatures_again(tmp_path, two_demos):  # noqa: F811
    known = rid(two_demos, "known")
    app = app_for(tmp_path, two_demos, provider_public_key=None)
    with TestClient(app) as c:
        login(c, "sam")
        assert "signature not checked" in c.get(f"/reports/{known}").text
    app = app_for(tmp_path, two_demos, users=False)  # the same database, now with the key
    fingerprint = signing.raw_key_id(signing.load_public_key(two_demos["first"]["paths"]["provider_public_key"]))
    with TestClient(app) as c:
        login(c, "sam")
        page = c.get(f"/reports/{known}").text
        assert "provider signature verified" in page and fingerprint in page
        assert "does not verify" in c.get(f"/reports/{rid(two_demos, 'tampered')}").text
    assert ("signature_rechecked", None) in actions(app, known)
    assert app.state.console.ingest.counts["rechecked"] == 5


def test_a_fresh_demo_is_a_new_version_that_opens_and_keeps_the_verdict_history(tmp_path, two_demos):  # noqa: F811
    known = rid(two_demos, "known")
    app = app_for(tmp_path, two_demos)
    with TestClient(app) as c:
        login(c, "rita")
        c.get(f"/reports/{known}")
        assert c.post(f"/reports/{known}/verdict", headers=h(c), follow_redirects=False, data={
            "verdict": "confirmed", "reason": "matches_known_indicator", "version": "1"}).status_code == 303
    app = app_for(tmp_path, two_demos, reports="second", keys="second", users=False)  # `make demo` again
    with TestClient(app) as c:
        login(c, "sam")
        page = c.get(f"/reports/{known}").text
        assert 'id="version-badge">version 2' in page and 'id="versions"' in page
        assert "The current verdict was made on version 1; this is version 2" in page
        assert re.search(r"changed: [^<]*Evidence", page) and "Provider signature" in page
        assert c.get(f"/reports/{known}/evidence/blurred").headers["content-type"] == "image/png"  # opens now
        assert [(v["decided_by"], v["report_version"]) for v in app.state.console.store.verdicts(known)] == [("rita", 1)]
        # the supervisor changes the verdict on version 2; a form from version 1 is refused
        latest = str(app.state.console.store.latest_verdict(known)["id"])
        stale = c.post(f"/reports/{known}/verdict", headers=h(c), data={
            "verdict": "manifestly_unfounded", "reason": "wrong_match", "based_on": latest, "version": "1"})
        assert stale.status_code == 409 and "now version 2" in stale.json()["error"]
        assert c.post(f"/reports/{known}/verdict", headers=h(c), follow_redirects=False, data={
            "verdict": "manifestly_unfounded", "reason": "wrong_match", "based_on": latest,
            "version": "2"}).status_code == 303
    assert [v["report_version"] for v in app.state.console.store.verdicts(known)] == [1, 2]
    assert ("report_version", None) in actions(app, known)


def test_evidence_sealed_for_another_key_says_so_and_can_be_archived(tmp_path, two_demos):  # noqa: F811
    known = rid(two_demos, "known")
    app = app_for(tmp_path, two_demos, reports="first", keys="second")  # the console has the second demo's key
    mine = crypto.centre_key_id(crypto.load_centre_private_key(
        two_demos["second"]["paths"]["centre_private_key"]).public_key())
    theirs = two_demos["first"]["reports"]["known"]["report"]["evidence_encrypted"].split(":")[1]
    with TestClient(app) as c:
        login(c, "rita")
        queue = c.get("/").text
        assert queue.count("sealed for another key") == 5
        page = c.get(f"/reports/{known}").text
        assert "Sealed for another key." in page
        assert f'id="sealed-for">{theirs}<' in page and f'id="console-key">{mine}<' in page
        assert 'id="archive-form"' in page
        assert c.post(f"/reports/{known}/archive", headers=h(c), follow_redirects=False).status_code == 303
        assert known not in queue_ids(c.get("/").text) and known in queue_ids(c.get("/?status=archived").text)
        assert app.state.console.store.get_report(known)["status"] == "archived"  # kept, not deleted
        again = c.post(f"/reports/{known}/archive", headers=h(c))
        assert again.status_code == 409 and again.json() == {"error": "only an open report without a verdict can be archived"}
        assert c.post(f"/reports/{known}/verdict", headers=h(c), data={
            "verdict": "manifestly_unfounded", "reason": "wrong_match"}).status_code == 409
    assert ("archive", "rita") in actions(app, known)


def test_a_reviewer_archives_only_evidence_sealed_for_another_key(tmp_path, two_demos):  # noqa: F811
    app = app_for(tmp_path, two_demos)
    known, new = rid(two_demos, "known"), rid(two_demos, "new")
    with TestClient(app) as c:
        login(c, "rita")
        assert 'id="archive-form"' not in c.get(f"/reports/{known}").text
        refused = c.post(f"/reports/{known}/archive", headers=h(c))
        assert refused.status_code == 403 and "sealed for another key" in refused.json()["error"]
    with TestClient(app) as c:
        login(c, "sam")  # a supervisor may archive any open report without a verdict
        assert 'id="archive-form"' in c.get(f"/reports/{new}").text
        assert c.post(f"/reports/{new}/archive", headers=h(c), follow_redirects=False).status_code == 303


def test_claims_one_reviewer_at_a_time_shown_refused_expired_released(tmp_path, two_demos):  # noqa: F811
    clock = Clock()
    app = app_for(tmp_path, two_demos, clock=clock, session_idle_seconds=7200)  # sessions outlive the claims here
    known = rid(two_demos, "known")
    with TestClient(app) as rita, TestClient(app) as vera:
        login(rita, "rita")
        login(vera, "vera")
        assert 'id="claim-mine"' in rita.get(f"/reports/{known}").text
        row = re.search(rf'data-report-id="{known}".*?</tr>', rita.get("/").text, re.S).group(0)
        assert 'data-assignee="rita">you<' in row
        row = re.search(rf'data-report-id="{known}".*?</tr>', vera.get("/").text, re.S).group(0)
        assert 'data-assignee="rita">rita<' in row
        page = vera.get(f"/reports/{known}").text
        assert 'id="claim-other"' in page and 'id="claim-holder">rita<' in page
        assert 'id="verdict-form"' not in page and 'id="info-form"' not in page and 'id="release-form"' not in page
        for path, data in (("verdict", {"verdict": "manifestly_unfounded", "reason": "wrong_match"}),
                           ("info-request", {"missing": ["device"]})):
            refused = vera.post(f"/reports/{known}/{path}", headers=h(vera), data=data)
            assert refused.status_code == 409 and refused.json()["error"].startswith("rita is reviewing this report")
        assert vera.post(f"/reports/{known}/release", headers=h(vera)).status_code == 409  # not hers to release
        clock.advance(31 * MINUTE)  # rita went away: the claim (30 minutes by default) expires
        assert 'id="claim-mine"' in vera.get(f"/reports/{known}").text
        assert app.state.console.store.get_report(known)["claimed_by"] == "vera"
        assert 'id="claim-other"' in rita.get(f"/reports/{known}").text
        assert vera.post(f"/reports/{known}/release", headers=h(vera), follow_redirects=False).status_code == 303
        assert app.state.console.store.get_report(known)["status"] == "new"
        clock.advance(MINUTE)
        rita.get(f"/reports/{known}")
        clock.advance(31 * MINUTE)
        app.state.console.refresh()  # the background work expires stale claims
        assert app.state.console.store.get_report(known)["claimed_by"] is None
    assert [a for a in actions(app, known) if a[0].startswith("claim")] == [
        ("claim", "rita"), ("claim_expired", None), ("claim", "vera"), ("claim_released", "vera"), ("claim", "rita"),
        ("claim_expired", None)]


@pytest.mark.parametrize("name, offered, refused", [
    ("known", {"matches_known_indicator", "wrong_match", "benign_content", "insufficient_evidence", "other"},
     "grooming_confirmed"),
    ("new", {"new_material_confirmed", "benign_content", "insufficient_evidence", "other"}, "matches_known_indicator"),
    ("grooming", {"grooming_confirmed", "benign_content", "insufficient_evidence", "other"}, "matches_known_indicator"),
])
def test_verdict_reasons_per_detection_type(tmp_path, two_demos, name, offered, refused):  # noqa: F811
    app = app_for(tmp_path, two_demos)
    report_id = rid(two_demos, name)
    with TestClient(app) as c:
        login(c, "rita")
        page = c.get(f"/reports/{report_id}").text
        form = page[page.index('id="reason"'):page.index("</select>", page.index('id="reason"'))]
        assert set(re.findall(r'<option value="([a-z_]+)"', form)) == offered
        verdict = "confirmed" if refused.endswith(("confirmed", "indicator")) else "manifestly_unfounded"
        answer = c.post(f"/reports/{report_id}/verdict", headers=h(c), data={"verdict": verdict, "reason": refused})
        assert answer.status_code == 400 and "\n" not in answer.json()["error"]
        assert answer.json()["error"].startswith(f"reason '{refused}' is not one for 'Confirmed'")
        assert app.state.console.store.verdicts(report_id) == []


def test_claim_length_comes_from_the_settings():
    import pydantic

    from csadetect.config.settings import ConsoleSettings
    from csadetect.console.state import claim_seconds

    assert claim_seconds(ConsoleSettings()) == 1800.0  # the default: 30 minutes
    assert claim_seconds(ConsoleSettings(claim_seconds=600)) == 600.0
    with pytest.raises(pydantic.ValidationError):
        ConsoleSettings(claim_seconds=5)  # under a minute: refused
