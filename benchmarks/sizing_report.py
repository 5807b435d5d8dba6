"""The markdown of the sizing benchmark (``benchmarks.bench_sizing``): the table of a run's results
(``markdown``, also what ``--from-json`` renders) and its helpers (``human``, ``fmt``, ``machine``).
``bench_sizing`` re-exports every name.
"""
from __future__ import annotations

import os
import platform
from typing import Optional

from benchmarks.machine import cpu_model, memory_gib
from benchmarks.sizing_snapshot import MB


def human(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 and n % 1_000_000 == 0 else f"{n // 1000}k"


def fmt(x: Optional[float], digits: int = 0) -> str:
    return "" if x is None else f"{x:,.{digits}f}"


def machine() -> str:
    import apache_beam
    import faiss
    import numpy
    import pyarrow

    cpu = cpu_model(platform.processor() or "?")
    mem = memory_gib()
    return (f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, Python {platform.python_version()}, "
            f"apache-beam {apache_beam.__version__}, faiss-cpu {faiss.__version__}, pyarrow {pyarrow.__version__} "
            f"(pool: {pyarrow.default_memory_pool().backend_name}), numpy {numpy.__version__}")


# --------------------------------------------------------------------------- markdown


def markdown(res: dict, cmd: str) -> str:
    b = res["baseline"]
    pipe, tf = b["pipeline"]["rss"], b["tf"]["rss"]
    rows = []

    def row(component, n, rss, inc, per_million, peak, note=""):
        rows.append([component, n, fmt(rss), fmt(inc) if inc is not None else "", per_million, fmt(peak) if peak else "",
                     note])

    row("Python 3.11 interpreter", "", b["python"]["rss"], None, "", None)
    row("+ `import apache_beam`", "", b["beam"]["rss"], b["beam"]["rss"] - b["python"]["rss"], "", None)
    row("+ Beam SDK worker (`sdk_worker_main`)", "", b["sdk_worker"]["rss"], b["sdk_worker"]["rss"] - b["beam"]["rss"], "",
        None)
    row("+ pipeline modules, FAISS, pyarrow, pdqhash (no TF)", "", pipe, pipe - b["sdk_worker"]["rss"], "", None,
        "TensorFlow imported by them: " + ("yes" if b["pipeline"]["tf_in_pipeline"] else "no"))
    row("+ TensorFlow + Keras imported", "", tf, tf - pipe, "", None)
    def marginal(series, key, r):
        """MB per million from the previous size of the same series (fixed costs cancel)."""
        prev = [p for p in series if p[key] < r[key] and p.get("mode") == r.get("mode")]
        if not prev:
            return ""
        p = max(prev, key=lambda p: p[key])
        return f" (marginal {((r['rss'] - r['base']) - (p['rss'] - p['base'])) / ((r[key] - p[key]) / 1e6):,.0f})"

    for r in res["pdq"]:
        n = r["n_items"]
        inc = r["rss"] - r["base"]
        stats = r["stats"]
        struct = sum(stats.values()) / MB
        note = (f"as loaded +{r['raw'] - r['base']:,.0f}; index structures {struct:,.0f} MB (pdq {stats['pdq_index'] / MB:,.0f}, "
                f"md5+sha256 {(stats['md5_index'] + stats['sha256_index']) / MB:,.0f}, ids {stats['ids'] / MB:,.0f}); load {r['load_s']:.1f} s; "
                f"{r['disk_mb']:,.0f} MB on disk")
        if "swap_peak" in r:
            note += (f"; full reload with the old index serving: peak +{r['swap_peak'] - r['base']:,.0f} MB "
                     f"({r['swap_s']:.1f} s)")
        row(f"PDQ snapshot, `{r['mode']}` (N PDQ + N MD5 + N SHA-256 rows)", human(n), r["rss"], inc,
            f"{inc / (n / 1e6):,.0f}{marginal(res['pdq'], 'n_items', r)}", r["peak"] - r["base"], note)
    for r in res["embedding"]:
        n = r["n_rows"]
        inc = r["rss"] - r["base"]
        note = (f"as loaded +{r['raw'] - r['base']:,.0f}; index structures {sum(r['stats'].values()) / MB:,.0f} MB "
                f"(vectors + rows {r['stats']['embedding_index'] / MB:,.0f}); load {r['load_s']:.1f} s; "
                f"{r['disk_mb']:,.0f} MB on disk")
        if "swap_peak" in r:
            note += f"; full reload with the old index serving: peak +{r['swap_peak'] - r['base']:,.0f} MB"
        row("embedding snapshot (N rows, 128-d float32)", human(n), r["rss"], inc,
            f"{inc / (n / 1e6):,.0f}{marginal(res['embedding'], 'n_rows', r)}", r["peak"] - r["base"], note)
    names = {"grooming": "grooming model", "embedding": "image embedding model", "classifier": "new-material classifier",
             "grooming,embedding,classifier": "all three models"}
    for which, m in res["models"].items():
        row(f"{names[which]}, loaded + first inference (over the TF baseline)", "", m["rss"], m["rss"] - m["base"], "",
            m["peak"] - m["base"], f"as loaded +{m['raw'] - m['base']:,.0f}")
    for w in res["worker"]:
        row("**one worker process**: TF baseline + PDQ snapshot (multihash) + all three models", human(w["n_items"]),
            w["rss"], w["rss"] - w["base"], "", w["peak"] - w["base"],
            f"total RSS {w['rss']:,.0f} MB settled, {w['raw']:,.0f} as loaded, peak {w['peak']:,.0f}")
    for kind, m in res["media"].items():
        label = {"jpeg3mp": "working set: one 3 MP JPEG through HashMedia",
                 "png49mp": "working set: one 49 MP PNG through HashMedia (max_pixels 50 MP)"}[kind]
        row(label, "", None, None, "", m["peak"] - m["base"], f"{m['bytes'] / 1e6:.1f} MB file; transient, per busy thread")
    head = ["component", "N", "RSS MB (settled)", "increment MB", "MB per million", "peak increment MB", "notes"]
    lines = ["| " + " | ".join(head) + " |", "|---|---:|---:|---:|---:|---:|---|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    out = "\n".join(lines)
    out += f"\n\nMachine: {res['machine']}. Reproduce: `{cmd}` ({res['minutes']:.0f} min here)."
    if res["skipped"]:
        out += "\n\nNot measured: " + "; ".join(res["skipped"]) + "."
    return out
