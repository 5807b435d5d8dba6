"""``csadetect review``: the provider's human review of hits (DESIGN §6, Art. 10(4)(c)).

    csadetect review list                                  # pending items, one JSON line each (no evidence)
    csadetect review show REPORT_ID [--evidence-out FILE]  # one item; the evidence decrypted to FILE
    csadetect review decide REPORT_ID --confirm|--reject --reviewer NAME [--reason TEXT] [--topic T]
    csadetect review expire [--now T]                      # delete items whose time to live has passed
    csadetect review keygen --out KEYDIR                   # the provider's signing and evidence keys

The store holds the items of every run (``<review_dir>/<RUN_ID>/<report_id>.parquet``); ``--run
RUN_ID`` limits list, show, decide and expire to one run (one line naming the runs there are when
it has no such run). A confirmed item's report goes to the directory of the run that queued it,
``<report_dir>/<RUN_ID>/reports-reviewed-*.jsonl`` (and ``.parquet``), with the decision's stats in
``<stats_dir>/<RUN_ID>/``: nothing is overwritten, and ``--run`` finds them with their run.

``decide`` applies the verdict to the review store at once (a confirmed item becomes a signed report
in ``sinks.report_dir`` and on ``sinks.report_topic``), or, with ``--topic``, publishes it to the
verdict topic a streaming pipeline reads (``review.verdict_subscription``).
"""
from __future__ import annotations

import json
import os

from csadetect.cli.output import emit, handled, say
from csadetect.config.settings import ConfigError, load_settings
from csadetect.core import fs, runs
from csadetect.core.keys import SigningError, write_private_file
from csadetect.core.stats import write_stats
from csadetect.core.timeutil import parse_time
from csadetect.reports import crypto
from csadetect.reports.crypto import EvidenceError, ReportKeyError, ReportKeys
from csadetect.review.store import (
    ReviewError, ReviewStore, apply_verdict, expire, generate_provider_keys, parse_verdict, write_reports,
)

_LISTED = ("report_id", "detection_type", "detector", "detector_version", "score", "threshold", "distance",
           "content_kind", "service", "queued_at", "expires_at", "order_id", "risk_patterns")


def _errors() -> tuple:
    return (ReviewError, EvidenceError, ReportKeyError, SigningError, ConfigError, runs.RunError)


def _settings(args):
    return load_settings(getattr(args, "config", None))


def _output_dir(path, setting: str) -> None:
    """Make a local output directory now, so a file in its place stops the command (one line naming
    the ``setting``) before anything is deleted; other filesystems are left to the writer."""
    if fs.blocking_file(path):  # the folder itself, or one above it, is a file
        raise ReviewError(f"{setting} {path} is not a directory: nothing changed")
    if path and not fs.is_url(path):
        os.makedirs(path, exist_ok=True)


def _store(args, settings):
    """The review store: every run, or the one ``--run`` chooses (which must exist)."""
    root = args.review_dir or settings.sinks.review_dir
    run = getattr(args, "run", None)
    if run and root:
        runs.choose(root, run, "review store")
    return ReviewStore(root, run)


@handled(_errors)
def _cmd_list(args) -> int:
    settings = _settings(args)
    store = _store(args, settings)
    n = 0
    for item in store.items():
        emit({k: item.get(k) for k in _LISTED})
        n += 1
    missing = not fs.is_url(store.root) and not os.path.isdir(store.root)  # a mistyped path looks the same as none
    say(f"{n} item(s) pending review" + (f" (no review store at {store.root} yet: check sinks.review_dir or "
                                         "--review-dir)" if missing else ""))
    return 0


@handled(_errors)
def _cmd_show(args) -> int:
    settings = _settings(args)
    item = _store(args, settings).get(args.report_id)
    if item is None:
        raise ReviewError(f"no pending review item {args.report_id}")
    if args.evidence_out and os.path.exists(args.evidence_out) and not args.force:  # before anything is printed
        raise ReviewError(f"{args.evidence_out} exists; pass --force to replace it")
    shown = {k: v for k, v in item.items() if k != "review_evidence"}
    shown["has_evidence"] = bool(item.get("review_evidence"))
    emit(shown)
    if args.evidence_out:
        key = args.evidence_key or settings.reports.evidence_key
        if not item.get("review_evidence"):
            raise ReviewError(f"review item {args.report_id} carries no evidence")
        mime, content = crypto.open_content(item["review_evidence"], key, item["event_id"])
        write_private_file(args.evidence_out, content)  # mode 0600, like `reports decrypt`
        say(f"evidence ({mime}, {len(content)} bytes) written to {args.evidence_out} (mode 0600)")
    return 0


@handled(_errors)
def _cmd_decide(args) -> int:
    settings = _settings(args)
    verdict = parse_verdict({"report_id": args.report_id, "verdict": "confirm" if args.confirm else "reject",
                             "reviewer": args.reviewer, "reason": args.reason})
    if args.topic:
        from google.cloud import pubsub_v1  # lazy: the Pub/Sub client, only with --topic

        publisher = pubsub_v1.PublisherClient()
        publisher.publish(args.topic, json.dumps(verdict).encode("utf-8"), report_id=verdict["report_id"]).result(60)
        emit({"published": args.topic, "report_id": verdict["report_id"], "verdict": verdict["verdict"]})
        return 0
    keys = ReportKeys.load(settings.reports)
    store = _store(args, settings)
    run = store.run_of(verdict["report_id"])  # the run that queued the item: its report and stats go there
    report_dir = args.report_dir or settings.sinks.report_dir
    stats_dir = settings.stores.stats_dir
    stats_dir = runs.run_dir(stats_dir, run) if stats_dir and run else stats_dir
    _output_dir(stats_dir, "stores.stats_dir")  # a file in the way: one line before the item changes
    if verdict["verdict"] == "confirm":
        _output_dir(runs.run_dir(report_dir, run) if report_dir and run else report_dir, "sinks.report_dir")
    files = []

    def deliver(report):  # before the item leaves the store: a report that cannot be written is not lost
        if report is not None:
            files.extend(write_reports(report_dir, [report], settings.sinks.report_topic, run_id=run))

    report, stats = apply_verdict(store, verdict, keys, deliver)
    write_stats(stats_dir, stats)
    emit({"report_id": verdict["report_id"], "verdict": verdict["verdict"],
                      "reported": report is not None, "files": files})
    say("confirmed: signed report written" if report is not None
         else "rejected: the item and its evidence are deleted; only a counter remains")
    return 0


@handled(_errors)
def _cmd_expire(args) -> int:
    settings = _settings(args)
    try:
        now = parse_time(args.now, field="--now", assume_utc=True) if args.now else None
    except ValueError as exc:
        raise ReviewError(str(exc)) from None
    store = _store(args, settings)
    for directory, setting in ((settings.retention.log_dir, "retention.log_dir"),
                               (settings.stores.stats_dir, "stores.stats_dir")):
        _output_dir(directory, setting)  # the deletion log and the counters: checked before anything is deleted
    deleted, stats = expire(store, now, settings.retention.log_dir)
    write_stats(settings.stores.stats_dir, stats)
    emit({"expired": len(deleted)})
    return 0


@handled(_errors)
def _cmd_keygen(args) -> int:
    section = generate_provider_keys(args.out, overwrite=args.force)
    emit({"reports": section})
    say(f"provider keys written to {args.out}: put the line above under `reports:` in your config; "
         "keep the private keys secret (mode 0600)")
    return 0


def register(subparsers):
    p = subparsers.add_parser("review", help="human review of hits: list, show, decide, expire")
    sub = p.add_subparsers(dest="review_command", metavar="ACTION")
    sub.required = True

    def common(q):
        q.add_argument("--review-dir", default=None, help="review store (default: sinks.review_dir)")
        q.add_argument("--run", default=None, metavar="RUN_ID", help="only this run's items (default: every run)")

    q = sub.add_parser("list", help="pending items, one JSON line each (no evidence)")
    common(q)
    q.set_defaults(func=_cmd_list)

    q = sub.add_parser("show", help="one pending item; --evidence-out decrypts its evidence for the reviewer")
    q.add_argument("report_id")
    q.add_argument("--evidence-out", default=None, metavar="FILE")
    q.add_argument("--evidence-key", default=None, help="provider evidence private key (default: reports.evidence_key)")
    q.add_argument("--force", action="store_true", help="replace an existing --evidence-out file")
    common(q)
    q.set_defaults(func=_cmd_show)

    q = sub.add_parser("decide", help="confirm (-> signed report) or reject (-> deleted) a pending item")
    q.add_argument("report_id")
    which = q.add_mutually_exclusive_group(required=True)
    which.add_argument("--confirm", action="store_true")
    which.add_argument("--reject", action="store_true")
    q.add_argument("--reviewer", required=True, help="who decided (checked; not stored: a rejected item leaves only a counter)")
    q.add_argument("--reason", default=None)
    q.add_argument("--topic", default=None, help="publish the verdict to this topic instead of applying it here")
    q.add_argument("--report-dir", default=None, help="where the report goes (default: sinks.report_dir)")
    common(q)
    q.set_defaults(func=_cmd_decide)

    q = sub.add_parser("keygen", help="the provider's report keys: Ed25519 signing + X25519 review evidence")
    q.add_argument("--out", required=True, metavar="KEYDIR")
    q.add_argument("--force", "--overwrite", dest="force", action="store_true",
                   help="replace existing keys (old reports stop verifying); --overwrite is the old name")
    q.set_defaults(func=_cmd_keygen)

    q = sub.add_parser("expire", help="delete pending items whose time to live has passed")
    q.add_argument("--now", default=None, help="RFC 3339 time to expire against (default: now)")
    common(q)
    q.set_defaults(func=_cmd_expire)
    return p
