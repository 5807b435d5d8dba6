"""From a hit to the report the provider sends (DESIGN §6/§7): the one path every report takes.

1. :func:`pending_report` (an image or video hit, :class:`csadetect.reports.hits.MatchedItem`) or
   :func:`pending_grooming_report` (a flagged conversation) makes the report record: the Art. 13
   fields (:func:`csadetect.reports.schema.hit_report`, :func:`grooming_report`), the detection
   order relied on as legal basis, and its evidence (sealed for the provider) under the transient
   key :data:`EVIDENCE`. A confirmed hit goes on to step 2 (the pipeline drops redelivered copies
   first); a hit awaiting a human becomes a review item (:func:`csadetect.review.store.review_item`).
2. :func:`finalise_report` makes the record the provider sends: its evidence re-sealed for the EU
   Centre, then signed. Confirmed hits (``SealAndSign``) and review items a human confirmed
   (``ApplyVerdicts``, ``csadetect review decide``, through :func:`csadetect.review.store.confirm`)
   all leave through it.
"""
from __future__ import annotations

import json
from collections import Counter
from typing import Optional

from csadetect.core.timeutil import utc_iso
from csadetect.reports import crypto
from csadetect.reports.hits import MatchedItem
from csadetect.reports.schema import REPORT_FIELD_SET, REPORT_FIELDS, SCHEMA_VERSION, hit_report, report_id

# the evidence token of a pending report (sealed for the provider's evidence key); never sent
EVIDENCE = "_evidence"


def with_order(report: dict, order: Optional[tuple]) -> dict:
    """Cite the detection order the detector ran under as the report's legal basis."""
    order_id, basis = order or ("", "")
    report["order_id"] = order_id or None
    report["legal_basis"] = basis or "no detection order recorded (ungated run)"
    return report


def pending_report(matched: MatchedItem, provider, run_id: Optional[str] = None) -> dict:
    """The report record of a media hit with its order as legal basis, plus its sealed evidence
    under :data:`EVIDENCE` (removed by :func:`finalise_report`). ``run_id``: the pipeline run
    (part of the report id, :func:`csadetect.reports.schema.report_id`)."""
    report = hit_report(matched, provider, run_id)
    with_order(report, matched.item.event.order_for(matched.detection_type))
    report[EVIDENCE] = matched.item.evidence
    return report


def grooming_report(flag: dict, provider, urgent_patterns=("meeting",), run_id: Optional[str] = None) -> dict:
    """A flagged conversation as a report record (pending review). The messages are not in it:
    they are the evidence, sealed separately (:func:`grooming_evidence`). ``run_id``: as for
    :func:`pending_report`."""
    senders = Counter()
    by_index = {m["index"]: m for m in flag["messages"]}
    for e in flag["evidence"]:
        m = by_index.get(e["message_index"])
        if m is not None:
            senders[m["sender"]] += 1
    report = dict.fromkeys(REPORT_FIELDS)
    report.update(
        report_id=report_id(flag["provider"], flag["conversation_id"], "grooming", run_id),
        schema_version=SCHEMA_VERSION,
        provider_id=provider.provider_id,
        created_at=utc_iso(),
        detection_type="grooming",
        detector="grooming-text",
        detector_version=flag["model_version"],
        score=float(flag["score"]),
        threshold=float(flag["threshold"]),
        indicator_ids=[], categories=[], matches=[],
        review_status="pending",
        content_kind="text",
        mime="text/plain",
        event_id=flag["event_id"],
        service=flag["service"],
        occurred_at=flag["occurred_at"],
        # the account that sent most of the risk messages (all accounts are in the sealed evidence)
        account=_sender_account(flag, senders.most_common(1)[0][0] if senders else None) or (flag["accounts"] or [None])[0],
        content_removed=bool(provider.content_removed),
        # imminent risk (e.g. a meeting request) puts the report first in the Centre's queue
        urgent=bool({e["pattern"] for e in flag["evidence"]} & set(urgent_patterns)),
        account_action=provider.account_action,
        conversation_id=flag["conversation_id"],
        risk_patterns=sorted({e["pattern"] for e in flag["evidence"]}),
    )
    # review item only (REVIEW_SCHEMA): the conversation's detected language and whether the model supports it
    report.update(language=flag.get("language"), language_supported=flag.get("language_supported"))
    return with_order(report, flag.get("order"))


def _sender_account(flag: dict, sender) -> Optional[str]:
    if sender is None:
        return None
    for s, account in flag.get("sender_accounts", ()):
        if s == sender:
            return account
    return None


def grooming_evidence(flag: dict) -> bytes:
    """What a reviewer reads for a flagged conversation: the messages and the risk evidence."""
    return json.dumps({"conversation_id": flag["conversation_id"], "messages": flag["messages"],
                       "evidence": flag["evidence"], "flagged_at_message": flag["flagged_at_message"],
                       "accounts": flag["accounts"], "language": flag.get("language"),
                       "language_supported": flag.get("language_supported")}, sort_keys=True).encode("utf-8")


def pending_grooming_report(flag: dict, provider, keys: crypto.ReportKeys, urgent_patterns=("meeting",),
                            run_id: Optional[str] = None) -> dict:
    """:func:`grooming_report` plus the conversation (:func:`grooming_evidence`) sealed for the
    provider's reviewers under :data:`EVIDENCE` (None without an evidence key)."""
    report = grooming_report(flag, provider, urgent_patterns, run_id)
    report[EVIDENCE] = None if keys.evidence is None else crypto.seal_content(
        grooming_evidence(flag), "application/json", keys.evidence_public(), report["event_id"])
    return report


def finalise_report(report: dict, keys: crypto.ReportKeys, evidence_token: Optional[str]) -> dict:
    """The report as it leaves the provider: evidence re-sealed for the Centre (when keys and a
    token are given), then signed. ``report`` itself is not changed."""
    out = {k: v for k, v in report.items() if k in REPORT_FIELD_SET}
    out["signature"] = None
    out["evidence_encrypted"] = None
    if evidence_token and keys.seals_evidence:
        out = crypto.reseal_for_centre(out, evidence_token, keys.evidence, keys.centre)
    if keys.signing is not None:
        out = crypto.sign_report(out, keys.signing)
    return out
