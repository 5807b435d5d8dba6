"""Shared by the console's API tests (``tests/test_console*.py``): reports crafted as the pipeline
makes them (signed, evidence sealed for a test Centre key), the staff accounts, an injected
clock, logging in through the forms, reading the audit log and the published files, and the
fixtures ``crafted`` (the reports, once per module) and ``console`` (a started console on them);
a test module imports the fixtures it uses.

Every report here is benign and synthetic: generated pictures (``csadetect.media.synth``) and a
synthetic chat that shows grooming *risk patterns* and is never sexual."""
from __future__ import annotations

import glob
import json
import re
from datetime import datetime, timezone
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from csadetect.console.app import ConsoleConfig, create_app
from csadetect.console.auth import hash_password
from csadetect.media import synth
from csadetect.reports import crypto
from csadetect.reports.schema import REPORT_SCHEMA, report_id, to_json_line, to_table
from tests.conftest import make_report_keys

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


def audit_of(app, action: str) -> list[dict]:
    return [e for e in reversed(app.state.console.store.audit_entries(5000)) if e["action"] == action]


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
