"""The EU Centre's review console (issue 5): API tests with FastAPI's TestClient, the store, the
CLI, and the Pub/Sub path on the real emulator. Browser tests are in test_console_browser.py.

Every report here is benign and synthetic: generated pictures (``csadetect.media.synth``) and a
synthetic chat that shows grooming *risk patterns* and is never sexual."""
from __future__ import annotations

import argparse
import base64
import glob
import hashlib
import html as htmllib
import io
import json
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timezone
from pathlib import Path

import httpx
import numpy as np
import pyarrow.parquet as pq
import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from PIL import Image

import csadetect.cli.console
import csadetect.console
from csadetect.cli.console import config_from_args
from csadetect.cli.main import main
from csadetect.config.settings import ConfigError, load_settings
from csadetect.console.app import ConsoleConfig, ConsoleError, create_app
from csadetect.console import auth as auth_module
from csadetect.console.auth import AuthError, hash_password, verify_password
from csadetect.console.storage import ConsoleStorage, StoreError
from csadetect.console.storage import chain
from csadetect.console.storage.memory import MemoryConsoleStore
from csadetect.console.storage.sqlite import SQLiteConsoleStore
from csadetect.console.views import FIELD_LABELS
from csadetect.core.timeutil import parse_time
from csadetect.media import synth
from csadetect.reports import crypto
from csadetect.reports.schema import REPORT_SCHEMA, report_id, to_json_line, to_table
from tests.conftest import make_report_keys
from tests.pubsub_emulator import PubSubAdmin

PASSWORD = "correct horse battery staple"
T0 = datetime(2026, 11, 28, 12, 0, 0, tzinfo=timezone.utc).timestamp()
CHAT = [  # the demo's synthetic risk conversation (never sexual)
    ("stranger", "hey you play minecraft too? your builds are amazing"),
    ("kid", "thanks! i play every day after school"),
    ("stranger", "how old are you btw? you seem really mature"),
    ("kid", "12"),
    ("stranger", "cool. this is our secret ok, don't tell your mom about me"),
    ("stranger", "we should meet up, i can come pick you up saturday"),
]
CHAT_EVIDENCE = [{"pattern": "age_check", "message_index": 2, "score": 0.91},
                 {"pattern": "secrecy", "message_index": 4, "score": 0.88},
                 {"pattern": "meeting", "message_index": 5, "score": 0.95}]
QUEUE_ORDER = ["grooming", "known_urgent", "tampered", "new", "known"]  # urgent first, then the oldest


class Clock:
    """An injectable clock (seconds since the epoch)."""

    def __init__(self, now: float = T0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _base(event_id: str, detector: str, detection_type: str, created_at: str, provider="demo-provider", **kw) -> dict:
    r = {k: None for k in REPORT_SCHEMA.names}
    r.update(report_id=report_id(provider, event_id, detector), schema_version="1.2", provider_id=provider,
             created_at=created_at, detection_type=detection_type, detector=detector, event_id=event_id,
             service="photos", occurred_at=created_at, account=f"acct-{event_id}", content_removed=False,
             urgent=False, legal_basis="detection order DEMO-ORDER-2026-1 issued by demo authority (Art. 7)",
             order_id="DEMO-ORDER-2026-1", indicator_ids=[], categories=[], matches=[],
             review_status="auto_confirmed", account_action="none", content_kind="image", mime="image/jpeg")
    r.update(kw)
    return r


def conversation() -> dict:
    return {"conversation_id": "conv-risk",
            "messages": [{"index": i, "event_id": f"evt-conv-risk-{i}", "sender": s,
                          "sent_at": f"2026-11-28T09:0{i}:00Z", "text": t} for i, (s, t) in enumerate(CHAT)],
            "evidence": CHAT_EVIDENCE, "flagged_at_message": 5, "accounts": ["acct-kid", "acct-stranger"]}


def craft_reports(paths: dict, folder: Path) -> dict:
    """Signed reports with sealed evidence like the pipeline makes, written to ``folder`` as JSON
    Lines and Parquet (the same reports in both, as the pipeline writes them). Returns
    ``{name: {"report": ..., "content": plaintext evidence, "image": PIL image or None}}``."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}

    def add(name, report, content, mime, image=None, tamper=False):
        sealed = crypto.seal_evidence(report, content, mime, paths["centre_public_key"])
        signed = crypto.sign_report(sealed, paths["signing_key"])
        if tamper:
            signed["account"] = "acct-altered-after-signing"
        out[name] = {"report": signed, "content": content, "image": image}

    img_known = synth.synthetic_image(1000)
    add("known", _base("evt-known-0", "known-hash", "known", "2026-11-28T10:00:00Z", distance=4.0,
                       detector_version="indicators-v1", indicator_ids=["ind-a-pdq", "ind-a-md5"], categories=["demo-known"],
                       content_pdq="ab" * 32, content_md5="0" * 32, content_sha256="1" * 64,
                       matches=[{"indicator_id": "ind-a-pdq", "kind": "pdq", "distance": 4.0, "category": "demo-known"},
                                {"indicator_id": "ind-a-md5", "kind": "md5", "distance": 0.0, "category": "demo-known"}]),
        synth.jpeg_bytes(img_known), "image/jpeg", img_known)
    img_urgent = synth.synthetic_image(1001)
    add("known_urgent", _base("evt-known-1", "known-hash", "known", "2026-11-28T11:00:00Z", distance=0.0, urgent=True,
                              detector_version="indicators-v1", indicator_ids=["ind-b-sha256"], categories=["demo-known"],
                              matches=[{"indicator_id": "ind-b-sha256", "kind": "sha256", "distance": 0.0,
                                        "category": "demo-known"}]),
        synth.png_bytes(img_urgent), "image/png", img_urgent)
    img_new = synth.synthetic_image(1002)
    add("new", _base("evt-new-1", "new-material-classifier", "new", "2026-11-28T08:30:00Z", provider="other-provider",
                     score=0.9712, threshold=0.9341, detector_version="newmat-ref-0.1", review_status="confirmed",
                     reviewed_at="2026-11-28T08:20:00Z"),
        synth.jpeg_bytes(img_new), "image/jpeg", img_new)
    img_t = synth.synthetic_image(1003)
    add("tampered", _base("evt-known-2", "known-hash", "known", "2026-11-28T08:00:00Z", distance=0.0,
                          detector_version="indicators-v1", indicator_ids=["ind-c-md5"],
                          matches=[{"indicator_id": "ind-c-md5", "kind": "md5", "distance": 0.0, "category": "demo-known"}]),
        synth.jpeg_bytes(img_t), "image/jpeg", img_t, tamper=True)
    conv = conversation()
    add("grooming", _base("conv-risk", "grooming-text", "grooming", "2026-11-28T09:30:00Z", service="chat",
                          report_id=report_id("demo-provider", "conv-risk", "grooming"),
                          content_kind="text", mime="text/plain", score=0.845, threshold=0.738, urgent=True,
                          detector_version="grooming-reference-1.0", conversation_id="conv-risk",
                          risk_patterns=["age_check", "meeting", "secrecy"], review_status="confirmed",
                          reviewed_at="2026-11-28T09:20:00Z", account="acct-stranger"),
        json.dumps(conv, sort_keys=True).encode(), "application/json")
    reports = [v["report"] for v in out.values()]
    (folder / "reports-00000-of-00001.jsonl").write_text("".join(to_json_line(r) + "\n" for r in reports))
    pq.write_table(to_table(reports), folder / "reports-00000-of-00001.parquet")
    return out


_HASHES: dict = {}


def password_hash() -> str:
    if "h" not in _HASHES:
        _HASHES["h"] = hash_password(PASSWORD)
    return _HASHES["h"]


def add_users(store, now: float = T0) -> None:
    store.add_user("rita", password_hash(), "reviewer", now)
    store.add_user("sam", password_hash(), "supervisor", now)
    store.add_user("vera", password_hash(), "reviewer", now)


def console_config(tmp_path: Path, paths: dict, reports: Path, **overrides):
    values = dict(reports_dir=str(reports), centre_key=paths["centre_private_key"],
                  provider_public_key=paths["provider_public_key"], feedback_dir=str(tmp_path / "centre" / "verdicts"),
                  provider_requests_dir=str(tmp_path / "centre" / "requests"), db=str(tmp_path / "centre" / "console.db"),
                  audit_log=str(tmp_path / "centre" / "audit.jsonl"), refresh_seconds=3600)
    values.update(overrides)
    return ConsoleConfig(**values)


def login(client, user: str, password: str = PASSWORD):
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    return client.post("/login", data={"username": user, "password": password, "csrf_token": token},
                       follow_redirects=False)


def csrf_of(client) -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', client.get("/").text).group(1)


def queue_ids(html: str) -> list[str]:
    return re.findall(r'data-report-id="([0-9a-f]+)"', html)


def audit_file(tmp_path: Path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "centre" / "audit.jsonl").read_text().splitlines()]


def records(folder: Path) -> list[dict]:
    return [json.loads(line) for p in sorted(glob.glob(str(folder / "*.jsonl"))) for line in open(p)]


@pytest.fixture(scope="module")
def crafted(tmp_path_factory):
    base = tmp_path_factory.mktemp("console-data")
    paths = make_report_keys(base / "keys")["paths"]
    reports = craft_reports(paths, base / "reports")
    return {"paths": paths, "reports_dir": base / "reports", "reports": reports}


@pytest.fixture
def console(tmp_path, crafted):
    """A console on the crafted reports with three users and an injected clock:
    ``(client factory, app, clock)``; the console is started (reports read) for the test."""
    clock = Clock()
    app = create_app(console_config(tmp_path, crafted["paths"], crafted["reports_dir"]), clock=clock)
    add_users(app.state.console.store)
    app.state.console.start()  # what the lifespan does (clients below share one start)

    def client(**kw):
        return TestClient(app, **kw)

    yield client, app, clock
    app.state.console.stop()


def rid(crafted, name: str) -> str:
    return crafted["reports"][name]["report"]["report_id"]


# ---------------------------------------------------------------------------- settings


def test_console_settings_section_and_validation(tmp_path, crafted):
    s = load_settings().console
    assert s.host == "127.0.0.1" and s.port == 8080 and s.reveal_seconds == 10 and s.session_idle_seconds == 900
    with pytest.raises(ConfigError, match="session_max_seconds"):
        load_settings(overrides={"console": {"session_idle_seconds": 600, "session_max_seconds": 60}})
    with pytest.raises(ConfigError, match="Extra inputs"):
        load_settings(overrides={"console": {"nope": 1}})
    with pytest.raises(ConsoleError, match="verdicts go nowhere"):
        create_app(console_config(tmp_path, crafted["paths"], crafted["reports_dir"], feedback_dir=None))
    with pytest.raises(ConsoleError, match="centre key"):
        create_app(console_config(tmp_path, crafted["paths"], crafted["reports_dir"],
                                  centre_key=str(tmp_path / "missing.pem")))
    with pytest.raises(ConsoleError, match="provider public key"):
        create_app(console_config(tmp_path, crafted["paths"], crafted["reports_dir"],
                                  provider_public_key=crafted["paths"]["centre_public_key"]))


# ------------------------------------------------------------------------------ login


def test_nothing_without_a_login(console, crafted):
    client, app, _ = console
    c = client()
    for path in ("/", f"/reports/{rid(crafted, 'known')}", f"/reports/{rid(crafted, 'known')}/evidence/blurred", "/audit"):
        r = c.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/login", path
    r = c.post(f"/reports/{rid(crafted, 'known')}/reveal", headers={"Accept": "application/json"})
    assert r.status_code == 401
    r = c.post(f"/reports/{rid(crafted, 'known')}/verdict", data={"verdict": "confirmed"}, follow_redirects=False)
    assert r.status_code == 401
    assert c.get("/static/console.js").status_code == 200  # static files only


def test_password_hashed_with_argon2id(console):
    _, app, _ = console
    assert app.state.console.store.get_user("rita")["pw_hash"].startswith("$argon2id$")
    with pytest.raises(AuthError):
        hash_password("short")
    assert verify_password(password_hash(), PASSWORD) and not verify_password(password_hash(), PASSWORD + "x")
    assert not verify_password(None, PASSWORD)  # unknown user: a dummy hash is checked, never True


def test_wrong_password_refused_and_audited_without_content(console, tmp_path):
    client, _, _ = console
    c = client()
    r = login(c, "rita", "wrong password, definitely")
    assert r.status_code == 401 and "Wrong user name or password" in r.text
    assert "csadetect_session" not in r.cookies
    assert c.get("/", follow_redirects=False).status_code == 303
    r = login(c, "nobody-here", "another wrong password")
    assert r.status_code == 401 and "Wrong user name or password" in r.text  # same answer for an unknown user
    failed = [e for e in audit_file(tmp_path) if e["action"] == "login_failed"]
    assert [e["user"] for e in failed] == ["rita", None]  # unknown names are not written down
    text = (tmp_path / "centre" / "audit.jsonl").read_text()
    assert "wrong password" not in text and "nobody-here" not in text
    assert login(c, "rita").status_code == 303


def test_login_throttled_after_repeated_failures(console):
    client, _, clock = console
    c = client()
    for _ in range(5):
        assert login(c, "rita", "not the password at all").status_code == 401
    r = login(c, "rita")  # the right password, but locked out
    assert r.status_code == 429 and "Too many failed logins" in r.text
    clock.advance(301)
    assert login(c, "rita").status_code == 303


def test_login_form_needs_its_csrf_token(console):
    client, _, _ = console
    c = client()
    c.get("/login")
    r = c.post("/login", data={"username": "rita", "password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 403
    r = c.post("/login", data={"username": "rita", "password": PASSWORD, "csrf_token": "forged"}, follow_redirects=False)
    assert r.status_code == 403


def test_session_cookie_flags(console, tmp_path, crafted):
    client, _, _ = console
    r = login(client(), "rita")
    cookie = r.headers["set-cookie"]
    assert "csadetect_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Secure" not in cookie
    app = create_app(console_config(tmp_path / "tls", crafted["paths"], crafted["reports_dir"], secure_cookie=True))
    add_users(app.state.console.store)
    with TestClient(app, base_url="https://testserver") as c:
        assert "Secure" in login(c, "rita").headers["set-cookie"]


def test_session_idle_timeout_and_absolute_lifetime(console):
    client, _, clock = console
    c = client()
    assert login(c, "rita").status_code == 303
    clock.advance(899)
    assert c.get("/", follow_redirects=False).status_code == 200
    clock.advance(901)  # idle longer than session_idle_seconds (900)
    r = c.get("/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?expired=1"
    assert "timed out" in c.get("/login?expired=1").text
    # busy all day: a request every 10 minutes still ends at session_max_seconds (8 h)
    assert login(c, "rita").status_code == 303
    for _ in range(47):
        clock.advance(600)
        assert c.get("/", follow_redirects=False).status_code == 200
    clock.advance(601)
    assert c.get("/", follow_redirects=False).headers["location"] == "/login?expired=1"


def test_logout_ends_the_session(console, tmp_path):
    client, _, _ = console
    c = client()
    login(c, "rita")
    token = csrf_of(c)
    assert c.post("/logout", data={}, follow_redirects=False).status_code == 403  # CSRF on logout too
    r = c.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?bye=1"
    assert c.get("/", follow_redirects=False).status_code == 303
    tail = audit_file(tmp_path)[-4:]  # the refusals are audited too
    assert [(e["action"], e["user"], e["detail"]) for e in tail] == [
        ("login", "rita", None), ("refused", "rita", "403 POST /logout csrf"), ("logout", "rita", None),
        ("refused", None, "401 GET / no_session")]


# ------------------------------------------------------------------------------ queue


def test_queue_urgent_first_then_oldest(console, crafted):
    client, _, _ = console
    c = client()
    login(c, "rita")
    html = c.get("/").text
    assert queue_ids(html) == [rid(crafted, n) for n in QUEUE_ORDER]
    assert html.count("badge urgent") == 2


def test_queue_filters_and_counts(console, crafted):
    client, _, _ = console
    c = client()
    login(c, "rita")
    assert queue_ids(c.get("/?detection_type=known").text) == [rid(crafted, n) for n in ("known_urgent", "tampered", "known")]
    assert queue_ids(c.get("/?detector=grooming-text").text) == [rid(crafted, "grooming")]
    assert queue_ids(c.get("/?provider=other-provider").text) == [rid(crafted, "new")]
    html = c.get("/").text
    assert re.search(r'id="count-open">5<', html) and re.search(r'id="count-new">5<', html)
    c.get(f"/reports/{rid(crafted, 'known')}")  # opening a report puts it in review
    html = c.get("/?status=in_review").text
    assert queue_ids(html) == [rid(crafted, "known")]
    assert re.search(r'id="count-in_review">1<', html) and re.search(r'id="count-new">4<', html)
    assert queue_ids(c.get("/?status=confirmed").text) == []


def test_store_dedupes_reports_read_from_jsonl_and_parquet(console):
    _, app, _ = console
    ingest = app.state.console.ingest
    ingest.read_store(app.state.console.config.reports_dir)  # read again: nothing new, nothing re-read
    assert app.state.console.store.counts({})["all"] == 5
    assert ingest.counts["added"] == 5 and ingest.counts["duplicate"] == 5  # the Parquet copy of each


def test_invalid_reports_are_counted_not_shown(console, tmp_path):
    _, app, _ = console
    ingest = app.state.console.ingest
    assert ingest.add("not a report") == "invalid"
    assert ingest.add({"report_id": "not-hex", "created_at": "2026-11-28T10:00:00Z"}) == "invalid"
    assert ingest.add({"report_id": "ab" * 16, "created_at": "yesterday", "detection_type": "known"}) == "invalid"
    assert ingest.add({"report_id": "ab" * 16, "surprise": 1}) == "invalid"
    assert app.state.console.store.counts({})["all"] == 5


# ----------------------------------------------------------------------------- detail


def test_report_detail_shows_every_art13_field_and_the_detection(console, crafted):
    client, _, _ = console
    c = client()
    login(c, "rita")
    html = c.get(f"/reports/{rid(crafted, 'known')}").text
    for name in REPORT_SCHEMA.names:
        assert f'data-field="{name}"' in html, name
    text = htmllib.unescape(html)
    for label in FIELD_LABELS.values():
        assert label in text
    assert "ind-a-pdq" in html and "bits (of 256)" in html and "ind-a-md5" in html  # indicators with distances
    assert "✓ provider signature verified" in html
    html = c.get(f"/reports/{rid(crafted, 'new')}").text
    assert 'id="score">0.971<' in html and 'id="threshold">0.934<' in html and "newmat-ref-0.1" in html
    html = c.get(f"/reports/{rid(crafted, 'grooming')}").text
    assert html.count('class="bubble side-') == len(CHAT)
    assert html.count(" evidence\" data-index=") == 3  # the evidence messages are highlighted
    for pattern in ("age_check", "secrecy", "meeting"):
        assert f'chip pattern" title="pattern score">{pattern}' in html
    for _, line in CHAT:  # texts only after a reveal
        if len(line) > 3:
            assert htmllib.escape(line) not in html and line not in html
    assert "URGENT" in html


def test_evidence_never_in_the_page_before_reveal_and_blurred_view_is_greyscale(console, crafted):
    client, _, _ = console
    c = client()
    login(c, "rita")
    item = crafted["reports"]["known"]
    r = c.get(f"/reports/{rid(crafted, 'known')}")
    assert r.headers["cache-control"] == "no-store"
    page = r.content
    assert item["content"][:64] not in page and base64.b64encode(item["content"][:300])[:64] not in page
    assert b"data:image" not in page and b"/evidence/" not in page.replace(b"/evidence/blurred", b"")
    blurred = c.get(f"/reports/{rid(crafted, 'known')}/evidence/blurred")
    assert blurred.status_code == 200 and blurred.headers["content-type"] == "image/png"
    assert blurred.headers["cache-control"] == "no-store"
    img = Image.open(io.BytesIO(blurred.content))
    assert img.mode == "L"  # one channel: greyscale
    rgb = np.asarray(img.convert("RGB"), dtype=np.int16)
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
    # heavily blurred: next to no fine detail (what a small blur would remove) is left
    from PIL import ImageFilter

    def detail(im):
        im = im.convert("L")
        return np.abs(np.asarray(im, dtype=np.float64)
                      - np.asarray(im.filter(ImageFilter.GaussianBlur(2)), dtype=np.float64)).mean()

    assert detail(img) < 0.1 * detail(item["image"].resize(img.size))
    # the clear picture is not reachable without a reveal
    assert c.get("/evidence/" + "A" * 43).status_code == 410


def test_reveal_is_a_csrf_post_audited_counted_one_time_and_short_lived(console, crafted, tmp_path):
    client, _, clock = console
    c = client()
    login(c, "rita")
    known = rid(crafted, "known")
    c.get(f"/reports/{known}")
    r = c.post(f"/reports/{known}/reveal", headers={"Accept": "application/json"})
    assert r.status_code == 403  # no CSRF token
    token = csrf_of(c)
    r = c.post(f"/reports/{known}/reveal", headers={"X-CSRF-Token": token, "Accept": "application/json"})
    assert r.status_code == 200
    body = r.json()
    assert body["kind"] == "image" and body["seconds"] == 10 and body["exposures"] == 1 and not body["break_due"]
    last = audit_file(tmp_path)[-1]
    assert (last["user"], last["action"], last["report_id"]) == ("rita", "reveal_evidence", known)
    clear = c.get(body["url"])
    assert clear.status_code == 200 and clear.headers["cache-control"] == "no-store"
    shown = Image.open(io.BytesIO(clear.content)).convert("RGB")
    assert shown.size == crafted["reports"]["known"]["image"].size
    assert np.abs(np.asarray(shown, dtype=np.int16) - np.asarray(crafted["reports"]["known"]["image"], dtype=np.int16)).mean() < 4
    assert c.get(body["url"]).status_code == 410  # one time
    # short-lived, and bound to the session that revealed it
    url = c.post(f"/reports/{known}/reveal", headers={"X-CSRF-Token": token, "Accept": "application/json"}).json()["url"]
    other = client()
    login(other, "vera")
    assert other.get(url).status_code == 410
    clock.advance(11)
    assert c.get(url).status_code == 410
    assert 'id="exposure-count">2<' in c.get("/").text
    # the conversation: texts only through the reveal
    groom = rid(crafted, "grooming")
    body = c.post(f"/reports/{groom}/reveal", headers={"X-CSRF-Token": token, "Accept": "application/json"}).json()
    assert body["kind"] == "conversation"
    texts = c.get(body["url"]).json()["messages"]
    assert [m["text"] for m in texts] == [t for _, t in CHAT]


def test_break_reminder_after_the_configured_number_of_reveals(tmp_path, crafted):
    app = create_app(console_config(tmp_path, crafted["paths"], crafted["reports_dir"], break_after_reveals=2))
    add_users(app.state.console.store)
    with TestClient(app) as c:
        login(c, "rita")
        token = csrf_of(c)
        known = rid(crafted, "known")
        h = {"X-CSRF-Token": token, "Accept": "application/json"}
        assert not c.post(f"/reports/{known}/reveal", headers=h).json()["break_due"]
        assert c.post(f"/reports/{known}/reveal", headers=h).json()["break_due"]
        page = c.get(f"/reports/{known}").text
        assert 'class="overlay" id="break"' in page  # the reminder shows until acknowledged
        r = c.post(f"/reports/{known}/reveal", headers=h)
        assert r.status_code == 409 and r.json()["error"] == "break_due"
        assert c.post("/break", headers={"Accept": "application/json"}).status_code == 403  # CSRF
        assert c.post("/break", headers=h).status_code == 200
        assert 'class="overlay hidden" id="break"' in c.get("/").text
        assert c.post(f"/reports/{known}/reveal", headers=h).json()["exposures"] == 3


def test_security_headers_on_every_response(console, crafted):
    client, _, _ = console
    c = client()
    login(c, "rita")
    known = rid(crafted, "known")
    for path in ("/login", "/", f"/reports/{known}", f"/reports/{known}/evidence/blurred", "/no-such-page"):
        h = c.get(path).headers
        assert h["x-frame-options"] == "DENY", path
        assert h["referrer-policy"] == "no-referrer"
        assert h["x-content-type-options"] == "nosniff"
        csp = h["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
        assert h["cache-control"] == "no-store"
    html = c.get(f"/reports/{known}").text
    assert "<script>" not in html and " style=" not in html and "http://" not in html and "https://" not in html


def test_every_post_needs_the_csrf_token(console, crafted):
    client, app, _ = console
    c = client()
    login(c, "sam")
    known = rid(crafted, "known")
    posts = [r.path for r in iter_route_contexts(app.routes) if "POST" in (r.methods or set()) and r.path != "/login"]
    assert set(posts) == {"/logout", "/reports/{report_id}/reveal", "/break", "/reports/{report_id}/verdict",
                          "/reports/{report_id}/info-request", "/reports/{report_id}/release",
                          "/reports/{report_id}/archive"}
    form = {"verdict": "confirmed", "reason": "matches_known_indicator", "missing": "device"}
    for path in posts:
        url = path.replace("{report_id}", known)
        assert c.post(url, data=form, follow_redirects=False).status_code == 403, path
        assert c.post(url, data=dict(form, csrf_token="forged"), follow_redirects=False).status_code == 403, path
        assert c.post(url, headers={"X-CSRF-Token": "forged"}, follow_redirects=False).status_code == 403, path
    assert c.app.state.console.store.verdicts(known) == []


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


# ------------------------------------------------------------------------------- audit


def test_audit_log_is_append_only_and_holds_no_content(console, crafted, tmp_path):
    client, app, _ = console
    c = client()
    login(c, "rita")
    known = rid(crafted, "known")
    groom = rid(crafted, "grooming")
    token = csrf_of(c)
    h = {"X-CSRF-Token": token, "Accept": "application/json"}
    for report in (known, groom):
        c.get(f"/reports/{report}")
        c.get(c.post(f"/reports/{report}/reveal", headers=h).json()["url"])
    c.post(f"/reports/{groom}/verdict", follow_redirects=False, data={
        "csrf_token": token, "verdict": "confirmed", "reason": "grooming_confirmed", "note": "clear meeting request"})
    store = app.state.console.store
    for sql in ("UPDATE audit SET user = 'mallory'", "DELETE FROM audit", "UPDATE verdicts SET verdict = 'confirmed'",
                "DELETE FROM verdicts"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            store.execute(sql)
    table = list(reversed(store.audit_entries()))
    mirror = audit_file(tmp_path)
    assert mirror == table  # the JSON Lines mirror holds exactly the table
    assert all(set(e) == {"seq", "at", "user", "action", "report_id", "detail", "prev_hash", "hash"} for e in mirror)
    assert [e["action"] for e in mirror] == ["user_added"] * 3 + [
        "login", "view_report", "claim", "reveal_evidence", "fetch_evidence", "view_report", "claim",
        "reveal_evidence", "fetch_evidence", "verdict"]
    text = json.dumps([{k: v for k, v in e.items() if k not in ("prev_hash", "hash")} for e in mirror])
    assert (tmp_path / "centre" / "audit.jsonl").read_text().count("\n") == len(mirror)
    forbidden = [t for _, t in CHAT if len(t) > 3] + ["clear meeting request", "acct-", "conv-risk", PASSWORD,
                                         crafted["reports"]["known"]["report"]["content_md5"],
                                         crafted["reports"]["known"]["report"]["content_pdq"]]
    assert not [f for f in forbidden if f in text]
    with pytest.raises(StoreError):
        store.audit(T0, "rita", "exported_everything")
    with pytest.raises(StoreError):
        store.audit(T0, "rita", "view_report", "free text is not a report id")


def test_audit_page_for_supervisors_only(console):
    client, _, _ = console
    rita, sam = client(), client()
    login(rita, "rita")
    login(sam, "sam")
    assert rita.get("/audit").status_code == 403
    page = sam.get("/audit")
    assert page.status_code == 200 and "append-only" in page.text.lower() and "<code>login</code>" in page.text
    assert "<code>403 GET /audit role</code>" in page.text  # rita's refusal, on the page


# ----------------------------------------------------------------------- store contract


@pytest.fixture(params=["sqlite", "memory"])
def store(request, tmp_path):
    """Each implementation of the storage interface, mirroring its audit log to ``audit.jsonl``."""
    audit_log = str(tmp_path / "audit.jsonl")
    s = (SQLiteConsoleStore(str(tmp_path / "c.db"), audit_log) if request.param == "sqlite"
         else MemoryConsoleStore(audit_log))
    yield s
    s.close()


def test_store_contract_users_and_sessions(store):
    assert store.add_user("ann", "h1", "reviewer", T0) == "user_added"
    for bad in (("ann", "reviewer"), ("bad name!", "reviewer"), ("bob", "admin")):
        with pytest.raises(StoreError):
            store.add_user(bad[0], "h", bad[1], T0)
    store.create_session("t1", "ann", "c1", T0)
    store.touch_session("t1", T0 + 5)
    assert store.add_exposure("t1") == {"exposures": 1, "break_base": 0}
    store.acknowledge_break("t1")
    assert store.get_session("t1") == {"token_hash": "t1", "username": "ann", "csrf": "c1", "created_at": T0,
                                       "last_seen": T0 + 5, "exposures": 1, "break_base": 1, "role": "reviewer"}
    assert store.add_user("ann", "h2", "supervisor", T0, replace=True) == "user_changed"
    assert store.get_session("t1") is None  # a changed user logs in again
    store.set_password_hash("ann", "h3")
    assert store.get_user("ann") == {"username": "ann", "pw_hash": "h3", "role": "supervisor",
                                     "created_at": "2026-11-28T12:00:00Z"}
    assert store.users() == [{"username": "ann", "role": "supervisor", "created_at": "2026-11-28T12:00:00Z"}]
    assert store.user_count() == 1 and store.get_user("bob") is None
    for token, at in (("idle", T0), ("old", T0 - 1000), ("busy", T0)):
        store.create_session(token, "ann", "c", at)
    store.touch_session("busy", T0 + 100)
    assert store.purge_sessions(idle_before=T0 + 50, created_before=T0 - 500) == 2
    assert [t for t in ("idle", "old", "busy") if store.get_session(t)] == ["busy"]
    store.delete_session("busy")
    assert store.get_session("busy") is None


def test_store_contract_reports_and_queue(store, crafted):
    reports = {name: item["report"] for name, item in crafted["reports"].items()}
    ids = {name: r["report_id"] for name, r in reports.items()}
    for name, r in reports.items():
        assert store.add_report(r, "invalid" if name == "tampered" else "verified", None, T0)
    assert not store.add_report(reports["known"], "verified", None, T0)  # one per report_id
    with pytest.raises(StoreError):
        store.add_report(dict(reports["known"], report_id="not-hex"), "verified", None, T0)
    with pytest.raises(StoreError):
        store.add_report(dict(reports["known"], report_id="ab" * 16), "perhaps", None, T0)
    assert store.queue_ids() == [ids[n] for n in QUEUE_ORDER]
    rows, total = store.queue({"status": "open"}, limit=2)
    assert total == 5 and [r["report_id"] for r in rows] == [ids[n] for n in QUEUE_ORDER[:2]]
    assert rows[0]["report"] == reports["grooming"] and rows[0]["status"] == "new" and rows[0]["urgent"] == 1
    rows, _ = store.queue({"detection_type": "known", "status": "all"})
    assert [r["report_id"] for r in rows] == [ids[n] for n in ("known_urgent", "tampered", "known")]
    assert store.facets() == {"detection_type": ["grooming", "known", "new"],
                              "detector": ["grooming-text", "known-hash", "new-material-classifier"],
                              "provider_id": ["demo-provider", "other-provider"]}
    store.mark_in_review(ids["known"])
    assert store.get_report(ids["known"])["status"] == "in_review"
    assert store.get_report(ids["tampered"])["signature_status"] == "invalid"
    assert store.counts({"detection_type": "known", "status": "confirmed"}) == {
        "new": 2, "in_review": 1, "info_requested": 0, "confirmed": 0, "manifestly_unfounded": 0, "archived": 0,
        "open": 3, "all": 3}
    assert store.queue_ids("in_review") == [ids["known"]]
    assert store.has_report(ids["new"]) and not store.has_report("ab" * 16) and store.get_report("ab" * 16) is None


def test_store_contract_decisions_outbox_and_audit(store, crafted, tmp_path):
    store.add_user("rita", "h", "reviewer", T0)
    store.add_user("sam", "h", "supervisor", T0)
    known, new = (crafted["reports"][n]["report"] for n in ("known", "new"))
    for r in (known, new):
        store.add_report(r, "verified", None, T0)
    known, new = known["report_id"], new["report_id"]
    first = {"report_id": known, "verdict": "confirmed", "reason": "matches_known_indicator",
             "decided_at": "2026-11-28T12:00:00Z", "delay_notification": False}
    v1 = store.add_verdict(dict(first), "seen", "rita", None, first, T0, "verdict")
    with pytest.raises(StoreError, match="in the meantime"):
        store.add_verdict(dict(first), None, "sam", None, first, T0, "verdict_changed")
    second = dict(first, verdict="manifestly_unfounded", reason="benign_content", decided_at="2026-11-28T12:00:01Z")
    v2 = store.add_verdict(dict(second), None, "sam", v1, second, T0, "verdict_changed")
    assert [(v["id"], v["verdict"], v["decided_by"], v["supersedes"], v["note"]) for v in store.verdicts(known)] == [
        (v1, "confirmed", "rita", None, "seen"), (v2, "manifestly_unfounded", "sam", v1, None)]
    assert store.latest_verdict(known)["id"] == v2 and store.latest_verdict(new) is None
    assert store.get_report(known)["status"] == "manifestly_unfounded"
    request = {"request_id": "a" * 32, "report_id": new, "provider_id": "other-provider", "missing": ["device"],
               "note": None, "requested_at": "2026-11-28T12:00:00Z"}
    store.add_info_request(request, "rita", T0)
    assert [(r["missing"], r["requested_by"]) for r in store.info_requests(new)] == [(["device"], "rita")]
    assert store.get_report(new)["status"] == "info_requested"
    with pytest.raises(StoreError, match="verdict already"):
        store.add_info_request(dict(request, request_id="b" * 32, report_id=known), "rita", T0)
    pending = store.pending_outbox()
    assert [(o["kind"], o["report_id"], o["payload"]) for o in pending] == [
        ("verdict", known, first), ("verdict", known, second), ("info_request", new, request)]
    store.outbox_progress(pending[0]["id"], True, True, None)
    store.outbox_progress(pending[1]["id"], True, False, "publishing to t: TimeoutError")
    assert [o["id"] for o in store.pending_outbox()] == [pending[1]["id"], pending[2]["id"]]
    assert [{k: o[k] for k in ("kind", "file_done", "topic_done", "attempts", "last_error")}
            for o in store.outbox_for(known)] == [
        {"kind": "verdict", "file_done": 1, "topic_done": 1, "attempts": 1, "last_error": None},
        {"kind": "verdict", "file_done": 1, "topic_done": 0, "attempts": 1, "last_error": "publishing to t: TimeoutError"}]
    assert {k for o in store.outbox_for(known) for k in o} == {
        "id", "kind", "created_at", "file_done", "topic_done", "attempts", "last_error"}
    assert store.audit(T0, "rita", "view_report", known)["seq"] == 6
    for bad in (("rita", "exported_everything", None), ("rita", "view_report", "free text"), ("no one!", "login", None)):
        with pytest.raises(StoreError):
            store.audit(T0, *bad)
    entries = store.audit_entries()
    assert [(e["seq"], e["action"]) for e in entries] == [
        (6, "view_report"), (5, "request_info"), (4, "verdict_changed"), (3, "verdict"), (2, "user_added"),
        (1, "user_added")]
    assert store.audit_entries(2, known) == [entries[0], entries[2]]
    mirror = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert mirror == list(reversed(entries))


def test_console_on_the_in_memory_store(tmp_path, crafted):
    """A walk through every area of the console on the second implementation of the interface."""
    cfg = console_config(tmp_path, crafted["paths"], crafted["reports_dir"])
    app = create_app(cfg, clock=Clock(), store=MemoryConsoleStore(cfg.audit_log))
    add_users(app.state.console.store)
    known, new = rid(crafted, "known"), rid(crafted, "new")
    with TestClient(app) as c:
        assert login(c, "sam").status_code == 303
        assert queue_ids(c.get("/").text) == [rid(crafted, n) for n in QUEUE_ORDER]
        assert "ind-a-pdq" in c.get(f"/reports/{known}").text
        assert c.get(f"/reports/{known}/evidence/blurred").headers["content-type"] == "image/png"
        h = {"X-CSRF-Token": csrf_of(c), "Accept": "application/json"}
        assert c.get(c.post(f"/reports/{known}/reveal", headers=h).json()["url"]).status_code == 200
        assert c.post("/break", headers=h).status_code == 200
        assert c.post(f"/reports/{known}/verdict", headers=h, follow_redirects=False, data={
            "verdict": "confirmed", "reason": "matches_known_indicator"}).status_code == 303
        assert c.post(f"/reports/{new}/info-request", headers=h, follow_redirects=False,
                      data={"missing": ["device"]}).status_code == 303
        assert "<code>request_info</code>" in c.get("/audit").text
        assert c.post("/logout", headers=h, follow_redirects=False).status_code == 303
    assert [m["report_id"] for m in records(tmp_path / "centre" / "verdicts")] == [known]
    assert [e["action"] for e in audit_file(tmp_path)][3:] == [
        "login", "view_report", "claim", "view_blurred", "reveal_evidence", "fetch_evidence", "verdict",
        "request_info", "logout"]


def test_the_console_uses_its_store_through_the_interface_only():
    """Routes, ingest and the CLI call only what :class:`ConsoleStorage` declares."""
    declared = {name for name in dir(ConsoleStorage) if not name.startswith("_")}
    sources = [*Path(csadetect.console.__file__).parent.rglob("*.py"), Path(csadetect.cli.console.__file__)]
    used = {name for path in sources if "storage" not in path.parts
            for name in re.findall(r"\bstore\.(\w+)", path.read_text())}
    assert used and used <= declared, used - declared


# ------------------------------------------------ hardening (issue 12): throttling, refusals, hash chain


def audit_of(app, action: str) -> list[dict]:
    return [e for e in reversed(app.state.console.store.audit_entries(5000)) if e["action"] == action]


def test_throttle_per_account_behind_a_shared_proxy_with_exponential_backoff(console):
    """Every TestClient comes from the same address, as reviewers behind one proxy do: rita's
    bad guesses lock rita out (with a growing wait), not sam or vera."""
    client, app, clock = console
    mallory, sam, vera, rita = client(), client(), client(), client()
    for _ in range(5):
        assert login(mallory, "rita", "not the password at all").status_code == 401
    r = login(rita, "rita")  # the right password, but rita's name is locked for now
    assert r.status_code == 429 and "Too many failed logins" in r.text and r.headers["retry-after"] == "1"
    assert login(sam, "sam").status_code == 303  # another account from the same address still works
    assert login(vera, "vera").status_code == 303
    waits = []
    for _ in range(4):  # each further failure doubles the wait: 2, 4, 8, 16 s
        clock.advance(waits[-1] if waits else 1)
        assert login(mallory, "rita", "still not the password").status_code == 401
        r = login(rita, "rita")
        assert r.status_code == 429
        waits.append(int(r.headers["retry-after"]))
    assert waits == [2, 4, 8, 16]
    for _ in range(10):  # ... up to login_lockout_seconds
        clock.advance(waits[-1])
        assert login(mallory, "rita", "still not the password").status_code == 401
        waits.append(int(login(rita, "rita").headers["retry-after"]))
    assert waits[-1] == 300 and max(waits) == 300
    clock.advance(299)
    assert login(rita, "rita").status_code == 429
    clock.advance(1)
    assert login(rita, "rita").status_code == 303  # and a good login clears rita's count
    assert login(client(), "rita", "a typo after that").status_code == 401
    assert login(client(), "rita").status_code == 303
    blocked = audit_of(app, "login_blocked")
    assert blocked and {(e["user"], e["detail"]) for e in blocked} == {("rita", "429 POST /login throttled")}


def test_throttle_per_client_address_and_unknown_names(tmp_path, crafted):
    """One address trying many names is held back at login_max_failures_per_client; another
    address is not. Unknown and malformed names are throttled like real ones."""
    clock = Clock()
    app = create_app(console_config(tmp_path, crafted["paths"], crafted["reports_dir"],
                                    login_max_failures_per_client=8), clock=clock)
    add_users(app.state.console.store)
    sprayer = TestClient(app, client=("203.0.113.7", 4000))
    for i in range(8):
        assert login(sprayer, f"guess-{i}", "a guessed password").status_code == 401
    assert login(sprayer, "sam").status_code == 429  # the address is held back, whatever the name
    assert login(TestClient(app, client=("198.51.100.2", 4000)), "sam").status_code == 303
    other = TestClient(app, client=("198.51.100.3", 4000))
    for _ in range(5):
        assert login(other, "bad name!", "x" * 12).status_code == 401
    assert login(other, "another bad name!", "x" * 12).status_code == 429  # malformed names share one key
    assert [e["user"] for e in audit_of(app, "login_blocked")] == ["sam", None]  # a name only when it exists


def test_blocked_attempts_cost_no_argon2_work(console, monkeypatch):
    client, app, _ = console
    calls = []
    real = auth_module.PasswordHasher.verify

    def counting(self, *a, **kw):
        calls.append(1)
        return real(self, *a, **kw)

    monkeypatch.setattr(auth_module.PasswordHasher, "verify", counting)
    c = client()
    for _ in range(5):
        login(c, "rita", "not the password at all")
    assert len(calls) == 5
    for _ in range(40):
        assert login(c, "rita", "not the password at all").status_code == 429
    assert login(c, "rita").status_code == 429
    assert len(calls) == 5  # refused before any hashing
    assert len(audit_of(app, "login_blocked")) == 41


def test_throttle_counts_attempts_running_at_the_same_time():
    """40 attempts at once for one name: only the first login_max_failures get to a password check."""
    throttle = auth_module.LoginThrottle(5, 300, max_failures_per_client=50)
    barrier = threading.Barrier(40)
    passed = []

    def attempt():
        barrier.wait()
        if throttle.begin("rita", "10.0.0.1", T0)[1] is not None:
            passed.append(1)

    threads = [threading.Thread(target=attempt) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(passed) == 5
    assert throttle.wait("sam", "10.0.0.1", T0) == 0  # the address (limit 50) is not held back
    throttle = auth_module.LoginThrottle(5, 300, max_keys=100)
    for i in range(1000):  # memory stays bounded whatever names are tried
        throttle.begin(f"name-{i}", f"client-{i}", T0)
    assert len(throttle._accounts.keys) == 100 and len(throttle._clients.keys) == 100
    with pytest.raises(ConfigError, match="login_forget_seconds"):
        load_settings(overrides={"console": {"login_lockout_seconds": 600, "login_forget_seconds": 60}})


def test_every_refusal_and_every_evidence_fetch_is_audited(console, crafted):
    client, app, _ = console
    known, groom = rid(crafted, "known"), rid(crafted, "grooming")
    anon = client()
    assert anon.get(f"/reports/{known}/evidence/blurred", follow_redirects=False).status_code == 303
    assert anon.post(f"/reports/{known}/reveal", headers={"Accept": "application/json"}).status_code == 401
    assert anon.get(f"/reports/{'ab' * 16}?q=anything", follow_redirects=False).status_code == 303
    anon.get("/login")
    assert anon.post("/login", data={"username": "rita", "password": PASSWORD, "csrf_token": "forged"}).status_code == 403
    rita, sam = client(), client()
    login(rita, "rita")
    login(sam, "sam")
    h = {"X-CSRF-Token": csrf_of(rita), "Accept": "application/json"}
    assert rita.post(f"/reports/{known}/reveal", headers={"Accept": "application/json"}).status_code == 403
    assert rita.get("/audit").status_code == 403
    assert rita.get(f"/reports/{known}/evidence/blurred").status_code == 200
    url = rita.post(f"/reports/{known}/reveal", headers=h).json()["url"]
    assert sam.get(url).status_code == 410  # another session's link
    assert rita.get(url).status_code == 200
    assert rita.get(url).status_code == 410  # spent
    assert rita.post(f"/reports/{groom}/verdict", headers=h, follow_redirects=False, data={
        "verdict": "confirmed", "reason": "grooming_confirmed"}).status_code == 303
    assert rita.post(f"/reports/{groom}/verdict", headers=h, data={
        "verdict": "manifestly_unfounded", "reason": "benign_content"}).status_code == 403
    refused = [(e["user"], e["report_id"], e["detail"]) for e in audit_of(app, "refused")]
    assert refused == [
        (None, known, "401 GET /reports/{report_id}/evidence/blurred no_session"),
        (None, known, "401 POST /reports/{report_id}/reveal no_session"),
        (None, None, "401 GET /reports/{report_id} no_session"),  # a made-up id is not written down
        (None, None, "403 POST /login login_csrf"),
        ("rita", known, "403 POST /reports/{report_id}/reveal csrf"),
        ("rita", None, "403 GET /audit role"),
        ("sam", None, "410 GET /evidence/{token} link_expired"),
        ("rita", None, "410 GET /evidence/{token} link_expired"),
        ("rita", groom, "403 POST /reports/{report_id}/verdict role"),
    ]
    assert [(e["user"], e["report_id"]) for e in audit_of(app, "view_blurred")] == [("rita", known)]
    assert [(e["user"], e["report_id"]) for e in audit_of(app, "fetch_evidence")] == [("rita", known)]
    text = json.dumps(app.state.console.store.audit_entries(5000))
    assert not [s for s in (url.rsplit("/", 1)[1], "forged", PASSWORD, "ab" * 16, "anything") if s in text]


def test_store_contract_audit_is_hash_chained(store, tmp_path):
    store.add_user("rita", "h", "reviewer", T0)
    store.audit(T0, "rita", "login")
    store.audit(T0, None, "refused", None, "401 GET / no_session")
    for bad in ("401 GET https://x/?q=secret no_session", "free text", "401 GET / Reason With Caps"):
        with pytest.raises(StoreError):
            store.audit(T0, None, "refused", None, bad)
    entries, issued = store.audit_chain()
    assert [e["seq"] for e in entries] == [1, 2, 3] and issued == 3
    assert entries[0]["prev_hash"] == chain.GENESIS and entries[1]["prev_hash"] == entries[0]["hash"]
    assert all(e["hash"] == hashlib.sha256(chain.canonical(e)).hexdigest() for e in entries)
    assert chain.verify(entries, issued, str(tmp_path / "audit.jsonl")) == (
        None, {"entries": 3, "head": entries[-1]["hash"], "mirror_entries": 3})
    assert store.audit_entries() == list(reversed(entries))


def _verify(db, log, capsys) -> tuple[int, str]:
    code = main(["console", "audit", "verify", "--db", str(db), "--audit-log", str(log)])
    captured = capsys.readouterr()
    return code, captured.err


def _copy_db(src: Path, dst: Path) -> Path:
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    return dst


def _tamper(db: Path, *sql: str) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("DROP TRIGGER audit_no_update")
    conn.execute("DROP TRIGGER audit_no_delete")
    for statement in sql:
        conn.execute(statement)
    conn.close()


def test_audit_verify_detects_any_change_or_deletion(console, crafted, tmp_path, capsys):
    client, app, _ = console
    c = client()
    login(c, "rita")
    known = rid(crafted, "known")
    c.get(f"/reports/{known}")
    c.get(c.post(f"/reports/{known}/reveal", headers={"X-CSRF-Token": csrf_of(c)}).json()["url"])
    c.get("/audit")  # refused: rita is no supervisor
    db, log = tmp_path / "centre" / "console.db", tmp_path / "centre" / "audit.jsonl"
    n = len(app.state.console.store.audit_chain()[0])
    assert n == 9  # 3 users added, login, view_report, claim, reveal, fetch, refused
    code, err = _verify(db, log, capsys)
    assert code == 0 and "audit log ok: 9 entries" in err
    lines = log.read_text().splitlines(keepends=True)

    def case(name, sql=(), mirror=None):
        d = _copy_db(db, tmp_path / f"{name}.db")
        if sql:
            _tamper(d, *sql)
        m = tmp_path / f"{name}.jsonl"
        m.write_text("".join(mirror if mirror is not None else lines))
        return _verify(d, m, capsys)

    # the database, edited with its triggers dropped
    assert case("changed", ["UPDATE audit SET user = 'sam' WHERE seq = 4"]) == (
        1, "error: audit log: database: entry seq 4 was changed (its hash does not match its content)\n")
    assert case("deleted", ["DELETE FROM audit WHERE seq = 5"])[1].endswith("database: entry seq 5 is missing\n")
    assert case("first", ["DELETE FROM audit WHERE seq = 1"])[1].endswith("database: entry seq 1 is missing\n")
    assert "entry seq 9 is missing (the newest was removed)" in case("newest", ["DELETE FROM audit WHERE seq = 9"])[1]
    code, err = case("newest-and-counter", ["DELETE FROM audit WHERE seq = 9",
                                            "UPDATE sqlite_sequence SET seq = 8 WHERE name = 'audit'"])
    assert code == 1 and "database: entry seq 9 is missing (it is in" in err
    rows = [dict(zip(chain.ENTRY_FIELDS, r)) for r in sqlite3.connect(db).execute(
        f"SELECT {', '.join(chain.ENTRY_FIELDS)} FROM audit ORDER BY seq")]
    forged, prev = [], None  # a consistent chain recomputed after a change: the mirror shows it
    for row in rows:
        row = chain.chained(dict(row, user="sam") if row["seq"] == 5 else row, row["seq"], prev)
        forged.append(row)
        prev = row["hash"]
    code, err = case("rechained", ["DELETE FROM audit"] + [
        "INSERT INTO audit (seq, at, user, action, report_id, detail, prev_hash, hash) VALUES ({})".format(
            ", ".join("NULL" if r[k] is None else str(r[k]) if k == "seq" else f"'{r[k]}'" for k in chain.ENTRY_FIELDS))
        for r in forged])
    assert code == 1 and "database and" in err and "differ at entry seq 5" in err
    # the JSON Lines mirror, edited or cut
    edited = list(lines)
    edited[2] = edited[2].replace('"user_added"', '"user_changed"')
    assert case("m-edit", mirror=edited)[1].endswith("m-edit.jsonl: entry seq 3 was changed (its hash does not match "
                                                     "its content)\n")
    assert case("m-delete", mirror=lines[:3] + lines[4:])[1].endswith("m-delete.jsonl: entry seq 4 is missing\n")
    assert "entry seq 9 is missing (it is in the database)" in case("m-cut", mirror=lines[:-1])[1]
    assert "line 2 is not JSON" in case("m-junk", mirror=[lines[0], "{not json\n"] + lines[2:])[1]
    assert main(["console", "audit", "verify", "--db", str(tmp_path / "nothing.db"), "--no-audit-log"]) == 1
    assert not (tmp_path / "nothing.db").exists()  # verify creates nothing
    assert "console database" in capsys.readouterr().err
    code = main(["console", "audit", "verify", "--db", str(db), "--no-audit-log"])
    assert code == 0 and json.loads(capsys.readouterr().out)["mirror_entries"] is None


def test_old_database_without_the_chain_fails_fast(tmp_path):
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE audit (seq INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, user TEXT, "
                 "action TEXT NOT NULL, report_id TEXT)")
    conn.close()
    with pytest.raises(StoreError, match="predates the hash-chained audit log"):
        SQLiteConsoleStore(str(db))


def _rss_kib(pid: int, field: str = "VmRSS") -> int:
    """The process's resident memory now (``VmRSS``) or at its peak so far (``VmHWM``), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field}")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_memory_of_40_blocked_logins_on_a_real_server(tmp_path, crafted):
    """The probe's case on ``csadetect console`` served by uvicorn: five wrong passwords, then 40
    attempts at once. Blocked attempts hash nothing, so the server's RSS hardly moves; 40
    attempts at once that are *not* blocked (40 names) wait for the 2 argon2 slots."""
    db, log = tmp_path / "c.db", tmp_path / "audit.jsonl"
    store = SQLiteConsoleStore(str(db), str(log))
    add_users(store)
    store.close()
    config = tmp_path / "console.yaml"
    config.write_text("console:\n  login_max_failures_per_client: 1000\n  login_backoff_seconds: 60\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "csadetect", "--config", str(config), "console", "--reports",
         str(crafted["reports_dir"]), "--port", str(port), "--db", str(db), "--audit-log", str(log),
         "--feedback-dir", str(tmp_path / "verdicts"), "--provider-requests-dir", str(tmp_path / "requests")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                page = httpx.get(f"{base}/login", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        cookies = {"csadetect_login_csrf": page.cookies["csadetect_login_csrf"]}

        def post(name, password="not the password at all"):
            return httpx.post(f"{base}/login", data={"username": name, "password": password, "csrf_token": token},
                              cookies=cookies, timeout=120).status_code

        for _ in range(5):
            assert post("rita") == 401
        settled = _rss_kib(server.pid)
        with ThreadPoolExecutor(40) as pool:
            codes = list(pool.map(lambda _: post("rita"), range(40)))
        blocked, blocked_peak = _rss_kib(server.pid), _rss_kib(server.pid, "VmHWM")
        with ThreadPoolExecutor(40) as pool:
            sprayed = list(pool.map(lambda i: post(f"guess-{i}"), range(40)))
        unblocked, unblocked_peak = _rss_kib(server.pid), _rss_kib(server.pid, "VmHWM")
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert codes == [429] * 40 and sprayed == [401] * 40
    figures = {"settled_mib": settled // 1024, "after_40_blocked_mib": blocked // 1024,
               "peak_by_then_mib": blocked_peak // 1024, "after_40_unblocked_at_once_mib": unblocked // 1024,
               "peak_with_them_mib": unblocked_peak // 1024}
    print("console login memory:", json.dumps(figures))
    assert blocked - settled < 32 * 1024, figures  # no argon2 (64 MiB each) for blocked attempts
    assert unblocked_peak - settled < 400 * 1024, figures  # two argon2 at a time, not 40


# --------------------------------------------------------------------------------- CLI


def test_cli_adduser_users_and_serve_refuses_without_users(tmp_path, monkeypatch, capsys, crafted):
    db = str(tmp_path / "c.db")
    common = ["--db", db, "--audit-log", str(tmp_path / "audit.jsonl")]
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["console", "adduser", "ann", "--role", "reviewer", "--password-stdin", *common]) == 1
    assert "at least 12 characters" in capsys.readouterr().err
    serve = ["console", "--reports", str(crafted["reports_dir"]), "--port", "0", *common]
    assert main(serve) == 1
    assert "no users" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["console", "adduser", "ann", "--role", "supervisor", "--password-stdin", *common]) == 0
    assert json.loads(capsys.readouterr().out)["action"] == "user_added"
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["console", "adduser", "ann", "--role", "reviewer", "--password-stdin", *common]) == 1
    assert "exists" in capsys.readouterr().err
    assert main(["console", "users", "--db", db]) == 0
    out = capsys.readouterr().out
    assert json.loads(out) == {"username": "ann", "role": "supervisor", "created_at": json.loads(out)["created_at"]}
    assert "argon2" not in out
    assert main(["console", "adduser", "bad name!", "--role", "reviewer", "--password-stdin", *common]) == 1
    with pytest.raises(SystemExit):
        main(["console", "--reports", "x", "--subscription", "projects/p/subscriptions/s"])


def test_cli_config_from_args_overrides_the_settings(tmp_path):
    args = argparse.Namespace(config=None, reports=None, subscription="projects/p/subscriptions/s", host=None, port=9000,
                              centre_key=None, provider_public_key=None, feedback_topic="projects/p/topics/v",
                              feedback_dir="", provider_requests_topic=None, provider_requests_dir=None,
                              db=str(tmp_path / "x.db"), audit_log=None, secure_cookie=True)
    cfg = config_from_args(args)
    assert cfg.subscription == "projects/p/subscriptions/s" and cfg.reports_dir is None
    assert cfg.port == 9000 and cfg.feedback_dir is None and cfg.feedback_topic == "projects/p/topics/v"
    assert cfg.secure_cookie and cfg.host == "127.0.0.1"


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
    feedback_run(["--report_glob", str(crafted["reports_dir"] / "*.jsonl"),
                  "--verdict_glob", str(tmp_path / "centre" / "verdicts" / "*.jsonl"), "--out_dir", str(out),
                  "--notifications_dir", "", "--min_verdicts", "1", "--now", "2026-11-28T12:00:00Z",
                  "--public_key", crafted["paths"]["provider_public_key"], "--runner", "FnApiRunner"])
    precision = {r["detector"]: r for r in records(out) if "precision" in r and "floor" not in r}
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
