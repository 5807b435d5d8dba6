"""What changed between two versions of an indicator database (``indicators diff``), read a batch
at a time: both versions' resolved rows come in the canonical order (kind, then id;
:func:`~csadetect.indicators.snapshot_load.resolved_batches`), so they are joined as they are read,
at each step up to the smaller of the two keys :data:`PIECE` rows on, and neither version is held (a
base of 100M rows is ~10 GB as a table, and a set of its ids as much again). An id whose kind changed sits at
two places in that order: such ids are left unmatched within their kind, and the unmatched ids of
both sides (their ids and whether they are disabled, nothing else) are joined by id at the end.
:mod:`csadetect.indicators.snapshot` re-exports :func:`diff`.
"""
from __future__ import annotations

from typing import Iterable, Iterator, Optional

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from csadetect.indicators.snapshot_tables import kind_rank

COMPARED = ("value", "category", "source", "note")  # besides the kind, which a join within kinds keeps
PIECE = 1 << 18  # rows of each version joined at a time at most (a join holds hash tables of both sides)
_RANK = "_rank"


def diff(a, b) -> dict:
    """What changed from snapshot ``a`` to snapshot ``b`` (each with ``.table`` in the canonical
    order and ``.version``): :func:`diff_batches` of their tables."""
    return diff_batches([a.table], [b.table], a.version, b.version)


def diff_batches(a: Iterable[pa.Table], b: Iterable[pa.Table], from_version: Optional[int],
                 to_version: Optional[int]) -> dict:
    """What changed from the rows ``a`` to the rows ``b`` (each a version's resolved rows in the
    canonical order, in batches), as sorted id lists: ``added`` (in b only), ``removed`` (in a
    only), ``disabled`` (active in a, disabled in b), ``enabled`` (disabled in a, active in b),
    ``changed`` (kind, value, category, source or note differ; not counting ids already listed
    as disabled or enabled)."""
    out: dict[str, list] = {"added": [], "removed": [], "disabled": [], "enabled": [], "changed": []}
    left, right = _Sorted(a), _Sorted(b)
    unmatched_a: list[pa.Table] = []
    unmatched_b: list[pa.Table] = []
    while True:
        left.fill()
        right.fill()
        if left.done and right.done:
            break
        if left.done or right.done:
            part_a, part_b = left.take_all(), right.take_all()
        else:
            bound = min(left.key_at_most(PIECE), right.key_at_most(PIECE))
            part_a, part_b = left.take_to(bound), right.take_to(bound)
        _join_within_kinds(part_a, part_b, out, unmatched_a, unmatched_b)
    _join_by_id(unmatched_a, unmatched_b, out)
    return {"from": from_version, "to": to_version, **{k: sorted(v) for k, v in out.items()}}


class _Sorted:
    """A version's batches with their kind ranks, consumed up to a key at a time."""

    def __init__(self, batches: Iterable[pa.Table]):
        self.batches: Iterator[pa.Table] = iter(batches)
        self.held: Optional[pa.Table] = None
        self.done = False

    def fill(self) -> None:
        """Read on until some rows are held or the version has no more."""
        while not self.done and (self.held is None or self.held.num_rows == 0):
            batch = next(self.batches, None)
            if batch is None:
                self.done = True
                self.held = None
            elif batch.num_rows:
                self.held = batch.append_column(_RANK, kind_rank(batch).cast(pa.int32()))

    def key_at_most(self, n: int) -> tuple[int, str]:
        """The key of the ``n``-th row held, or of the last when fewer are held."""
        i = min(n, self.held.num_rows) - 1
        return self.held[_RANK][i].as_py(), self.held["indicator_id"][i].as_py()

    def take_all(self) -> Optional[pa.Table]:
        held, self.held = self.held, None
        return held

    def take_to(self, bound: tuple[int, str]) -> pa.Table:
        """The rows held up to ``bound`` (kind rank, id), inclusive; the rest stay held."""
        rank, ident = bound
        ranks = self.held[_RANK]
        upto = pc.or_(pc.less(ranks, rank),
                      pc.and_(pc.equal(ranks, rank), pc.less_equal(self.held["indicator_id"], ident)))
        n = int(pc.sum(upto).as_py() or 0)  # a prefix: the rows are in key order
        part, self.held = self.held.slice(0, n), self.held.slice(n)
        return part


def _ids(table: pa.Table, mask) -> list:
    return table["indicator_id"].filter(mask).to_pylist()


def _outer_join(a: pa.Table, b: pa.Table, keys: list[str]) -> tuple[pa.Table, pa.Array, pa.Array]:
    """The full outer join of the two sides' rows on ``keys`` (other columns suffixed ``_a`` and
    ``_b``), with whether each joined row is in a and in b."""
    a = a.append_column("_a", pa.array(np.ones(a.num_rows, dtype=bool)))
    b = b.append_column("_b", pa.array(np.ones(b.num_rows, dtype=bool)))
    joined = a.join(b, keys=keys, join_type="full outer", left_suffix="_a", right_suffix="_b")
    return joined, pc.fill_null(joined["_a"], False), pc.fill_null(joined["_b"], False)


def _sort_out(out: dict, joined: pa.Table, both, off_a, off_b, differs) -> None:
    """The ids in both versions: disabled, enabled, or (when neither) changed where ``differs``."""
    out["disabled"] += _ids(joined, pc.and_(both, pc.and_(pc.invert(off_a), off_b)))
    out["enabled"] += _ids(joined, pc.and_(both, pc.and_(off_a, pc.invert(off_b))))
    out["changed"] += _ids(joined, pc.and_(both, pc.and_(differs, pc.equal(off_a, off_b))))


def _join_within_kinds(a: Optional[pa.Table], b: Optional[pa.Table], out: dict,
                       unmatched_a: list, unmatched_b: list) -> None:
    """Join the rows of both versions between two keys by (kind, id): ids in both are compared,
    the others kept (id and disabled or not) for the join by id at the end."""
    columns = ["indicator_id", _RANK, *COMPARED, "disabled_at"]
    empty = pa.table({c: pa.array([], pa.int32() if c == _RANK else pa.string()) for c in columns})
    a = empty if a is None else a.select(columns).cast(empty.schema)
    b = empty if b is None else b.select(columns).cast(empty.schema)
    joined, in_a, in_b = _outer_join(a, b, ["indicator_id", _RANK])
    off_a, off_b = joined["disabled_at_a"].is_valid(), joined["disabled_at_b"].is_valid()
    differs = pa.array(np.zeros(joined.num_rows, dtype=bool))
    for field in COMPARED:
        x, y = joined[f"{field}_a"], joined[f"{field}_b"]
        unequal = pc.or_(pc.fill_null(pc.not_equal(x, y), False), pc.xor(x.is_null(), y.is_null()))
        differs = pc.or_(differs, unequal)
    _sort_out(out, joined, pc.and_(in_a, in_b), off_a, off_b, differs)
    for only, off, unmatched in ((pc.and_(in_a, pc.invert(in_b)), off_a, unmatched_a),
                                 (pc.and_(in_b, pc.invert(in_a)), off_b, unmatched_b)):
        if pc.any(only).as_py():
            unmatched.append(pa.table({"indicator_id": joined["indicator_id"].filter(only), "off": off.filter(only)}))


def _join_by_id(unmatched_a: list, unmatched_b: list, out: dict) -> None:
    """The ids left unmatched within their kind: in one version only (added, removed), or in both
    under another kind (disabled or enabled when that changed too, else changed)."""
    schema = pa.schema([("indicator_id", pa.string()), ("off", pa.bool_())])
    a = pa.concat_tables(unmatched_a) if unmatched_a else schema.empty_table()
    b = pa.concat_tables(unmatched_b) if unmatched_b else schema.empty_table()
    joined, in_a, in_b = _outer_join(a, b, ["indicator_id"])
    off_a, off_b = pc.fill_null(joined["off_a"], False), pc.fill_null(joined["off_b"], False)
    out["removed"] += _ids(joined, pc.and_(in_a, pc.invert(in_b)))
    out["added"] += _ids(joined, pc.and_(in_b, pc.invert(in_a)))
    both = pc.and_(in_a, in_b)
    _sort_out(out, joined, both, off_a, off_b, both)  # in both under another kind: the kind differs
