"""What every route of the console shares, as one object on ``app.state.console``: the settings,
the clock, the store (behind :class:`~csadetect.console.storage.ConsoleStorage`), the keys, the
report ingest, the outbox, the login throttle (and the slots argon2 checks wait for) and the
one-time links to revealed evidence, how long a claim on a report lasts; and its lifecycle (read
reports, deliver the outbox, expire stale claims, purge old sessions and links, background threads).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, Optional

from csadetect.config.settings import ConfigError, ConsoleSettings
from csadetect.console import auth
from csadetect.console.ingest import Background, Outbox, ReportIngest, SubscriptionPuller
from csadetect.console.storage import ConsoleStorage, open_store
from csadetect.core import keys as signing
from csadetect.reports import crypto

ConsoleConfig = ConsoleSettings  # the `console:` settings section, with command-line overrides applied


def claim_seconds(config: ConsoleConfig) -> float:
    """How long a claim lasts: ``console.claim_seconds`` (default 30 minutes, at least a minute)."""
    return float(config.claim_seconds)


class ConsoleError(ValueError):
    """The console cannot start (bad configuration, unreadable key); the message is one line."""


@dataclass
class Grant:
    """A short-lived URL for revealed evidence: this session only, until ``expires``; images and
    texts once, videos (which browsers fetch in ranges) until it expires."""

    token_hash: str
    report_id: str
    expires: float
    reusable: bool


def _load_keys(config: ConsoleConfig):
    centre = provider = None
    if config.centre_key:
        try:
            centre = crypto.load_centre_private_key(config.centre_key)
        except (crypto.EvidenceError, OSError, ValueError) as exc:
            raise ConsoleError(f"centre key {config.centre_key}: {exc}") from None
    if config.provider_public_key:
        try:
            provider = signing.load_public_key(config.provider_public_key)
        except (signing.SigningError, OSError, ValueError) as exc:
            raise ConsoleError(f"provider public key {config.provider_public_key}: {exc}") from None
    return centre, provider


class Console:
    """Everything the routes share: config, clock, store, keys, ingest, outbox, reveal grants.
    ``store`` defaults to the one ``config.db`` names."""

    def __init__(self, config: ConsoleConfig, clock: Callable[[], float], store: Optional[ConsoleStorage] = None):
        try:
            config.validate_outputs()
        except ConfigError as exc:
            raise ConsoleError(str(exc)) from None
        self.config = config
        self.clock = clock
        self.centre_key, self.provider_key = _load_keys(config)
        self.centre_key_id = signing.raw_key_id(self.centre_key.public_key()) if self.centre_key is not None else None
        self.claim_seconds = claim_seconds(config)
        try:
            self.store = store if store is not None else open_store(config.db, config.audit_log)
        except Exception as exc:  # sqlite3.Error, OSError: one line
            raise ConsoleError(f"console database {config.db}: {exc}") from None
        self.ingest = ReportIngest(self.store, self.provider_key, clock)
        self.outbox = Outbox(self.store, config, clock)
        self.throttle = auth.LoginThrottle(
            config.login_max_failures, config.login_lockout_seconds,
            max_failures_per_client=config.login_max_failures_per_client,
            backoff_seconds=config.login_backoff_seconds, forget_seconds=config.login_forget_seconds)
        self.hash_slots = threading.BoundedSemaphore(config.login_hash_concurrency)
        self.grants: dict[str, Grant] = {}
        self._grants_lock = threading.Lock()
        self.puller: Optional[SubscriptionPuller] = None
        self.background: Optional[Background] = None

    # -------------------------------------------------------------------- lifecycle

    def refresh(self) -> None:
        if self.config.reports_dir and not self.config.subscription:
            self.ingest.read_store(self.config.reports_dir)
        self.outbox.deliver()
        now = self.clock()
        self.store.expire_claims(self.stale_before(), now)
        self.store.purge_sessions(now - self.config.session_idle_seconds, now - self.config.session_max_seconds)
        with self._grants_lock:
            for token in [t for t, g in self.grants.items() if g.expires < now]:
                del self.grants[token]

    def start(self) -> None:
        self.refresh()
        if self.config.subscription:
            self.puller = SubscriptionPuller(self.ingest, self.config.subscription)
            self.puller.start()
        self.background = Background(self.config.refresh_seconds, self.refresh)
        self.background.start()

    def stop(self) -> None:
        for worker in (self.puller, self.background):
            if worker is not None:
                worker.stop()
        for worker in (self.puller, self.background):
            if worker is not None:
                worker.join(timeout=15)
        self.outbox.close()

    # ---------------------------------------------------------------------- helpers

    def audit(self, user: Optional[str], action: str, report_id: Optional[str] = None,
              detail: Optional[str] = None) -> None:
        self.store.audit(self.clock(), user, action, report_id, detail)

    def stale_before(self) -> float:
        """Claims made before this moment have expired."""
        return self.clock() - self.claim_seconds

    def session_alive(self, session: dict, now: float) -> bool:
        """Neither idle for ``session_idle_seconds`` nor older than ``session_max_seconds``."""
        return (now - session["last_seen"] <= self.config.session_idle_seconds
                and now - session["created_at"] <= self.config.session_max_seconds)

    def grant(self, token_hash: str, report_id: str, reusable: bool) -> str:
        """A new link to a report's revealed evidence for the session ``token_hash``."""
        token = auth.new_token()
        with self._grants_lock:
            self.grants[token] = Grant(token_hash, report_id, self.clock() + self.config.reveal_seconds, reusable)
        return token

    def redeem(self, token_hash: str, token: str) -> Optional[Grant]:
        """The grant behind ``token`` if it is this session's and still valid (spent unless reusable)."""
        with self._grants_lock:
            grant = self.grants.get(token)
            if grant is None or grant.token_hash != token_hash:
                return None
            if grant.expires < self.clock():
                del self.grants[token]
                return None
            if not grant.reusable:
                del self.grants[token]
            return grant
