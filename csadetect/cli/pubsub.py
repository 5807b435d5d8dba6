"""``csadetect pubsub {setup,pull}``: the Pub/Sub side of a streaming run, on the local emulator
(``PUBSUB_EMULATOR_HOST``) or the real service.

``setup`` creates the topics and subscriptions a streaming run needs (events in, reports out, dead
letters, review items, reviewer verdicts, plus any topic or subscription the ``--config`` file
names), idempotently: what exists already is said and kept. ``pull`` prints messages of a
subscription (reports, dead letters, review items) as JSON lines and acknowledges them. Errors are
one line naming the resource (:mod:`csadetect.core.pubsub`). The recipe: docs/streaming-local.md.
"""
from __future__ import annotations

import argparse
import base64
import json
from typing import Optional

from csadetect.cli.output import emit, handled, say
from csadetect.config.settings import ConfigError, load_settings
from csadetect.core import pubsub

_handled = handled(lambda: (pubsub.PubSubError, ConfigError))

# (topic, subscription on it, the `csadetect run` flag it serves): short names under the project
LAYOUT = (
    ("uploads", "uploads", "input_subscription"),
    ("reports", "reports", "report_topic"),
    ("dead-letters", "dead-letters", "dead_letter_topic"),
    ("review", "review", "review_topic"),
    ("verdicts", "verdicts", "verdict_subscription"),
)


def project_of(args) -> str:
    project = getattr(args, "project", None) or pubsub.default_project()
    if not project:
        raise pubsub.PubSubError(f"no project: give --project P (or set {pubsub.PROJECT_ENVS[0]})")
    return project


def plan(project: str, settings=None) -> list[tuple[str, Optional[str], Optional[str]]]:
    """``(topic, subscription or None, run flag or None)`` full paths to create: the standard
    layout, then the topics and subscriptions the settings name (a configured topic gets a
    subscription of the same name to pull it; a configured verdict subscription reads ``verdicts``)."""
    out = [(pubsub.topic_path(t, project), pubsub.subscription_path(s, project), flag) for t, s, flag in LAYOUT]
    if settings is not None:
        for topic in (settings.sinks.report_topic, settings.sinks.dead_letter_topic, settings.sinks.review_topic):
            if topic:
                path = pubsub.topic_path(topic)
                short = path.rsplit("/", 1)[1]
                out.append((path, f"{path.split('/topics/')[0]}/subscriptions/{short}", None))
        if settings.review.verdict_subscription:
            out.append((pubsub.topic_path("verdicts", project), pubsub.subscription_path(settings.review.verdict_subscription),
                        None))
    seen, unique = set(), []
    for item in out:
        if item[:2] not in seen:
            seen.add(item[:2])
            unique.append(item)
    return unique


@_handled
def cmd_setup(args) -> int:
    project = project_of(args)
    settings = load_settings(args.config) if getattr(args, "config", None) else None
    publisher, subscriber = pubsub.publisher(), pubsub.subscriber()
    flags, created, done = {}, 0, set()
    for topic, subscription, flag in plan(project, settings):
        if topic not in done:
            new = pubsub.ensure_topic(publisher, topic)
            say(f"{'created' if new else 'exists '} topic        {topic}")
            created += new
            done.add(topic)
        if subscription:
            new = pubsub.ensure_subscription(subscriber, subscription, topic, args.ack_deadline)
            say(f"{'created' if new else 'exists '} subscription {subscription}  (on {topic.rsplit('/', 1)[1]})")
            created += new
        if flag:
            flags[flag] = topic if flag.endswith("_topic") else subscription
    subscriber.close()
    say(f"{created} created on {pubsub.service_name()}; run with: "
        + " ".join(f"--{k} {v}" for k, v in flags.items() if k != "verdict_subscription"))
    emit({"project": project, **flags,
          "pull": {t.rsplit("/", 1)[1]: s for t, s, flag in plan(project) if flag and flag.endswith("_topic")}})
    return 0


def message_line(message, attributes: bool = False) -> dict:
    """A pulled message as one JSON object: the body unchanged when it is a JSON object (reports,
    dead letters and review items are: a report's signature still verifies), else
    ``{"data_b64": ...}``; with ``attributes``, ``{"data": <that>, "attributes": {...}}``."""
    data = bytes(message.data)
    try:
        body = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        body = None
    out = body if isinstance(body, dict) else {"data_b64": base64.b64encode(data).decode("ascii")}
    if attributes:
        out = {"data": out, "attributes": dict(message.attributes or {})}
    return out


@_handled
def cmd_pull(args) -> int:
    path = pubsub.subscription_path(args.subscription, getattr(args, "project", None) or pubsub.default_project())
    if args.max < 1:
        raise pubsub.PubSubError("--max must be at least 1")
    client = pubsub.subscriber()
    try:
        pubsub.check_subscription(client, path)
        messages = pubsub.pull(client, path, args.max, args.wait)
    finally:
        client.close()
    for m in messages:
        emit(message_line(m, args.attributes))
    say(f"pulled {len(messages)} message(s) from {path} (acknowledged)")
    return 0


def register(subparsers) -> argparse.ArgumentParser:
    """Add ``pubsub {setup,pull}``."""
    top = subparsers.add_parser("pubsub", help="Pub/Sub topics and subscriptions for a streaming run "
                                "(PUBSUB_EMULATOR_HOST: the local emulator)")
    sub = top.add_subparsers(dest="pubsub_command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("setup", help="create the topics and subscriptions a streaming run needs (idempotent)")
    p.add_argument("--project", default=None, help=f"project id (default: ${pubsub.PROJECT_ENVS[0]} or "
                   f"${pubsub.PROJECT_ENVS[1]})")
    p.add_argument("--ack-deadline", type=int, default=60, metavar="SECONDS", help="of new subscriptions (default 60)")
    p.set_defaults(func=cmd_setup)

    p = sub.add_parser("pull", help="print a subscription's messages as JSON lines and acknowledge them")
    p.add_argument("subscription", metavar="SUBSCRIPTION", help="projects/P/subscriptions/S, or S with --project")
    p.add_argument("--project", default=None, help="for a short SUBSCRIPTION name")
    p.add_argument("--max", type=int, default=100, metavar="N", help="at most N messages (default 100)")
    p.add_argument("--wait", type=float, default=5.0, metavar="SECONDS",
                   help="wait up to this long for messages to arrive (default 5)")
    p.add_argument("--attributes", action="store_true",
                   help='print {"data": BODY, "attributes": {...}} instead of the body alone')
    p.set_defaults(func=cmd_pull)
    return top
