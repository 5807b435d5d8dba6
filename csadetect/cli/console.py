"""``csadetect console``: the EU Centre's review console (``docs/console.md``).

    csadetect console [--reports DIR [--run RUN_ID] | --subscription projects/P/subscriptions/S] [--host 127.0.0.1]
                      [--port 8080] [--centre-key PEM] [--provider-public-key PEM] [--feedback-topic T]
                      [--feedback-dir DIR] [--provider-requests-topic T] [--provider-requests-dir DIR] [--db PATH]
    csadetect console adduser NAME --role reviewer|supervisor [--password-stdin] [--replace] [--db PATH]
    csadetect console users [--db PATH]
    csadetect console audit verify [--db PATH] [--audit-log PATH | --no-audit-log]
    csadetect console reset-cache [--db PATH] [--audit-log PATH]

Defaults come from the ``console:`` section of the config. The server refuses to start without a
user (add one first). Human messages go to stderr; a bad input gives one line and exit code 1.
``audit verify`` checks the audit log's hash chain in the database and in its JSON Lines mirror and
that both hold the same entries; it prints ``{"ok", "entries", "head", ...}`` and, for the first
changed or missing entry, one line and exit code 1.

``--run RUN_ID`` reads one pipeline run's reports, ``<reports>/<RUN_ID>`` (by default every run
under the report store is read); a run that is not there is one line naming the runs that are.
``reset-cache`` empties the report cache (``console.db`` + ``.cache``: reports, versions, verdicts,
requests, outbox, claims) and keeps the staff accounts and the audit log (``console.db``); it is
refused while verdicts or requests wait for delivery. Stop the console first; it reads the report
store again when it starts.
"""
from __future__ import annotations

import argparse
import getpass
import ipaddress
import os
import re
import sqlite3
import sys
import time

from csadetect.cli.output import emit, error, handled, say
from csadetect.config.settings import ConfigError, load_settings
from csadetect.core import fs

# The console's own modules (FastAPI, uvicorn, the report store's readers) are imported inside the
# handlers: imported here, every `csadetect` command paid ~0.7 s for them (tests/test_console.py checks).


def _errors() -> tuple:
    from csadetect.console.auth import AuthError
    from csadetect.console.state import ConsoleError
    from csadetect.console.storage import StoreError

    return (ConsoleError, AuthError, StoreError, ConfigError)


_OVERRIDES = {
    "reports": "reports_dir", "subscription": "subscription", "host": "host", "port": "port",
    "centre_key": "centre_key", "provider_public_key": "provider_public_key", "feedback_topic": "feedback_topic",
    "feedback_dir": "feedback_dir", "provider_requests_topic": "provider_requests_topic",
    "provider_requests_dir": "provider_requests_dir", "db": "db", "audit_log": "audit_log",
}


_DB_HELP = "accounts SQLite file; the report cache is PATH.cache (default: console.db)"
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def run_dir(reports_dir: str, run: str) -> str:
    """``<reports_dir>/<run>``: one pipeline run's reports; ConfigError (one line naming the runs
    there) when it does not exist."""
    if not _RUN_ID.match(run or ""):
        raise ConfigError(f"--run {run[:60]!r}: a run id is letters, digits, '.', '_' or '-'")
    path = os.path.join(reports_dir, run)
    if os.path.isdir(path):
        return path
    try:
        runs = sorted(e.name for e in os.scandir(reports_dir) if e.is_dir() and not e.name.startswith("."))
    except OSError:
        raise ConfigError(f"--run {run}: the report store {reports_dir} does not exist") from None
    raise ConfigError(f"--run {run}: no such run in {reports_dir} (runs there: {', '.join(runs) or 'none'})")


def config_from_args(args):
    """The ``console:`` settings with the command line's overrides; validated (ConfigError)."""
    base = load_settings(getattr(args, "config", None)).console
    values = base.model_dump()
    for arg, key in _OVERRIDES.items():
        value = getattr(args, arg, None)
        if value is not None:
            values[key] = value if value != "" else None
    run = getattr(args, "run", None)
    if run is not None:
        if getattr(args, "subscription", None) or not values.get("reports_dir"):
            raise ConfigError("--run needs a report store (--reports DIR or console.reports_dir), not a subscription")
        values["reports_dir"] = run_dir(values["reports_dir"], run)
    if getattr(args, "reports", None):
        values["subscription"] = None  # the store given on the command line, not a configured subscription
    if getattr(args, "subscription", None):
        values["reports_dir"] = None
    if getattr(args, "secure_cookie", False):
        values["secure_cookie"] = True
    from csadetect.console.state import ConsoleConfig

    try:
        return ConsoleConfig.model_validate(values).validate_outputs()
    except ConfigError:
        raise
    except Exception as exc:  # pydantic ValidationError: one line
        first = exc.errors()[0] if hasattr(exc, "errors") else {"loc": (), "msg": str(exc)}
        where = ".".join(str(p) for p in first["loc"]) or "console"
        raise ConfigError(f"invalid option for console.{where}: {first['msg']}") from None


def _store(args):
    from csadetect.console.storage import open_store

    config = config_from_args(args)
    return open_store(config.db, config.audit_log), config


@handled(_errors)
def _cmd_serve(args) -> int:
    import uvicorn

    from csadetect.console.app import create_app
    from csadetect.console.state import ConsoleError

    config = config_from_args(args)
    store_check, _ = _store(args)
    try:
        if store_check.user_count() == 0:
            raise ConsoleError(f"no users in {config.db}: add one first with "
                               "`csadetect console adduser NAME --role supervisor`")
    finally:
        store_check.close()
    app = create_app(config)
    try:
        loopback = ipaddress.ip_address(config.host).is_loopback
    except ValueError:
        loopback = config.host == "localhost"
    if not loopback and not config.secure_cookie:
        say(f"warning: serving on {config.host} without TLS: put a TLS proxy in front and set console.secure_cookie")
    console = app.state.console
    if console.centre_key is None:
        say("warning: no centre key (--centre-key): evidence cannot be opened")
    if console.provider_key is None:
        say("warning: no provider public key (--provider-public-key): signatures are not checked")
    if not config.subscription and not fs.is_url(config.reports_dir) and not os.path.isdir(config.reports_dir):
        say(f"warning: report store {config.reports_dir} does not exist (yet): check --reports or console.reports_dir; "
            "reports appear once it does")
    source = f"subscription {config.subscription}" if config.subscription else f"report store {config.reports_dir}"
    outputs = ", ".join(x for x in (config.feedback_topic, config.feedback_dir) if x)
    say(f"console: http://{config.host}:{config.port}/  reports from {source}; verdicts to {outputs}; "
         f"audit log {config.audit_log or 'in the database only'}")
    uvicorn.run(app, host=config.host, port=config.port, log_level="warning", access_log=False,
                server_header=False, proxy_headers=False)
    return 0


def _read_password(args) -> str:
    from csadetect.console.auth import AuthError

    if args.password_stdin:
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    first = getpass.getpass(f"password for {args.name}: ")
    again = getpass.getpass("again: ")
    if first != again:
        raise AuthError("the passwords do not match")
    return first


@handled(_errors)
def _cmd_adduser(args) -> int:
    from csadetect.console.auth import hash_password
    from csadetect.console.storage import check_username

    check_username(args.name)
    password = _read_password(args)
    pw_hash = hash_password(password)
    store, config = _store(args)
    try:
        action = store.add_user(args.name, pw_hash, args.role, time.time(), replace=args.replace)
    finally:
        store.close()
    emit({"user": args.name, "role": args.role, "action": action, "db": config.db})
    say(f"{'added' if action == 'user_added' else 'updated'} {args.role} {args.name} in {config.db}")
    return 0


@handled(_errors)
def _cmd_users(args) -> int:
    store, _ = _store(args)
    try:
        for user in store.users():
            emit(user)
    finally:
        store.close()
    return 0


@handled(_errors)
def _cmd_audit_verify(args) -> int:
    from csadetect.console.storage import StoreError, open_store
    from csadetect.console.storage.chain import verify as verify_chain

    config = config_from_args(args)
    mirror = None if args.no_audit_log else config.audit_log
    try:
        store = open_store(config.db, None, read_only=True)
    except sqlite3.Error as exc:
        raise StoreError(f"console database {config.db}: {exc}") from None
    try:
        table, issued = store.audit_chain()
    except sqlite3.Error as exc:
        raise StoreError(f"console database {config.db}: {exc}") from None
    finally:
        store.close()
    problem, summary = verify_chain(table, issued, mirror)
    emit({"ok": problem is None, **summary, "db": config.db, "audit_log": mirror, "problem": problem})
    if problem:
        error(f"audit log: {problem}")
        return 1
    say(f"audit log ok: {summary['entries']} entries in {config.db}"
        + (f" and {mirror}" if mirror else "") + f", head {summary['head']}")
    return 0


@handled(_errors)
def _cmd_reset_cache(args) -> int:
    from csadetect.console.storage import cache_path

    store, config = _store(args)
    try:
        removed = store.reset_cache(time.time())
    finally:
        store.close()
    emit({"reset": True, "db": config.db, "cache": cache_path(config.db), "removed": removed})
    say(f"report cache {cache_path(config.db)} emptied ({removed['reports']} reports, {removed['verdicts']} verdicts); "
        f"users and the audit log in {config.db} kept")
    return 0


def register(subparsers):
    p = subparsers.add_parser("console", help="the EU Centre's review console (web): reports in, verdicts out",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group()
    src.add_argument("--reports", default=None, metavar="DIR", help="report store (default: console.reports_dir)")
    src.add_argument("--subscription", default=None, help="projects/P/subscriptions/S of the report topic")
    p.add_argument("--run", default=None, metavar="RUN_ID",
                   help="read one pipeline run's reports, <reports>/<RUN_ID> (default: every run)")
    p.add_argument("--host", default=None, help="address to bind (default: console.host, 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default: console.port, 8080)")
    p.add_argument("--centre-key", dest="centre_key", default=None, metavar="PEM",
                   help="the EU Centre's X25519 private key that opens evidence")
    p.add_argument("--provider-public-key", dest="provider_public_key", default=None, metavar="PEM",
                   help="the provider's Ed25519 public key: reports that do not verify cannot be confirmed")
    p.add_argument("--feedback-topic", dest="feedback_topic", default=None, help="projects/P/topics/T for verdicts")
    p.add_argument("--feedback-dir", dest="feedback_dir", default=None, metavar="DIR",
                   help="verdicts as JSON Lines ('' turns it off)")
    p.add_argument("--provider-requests-topic", dest="provider_requests_topic", default=None,
                   help="projects/P/topics/T for requests for missing information")
    p.add_argument("--provider-requests-dir", dest="provider_requests_dir", default=None, metavar="DIR",
                   help="requests for missing information as JSON Lines ('' turns it off)")
    p.add_argument("--db", default=None, metavar="PATH", help=_DB_HELP)
    p.add_argument("--audit-log", dest="audit_log", default=None, metavar="PATH",
                   help="JSON Lines mirror of the audit log (default: console.audit_log)")
    p.add_argument("--secure-cookie", action="store_true", help="mark the session cookie Secure (behind TLS)")
    p.set_defaults(func=_cmd_serve)
    sub = p.add_subparsers(dest="console_command", metavar="ACTION")
    sub.required = False

    q = sub.add_parser("adduser", help="add a user (password from the terminal, or --password-stdin)")
    q.add_argument("name")
    q.add_argument("--role", required=True, choices=("reviewer", "supervisor"))
    q.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    q.add_argument("--replace", action="store_true", help="set a new password and role for an existing user")
    q.add_argument("--db", default=argparse.SUPPRESS, metavar="PATH", help=_DB_HELP)
    q.add_argument("--audit-log", dest="audit_log", default=argparse.SUPPRESS, metavar="PATH")
    q.set_defaults(func=_cmd_adduser)

    q = sub.add_parser("users", help="list the users (name, role; never hashes)")
    q.add_argument("--db", default=argparse.SUPPRESS, metavar="PATH", help=_DB_HELP)
    q.set_defaults(func=_cmd_users)

    q = sub.add_parser("audit", help="the audit log: `audit verify` checks its hash chain")
    audit_sub = q.add_subparsers(dest="audit_command", metavar="ACTION")
    audit_sub.required = True
    v = audit_sub.add_parser("verify", help="check the hash chain in the database and the JSON Lines mirror "
                                            "(exit 1 at the first changed or missing entry)")
    v.add_argument("--db", default=argparse.SUPPRESS, metavar="PATH", help=_DB_HELP)
    mirror = v.add_mutually_exclusive_group()
    mirror.add_argument("--audit-log", dest="audit_log", default=argparse.SUPPRESS, metavar="PATH",
                        help="the JSON Lines mirror (default: console.audit_log)")
    mirror.add_argument("--no-audit-log", dest="no_audit_log", action="store_true",
                        help="check the database only")
    v.set_defaults(func=_cmd_audit_verify)

    q = sub.add_parser("reset-cache", help="empty the report cache; keep the users and the audit log")
    q.add_argument("--db", default=argparse.SUPPRESS, metavar="PATH", help=_DB_HELP)
    q.add_argument("--audit-log", dest="audit_log", default=argparse.SUPPRESS, metavar="PATH")
    q.set_defaults(func=_cmd_reset_cache)
    return p
