"""What the Centre's verdicts say about each detector (DESIGN §8, Art. 83(1)(a); docs/feedback.md):
precision per detector and version with its 95% Wilson interval, alerts when it falls below the
floor, and labelled examples for ``csadetect tune``.

A joined record (:func:`csadetect.feedback.verdicts.joined_record`) counts through
:func:`precision_delta`: +1 for its verdict and -1 for the verdict it supersedes, so a changed
verdict corrects precision instead of being counted twice.
"""
from __future__ import annotations

import logging
import sys
from typing import Iterator, Optional

from csadetect.core.ids import derived_id
from csadetect.tuning.tune import wilson

EXAMPLE_FIELDS = ("detector", "detector_version", "detection_type", "score", "distance", "threshold")
ALERT_LOGGER = "csadetect.alert"


def _changed(joined: dict) -> bool:
    """Whether the record has a verdict that says something new (not the superseded label again)."""
    verdict, previous = joined["verdict"], joined.get("previous_verdict")
    return verdict is not None and (previous is None or previous["verdict"] != verdict["verdict"])


def precision_delta(joined: dict) -> Iterator[tuple]:
    """``((detector, version), (d_confirmed, d_unfounded, detection_type))`` for a joined record:
    +1 for its verdict, -1 for the verdict it supersedes (nothing when the label is unchanged)."""
    if not _changed(joined):
        return
    verdict, previous, report = joined["verdict"], joined.get("previous_verdict"), joined["report"]
    dc = (verdict["verdict"] == "confirmed") - (previous is not None and previous["verdict"] == "confirmed")
    du = (verdict["verdict"] == "manifestly_unfounded") - (
        previous is not None and previous["verdict"] == "manifestly_unfounded")
    yield (report["detector"], report["detector_version"]), (int(dc), int(du), report["detection_type"])


def precision_record(detector: str, detector_version: str, detection_type: Optional[str], confirmed: int,
                     unfounded: int, at: str) -> dict:
    """precision = confirmed / verdicts with its 95% Wilson interval (docs/data.md)."""
    n = confirmed + unfounded
    low, high = wilson(confirmed, n)
    return {
        "at": at,
        "detector": detector,
        "detector_version": detector_version,
        "detection_type": detection_type,
        "verdicts": n,
        "confirmed": confirmed,
        "manifestly_unfounded": unfounded,
        "precision": confirmed / n if n else None,
        "precision_low": low,
        "precision_high": high,
    }


# --------------------------------------------------------------------------------------- alerts


def below_floor(record: dict, floor: float, min_verdicts: int) -> bool:
    """Whether a precision record calls for an alert: below ``floor`` after ``min_verdicts``."""
    return (record["verdicts"] >= min_verdicts and record["precision"] is not None
            and record["precision"] < floor)


def alert_of(record: dict, floor: float) -> dict:
    """The alert record (docs/data.md) for a precision record below ``floor``."""
    return {
        "at": record["at"],
        "detector": record["detector"],
        "detector_version": record["detector_version"],
        "precision": record["precision"],
        "floor": floor,
        "verdicts": record["verdicts"],
    }


def alert_line(alert: dict) -> str:
    return (f"ALERT precision below floor: detector={alert['detector']} "
            f"detector_version={alert['detector_version']} precision={alert['precision']:.4f} "
            f"floor={alert['floor']:.4f} n={alert['verdicts']}")


class _StderrNow(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (test capture, a redirected worker)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):
        pass


def alert_logger() -> logging.Logger:
    """``csadetect.alert``: bare lines (``ALERT ...``) on stderr, not repeated by the root logger."""
    log = logging.getLogger(ALERT_LOGGER)
    if not any(isinstance(h, _StderrNow) for h in log.handlers):
        handler = _StderrNow()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.WARNING)
        log.propagate = False
    return log


# ------------------------------------------------------------------------------------- examples


def example_id(report_id: str) -> str:
    """The opaque key of a report's examples: the same in every run and for every verdict on that
    report, so a reader counts one per report (the latest decision); not the report id, and
    nothing can be learnt from it without the report id."""
    return derived_id("example", report_id)


def labelled_example(joined: dict) -> Optional[dict]:
    """A tune-ready example without ids of reports, events or accounts or other personal data (its
    ``example_id`` is opaque: :func:`example_id`); None when there is nothing new to say (no
    verdict, or a superseding verdict with the same label)."""
    if not _changed(joined):
        return None
    verdict, report = joined["verdict"], joined["report"]
    example = {"example_id": example_id(report["report_id"]), **{key: report.get(key) for key in EXAMPLE_FIELDS}}
    example.update(label=verdict["verdict"], reason=verdict.get("reason"), decided_at=verdict["decided_at"])
    return example
