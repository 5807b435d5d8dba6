"""In-memory matching against an indicator snapshot (DESIGN.md §4).

* PDQ: a FAISS binary index over the 256-bit hashes: ``IndexBinaryMultiHash(256, 16, 16)`` with
  ``nflip = threshold // 16`` (exact for any threshold by pigeonhole: 16 substrings of 16 bits,
  a pair within ``t`` bits has one substring within ``t // 16`` flips), or ``IndexBinaryFlat``
  (brute force, 32 bytes per hash). FAISS range search is strictly ``<``, so we pass
  ``threshold + 1`` and the threshold stays inclusive. All 8 dihedral hashes of the image and of
  every preprocessed variant go in one batched ``range_search``; the best distance per indicator
  is kept. Recall at the threshold equals brute force (tested).
* MD5 / SHA-256: sorted fixed-width byte arrays and ``np.searchsorted``; distance 0.
* vPDQ: a second binary index of every frame hash of every video indicator, with an int32
  frame -> row array. For a query video, ``share`` = (unique query frames with quality >= gate
  that are within the threshold of some frame of the indicator) / (unique query frames with
  quality >= gate). It matches when ``share >= video_frame_share``; the reported ``distance`` is
  ``1 - share`` (0.0 = every query frame found), so smaller is better for every kind.

Memory: per segment, rows are sorted by kind with pdq rows first, so a PDQ index position *is*
the row number (the position -> row map is the identity and costs nothing). Per row we keep the
id (Arrow string: 4 bytes offset + its UTF-8 bytes), a uint16 category code and, once deltas are
applied, a 1-byte active flag. No per-indicator Python objects.

Deltas: the index built from a full snapshot (the "base") is never modified. A delta marks the
ids it touches inactive in a copied base mask and rebuilds a small "overlay" segment from all
active delta rows since the base. The new state is swapped in with one attribute assignment, so
concurrent queries see either the old or the new version, never a mix.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Optional, Sequence, Union

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from indicators.rows import KINDS
from indicators.snapshot import (
    Delta,
    Snapshot,
    SnapshotError,
    _resolve,
    current_version,
    deltas_between,
    hex_to_codes,
    load_snapshot,
)

PDQ_BYTES = 32
NHASH, HASH_BITS = 16, 16


@dataclasses.dataclass(frozen=True)
class Match:
    """One indicator hit. ``distance``: Hamming bits for pdq, 0 for md5/sha256, ``1 - share`` of
    matched query frames for vpdq."""

    indicator_id: str
    kind: str
    distance: Union[int, float]
    category: str

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def _settings(match_settings):
    if match_settings is None:
        from csadetect.settings import MatchSettings

        return MatchSettings()
    return match_settings


def make_binary_index(threshold: int, mode: str = "auto"):
    """The FAISS index for 256-bit hashes: multihash when asked, or auto with threshold <= 31."""
    if mode == "multihash" or (mode == "auto" and threshold <= 31):
        index = faiss.IndexBinaryMultiHash(256, NHASH, HASH_BITS)
        index.nflip = threshold // HASH_BITS
        return index
    if mode not in ("auto", "flat"):
        raise ValueError(f"unknown pdq_index {mode!r} (expected auto, multihash or flat)")
    return faiss.IndexBinaryFlat(256)


def faiss_bytes(index) -> int:
    """Bytes held by a binary index: exact for flat (32 per hash). For multihash an estimate
    calibrated against process RSS (within ~25% from 100k to 4M hashes): the codes, ~13 bytes per
    hash in each of the 16 hash maps (8-byte id plus vector slack), ~100 bytes per map key."""
    n = index.ntotal
    if isinstance(index, faiss.IndexBinaryMultiHash):
        keys = NHASH * (1 << HASH_BITS) * (1.0 - np.exp(-n / (1 << HASH_BITS)))
        return int(n * (PDQ_BYTES + NHASH * 13) + keys * 100)
    return n * index.code_size


def _range(index, queries: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(query number, position, distance) of every pair with distance < radius."""
    if index.ntotal == 0 or len(queries) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    lims, dist, pos = index.range_search(queries, radius)
    qnum = np.repeat(np.arange(len(queries)), np.diff(lims.astype(np.int64)))
    return qnum, np.asarray(pos, dtype=np.int64), np.asarray(dist, dtype=np.int64)


def _best(rows: np.ndarray, dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Smallest distance per row."""
    if len(rows) == 0:
        return rows, dist
    order = np.lexsort((dist, rows))
    rows, dist = rows[order], dist[order]
    first = np.ones(len(rows), dtype=bool)
    first[1:] = rows[1:] != rows[:-1]
    return rows[first], dist[first]


class _Segment:
    """Immutable match structures over a table of *active* rows sorted by kind (pdq first)."""

    def __init__(self, table: pa.Table, pdq_codes: np.ndarray, settings):
        kinds = pc.index_in(table["kind"], value_set=pa.array(KINDS)).to_numpy()  # kind -> KINDS position
        self.n = table.num_rows
        self.ids = table["indicator_id"].combine_chunks()
        encoded = table["category"].combine_chunks().dictionary_encode()
        self.categories = encoded.dictionary.to_pylist()
        code_type = np.uint16 if len(self.categories) <= 1 << 16 else np.int32
        self.category_codes = encoded.indices.to_numpy().astype(code_type)
        values = table["value"]

        pdq_rows = np.flatnonzero(kinds == KINDS.index("pdq"))
        if len(pdq_rows) and (pdq_rows[0] != 0 or pdq_rows[-1] != len(pdq_rows) - 1):
            raise SnapshotError("index rows must be sorted with pdq rows first")
        if len(pdq_codes) != len(pdq_rows):
            raise SnapshotError("pdq codes do not match the pdq rows")
        self.pdq = make_binary_index(settings.pdq_threshold, settings.pdq_index)
        if len(pdq_rows):
            self.pdq.add(np.ascontiguousarray(pdq_codes, dtype=np.uint8))

        self.exact = {}
        for kind, nbytes in (("md5", 16), ("sha256", 32)):
            rows = np.flatnonzero(kinds == KINDS.index(kind))
            digests = hex_to_codes(values.take(pa.array(rows)), nbytes).view(f"S{nbytes}").ravel()
            order = np.argsort(digests, kind="stable")
            self.exact[kind] = (digests[order], rows[order].astype(np.int32))

        vrows = np.flatnonzero(kinds == KINDS.index("vpdq"))
        frames = [v.split() for v in values.take(pa.array(vrows)).to_pylist()]
        self.frame_rows = np.repeat(vrows, [len(f) for f in frames]).astype(np.int32)
        self.vpdq = make_binary_index(settings.pdq_threshold, settings.pdq_index)
        if len(self.frame_rows):
            self.vpdq.add(hex_to_codes([h for f in frames for h in f], PDQ_BYTES))

    def category(self, row: int) -> str:
        return self.categories[self.category_codes[row]]

    def exact_rows(self, kind: str, hexdigest: Optional[str]) -> np.ndarray:
        keys, rows = self.exact[kind]
        if not hexdigest or not len(keys):
            return np.zeros(0, dtype=np.int32)
        key = np.array([bytes.fromhex(hexdigest)], dtype=keys.dtype)
        lo, hi = np.searchsorted(keys, key, "left")[0], np.searchsorted(keys, key, "right")[0]
        return rows[lo:hi]

    def memory_stats(self) -> dict:
        exact = sum(a.nbytes for pair in self.exact.values() for a in pair)
        return {
            "ids": self.ids.nbytes,
            "categories": self.category_codes.nbytes,
            "pdq_index": faiss_bytes(self.pdq),
            "exact": exact,
            "vpdq_index": faiss_bytes(self.vpdq) + self.frame_rows.nbytes,
        }


def _active_only(table: pa.Table, codes: np.ndarray) -> tuple[pa.Table, np.ndarray]:
    if table["disabled_at"].null_count == table.num_rows:
        return table, codes  # all active: no copy
    active = table["disabled_at"].is_null()
    pdq_active = pc.filter(active, pc.equal(table["kind"], "pdq")).to_numpy(zero_copy_only=False)
    return table.filter(active), np.ascontiguousarray(codes[pdq_active.astype(bool)])


@dataclasses.dataclass(frozen=True)
class _State:
    version: int
    base: _Segment
    base_active: Optional[np.ndarray]  # None: every base row is active
    overlay: Optional[_Segment]
    overlay_table: Optional[pa.Table]  # active rows from deltas since the base
    overlay_codes: Optional[np.ndarray]

    def segments(self):
        yield self.base, self.base_active
        if self.overlay is not None:
            yield self.overlay, None


class IndicatorIndex:
    """Matches image and video hashes against one snapshot version."""

    def __init__(self, state: _State, settings):
        self._state = state
        self.settings = settings

    @classmethod
    def from_snapshot(cls, snapshot: Snapshot, match_settings=None) -> "IndicatorIndex":
        settings = _settings(match_settings)
        table, codes = _active_only(snapshot.table, snapshot.pdq_codes)
        return cls(_State(snapshot.version, _Segment(table, codes, settings), None, None, None, None), settings)

    @property
    def version(self) -> int:
        return self._state.version

    def __len__(self) -> int:
        """Active indicators (all kinds)."""
        state = self._state
        base = state.base.n if state.base_active is None else int(state.base_active.sum())
        return base + (state.overlay.n if state.overlay is not None else 0)

    def memory_stats(self) -> dict:
        """Bytes per structure: ``ids``, ``categories``, ``pdq_index`` (FAISS; estimated for
        multihash, see :func:`faiss_bytes`), ``exact`` (md5/sha256 arrays), ``vpdq_index``,
        ``active`` (the base mask, after deltas) and ``overlay`` (everything added by deltas)."""
        state = self._state
        stats = state.base.memory_stats()
        stats["active"] = 0 if state.base_active is None else state.base_active.nbytes
        stats["overlay"] = 0
        if state.overlay is not None:
            extra = state.overlay_table.nbytes + state.overlay_codes.nbytes
            stats["overlay"] = sum(state.overlay.memory_stats().values()) + extra
        return stats

    def memory_bytes(self) -> int:
        """Bytes held by the index structures (sum of :meth:`memory_stats`)."""
        return sum(self.memory_stats().values())

    # ------------------------------------------------------------------ updates

    def apply_delta(self, delta: Delta) -> "IndicatorIndex":
        """Apply one verified delta (its parent must be this index's version): rows it touches
        stop matching in their old form, its active rows start matching. No full rebuild: the
        base FAISS index is untouched; only the small overlay is rebuilt. Returns ``self``."""
        state = self._state
        if delta.parent != state.version:
            raise SnapshotError(
                f"delta version {delta.version} applies to version {delta.parent}, index is at {state.version}"
            )
        touched = delta.table["indicator_id"]
        hit = pc.is_in(state.base.ids, value_set=touched).to_numpy(zero_copy_only=False)
        active = np.ones(state.base.n, dtype=bool) if state.base_active is None else state.base_active.copy()
        active &= ~hit
        parts = [(delta.table, delta.pdq_codes)]
        if state.overlay_table is not None:
            parts.insert(0, (state.overlay_table, state.overlay_codes))
        table, codes = _active_only(*_resolve(parts))  # last row per id wins, then active only
        overlay = _Segment(table, codes, self.settings)
        self._state = _State(delta.version, state.base, active, overlay, table, codes)
        return self

    def refresh(self, db_dir: str, public_key) -> bool:
        """Bring the index to the version ``CURRENT`` names: apply the deltas since this version,
        or load the full snapshot when there is no delta path. Returns True when the version
        changed. Raises SnapshotError (leaving the index at its last good version) when the new
        version does not verify or ``CURRENT`` points backwards."""
        target = current_version(db_dir)
        if target is None:
            raise SnapshotError(f"no snapshot in {db_dir} (no CURRENT file)")
        if target == self.version:
            return False
        if target < self.version:
            raise SnapshotError(f"{db_dir}/CURRENT names version {target}, older than the loaded {self.version}")
        deltas = deltas_between(db_dir, public_key, self.version, target)
        if deltas is None:
            self._state = IndicatorIndex.from_snapshot(load_snapshot(db_dir, public_key, target), self.settings)._state
            return True
        updated = IndicatorIndex(self._state, self.settings)
        for delta in deltas:
            updated.apply_delta(delta)
        self._state = updated._state
        return True

    # ------------------------------------------------------------------ queries

    def _exact(self, state: _State, kind: str, hexdigest: Optional[str]) -> list[Match]:
        out = []
        for seg, active in state.segments():
            for row in seg.exact_rows(kind, hexdigest):
                if active is None or active[row]:
                    out.append(Match(seg.ids[int(row)].as_py(), kind, 0, seg.category(row)))
        return out

    def match_pdq(self, hashes: Sequence[bytes]) -> list[Match]:
        """PDQ matches for raw 32-byte hashes (no quality gate here), best distance per indicator."""
        state = self._state
        if not hashes:
            return []
        queries = np.unique(np.frombuffer(b"".join(hashes), dtype=np.uint8).reshape(-1, PDQ_BYTES), axis=0)
        out = []
        for seg, active in state.segments():
            _, rows, dist = _range(seg.pdq, queries, self.settings.pdq_threshold + 1)
            if active is not None:
                keep = active[rows]
                rows, dist = rows[keep], dist[keep]
            rows, dist = _best(rows, dist)
            out += [Match(seg.ids[int(r)].as_py(), "pdq", int(d), seg.category(r)) for r, d in zip(rows, dist)]
        return sorted(out, key=lambda m: (m.distance, m.indicator_id))

    def match_image(self, hashes) -> list[Match]:
        """Matches for an :class:`csadetect.hashing.ImageHashes`: PDQ over all dihedral hashes of
        the image and its variants whose quality passes the gate, plus exact MD5 and SHA-256."""
        gate = self.settings.quality_gate
        queries: list[bytes] = []
        for result in [hashes] + [v for _, v in getattr(hashes, "variants", ())]:
            if result.quality >= gate:
                queries.extend(result.dihedral or (result.pdq,))
        state = self._state
        return self.match_pdq(queries) + self._exact(state, "md5", hashes.md5) + self._exact(state, "sha256", hashes.sha256)

    def match_video(self, frames, md5: Optional[str] = None, sha256: Optional[str] = None) -> list[Match]:
        """Matches for a video: ``frames`` is a sequence of VideoFrame (or a VideoHashes, whose
        md5/sha256 are then used). See the module docstring for the share rule and distance."""
        if hasattr(frames, "frames"):
            md5, sha256, frames = md5 or frames.md5, sha256 or frames.sha256, frames.frames
        state = self._state
        gate = self.settings.quality_gate
        good = list(dict.fromkeys(f.pdq for f in frames if f.quality >= gate))
        out = []
        if good:
            queries = np.frombuffer(b"".join(good), dtype=np.uint8).reshape(-1, PDQ_BYTES)
            need = self.settings.video_frame_share * len(good) - 1e-9
            for seg, active in state.segments():
                qnum, pos, _ = _range(seg.vpdq, queries, self.settings.pdq_threshold + 1)
                rows = seg.frame_rows[pos].astype(np.int64)
                if active is not None:
                    keep = active[rows]
                    qnum, rows = qnum[keep], rows[keep]
                pairs = np.unique(rows * len(good) + qnum)  # one vote per (indicator, query frame)
                cand, found = np.unique(pairs // len(good), return_counts=True)
                for row, n in zip(cand, found):
                    if n >= need:
                        share = n / len(good)
                        out.append(Match(seg.ids[int(row)].as_py(), "vpdq", round(1.0 - share, 6), seg.category(row)))
        out.sort(key=lambda m: (m.distance, m.indicator_id))
        return out + self._exact(state, "md5", md5) + self._exact(state, "sha256", sha256)


def load_index(db_dir: str, public_key, match_settings=None, version: Optional[int] = None) -> IndicatorIndex:
    """Verify and load a snapshot and build its index."""
    return IndicatorIndex.from_snapshot(load_snapshot(os.fspath(db_dir), public_key, version), match_settings)
