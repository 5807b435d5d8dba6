"""The report schema (DESIGN §7: Art. 13 and Annex III fields known at detection time) and how a
hit fills it (:func:`hit_report`); :mod:`csadetect.reports.records` takes it from there.

A report is a flat dict that matches :data:`REPORT_SCHEMA` (Parquet) and serialises to one JSON
line. ``report_id`` is deterministic in (provider, event id, detector, run id) so a redelivered
event collapses into the same report within a run, while two runs never share a report id (each
run writes under its own run id, :mod:`csadetect.core.runs`; the run is where the report's file
lies, not a field of the report). Fields filled in later stages (provider signature, encrypted
evidence, third-country referral) are present and null until those stages exist.
"""
from __future__ import annotations

import json
from typing import Any, Optional

import pyarrow as pa

from csadetect.core.ids import derived_id
from csadetect.core.timeutil import utc_iso
from csadetect.reports.hits import MatchedItem
from csadetect.signals import get

SCHEMA_VERSION = "1.2"  # 1.1: threshold; 1.2: order_id, conversation_id, risk_patterns, reviewed_at

_MATCH = pa.struct(
    [("indicator_id", pa.string()), ("kind", pa.string()), ("distance", pa.float64()), ("category", pa.string())]
)

REPORT_SCHEMA = pa.schema(
    [
        ("report_id", pa.string()),
        ("schema_version", pa.string()),
        ("provider_id", pa.string()),
        ("created_at", pa.string()),
        ("signature", pa.string()),  # Ed25519 by the provider key (reports stage)
        ("detection_type", pa.string()),  # known | new | grooming
        ("detector", pa.string()),
        ("detector_version", pa.string()),
        ("score", pa.float64()),  # calibrated classifier score (new, grooming)
        ("threshold", pa.float64()),  # the threshold the score was compared with
        ("distance", pa.float64()),
        ("indicator_ids", pa.list_(pa.string())),
        ("categories", pa.list_(pa.string())),
        ("matches", pa.list_(_MATCH)),
        ("review_status", pa.string()),  # auto_confirmed | confirmed
        ("reviewed_at", pa.string()),  # when a human confirmed it (null when auto-confirmed)
        ("content_kind", pa.string()),
        ("mime", pa.string()),
        ("content_md5", pa.string()),
        ("content_sha256", pa.string()),
        ("content_pdq", pa.string()),
        ("evidence_encrypted", pa.string()),  # hybrid-encrypted for the EU Centre (reports stage)
        ("event_id", pa.string()),
        ("service", pa.string()),
        ("occurred_at", pa.string()),
        ("account", pa.string()),
        ("ip", pa.string()),
        ("port", pa.int64()),
        ("time_zone", pa.string()),
        ("country", pa.string()),
        ("device", pa.string()),
        ("content_removed", pa.bool_()),
        ("urgent", pa.bool_()),
        ("legal_basis", pa.string()),
        ("order_id", pa.string()),  # the detection order (Art. 7) relied on
        ("conversation_id", pa.string()),  # grooming: the conversation
        ("risk_patterns", pa.list_(pa.string())),  # grooming: risk patterns found (names only, no text)
        ("reported_to_third_country", pa.string()),
        ("account_action", pa.string()),
    ]
)


def report_id(provider: str, event_id: str, detector: str, run_id: Optional[str] = None) -> str:
    """The report id of a hit: the same event and detector give the same id within a run
    (``run_id``), and different ids in different runs. Without a run id (reports made outside a
    pipeline run, and those of earlier versions) it is derived from the first three alone."""
    if run_id:
        return derived_id(provider, event_id, detector, run_id)
    return derived_id(provider, event_id, detector)


def hit_report(matched: MatchedItem, provider, run_id: Optional[str] = None) -> dict[str, Any]:
    """Report record for a hit: known material when it has
    indicator matches (detector ``known-hash``, or ``known-embedding`` when only embedding
    near-duplicates matched), else new material scored by the classifier. ``run_id``: the
    pipeline run that found it (part of the report id)."""
    if matched.matches:
        detectors = {get(m.kind).detector for m in matched.matches}
        return known_report(matched, provider, detectors.pop() if len(detectors) == 1 else "known-hash", run_id)
    report = known_report(matched, provider, "new-material-classifier", run_id)
    report.update(
        detection_type="new",
        detector_version=matched.new_model_version,
        score=matched.new_score,
        threshold=matched.new_threshold,
        distance=None,
    )
    return report


def known_report(matched: MatchedItem, provider, detector: str = "known-hash",
                 run_id: Optional[str] = None) -> dict[str, Any]:
    """Report record for a confirmed known-material match."""
    item = matched.item
    event = item.event
    ctx = event.context or {}
    # strongest evidence first: exact hashes, vPDQ, PDQ (bits), then embedding (1 - cosine), so
    # ``distance`` is never a mix of units; within a kind, nearest first
    matches = sorted(matched.matches, key=lambda m: (get(m.kind).evidence, m.distance, m.indicator_id))
    hashes = item.image if item.image is not None else item.video
    port = ctx.get("port")
    try:
        port = int(port) if port is not None else None
    except (TypeError, ValueError):
        port = None
    return {
        "report_id": report_id(event.provider, event.event_id, detector, run_id),
        "schema_version": SCHEMA_VERSION,
        "provider_id": provider.provider_id,
        "created_at": utc_iso(),
        "signature": None,
        "detection_type": "known",
        "detector": detector,
        "detector_version": f"indicators-v{matched.index_version}",
        "score": None,
        "threshold": None,
        "distance": float(matches[0].distance) if matches else None,
        "indicator_ids": [m.indicator_id for m in matches],
        "categories": sorted({m.category for m in matches}),
        "matches": [
            {"indicator_id": m.indicator_id, "kind": m.kind, "distance": float(m.distance), "category": m.category}
            for m in matches
        ],
        "review_status": "auto_confirmed",
        "reviewed_at": None,
        "content_kind": event.kind,
        "mime": event.mime,
        "content_md5": hashes.md5,
        "content_sha256": hashes.sha256,
        "content_pdq": item.image.pdq.hex() if item.image is not None else None,
        "evidence_encrypted": None,
        "event_id": event.event_id,
        "service": event.service,
        "occurred_at": event.occurred_at,
        "account": event.account,
        "ip": None if ctx.get("ip") is None else str(ctx.get("ip")),
        "port": port,
        "time_zone": None if ctx.get("time_zone") is None else str(ctx.get("time_zone")),
        "country": None if ctx.get("country") is None else str(ctx.get("country")),
        "device": None if ctx.get("device") is None else str(ctx.get("device")),
        "content_removed": bool(provider.content_removed),
        "urgent": False,
        "legal_basis": None,  # set from the detection order (csadetect.reports.records.pending_report)
        "order_id": None,
        "conversation_id": None,
        "risk_patterns": None,
        "reported_to_third_country": None,
        "account_action": provider.account_action,
    }


FIELD_DOCS = {
    "report_id": "deterministic from provider, event id, detector and the pipeline run: a redelivered event never "
                 "makes a second report in a run, and two runs never share an id",
    "schema_version": "version of this schema",
    "provider_id": "the reporting provider (Art. 13(1)(a))",
    "created_at": "when the report was made (RFC 3339, UTC)",
    "signature": "ed25519 signature by the provider key over every other field (Art. 13(1)(b)); null until signed",
    "detection_type": "known, new or grooming",
    "detector": "known-hash, known-embedding, new-material-classifier or grooming-text",
    "detector_version": "indicator snapshot version or model version that produced the hit",
    "score": "calibrated classifier score (new, grooming); null for hash matches",
    "threshold": "the threshold the score was compared with",
    "distance": "best match distance of the strongest kind: bits (pdq), 1 - share (vpdq), 0 (md5/sha256), 1 - cosine (embedding)",
    "indicator_ids": "indicators matched (strongest kind first)",
    "categories": "indicator categories matched",
    "matches": "each matched indicator with its kind, distance and category",
    "review_status": "auto_confirmed, confirmed (by a human) or pending (review queue only)",
    "reviewed_at": "when a human reviewer confirmed the hit (RFC 3339); null when auto-confirmed",
    "content_kind": "image | video | text",
    "mime": "content MIME type",
    "content_md5": "MD5 of the content bytes",
    "content_sha256": "SHA-256 of the content bytes",
    "content_pdq": "PDQ of an image (hex)",
    "evidence_encrypted": "the content, hybrid-encrypted for the EU Centre (X25519 + AES-GCM); never plaintext",
    "event_id": "the provider's id of the upload or message",
    "service": "the service component where it happened (Annex III)",
    "occurred_at": "when the content was shared (RFC 3339)",
    "account": "the user account concerned (Art. 13(1)(e))",
    "ip": "IP address, where given (Annex III)",
    "port": "source port, where given",
    "time_zone": "time zone of occurred_at, where given",
    "country": "location (country), where given",
    "device": "device information, where given",
    "content_removed": "whether the content was removed or access to it disabled",
    "urgent": "imminent risk to a child (Art. 13(1)(j)); such reports come first at the Centre (Art. 48(4))",
    "legal_basis": "the detection order relied on (Art. 7), with its issuing authority",
    "order_id": "id of the detection order relied on",
    "conversation_id": "grooming: the provider's id of the conversation; null otherwise",
    "risk_patterns": "grooming: names of the risk patterns found (the messages themselves are in the sealed evidence)",
    "reported_to_third_country": "third-country authority also informed, and which; null when none",
    "account_action": "action taken on the account",
}


def _json_type(arrow_type) -> dict:
    if pa.types.is_string(arrow_type):
        return {"type": ["string", "null"]}
    if pa.types.is_floating(arrow_type):
        return {"type": ["number", "null"]}
    if pa.types.is_integer(arrow_type):
        return {"type": ["integer", "null"]}
    if pa.types.is_boolean(arrow_type):
        return {"type": ["boolean", "null"]}
    if pa.types.is_list(arrow_type):
        return {"type": ["array", "null"], "items": _json_type(arrow_type.value_type)}
    if pa.types.is_struct(arrow_type):
        return {"type": ["object", "null"], "additionalProperties": False,
                "properties": {f.name: _json_type(f.type) for f in arrow_type}}
    raise TypeError(f"no JSON Schema type for {arrow_type}")


def json_schema() -> dict:
    """The JSON Schema (draft 2020-12) of a report line, generated from :data:`REPORT_SCHEMA` so
    the two never drift; ``csadetect/reports/schemas/report.schema.json`` is this, checked in."""
    props = {}
    for field in REPORT_SCHEMA:
        props[field.name] = dict(_json_type(field.type), description=FIELD_DOCS[field.name])
    for key in ("report_id", "schema_version", "provider_id", "created_at", "detection_type", "detector",
                "review_status", "content_kind", "event_id", "service", "occurred_at", "legal_basis", "order_id"):
        props[key]["type"] = "string"
    props["detection_type"]["enum"] = ["known", "new", "grooming"]
    props["review_status"]["enum"] = ["auto_confirmed", "confirmed", "pending"]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://csadetect.example/schemas/report-{SCHEMA_VERSION}.json",
        "title": f"csadetect report (Art. 13, Annex III), schema {SCHEMA_VERSION}",
        "type": "object",
        "additionalProperties": False,
        "required": [f.name for f in REPORT_SCHEMA],
        "properties": props,
    }


# field names as tuples/sets: ``pa.Schema.names`` builds a new list on every access
REPORT_FIELDS = tuple(REPORT_SCHEMA.names)
REPORT_FIELD_SET = frozenset(REPORT_FIELDS)


# Review items (the review store and topic): a report that is not yet confirmed, plus when it was
# queued, when it expires, and its evidence sealed for the provider's reviewers (not the Centre).
REVIEW_SCHEMA = pa.schema(
    list(REPORT_SCHEMA)
    + [
        ("queued_at", pa.string()),
        ("expires_at", pa.string()),
        ("review_evidence", pa.string()),  # sealed for the provider's evidence key (reports.evidence_key)
        ("language", pa.string()),  # grooming: the conversation's detected language (ISO 639-1)
        ("language_supported", pa.bool_()),  # grooming: whether the model supports that language
    ]
)


REVIEW_FIELDS = tuple(REVIEW_SCHEMA.names)


def to_json_line(report: dict) -> str:
    return json.dumps(report, sort_keys=True, separators=(",", ":"))


def to_table(reports: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(reports, schema=REPORT_SCHEMA)
