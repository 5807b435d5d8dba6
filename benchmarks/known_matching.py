"""The matching part of the known-material benchmark (``benchmarks.bench_known``, ``matching``): queries/s
of ``IndicatorIndex`` (multi-index hashing and flat) against pytx's ``PDQIndex`` on one core, over databases
of random PDQ hashes; the queries (``make_queries``), recall against numpy brute force (``brute_force``),
the in-memory snapshot the indexes are built from (``snapshot_of``), memory and build times.
``bench_known`` re-exports every name.
"""
from __future__ import annotations

import gc
import time

import numpy as np

from benchmarks.known_common import SEED, THRESHOLD, fmt, interleaved, log, pin_one_core, rss, table
from benchmarks.known_data import random_db
from benchmarks.known_targets import RESULTS
from csadetect.config.settings import MatchSettings
from csadetect.indicators.index import IndicatorIndex
from csadetect.indicators.snapshot import Snapshot, rows_to_table

__all__ = ["make_queries", "brute_force", "snapshot_of", "bench_matching"]


# --------------------------------------------------------------------------- matching


def make_queries(db: np.ndarray, n: int, seed: int) -> np.ndarray:
    """80% database hashes with 0-30 random bits flipped, 20% random (non-matching) hashes."""
    rng = np.random.default_rng(seed)
    near = int(n * 0.8)
    q = db[rng.integers(0, len(db), near)].copy()
    bits = np.unpackbits(q, axis=1)
    for i, k in enumerate(rng.integers(0, 31, near)):
        bits[i, rng.choice(256, int(k), replace=False)] ^= 1
    q = np.concatenate([np.packbits(bits, axis=1), rng.integers(0, 256, (n - near, 32), dtype=np.uint8)])
    return q[rng.permutation(n)]


def brute_force(db: np.ndarray, queries: np.ndarray, threshold: int) -> list[set[int]]:
    """Positions within ``threshold`` (inclusive) of each query, by numpy popcount."""
    words = db.view(np.uint64)
    out = []
    for q in queries.view(np.uint64):
        d = np.zeros(len(db), dtype=np.uint16)
        for k in range(4):
            d += np.bitwise_count(words[:, k] ^ q[k])
        out.append(set(np.flatnonzero(d <= threshold).tolist()))
    return out


def snapshot_of(db: np.ndarray):
    """An in-memory snapshot (no signing, nothing written) of ``db`` as pdq indicators."""
    import pyarrow as pa
    import pyarrow.compute as pc


    n = len(db)
    hexchars = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    nibbles = np.empty((n, 64), dtype=np.uint8)
    nibbles[:, 0::2], nibbles[:, 1::2] = db >> 4, db & 15
    values = pa.array(hexchars[nibbles].view("S64").ravel()).cast(pa.string())
    ids = pc.binary_join_element_wise("p", pc.utf8_lpad(pa.array(np.arange(n)).cast(pa.string()), 8, "0"), "")
    kinds = pa.array(np.full(n, b"pdq", dtype="S3")).cast(pa.string())
    table = rows_to_table(pa.table({"indicator_id": ids, "kind": kinds, "value": values}))
    return Snapshot(1, {"version": 1}, (), table, np.ascontiguousarray(db))


def bench_matching(args) -> str:
    import faiss

    from threatexchange.signal_type.pdq.pdq_index import PDQIndex

    pin_one_core(args.cpu)
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else ([100_000] if args.quick else [1_000_000, 10_000_000])
    sections = [
        "### Matching (one core)",
        "",
        "Random 256-bit hashes as the database; queries: 80% database hashes with 0-30 random bits "
        "flipped, 20% random hashes; threshold 31 inclusive. Queries/s count hashes (a batch of 8 "
        "counts 8). `IndicatorIndex.match_pdq` includes the id lookup and `Match` objects, as pytx's "
        "`query` includes its result objects. Memory: process RSS growth over the build (freed "
        "heap returned first), per indicator; the hashes were already in memory (pytx: as its "
        "input list of (hex, id) tuples, which it keeps). Recall: against numpy brute force on a "
        "sample of the queries. Median of interleaved rounds; one thread everywhere.",
    ]
    for n in sizes:
        log(f"matching: {n:,} indicators")
        t0 = time.time()
        db = random_db(n, SEED + n)
        queries = make_queries(db, 4000, SEED + 1)
        qbytes = [q.tobytes() for q in queries]
        qhex = [q.hex() for q in qbytes]
        snap = snapshot_of(db)
        log(f"  data ready in {time.time() - t0:.1f}s")
        built: dict[str, dict] = {}

        def build(name, fn):
            before = rss()
            t = time.perf_counter()
            obj = fn()
            seconds = time.perf_counter() - t
            built[name] = {"obj": obj, "build_s": seconds, "rss": rss() - before}
            log(f"  built {name} in {seconds:.1f}s, RSS +{built[name]['rss'] / n:.0f} B/indicator")
            return obj

        mih = build("ours multihash", lambda: IndicatorIndex.from_snapshot(snap, MatchSettings(pdq_index="multihash")))
        flat = build("ours flat", lambda: IndicatorIndex.from_snapshot(snap, MatchSettings(pdq_index="flat")))
        faiss_mih = None
        if n <= args.faiss_mih_max:
            def _faiss():
                index = faiss.IndexBinaryMultiHash(256, 16, 16)
                index.nflip = 1
                index.add(db)
                return index
            faiss_mih = build("FAISS IndexBinaryMultiHash (before)", _faiss)
        entries = [(h, i) for i, h in enumerate(snap.table["value"].to_pylist())]
        pytx = build("pytx PDQIndex", lambda: PDQIndex(entries=entries))
        del entries

        # recall against brute force on a sample (same queries for every index)
        sample = 100 if args.quick else 300
        truth = brute_force(db, queries[:sample], THRESHOLD)

        def ids_to_pos(matches):
            return {int(m.indicator_id[1:]) for m in matches}

        recall = {}
        for name, index in (("ours multihash", mih), ("ours flat", flat)):
            got = [ids_to_pos(index.match_pdq([q])) for q in qbytes[:sample]]
            recall[name] = (sum(len(g & t) for g, t in zip(got, truth)), sum(len(g - t) for g, t in zip(got, truth)))
        got = [{m.metadata for m in pytx.query(h)} for h in qhex[:sample]]
        recall["pytx PDQIndex"] = (sum(len(g & t) for g, t in zip(got, truth)), sum(len(g - t) for g, t in zip(got, truth)))
        if faiss_mih is not None:
            lims, _, pos = faiss_mih.range_search(queries[:sample], THRESHOLD + 1)
            got = [set(pos[lims[i]:lims[i + 1]].tolist()) for i in range(sample)]
            recall["FAISS IndexBinaryMultiHash (before)"] = (sum(len(g & t) for g, t in zip(got, truth)),
                                                             sum(len(g - t) for g, t in zip(got, truth)))
        expected = sum(len(t) for t in truth)

        # throughput, interleaved
        big = n >= 5_000_000
        single = 200 if args.quick or big else 1000
        cursor = {"i": 0}

        def block(k):
            i = cursor["i"] % (len(queries) - k)
            cursor["i"] += k
            return i

        def singles(index, count):
            def run():
                i = block(count)
                for q in qbytes[i:i + count]:
                    index.match_pdq([q])
                return count
            return run

        def batches(index, size, count):
            def run():
                i = block(count)
                for j in range(i, i + count, size):
                    index.match_pdq(qbytes[j:j + size])
                return count
            return run

        def raw(index, size, count):
            def run():
                i = block(count)
                for j in range(i, i + count, size):
                    index.range_search(queries[j:j + size], THRESHOLD + 1)
                return count
            return run

        def pytx_singles(count):
            def run():
                i = block(count)
                for h in qhex[i:i + count]:
                    pytx.query(h)
                return count
            return run

        flat_count = 24 if big else 200
        methods = {
            "pytx PDQIndex.query, one hash per call": (pytx_singles(single), 1),
            "ours multihash, match_pdq one hash": (singles(mih, single), 1),
            "ours multihash, match_pdq batch of 8": (batches(mih, 8, single), 1),
            "ours multihash, range_search batch of 1000": (raw(mih._state.base.indexes["pdq"].index, 1000, 1000 if not args.quick else 200), 1),
            "ours flat, match_pdq one hash": (singles(flat, flat_count), 1),
            "ours flat, match_pdq batch of 8": (batches(flat, 8, flat_count), 1),
        }
        if faiss_mih is not None:
            methods["FAISS IndexBinaryMultiHash (before), range_search one hash"] = (raw(faiss_mih, 1, single // 2), 1)
        rates = interleaved(methods, 2 if args.quick else 3)
        base = rates["pytx PDQIndex.query, one hash per call"]
        stats = built["ours multihash"]["obj"].memory_stats()
        RESULTS.setdefault("matching", {})[n] = {
            "pytx": base, "single": rates["ours multihash, match_pdq one hash"],
            "batch8": rates["ours multihash, match_pdq batch of 8"],
            "recall": min(found / max(expected, 1) for found, _ in recall.values()),
            "extra": sum(extra for _, extra in recall.values()),
            "mih_index_bytes": stats["pdq_index"] / n, "mih_rss": built["ours multihash"]["rss"] / n,
            "flat_index_bytes": built["ours flat"]["obj"].memory_stats()["pdq_index"] / n,
            "flat_rss": built["ours flat"]["rss"] / n, "pytx_rss": built["pytx PDQIndex"]["rss"] / n,
            "flat_single": rates["ours flat, match_pdq one hash"],
        }

        def kind(name):
            if name.startswith("pytx"):
                return "pytx PDQIndex"
            if name.startswith("FAISS"):
                return "FAISS IndexBinaryMultiHash (before)"
            return "ours multihash" if "multihash" in name else "ours flat"

        rows = []
        for name, r in rates.items():
            info = built[kind(name)]
            found, extra = recall[kind(name)]
            stats = ""
            if kind(name).startswith("ours"):
                st = info["obj"].memory_stats()
                stats = f"{st['pdq_index'] / n:.0f} + {st['ids'] / n:.0f} ids + {st['categories'] / n:.0f}"
            rows.append([
                name, fmt(r), fmt(r / base, 1) + "x", f"{found / max(expected, 1):.4f}" + (f" (+{extra} extra)" if extra else ""),
                f"{info['rss'] / n:.0f}", stats, f"{info['build_s']:.1f}",
            ])
        sections += [
            "",
            f"**{n:,} indicators** ({sample} queries checked against brute force: {expected} pairs within 31 bits)",
            "",
            table(["", "queries/s", "vs pytx", "recall", "RSS B/indicator", "memory_stats B/ind (index + ids + cat.)",
                   "build s"], rows),
        ]
        del mih, flat, faiss_mih, pytx, built, snap
        gc.collect()
    return "\n".join(sections)
