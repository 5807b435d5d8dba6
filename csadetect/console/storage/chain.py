"""The audit log's hash chain: how an entry is hashed, and how a chain of entries is checked.

Every audit entry carries ``prev_hash`` (the ``hash`` of the entry before it; 64 zeros for the
first) and ``hash``, the SHA-256 of its own canonical content: the JSON object of ``seq``, ``at``,
``user``, ``action``, ``report_id``, ``detail`` and ``prev_hash``, keys sorted, no spaces, ASCII
only. Changing any field of an entry breaks its ``hash``; deleting an entry breaks the next
entry's ``prev_hash`` and leaves a gap in ``seq``; deleting the newest entries shows against the
database's sequence counter and against the JSON Lines mirror, which ``csadetect console audit
verify`` compares with the table entry by entry.

A chain of plain SHA-256 can be recomputed by whoever can rewrite *every* copy; the mirror is what
makes that hard: ship it to write-once storage (``docs/console.md``).
"""
from __future__ import annotations

import hashlib
import json
from typing import Iterable, Optional

GENESIS = "0" * 64
HASHED_FIELDS = ("seq", "at", "user", "action", "report_id", "detail", "prev_hash")
ENTRY_FIELDS = HASHED_FIELDS + ("hash",)


def canonical(entry: dict) -> bytes:
    """The bytes an entry's ``hash`` is the SHA-256 of."""
    return json.dumps({k: entry.get(k) for k in HASHED_FIELDS}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True).encode("ascii")


def entry_hash(entry: dict) -> str:
    return hashlib.sha256(canonical(entry)).hexdigest()


def chained(record: dict, seq: int, prev_hash: Optional[str]) -> dict:
    """``record`` (``at, user, action, report_id, detail``) as entry ``seq`` after ``prev_hash``
    (None: the first entry), with its ``hash``."""
    entry = {"seq": seq, **{k: record.get(k) for k in ("at", "user", "action", "report_id", "detail")},
             "prev_hash": prev_hash or GENESIS}
    entry["hash"] = entry_hash(entry)
    return entry


def _seq(entry: dict) -> Optional[int]:
    seq = entry.get("seq")
    return seq if isinstance(seq, int) and not isinstance(seq, bool) and seq > 0 else None


def first_break(entries: Iterable[dict], where: str, last_issued: Optional[int] = None) -> Optional[str]:
    """The first problem in ``entries`` (oldest first) as one line naming ``where`` and the entry,
    or None when the chain holds: a changed entry, a missing one (a gap in ``seq`` or a broken
    ``prev_hash``), a missing first entry, or missing newest entries when ``last_issued`` (the
    highest ``seq`` ever handed out, if known) is beyond the last one."""
    prev: Optional[dict] = None
    for position, entry in enumerate(entries, 1):
        seq = _seq(entry)
        if seq is None or set(entry) != set(ENTRY_FIELDS):
            return f"{where}: entry {position} is not an audit entry (fields or seq wrong)"
        if entry["hash"] != entry_hash(entry):
            return f"{where}: entry seq {seq} was changed (its hash does not match its content)"
        expected_seq = prev["seq"] + 1 if prev else 1
        if seq < expected_seq:
            return f"{where}: entry seq {seq} is out of order or repeated (after seq {expected_seq - 1})"
        if seq > expected_seq:
            return (f"{where}: entries seq {expected_seq}..{seq - 1} are missing" if seq - 1 > expected_seq
                    else f"{where}: entry seq {expected_seq} is missing")
        if entry["prev_hash"] != (prev["hash"] if prev else GENESIS):
            return f"{where}: entry seq {seq} does not follow the entry before it (prev_hash differs)"
        prev = entry
    last = prev["seq"] if prev else 0
    if last_issued is not None and last_issued > last:
        return (f"{where}: entries seq {last + 1}..{last_issued} are missing (the newest were removed)"
                if last_issued > last + 1 else f"{where}: entry seq {last_issued} is missing (the newest was removed)")
    return None


def mismatch(table: list[dict], mirror: list[dict], mirror_name: str) -> Optional[str]:
    """The first difference between the table's chain and the mirror's (both already checked on
    their own, oldest first), or None when they hold the same entries."""
    for a, b in zip(table, mirror):
        if a != b:
            return f"database and {mirror_name} differ at entry seq {a['seq']}"
    if len(table) > len(mirror):
        return f"{mirror_name}: entry seq {table[len(mirror)]['seq']} is missing (it is in the database)"
    if len(mirror) > len(table):
        return f"database: entry seq {mirror[len(table)]['seq']} is missing (it is in {mirror_name})"
    return None


def read_mirror(path: str) -> tuple[list[dict], Optional[str]]:
    """The entries of the JSON Lines mirror, and the first line that is not an entry (one line) or
    None. Lines are kept in file order (the console writes them in ``seq`` order)."""
    entries = []
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                entry = json.loads(raw)
            except ValueError:
                return entries, f"{path}: line {number} is not JSON"
            if not isinstance(entry, dict):
                return entries, f"{path}: line {number} is not an audit entry"
            entries.append(entry)
    return entries, None


def verify(table: list[dict], last_issued: Optional[int], mirror_path: Optional[str]) -> tuple[Optional[str], dict]:
    """Check the table's chain, the mirror's (when ``mirror_path`` is given) and that both hold the
    same entries: the first problem as one line (None when all holds) and a summary
    ``{entries, head, mirror_entries}`` (``head``: the newest entry's hash, worth keeping elsewhere)."""
    summary = {"entries": len(table), "head": table[-1]["hash"] if table else GENESIS, "mirror_entries": None}
    problem = first_break(table, "database", last_issued)
    if mirror_path is None:
        return problem, summary
    mirror, unreadable = read_mirror(mirror_path)
    summary["mirror_entries"] = len(mirror)
    return (problem or unreadable or first_break(mirror, mirror_path)
            or mismatch(table, mirror, mirror_path)), summary
