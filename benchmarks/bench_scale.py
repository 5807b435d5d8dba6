"""The indicator database at scale (issue 14): memory-mapped snapshots of 1M, 10M and 100M PDQ
indicators, loaded and matched, side by side with Meta's threatexchange (pytx) ``PDQIndex``.

Every row runs in a fresh child process (``--child ...``); memory comes from ``/proc``: ``VmHWM``
(peak resident, reset just before the load), ``VmRSS`` and ``Pss`` (proportional set size, from
``/proc/PID/smaps_rollup``: a page shared by k processes counts 1/k in each, so the PSS of all
workers adds up to the machine's real memory, which RSS does not).

* **snapshot**: a signed full snapshot of N random PDQ hashes (ids ``pdq-000000001`` ...), generated
  chunk by chunk into a mapped Arrow file and built by ``csadetect.indicators.snapshot.build_snapshot``
  (:func:`write_snapshot`). Cached under ``benchmarks/.data/scale/``.
* **load**: ``load_index`` as a worker calls it: manifest signature, SHA-256 of every mapped
  file, then the files mapped read-only; nothing is built. Seconds, peak and settled RSS, PSS.
* **lookups**: ``IndicatorIndex.match_pdq`` with one hash per call (queries: 80% database hashes
  with 0-30 random bits flipped, 20% random hashes; threshold 31 inclusive), the first pass over
  cold pages and a second warm one, one thread; recall and false hits against FAISS brute force
  (``IndexBinaryFlat``, chunk by chunk) on a sample.
* **vs pytx** (1M and 10M): ``PDQIndex`` built from the same hashes in the same child, and both
  queried with the same hashes in interleaved rounds (median), so the ratio holds under other load.
* **4 workers** (10M): four children map the same snapshot and run lookups; the index's PSS is
  each child's PSS after minus before the load, summed over the four, read while all four hold it.

    python -m benchmarks.bench_scale                          # 1M and 10M, vs pytx, 4 workers
    python -m benchmarks.bench_scale --sizes 100000000 --no-pytx --workers 0   # the 100M row
    python -m benchmarks.bench_scale --quick                  # 200k, a smoke run (< 2 min)

The markdown table goes to stdout (paste it into ``benchmarks/README.md``); raw numbers to
``--json`` (default ``benchmarks/.data/scale/results.json``), merged by size across runs.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from benchmarks.bench_sizing import (MB, _chunk_table, _hex, _ids, log, peak_mb, reset_peak,
                                     rss_mb, settle)
from benchmarks.cache import cached

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "benchmarks" / ".data" / "scale"
SEED = 20261203
CHUNK = 1 << 20  # rows per generated chunk, and per chunk of codes in the FAISS reference search
THRESHOLD = 31


def pss_mb(pid: str = "self") -> dict:
    """``{"pss": .., "pss_anon": .., "pss_file": ..}`` in MB from /proc/PID/smaps_rollup."""
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as fh:
        for line in fh:
            name, _, rest = line.partition(":")
            if name in ("Pss", "Pss_Anon", "Pss_File"):
                out[name.lower()] = int(rest.split()[0]) * 1024 / MB
    return out


# --------------------------------------------------------------------------- snapshot


def write_snapshot(db_dir: Path, private_key: Path, n: int, seed: int = SEED) -> dict:
    """Version 1 of a full snapshot of ``n`` random PDQ rows, built by ``build_snapshot`` itself as
    ``indicators build`` builds one: the rows are generated chunk by chunk into a spilled table (an
    Arrow file in ``TMPDIR``, mapped: the input of 100M rows is not held in memory), then written
    and signed."""
    import numpy as np

    from csadetect.indicators import snapshot as snap
    from csadetect.indicators.snapshot_tables import spilled

    rng = np.random.default_rng(seed)

    def chunks():
        for start in range(0, n, CHUNK):
            k = min(CHUNK, n - start)
            codes = rng.integers(0, 256, (k, 32), dtype=np.uint8)
            yield _chunk_table(_ids("pdq-", start, k), "pdq", _hex(codes))

    table = spilled(chunks())
    log(f"    {n:,} rows generated; building")
    t0, last = time.time(), [time.time()]

    def progress(done: int) -> None:
        if time.time() - last[0] >= 30:
            last[0] = time.time()
            log(f"    {done:,} rows written ({time.time() - t0:.0f}s)")

    return snap.build_snapshot(table, str(db_dir), str(private_key), progress=progress)


def snapshot(n: int) -> dict:
    from csadetect.core.keys import generate_keypair

    def build(work: Path) -> dict:
        generate_keypair(work / "keys", overwrite=True)
        log(f"  writing a snapshot of {n:,} PDQ indicators")
        t0 = time.time()
        manifest = write_snapshot(work / "db", work / "keys" / "private.pem", n)
        data = {"db": str(work / "db"), "public_key": str(work / "keys" / "public.pem"), "write_s": time.time() - t0,
                "bytes": {k: v["bytes"] for k, v in manifest["files"].items()}}
        log(f"  wrote it in {data['write_s']:.0f}s ({sum(data['bytes'].values()) / MB:,.0f} MB on disk)")
        return data

    return cached(DATA / f"pdq-{n}", {"n": n, "seed": SEED, "v": 3}, build)


# --------------------------------------------------------------------------- children


def _queries(codes, count: int, seed: int):
    """80% database hashes with 0-30 random bits flipped, 20% random hashes."""
    import numpy as np

    rng = np.random.default_rng(seed)
    near = int(count * 0.8)
    picks = np.sort(rng.integers(0, len(codes), near))
    out = np.empty((count, 32), dtype=np.uint8)
    out[:near] = codes[picks]
    for i in range(near):
        bits = np.unpackbits(out[i])
        bits[rng.choice(256, int(rng.integers(0, 31)), replace=False)] ^= 1
        out[i] = np.packbits(bits)
    out[near:] = rng.integers(0, 256, (count - near, 32), dtype=np.uint8)
    return out[rng.permutation(count)]


def _brute(codes, queries) -> list[set]:
    """{positions within THRESHOLD} per query, by FAISS brute force over the codes in chunks."""
    import faiss
    import numpy as np

    found = [set() for _ in queries]
    step = 1 << 22
    for start in range(0, len(codes), step):
        flat = faiss.IndexBinaryFlat(256)
        flat.add(np.ascontiguousarray(codes[start:start + step]))
        lims, _, pos = flat.range_search(queries, THRESHOLD + 1)
        for i in range(len(queries)):
            found[i].update((pos[lims[i]:lims[i + 1]] + start).tolist())
    return found


def _rate(fn, queries) -> float:
    t = time.perf_counter()
    for q in queries:
        fn(q)
    return len(queries) / (time.perf_counter() - t)


def _load(db: str, public_key: str):
    import faiss

    faiss.omp_set_num_threads(1)
    from csadetect.indicators.index import load_index

    settle()
    before = {"rss": rss_mb(), **pss_mb()}
    reset_peak()
    t = time.perf_counter()
    index = load_index(db, public_key)
    seconds = time.perf_counter() - t
    peak = peak_mb()
    return index, {"load_s": seconds, "before": before, "peak_mb": peak - before["rss"],
                   "rss_mb": settle() - before["rss"], "pss_mb": pss_mb()["pss"] - before["pss"]}


def child_load(db: str, public_key: str, count: int) -> dict:
    index, out = _load(db, public_key)
    codes = index._state.base.indexes["pdq"].index.codes
    queries = _queries(codes, count, SEED + 1)
    qbytes = [q.tobytes() for q in queries]
    out["cold_qps"] = _rate(lambda q: index.match_pdq([q]), qbytes)
    out["warm_qps"] = _rate(lambda q: index.match_pdq([q]), qbytes)
    out["after_queries"] = pss_mb()
    out["after_queries_rss_mb"] = rss_mb()
    sample = queries[:200]
    truth = _brute(codes, sample)
    got = [{int(m.indicator_id[4:]) - 1 for m in index.match_pdq([q.tobytes()])} for q in sample]
    out["pairs"] = sum(map(len, truth))
    out["recall"] = sum(len(g & t) for g, t in zip(got, truth)) / max(1, out["pairs"])
    out["false_hits"] = sum(len(g - t) for g, t in zip(got, truth))
    return out


def child_compare(db: str, public_key: str, count: int, rounds: int) -> dict:
    """Ours (mapped) and pytx's PDQIndex on the same hashes, interleaved rounds of single-hash calls."""
    import numpy as np
    from threatexchange.signal_type.pdq.pdq_index import PDQIndex

    index, out = _load(db, public_key)
    codes = index._state.base.indexes["pdq"].index.codes
    settle()
    before = rss_mb()
    t = time.perf_counter()
    entries = []
    for start in range(0, len(codes), CHUNK):
        chunk = np.asarray(codes[start:start + CHUNK])
        entries += zip(_hex(chunk).to_pylist(), range(start, start + len(chunk)))
    pytx = PDQIndex(entries=entries)
    out["pytx_build_s"] = time.perf_counter() - t
    del entries
    out["pytx_rss_mb"] = settle() - before
    queries = _queries(codes, count * rounds, SEED + 2)
    qbytes, qhex = [q.tobytes() for q in queries], [q.tobytes().hex() for q in queries]
    ours, theirs = [], []
    for r in range(rounds):  # interleaved: both see the same load
        part = slice(r * count, (r + 1) * count)
        ours.append(_rate(lambda q: index.match_pdq([q]), qbytes[part]))
        theirs.append(_rate(pytx.query, qhex[part]))
    out["ours_qps"], out["pytx_qps"] = statistics.median(ours), statistics.median(theirs)
    sample = queries[:200]
    truth = _brute(codes, sample)
    got = [{m.metadata for m in pytx.query(q.tobytes().hex())} for q in sample]
    out["pytx_recall"] = sum(len(g & t) for g, t in zip(got, truth)) / max(1, sum(map(len, truth)))
    return out


def child_worker(db: str, public_key: str, count: int, ready: str, done: str) -> dict:
    index, out = _load(db, public_key)
    codes = index._state.base.indexes["pdq"].index.codes
    qbytes = [q.tobytes() for q in _queries(codes, count, SEED + os.getpid())]
    out["qps"] = _rate(lambda q: index.match_pdq([q]), qbytes)
    Path(ready).write_text(json.dumps(out))
    while not Path(done).exists():
        time.sleep(0.2)
    return out


def child_main(args: list[str]) -> int:
    mode, rest = args[0], args[1:]
    if mode == "load":
        result = child_load(rest[0], rest[1], int(rest[2]))
    elif mode == "compare":
        result = child_compare(rest[0], rest[1], int(rest[2]), int(rest[3]))
    elif mode == "worker":
        result = child_worker(rest[0], rest[1], int(rest[2]), rest[3], rest[4])
    else:
        raise SystemExit(f"unknown child mode {mode}")
    print(json.dumps(result))
    return 0


def run_child(*args: str, timeout: int = 7200) -> dict:
    proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_scale", "--child", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"child {args[0]} failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def workers(db: str, public_key: str, k: int, count: int) -> dict:
    """k children map one snapshot; PSS read from here while all of them hold it."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        done = os.path.join(tmp, "done")
        procs = []
        for i in range(k):
            ready = os.path.join(tmp, f"ready-{i}")
            cmd = [sys.executable, "-m", "benchmarks.bench_scale", "--child", "worker", db, public_key, str(count),
                   ready, done]
            procs.append((subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL), ready))
        deadline = time.time() + 3600
        while not all(os.path.exists(r) for _, r in procs):
            if time.time() > deadline or any(p.poll() not in (None, 0) for p, _ in procs):
                raise RuntimeError("a worker failed or timed out")
            time.sleep(0.5)
        time.sleep(1)
        reports = [json.loads(Path(r).read_text()) for _, r in procs]
        now = [pss_mb(str(p.pid)) for p, _ in procs]
        Path(done).write_text("")
        for p, _ in procs:
            p.wait(timeout=60)
    index_pss = sum(n["pss"] - r["before"]["pss"] for n, r in zip(now, reports))
    return {"workers": k, "index_pss_mb": index_pss, "total_pss_mb": sum(n["pss"] for n in now),
            "pss_file_mb": sum(n.get("pss_file", 0) for n in now), "load_s": max(r["load_s"] for r in reports),
            "qps_each": [r["qps"] for r in reports], "baseline_pss_mb": [r["before"]["pss"] for r in reports]}


# --------------------------------------------------------------------------- report


def human(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 else f"{n // 1000}k"


def markdown(results: dict) -> str:
    lines = [
        "| indicators | snapshot on disk | load s | load peak MB | RSS after load MB | PSS after load MB | PSS after lookups MB "
        "| lookups/s cold | lookups/s warm | recall (pairs) | false hits |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n in sorted(results, key=int):
        r = results[n].get("load")
        if not r:
            continue
        disk = sum(results[n]["snapshot"]["bytes"].values()) / MB
        after = r["after_queries"]["pss"] - r["before"]["pss"]
        lines.append(f"| {human(int(n))} | {disk:,.0f} MB | {r['load_s']:.1f} | {r['peak_mb']:,.0f} | {r['rss_mb']:,.0f} "
                     f"| {r['pss_mb']:,.0f} | {after:,.0f} | {r['cold_qps']:,.0f} | {r['warm_qps']:,.0f} "
                     f"| {r['recall']:.4f} ({r['pairs']}) | {r['false_hits']} |")
    compare = [(n, results[n]["compare"]) for n in sorted(results, key=int) if results[n].get("compare")]
    if compare:
        lines += ["", "| indicators | ours lookups/s (mapped) | pytx PDQIndex lookups/s | ratio | pytx build s | pytx RSS MB "
                  "| pytx recall |", "|---|---:|---:|---:|---:|---:|---:|"]
        for n, c in compare:
            lines.append(f"| {human(int(n))} | {c['ours_qps']:,.0f} | {c['pytx_qps']:,.1f} | {c['ours_qps'] / c['pytx_qps']:.1f}x "
                         f"| {c['pytx_build_s']:.0f} | {c['pytx_rss_mb']:,.0f} | {c['pytx_recall']:.4f} |")
    pools = [(n, results[n]["workers"]) for n in sorted(results, key=int) if results[n].get("workers")]
    if pools:
        lines += ["", "| indicators | worker processes | index PSS, all workers | total PSS, all workers | slowest load s "
                  "| lookups/s per worker |", "|---|---:|---:|---:|---:|---:|"]
        for n, w in pools:
            lines.append(f"| {human(int(n))} | {w['workers']} | {w['index_pss_mb']:,.0f} MB | {w['total_pss_mb']:,.0f} MB "
                         f"| {w['load_s']:.1f} | {', '.join(f'{q:,.0f}' for q in w['qps_each'])} |")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return child_main(argv[1:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000000,10000000")
    ap.add_argument("--quick", action="store_true", help="200k indicators, fewer queries")
    ap.add_argument("--no-pytx", action="store_true")
    ap.add_argument("--workers", type=int, default=4, help="worker processes for the shared-memory row (0: none)")
    ap.add_argument("--workers-size", type=int, default=10_000_000)
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--json", default=str(DATA / "results.json"))
    ap.add_argument("--from-json", action="store_true", help="only re-render the table of --json")
    args = ap.parse_args(argv)
    path = Path(args.json)
    results = json.loads(path.read_text()) if path.exists() else {}
    if args.from_json:
        print(markdown(results))
        return 0
    sizes = [200_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    count = 300 if args.quick else args.queries
    for n in sizes:
        data = snapshot(n)
        entry = results.setdefault(str(n), {})
        entry["snapshot"] = data
        log(f"{human(n)}: load and lookups")
        entry["load"] = run_child("load", data["db"], data["public_key"], str(count))
        log(f"  loaded in {entry['load']['load_s']:.1f}s, peak +{entry['load']['peak_mb']:.0f} MB, "
            f"warm {entry['load']['warm_qps']:,.0f} lookups/s, recall {entry['load']['recall']:.4f}")
        if not args.no_pytx and n <= 10_000_000:
            log(f"{human(n)}: side by side with pytx")
            entry["compare"] = run_child("compare", data["db"], data["public_key"], str(min(count, 500 if n > 2_000_000 else count)), "3")
            c = entry["compare"]
            log(f"  ours {c['ours_qps']:,.0f}/s, pytx {c['pytx_qps']:,.1f}/s: {c['ours_qps'] / c['pytx_qps']:.1f}x")
        if args.workers and (n == args.workers_size or args.quick):
            log(f"{human(n)}: {args.workers} worker processes")
            entry["workers"] = workers(data["db"], data["public_key"], args.workers, count)
            log(f"  index PSS over {args.workers} workers: {entry['workers']['index_pss_mb']:,.0f} MB")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=1))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
