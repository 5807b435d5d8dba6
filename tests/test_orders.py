"""Detection orders (Art. 7): config validation, per-event gating with an injected clock, refusing
to start without an active order, and reports citing their order."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from csadetect.events.event import make_event, parse_event
from csadetect.config.settings import ConfigError, load_settings
from csadetect.transforms.orders import NOT_COVERED, ApplyOrdersFn, covering

ORDERS = [
    {"order_id": "O-IMG", "authority": "Authority A", "detection_types": ["known"], "services": ["photos"],
     "start": "2026-01-01T00:00:00Z", "end": "2026-12-01T00:00:00Z"},
    {"order_id": "O-CHAT", "authority": "Authority B", "detection_types": ["grooming", "new"],
     "services": ["chat", "photos"], "start": "2026-06-01T00:00:00Z", "end": "2027-06-01T00:00:00Z"},
]


def _settings(orders=ORDERS):
    return load_settings(overrides={"orders": orders})


def _at(text):
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def test_orders_validate():
    with pytest.raises(ConfigError, match="end must be after start"):
        _settings([dict(ORDERS[0], end="2025-01-01T00:00:00Z")])
    with pytest.raises(ConfigError, match="unique"):
        _settings([ORDERS[0], ORDERS[0]])
    with pytest.raises(ConfigError, match="detection_types"):
        _settings([dict(ORDERS[0], detection_types=["everything"])])


def test_covering_by_type_service_and_time():
    orders = _settings().orders
    assert [c[:2] for c in covering(orders, "image", "photos", _at("2026-03-01T00:00:00"))] == [("known", "O-IMG")]
    both = covering(orders, "image", "photos", _at("2026-07-01T00:00:00"))
    assert [c[:2] for c in both] == [("known", "O-IMG"), ("new", "O-CHAT")]
    assert "Authority A" in both[0][2] and "O-IMG" in both[0][2]
    assert covering(orders, "text", "photos", _at("2026-03-01T00:00:00")) == ()  # O-CHAT not yet active
    assert covering(orders, "image", "videos", _at("2026-07-01T00:00:00")) == ()
    # O-IMG ends on 2026-12-01: known-material detection stops, the other order goes on
    assert [c[:2] for c in covering(orders, "image", "photos", _at("2026-12-01T00:00:00"))] == [("new", "O-CHAT")]


def test_gate_stops_at_the_end_date_without_a_restart():
    """One DoFn instance; only the clock moves."""
    now = {"t": _at("2026-11-30T23:59:59")}
    fn = ApplyOrdersFn(_settings([ORDERS[0]]).orders, clock=lambda: now["t"])
    event = parse_event(__import__("json").dumps(make_event("e1", b"abc", service="photos")).encode())
    (out,) = list(fn.process(event))
    assert out.order_for("known")[0] == "O-IMG" and out.order_for("new") is None
    now["t"] = _at("2026-12-01T00:00:00")
    (dropped,) = list(fn.process(event))
    assert dropped.tag == NOT_COVERED and dropped.value == "image"  # the kind only, no id


def test_run_refuses_to_start_without_an_active_order(tmp_path):
    from csadetect.pipelines.detect import check_orders, main

    with pytest.raises(ConfigError, match="no active detection order"):
        check_orders(_settings([dict(ORDERS[0], end="2026-02-01T00:00:00Z")]), now=_at("2026-11-28T00:00:00"))
    with pytest.raises(ConfigError, match="no active detection order"):
        check_orders(_settings([]))
    cfg = tmp_path / "c.yaml"
    cfg.write_text("orders: []\n")
    events = tmp_path / "e.jsonl"
    events.write_text("")
    assert main(["--config", str(cfg), "--input_glob", str(events)]) == 2


def test_ungated_events_keep_working():
    event = parse_event(__import__("json").dumps(make_event("e1", b"abc")).encode())
    assert event.orders is None and event.order_for("known") == ("", "")


def test_the_shipped_order_is_marked_demo_and_an_operators_orders_replace_it(tmp_path):
    """The demo order is marked in default.yaml (`demo: true`, validated by the schema), not
    recognised by its name; an operator's `orders:` list replaces it."""
    default = load_settings()
    assert [(o.order_id, o.demo) for o in default.orders] == [("DEMO-ORDER-2026-1", True)]
    assert default.demo_orders() == list(default.orders)
    own = _settings()
    assert own.demo_orders() == [] and {o.demo for o in own.orders} == {False}
    with pytest.raises(ConfigError, match=r"invalid config at orders\.0\.demo"):
        load_settings(overrides={"orders": [dict(ORDERS[0], demo="perhaps")]})
