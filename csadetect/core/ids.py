"""Identifiers: the one safe-id rule and the one way to derive a deterministic id.

A *safe id* is 1-128 ASCII letters, digits, ``.``, ``_`` or ``-``, starting with a letter or a
digit. Every id the project makes is one (report ids, complaint ids), and an id given by an
operator or read from a message must be one before it is stored, logged, put into XML or used as
a file name: it cannot hold a path separator, whitespace, a newline or markup.

A *derived id* is the start of the SHA-256 of its parts, so the same inputs always give the same id
(a redelivered event makes the same report, a redelivered message the same complaint).
"""
from __future__ import annotations

import hashlib
import re

SAFE_ID_RULE = "1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def is_safe_id(value) -> bool:
    return isinstance(value, str) and _SAFE_ID.fullmatch(value) is not None


def check_id(value, what: str = "id") -> str:
    """``value`` when it is a safe id; else ValueError ``<what> must be 1-128 letters, ...``."""
    if not is_safe_id(value):
        raise ValueError(f"{what} must be {SAFE_ID_RULE}")
    return value


def derived_id(*parts: str, length: int = 32) -> str:
    """The first ``length`` hex digits of the SHA-256 of ``parts`` joined by U+001F (unit separator)."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:length]
