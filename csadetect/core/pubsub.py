"""Pub/Sub client helpers: the one place that talks to Pub/Sub outside Beam's own IO.

Clients for the local emulator (``PUBSUB_EMULATOR_HOST=host:port``) or the real service
(Application Default Credentials), resource paths, existence checks with a short timeout, idempotent
creation, pull-and-ack and publish. Every client error becomes a :class:`PubSubError` whose message
is ONE line naming the resource and what to do: not found, permission denied, no credentials,
emulator or service unreachable (:func:`describe`). ``csadetect pubsub``, ``csadetect publish`` and
the pipelines' start-up check (:func:`csadetect.pipelines.sources.preflight_pubsub`) share it.

google-cloud-pubsub (and gRPC under it) is imported only when a client is made: importing this
module costs nothing. No message content is ever put into an error.
"""
from __future__ import annotations

import contextlib
import os
import re
import socket
import time
from typing import Iterator, Optional

EMULATOR_ENV = "PUBSUB_EMULATOR_HOST"
PROJECT_ENVS = ("PUBSUB_PROJECT_ID", "GOOGLE_CLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT")
TOPIC = re.compile(r"^projects/([^/\s]+)/topics/([^/\s]+)$")
SUBSCRIPTION = re.compile(r"^projects/([^/\s]+)/subscriptions/([^/\s]+)$")
PATTERNS = {"topics": TOPIC, "subscriptions": SUBSCRIPTION}  # the pattern of each kind of path
CHECK_SECONDS = 10.0  # one existence check, on the emulator or the real service
MAX_MESSAGE_BYTES = 10_000_000  # Pub/Sub's limit for one message


class PubSubError(Exception):
    """One line: what failed, on which resource, and what to do."""


def emulator_host() -> Optional[str]:
    """``host:port`` of the emulator when ``PUBSUB_EMULATOR_HOST`` is set, else None."""
    return os.environ.get(EMULATOR_ENV) or None


def service_name() -> str:
    host = emulator_host()
    return f"the Pub/Sub emulator at {host}" if host else "Pub/Sub (pubsub.googleapis.com)"


def default_project() -> Optional[str]:
    for name in PROJECT_ENVS:
        if os.environ.get(name):
            return os.environ[name]
    return None


def topic_path(name: str, project: Optional[str] = None) -> str:
    """``projects/P/topics/T`` from a full path or a short name (``project`` needed then)."""
    return _path(name, project, "topics", TOPIC)


def subscription_path(name: str, project: Optional[str] = None) -> str:
    """``projects/P/subscriptions/S`` from a full path or a short name (``project`` needed then)."""
    return _path(name, project, "subscriptions", SUBSCRIPTION)


def _path(name: str, project: Optional[str], kind: str, pattern) -> str:
    name = str(name).strip()
    if pattern.match(name):
        return name
    if "/" in name or not name:
        raise PubSubError(f"{name[:120]!r} is not a {kind[:-1]}: give projects/P/{kind}/NAME or a short NAME")
    if not project:
        raise PubSubError(f"{kind[:-1]} {name!r} needs a project: give projects/P/{kind}/{name}, --project, "
                          f"or set {PROJECT_ENVS[0]}")
    return f"projects/{project}/{kind}/{name}"


def describe(exc: BaseException, what: str) -> str:
    """One line for a Pub/Sub client error on ``what`` (e.g. ``subscription projects/p/subscriptions/s``)."""
    from google.api_core import exceptions as gexc  # lazy: google-cloud-pubsub only when Pub/Sub is used
    from google.auth import exceptions as auth_exc

    host = emulator_host()
    if isinstance(exc, PubSubError):
        return str(exc)
    if isinstance(exc, auth_exc.DefaultCredentialsError):
        return (f"no Google credentials for Pub/Sub ({what}): run `gcloud auth application-default login`, "
                f"or export {EMULATOR_ENV}=host:port to use the local emulator")
    if isinstance(exc, gexc.NotFound):
        hint = " (create it: `csadetect pubsub setup`)" if host else ""
        return f"{what} does not exist on {service_name()}{hint}"
    if isinstance(exc, gexc.AlreadyExists):
        return f"{what} already exists on {service_name()}"
    if isinstance(exc, (gexc.PermissionDenied, gexc.Forbidden, gexc.Unauthenticated, gexc.Unauthorized,
                        auth_exc.RefreshError)):
        return (f"permission denied on {what} ({type(exc).__name__}): the account needs a Pub/Sub role on it "
                "(roles/pubsub.subscriber to read, roles/pubsub.publisher to write, roles/pubsub.editor to create)")
    if isinstance(exc, (gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.RetryError, auth_exc.TransportError,
                        TimeoutError, ConnectionError)) or type(exc).__name__ == "TimeoutError":
        return unreachable(what)
    if isinstance(exc, gexc.InvalidArgument):
        return f"{what}: refused by {service_name()} as invalid ({_first_line(exc)})"
    if isinstance(exc, gexc.GoogleAPICallError):
        return f"{what}: {service_name()} answered {type(exc).__name__} ({_first_line(exc)})"
    return f"{what}: {type(exc).__name__} talking to {service_name()}"


def unreachable(what: Optional[str] = None) -> str:
    """One line for an emulator or service that does not answer (``what``: the resource asked for)."""
    host = emulator_host()
    about = f" ({what})" if what else ""
    if host:
        return (f"the Pub/Sub emulator at {host} ({EMULATOR_ENV}) is unreachable{about}: start it with "
                f"`gcloud beta emulators pubsub start --host-port={host}`, or unset {EMULATOR_ENV} for the real service")
    return (f"Pub/Sub (pubsub.googleapis.com) is unreachable{about}: check the network and proxy, "
            f"or export {EMULATOR_ENV}=host:port to use the local emulator")


def _first_line(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc)
    return " ".join(str(text).split())[:160] or type(exc).__name__


@contextlib.contextmanager
def errors(what: str) -> Iterator[None]:
    """Turn any client error inside into a one-line :class:`PubSubError` about ``what``."""
    try:
        yield
    except PubSubError:
        raise
    except Exception as exc:  # every client error class: mapped to one line, never a traceback
        raise PubSubError(describe(exc, what)) from None


def check_emulator(timeout: float = 3.0) -> None:
    """When ``PUBSUB_EMULATOR_HOST`` is set, something must listen there (a TCP connect):
    otherwise every call would fail late, after retries."""
    host = emulator_host()
    if not host:
        return
    name, _, port = host.rpartition(":")
    try:
        with socket.create_connection((name.strip("[]") or "localhost", int(port)), timeout=timeout):
            return
    except ValueError:
        raise PubSubError(f"{EMULATOR_ENV}={host!r} is not host:port") from None
    except OSError:
        raise PubSubError(unreachable()) from None


def publisher():
    """A PublisherClient for the emulator or the real service (one-line error without credentials)."""
    check_emulator()
    with errors("creating a Pub/Sub publisher"):
        from google.cloud import pubsub_v1  # lazy: gRPC only when Pub/Sub is used

        return pubsub_v1.PublisherClient()


# The client library opens the emulator's channel with gRPC's default 4 MiB receive limit, while
# its channel to the real service has none: a pull of 10 events with a 3 MP upload inline each
# (what Beam's DirectRunner asks for) failed with ResourceExhausted, again and again, and no event
# got through. Clients for the emulator therefore get a channel without that limit (Pub/Sub's own
# limit, 10 MB per message, still holds).
_NO_SIZE_LIMIT = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]


def subscriber():
    """A SubscriberClient for the emulator or the real service (one-line error without credentials)."""
    check_emulator()
    with errors("creating a Pub/Sub subscriber"):
        from google.cloud import pubsub_v1  # lazy: gRPC only when Pub/Sub is used

        host = emulator_host()
        if host is None:
            return pubsub_v1.SubscriberClient()
        import grpc
        from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

        channel = grpc.insecure_channel(host, options=_NO_SIZE_LIMIT)
        return pubsub_v1.SubscriberClient(transport=SubscriberGrpcTransport(channel=channel))


def check_subscription(client, path: str, timeout: float = CHECK_SECONDS) -> None:
    """Raise PubSubError unless subscription ``path`` exists and can be read."""
    with errors(f"subscription {path}"):
        client.get_subscription(request={"subscription": path}, retry=None, timeout=timeout)


def check_topic(client, path: str, timeout: float = CHECK_SECONDS) -> None:
    """Raise PubSubError unless topic ``path`` exists (a PublisherClient)."""
    with errors(f"topic {path}"):
        client.get_topic(request={"topic": path}, retry=None, timeout=timeout)


def ensure_topic(client, path: str, timeout: float = CHECK_SECONDS) -> bool:
    """Create topic ``path``; True when created, False when it existed already."""
    from google.api_core import exceptions as gexc  # lazy: as above

    with errors(f"topic {path}"):
        try:
            client.create_topic(request={"name": path}, retry=None, timeout=timeout)
        except gexc.AlreadyExists:
            return False
    return True


def ensure_subscription(client, path: str, topic: str, ack_deadline_seconds: int = 60,
                        timeout: float = CHECK_SECONDS) -> bool:
    """Create subscription ``path`` on ``topic``; True when created, False when it existed.
    An existing subscription on another topic is an error (it would read the wrong stream)."""
    from google.api_core import exceptions as gexc  # lazy: as above

    with errors(f"subscription {path}"):
        try:
            client.create_subscription(request={"name": path, "topic": topic,
                                                "ack_deadline_seconds": ack_deadline_seconds},
                                       retry=None, timeout=timeout)
            return True
        except gexc.AlreadyExists:
            existing = client.get_subscription(request={"subscription": path}, retry=None, timeout=timeout)
    if existing.topic != topic:
        raise PubSubError(f"subscription {path} exists but reads {existing.topic}, not {topic}")
    return False


def pull(client, path: str, max_messages: int = 100, wait_seconds: float = 5.0,
         poll_seconds: float = 0.5) -> list:
    """Pull up to ``max_messages`` messages from ``path``, waiting at most ``wait_seconds`` for
    them, and acknowledge each batch once it is returned. Returns ``PubsubMessage`` objects."""
    got: list = []
    deadline = time.monotonic() + max(0.0, wait_seconds)
    while len(got) < max_messages:
        with errors(f"subscription {path}"):
            resp = client.pull(request={"subscription": path, "max_messages": min(1000, max_messages - len(got)),
                                        "return_immediately": True}, retry=None, timeout=CHECK_SECONDS)
            received = list(resp.received_messages)
            if received:
                client.acknowledge(request={"subscription": path, "ack_ids": [m.ack_id for m in received]},
                                   retry=None, timeout=CHECK_SECONDS)
        got += [m.message for m in received]
        if not received:
            if time.monotonic() >= deadline:
                break
            time.sleep(poll_seconds)
    return got


def publish(client, topic: str, data: bytes, timeout: float = 30.0, **attributes: str) -> str:
    """Publish one message and wait for its id."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise PubSubError(f"a message of {len(data)} bytes is over Pub/Sub's limit of {MAX_MESSAGE_BYTES}")
    with errors(f"topic {topic}"):
        return client.publish(topic, data, **attributes).result(timeout=timeout)
