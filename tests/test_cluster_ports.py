"""The local Flink cluster's ports (``csadetect.cluster.local.Ports``): picked together, so no two of
its processes are told to listen on the same port."""
from __future__ import annotations

import socket

from csadetect.cluster import local


class _ReusingKernel:
    """Sockets bound to port 0 get the lowest port no open socket holds: a released port comes back at
    once, as a real system may hand it out again."""

    def __init__(self):
        self.held: set[int] = set()

    def socket(self, *args, **kwargs):
        kernel = self

        class _Socket:
            port = None

            def bind(self, address):
                assert address[1] == 0
                self.port = min(p for p in range(40000, 40100) if p not in kernel.held)
                kernel.held.add(self.port)

            def getsockname(self):
                return ("127.0.0.1", self.port)

            def close(self):
                kernel.held.discard(self.port)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.close()

        return _Socket()


def _one_at_a_time(kernel: _ReusingKernel) -> int:
    """How ports were picked before: each socket closed before the next is bound."""
    with kernel.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ports_are_distinct_even_where_the_system_reuses_a_released_port(monkeypatch):
    kernel = _ReusingKernel()
    assert len({_one_at_a_time(kernel) for _ in range(11)}) == 1  # the old way: one port, eleven times
    monkeypatch.setattr(local.socket, "socket", kernel.socket)
    ports = local.Ports()
    values = list(vars(ports).values())
    assert len(values) == 11 and len(set(values)) == 11 and 0 not in values
    assert not kernel.held  # every socket released once the ports are picked


def test_given_ports_are_kept_and_never_picked_again(monkeypatch):
    kernel = _ReusingKernel()
    monkeypatch.setattr(local.socket, "socket", kernel.socket)
    ports = local.Ports(kafka=40000, worker_pool=40003)
    values = list(vars(ports).values())
    assert ports.kafka == 40000 and ports.worker_pool == 40003 and len(set(values)) == 11


def test_real_free_ports_can_be_bound():
    for port in local.free_ports(3):
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def test_a_kafka_cluster_id_never_starts_with_a_dash(monkeypatch):
    """``kafka-storage format -t ID`` takes an id starting with ``-`` for an option (one random id in 64):
    such a draw is replaced, and every id is 22 characters of URL-safe base64."""
    import uuid

    from csadetect.cluster import local

    draws = iter([uuid.UUID(bytes=b"\xfb" + bytes(15)), uuid.UUID(bytes=bytes(16))])  # "-w..." first, then "AAAA..."
    monkeypatch.setattr(local.uuid, "uuid4", lambda: next(draws))
    assert local.kafka_cluster_id() == "A" * 22
    monkeypatch.undo()
    ids = [local.kafka_cluster_id() for _ in range(2000)]
    assert not [i for i in ids if i.startswith("-")] and {len(i) for i in ids} == {22}
