"""Range search over 256-bit hashes (PDQ, and the frame hashes of vPDQ) for the signal indexes.

* :class:`MultiIndexHash`: exact multi-index hashing over the hashes (16 substrings of 16 bits,
  ``nflip = threshold // 16``; exact for any threshold by pigeonhole: a pair within ``t`` bits has
  one substring within ``t // 16`` flips; compressed tables in numpy, ~96 bytes per hash), or
* FAISS ``IndexBinaryFlat`` (brute force, 32 bytes per hash).

Range search is strictly ``<`` (FAISS's contract), so callers pass ``threshold + 1`` and the
threshold stays inclusive. Recall at the threshold equals brute force (tested).
"""
from __future__ import annotations

import itertools
from typing import Optional

import faiss
import numpy as np

try:  # the compiled search loop (_mih.c, built by setup.py in `make install`); numpy does the same without it
    from csadetect.signals import _mih
except ImportError:  # pragma: no cover - a machine without a C compiler
    _mih = None

HASH_BYTES = 32


class MultiIndexHash:
    """Exact range search over 256-bit hashes by multi-index hashing (Norouzi et al.).

    The hash is cut into ``tables`` substrings of ``bits`` bits (16 x 16 bits, or 11 x 22 bits for
    large sets: ``bits_for``). A pair within ``t`` bits has at least one substring within
    ``t // tables`` bits (pigeonhole), so every hash within the radius is among the hashes sharing,
    in some table, a substring within ``nflip`` flips of the query's; each such candidate is then
    verified on all 256 bits. Same contract as FAISS ``range_search`` (strictly ``< radius``;
    radius <= tables * (nflip + 1) for exactness) and the same results as brute force. Wider
    substrings make each directory row hold fewer candidates (n / 2**bits) at the price of more
    probes per query and a larger directory: 16 bits up to a few million hashes, 22 above.

    Layout (compressed sparse rows, no per-hash objects): the codes (32 bytes per hash), per table
    the positions sorted by substring (4 bytes per hash and table) and a directory of
    ``2**bits + 1`` offsets per table (uint32): ~96 bytes per hash with 16 bits (+4 MiB), ~76 with
    22 (+185 MiB), against ~350 for FAISS ``IndexBinaryMultiHash`` whose hash maps hold 8-byte ids
    in per-key vectors. The search loop is compiled (``_mih.c``) with numpy as the fallback. Fewer
    than ``FLAT_BELOW`` hashes (small overlays, video frames) go to a FAISS flat index instead,
    where a scan is as fast as the probes and the directory would dominate memory.
    """

    compiled = _mih is not None  # False: the numpy path (tests compare the two)
    FLAT_BELOW = 1 << 16
    WIDE_FROM = 1 << 22  # hashes from which 22-bit substrings pay (benchmarks/README.md, "Indicators at scale")
    CHUNK = 1 << 18  # candidates verified per step: bounds the temporaries of large batches

    def __init__(self, threshold: int, bits: Optional[int] = None):
        """``threshold``: the largest distance searched (inclusive); ``bits``: the substring width
        (None: chosen by :meth:`bits_for` when hashes are added)."""
        self.threshold = threshold
        self.ntotal = 0
        self.codes = np.zeros((0, HASH_BYTES), dtype=np.uint8)
        self._flat = None
        self._order = self._offsets = None
        self._set_bits(bits or 16)
        self._auto_bits = bits is None

    def _set_bits(self, bits: int) -> None:
        self.bits, self.tables = bits, 256 // bits
        self.nflip = self.threshold // self.tables
        flips = [0]
        for k in range(1, self.nflip + 1):
            flips += [sum(1 << b for b in chosen) for chosen in itertools.combinations(range(bits), k)]
        self._flips = np.array(flips, dtype=np.int64)
        self._table_base = np.arange(self.tables, dtype=np.int64) << bits

    @classmethod
    def bits_for(cls, n: int) -> int:
        return 16 if n < cls.WIDE_FROM else 22

    @staticmethod
    def keys(codes: np.ndarray, table: int, bits: int) -> np.ndarray:
        """Substring ``table`` of each code: bits ``[table * bits, (table + 1) * bits)`` of the code
        read as a little-endian 256-bit number (16-bit substrings: bytes 2t and 2t + 1)."""
        words = codes.view("<u8").reshape(-1, 4)
        start = table * bits
        word, shift = divmod(start, 64)
        key = words[:, word] >> np.uint64(shift)
        if shift + bits > 64:
            key = key | (words[:, word + 1] << np.uint64(64 - shift))
        return (key & np.uint64((1 << bits) - 1)).astype(np.uint32)

    def add(self, codes: np.ndarray) -> None:
        codes = np.ascontiguousarray(codes, dtype=np.uint8).reshape(-1, HASH_BYTES)
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
        if self._auto_bits:
            self._set_bits(self.bits_for(n))
        self._use_tables(codes, *self.build_tables(codes, self.bits))

    @classmethod
    def build_tables(cls, codes: np.ndarray, bits: int = 16, order=None, offsets=None,
                     tick=None) -> tuple[np.ndarray, np.ndarray]:
        """The tables of ``codes`` (n, 32) for ``bits``-bit substrings: ``order`` (tables * n
        positions, per table sorted by the table's substring) and ``offsets`` (per table, where
        each substring value's run starts). ``order``/``offsets`` may be given (e.g. memory-mapped
        files being written) to fill in place; ``tick()`` after each table (long work at 100M)."""
        n, tables, width = len(codes), 256 // bits, 1 << bits
        if order is None:
            order = np.empty(tables * n, dtype=np.uint32)
        if offsets is None:
            offsets = np.zeros(tables * width + 1, dtype=cls.offsets_dtype(n, bits))
        offsets[0] = 0
        for t in range(tables):  # one table at a time: bounded temporaries
            key = cls.keys(codes, t, bits)
            order[t * n:(t + 1) * n] = np.argsort(key, kind="stable")
            counts = np.bincount(key, minlength=width)
            np.cumsum(counts, out=offsets[t * width + 1:(t + 1) * width + 1])
            offsets[t * width + 1:(t + 1) * width + 1] += t * n
            if tick:
                tick()
        return order, offsets

    @classmethod
    def offsets_dtype(cls, n: int, bits: int = 16):
        return np.uint32 if (256 // bits) * n < 1 << 32 else np.int64

    @classmethod
    def from_tables(cls, threshold: int, codes: np.ndarray, order: np.ndarray, offsets: np.ndarray,
                    bits: int = 16) -> "MultiIndexHash":
        """An index over prebuilt tables (:meth:`build_tables`), e.g. read-only memory-mapped files
        of a snapshot: nothing is copied, so every process mapping them shares one copy."""
        index = cls(threshold, bits)
        n, tables = len(codes), 256 // bits
        if codes.ndim != 2 or codes.shape[1] != HASH_BYTES or order.shape != (tables * n,) or \
                offsets.shape != (tables * (1 << bits) + 1,) or (n and int(offsets[-1]) != tables * n):
            raise ValueError("multi-index tables do not fit their codes")
        index.codes, index.ntotal = codes, n
        index._use_tables(codes, order, offsets)
        return index

    def _use_tables(self, codes, order, offsets) -> None:
        self._order, self._offsets = order, offsets
        self._rows = codes.view("V32").ravel()  # one 32-byte item per hash, for gathers

    def memory_bytes(self) -> int:
        tables = 0 if self._order is None else self._order.nbytes + self._offsets.nbytes
        return self.codes.nbytes + tables

    def probes(self, queries: np.ndarray) -> np.ndarray:
        """(nq, tables * flips) directory rows each query reads."""
        keys = np.stack([self.keys(queries, t, self.bits) for t in range(self.tables)], axis=1).astype(np.int64)
        rows = (keys[:, :, None] ^ self._flips[None, None, :]) + self._table_base[None, :, None]
        return rows.reshape(len(queries), -1)

    def range_search(self, queries: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(lims, distances, positions) like FAISS: the hits of query i are [lims[i], lims[i+1])."""
        queries = np.ascontiguousarray(queries, dtype=np.uint8).reshape(-1, HASH_BYTES)
        if self._flat is not None:
            lims, dist, pos = self._flat.range_search(queries, radius)
            return lims.astype(np.int64), dist, pos
        if radius > self.tables * (self.nflip + 1):
            raise ValueError(f"radius {radius} is beyond what {self.tables} tables with {self.nflip} flips find exactly")
        nq = len(queries)
        if self.compiled:
            qn, ps, ds = _mih.search(self.codes, self._order, self._offsets, self._offsets.dtype == np.int64,
                                     queries, self._flips, self.bits, int(radius))
            qnum = np.frombuffer(qn, dtype=np.int64)
            lims = np.zeros(nq + 1, dtype=np.int64) if nq == 1 else np.searchsorted(qnum, np.arange(nq + 1))
            lims[-1] = len(qnum)
            return lims, np.frombuffer(ds, dtype=np.int32), np.frombuffer(ps, dtype=np.int64)
        probes = self.probes(queries)
        starts = self._offsets[probes].astype(np.int64)
        lengths = self._offsets[probes + 1] - starts
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
        return MultiIndexHash(threshold)
    if mode not in ("auto", "flat"):
        raise ValueError(f"unknown pdq_index {mode!r} (expected auto, multihash or flat)")
    return faiss.IndexBinaryFlat(256)


def faiss_bytes(index) -> int:
    """Bytes held by a binary index (exact): 32 per hash for flat; see :class:`MultiIndexHash`."""
    if isinstance(index, MultiIndexHash):
        return index.memory_bytes()
    return index.ntotal * index.code_size


def range_search(index, queries: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(query number, position, distance) of every pair with distance < radius."""
    if index.ntotal == 0 or len(queries) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    lims, dist, pos = index.range_search(queries, radius)
    if len(queries) == 1:
        qnum = np.zeros(len(pos), dtype=np.int64)
    else:
        qnum = np.repeat(np.arange(len(queries)), np.diff(lims.astype(np.int64)))
    return qnum, np.asarray(pos, dtype=np.int64), np.asarray(dist, dtype=np.int64)


def best(rows: np.ndarray, dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Smallest distance per row."""
    if len(rows) == 0:
        return rows, dist
    order = np.lexsort((dist, rows))
    rows, dist = rows[order], dist[order]
    first = np.ones(len(rows), dtype=bool)
    first[1:] = rows[1:] != rows[:-1]
    return rows[first], dist[first]


def as_queries(hashes) -> np.ndarray:
    """32-byte hashes (bytes) as an (n, 32) uint8 query array."""
    return np.frombuffer(b"".join(hashes), dtype=np.uint8).reshape(-1, HASH_BYTES)
