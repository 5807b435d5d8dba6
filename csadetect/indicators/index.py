"""In-memory matching against an indicator snapshot (DESIGN.md §4).

A segment holds, for every registered signal type (:mod:`csadetect.signals`), the index that type
builds over its rows: PDQ by multi-index hashing or FAISS (:mod:`csadetect.signals.pdq`), vPDQ by
the share of frames found (:mod:`csadetect.signals.vpdq`), MD5 / SHA-1 / SHA-256 by exact lookup
(:mod:`csadetect.signals.digest`), embeddings by inner product per model version, exact or approximate (IVF/HNSW) by size
(``match.embedding_index``)
(:mod:`csadetect.signals.embedding`). Each type's module documents its distance; smaller is better
for every kind. A query asks each type that has something to look up for the item
(``SignalType.probe``) and turns the hits into :class:`Match` records.

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

import bisect
import dataclasses
import os
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from csadetect.config.settings import MatchSettings
from csadetect.core import fs
from csadetect.indicators.mapped import MappedVersion, cached_copy, dictionary_codes, has_index_files, map_version
from csadetect.indicators.snapshot import (
    CODES_KIND,
    Delta,
    Snapshot,
    SnapshotError,
    _resolve,
    check_min_version,
    deltas_between,
    head,
    kind_rank,
    load_delta,
    load_snapshot,
    manifest_chain,
)
from csadetect.signals import SIGNAL_TYPES, SignalError, for_query, ordered
from csadetect.signals.embedding import TURN_GATE, EmbeddingSignal, region_ways, view_thresholds
from csadetect.signals.pdq import PdqSignal


@dataclasses.dataclass(frozen=True)
class Match:
    """One indicator hit. ``distance`` is in the unit of its kind's signal type (``unit``): Hamming
    bits for pdq, 0 for the exact digests, ``1 - share`` of matched query frames for vpdq,
    ``1 - similarity`` for embeddings."""

    indicator_id: str
    kind: str
    distance: Union[int, float]
    category: str
    similarity: Optional[float] = None  # embedding matches: cosine similarity (distance = 1 - it)
    source: str = dataclasses.field(default="", compare=False)  # the indicator's source (hash list): for per-source thresholds, not in reports

    def to_json(self) -> dict:
        out = dataclasses.asdict(self)
        del out["source"]  # report schema 1.2 lists id, kind, distance, category (and similarity)
        if out["similarity"] is None:
            del out["similarity"]
        return out


class _Segment:
    """Immutable match structures over rows sorted by kind (pdq first): one index per signal type
    (``indexes``), the ids, and the category and source codes. Made from a table of active rows
    (:meth:`of_table`: deltas' overlay, snapshots without index files) or from a full version's
    memory-mapped index files (:meth:`of_mapped`: shared by every process that maps them)."""

    def __init__(self, ids, categories: list, category_codes, sources: list, source_codes,
                 bounds: Mapping[str, tuple[int, int]], values: pa.ChunkedArray, pdq_codes: np.ndarray, settings,
                 pdq_tables=None):
        self.n = len(ids)
        self.ids = ids
        self.bounds = {kind: (int(a), int(b)) for kind, (a, b) in bounds.items() if b > a}  # each kind's rows, ids ascending
        self.categories, self.category_codes = categories, category_codes
        self.sources, self.source_codes = sources, source_codes
        self.indexes = {}
        try:
            for signal in SIGNAL_TYPES.values():
                first, end = bounds.get(signal.name, (0, 0))
                if signal.name == CODES_KIND:  # parsed once, in the snapshot (and its tables when mapped); its rows
                    # are one run, passed as a range (an array of 100M row numbers would be 800 MB)
                    self.indexes[signal.name] = signal.build_index(values.slice(first, 0), range(first, end), settings,
                                                                   pdq_codes, pdq_tables)
                    continue
                self.indexes[signal.name] = signal.build_index(values.slice(first, end - first), np.arange(first, end),
                                                               settings)
        except SignalError as exc:
            raise SnapshotError(str(exc)) from None

    @classmethod
    def of_table(cls, table: pa.Table, pdq_codes: np.ndarray, settings) -> "_Segment":
        ranks = kind_rank(table).to_numpy()  # kind -> its position among the signal types
        if np.any(ranks[1:] < ranks[:-1]):
            raise SnapshotError("index rows must be sorted by kind")
        cuts = np.searchsorted(ranks, np.arange(len(SIGNAL_TYPES) + 1))  # each kind's rows: one run
        bounds = {name: (int(cuts[i]), int(cuts[i + 1])) for i, name in enumerate(SIGNAL_TYPES)}
        categories, category_codes = dictionary_codes(table["category"])
        sources, source_codes = dictionary_codes(table["source"])
        return cls(table["indicator_id"].combine_chunks(), categories, category_codes, sources, source_codes,
                   bounds, table["value"], pdq_codes, settings)

    @classmethod
    def of_mapped(cls, mapped: MappedVersion, settings) -> "_Segment":
        return cls(mapped.ids, mapped.categories, mapped.category_codes, mapped.sources, mapped.source_codes,
                   mapped.layout, mapped.values, mapped.pdq_codes, settings, mapped.mih)

    def rows_of(self, ids: pa.ChunkedArray) -> np.ndarray:
        """The rows holding these ids. A few ids among many rows are found by binary search
        within each kind's run (ids ascending there), which reads a few dozen ids each instead of
        every id of a memory-mapped base; a large set is matched by one hash join."""
        if len(ids) * 64 >= self.n:
            return np.flatnonzero(pc.is_in(self.ids, value_set=ids).to_numpy(zero_copy_only=False))
        column = _Ids(self.ids)
        found = []
        for value in ids.to_pylist():
            for first, end in self.bounds.values():
                row = bisect.bisect_left(column, value, first, end)
                if row < end and column[row] == value:
                    found.append(row)
        return np.array(sorted(set(found)), dtype=np.int64)

    def category(self, row: int) -> str:
        return self.categories[self.category_codes[row]]

    def source(self, row: int) -> str:
        return self.sources[self.source_codes[row]]

    def memory_stats(self) -> dict:
        stats = {"ids": self.ids.nbytes, "categories": self.category_codes.nbytes, "sources": self.source_codes.nbytes}
        return stats | {f"{name}_index": index.nbytes for name, index in self.indexes.items()}


class _Ids:
    """An Arrow string column as a sequence of str for :mod:`bisect` (reads only what it is asked)."""

    def __init__(self, column: pa.ChunkedArray):
        self._column = column

    def __len__(self) -> int:
        return len(self._column)

    def __getitem__(self, row: int) -> str:
        return self._column[row].as_py()


def _active_only(table: pa.Table, codes: np.ndarray) -> tuple[pa.Table, np.ndarray]:
    if table["disabled_at"].null_count == table.num_rows:
        return table, codes  # all active: no copy
    active = table["disabled_at"].is_null()
    pdq_active = pc.filter(active, pc.equal(table["kind"], CODES_KIND)).to_numpy(zero_copy_only=False)
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

    def __init__(self, state: _State, settings, cache_dir: Optional[str] = None):
        self._state = state
        self.settings = settings
        self.cache_dir = cache_dir  # where an object store's version is copied to be mapped (load_index)

    @classmethod
    def from_snapshot(cls, snapshot: Snapshot, match_settings: Optional[MatchSettings] = None) -> "IndicatorIndex":
        settings = match_settings or MatchSettings()
        table, codes = _active_only(snapshot.table, snapshot.pdq_codes)
        return cls(_State(snapshot.version, _Segment.of_table(table, codes, settings), None, None, None, None), settings)

    @property
    def version(self) -> int:
        return self._state.version

    def __len__(self) -> int:
        """Active indicators (all kinds)."""
        state = self._state
        base = state.base.n if state.base_active is None else int(state.base_active.sum())
        return base + (state.overlay.n if state.overlay is not None else 0)

    def embedding_versions(self) -> set:
        """The model versions of the embedding rows (``None`` for rows that carry none, which match
        any model's queries)."""
        return {version for seg, _ in self._state.segments()
                for version, _dim in getattr(seg.indexes.get(EmbeddingSignal.name), "groups", {})}

    def embedding_version_problem(self, version: str) -> Optional[str]:
        """One line when this index holds embedding rows but none that queries of model ``version``
        are compared with (rows of other models only: every embedding match would be lost without
        a sign); ``None`` when it holds none or some that fit."""
        versions = self.embedding_versions()
        if not versions or None in versions or version in versions:
            return None
        return (f"the indicator database (version {self.version}) has embedding rows of model "
                f"{', '.join(sorted(versions))} only, but the configured embedding model is {version}: re-make the rows "
                "with `csadetect indicators from-media`, or set embedding.enabled: false")

    def memory_stats(self) -> dict:
        """Bytes per structure: ``ids``, ``categories``, ``<kind>_index`` for each signal type
        (e.g. ``pdq_index``, see :func:`csadetect.signals.hamming.faiss_bytes`), ``active`` (the base
        mask, after deltas) and ``overlay`` (everything added by deltas)."""
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
        active = np.ones(state.base.n, dtype=bool) if state.base_active is None else state.base_active.copy()
        active[state.base.rows_of(delta.table["indicator_id"])] = False
        parts = [(delta.table, delta.pdq_codes)]
        if state.overlay_table is not None:
            parts.insert(0, (state.overlay_table, state.overlay_codes))
        table, codes = _active_only(*_resolve(parts))  # last row per id wins, then active only
        overlay = _Segment.of_table(table, codes, self.settings)
        self._state = _State(delta.version, state.base, active, overlay, table, codes)
        return self

    def refresh(self, db_dir: str, public_key, min_version: Optional[int] = None) -> bool:
        """Bring the index to the highest signed version (:func:`~csadetect.indicators.snapshot.head`):
        apply the deltas since this version, or load the full snapshot when there is no delta
        path. Returns True when the version changed. Raises SnapshotError (leaving the index at its
        last good version) when the new version does not verify, or when the database's highest
        signed version is below this one or below ``min_version`` (a rollback)."""
        target = head(db_dir, public_key).latest
        check_min_version(target, min_version)
        if target == self.version:
            return False
        if target < self.version:
            raise SnapshotError(
                f"rollback refused: the highest signed version in {db_dir} is {target}, older than the loaded {self.version}")
        deltas = deltas_between(db_dir, public_key, self.version, target)
        if deltas is None:
            self._state = load_index(db_dir, public_key, self.settings, target, cache_dir=self.cache_dir)._state
            return True
        updated = IndicatorIndex(self._state, self.settings, self.cache_dir)
        for delta in deltas:
            updated.apply_delta(delta)
        self._state = updated._state
        return True

    # ------------------------------------------------------------------ queries

    def match(self, probes: Mapping[str, Any]) -> list[Match]:
        """Matches for one item: ``probes`` maps a kind to what its signal type's index is queried
        with (``SignalType.probe``). Perceptual kinds come first, each nearest first, then the
        exact ones (:func:`csadetect.signals.ordered`)."""
        state = self._state  # one version for the whole query, even if a swap happens meanwhile
        out: list[Match] = []
        for signal in ordered():
            probe = probes.get(signal.name)
            if probe is None:
                continue
            found = [
                Match(seg.ids[hit.row].as_py(), signal.name, hit.distance, seg.category(hit.row), hit.similarity,
                      seg.source(hit.row))
                for seg, active in state.segments()
                for hit in seg.indexes[signal.name].query(probe)
                if active is None or active[hit.row]
            ]
            if not signal.exact:
                found.sort(key=lambda m: (m.distance, m.indicator_id))
            out += found
        return out

    def probes(self, hashes) -> dict[str, Any]:
        """What each signal type the item's content is looked up with (:func:`csadetect.signals.for_query`)
        looks up for its hashes (an ImageHashes or VideoHashes)."""
        probes = {}
        for signal in for_query(hashes.content):
            probe = signal.probe(hashes, self.settings)
            if probe is not None:
                probes[signal.name] = probe
        return probes

    def match_pdq(self, hashes: Sequence[bytes]) -> list[Match]:
        """PDQ matches for raw 32-byte hashes (no quality gate here), best distance per indicator."""
        return self.match({PdqSignal.name: hashes})

    def match_embeddings(self, vectors, version: Optional[str], threshold) -> list[Match]:
        """Embedding matches for query vectors ``(k, dim)`` made by model ``version``: rows whose
        cosine similarity to any query is >= ``threshold`` (one number, or one per query vector:
        :func:`csadetect.signals.embedding.view_thresholds`), best similarity per indicator."""
        return self.match({EmbeddingSignal.name: (vectors, version, threshold)})

    def match_image(self, hashes, embeddings=None, embedding_version: Optional[str] = None,
                    embedding_threshold=None) -> list[Match]:
        """Matches for an :class:`csadetect.media.hashing.ImageHashes` (PDQ over all dihedral hashes
        of the image and its variants whose quality passes the gate, its digests) and, when
        ``embeddings`` (the image's view vectors) are given, embedding near-duplicates
        (``embedding_threshold``: one number, or one per vector as
        :func:`csadetect.signals.embedding.view_thresholds` gives)."""
        probes = self.probes(hashes)
        if embeddings is not None and embedding_threshold is not None:
            probes[EmbeddingSignal.name] = (embeddings, embedding_version, embedding_threshold)
        return self.match(probes)

    def nearest_embedding(self, vectors, version: Optional[str]) -> float:
        """The largest cosine similarity of any of ``vectors`` (made by model ``version``) to any
        embedding row of this version (a top-1 search per segment; -1.0 without rows)."""
        state = self._state
        return max((seg.indexes[EmbeddingSignal.name].nearest(vectors, version) for seg, _ in state.segments()
                    if EmbeddingSignal.name in seg.indexes), default=-1.0)

    def region_orientations(self, embeddings, names: Sequence[str], version: Optional[str],
                            tolerance: float, turned_views=None, turn_gate: Optional[float] = TURN_GATE) -> tuple[str, ...]:
        """Which ways to cut the image's query-side region views (:data:`csadetect.signals.embedding.ORIENTATIONS`):
        ``("",)`` from the image as it is, ``(":flip",)`` from its mirror, ``(":r90",)`` from it turned a
        quarter counter-clockwise, ... The region rows are cut from the upright, unmirrored original and a
        region view must land almost on its row, which a crop of a mirrored or turned copy does only when
        brought back. So the mirror (the own vector named ``"<first name>:flip"``) is used when it lies
        nearer some embedding row than the image (the first vector), the image when it lies nearer, both
        when the two differ by ``tolerance`` or less (the threshold's distance: closer than a match can
        tell apart); and, with ``turned_views()`` (names and vectors of the image turned:
        ``match.embedding_query_turns``), the nearest turn as well when it lies nearer than both by more
        than ``tolerance`` and within ``turn_gate`` times it of a row (``match.embedding_query_turn_gate``;
        :func:`csadetect.signals.embedding.region_ways`). One top-1 search per
        orientation; the image alone without a mirror or turns, or without embedding rows of ``version``
        (then the turns are not embedded)."""
        return region_ways(lambda v: self.nearest_embedding(v, version), embeddings, names, tolerance, turned_views,
                           turn_gate)

    def _region_views(self, embeddings, names, version, threshold: float, region_views, turned_views=None,
                      turn_gate: Optional[float] = TURN_GATE) -> tuple:
        """(names, vectors) of the region views of every orientation :meth:`region_orientations` asks for."""
        ways = self.region_orientations(embeddings, names, version, 1.0 - threshold, turned_views, turn_gate)
        parts = [region_views(m) for m in ways]
        parts = [(tuple(n), v) for n, v in parts if len(n)]
        if not parts:
            return (), None
        return tuple(n for part in parts for n in part[0]), np.concatenate([v for _, v in parts])

    def match_image_gated(self, hashes, embeddings, names: Sequence[str], embedding_version: Optional[str],
                          threshold: float, gate: Optional[float], region_views,
                          turned_views=None, turn_gate: Optional[float] = TURN_GATE) -> tuple[list[Match], Optional[tuple]]:
        """:meth:`match_image` for an image whose query-side region views are embedded here, after
        its own ``embeddings`` (the image, its views, sub-images, mirror; ``names`` theirs) have been
        looked up: ``region_views(orientation)`` gives the region views' (names, vectors), cut from the
        image, its mirror or (with ``turned_views()``: the names and vectors of the image turned, which
        only choose the way) a turn of it as :meth:`region_orientations` says (``turn_gate`` its), and they are looked up at their own
        thresholds (:func:`csadetect.signals.embedding.view_thresholds`). With ``gate`` None (no
        gate, the default) every image's region views are looked up, with its own vectors at once;
        with a gate (``match.embedding_query_region_gate``) only when its own vectors found nothing
        and one of them reaches similarity ``gate`` with some row. Returns (matches, the region
        views' (names, vectors) when they were embedded, else None)."""
        if gate is None:
            regions = self._region_views(embeddings, names, embedding_version, threshold, region_views, turned_views,
                                         turn_gate)
            if len(regions[0]):
                every = list(names) + list(regions[0])
                return self.match_image(hashes, np.concatenate([embeddings, regions[1]]), embedding_version,
                                        view_thresholds(every, threshold)), regions
        matches = self.match_image(hashes, embeddings, embedding_version, view_thresholds(names, threshold, len(embeddings)))
        if matches or gate is None or self.nearest_embedding(embeddings, embedding_version) < gate:
            return matches, None
        regions = self._region_views(embeddings, names, embedding_version, threshold, region_views, turned_views,
                                     turn_gate)
        if not len(regions[0]):
            return matches, None
        return self.match_embeddings(regions[1], embedding_version, view_thresholds(regions[0], threshold)), regions

    def match_video(self, hashes) -> list[Match]:
        """Matches for a :class:`csadetect.media.hashing.VideoHashes`: vPDQ (the share rule of
        :mod:`csadetect.signals.vpdq`), its frames among known pictures' PDQ rows
        (``match.video_frames_pdq``: :mod:`csadetect.signals.pdq`) and its digests."""
        return self.match(self.probes(hashes))


def _mapped_index(db_dir: str, public_key, version: int, settings, cache_dir: Optional[str]) -> Optional[IndicatorIndex]:
    """``version`` from its full base's memory-mapped index files (:mod:`csadetect.indicators.mapped`)
    plus the deltas above it; None when the base has no index files (an older snapshot)."""
    chain = manifest_chain(db_dir, public_key, version)  # newest first, down to the full base
    where, base = chain[-1]
    if not has_index_files(base):
        return None
    if fs.via_beam(where):  # an object store: one local copy per machine, then mapped like a local one
        where = cached_copy(db_dir, where, base, cache_dir)
    mapped = map_version(where, base)
    active = None
    if len(mapped.disabled):
        active = np.ones(mapped.n, dtype=bool)
        active[np.asarray(mapped.disabled)] = False
    index = IndicatorIndex(_State(mapped.version, _Segment.of_mapped(mapped, settings), active, None, None, None),
                           settings, cache_dir)
    for _, manifest in reversed(chain[:-1]):
        index.apply_delta(load_delta(db_dir, public_key, manifest["version"]))
    return index


def load_index(db_dir: str, public_key, match_settings=None, version: Optional[int] = None,
               min_version: Optional[int] = None, cache_dir: Optional[str] = None) -> IndicatorIndex:
    """Verify and load a snapshot (default: the highest signed version; one below ``min_version``
    is refused) and its index.

    A database whose full version carries index files is memory-mapped (read-only, shared by
    every process on the machine, nothing built; the deltas above it go to the overlay); on an
    object store its files are first copied once per machine into ``cache_dir`` (default: the
    system's temp directory, :func:`csadetect.indicators.mapped.cached_copy`). An older snapshot
    without index files is parsed and its index built in memory;
    Arrow's memory pool keeps the buffers freed while loading (about two thirds of the resident
    memory after a 1M-indicator load, benchmarks/bench_sizing.py): they are handed back to the
    system afterwards."""
    settings = match_settings or MatchSettings()
    db_dir = os.fspath(db_dir)
    if version is None:
        version = head(db_dir, public_key).latest
    check_min_version(int(version), min_version)
    index = _mapped_index(db_dir, public_key, int(version), settings, cache_dir)
    if index is not None:
        return index
    snapshot = load_snapshot(db_dir, public_key, version, min_version=min_version)
    index = IndicatorIndex.from_snapshot(snapshot, settings)
    del snapshot  # its full table (disabled rows included) is freed before the pool is trimmed
    pa.default_memory_pool().release_unused()
    return index
