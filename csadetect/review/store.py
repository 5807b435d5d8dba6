"""Human review of hits (DESIGN §6, Art. 10(4)(c)): the review store, verdicts and expiry.

The review store holds one Parquet file per pending item, ``<review_dir>/<RUN_ID>/<report_id>.parquet``
(:data:`csadetect.reports.schema.REVIEW_SCHEMA`; the run that queued it, :mod:`csadetect.core.runs`),
on any Beam filesystem; :meth:`ReviewStore.locate` finds an item by report id in any run. A reviewer's verdict either

* **confirms** the hit: the report gets ``review_status: confirmed`` and ``reviewed_at``, and leaves
  like every report through :func:`csadetect.reports.records.finalise_report` (the evidence opened
  with the provider's evidence key, re-sealed for the EU Centre, then signed); the caller writes it
  to the report sink; the item is deleted from the store; or
* **rejects** it: the item and its evidence are deleted and only an id-free counter remains.

Items still pending ``review.ttl_seconds`` after they were queued are deleted by :func:`expire`
(the pipeline sweeps in streaming; ``csadetect review expire`` and the retention job otherwise),
and with them what a stopped worker left half-written (:data:`ORPHAN_AGE`).
Every outcome is also written as id-free stats (``review_decided``, ``review_seconds``).
"""
from __future__ import annotations

import io
import json
import logging
import os
import re
import uuid
from datetime import datetime, timedelta
from typing import Any, Callable, Iterator, Optional

import pyarrow as pa
import pyarrow.parquet as pq

from csadetect.core import fs, parquet, runs
from csadetect.core.keys import generate_keypair
from csadetect.core.stats import stat
from csadetect.core.timeutil import parse_time, utc_iso, utc_now
from csadetect.reports import crypto
from csadetect.reports.records import finalise_report
from csadetect.reports.schema import REPORT_FIELDS, REVIEW_FIELDS, REVIEW_SCHEMA, to_json_line, to_table

LOG = logging.getLogger("csadetect.review.store")
VERDICTS = ("confirm", "reject")
REPORT_ID_PATTERN = r"[0-9a-f]{8,64}"  # what the store (and a verdict) accepts as a report id
_ID = re.compile(f"^{REPORT_ID_PATTERN}$")


class ReviewError(ValueError):
    """A bad verdict or an unknown item; the message is one line."""


# A confirmed item's signed report is kept this long in ``DECIDED`` beside the run's items
# (:meth:`ReviewStore.decide`): long past any retry of the bundle that applied the verdict. A rejected
# item leaves nothing behind (a retried reject has nothing to emit).
DECIDED = "_decided"
DECISION_HOLD = timedelta(hours=24)
DECISION_SCHEMA = pa.schema([("report_id", pa.string()), ("created_at", pa.string()), ("report", pa.string())])
# A write is made beside its file (``<name>.tmp``) and renamed; a worker stopped in between leaves
# the ``.tmp`` behind, which may hold sealed evidence or a signed report and which no reader sees.
# :func:`expire` deletes those left unchanged this long (a write takes milliseconds).
TEMP_SUFFIX = ".tmp"
ORPHAN_AGE = timedelta(hours=1)


def _write_row(path: str, row: dict, schema: pa.Schema) -> None:
    """One row as a Parquet file at ``path``, written beside it and renamed: readers never see half a file."""
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist([row], schema=schema), buf, compression="zstd")
    with fs.open_write(path + TEMP_SUFFIX) as fh:
        fh.write(buf.getvalue())
    fs.filesystems().rename([path + TEMP_SUFFIX], [path])


def _read_rows(path: str, columns: Optional[list] = None) -> list[dict]:
    """The rows of a (one-row) store file."""
    return parquet.read_table(pa.BufferReader(fs.read_bytes(path)), columns).to_pylist()


# ----------------------------------------------------------------------------------- store


class ReviewStore:
    """One Parquet file per pending review item under ``root`` (local path or any Beam filesystem).

    Each pipeline run puts its items in its own run directory, ``<root>/<RUN_ID>/<report_id>.parquet``
    (:mod:`csadetect.core.runs`); items of earlier layouts lie at ``<root>/<report_id>.parquet``. A
    store made with ``run_id`` is scoped to that run: it puts items there and sees only them.
    Without one it sees every run, and :meth:`locate` is the one lookup that finds an item by its
    report id wherever it lies (verdicts, expiry and ``csadetect review`` all go through it)."""

    def __init__(self, root: str, run_id: Optional[str] = None):
        if not root:
            raise ReviewError("no review store configured (sinks.review_dir)")
        self.root = str(root)
        self.run_id = runs.check_run_id(run_id) if run_id else None
        self.directory = runs.run_dir(self.root, run_id) if run_id else self.root

    @staticmethod
    def _name(report_id: str) -> str:
        if not _ID.match(str(report_id)):
            raise ReviewError(f"not a report id: {str(report_id)[:80]!r}")
        return f"{report_id}.parquet"

    def path(self, report_id: str) -> str:
        """Where :meth:`put` writes the item (this store's run directory, or the root)."""
        return fs.join(self.directory, self._name(report_id))

    def locate(self, report_id: str) -> Optional[str]:
        """The file of the pending item ``report_id`` in any run this store sees; None when none."""
        return self._find(self._name(report_id))

    def _find(self, name: str) -> Optional[str]:
        """``name`` (a file, or ``DECIDED/<file>``) in this store's directory, else in any run's."""
        own = fs.join(self.directory, name)
        if fs.exists(own):
            return own
        if self.run_id:
            return None
        if not fs.via_beam(self.root):
            for run in runs.list_runs(self.root):
                path = os.path.join(self.root, run, name)
                if os.path.isfile(path):
                    return path
            return None
        try:
            found = sorted(m.path for m in fs.match(fs.join(self.root, "*", name)))
        except Exception:  # noqa: BLE001 - a missing prefix holds no item
            return None
        depth = name.count("/")  # a run's file: <root>/<RUN_ID>/<name>
        found = [p for p in found if runs.run_of(self.root, p.rsplit("/", depth)[0] if depth else p)]
        return found[0] if found else None

    def run_of(self, report_id: str) -> Optional[str]:
        """The run whose directory holds the item (None: not pending, or at the root)."""
        path = self.locate(report_id)
        return runs.run_of(self.root, path) if path else None

    def put(self, item: dict) -> str:
        path = self.path(item["report_id"])
        _write_row(path, item, REVIEW_SCHEMA)
        return path

    def get(self, report_id: str) -> Optional[dict]:
        path = self.locate(report_id)
        if path is None:
            return None
        try:
            rows = _read_rows(path)
        except pa.ArrowException:
            raise ReviewError(f"{path}: not a readable review item (Parquet): move it out of the review "
                              "store") from None
        return rows[0] if rows else None

    def delete(self, report_id: str) -> bool:
        """Delete the pending item; False when it is not there (any more: another sweep or a verdict
        took it between the lookup and the delete). A storage error on a file still there raises."""
        path = self.locate(report_id)
        if path is None:
            return False
        try:
            fs.filesystems().delete([path])
        except Exception:  # noqa: BLE001 - Beam's BeamIOError, also for a file gone meanwhile
            if fs.exists(path):
                raise
            return False
        return True

    def _matches(self, *parts: str) -> list:
        """Metadata (``.path``, ``.last_updated_in_seconds``) of the files matching ``parts`` (a glob)
        in this store's directory and, for a store of every run, in each run's directory; a missing
        directory matches nothing."""
        patterns = [fs.join(self.directory, *parts)]
        if not self.run_id:
            patterns.append(fs.join(self.root, "*", *parts))
        found = []
        for pattern in patterns:
            try:
                found += list(fs.match(pattern))
            except Exception:  # noqa: BLE001 - a missing directory holds nothing
                continue
        return found

    def _files(self, *parts: str) -> list[str]:
        return [m.path for m in self._matches(*parts)]

    def ids(self) -> list[str]:
        """Report ids of the pending items of every run this store sees."""
        found = set()
        for path in self._files("*.parquet"):
            name = os.path.basename(path)[: -len(".parquet")]
            parent = os.path.basename(os.path.dirname(path.rstrip("/")))
            if _ID.match(name) and not parent.startswith(".") and parent != DECIDED:
                found.add(name)
        return sorted(found)

    def items(self) -> Iterator[dict]:
        for rid in self.ids():
            item = self.get(rid)
            if item is not None:
                yield item

    def decide(self, report_id: str, report: dict) -> None:
        """Take the confirmed item ``report_id`` out of the store, keeping its signed ``report`` for
        :data:`DECISION_HOLD` (``DECIDED/<report_id>.parquet`` beside where the item was, written
        atomically before the item is deleted), so that the verdict applied again, as a retried
        bundle applies it, gives the same report instead of being refused and losing it
        (:func:`apply_verdict` with ``replay``). :meth:`sweep_decisions` deletes them."""
        path = self.locate(report_id)
        if path is None:
            raise ReviewError(f"no pending review item {report_id}")
        target = fs.join(os.path.dirname(path.rstrip("/")), DECIDED, self._name(report_id))
        # created_at: when the decision was kept, which the hold counts from (a verdict may arrive late)
        _write_row(target, {"report_id": report_id, "created_at": utc_iso(), "report": to_json_line(report)},
                   DECISION_SCHEMA)
        fs.filesystems().delete([path])

    def decision(self, report_id: str) -> Optional[dict]:
        """The kept decision on a confirmed ``report_id`` (``{"report", "kept_at"}``), or None."""
        path = self._find(f"{DECIDED}/{self._name(report_id)}")
        if path is None:
            return None
        try:
            row = _read_rows(path)[0]
        except (pa.ArrowException, IndexError):
            raise ReviewError(f"{path}: not a readable review decision (Parquet)") from None
        return {"kept_at": row["created_at"], "report": json.loads(row["report"])}

    def sweep_decisions(self, before: datetime) -> int:
        """Delete the kept decisions made before ``before``; returns how many."""
        gone = 0
        for path in self._files(DECIDED, "*.parquet"):
            try:
                made = parse_time(_read_rows(path, ["created_at"])[0]["created_at"], field="created_at",
                                  assume_utc=True)
            except Exception:  # noqa: BLE001 - unreadable: swept as old
                made = None
            if made is None or made < before:
                fs.filesystems().delete([path])
                gone += 1
        return gone

    def sweep_orphans(self, before: datetime) -> list[str]:
        """Delete the half-done writes (``*.parquet.tmp`` of items and of kept decisions) last
        changed before ``before``; returns the report ids they were for (from their names)."""
        gone = []
        cutoff = before.timestamp()
        found = self._matches("*.parquet" + TEMP_SUFFIX) + self._matches(DECIDED, "*.parquet" + TEMP_SUFFIX)
        for meta in {m.path: m for m in found}.values():  # <root>/*/ also matches <root>/_decided/
            changed = getattr(meta, "last_updated_in_seconds", None)
            if changed is None or changed >= cutoff:  # a filesystem without times, or a write under way
                continue
            fs.filesystems().delete([meta.path])
            name = os.path.basename(meta.path)[: -len(".parquet" + TEMP_SUFFIX)]
            gone.append(name if _ID.match(name) else "unnamed")
        return gone


# --------------------------------------------------------------------------------- verdicts


def parse_verdict(obj: Any) -> dict:
    """A reviewer verdict (docs/data.md) as a clean dict; raises ReviewError."""
    if isinstance(obj, (bytes, str)):
        try:
            obj = json.loads(obj)
        except ValueError:
            raise ReviewError("verdict is not JSON") from None
    if not isinstance(obj, dict):
        raise ReviewError("verdict must be a JSON object")
    rid, verdict = obj.get("report_id"), obj.get("verdict")
    if not isinstance(rid, str) or not _ID.match(rid):
        raise ReviewError("verdict without a valid report_id")
    if verdict not in VERDICTS:
        raise ReviewError(f"verdict must be one of {', '.join(VERDICTS)}")
    reviewer = obj.get("reviewer")
    if not isinstance(reviewer, str) or not reviewer.strip():
        raise ReviewError("verdict without a reviewer")
    decided = obj.get("decided_at") or utc_iso()
    try:
        decided = utc_iso(parse_time(decided, field="decided_at", assume_utc=True))
    except ValueError:
        raise ReviewError("verdict decided_at is not an RFC 3339 time") from None
    reason = obj.get("reason")
    return {"report_id": rid, "verdict": verdict, "reviewer": reviewer.strip()[:120],
            "reason": None if reason is None else str(reason)[:500], "decided_at": decided}


def _review_stats(item: dict, decision: str, at: datetime) -> list[dict]:
    queued = parse_time(item["queued_at"], field="queued_at", assume_utc=True) if item.get("queued_at") else at
    seconds = max(0.0, (at - queued).total_seconds())
    detector = item.get("detector")
    return [
        stat("review_decided", 1, at, detector=detector, decision=decision),
        stat("review_seconds", round(seconds, 3), at, detector=detector, decision=decision),
    ]


def confirm(item: dict, keys: crypto.ReportKeys, verdict: dict) -> dict:
    """The signed report for a confirmed review item (:func:`csadetect.reports.records.finalise_report`)."""
    report = {k: item.get(k) for k in REPORT_FIELDS}
    report.update(review_status="confirmed", reviewed_at=verdict["decided_at"], created_at=utc_iso())
    return finalise_report(report, keys, item.get("review_evidence"))


def apply_verdict(store: ReviewStore, verdict: dict, keys: crypto.ReportKeys,
                  deliver: Optional[Callable[[Optional[dict]], None]] = None,
                  replay: bool = False) -> tuple[Optional[dict], list[dict]]:
    """Apply one parsed verdict: ``(report or None, stats records)``. The item leaves the store
    either way, after ``deliver(report or None)`` (when given) has returned: a report that cannot be
    written leaves the item pending, never lost. A verdict for an item no longer pending raises
    ReviewError, except with ``replay`` (the pipeline's verdicts, whose bundle may be retried after
    the item left): a confirmed item's report is then kept (:meth:`ReviewStore.decide`), and a confirm
    applied again gives the same report back, with no stats (the first try's, if its bundle failed,
    are not recovered: counters may miss a retried decision, never count a duplicate). The pipeline
    counts its reports where they are written, so ``replay`` leaves ``reported`` out of the stats."""
    item = store.get(verdict["report_id"])
    if item is None and replay:
        kept = store.decision(verdict["report_id"])
        if kept is not None and verdict["verdict"] == "confirm":
            return kept["report"], []
        if kept is not None:
            raise ReviewError(f"review item {verdict['report_id']} was confirmed already")
    if item is None:
        raise ReviewError(f"no pending review item {verdict['report_id']} (decided already, expired or unknown)")
    at = parse_time(verdict["decided_at"], field="decided_at", assume_utc=True)
    if verdict["verdict"] == "confirm":
        report = confirm(item, keys, verdict)
        stats = _review_stats(item, "confirmed", at)
        if not replay:
            stats.append(stat("reported", 1, at, detector=report["detector"],
                              detector_version=report["detector_version"]))
    else:
        report, stats = None, _review_stats(item, "rejected", at)
    if deliver is not None:
        deliver(report)
    if replay and report is not None:
        store.decide(verdict["report_id"], report)
    else:
        store.delete(verdict["report_id"])
    return report, stats


def expire(store: ReviewStore, now: Optional[datetime] = None, log_dir: Optional[str] = None) -> tuple[list[str], list[dict]]:
    """Delete every item whose ``expires_at`` has passed: ``(deleted ids, stats)``. The ids go to
    the deletion log (``log_dir``) and the logger, nothing else about them."""
    now = now or utc_now()
    deleted, stats = [], []
    try:
        for rid in store.ids():
            try:
                item = store.get(rid)
            except ReviewError as exc:  # one unreadable file must not stop every later expiry
                LOG.warning("review item skipped by the expiry sweep: %s", exc)
                continue
            if item is None or not item.get("expires_at"):
                continue
            if parse_time(item["expires_at"], field="expires_at", assume_utc=True) > now:
                continue
            if not store.delete(rid):  # a concurrent sweep (or a verdict) took it: counted there
                continue
            deleted.append(rid)
            stats += _review_stats(item, "expired", now)
            stats.append(stat("deleted", 1, now, store="review"))
            if item.get("review_evidence"):
                stats.append(stat("deleted", 1, now, store="evidence"))
            LOG.info("review item %s expired unreviewed: deleted with its evidence", rid)
    finally:  # what was deleted is logged, even when a later delete fails
        if deleted and log_dir:
            log_deletions(log_dir, "review", deleted, now)
    store.sweep_decisions(now - DECISION_HOLD)
    orphans = store.sweep_orphans(now - ORPHAN_AGE)
    if orphans:
        if log_dir:
            log_deletions(log_dir, "review", orphans, now)
        stats.append(stat("deleted", len(orphans), now, store="review"))
        LOG.warning("deleted %d half-written review file(s) left by a stopped worker", len(orphans))
    return deleted, stats


def log_deletions(log_dir: str, store_name: str, ids: list[str], now: datetime) -> str:
    """Append ``{"at", "store", "id"}`` lines (ids only) to a new file under ``log_dir``."""
    path = fs.join(log_dir, f"deletions-{now.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}.jsonl")
    with fs.open_write(path) as fh:
        for rid in ids:
            fh.write((json.dumps({"at": utc_iso(now), "store": store_name, "id": rid}) + "\n").encode())
    return path


def review_item(report: dict, evidence_token: Optional[str], ttl_seconds: int, now: Optional[datetime] = None) -> dict:
    """A review-store record for an unconfirmed hit (``report`` from
    :func:`csadetect.reports.records.pending_report` or ``grooming_report``)."""
    now = now or utc_now()
    item = {k: report.get(k) for k in REVIEW_FIELDS}
    item.update(review_status="pending", signature=None, evidence_encrypted=None, review_evidence=evidence_token,
                queued_at=utc_iso(now), expires_at=utc_iso(now + timedelta(seconds=ttl_seconds)))
    return item


def write_reports(report_dir: Optional[str], reports: list[dict], topic: Optional[str] = None,
                  run_id: Optional[str] = None) -> list[str]:
    """Write confirmed reports outside the pipeline (``csadetect review decide``): a new
    ``reports-reviewed-*.parquet`` and ``.jsonl`` in ``report_dir`` (in the directory of run
    ``run_id``, the run that queued the items, when given), and/or one message each on ``topic``.
    Returns the files written (new names: nothing is overwritten)."""
    written = []
    if report_dir and reports:
        folder = runs.run_dir(report_dir, run_id) if run_id else report_dir
        stem = fs.join(folder, f"reports-reviewed-{utc_now().strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}")
        buf = io.BytesIO()
        pq.write_table(to_table(reports), buf, compression="zstd")
        with fs.open_write(stem + ".parquet") as fh:
            fh.write(buf.getvalue())
        with fs.open_write(stem + ".jsonl") as fh:
            for r in reports:
                fh.write((to_json_line(r) + "\n").encode("utf-8"))
        written += [stem + ".parquet", stem + ".jsonl"]
    if topic and reports:
        from google.cloud import pubsub_v1  # lazy: the Pub/Sub client, only when publishing

        publisher = pubsub_v1.PublisherClient()
        futures = [publisher.publish(topic, to_json_line(r).encode("utf-8"), report_id=r["report_id"]) for r in reports]
        for f in futures:
            f.result(timeout=60)
    return written


def generate_provider_keys(keydir: str, overwrite: bool = False) -> dict:
    """The provider's report keys under ``keydir``: ``private.pem``/``public.pem`` (Ed25519,
    signatures) and ``evidence_private.pem``/``evidence_public.pem`` (X25519, review evidence).
    Returns the ``reports`` config section that uses them. Without ``overwrite`` an existing private key
    of either kind refuses before anything is written, so a refusal never leaves a half-new pair."""
    if not overwrite:
        for name in ("private.pem", crypto.EVIDENCE_PRIVATE_NAME):
            if os.path.exists(os.path.join(keydir, name)):
                raise ReviewError(f"{os.path.join(keydir, name)} already exists; refusing to replace the provider's "
                                  "report keys (--force replaces both, and reports signed before stop verifying)")
    generate_keypair(keydir, overwrite=overwrite)
    crypto.generate_evidence_keypair(keydir, overwrite=overwrite)
    return {"signing_key": os.path.join(keydir, "private.pem"),
            "evidence_key": os.path.join(keydir, crypto.EVIDENCE_PRIVATE_NAME)}
