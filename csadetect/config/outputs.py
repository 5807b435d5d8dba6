"""Where results go and what happens to them after: report and dead-letter sinks (``sinks``), the
provider's details (``provider``), the keys that protect reports (``reports``), human review
(``review``), EU Centre feedback (``feedback``), other stores (``stores``) and retention
(``retention``). :mod:`csadetect.config.settings` re-exports every section.
"""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, field_validator

from csadetect.config.base import Subscription, Topic, _Strict


class SinkSettings(_Strict):
    report_dir: Optional[str] = Field("out/reports", description="Parquet + JSON Lines report files (None = off)")
    report_topic: Topic = Field(None, description="projects/P/topics/T for reports")
    dead_letter_dir: Optional[str] = Field("out/dead_letters", description="JSON Lines dead letters")
    dead_letter_topic: Topic = None
    review_dir: Optional[str] = Field("out/review", description="review store: one Parquet file per hit awaiting review")
    review_topic: Topic = None
    formats: tuple[Literal["parquet", "jsonl"], ...] = Field(
        ("parquet", "jsonl"), description="report file formats under report_dir (at least one; "
        "report_dir: null = no report files)"
    )

    @field_validator("formats")
    @classmethod
    def _some_format(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:  # report_dir would be set and written to in no format: reports dropped without a word
            raise ValueError("give at least one of parquet, jsonl (sinks.report_dir: null turns report files off)")
        if len(set(v)) != len(v):
            raise ValueError(f"a format is listed twice in {list(v)}")
        return v


class ProviderSettings(_Strict):
    provider_id: str = Field("demo-provider", min_length=1, description="names the provider in every report")
    content_removed: bool = False
    account_action: str = "none"


class ReportSettings(_Strict):
    """Keys that protect reports (DESIGN 6/7). Evidence is sealed for ``evidence_key`` (the
    provider's reviewers) as soon as content is hashed, and re-sealed for the EU Centre's
    ``centre_public_key`` only when a hit is reported; each report is signed with ``signing_key``."""

    signing_key: Optional[str] = Field(".demo/provider-keys/private.pem", description="provider Ed25519 private key (PEM)")
    evidence_key: Optional[str] = Field(
        ".demo/provider-keys/evidence_private.pem", description="provider X25519 private key for review evidence (PEM)"
    )
    centre_public_key: Optional[str] = Field(
        ".demo/centre-keys/centre_public.pem", description="EU Centre X25519 public key (PEM) evidence is sealed for"
    )
    include_evidence: bool = Field(True, description="attach the sealed content to reports and review items")


class ReviewSettings(_Strict):
    ttl_seconds: int = Field(14 * 24 * 3600, gt=0, description="pending review items and their evidence are deleted after this")
    verdict_subscription: Subscription = Field(None, description="projects/P/subscriptions/S of reviewer verdicts")
    sweep_seconds: float = Field(300.0, gt=0, description="streaming: how often expired review items are swept")


class FeedbackSettings(_Strict):
    subscription: Subscription = Field(None, description="projects/P/subscriptions/S of EU Centre verdicts")
    verdict_glob: Optional[str] = Field(None, description="JSON Lines files of EU Centre verdicts (batch)")
    out_dir: Optional[str] = Field("out/feedback", description="precision, alerts and labelled examples")
    precision_floor: float = Field(0.8, ge=0, le=1, description="alert when a detector's precision falls below this")
    min_verdicts: int = Field(10, ge=1, description="verdicts needed before a precision alert can fire")
    notifications_dir: Optional[str] = Field("out/notifications", description="scheduled user notifications (Art. 12(2))")
    notifications_topic: Topic = None
    notify_after_days: int = Field(90, gt=0, description="users are notified this long after a report unless delayed")


class StoreSettings(_Strict):
    stats_dir: Optional[str] = Field("out/stats", description="id-free counters for the transparency report")
    complaints_dir: str = Field("out/complaints", description="users' complaints and their outcomes (Art. 34)")


class RetentionSettings(_Strict):
    days: int = Field(365, gt=0, description="stored reports, evidence and review items are deleted this long after reporting (Art. 22)")
    dead_letter_days: int = Field(30, gt=0, description="dead letters (rejected events: never ids of hits) are deleted this long after rejection")
    holds_file: str = Field("out/holds.jsonl", description="report ids on hold (not deleted)")
    log_dir: str = Field("out/retention", description="what was deleted, by id only")
