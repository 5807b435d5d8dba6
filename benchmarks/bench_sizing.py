"""Worker memory sizing (issue 6): resident memory of one worker (SDK harness) process.

Only memory is measured here (it does not move with the CPU load of a shared machine); the
throughput figures for sizing come from ``known.md``, ``models.md`` and ``robustness.md``.

Every row is measured in a **fresh child process** (``--child ...``), from ``/proc/self/status``:
``VmRSS`` (resident now) and ``VmHWM`` (peak resident, reset through ``/proc/self/clear_refs``
just before the step measured). "settled" is the RSS after ``gc.collect()``, Arrow's
``release_unused()`` and glibc's ``malloc_trim(0)`` (freed heap handed back); "as loaded" is the
RSS straight after the step, without that; the difference is what the allocators keep cached.
Imports sit inside the functions on purpose: a child process holds exactly what its row imports.

* **baseline**: the interpreter; + ``apache_beam``; + Beam's SDK worker (``sdk_worker_main``, what
  a Dataflow/Flink SDK harness process runs); + the pipeline's own modules (``csadetect.pipelines.detect``,
  every ``transforms`` module, FAISS, pyarrow, pdqhash, PIL) without TensorFlow; + TensorFlow and
  Keras imported.
* **pdq**: a signed snapshot on disk of N known items = N PDQ + N MD5 + N SHA-256 rows (random
  hashes, ids ``pdq-000000001`` ..., as ``indicators from-media`` makes one row per hash), loaded
  by ``csadetect.indicators.index.load_index`` exactly as a worker's ``LiveIndex`` does (manifest signature
  and file checksums verified, Parquet parsed, index built) with ``match.pdq_index`` multihash or
  flat; one query afterwards. Increments are over the "pipeline (no TF)" baseline of the same
  child. ``memory_stats`` (the index's own accounting) is given alongside.
* **embedding**: a signed snapshot of N ``embedding`` rows (random L2-normalised 128-d float32,
  tagged with the reference embedding's model version), loaded the same way.
* **swap**: the peak while a full snapshot is reloaded with the old index still serving, which is
  what ``IndicatorIndex.refresh`` does when there is no delta chain from the loaded version
  (``load_snapshot`` + ``IndicatorIndex.from_snapshot`` while the old state is referenced).
* **models**: each reference model loaded with its own loader (``GroomingModel.load``,
  ``EmbeddingModel.load``, ``NewMaterialClassifier.load``) and run once (grooming: one
  conversation scored and one message encoded; embedding: 256 64x64 thumbnails in one call, as
  ``EmbedImages`` calls it; classifier: 64 embeddings), then all three in one process; increments
  over the "+ TensorFlow/Keras" baseline.
* **worker**: one whole worker process: TF baseline + PDQ snapshot (multihash) + all three models.
* **working set**: the transient peak of ``HashMedia``'s per-event work (``hash_image_with_views``
  with the preprocessing views + the 64x64 model inputs) for a 3 MP JPEG and for a 49 MP PNG (the
  ``limits.max_pixels`` guard is 50 MP): what each concurrently processing harness thread adds.

The snapshots are written by :func:`write_snapshot` in row chunks (generating a 10M-item snapshot
through ``build_snapshot`` would hold several copies of the whole table); the layout, manifest and
signature are those of ``csadetect.indicators.snapshot`` and the loader verifies them; :func:`check_writer`
(run first by every measuring invocation) builds the same rows with ``build_snapshot`` and asserts
both load to the same table and codes. Snapshots are cached under ``benchmarks/.data/sizing/``.
A size is only tried when the load peak per item of the previous size, scaled, fits in 70% of the
memory available at that moment; otherwise it is listed as not measured.

    python -m benchmarks.bench_sizing            # all sizes; ~8 min here, peak ~13 GB in one child, 1.8 GB of disk cache
    python -m benchmarks.bench_sizing --quick    # 100k only, plus baseline, models, working set (~2 min)
    python -m benchmarks.bench_sizing --sizes 100000,1000000 --embedding-sizes 100000
    python -m benchmarks.bench_sizing --allocator                 # who keeps the memory a 1M load frees
    python -m benchmarks.bench_sizing --from-json results.json    # re-render the table of a saved run

The markdown table goes to stdout (paste it into ``benchmarks/README.md``); raw numbers to
``--json`` (default ``benchmarks/.data/sizing/results.json``), saved after every step.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse
import json
import sys
import time
from pathlib import Path

from benchmarks.sizing_children import (LEVELS, _LIBC, _load_models, _status, child_baseline, child_index, child_main,
                                        child_media, child_models, child_worker, import_level, media_bytes, peak_mb,
                                        reset_peak, rss_mb, run_child, settle)
from benchmarks.sizing_report import fmt, human, machine, markdown
from benchmarks.sizing_snapshot import (ADDED_AT, CHUNK, DATA, EMBEDDING_DIM, MB, ROOT, SEED, _chunk_table, _hex, _ids,
                                        check_writer, embedding_version, generate_rows, log, publish_first_version,
                                        snapshot, write_snapshot)

# The snapshots and the shared constants (ROOT, DATA, SEED, CHUNK, MB, log ...) live in benchmarks.sizing_snapshot,
# the /proc readings, the baseline imports and the measuring children in benchmarks.sizing_children, the markdown
# table in benchmarks.sizing_report; the parent (main, allocator_check) stays here. bench_scale and bench_embeddings
# import from here, so every name is re-exported. CHUNK is rebound by check_writer in sizing_snapshot while it checks:
# the copy here is only the default, and rebinding bench_sizing.CHUNK would not reach generate_rows.
__all__ = [
    "ROOT", "DATA", "SEED", "CHUNK", "ADDED_AT", "EMBEDDING_DIM", "MB", "DEFAULT_SIZES", "DEFAULT_EMBEDDING_SIZES",
    "log",
    "_LIBC", "_status", "rss_mb", "peak_mb", "reset_peak", "settle",
    "LEVELS", "import_level", "child_baseline",
    "_hex", "_ids", "_chunk_table", "embedding_version", "generate_rows", "publish_first_version", "write_snapshot",
    "snapshot",
    "check_writer",
    "child_index", "_load_models", "child_models", "child_worker", "media_bytes", "child_media", "run_child",
    "child_main",
    "mem_available_mb", "human", "fmt", "machine", "main", "allocator_check", "markdown",
]

# A size is tried only if the load peak per item measured at the previous size, scaled, fits in 70%
# of the memory available at that moment (see main).
DEFAULT_SIZES = (100_000, 1_000_000, 10_000_000)
DEFAULT_EMBEDDING_SIZES = (100_000, 1_000_000)


# --------------------------------------------------------------------------- parent


def mem_available_mb() -> float:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    return float("inf")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        return child_main(argv[1:])
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_sizing", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="100k indicators / embedding rows only")
    ap.add_argument("--sizes", default=None, help="PDQ item counts, e.g. 100000,1000000,10000000")
    ap.add_argument("--embedding-sizes", default=None, help="embedding row counts, e.g. 100000,1000000")
    ap.add_argument("--skip-models", action="store_true")
    ap.add_argument("--skip-media", action="store_true")
    ap.add_argument("--allocator", action="store_true",
                    help="only the allocator check: who keeps the memory freed by a 1M load (Arrow's pool or glibc)")
    ap.add_argument("--json", default=str(DATA / "results.json"), help="raw results (JSON), saved after every step")
    ap.add_argument("--from-json", default=None, help="only render the markdown of a saved results file")
    args = ap.parse_args(argv)
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        print(markdown(saved, saved.get("command", "python -m benchmarks.bench_sizing")))
        return 0
    sizes = [100_000] if args.quick else list(DEFAULT_SIZES)
    emb_sizes = [100_000] if args.quick else list(DEFAULT_EMBEDDING_SIZES)
    if args.sizes:
        sizes = [int(s) for s in args.sizes.split(",") if s]
    if args.embedding_sizes is not None:
        emb_sizes = [int(s) for s in args.embedding_sizes.split(",") if s]
    started = time.time()
    DATA.mkdir(parents=True, exist_ok=True)
    if args.allocator:
        print(allocator_check())
        return 0
    check_writer()
    cmd = "python -m benchmarks.bench_sizing" + (" --quick" if args.quick else "")
    if args.sizes:
        cmd += f" --sizes {args.sizes}"
    if args.embedding_sizes is not None:
        cmd += f" --embedding-sizes {args.embedding_sizes}"

    def save():
        results["minutes"] = (time.time() - started) / 60
        Path(args.json).write_text(json.dumps(results, indent=1))

    results: dict = {"command": cmd, "machine": machine(), "baseline": {}, "pdq": [], "embedding": [],
                     "models": {}, "worker": [], "media": {}, "skipped": []}

    log("baseline")
    for level in LEVELS:
        results["baseline"][level] = run_child("baseline", level)
        log(f"  {level}: {results['baseline'][level]['rss']:.0f} MB")

    # a size is tried only if the measured peak of the previous size, scaled, fits now
    last_peak_per_item = None
    for n in sizes:
        if last_peak_per_item is not None:
            need = last_peak_per_item * n + 1024
            if need > 0.7 * mem_available_mb():
                why = f"pdq {human(n)}: projected load peak {need / 1024:.1f} GiB > 70% of the memory available then"
                results["skipped"].append(why)
                log("  skipped " + why)
                continue
        snap = snapshot(f"pdq-{n}", n, 0)
        for mode in ("multihash", "flat"):
            swap = "swap" if n <= 1_000_000 else "noswap"
            if swap == "noswap" and mode == "multihash":
                results["skipped"].append(f"the full-reload peak at {human(n)} (it adds the old index, up to its "
                                          "'as loaded' size, to the load peak; too large for this machine)")
            try:
                r = run_child("index", snap["db"], snap["public_key"], mode, swap)
            except RuntimeError as exc:  # e.g. killed for memory
                results["skipped"].append(f"pdq {human(n)} {mode}: {exc}")
                log("  " + results["skipped"][-1])
                continue
            r.update({"n_items": n, "mode": mode, "disk_mb": snap["bytes"] / MB})
            results["pdq"].append(r)
            # per item at the largest size so far (fixed costs weigh less there)
            last_peak_per_item = (r["peak"] - r["base"]) / n if mode == "multihash" else max(
                last_peak_per_item or 0, (r["peak"] - r["base"]) / n)
            save()
            log(f"  pdq {human(n)} {mode}: +{r['rss'] - r['base']:.0f} MB settled, +{r['raw'] - r['base']:.0f} as loaded, "
                f"peak +{r['peak'] - r['base']:.0f}, load {r['load_s']:.1f}s")

    for n in emb_sizes:
        snap = snapshot(f"emb-{n}", 0, n)
        r = run_child("index", snap["db"], snap["public_key"], "multihash", "swap" if n <= 100_000 else "noswap")
        r.update({"n_rows": n, "disk_mb": snap["bytes"] / MB})
        results["embedding"].append(r)
        save()
        log(f"  embedding {human(n)}: +{r['rss'] - r['base']:.0f} MB settled, peak +{r['peak'] - r['base']:.0f}, "
            f"load {r['load_s']:.1f}s")
    if not args.quick and not args.embedding_sizes:
        results["skipped"].append("embedding rows at 10M (its load peak, ~10x the 1M row's, would exceed this 24 GiB "
                                  "machine)")

    if not args.skip_models:
        for which in ("grooming", "embedding", "classifier", "grooming,embedding,classifier"):
            results["models"][which] = run_child("models", which)
            m = results["models"][which]
            save()
            log(f"  models {which}: +{m['rss'] - m['base']:.0f} MB settled, peak +{m['peak'] - m['base']:.0f}")
        for n in sizes:
            if any(n_ == n for n_ in (r["n_items"] for r in results["pdq"])) and n in (1_000_000, max(sizes)):
                snap = snapshot(f"pdq-{n}", n, 0)
                try:
                    w = run_child("worker", snap["db"], snap["public_key"], "multihash")
                except RuntimeError as exc:
                    results["skipped"].append(f"worker with pdq {human(n)}: {exc}")
                    continue
                w["n_items"] = n
                results["worker"].append(w)
                save()
                log(f"  worker (pdq {human(n)} multihash + 3 models): {w['rss']:.0f} MB settled, peak {w['peak']:.0f}")
    if not args.skip_media:
        for kind in ("jpeg3mp", "png49mp"):
            results["media"][kind] = run_child("media", kind)
            m = results["media"][kind]
            save()
            log(f"  media {kind}: peak +{m['peak'] - m['base']:.0f} MB")

    save()
    print(markdown(results, cmd))
    return 0


def allocator_check(n: int = 1_000_000) -> str:
    """RSS over the baseline after a PDQ snapshot load (multihash): as loaded, after Python's GC and
    Arrow's ``release_unused()``, after glibc's ``malloc_trim(0)``; with Arrow's default pool
    (mimalloc in the pyarrow wheels) and with ``ARROW_DEFAULT_MEMORY_POOL=system`` (glibc)."""
    snap = snapshot(f"pdq-{n}", n, 0)
    lines = ["| Arrow memory pool | as loaded MB | after `release_unused()` MB | after `malloc_trim(0)` MB | peak MB |",
             "|---|---:|---:|---:|---:|"]
    for label, env in (("default", None), ("system (`ARROW_DEFAULT_MEMORY_POOL=system`)", {"ARROW_DEFAULT_MEMORY_POOL": "system"})):
        r = run_child("index", snap["db"], snap["public_key"], "multihash", "noswap", env=env)
        name = f"{label}: {r['pool']}" if label == "default" else label
        lines.append(f"| {name} | {fmt(r['raw'] - r['base'])} | {fmt(r['arrow_released'] - r['base'])} | "
                     f"{fmt(r['rss'] - r['base'])} | {fmt(r['peak'] - r['base'])} |")
    return (f"PDQ snapshot of {human(n)} items (multihash), increments over the baseline of the same child:\n\n"
            + "\n".join(lines) + "\n\nReproduce: `python -m benchmarks.bench_sizing --allocator`.")


if __name__ == "__main__":
    sys.exit(main())
