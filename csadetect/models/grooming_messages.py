"""Messages of a conversation as the grooming model reads them (:mod:`csadetect.models.grooming`).

A message is a dict (``text``, ``sender``, ``sent_at``, ``participants_minor``, ...) or a bare
string. Here are its text and sender, the speaker ids of a window (by order of first appearance),
the replay order (``sent_at``) and whether a minor takes part (conversations without one are not
scanned). Shared by the scoring (:mod:`csadetect.models.grooming`) and the evaluation
(:mod:`csadetect.models.grooming_eval`); ``training/grooming_model.py`` builds its training windows
with the same :func:`speaker_ids`.
"""
from __future__ import annotations

from typing import Mapping, Sequence

from csadetect.core.timeutil import parse_time


def _text(message) -> str:
    if isinstance(message, str):
        return message
    return str(message.get("text") or "")


def _sender(message) -> str:
    if isinstance(message, str):
        return ""
    return str(message.get("sender", ""))


def speaker_ids(senders: Sequence[str]) -> list[int]:
    """1 for the first sender of the window, 2 for the second, 3 for anyone else."""
    order: dict[str, int] = {}
    out = []
    for s in senders:
        if s not in order:
            order[s] = min(len(order) + 1, 3)
        out.append(order[s])
    return out


def chronological(messages: Sequence[Mapping]) -> list[Mapping]:
    """Messages sorted by ``sent_at`` (stable for ties; messages without it keep their place)."""
    if not messages or not all(isinstance(m, Mapping) and m.get("sent_at") for m in messages):
        return list(messages)
    keyed = [(parse_time(m["sent_at"], field="sent_at"), i, m) for i, m in enumerate(messages)]
    keyed.sort(key=lambda t: (t[0], t[1]))
    return [m for _, _, m in keyed]


def involves_minor(messages: Sequence[Mapping]) -> bool:
    """True when any message says a minor takes part (``participants_minor`` is true)."""
    return any(isinstance(m, Mapping) and m.get("participants_minor") is True for m in messages)
