"""The base of every settings section: :class:`_Strict` (unknown keys and changes refused, a number
field given ``true``/``false`` refused in one line, NaN and infinity refused in every float),
:class:`ConfigError`, the one-line error an invalid configuration raises, and the Pub/Sub path
types :data:`Topic` and :data:`Subscription` (Beam would refuse a malformed one only while the graph
is built, after the models and the indicator database were loaded).
:mod:`csadetect.config.settings` re-exports both (and ``_bool_for_number``, for the tests).
"""
from __future__ import annotations

import typing
from typing import Annotated, Any, Literal, Optional

from pydantic import AfterValidator, BaseModel, ConfigDict, field_validator

from csadetect.core import pubsub


class ConfigError(ValueError):
    """Invalid configuration; the message is one line meant for the operator."""


def _pubsub_path(kind: str):
    pattern = pubsub.PATTERNS[kind]

    def check(value: Optional[str]) -> Optional[str]:
        if value and not pattern.match(value):  # "" and null: no such output or input
            raise ValueError(f"must look like projects/P/{kind}/NAME")
        return value

    return check


Topic = Annotated[Optional[str], AfterValidator(_pubsub_path("topics"))]
Subscription = Annotated[Optional[str], AfterValidator(_pubsub_path("subscriptions"))]


def _bool_for_number(value: Any, annotation: Any) -> bool:
    """Whether ``value`` holds a YAML ``true``/``false`` where ``annotation`` asks for a number (an int or
    a float, maybe Optional; or a tuple, list or dict of them, nested) and not for a bool: pydantic's lax mode would
    take ``true`` as 1, so ``match.embedding_query_turn_gate: true`` would silently mean a gate of 1."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _bool_for_number(value, args[0])
    if origin in (tuple, list) and isinstance(value, (list, tuple)):
        inner = [a for a in args if a is not Ellipsis]
        return any(_bool_for_number(v, inner[min(i, len(inner) - 1)]) for i, v in enumerate(value)) if inner else False
    if origin is dict and isinstance(value, dict):
        return len(args) == 2 and any(_bool_for_number(v, args[1]) for v in value.values())
    if not isinstance(value, bool):
        # a container under Optional or another union: the member of its own kind
        return isinstance(value, (list, tuple, dict)) and any(
            typing.get_origin(a) in (tuple, list, dict) and _bool_for_number(value, a) for a in args)
    kinds = set(args) if args and origin is not Literal else {annotation}
    return bool(kinds & {int, float}) and bool not in kinds


class _Strict(BaseModel):
    # allow_inf_nan=False: a NaN passes no comparison, so `.nan` as a distance threshold would filter nothing and
    # `.inf` as a budget or timeout would turn its guard off; null is how an Optional limit is turned off
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_numbers(cls, value: Any, info) -> Any:
        """A number field given ``true`` or ``false`` fails with one line instead of becoming 1 or 0."""
        field = cls.model_fields.get(info.field_name)
        if field is not None and _bool_for_number(value, field.annotation):
            off = type(None) in typing.get_args(field.annotation)
            raise ValueError("expected a number, not true/false" + ("; null turns it off" if off else ""))
        return value
