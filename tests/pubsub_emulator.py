"""The real Pub/Sub emulator (``gcloud beta emulators pubsub start``) on a free port, for tests."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager

PROJECT = "csad-test-project"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def pubsub_emulator(timeout: float = 90.0):
    """Start the emulator, yield ``host:port``, stop it (the whole process group) afterwards."""
    if shutil.which("gcloud") is None:
        raise RuntimeError("gcloud is not installed: the Pub/Sub emulator tests need it")
    port = free_port()
    host = f"127.0.0.1:{port}"
    log = tempfile.NamedTemporaryFile(prefix="pubsub-emulator-", suffix=".log", delete=False)
    data_dir = tempfile.mkdtemp(prefix="pubsub-emulator-data-")
    proc = subprocess.Popen(
        ["gcloud", "beta", "emulators", "pubsub", "start", f"--host-port={host}", f"--project={PROJECT}",
         f"--data-dir={data_dir}", "--quiet"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            with open(log.name, errors="replace") as fh:
                text = fh.read()
            if "Server started" in text:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Pub/Sub emulator did not start on {host}: {text[-500:]}")
            time.sleep(0.3)
        yield host
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(data_dir, ignore_errors=True)
        os.unlink(log.name)


def stop(proc, timeout: float = 30.0) -> None:
    """Stop a pipeline started by a test (terminate, then kill after ``timeout`` seconds)."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_for(fetch, count: int, timeout: float) -> list:
    """Call ``fetch()`` (a pull that returns a list) until ``count`` items arrived or ``timeout``
    seconds passed; returns what arrived."""
    got: list = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(got) < count:
        got += fetch()
        if len(got) < count:
            time.sleep(1)
    return got


class PubSubAdmin:
    """Thin helper over google-cloud-pubsub clients pointed at the emulator."""

    def __init__(self, host: str, project: str = PROJECT):
        os.environ["PUBSUB_EMULATOR_HOST"] = host
        from google.cloud import pubsub_v1

        self.project = project
        self.publisher = pubsub_v1.PublisherClient()
        self.subscriber = pubsub_v1.SubscriberClient()

    def topic(self, name: str) -> str:
        path = self.publisher.topic_path(self.project, name)
        self.publisher.create_topic(name=path)
        return path

    def subscription(self, topic_path: str, name: str) -> str:
        path = self.subscriber.subscription_path(self.project, name)
        self.subscriber.create_subscription(name=path, topic=topic_path, ack_deadline_seconds=60)
        return path

    def publish(self, topic_path: str, data: bytes, **attrs: str) -> None:
        self.publisher.publish(topic_path, data, **attrs).result(timeout=30)

    def pull(self, subscription: str, max_messages: int = 100) -> list:
        resp = self.subscriber.pull(
            request={"subscription": subscription, "max_messages": max_messages, "return_immediately": True},
            timeout=10,
        )
        if resp.received_messages:
            self.subscriber.acknowledge(
                request={"subscription": subscription, "ack_ids": [m.ack_id for m in resp.received_messages]}
            )
        return [m.message for m in resp.received_messages]

    def close(self):
        self.subscriber.close()
