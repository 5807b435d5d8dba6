"""What a reviewer sees in the review console (issue 5): the queue (urgent first, then the
oldest; filters and counts), reports read from JSON Lines and Parquet once each and invalid ones
counted, not shown; the report page with every Art. 13 field and the detection; evidence never in
the page before a reveal and the blurred view greyscale and heavily blurred (pixels checked); the
reveal (a CSRF POST, audited, counted, one-time, short-lived, bound to the session); the break
reminder; and the security headers on every response.

FastAPI's TestClient against the app, on the reports of console_helpers.py (benign and
synthetic)."""
from __future__ import annotations

import base64
import html as htmllib
import io
import re

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image

from csadetect.console.app import create_app
from csadetect.console.views import FIELD_LABELS
from csadetect.reports.schema import REPORT_SCHEMA
from tests.console_helpers import (CHAT, QUEUE_ORDER, add_users, audit_file, console_config, csrf_of, login, queue_ids,
                                   rid)
from tests.console_helpers import console, crafted  # noqa: F401 - the fixtures


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
