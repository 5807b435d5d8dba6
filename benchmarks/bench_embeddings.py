"""Embedding index at scale: exact (FAISS ``IndexFlatIP``) against approximate (``IndexIVFFlat``,
``IndexHNSWFlat``) search, through :class:`csadetect.signals.embedding.VectorIndex` (the index
``EmbeddingIndex`` builds per model version) with the settings ``match.embedding_*``.

Data (benign, generated, fixed seeds): unit vectors of the reference embedding model's dimension
(``csadetect/models/reference/embedding/metadata.json``: 128) laid out as ``indicators from-media``
writes them: every known image is 4 rows, the image and 3 views at cosine 0.97-0.995 of it
(``embedding_views``: a crop and two rotations). Queries are never rows and never train IVF:

* near-duplicates: a row moved to cosine 0.97-1.0 of it (about half at or above the model's
  calibrated threshold, 0.9835; many also meet the row's sibling views);
* random unit vectors (they meet nothing; a wrong hit would show).

Two query sets of each: *tuning* (picks the parameter a mode needs for recall >= 0.99) and
*held-out* (every recall in the tables). Recall = (query, row) pairs with similarity >= threshold
that the index returns / those exact search returns; approximate indexes compute exact inner
products for the rows they visit, so they never return a pair exact search does not.

Latency on one thread (``faiss.omp_set_num_threads(1)``), as the calling thread's CPU time (the
machine is shared; wall time in brackets): one vector per call, one image per call (4 vectors: a
picture and its views, as ``IndicatorIndex.match_image`` asks), and batches of 256 vectors;
builds on all cores (wall time). Memory: ``VectorIndex.nbytes`` (what ``memory_stats``
reports) and the process RSS growth over the build, per row.

    python -m benchmarks.bench_embeddings                    # 20k, 0.1M, 1M, 10M; writes benchmarks/embeddings.md
    python -m benchmarks.bench_embeddings --sizes 1000000    # one size (the others' numbers are kept from .data/embeddings.json)
    python -m benchmarks.bench_embeddings --quick            # 100k rows, smoke run, no write
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import faiss
import numpy as np
import pyarrow as pa

from benchmarks.bench_sizing import MB, machine, settle
from benchmarks.machine import log
from csadetect.config.settings import MatchSettings
from csadetect.models.loader import REFERENCE_DIR
from csadetect.signals.embedding import (
    APPROX_MIN_ROWS,
    HNSW_EF_CONSTRUCTION,
    HNSW_M,
    EmbeddingIndex,
    VectorIndex,
    embedding_value,
    ivf_nlist,
)

ROOT = Path(__file__).resolve().parent.parent
SEED = 20241203
META = json.loads((REFERENCE_DIR / "embedding" / "metadata.json").read_text())
DIM, THRESHOLD = int(META["dim"]), float(META["threshold"])
NPROBES = (1, 2, 4, 8, 16, 32, 64)
EF_SEARCHES = (16, 32, 64, 128, 256)
TARGET_RECALL = 0.99  # the issue's target; what the tables' tuning picks ask of the tuning queries
# What the defaults ask of the tuning queries: half a point of margin, because a tuning set holds only
# ~400-800 pairs and picks at 0.99 fell below 0.99 on the held-out set in the first runs (see the tables).
DEFAULT_TUNING_RECALL = 0.995
# Budget of one image's lookup (4 vectors) on one core: the embedding model's own CPU time per image
# at the pipeline's batch size (benchmarks/models.md: 1.59 ms, batch 256). An exact search that
# costs more than the model that made the vectors is "over budget".
BUDGET_MS = 1.6


def rss() -> int:
    """Resident set size in bytes, after returning freed heap to the OS (bench_sizing.settle)."""
    return int(settle() * MB)


def table(headers: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|"]
    return "\n".join(out + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


# --------------------------------------------------------------------------- data


def _unit(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def near(rng, x: np.ndarray, cos: np.ndarray) -> np.ndarray:
    """Unit vectors at cosine ``cos`` of the unit rows ``x`` (a random direction orthogonal to each)."""
    u = rng.standard_normal(x.shape, dtype=np.float32)
    u -= (u * x).sum(axis=1, keepdims=True) * x
    _unit(u)
    c = cos.astype(np.float32)[:, None]
    return _unit(c * x + np.sqrt(1 - c * c) * u)


def database(n: int) -> np.ndarray:
    """``n`` rows (a multiple of 4): per known image, the image then its 3 views; float32 unit rows."""
    out = np.empty((n, DIM), dtype=np.float32)
    images_per_chunk = 250_000
    for start in range(0, n // 4, images_per_chunk):
        rng = np.random.default_rng([SEED, n, start])
        k = min(images_per_chunk, n // 4 - start)
        block = out[4 * start:4 * (start + k)].reshape(k, 4, DIM)
        block[:, 0] = _unit(rng.standard_normal((k, DIM), dtype=np.float32))
        for v in (1, 2, 3):
            block[:, v] = near(rng, block[:, 0], rng.uniform(0.97, 0.995, k))
    return out


def queries(db: np.ndarray, n_near: int, n_random: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng([SEED, len(db), seed])
    q = near(rng, db[rng.integers(0, len(db), n_near)], rng.uniform(0.97, 1.0, n_near))
    return np.concatenate([q, _unit(rng.standard_normal((n_random, DIM), dtype=np.float32))])


# --------------------------------------------------------------------------- measuring


def pairs(ix: VectorIndex, q: np.ndarray) -> np.ndarray:
    """(query, position) pairs at or above the threshold, as query * 2**32 + position."""
    qi, pos, _ = ix.search(q, THRESHOLD)
    return qi.astype(np.int64) << 32 | pos.astype(np.int64)


def recall(found: np.ndarray, exact: np.ndarray) -> tuple[float, int]:
    extra = int((~np.isin(found, exact)).sum())
    return (float(np.isin(exact, found).mean()) if len(exact) else 1.0), extra


def latency(ix: VectorIndex, q: np.ndarray, per_call: int, max_s: float = 3.0, max_calls: int = 400) -> dict:
    """One thread: CPU ms per call of ``per_call`` vectors (median, p95; the thread's CPU time, which
    other load on the machine does not inflate) and the median wall ms, over the held-out queries."""
    faiss.omp_set_num_threads(1)
    cpu, wall = [], []
    t_end = time.perf_counter() + max_s
    for i in range(0, len(q) - per_call + 1, per_call):
        c, t = time.thread_time(), time.perf_counter()
        ix.search(q[i:i + per_call], THRESHOLD)
        cpu.append(time.thread_time() - c)
        wall.append(time.perf_counter() - t)
        if len(cpu) >= max_calls or (len(cpu) >= 5 and time.perf_counter() > t_end):
            break
    faiss.omp_set_num_threads(os.cpu_count())
    cpu.sort()
    return {"median_ms": 1000 * statistics.median(cpu), "p95_ms": 1000 * cpu[int(0.95 * (len(cpu) - 1))],
            "wall_ms": 1000 * statistics.median(wall), "calls": len(cpu)}


def throughput(ix: VectorIndex, q: np.ndarray, batch: int = 256, max_s: float = 3.0) -> float:
    """One thread: vectors per CPU second in calls of ``batch``."""
    faiss.omp_set_num_threads(1)
    done, t0, c0 = 0, time.perf_counter(), time.thread_time()
    while True:
        for i in range(0, len(q) - batch + 1, batch):
            ix.search(q[i:i + batch], THRESHOLD)
            done += batch
            if time.perf_counter() - t0 > max_s:
                break
        if time.perf_counter() - t0 > max_s or done >= 4 * len(q):
            break
    faiss.omp_set_num_threads(os.cpu_count())
    return done / (time.thread_time() - c0)


def measure(name: str, ix: VectorIndex, held: np.ndarray, exact_held: np.ndarray, build_s: float, rss_b: int,
            n: int, param: str = "") -> dict:
    faiss.omp_set_num_threads(os.cpu_count())
    r, extra = recall(pairs(ix, held), exact_held)
    row = {"mode": name, "param": param, "recall": r, "extra": extra, "build_s": build_s,
           "nbytes_per_row": ix.nbytes / n, "rss_per_row": rss_b / n,
           "one": latency(ix, held, 1), "image": latency(ix, held, 4), "batch_vps": throughput(ix, held)}
    log(f"  {name} {param}: recall {r:.4f} (+{extra}), 1 vector {row['one']['median_ms']:.3f} ms, "
        f"image {row['image']['median_ms']:.3f} ms, batch {row['batch_vps']:,.0f} vectors/s")
    return row


def build(kind: str, db: np.ndarray, settings: MatchSettings) -> tuple[VectorIndex, float, int]:
    faiss.omp_set_num_threads(os.cpu_count())
    before = rss()
    t = time.perf_counter()
    ix = VectorIndex(db, settings, kind)
    seconds = time.perf_counter() - t
    grown = rss() - before
    log(f"  built {kind} in {seconds:.1f} s ({ix.nbytes / len(db):.0f} B/row, RSS +{grown / len(db):.0f} B/row)")
    return ix, seconds, grown


def parse_cost(db: np.ndarray, n: int) -> dict:
    """Building through ``EmbeddingIndex`` from the snapshot's value column (base64 text, parsed
    per row) on the first ``n`` rows: seconds, and how much of it is parsing."""
    values = pa.chunked_array([pa.array([embedding_value(v, META["version"]) for v in db[:n]])])
    t = time.perf_counter()
    ix = EmbeddingIndex(values, np.arange(n), MatchSettings(embedding_index="flat"))
    total = time.perf_counter() - t
    del ix
    t = time.perf_counter()
    VectorIndex(db[:n], MatchSettings(), "flat")
    return {"rows": n, "total_s": total, "faiss_s": time.perf_counter() - t}


def bench_size(n: int, args) -> dict:
    log(f"{n:,} rows of {DIM} floats")
    t = time.perf_counter()
    db = database(n)
    tune = queries(db, args.queries // 2, args.queries // 6, 1)
    held = queries(db, args.queries, args.queries // 3, 2)
    log(f"  data in {time.perf_counter() - t:.1f} s ({db.nbytes / 2**30:.2f} GiB)")
    out = {"n": n, "queries": {"tuning": [args.queries // 2, args.queries // 6], "held_out": [args.queries, args.queries // 3]},
           "rows": []}

    flat, build_s, grown = build("flat", db, MatchSettings())
    faiss.omp_set_num_threads(os.cpu_count())
    exact_tune, exact_held = pairs(flat, tune), pairs(flat, held)
    out["exact_pairs"] = {"tuning": len(exact_tune), "held_out": len(exact_held)}
    log(f"  exact pairs: tuning {len(exact_tune)}, held-out {len(exact_held)}")
    out["rows"].append(measure("flat", flat, held, exact_held, build_s, grown, n))
    del flat

    if "ivf" in args.modes:
        ivf, build_s, grown = build("ivf", db, MatchSettings(embedding_index="ivf"))
        out["nlist"] = ivf_nlist(n)
        out["ivf_tuning"] = {}
        for nprobe in NPROBES:
            ivf.params = faiss.SearchParametersIVF(nprobe=min(nprobe, out["nlist"]))
            out["ivf_tuning"][nprobe] = recall(pairs(ivf, tune), exact_tune)[0]
        out["ivf_pick"] = next((p for p in NPROBES if out["ivf_tuning"][p] >= TARGET_RECALL), NPROBES[-1])
        log(f"  ivf tuning recall by nprobe: {out['ivf_tuning']} -> {out['ivf_pick']}")
        for nprobe in NPROBES:
            if nprobe >= out["ivf_pick"] // 2 and nprobe <= max(32, out["ivf_pick"]):
                ivf.params = faiss.SearchParametersIVF(nprobe=min(nprobe, out["nlist"]))
                out["rows"].append(measure("ivf", ivf, held, exact_held, build_s, grown, n, f"nprobe {nprobe}"))
        del ivf
        if n <= args.ivf4_max:  # the lists the issue suggested (4·sqrt(n)): build cost against query cost
            nlist4 = ivf_nlist(n, 4)
            faiss.omp_set_num_threads(os.cpu_count())
            before, t = rss(), time.perf_counter()
            ivf4 = VectorIndex(db, MatchSettings(embedding_index="ivf"), "ivf", nlist=nlist4)
            build_s, grown = time.perf_counter() - t, rss() - before
            log(f"  built ivf with {nlist4} lists in {build_s:.1f} s")
            out["ivf4_tuning"] = {}
            for nprobe in NPROBES:
                ivf4.params = faiss.SearchParametersIVF(nprobe=min(nprobe, nlist4))
                out["ivf4_tuning"][nprobe] = recall(pairs(ivf4, tune), exact_tune)[0]
            pick = next((p for p in NPROBES if out["ivf4_tuning"][p] >= TARGET_RECALL), NPROBES[-1])
            out["ivf4_pick"], out["nlist4"] = pick, nlist4
            ivf4.params = faiss.SearchParametersIVF(nprobe=min(pick, nlist4))
            out["rows"].append(measure(f"ivf, {nlist4:,} lists (4·sqrt(n))", ivf4, held, exact_held, build_s, grown, n,
                                       f"nprobe {pick}"))
            del ivf4

    if "hnsw" in args.modes and n <= args.hnsw_max:
        hnsw, build_s, grown = build("hnsw", db, MatchSettings(embedding_index="hnsw"))
        out["hnsw_tuning"] = {}
        for ef in EF_SEARCHES:
            hnsw.ef_search = ef
            out["hnsw_tuning"][ef] = recall(pairs(hnsw, tune), exact_tune)[0]
        out["hnsw_pick"] = next((e for e in EF_SEARCHES if out["hnsw_tuning"][e] >= TARGET_RECALL), EF_SEARCHES[-1])
        log(f"  hnsw tuning recall by efSearch: {out['hnsw_tuning']} -> {out['hnsw_pick']}")
        for ef in EF_SEARCHES:
            if out["hnsw_pick"] // 2 <= ef <= max(128, out["hnsw_pick"]):
                hnsw.ef_search = ef
                out["rows"].append(measure("hnsw", hnsw, held, exact_held, build_s, grown, n, f"efSearch {ef}"))
        del hnsw

    if n == args.parse_at:
        out["parse"] = parse_cost(db, n)
        log(f"  EmbeddingIndex from the value column: {out['parse']}")
    return out


# --------------------------------------------------------------------------- report


def _nice_floor(x: float) -> int:
    """The largest 1, 2 or 5 times a power of ten that is <= ``x``."""
    exp = 10 ** int(np.floor(np.log10(x)))
    return max(m * exp for m in (1, 2, 5) if m * exp <= x)


def _row(r: dict, mode: str, param: str):
    return next((m for m in r["rows"] if m["mode"] == mode and m["param"] == param), None)


def defaults(results: list[dict]) -> tuple[dict, list[str]]:
    """The settings the numbers give, and the lines that say why."""
    per_row = statistics.median(_row(r, "flat", "")["image"]["median_ms"] / r["n"] for r in results)
    exact_below = _nice_floor(BUDGET_MS / per_row)
    out = {"embedding_exact_below": exact_below}
    lines = [
        "## Defaults, from these numbers",
        "",
        f"- **Exact search is over budget from ~{BUDGET_MS / per_row:,.0f} rows**: one image (4 vectors) costs "
        f"{per_row * 1e6:.0f} ns of CPU per row with `IndexFlatIP` (median over the sizes; the scan reads every row, "
        f"so it grows linearly: " + ", ".join(f"{_row(r, 'flat', '')['image']['median_ms']:,.1f} ms at {r['n']:,}"
                                              for r in results) + f"). `embedding_exact_below: {exact_below:,}`.",
    ]
    for mode, key, setting, values in (("ivf", "ivf_tuning", "embedding_ivf_nprobe", NPROBES),
                                       ("hnsw", "hnsw_tuning", "embedding_hnsw_ef_search", EF_SEARCHES)):
        tuned = [r for r in results if key in r]
        if not tuned:
            continue
        picks = {r["n"]: next((v for v in values if {int(k): x for k, x in r[key].items()}[v] >= DEFAULT_TUNING_RECALL),
                              None) for r in tuned}
        pick = max(values[-1] if p is None else p for p in picks.values())
        word = "nprobe" if mode == "ivf" else "efSearch"
        out[setting] = pick
        short = [f"{n:,}" for n, p in picks.items() if p is None]
        how = (f"the smallest {word} with tuning recall >= {DEFAULT_TUNING_RECALL} at every size measured" if not short else
               f"the largest {word} measured: none reached tuning recall {DEFAULT_TUNING_RECALL} at {', '.join(short)} rows")
        held = []
        for r in tuned:
            m = _row(r, mode, f"{word} {pick}")
            if m is not None:
                held.append(f"{m['recall']:.4f} at {r['n']:,} ({m['image']['median_ms']:.2f} ms per image)")
        lines.append(f"- **{mode}: `{setting}: {pick}`**, {how}; held-out recall " + "; ".join(held) + ".")
    lists = [r for r in results if "ivf4_tuning" in r and "ivf_tuning" in r]
    if lists and "embedding_ivf_nprobe" in out:
        r = lists[-1]
        one = _row(r, "ivf", f"nprobe {out['embedding_ivf_nprobe']}")
        four = next((m for m in r["rows"] if m["mode"].startswith("ivf, ")), None)
        big = [x for x in results if x["n"] > r["n"] and "nlist" in x]
        if one and four:
            within = {True: "within", False: "over"}
            text = (f"- **IVF lists: sqrt(n) (`IVF_LISTS_PER_SQRT = 1`).** At {r['n']:,} rows, 4·sqrt(n) lists "
                    f"({r['nlist4']:,}) answer an image in {four['image']['median_ms']:.2f} ms at {four['param']} "
                    f"(recall {four['recall']:.4f}; {within[four['image']['median_ms'] <= BUDGET_MS]} the {BUDGET_MS} ms "
                    f"budget) against {one['image']['median_ms']:.2f} ms with sqrt(n) "
                    f"({r['nlist']:,}) at nprobe {out['embedding_ivf_nprobe']} (recall {one['recall']:.4f}; "
                    f"{within[one['image']['median_ms'] <= BUDGET_MS]} the budget), but take "
                    f"{four['build_s'] / one['build_s']:.0f}x as long to build ({four['build_s']:.0f} s against "
                    f"{one['build_s']:.0f} s: every row is compared with every centroid, and k-means costs lists squared).")
            for x in big:
                m = _row(x, "ivf", f"nprobe {out['embedding_ivf_nprobe']}")
                if m:
                    est = four["build_s"] * x["n"] / r["n"] * np.sqrt(x["n"] / r["n"])
                    text += (f" At {x['n']:,} rows sqrt(n) lists built in {m['build_s'] / 60:.0f} min; 4·sqrt(n) would "
                             f"take ~{est / 60:.0f} min on this machine (scaled from {r['n']:,} by rows x lists).")
            text += (" The index is rebuilt whenever a worker loads a full snapshot, so the default keeps the build "
                     "cheap; a deployment that needs the lower query cost can raise `IVF_LISTS_PER_SQRT` "
                     "(csadetect/signals/embedding.py).")
            lines.append(text)
    if "embedding_ivf_nprobe" in out:
        cmp = []
        for r in results:
            flat, ivf = _row(r, "flat", ""), _row(r, "ivf", f"nprobe {out['embedding_ivf_nprobe']}")
            if r["n"] >= 1_000_000 and flat and ivf:
                cmp.append(f"at {r['n']:,} rows exact {flat['image']['median_ms']:,.0f} ms per image against ivf "
                           f"{ivf['image']['median_ms']:.2f} ms ({flat['image']['median_ms'] / ivf['image']['median_ms']:,.0f}x, "
                           f"recall {ivf['recall']:.4f}, {'within' if ivf['image']['median_ms'] <= BUDGET_MS else 'over'} "
                           "the budget)")
        if cmp:
            lines.append("- **At scale:** " + "; ".join(cmp) + ". The approximate index meets the recall target "
                         "everywhere; the per-image budget it meets up to about a million rows only with more lists "
                         "(the point above), and at 10M on this machine not at all.")
    both = [r for r in results if "hnsw_tuning" in r and "ivf_tuning" in r]
    if both and "embedding_ivf_nprobe" in out and "embedding_hnsw_ef_search" in out:
        r = both[-1]
        ivf = _row(r, "ivf", f"nprobe {out['embedding_ivf_nprobe']}")
        hnsw = _row(r, "hnsw", f"efSearch {out['embedding_hnsw_ef_search']}")
        if ivf and hnsw:
            better = "ivf" if ivf["image"]["median_ms"] <= hnsw["image"]["median_ms"] else "hnsw"
            out["auto_approximate"] = better
            lines.append(
                f"- **auto above the limit: {better}.** At {r['n']:,} rows, with the defaults: ivf {ivf['image']['median_ms']:.2f} ms "
                f"per image, built in {ivf['build_s']:.0f} s, {ivf['nbytes_per_row']:.0f} B/row; hnsw "
                f"{hnsw['image']['median_ms']:.2f} ms, built in {hnsw['build_s']:.0f} s, {hnsw['nbytes_per_row']:.0f} B/row. "
                "IVF also keeps the range search (every row at or above the threshold in the probed lists, "
                "no top-k), and HNSW was not built at 10M (its build would take over an hour on this machine).")
    return out, lines


def _ms(lat: dict) -> str:
    """``median / p95 (wall median)``; p95 and wall are absent from sizes rebuilt from a run's log."""
    if lat.get("p95_ms") is None:
        return f"{lat['median_ms']:.3f} / n/a"
    return f"{lat['median_ms']:.3f} / {lat['p95_ms']:.3f} ({lat['wall_ms']:.3f})"


def report(results: list[dict], elapsed: float) -> str:
    lines = [
        "# Embedding index: exact against approximate FAISS search",
        "",
        f"Reproduce: `nice -n 10 .venv/bin/python -m benchmarks.bench_embeddings` (writes this file; ~{elapsed / 60:.0f} min). "
        f"Machine: {machine()}; shared with other work, so absolute times move with the load.",
        "",
        __doc__.split("\n\n", 1)[1].split("    python -m")[0].strip(),
        "",
        f"Model dimension {DIM}, threshold {THRESHOLD} (`{META['version']}`). Budget of one image's lookup: "
        f"{BUDGET_MS} ms on one core (the embedding model's own CPU time per image at the pipeline's batch size, "
        "benchmarks/models.md). IVF lists: `ivf_nlist(n)` = sqrt(n) (capped at n/39), trained by k-means "
        f"(10 iterations) on a seeded sample of 40 rows per list; HNSW: M = {HNSW_M}, efConstruction = {HNSW_EF_CONSTRUCTION}. "
        "The tuning column is the smallest parameter whose recall on the *tuning* queries is >= 0.99; every figure in the "
        "tables is on the held-out queries.",
        "",
    ]
    for r in results:
        n = r["n"]
        lines += [f"## {n:,} rows ({n * DIM * 4 / 2**30:.2f} GiB of float32)", "",
                  f"Held-out queries: {r['queries']['held_out'][0]} near-duplicates + {r['queries']['held_out'][1]} random "
                  f"({r['exact_pairs']['held_out']} exact pairs at >= {THRESHOLD}); tuning: "
                  f"{r['queries']['tuning'][0]} + {r['queries']['tuning'][1]} ({r['exact_pairs']['tuning']} pairs)."]
        if "nlist" in r:
            lines += ["", f"IVF: {r['nlist']:,} lists; tuning recall by nprobe: "
                      + ", ".join(f"{k}: {v:.4f}" for k, v in r["ivf_tuning"].items()) + f" -> nprobe {r['ivf_pick']}."]
        if "ivf4_tuning" in r:
            lines += ["", f"IVF with {r['nlist4']:,} lists (4·sqrt(n)): tuning recall by nprobe: "
                      + ", ".join(f"{k}: {v:.4f}" for k, v in r["ivf4_tuning"].items()) + f" -> nprobe {r['ivf4_pick']}."]
        if "hnsw_tuning" in r:
            lines += ["", "HNSW tuning recall by efSearch: "
                      + ", ".join(f"{k}: {v:.4f}" for k, v in r["hnsw_tuning"].items()) + f" -> efSearch {r['hnsw_pick']}."]
        rows = []
        for m in r["rows"]:
            rows.append([f"{m['mode']} {m['param']}".strip(), f"{m['recall']:.4f}" + (f" (+{m['extra']} wrong)" if m["extra"] else ""),
                         _ms(m["one"]), _ms(m["image"]),
                         "yes" if m["image"]["median_ms"] <= BUDGET_MS else "**no**",
                         f"{m['batch_vps']:,.0f}", f"{m['build_s']:.1f}", f"{m['nbytes_per_row']:.0f}",
                         f"{m['rss_per_row']:.0f}"])
        lines += ["", table(["index", "recall", "1 vector: CPU ms median / p95 (wall median)",
                             "1 image (4 vectors): CPU ms median / p95 (wall median)",
                             f"image within {BUDGET_MS} ms", "batch of 256: vectors per CPU s", "build s (wall)", "nbytes B/row",
                             "RSS B/row"], rows)]
        skipped = [what for what, key in (("HNSW", "hnsw_tuning"), ("IVF with 4·sqrt(n) lists", "ivf4_tuning"))
                   if key not in r]
        if skipped:
            lines += ["", f"Not built at this size: {' and '.join(skipped)} (`--hnsw-max`, `--ivf4-max`): on this "
                      "2-core machine their builds would take far longer than the rest of the run (HNSW's build time "
                      "grows a little faster than the row count; IVF's with rows x lists, and 4·sqrt(n) lists at 10M "
                      "means 4x the lists of the IVF row above). The whole float32 matrix is held in memory with "
                      "one index at a time (flat, then IVF): peak about twice the matrix."]
        if r.get("from_log"):
            lines += ["", "This size's figures were read back from the run's log (`benchmarks/.data/embeddings-10m.log`): "
                      "the run measured everything, then its report step failed on a bug fixed since, before it "
                      "saved the raw numbers; the log holds medians, not p95 or wall times (n/a), and recall "
                      "to 4 places."]
        if "parse" in r:
            p = r["parse"]
            lines += ["", f"Building through `EmbeddingIndex` from the snapshot's value column (base64 text parsed "
                      f"row by row) at {p['rows']:,} rows: {p['total_s']:.1f} s, of which FAISS {p['faiss_s']:.1f} s."]
        lines.append("")
    lines += defaults(results)[1] + [""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_embeddings", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="20000,100000,1000000,10000000", help="row counts (multiples of 4)")
    ap.add_argument("--modes", default="ivf,hnsw", help="approximate indexes to measure beside flat")
    ap.add_argument("--hnsw-max", type=int, default=1_000_000, help="largest size HNSW is built for")
    ap.add_argument("--ivf4-max", type=int, default=1_000_000, help="largest size IVF with 4·sqrt(n) lists is built for")
    ap.add_argument("--queries", type=int, default=1200, help="held-out near-duplicate queries (tuning: half)")
    ap.add_argument("--parse-at", type=int, default=1_000_000, help="size at which the EmbeddingIndex build path is timed")
    ap.add_argument("--quick", action="store_true", help="100k rows, no write")
    ap.add_argument("--report-only", type=float, default=0, metavar="MINUTES",
                    help="only rewrite the markdown from the raw numbers (MINUTES: the runs' total time, for its first line)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "embeddings.md"))
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / ".data" / "embeddings.json"), help="raw numbers")
    args = ap.parse_args(argv)
    sizes = [100_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    if args.quick:
        args.parse_at = 100_000
    args.modes = args.modes.split(",")
    if any(s % 4 or s < APPROX_MIN_ROWS for s in sizes):
        print(f"error: sizes must be multiples of 4 and at least {APPROX_MIN_ROWS}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    if args.report_only:  # rewrite the markdown from the raw numbers of earlier runs
        results = json.loads(Path(args.json).read_text())
        Path(args.out).write_text(report(results, args.report_only * 60))
        print(json.dumps(defaults(results)[0]))
        return 0
    results = [bench_size(n, args) for n in sizes]
    if not args.quick and Path(args.json).exists():  # keep the sizes not run this time
        kept = [r for r in json.loads(Path(args.json).read_text()) if r["n"] not in sizes]
        results = sorted(kept + results, key=lambda r: r["n"])
    text = report(results, time.perf_counter() - t0)
    print(text)
    if not args.quick:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=1))
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
