"""Art. 7 detection orders (``orders``): which detectors may run on which service components, and
when; ``DETECTION_TYPES`` names the detectors an order can cover. :mod:`csadetect.config.settings`
re-exports both.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Literal

from pydantic import Field, field_validator

from csadetect.config.base import _Strict


DETECTION_TYPES = ("known", "new", "grooming")


class DetectionOrder(_Strict):
    """An Art. 7 detection order: which detectors may run on which service components, and when.
    The pipeline runs a detector on an event only while an order covering both is active
    (``start <= now < end``), checked per event, so an order ends without a restart. ``demo``
    marks the default config's stand-in order, which no run off this machine may use
    (:func:`csadetect.config.profiles.check_demo_orders`)."""

    order_id: str = Field(..., min_length=1)
    authority: str = Field(..., min_length=1, description="the issuing judicial or independent administrative authority")
    detection_types: tuple[Literal["known", "new", "grooming"], ...] = Field(..., min_length=1)
    services: tuple[str, ...] = Field(..., min_length=1, description="service components covered (the event's `service`)")
    start: datetime
    end: datetime
    demo: bool = Field(False, description="the shipped demo order (not a real one): only a local run may use it; "
                       "a Dataflow/Flink run or a profile other than `direct` refuses to start under it")

    @field_validator("start", "end", mode="before")
    @classmethod
    def _not_a_number(cls, v):
        """``start: 2026`` (a year) would be read as 2026 seconds after 1970: an order active since 1970."""
        if isinstance(v, (int, float)) or (isinstance(v, str) and re.fullmatch(r"\s*[-+]?[\d.]+\s*", v)):
            raise ValueError("give a date or date-time (2026-01-01 or 2026-01-01T00:00:00Z), not a number")
        return v

    @field_validator("start", "end")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        return v if v.tzinfo else v.replace(tzinfo=timezone.utc)

    @field_validator("end")
    @classmethod
    def _after_start(cls, v, info):
        start = info.data.get("start")
        if start is not None and v <= start:
            raise ValueError("end must be after start")
        return v

    def active(self, now: datetime) -> bool:
        return self.start <= now < self.end

    def covers(self, detection_type: str, service: str, now: datetime) -> bool:
        return self.active(now) and detection_type in self.detection_types and service in self.services

    def legal_basis(self) -> str:
        return f"detection order {self.order_id} issued by {self.authority} (Art. 7)"
