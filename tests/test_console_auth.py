"""Who gets into the review console (issue 5, hardened in issue 12): nothing without a login,
argon2id password hashes, a wrong password refused and audited without content, the login CSRF,
the session cookie's flags, idle timeout and absolute lifetime (injected clock), logout, every
POST route refused without its CSRF token, and login throttling: per account behind one shared
address with the waits doubling up to the cap, per client address across names (unknown and
malformed ones included), blocked attempts that run no argon2 check, attempts at the same time,
and the memory of 40 blocked logins on a real server (uvicorn).

FastAPI's TestClient against the app, on the reports of console_helpers.py (benign and
synthetic)."""
from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

from csadetect.config.settings import ConfigError, load_settings
from csadetect.console import auth as auth_module
from csadetect.console.app import create_app
from csadetect.console.auth import AuthError, hash_password, verify_password
from csadetect.console.storage.sqlite import SQLiteConsoleStore
from tests.console_helpers import (PASSWORD, T0, Clock, add_users, audit_file, audit_of, console_config, csrf_of,
                                   login, password_hash, rid)
from tests.console_helpers import console, crafted  # noqa: F401 - the fixtures


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


# --------------------------------------------------------------- throttling (issue 12)


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
