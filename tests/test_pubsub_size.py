"""Large events through the Pub/Sub emulator: the client library opens the emulator's channel with
gRPC's 4 MiB receive limit, so a pull of 10 events with a 3 MP upload inline each fails; our
subscriber (csadetect.core.pubsub.subscriber) and the DirectRunner's Pub/Sub read, patched to use it
(csadetect.pipelines.progress.fix_direct_runner_pubsub), receive them. Real emulator, no mocks."""
from __future__ import annotations

import os

import pytest

from tests.pubsub_emulator import PubSubAdmin

BIG = 700_000  # bytes per message: 10 of them are more than 4 MiB


@pytest.fixture(scope="module")
def big_messages(emulator):
    admin = PubSubAdmin(emulator)
    topic = admin.topic("big-events")
    subs = [admin.subscription(topic, name) for name in ("stock", "ours", "direct")]
    for i in range(10):
        admin.publish(topic, bytes([i]) * BIG)
    yield subs
    admin.close()


def _pull(client, subscription):
    return client.pull(request={"subscription": subscription, "max_messages": 10}, timeout=30)


def test_the_stock_emulator_client_cannot_pull_them_ours_can(big_messages):
    from google.api_core import exceptions
    from google.cloud import pubsub_v1

    from csadetect.core import pubsub

    stock, ours, _ = big_messages
    with pytest.raises(exceptions.ResourceExhausted):
        _pull(pubsub_v1.SubscriberClient(), stock)  # why the fix exists
    got = []
    client = pubsub.subscriber()
    while len(got) < 10:
        response = _pull(client, ours)
        got += [m.message.data for m in response.received_messages]
        client.acknowledge(request={"subscription": ours, "ack_ids": [m.ack_id for m in response.received_messages]})
    assert sorted(len(d) for d in got) == [BIG] * 10 and sorted(d[0] for d in got) == list(range(10))


def test_the_direct_runner_reads_them_through_our_client(big_messages):
    from types import SimpleNamespace

    from apache_beam.runners.direct import transform_evaluator as evaluators

    from csadetect.pipelines import progress

    _, _, direct = big_messages
    progress.fix_direct_runner_pubsub()
    assert progress.fix_direct_runner_pubsub() is False  # once per process

    class Transform:  # stands for the applied PTransform the client is kept for
        pass

    transform = Transform()  # its client is closed when the transform goes
    evaluator = SimpleNamespace(_applied_ptransform=transform, _sub_name=direct)  # what the read uses of one
    assert os.environ.get("PUBSUB_EMULATOR_HOST")
    got = []
    while len(got) < 10:  # Beam's own read, as patched: pulls (up to 10 at a time) and acknowledges
        got += evaluators._PubSubReadEvaluator._read_from_pubsub(evaluator, None)
    assert len(got) == 10 and sorted(len(message.data) for _, message in got) == [BIG] * 10
    assert progress.direct_runner_subscriber(transform) is progress.direct_runner_subscriber(transform)


def test_an_idle_subscription_holds_the_direct_runner_for_a_few_seconds_only(big_messages, monkeypatch):
    """The pipeline's watermark is the lowest of its inputs', and an input's moves only when its
    pull returns: Beam's 30 s pull on an idle verdict subscription held every window and every
    verdict-driven report back that long. Ours waits DIRECT_PULL_SECONDS, and a pull that the
    server lets run into its deadline counts as empty instead of failing the pipeline."""
    from types import SimpleNamespace

    from google.api_core import exceptions

    from csadetect.pipelines import progress

    _, _, direct = big_messages
    class Transform:  # stands for the applied PTransform (weakly referenced: object() would not do)
        pass

    evaluator = SimpleNamespace(_applied_ptransform=Transform(), _sub_name=direct)
    client = progress.direct_runner_subscriber(evaluator._applied_ptransform)
    deadlines, real_pull = [], client.pull

    def pull(*args, **kwargs):  # the real pull, its deadline noted
        deadlines.append(kwargs.get("timeout"))
        return real_pull(*args, **kwargs)

    monkeypatch.setattr(client, "pull", pull)
    while progress._read_from_pubsub(evaluator, None):  # drain what the other test left, if anything
        pass
    assert deadlines and set(deadlines) == {progress.DIRECT_PULL_SECONDS} and progress.DIRECT_PULL_SECONDS <= 5

    def past_deadline(*_args, **_kwargs):
        raise exceptions.DeadlineExceeded("Deadline Exceeded")

    monkeypatch.setattr(client, "pull", past_deadline)
    assert progress._read_from_pubsub(evaluator, None) == []
