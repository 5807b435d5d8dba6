"""The one helper per concern in ``csadetect.core``: reading and writing times (``timeutil``) and
identifiers (``ids``), each with one behaviour wherever it is used."""
from __future__ import annotations

import hashlib
import os
from datetime import datetime, timedelta, timezone

import pytest

from csadetect.core.ids import SAFE_ID_RULE, check_id, derived_id, is_safe_id
from csadetect.core.timeutil import Clock, as_utc, parse_time, utc_iso, utc_now

UTC = timezone.utc
NOON = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


# ------------------------------------------------------------------------------------ parse_time


@pytest.mark.parametrize("text, expected", [
    ("2024-05-01T12:00:00Z", NOON),
    ("2024-05-01T12:00:00z", NOON),
    ("2024-05-01t12:00:00Z", NOON),
    ("2024-05-01 12:00:00Z", NOON),  # RFC 3339 allows a space for the T
    ("  2024-05-01T12:00:00Z\n", NOON),
    ("2024-05-01T12:00Z", NOON),  # seconds may be left out
    ("2024-05-01T14:00:00+02:00", NOON),
    ("2024-05-01T06:30:00-05:30", NOON),
    ("2024-05-01T12:00:00+0000", NOON),
    ("2024-05-01T12:00:00.250Z", NOON + timedelta(milliseconds=250)),
    ("2024-05-02T00:30:00+12:30", NOON),  # the day changes in UTC
])
def test_parse_time_with_a_zone(text, expected):
    parsed = parse_time(text)
    assert parsed == expected and parsed.tzinfo == UTC


def test_parse_time_without_a_zone_is_refused_unless_assumed_utc():
    with pytest.raises(ValueError, match=r"^occurred_at has no time zone \(use e\.g\. 2024-05-01T12:00:00Z\)$"):
        parse_time("2024-05-01T12:00:00", field="occurred_at")
    with pytest.raises(ValueError, match="has no time zone"):
        parse_time("2024-05-01 12:00")
    assert parse_time("2024-05-01T12:00:00", assume_utc=True) == NOON
    assert parse_time("2024-05-01T12:00:00Z", assume_utc=True) == NOON  # a zone given is always used
    assert parse_time("2024-05-01T14:00:00+02:00", assume_utc=True) == NOON


@pytest.mark.parametrize("value", [
    "yesterday", "", "   ", None, 5, 1714564800.0, NOON,
    "2024-05-01",  # a date is not a time
    "20240501T120000Z",  # ISO 8601 basic format, not RFC 3339
    "2024-05-01T12Z", "2024-W18-3T12:00:00Z", "2024-05-01T12:00:00,5Z", "2024-05-01T12:00:00 UTC",
    "2024-05-01T12:00:00Zjunk", "2024-05-01T12:00:00+02",
    "\u0662\u0660\u0662\u0664-05-01T12:00:00Z",  # digits are ASCII digits
])
def test_parse_time_refuses_what_is_not_rfc_3339(value):
    with pytest.raises(ValueError, match=r"^sent_at is not an RFC 3339 time$"):
        parse_time(value, field="sent_at")


@pytest.mark.parametrize("text", [
    "2024-13-01T00:00:00Z", "2024-02-30T00:00:00Z", "2024-05-01T24:00:00Z", "2024-05-01T12:60:00Z",
    "2024-05-01T12:00:61Z", "2024-05-01T12:00:00+24:00", "2024-05-01T12:00:00-99:00",
])
def test_parse_time_refuses_out_of_range(text):
    with pytest.raises(ValueError, match="not an RFC 3339 time"):
        parse_time(text, assume_utc=True)


def test_parse_time_messages_never_quote_the_value():
    secret = "2024-05-01T12:00:00 acct-planted-zoe"
    with pytest.raises(ValueError) as exc:
        parse_time(secret, field="decided_at")
    assert "acct" not in str(exc.value) and "\n" not in str(exc.value)


# ------------------------------------------------------------------------------ utc_iso, clocks


def test_utc_iso():
    assert utc_iso(NOON) == "2024-05-01T12:00:00Z"
    assert utc_iso(NOON + timedelta(microseconds=123456)) == "2024-05-01T12:00:00Z"  # seconds by default
    assert utc_iso(NOON + timedelta(microseconds=123456), timespec="auto") == "2024-05-01T12:00:00.123456Z"
    assert utc_iso(NOON, timespec="auto") == "2024-05-01T12:00:00Z"
    assert utc_iso(datetime(2024, 5, 1, 14, tzinfo=timezone(timedelta(hours=2)))) == "2024-05-01T12:00:00Z"
    assert utc_iso(datetime(2024, 5, 1, 12)) == "2024-05-01T12:00:00Z"  # naive is UTC, not local time


def test_utc_iso_round_trips_through_parse_time():
    for when in (NOON, NOON + timedelta(microseconds=5), datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC)):
        assert parse_time(utc_iso(when, timespec="auto")) == when


def test_now_is_aware_utc_and_utc_iso_defaults_to_it():
    clock: Clock = utc_now
    before = datetime.now(UTC).replace(microsecond=0)
    now = clock()
    assert now.tzinfo == UTC and before <= now <= datetime.now(UTC)
    assert before <= parse_time(utc_iso()) <= datetime.now(UTC)


def test_as_utc():
    assert as_utc(datetime(2024, 5, 1, 12)) == NOON and as_utc(datetime(2024, 5, 1, 12)).tzinfo == UTC
    shifted = as_utc(datetime(2024, 5, 1, 7, tzinfo=timezone(timedelta(hours=-5))))
    assert shifted == NOON and shifted.tzinfo == UTC and shifted.hour == 12


# ------------------------------------------------------------------------------------------ ids


@pytest.mark.parametrize("value", [
    "0123456789abcdef0123456789abcdef", "cmp-1a2b3c4d5e6f", "r-1", "A", "a.b_c-d", "x" * 128, "report.2026.v1",
])
def test_safe_ids(value):
    assert is_safe_id(value) and check_id(value, "report_id") == value


@pytest.mark.parametrize("value", [
    "", "x" * 129, "../etc/passwd", "a/b", "a\\b", ".hidden", "-x", "_x", "a b", "abc\n", "\nabc", "a\tb",
    "a:b", "<x>", "r-1;rm", "caf\u00e9", "\u0661\u0662", None, 5, b"abc", ["a"],
])
def test_unsafe_ids(value):
    assert not is_safe_id(value)
    with pytest.raises(ValueError) as exc:
        check_id(value, "report id")
    assert str(exc.value) == f"report id must be {SAFE_ID_RULE}" and "\n" not in str(exc.value)


def test_derived_ids_are_deterministic_and_keep_their_formula():
    assert derived_id("p", "e1", "known-hash") == derived_id("p", "e1", "known-hash")
    assert derived_id("p", "e1", "known-hash") == hashlib.sha256(b"p\x1fe1\x1fknown-hash").hexdigest()[:32]
    assert derived_id("notification", "r1") == hashlib.sha256(b"notification\x1fr1").hexdigest()[:32]
    assert derived_id("/data/a.jpg", length=24) == hashlib.sha256(b"/data/a.jpg").hexdigest()[:24]
    assert len(derived_id("a", length=12)) == 12 and is_safe_id(derived_id("a"))
    assert derived_id("ab", "c") != derived_id("a", "bc")  # the separator keeps the parts apart


def test_files_under_is_sorted_recursive_and_leaves_hidden_out(tmp_path):
    from csadetect.core import fs

    for name in ("b/2.JPG", "b/1.png", "a.jpg", ".hidden.jpg", ".git/x.jpg", "c/skip.txt", "c/.d/y.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    got = [os.path.relpath(p, tmp_path) for p in fs.files_under(str(tmp_path), {".jpg", ".png"})]
    assert got == ["a.jpg", os.path.join("b", "1.png"), os.path.join("b", "2.JPG")]


def test_replace_whole_keeps_the_old_file_until_the_new_one_is_complete(tmp_path, monkeypatch):
    from csadetect.core import fs

    path = tmp_path / "settings.yaml"
    path.write_bytes(b"old")
    os.chmod(path, 0o640)
    fs.replace_whole(str(path), b"new")  # mode None: the replaced file's permissions are kept
    assert path.read_bytes() == b"new" and os.stat(path).st_mode & 0o777 == 0o640
    fs.replace_whole(str(path), b"key", 0o600)
    assert os.stat(path).st_mode & 0o777 == 0o600

    def fail(*_args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError):
        fs.replace_whole(str(path), b"half")
    assert path.read_bytes() == b"key" and sorted(p.name for p in tmp_path.iterdir()) == ["settings.yaml"]
