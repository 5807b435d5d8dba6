"""The EU Centre's review console (``console``, ``csadetect console``, ``docs/console.md``): where it
reads reports and sends verdicts, its login, session and reveal limits, and the check that its
outputs go somewhere. :mod:`csadetect.config.settings` re-exports it.
"""
from __future__ import annotations

from typing import Optional

from pydantic import Field, field_validator

from csadetect.config.base import ConfigError, Subscription, Topic, _Strict


class ConsoleSettings(_Strict):
    """The EU Centre's review console (``csadetect console``, ``docs/console.md``). The report
    source is ``reports_dir`` or ``subscription`` (the subscription wins when both are set);
    verdicts go to ``feedback_topic`` and/or ``feedback_dir``, requests for missing information to
    ``provider_requests_topic`` and/or ``provider_requests_dir``."""

    reports_dir: Optional[str] = Field("out/reports", description="Parquet/JSON Lines report store read on start and every refresh_seconds")
    subscription: Subscription = Field(None, description="projects/P/subscriptions/S of the report topic (pulled in the background)")
    refresh_seconds: float = Field(30.0, gt=0, description="how often the report store is read again")
    host: str = Field("127.0.0.1", min_length=1, description="address to bind; keep loopback unless behind a TLS proxy")
    port: int = Field(8080, ge=0, le=65535)
    centre_key: Optional[str] = Field(None, description="the EU Centre's X25519 private key (PEM) that opens report evidence")
    provider_public_key: Optional[str] = Field(
        None, description="the provider's Ed25519 public key (PEM); reports whose signature does not verify cannot be confirmed"
    )
    feedback_topic: Topic = Field(None, description="projects/P/topics/T the verdicts are published to (Art. 48)")
    feedback_dir: Optional[str] = Field("out/centre/verdicts", description="verdicts as JSON Lines (csadetect feedback --verdict_glob)")
    provider_requests_topic: Topic = Field(None, description="projects/P/topics/T for requests for missing information (Art. 48(5))")
    provider_requests_dir: Optional[str] = Field("out/centre/info_requests", description="requests for missing information as JSON Lines")
    db: str = Field("out/centre/console.sqlite3", min_length=1, description="SQLite file: users, sessions, audit log; the report cache (reports, verdicts, requests, outbox) is this path + '.cache'")
    audit_log: Optional[str] = Field("out/centre/audit.jsonl", description="append-only JSON Lines mirror of the audit table")
    session_idle_seconds: int = Field(900, gt=0, description="a session ends after this long without a request")
    session_max_seconds: int = Field(8 * 3600, gt=0, description="a session ends this long after login, whatever its use")
    reveal_seconds: int = Field(10, ge=1, le=300, description="revealed evidence blurs again after this long")
    break_after_reveals: int = Field(20, ge=1, description="reveals in one session after which a break is suggested")
    secure_cookie: bool = Field(False, description="mark the session cookie Secure (set when served over TLS)")
    login_max_failures: int = Field(5, ge=1, description="failed logins for one user name before back-off starts")
    login_max_failures_per_client: int = Field(
        50, ge=1, description="failed logins from one client address (any names) before back-off starts; high, as a proxy's address is every reviewer's"
    )
    login_backoff_seconds: float = Field(1.0, gt=0, description="first wait once a limit is reached; doubles with every further failure")
    login_lockout_seconds: int = Field(300, gt=0, description="the longest wait between login attempts once a limit is reached")
    login_forget_seconds: int = Field(3600, gt=0, description="failed logins are forgotten after this long without another")
    login_hash_concurrency: int = Field(2, ge=1, le=64, description="password checks (argon2id, 64 MiB each) run at once; others wait")
    max_pixels: int = Field(50_000_000, gt=0, description="largest evidence image the console decodes")
    claim_seconds: int = Field(1800, ge=60, description="a claim on a report expires this long after its holder last opened it")

    @field_validator("login_forget_seconds")
    @classmethod
    def _forget_after_lockout(cls, v, info):
        longest = info.data.get("login_lockout_seconds")
        if longest is not None and v < longest:
            raise ValueError("login_forget_seconds must be >= login_lockout_seconds")
        return v

    @field_validator("login_lockout_seconds")
    @classmethod
    def _lockout_after_backoff(cls, v, info):
        first = info.data.get("login_backoff_seconds")
        if first is not None and v < first:  # the first wait would be cut to the longest one without a word
            raise ValueError("login_lockout_seconds must be >= login_backoff_seconds")
        return v

    @field_validator("session_max_seconds")
    @classmethod
    def _max_after_idle(cls, v, info):
        idle = info.data.get("session_idle_seconds")
        if idle is not None and v < idle:
            raise ValueError("session_max_seconds must be >= session_idle_seconds")
        return v

    def validate_outputs(self) -> "ConsoleSettings":
        """Raise ConfigError unless there is a report source and somewhere for verdicts to go."""
        if not (self.reports_dir or self.subscription):
            raise ConfigError("console: no report source: set console.reports_dir or console.subscription")
        if not (self.feedback_topic or self.feedback_dir):
            raise ConfigError("console: verdicts go nowhere: set console.feedback_topic or console.feedback_dir")
        if not (self.provider_requests_topic or self.provider_requests_dir):
            raise ConfigError("console: requests for missing information go nowhere: set "
                              "console.provider_requests_topic or console.provider_requests_dir")
        return self
