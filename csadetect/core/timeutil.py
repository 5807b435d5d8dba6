"""Clocks and times: the one way the project reads, writes and gets the current time.

Every time the project writes is UTC in RFC 3339 form, ``2026-11-28T10:00:00Z`` (:func:`utc_iso`).
Every time it reads goes through :func:`parse_time`, which has one rule:

* the text must be an RFC 3339 date and time: ``YYYY-MM-DD``, ``T`` (or ``t`` or a space),
  ``hh:mm`` with optional seconds and fraction, then ``Z`` (or ``z``) or an offset ``+hh:mm``;
* a time **without a zone is refused**, unless the caller passes ``assume_utc=True``: then it is
  taken as UTC. Data formats that require a zone (events, reports, verdicts, indicators,
  NCMEC export, chat messages, ``csadetect feedback --now``) use the default; the operator's
  times of ``csadetect retention``, ``complaints``, ``review`` and ``transparency`` and the
  stores that have always taken zone-less times as UTC (stats, complaints, retention, review)
  say ``assume_utc=True``.

An operator's period bound (``--from``/``--to``, ``--start``/``--end``) may also be a day
``YYYY-MM-DD``: :func:`parse_bound`.

Code that needs "now" takes a :data:`Clock` (or a ``now`` argument) defaulting to
:func:`utc_now`, so tests and ``--now`` can fix the time.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Callable, Optional

Clock = Callable[[], datetime]
"""A function returning the current time as an aware UTC datetime (:func:`utc_now` or a test's)."""

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?", re.ASCII)


def utc_now() -> datetime:
    """The system clock: now, as an aware UTC datetime."""
    return datetime.now(timezone.utc)


def as_utc(when: datetime) -> datetime:
    """``when`` in UTC; a naive datetime is taken as UTC (not as the machine's local time)."""
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)


def utc_iso(when: Optional[datetime] = None, timespec: str = "seconds") -> str:
    """``when`` (default: now) as RFC 3339 UTC, ``2026-11-28T10:00:00Z``. ``timespec`` is that of
    :meth:`datetime.isoformat`: ``"seconds"`` drops any fraction, ``"auto"`` keeps microseconds
    when there are some."""
    return as_utc(when or utc_now()).isoformat(timespec=timespec).replace("+00:00", "Z")


def parse_time(value, *, field: str = "time", assume_utc: bool = False) -> datetime:
    """An RFC 3339 date and time -> an aware UTC datetime. Raises ValueError with a one-line
    message naming ``field`` (never quoting the value): ``<field> is not an RFC 3339 time``,
    ``<field> has no time zone (...)`` or ``<field> is out of range`` (outside years 1 to 9999 once
    moved to UTC). A zone-less time is UTC only with ``assume_utc``."""
    text = value.strip().upper() if isinstance(value, str) else ""
    if not _RFC3339.fullmatch(text):
        raise ValueError(f"{field} is not an RFC 3339 time")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:  # out of range: month 13, hour 24, offset of a day or more
        raise ValueError(f"{field} is not an RFC 3339 time") from None
    if parsed.tzinfo is None and not assume_utc:
        raise ValueError(f"{field} has no time zone (use e.g. 2024-05-01T12:00:00Z)")
    try:
        return as_utc(parsed)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+14:00 is before year 1 in UTC
        raise ValueError(f"{field} is out of range (years 1 to 9999 in UTC)") from None


_RFC3339_START = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def parse_bound(value, name: str, inclusive_date_end: bool = False) -> datetime:
    """An operator's period bound: a day ``YYYY-MM-DD`` (00:00 UTC; with ``inclusive_date_end`` the
    next midnight, so an inclusive ``--to`` takes in its whole day) or an RFC 3339 time (zone-less
    is UTC). Raises ValueError with a one-line reason naming ``name``."""
    text = (value or "").strip()
    if len(text) == 10 and text[4:5] == "-" and text[7:8] == "-":
        try:
            day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=timezone.utc)
        except ValueError:
            raise ValueError(f"{name}: not a valid date: {value!r} (use YYYY-MM-DD or RFC 3339)") from None
        return day + timedelta(days=1) if inclusive_date_end else day
    if not _RFC3339_START.match(text):
        raise ValueError(f"{name}: not a date or time: {value!r} (use YYYY-MM-DD or RFC 3339)")
    try:
        return parse_time(text, assume_utc=True)
    except ValueError:
        raise ValueError(f"{name}: not a valid RFC 3339 time: {value!r}") from None
