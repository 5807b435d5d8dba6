"""The review console in a real browser: headless Chromium from Debian's packages (`chromium`,
`chromium-driver`, installed by `make sysdeps`) driven by Selenium, against the console served by
uvicorn on a free port, with the real Pub/Sub emulator as the feedback topic.

Covers: login (a wrong password is refused), the queue order and keyboard navigation, opening a
report, evidence blurred until a deliberate reveal and blurred again after the reveal period, the
grooming conversation with its evidence messages highlighted, a verdict that arrives on the
feedback topic, a reviewer who cannot overturn a verdict (a supervisor can), and requests without
a CSRF token refused; and the store staying true (issue 13 §7): signatures checked again after a
restart with the provider key, evidence sealed for another key said and archived, a claim shown to
a second reviewer who cannot decide until it expires, and the verdict reasons of each detection
type. Screenshots go to test-artifacts/console/ (benign generated pictures and a synthetic chat
only)."""
from __future__ import annotations

import io
import json
import shutil
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from csadetect.console.app import create_app
from tests.conftest import make_report_keys
from tests.pubsub_emulator import PubSubAdmin
from tests.console_helpers import CHAT, PASSWORD, QUEUE_ORDER, Clock, add_users, console_config, craft_reports
from tests.test_console_storage import two_demos  # noqa: F401 - the fixture: one set of reports made twice

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts" / "console"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
REVEAL_SECONDS = 3

pytestmark = [
    pytest.mark.timeout(600),
    pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                       reason="Debian's chromium and chromium-driver are not installed (`make sysdeps` installs them)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served(app):
    """``app`` served by uvicorn in a thread on a free port; yields its URL, stops it after."""
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def site(request, tmp_path_factory):
    """The console on crafted reports, served by uvicorn in a thread; verdicts go to the emulator's
    feedback topic (when gcloud is there) and to a JSON Lines folder."""
    base = tmp_path_factory.mktemp("console-browser")
    paths = make_report_keys(base / "keys")["paths"]
    crafted = craft_reports(paths, base / "reports")
    admin = feedback_sub = None
    extra = {}
    try:
        host = request.getfixturevalue("emulator")
    except pytest.skip.Exception:
        host = None
    if host:
        admin = PubSubAdmin(host)
        topic = admin.topic("console-browser-feedback")
        feedback_sub = admin.subscription(topic, "console-browser-feedback-sub")
        extra["feedback_topic"] = topic
    app = create_app(console_config(base, paths, base / "reports", reveal_seconds=REVEAL_SECONDS, **extra))
    add_users(app.state.console.store)
    with served(app) as url:
        yield {"url": url, "app": app, "crafted": crafted, "admin": admin, "feedback_sub": feedback_sub,
               "base": base}
    if admin is not None:
        admin.close()


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
                "--force-device-scale-factor=1", "--disable-gpu", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def rid(site, name):
    return site["crafted"][name]["report"]["report_id"]


def shot(driver, name: str) -> Path:
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def wait(driver, condition, timeout: float = 15, what: str = "condition"):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: condition(d), message=f"waiting for {what}")


def login(driver, site, user: str, password: str = PASSWORD):
    from selenium.webdriver.common.by import By

    driver.get(site["url"] + "/")
    wait(driver, lambda d: d.current_url.endswith("/login"), what="the login page")
    driver.find_element(By.ID, "username").send_keys(user)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "login-submit").click()
    # wait for the answer (logged in, or refused) before the next navigation can cancel it
    wait(driver, lambda d: d.find_elements(By.ID, "logout-form") or d.find_elements(By.ID, "error"),
         what="the answer to the login")


def press(driver, keys: str):
    from selenium.webdriver.common.action_chains import ActionChains

    for key in keys:
        ActionChains(driver).send_keys(key).perform()
        time.sleep(0.05)


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)


def greyscale(png: bytes, tolerance: int = 3) -> bool:
    a = pixels(png)[6:-6, 6:-6]  # inside the rounded corners (the page around them is not grey)
    return bool((np.abs(a[..., 0] - a[..., 1]) <= tolerance).all() and (np.abs(a[..., 1] - a[..., 2]) <= tolerance).all())


def colourful(png: bytes) -> float:
    a = pixels(png)
    return float(np.abs(a[..., 0] - a[..., 1]).mean() + np.abs(a[..., 1] - a[..., 2]).mean())


def fetch_status(driver, url: str, headers: dict | None = None, method: str = "POST") -> int:
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {method: arguments[2], headers: arguments[1], credentials: 'same-origin'})"
        ".then(r => done(r.status)).catch(e => done(-1));", url, headers or {}, method)


def pull_verdicts(site, report_id: str, want: int = 1, timeout: float = 30) -> list:
    got = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len([m for m in got if m["report_id"] == report_id]) < want:
        got += [json.loads(m.data) for m in site["admin"].pull(site["feedback_sub"])]
        time.sleep(0.3)
    return [m for m in got if m["report_id"] == report_id]


# ----------------------------------------------------------------------------------- tests


def test_wrong_password_is_refused(site, browser):
    from selenium.webdriver.common.by import By

    login(browser, site, "rita", "this is not the password")
    banner = wait(browser, lambda d: d.find_elements(By.ID, "error"), what="the error banner")[0]
    assert "Wrong user name or password" in banner.text
    assert browser.current_url.endswith("/login") and browser.get_cookie("csadetect_session") is None
    shot(browser, "01-login-refused")
    browser.get(site["url"] + "/")
    assert browser.current_url.endswith("/login")  # still nothing without a login


def test_login_queue_order_and_keyboard(site, browser):
    from selenium.webdriver.common.by import By

    login(browser, site, "rita")
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#queue tbody tr[data-report-id]"), what="the queue")
    rows = browser.find_elements(By.CSS_SELECTOR, "#queue tbody tr[data-report-id]")
    assert [r.get_attribute("data-report-id") for r in rows] == [rid(site, n) for n in QUEUE_ORDER]
    assert ["urgent" in r.get_attribute("class") for r in rows] == [True, True, False, False, False]
    assert browser.find_element(By.ID, "count-open").text == "5"
    assert "selected" in rows[0].get_attribute("class")
    shot(browser, "02-queue")
    press(browser, "jjk")
    assert "selected" in rows[1].get_attribute("class")
    press(browser, "?")
    assert browser.find_element(By.ID, "help").is_displayed()
    shot(browser, "03-shortcuts")
    press(browser, "\ue00c")  # Escape
    assert not browser.find_element(By.ID, "help").is_displayed()
    press(browser, "\ue007")  # Enter opens the selected report
    wait(browser, lambda d: d.current_url.endswith(f"/reports/{rid(site, QUEUE_ORDER[1])}"), what="the report")


def test_evidence_blurred_until_revealed_and_blurred_again(site, browser):
    from selenium.webdriver.common.by import By

    login(browser, site, "rita")
    known = rid(site, "known")
    browser.get(f"{site['url']}/reports/{known}")
    blurred = wait(browser, lambda d: d.find_element(By.ID, "blurred"), what="the blurred view")
    wait(browser, lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", blurred),
         what="the blurred picture to load")
    assert blurred.is_displayed() and not browser.find_elements(By.ID, "clear-evidence")
    assert "/evidence/" not in browser.page_source.replace("/evidence/blurred", "")
    assert greyscale(blurred.screenshot_as_png)  # what the reviewer sees by default is greyscale
    assert browser.find_element(By.ID, "exposure-count").text == "0"
    shot(browser, "04-detail-blurred")
    reveal = browser.find_element(By.ID, "reveal")
    reveal.click()  # the first click only arms the button
    assert "armed" in reveal.get_attribute("class")
    time.sleep(0.5)
    assert not browser.find_elements(By.ID, "clear-evidence")
    assert browser.find_element(By.ID, "exposure-count").text == "0"
    reveal.click()  # the deliberate second click reveals
    clear = wait(browser, lambda d: d.find_elements(By.ID, "clear-evidence"), what="the revealed picture")[0]
    wait(browser, lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", clear),
         what="the revealed picture to load")
    assert not blurred.is_displayed()
    assert browser.find_element(By.ID, "exposure-count").text == "1"
    assert "blurs again in" in browser.find_element(By.ID, "countdown").text
    assert greyscale(clear.screenshot_as_png)  # greyscale stays on until the reviewer asks for colour
    press(browser, "g")
    assert colourful(clear.screenshot_as_png) > 5
    shot(browser, "05-detail-revealed")
    url = clear.get_attribute("src")
    wait(browser, lambda d: not d.find_elements(By.ID, "clear-evidence"), timeout=REVEAL_SECONDS + 5,
         what="the picture to blur again")
    assert blurred.is_displayed()
    shot(browser, "06-detail-reblurred")
    assert fetch_status(browser, url, method="GET") == 410  # the one-time link is spent
    audit = [e for e in site["app"].state.console.store.audit_entries(20) if e["report_id"] == known]
    assert [e["action"] for e in audit][:5] == ["fetch_evidence", "reveal_evidence", "view_blurred", "claim",
                                                "view_report"]
    spent = site["app"].state.console.store.audit_entries(1)[0]  # the spent link's refusal is audited too
    assert (spent["action"], spent["user"], spent["detail"]) == ("refused", "rita", "410 GET /evidence/{token} link_expired")


def test_grooming_conversation_highlighted_hidden_until_revealed(site, browser):
    from selenium.webdriver.common.by import By

    login(browser, site, "rita")
    browser.get(f"{site['url']}/reports/{rid(site, 'grooming')}")
    bubbles = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#chat .bubble"), what="the conversation")
    assert len(bubbles) == len(CHAT)
    evidence = browser.find_elements(By.CSS_SELECTOR, "#chat .bubble.evidence")
    assert [b.get_attribute("data-index") for b in evidence] == ["2", "4", "5"]
    assert [c.text.split()[0] for c in browser.find_elements(By.CSS_SELECTOR, "#chat .chip.pattern")] == [
        "age_check", "secrecy", "meeting"]
    texts = lambda: [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#chat .bubble-text")]  # noqa: E731
    assert not any("minecraft" in t or "meet up" in t for t in texts())
    shot(browser, "07-grooming")
    press(browser, "rr")  # the keyboard reveal: r twice
    wait(browser, lambda d: "minecraft" in texts()[0], what="the revealed texts")
    assert texts() == [t for _, t in CHAT]
    shot(browser, "08-grooming-revealed")
    wait(browser, lambda d: "minecraft" not in texts()[0], timeout=REVEAL_SECONDS + 5, what="the texts to hide again")
    assert not any("meet up" in t for t in texts())


def test_verdict_arrives_on_the_feedback_topic(site, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    if site["admin"] is None:
        pytest.skip("gcloud is not installed: the Pub/Sub emulator tests need it")
    login(browser, site, "rita")
    new = rid(site, "new")
    browser.get(f"{site['url']}/reports/{new}")
    wait(browser, lambda d: d.find_element(By.ID, "verdict-form"), what="the verdict form")
    press(browser, "u")
    assert browser.find_element(By.ID, "v-manifestly_unfounded").is_selected()
    Select(browser.find_element(By.ID, "reason")).select_by_value("benign_content")
    browser.find_element(By.ID, "note").send_keys("a generated emblem picture, nothing else")
    shot(browser, "09-verdict-form")
    browser.find_element(By.ID, "submit-verdict").click()
    flash = wait(browser, lambda d: d.find_elements(By.ID, "flash"), what="the confirmation")[0]
    assert "Verdict recorded" in flash.text
    assert new not in browser.current_url  # on to the next open report
    [msg] = pull_verdicts(site, new)
    assert msg["verdict"] == "manifestly_unfounded" and msg["reason"] == "benign_content"
    assert msg["delay_notification"] is False and "note" not in msg
    assert "generated emblem" not in json.dumps(msg)


def test_reviewer_cannot_overturn_a_verdict_but_a_supervisor_can(site, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    target = rid(site, "known_urgent")
    login(browser, site, "rita")
    browser.get(f"{site['url']}/reports/{target}")
    press(browser, "c")
    Select(browser.find_element(By.ID, "reason")).select_by_value("matches_known_indicator")
    browser.find_element(By.ID, "submit-verdict").click()
    wait(browser, lambda d: d.find_elements(By.ID, "flash"), what="the confirmation")
    browser.delete_all_cookies()
    login(browser, site, "vera")  # another reviewer
    browser.get(f"{site['url']}/reports/{target}")
    locked = wait(browser, lambda d: d.find_element(By.ID, "verdict-locked"), what="the locked verdict")
    assert "Only a supervisor" in locked.text and not browser.find_elements(By.ID, "verdict-form")
    shot(browser, "10-reviewer-locked")
    token = browser.find_element(By.CSS_SELECTOR, 'meta[name="csrf-token"]').get_attribute("content")
    status = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "const body = new URLSearchParams({csrf_token: arguments[1], verdict: 'manifestly_unfounded',"
        " reason: 'benign_content'});"
        "fetch(arguments[0], {method: 'POST', body, credentials: 'same-origin'}).then(r => done(r.status));",
        f"/reports/{target}/verdict", token)
    assert status == 403  # a forged form post by a reviewer is refused too
    assert [v["verdict"] for v in site["app"].state.console.store.verdicts(target)] == ["confirmed"]
    browser.delete_all_cookies()
    login(browser, site, "sam")  # a supervisor
    browser.get(f"{site['url']}/reports/{target}")
    wait(browser, lambda d: d.find_element(By.ID, "verdict-form"), what="the change form")
    assert browser.find_element(By.ID, "submit-verdict").text == "Change verdict"
    press(browser, "u")
    Select(browser.find_element(By.ID, "reason")).select_by_value("wrong_match")
    browser.find_element(By.ID, "submit-verdict").click()
    flash = wait(browser, lambda d: d.find_elements(By.ID, "flash"), what="the confirmation")[0]
    assert "Verdict changed" in flash.text
    shot(browser, "11-supervisor-changed")
    assert [(v["verdict"], v["decided_by"]) for v in site["app"].state.console.store.verdicts(target)] == [
        ("confirmed", "rita"), ("manifestly_unfounded", "sam")]
    if site["admin"] is not None:
        msgs = sorted(pull_verdicts(site, target, want=2), key=lambda m: m["decided_at"])
        assert [m["verdict"] for m in msgs] == ["confirmed", "manifestly_unfounded"]
        assert msgs[1]["decided_at"] > msgs[0]["decided_at"]


def test_requests_without_a_csrf_token_are_refused(site, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    login(browser, site, "rita")
    bad = rid(site, "tampered")
    browser.get(f"{site['url']}/reports/{bad}")
    wait(browser, lambda d: d.find_element(By.ID, "verdict-form"), what="the verdict form")
    assert not browser.find_element(By.ID, "v-confirmed").is_enabled()  # its signature does not verify
    assert fetch_status(browser, f"/reports/{bad}/reveal", {"Accept": "application/json"}) == 403
    browser.execute_script("document.querySelector('#verdict-form input[name=csrf_token]').remove();")
    browser.find_element(By.ID, "v-manifestly_unfounded").click()
    Select(browser.find_element(By.ID, "reason")).select_by_value("insufficient_evidence")
    browser.find_element(By.ID, "submit-verdict").click()
    message = wait(browser, lambda d: d.find_elements(By.ID, "error-message"), what="the refusal")[0]
    assert "CSRF" in message.text
    shot(browser, "12-csrf-refused")
    assert site["app"].state.console.store.verdicts(bad) == []
    refused = [e for e in site["app"].state.console.store.audit_entries(5) if e["action"] == "refused"][:2]
    assert [(e["user"], e["report_id"], e["detail"]) for e in refused] == [
        ("rita", bad, "403 POST /reports/{report_id}/verdict csrf"), ("rita", bad, "403 POST /reports/{report_id}/reveal csrf")]


# ------------------------------------------------------- the store stays true (issue 13 §7)


def _app(tmp_path, two_demos, reports="first", keys="first", users=True, **overrides):  # noqa: F811
    config = console_config(tmp_path, two_demos[keys]["paths"], two_demos[reports]["dir"], **overrides)
    app = create_app(config)
    if users:
        add_users(app.state.console.store)
    return app


def test_signatures_checked_again_after_a_restart_with_the_provider_key(tmp_path, two_demos, browser):  # noqa: F811
    from selenium.webdriver.common.by import By

    known = two_demos["first"]["reports"]["known"]["report"]["report_id"]
    with served(_app(tmp_path, two_demos, provider_public_key=None)) as url:
        login(browser, {"url": url}, "sam")
        browser.get(f"{url}/reports/{known}")
        assert "signature not checked" in browser.find_element(By.ID, "signature").text
    browser.delete_all_cookies()
    with served(_app(tmp_path, two_demos, users=False)) as url:  # the same database, started with the key
        login(browser, {"url": url}, "sam")
        browser.get(f"{url}/reports/{known}")
        signature = wait(browser, lambda d: d.find_element(By.ID, "signature"), what="the signature")
        fingerprint = two_demos["first"]["reports"]["known"]["report"]["signature"].split(":")[1]
        assert "provider signature verified" in signature.text and fingerprint in signature.text
        shot(browser, "13-signature-rechecked")


def test_evidence_sealed_for_another_key_is_said_and_archived(tmp_path, two_demos, browser):  # noqa: F811
    from selenium.webdriver.common.by import By

    known = two_demos["first"]["reports"]["known"]["report"]["report_id"]
    theirs = two_demos["first"]["reports"]["known"]["report"]["evidence_encrypted"].split(":")[1]
    mine = two_demos["second"]["reports"]["known"]["report"]["evidence_encrypted"].split(":")[1]
    with served(_app(tmp_path, two_demos, reports="first", keys="second")) as url:
        login(browser, {"url": url}, "rita")
        browser.get(f"{url}/reports/{known}")
        note = wait(browser, lambda d: d.find_element(By.ID, "evidence-other-key"), what="the sealed-for note")
        assert "Sealed for another key" in note.text
        assert browser.find_element(By.ID, "sealed-for").text == theirs
        assert browser.find_element(By.ID, "console-key").text == mine
        assert not browser.find_elements(By.ID, "reveal")
        shot(browser, "14-sealed-for-another-key")
        browser.find_element(By.ID, "archive").click()
        flash = wait(browser, lambda d: d.find_elements(By.ID, "flash"), what="the confirmation")[0]
        assert "Report archived" in flash.text
        rows = [r.get_attribute("data-report-id") for r in browser.find_elements(By.CSS_SELECTOR, "#queue tbody tr[data-report-id]")]
        assert known not in rows and len(rows) == 4
        browser.find_element(By.CSS_SELECTOR, '#status-tabs a[data-status="archived"]').click()
        wait(browser, lambda d: [r.get_attribute("data-report-id") for r in
                                 d.find_elements(By.CSS_SELECTOR, "#queue tbody tr[data-report-id]")] == [known],
             what="the archived report")
        shot(browser, "15-archived")


def test_a_claim_is_shown_refused_to_another_reviewer_and_expires(tmp_path, two_demos, browser):  # noqa: F811
    from selenium.webdriver.common.by import By

    clock = Clock(time.time())
    config = console_config(tmp_path, two_demos["first"]["paths"], two_demos["first"]["dir"],
                            session_idle_seconds=7200)
    app = create_app(config, clock=clock)
    add_users(app.state.console.store)
    groom = two_demos["first"]["reports"]["grooming"]["report"]["report_id"]
    with served(app) as url:
        site = {"url": url}
        login(browser, site, "rita")
        browser.get(f"{url}/reports/{groom}")
        assert "You are reviewing" in wait(browser, lambda d: d.find_element(By.ID, "claim-mine"), what="the claim").text
        offered = {o.get_attribute("value") for o in browser.find_elements(By.CSS_SELECTOR, "#reason option[data-verdict]")}
        assert offered == {"grooming_confirmed", "benign_content", "insufficient_evidence", "other"}  # grooming's only
        browser.delete_all_cookies()
        login(browser, site, "vera")
        browser.get(url + "/")
        cell = wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, f'tr[data-report-id="{groom}"] td.assignee'),
                    what="the assignee")
        assert cell.text == "rita"
        shot(browser, "16-queue-assignee")
        browser.get(f"{url}/reports/{groom}")
        other = wait(browser, lambda d: d.find_element(By.ID, "claim-other"), what="the claim note")
        assert "Claimed by rita" in other.text and not browser.find_elements(By.ID, "verdict-form")
        assert "rita is reviewing" in browser.find_element(By.ID, "verdict-locked").text
        shot(browser, "17-claimed-by-another")
        token = browser.find_element(By.CSS_SELECTOR, 'meta[name="csrf-token"]').get_attribute("content")
        status = browser.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "const body = new URLSearchParams({csrf_token: arguments[1], verdict: 'manifestly_unfounded',"
            " reason: 'benign_content'});"
            "fetch(arguments[0], {method: 'POST', body, credentials: 'same-origin'}).then(r => done(r.status));",
            f"/reports/{groom}/verdict", token)
        assert status == 409 and app.state.console.store.verdicts(groom) == []
        clock.advance(31 * 60)  # rita's claim expires (30 minutes)
        browser.get(f"{url}/reports/{groom}")
        assert wait(browser, lambda d: d.find_element(By.ID, "claim-mine"), what="vera's claim")
        assert browser.find_elements(By.ID, "verdict-form")
        browser.find_element(By.ID, "release").click()
        flash = wait(browser, lambda d: d.find_elements(By.ID, "flash"), what="the confirmation")[0]
        assert "Claim released" in flash.text
    assert [(e["action"], e["user"]) for e in reversed(app.state.console.store.audit_entries(100, groom))
            if e["action"].startswith("claim")] == [("claim", "rita"), ("claim_expired", None), ("claim", "vera"),
                                                   ("claim_released", "vera")]
