"""Reports into the console, verdicts and requests out of it.

* :class:`ReportIngest` takes reports from the report store (``*.jsonl`` / ``*.parquet`` under a
  directory, read at start and every ``refresh_seconds``; unchanged files are skipped) or from a
  Pub/Sub subscription to the report topic (:class:`SubscriptionPuller`, a background thread that
  pulls, stores, then acks; honours ``PUBSUB_EMULATOR_HOST``). Each report is checked against the
  report JSON Schema, its provider signature verified when a provider key is configured
  (``verified`` / ``invalid`` / ``not_checked``), and stored once per ``report_id``. Nothing of a
  rejected report is logged but a count.
* :class:`Outbox` delivers what the console decided: verdicts to the feedback topic and/or
  ``feedback_dir/verdicts-YYYYMMDD.jsonl`` (``csadetect feedback --verdict_glob``), requests for
  missing information to the provider-requests topic and/or
  ``provider_requests_dir/info-requests-YYYYMMDD.jsonl``. A decision is stored with its message in
  one transaction and delivered right after; what fails is retried in the background.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import Counter
from datetime import datetime, timezone
from importlib import resources
from typing import Any, Callable, Optional

import jsonschema

from csadetect.console.storage import REPORT_ID, ConsoleStorage, content_hash
from csadetect.core import keys as signing
from csadetect.core.timeutil import parse_time
from csadetect.reports import crypto
from csadetect.reports.files import REPORT_EXTENSIONS, ReportFileError, read_reports
from csadetect.reports.schema import REPORT_SCHEMA

LOG = logging.getLogger("csadetect.console")


def _validator():
    schema = json.loads(resources.files("csadetect.reports").joinpath("schemas/report.schema.json").read_text("utf-8"))
    return jsonschema.Draft202012Validator(schema)


def file_key(st: os.stat_result) -> tuple:
    """What tells a changed report file: size, modification and change times (ns), device and inode
    (a rewrite in place changes the ctime, a replaced file the inode, even when size and mtime are kept)."""
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_dev, st.st_ino)


class ReportIngest:
    """Validate, verify and store reports; ``counts`` says how many were added, duplicates (the
    same body, same key), rechecked, new versions, invalid."""

    def __init__(self, store: ConsoleStorage, provider_key=None, clock: Optional[Callable[[], float]] = None):
        self.store = store
        self.provider_key = provider_key
        self.key_fingerprint = signing.key_id(provider_key) if provider_key is not None else None
        self.clock = clock or time.time
        self.counts: Counter = Counter()
        self._fields = REPORT_SCHEMA.names
        self._validator = _validator()
        self._seen: dict[str, tuple] = {}
        self._lock = threading.Lock()

    def add(self, obj: Any) -> str:
        """``added``, ``duplicate``, ``rechecked``, ``new_version`` or ``invalid``."""
        if not isinstance(obj, dict):
            self.counts["invalid"] += 1
            return "invalid"
        report = {name: None for name in self._fields}
        report.update(obj)  # a field that is absent counts as null (as for the signature)
        if not self._validator.is_valid(report):
            self.counts["invalid"] += 1
            return "invalid"
        try:
            parse_time(report["created_at"], field="created_at")
        except (ValueError, TypeError):
            self.counts["invalid"] += 1
            return "invalid"
        if not REPORT_ID.match(report["report_id"]):
            self.counts["invalid"] += 1
            return "invalid"
        state = self.store.report_state(report["report_id"])
        if (state is not None and state["content_hash"] == content_hash(report)
                and self.key_fingerprint in (None, state["key_fingerprint"])):  # no key now: the last check stands
            self.counts["duplicate"] += 1
            return "duplicate"
        status, note = "not_checked", None
        if self.provider_key is not None:
            try:
                crypto.verify_report(report, self.provider_key)
                status = "verified"
            except crypto.ReportSignatureError as exc:
                status, note = "invalid", str(exc)[:300]
        outcome = self.store.store_report(report, status, note, self.key_fingerprint, self.clock())
        outcome = "duplicate" if outcome == "unchanged" else outcome
        self.counts[outcome] += 1
        return outcome

    def read_store(self, directory: Optional[str]) -> Counter:
        """Read every report file under ``directory`` that is new or changed since the last call."""
        before = Counter(self.counts)
        if not directory or not os.path.isdir(directory):
            return Counter()
        with self._lock:
            for root, dirs, files in os.walk(directory):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if name.startswith(".") or os.path.splitext(name)[1].lower() not in REPORT_EXTENSIONS:
                        continue
                    path = os.path.join(root, name)
                    try:
                        st = os.stat(path)
                    except OSError:
                        continue
                    key = file_key(st)
                    if self._seen.get(path) == key:
                        continue
                    try:
                        for report, _reason in read_reports(path):
                            self.add(report)
                    except ReportFileError:
                        self.counts["unreadable_file"] += 1
                        continue  # half-written: read again next time
                    self._seen[path] = key
        return self.counts - before


class SubscriptionPuller(threading.Thread):
    """Pull reports from a subscription to the report topic until :meth:`stop`."""

    def __init__(self, ingest: ReportIngest, subscription: str, batch: int = 100, timeout: float = 5.0):
        super().__init__(name="console-report-pull", daemon=True)
        self.ingest = ingest
        self.subscription = subscription
        self.batch = batch
        self.timeout = timeout
        self._halt = threading.Event()
        self.client = None
        self.error: Optional[str] = None

    def pull_once(self) -> int:
        from google.api_core import exceptions as gexc  # lazy: Pub/Sub only when a subscription is configured

        if self.client is None:
            from google.cloud import pubsub_v1  # lazy: as above

            self.client = pubsub_v1.SubscriberClient()
        try:
            resp = self.client.pull(request={"subscription": self.subscription, "max_messages": self.batch},
                                    timeout=self.timeout)
        except (gexc.DeadlineExceeded, gexc.RetryError):
            return 0
        ack = []
        for received in resp.received_messages:
            try:
                obj = crypto.loads_strict(received.message.data)  # a repeated key: refused, counted invalid
            except (ValueError, UnicodeDecodeError):
                obj = None
            self.ingest.add(obj)  # stored (or counted as invalid) before it is acked
            ack.append(received.ack_id)
        if ack:
            self.client.acknowledge(request={"subscription": self.subscription, "ack_ids": ack})
        return len(ack)

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                if self.pull_once() == 0:
                    self._halt.wait(0.5)
                self.error = None
            except Exception as exc:  # noqa: BLE001 - keep pulling; say why once per kind of error
                msg = f"pulling reports from {self.subscription} failed: {type(exc).__name__}"
                if msg != self.error:
                    LOG.warning(msg)
                self.error = msg
                self._halt.wait(5.0)

    def stop(self) -> None:
        self._halt.set()
        if self.client is not None:
            try:
                self.client.close()
            except Exception:  # noqa: BLE001
                pass


def _append_jsonl(directory: str, prefix: str, record: dict, now: float) -> str:
    os.makedirs(directory, exist_ok=True)
    day = datetime.fromtimestamp(now, timezone.utc).strftime("%Y%m%d")
    path = os.path.join(directory, f"{prefix}-{day}.jsonl")
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return path


class Outbox:
    """Deliver stored verdicts and requests to their topic and/or JSON Lines directory."""

    TARGETS = {"verdict": ("feedback_topic", "feedback_dir", "verdicts"),
               "info_request": ("provider_requests_topic", "provider_requests_dir", "info-requests")}

    def __init__(self, store: ConsoleStorage, config, clock: Optional[Callable[[], float]] = None):
        self.store = store
        self.config = config
        self.clock = clock or time.time
        self._publisher = None
        self._lock = threading.Lock()

    def _publish(self, topic: str, message: dict) -> None:
        if self._publisher is None:
            from google.cloud import pubsub_v1  # lazy: Pub/Sub only when a topic is configured

            self._publisher = pubsub_v1.PublisherClient()
        data = json.dumps(message, sort_keys=True).encode("utf-8")
        self._publisher.publish(topic, data, report_id=message["report_id"]).result(timeout=30)

    def deliver(self) -> int:
        """Try every undelivered message once; returns how many are still undelivered."""
        left = 0
        with self._lock:
            for entry in self.store.pending_outbox():
                topic_key, dir_key, prefix = self.TARGETS[entry["kind"]]
                topic, directory = getattr(self.config, topic_key), getattr(self.config, dir_key)
                file_done, topic_done, error = bool(entry["file_done"]), bool(entry["topic_done"]), None
                if not directory:
                    file_done = True
                elif not file_done:
                    try:
                        _append_jsonl(directory, prefix, entry["payload"], self.clock())
                        file_done = True
                    except OSError as exc:
                        error = f"writing {directory}: {exc.strerror or type(exc).__name__}"
                if not topic:
                    topic_done = True
                elif not topic_done:
                    try:
                        self._publish(topic, entry["payload"])
                        topic_done = True
                    except Exception as exc:  # noqa: BLE001 - retried later; one line, no content
                        error = f"publishing to {topic}: {type(exc).__name__}"
                self.store.outbox_progress(entry["id"], file_done, topic_done, error)
                if error:
                    LOG.warning("outbox: %s (will retry)", error)
                    left += 1
        return left

    def close(self) -> None:
        if self._publisher is not None:
            try:
                self._publisher.stop()
            except Exception:  # noqa: BLE001
                pass


class Background(threading.Thread):
    """Every ``interval`` seconds: re-read the report store, retry the outbox, purge old sessions."""

    def __init__(self, interval: float, work: Callable[[], None]):
        super().__init__(name="console-background", daemon=True)
        self.interval = interval
        self.work = work
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            try:
                self.work()
            except Exception as exc:  # noqa: BLE001 - keep going; one line, no content
                LOG.warning("console background work failed: %s", type(exc).__name__)

    def stop(self) -> None:
        self._halt.set()
