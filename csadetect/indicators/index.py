"""In-memory matching against an indicator snapshot (DESIGN.md §4).

* PDQ: multi-index hashing over the 256-bit hashes (:class:`MultiIndexHash`: 16 substrings of
  16 bits, ``nflip = threshold // 16``; exact for any threshold by pigeonhole: a pair within
  ``t`` bits has one substring within ``t // 16`` flips; compressed tables in numpy, ~96 bytes
  per hash), or FAISS ``IndexBinaryFlat`` (brute force, 32 bytes per hash). Range search is
  strictly ``<`` (FAISS's contract), so we pass ``threshold + 1`` and the threshold stays
  inclusive. All 8 dihedral hashes of the image and of every preprocessed variant go in one
  batched ``range_search``; the best distance per indicator is kept. Recall at the threshold
  equals brute force (tested).
* MD5 / SHA-256: sorted fixed-width byte arrays and ``np.searchsorted``; distance 0.
* vPDQ: a second binary index of every frame hash of every video indicator, with an int32
  frame -> row array. For a query video, ``share`` = (unique query frames with quality >= gate
  that are within the threshold of some frame of the indicator) / (unique query frames with
  quality >= gate). It matches when ``share >= video_frame_share``; the reported ``distance`` is
  ``1 - share`` (0.0 = every query frame found), so smaller is better for every kind.
* Embeddings: FAISS ``IndexFlatIP`` (exact inner product) over the L2-normalised vectors, one
  index per (model version, dimension): a query made by model *v* is only compared with rows
  of version *v* (and rows without a version of the same dimension). A row matches when the
  cosine similarity of any query view (the image, its trimmed views, its mirror) is >= the
  model's calibrated threshold; ``similarity`` is the best one and ``distance`` is
  ``1 - similarity``. 4 bytes per dimension per row (512 B at 128-d).

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
import itertools
import os
from typing import Optional, Sequence, Union

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from csadetect.indicators.rows import KINDS, split_embedding
from csadetect.indicators.snapshot import (
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


@dataclasses.dataclass(frozen=True)
class Match:
    """One indicator hit. ``distance``: Hamming bits for pdq, 0 for md5/sha256, ``1 - share`` of
    matched query frames for vpdq."""

    indicator_id: str
    kind: str
    distance: Union[int, float]
    category: str
    similarity: Optional[float] = None  # embedding matches: cosine similarity (distance = 1 - it)

    def to_json(self) -> dict:
        out = dataclasses.asdict(self)
        if out["similarity"] is None:
            del out["similarity"]
        return out


def _settings(match_settings):
    if match_settings is None:
        from csadetect.config.settings import MatchSettings

        return MatchSettings()
    return match_settings


class MultiIndexHash:
    """Exact range search over 256-bit hashes by multi-index hashing (Norouzi et al.), in numpy.

    The hash is cut into 16 substrings of 16 bits. A pair within ``t`` bits has at least one
    substring within ``t // 16`` bits (pigeonhole), so every hash within the radius is among the
    hashes sharing, in some table, a substring within ``nflip`` flips of the query's; each such
    candidate is then verified on all 256 bits. Same contract as FAISS ``range_search`` (strictly
    ``< radius``; radius <= 16 * (nflip + 1) for exactness) and the same results as brute force.

    Layout (compressed sparse rows, no per-hash objects): the codes (32 bytes per hash), per table
    the positions sorted by substring (4 bytes per hash and table) and a directory of 65,537
    offsets (uint32, 4 MiB for all 16 tables): ~96 bytes per hash, against ~350 for FAISS
    ``IndexBinaryMultiHash`` whose hash maps hold 8-byte ids in per-key vectors. Fewer than
    ``FLAT_BELOW`` hashes (small overlays, video frames) go to a FAISS flat index instead, where a
    scan is as fast as the probes and the directory would dominate memory.
    """

    TABLES, BITS = 16, 16
    FLAT_BELOW = 1 << 16
    CHUNK = 1 << 18  # candidates verified per step: bounds the temporaries of large batches

    def __init__(self, nflip: int):
        self.nflip = nflip
        flips = [0]
        for k in range(1, nflip + 1):
            flips += [sum(1 << b for b in bits) for bits in itertools.combinations(range(self.BITS), k)]
        self._flips = np.array(flips, dtype=np.uint16)
        self._table_base = np.arange(self.TABLES, dtype=np.int64) << self.BITS
        self.ntotal = 0
        self.codes = np.zeros((0, PDQ_BYTES), dtype=np.uint8)
        self._flat = None
        self._order = self._offsets = None

    def add(self, codes: np.ndarray) -> None:
        codes = np.ascontiguousarray(codes, dtype=np.uint8).reshape(-1, PDQ_BYTES)
        if self.ntotal:
            codes = np.concatenate([self.codes, codes])
        self.codes, self.ntotal = codes, len(codes)
        n = self.ntotal
        if n < self.FLAT_BELOW:
            self._flat = faiss.IndexBinaryFlat(256)
            self._flat.add(codes)
            self._order = self._offsets = None
            return
        self._flat = None
        keys = codes.view("<u2")  # (n, 16) substrings
        width = 1 << self.BITS
        order = np.empty(self.TABLES * n, dtype=np.uint32)
        offsets = np.zeros(self.TABLES * width + 1, dtype=np.uint32 if self.TABLES * n < 1 << 32 else np.int64)
        for t in range(self.TABLES):
            order[t * n:(t + 1) * n] = np.argsort(keys[:, t], kind="stable")
            counts = np.bincount(keys[:, t], minlength=width)
            np.cumsum(counts, out=offsets[t * width + 1:(t + 1) * width + 1])
            offsets[t * width + 1:(t + 1) * width + 1] += t * n
        self._order, self._offsets = order, offsets
        self._rows = codes.view("V32").ravel()  # one 32-byte item per hash, for gathers

    def memory_bytes(self) -> int:
        tables = 0 if self._order is None else self._order.nbytes + self._offsets.nbytes
        return self.codes.nbytes + tables

    def range_search(self, queries: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(lims, distances, positions) like FAISS: the hits of query i are [lims[i], lims[i+1])."""
        queries = np.ascontiguousarray(queries, dtype=np.uint8).reshape(-1, PDQ_BYTES)
        if self._flat is not None:
            lims, dist, pos = self._flat.range_search(queries, radius)
            return lims.astype(np.int64), dist, pos
        nq = len(queries)
        # probe keys (query, table, flip) -> rows of the directory
        probes = (queries.view("<u2")[:, :, None] ^ self._flips).astype(np.int64)
        probes += self._table_base[None, :, None]
        starts = self._offsets[probes].reshape(nq, -1).astype(np.int64)
        lengths = self._offsets[probes + 1].reshape(nq, -1) - starts
        if nq == 1:
            qnum, pos, dist = self._verify(queries, starts.ravel(), lengths.ravel(), radius)
            return np.array([0, len(pos)], dtype=np.int64), dist, pos
        upto = np.cumsum(lengths.sum(axis=1))  # candidates up to and including each query
        qs, ps, ds = [], [], []
        first = 0
        while first < nq:  # queries in chunks of about CHUNK candidates
            done = int(upto[first - 1]) if first else 0
            last = max(first + 1, int(np.searchsorted(upto, done + self.CHUNK, "right")))
            q, p, d = self._verify(queries[first:last], starts[first:last].ravel(), lengths[first:last].ravel(), radius)
            qs.append(q + first)
            ps.append(p)
            ds.append(d)
            first = last
        qnum, pos, dist = np.concatenate(qs), np.concatenate(ps), np.concatenate(ds)
        return np.searchsorted(qnum, np.arange(nq + 1)), dist, pos

    def _verify(self, queries, starts, lengths, radius):
        """(query number, position, distance) within ``radius`` of the candidates in the given
        directory ranges, sorted by query then position, each pair once."""
        ends = np.cumsum(lengths)
        total = int(ends[-1]) if len(ends) else 0
        if total == 0:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty.astype(np.int32)
        index = np.repeat(starts - (ends - lengths), lengths)
        index += np.arange(total, dtype=np.int64)
        cand = self._order[index]
        words = np.take(self._rows, cand).view(np.uint64)
        nq = len(queries)
        if nq == 1:
            words = words.reshape(-1, 4)
            words ^= queries.view(np.uint64)
        else:
            per_query = lengths.size // nq
            qnum = np.repeat(np.arange(nq), np.diff(ends[per_query - 1::per_query], prepend=0))
            words ^= np.take(queries.view("V32").ravel(), qnum).view(np.uint64)
        # the 4 bit counts of a candidate (bytes of one uint32) summed by one multiply: the top
        # byte of counts * 0x01010101 is their sum modulo 256, i.e. exact except at 4 x 64 = 256
        counts = np.bitwise_count(words).view(np.uint32).ravel()
        summed = (counts * np.uint32(0x01010101)) >> np.uint32(24)
        near = np.flatnonzero((summed < radius) & (counts != 0x40404040))
        dist = summed[near].astype(np.int32)
        key = cand[near].astype(np.int64)
        if nq > 1:
            key += qnum[near] * self.ntotal
        if len(key) > 1:  # a hash found through several tables: keep one
            order = np.argsort(key, kind="stable")
            key, dist = key[order], dist[order]
            first = np.ones(len(key), dtype=bool)
            first[1:] = key[1:] != key[:-1]
            key, dist = key[first], dist[first]
        if nq == 1:
            return np.zeros(len(key), dtype=np.int64), key, dist
        return key // self.ntotal, key % self.ntotal, dist


def make_binary_index(threshold: int, mode: str = "auto"):
    """The index for 256-bit hashes: multi-index hashing (:class:`MultiIndexHash`) when asked, or
    auto with threshold <= 31; FAISS ``IndexBinaryFlat`` otherwise."""
    if mode == "multihash" or (mode == "auto" and threshold <= 31):
        return MultiIndexHash(nflip=threshold // MultiIndexHash.BITS)
    if mode not in ("auto", "flat"):
        raise ValueError(f"unknown pdq_index {mode!r} (expected auto, multihash or flat)")
    return faiss.IndexBinaryFlat(256)


def faiss_bytes(index) -> int:
    """Bytes held by a binary index (exact): 32 per hash for flat; see :class:`MultiIndexHash`."""
    if isinstance(index, MultiIndexHash):
        return index.memory_bytes()
    return index.ntotal * index.code_size


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

        # embeddings: one exact inner-product index per (model version, dimension)
        self.embedding: dict[tuple, tuple] = {}
        erows = np.flatnonzero(kinds == KINDS.index("embedding"))
        groups: dict[tuple, tuple[list, list]] = {}
        for row, value in zip(erows, values.take(pa.array(erows)).to_pylist()):
            version, vector = split_embedding(value)
            rows_, vecs = groups.setdefault((version, len(vector)), ([], []))
            rows_.append(row)
            vecs.append(vector)
        for (version, dim), (rows_, vecs) in groups.items():
            mat = np.ascontiguousarray(np.stack(vecs), dtype=np.float32)
            mat /= np.maximum(np.linalg.norm(mat, axis=1, keepdims=True), 1e-12)
            index = faiss.IndexFlatIP(dim)
            index.add(mat)
            self.embedding[(version, dim)] = (index, np.asarray(rows_, dtype=np.int32))

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
            "embedding_index": sum(ix.ntotal * ix.d * 4 + rows.nbytes for ix, rows in self.embedding.values()),
        }

    def embedding_hits(self, vectors: np.ndarray, version: Optional[str], threshold: float):
        """(rows, best similarity) of embedding rows within ``threshold`` of any query vector."""
        rows_out, sims_out = [], []
        radius = float(np.nextafter(np.float32(threshold), np.float32(-np.inf)))  # FAISS keeps sim > radius
        for (row_version, dim), (index, rows) in self.embedding.items():
            if dim != vectors.shape[1] or (row_version is not None and row_version != version):
                continue
            _, sims, pos = index.range_search(vectors, radius)
            keep = sims >= threshold
            rows_out.append(rows[pos[keep]])
            sims_out.append(sims[keep])
        if not rows_out:
            return np.zeros(0, np.int32), np.zeros(0, np.float32)
        rows, sims = np.concatenate(rows_out), np.concatenate(sims_out)
        order = np.lexsort((-sims, rows))
        rows, sims = rows[order], sims[order]
        first = np.ones(len(rows), dtype=bool)
        first[1:] = rows[1:] != rows[:-1]
        return rows[first], sims[first]


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
        """Bytes per structure: ``ids``, ``categories``, ``pdq_index`` (see :func:`faiss_bytes`),
        ``exact`` (md5/sha256 arrays), ``vpdq_index``, ``active`` (the base mask, after deltas)
        and ``overlay`` (everything added by deltas)."""
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
        unique = dict.fromkeys(bytes(h) for h in hashes)  # e.g. the dihedral hashes of a symmetric picture
        queries = np.frombuffer(b"".join(unique), dtype=np.uint8).reshape(-1, PDQ_BYTES)
        out = []
        for seg, active in state.segments():
            _, rows, dist = _range(seg.pdq, queries, self.settings.pdq_threshold + 1)
            if active is not None:
                keep = active[rows]
                rows, dist = rows[keep], dist[keep]
            rows, dist = _best(rows, dist)
            out += [Match(seg.ids[int(r)].as_py(), "pdq", int(d), seg.category(r)) for r, d in zip(rows, dist)]
        return sorted(out, key=lambda m: (m.distance, m.indicator_id))

    def match_embeddings(self, vectors, version: Optional[str], threshold: float) -> list[Match]:
        """Embedding matches for query vectors ``(k, dim)`` made by model ``version``: rows whose
        cosine similarity to any query is >= ``threshold``, best similarity per indicator."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or not len(vectors):
            return []
        vectors = np.ascontiguousarray(vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12))
        out = []
        for seg, active in self._state.segments():
            rows, sims = seg.embedding_hits(vectors, version, threshold)
            if active is not None:
                keep = active[rows]
                rows, sims = rows[keep], sims[keep]
            out += [
                Match(seg.ids[int(r)].as_py(), "embedding", round(1.0 - float(s), 6), seg.category(r), round(float(s), 6))
                for r, s in zip(rows, sims)
            ]
        return sorted(out, key=lambda m: (m.distance, m.indicator_id))

    def match_image(self, hashes, embeddings=None, embedding_version: Optional[str] = None,
                    embedding_threshold: Optional[float] = None) -> list[Match]:
        """Matches for an :class:`csadetect.media.hashing.ImageHashes`: PDQ over all dihedral hashes of
        the image and its variants whose quality passes the gate, exact MD5 and SHA-256, and,
        when ``embeddings`` (the image's view vectors) are given, embedding near-duplicates."""
        gate = self.settings.quality_gate
        queries: list[bytes] = []
        for result in [hashes] + [v for _, v in getattr(hashes, "variants", ())]:
            if result.quality >= gate:
                queries.extend(result.dihedral or (result.pdq,))
        state = self._state
        out = self.match_pdq(queries)
        if embeddings is not None and embedding_threshold is not None:
            out += self.match_embeddings(embeddings, embedding_version, embedding_threshold)
        return out + self._exact(state, "md5", hashes.md5) + self._exact(state, "sha256", hashes.sha256)

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
    """Verify and load a snapshot and build its index. Arrow's memory pool keeps the buffers freed
    while loading (about two thirds of the resident memory after a 1M-indicator load,
    benchmarks/bench_sizing.py): they are handed back to the system afterwards."""
    import pyarrow as pa

    index = IndicatorIndex.from_snapshot(load_snapshot(os.fspath(db_dir), public_key, version), match_settings)
    pa.default_memory_pool().release_unused()
    return index
