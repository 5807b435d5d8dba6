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
import base64
import ctypes
import gc
import hashlib
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator, Optional

ROOT = Path(__file__).resolve().parent.parent

DATA = ROOT / "benchmarks" / ".data" / "sizing"
SEED = 20261128
CHUNK = 1_000_000
ADDED_AT = "2026-11-28T00:00:00Z"
EMBEDDING_DIM = 128
MB = 2**20
# A size is tried only if the load peak per item measured at the previous size, scaled, fits in 70%
# of the memory available at that moment (see main).
DEFAULT_SIZES = (100_000, 1_000_000, 10_000_000)
DEFAULT_EMBEDDING_SIZES = (100_000, 1_000_000)


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- /proc measurements


_LIBC = ctypes.CDLL(None) if sys.platform.startswith("linux") else None


def _status(field: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024 / MB
    return float("nan")


def rss_mb() -> float:
    return _status("VmRSS")


def peak_mb() -> float:
    return _status("VmHWM")


def reset_peak() -> None:
    """Reset VmHWM to the current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def settle() -> float:
    """RSS after handing freed memory back (Python GC, Arrow's pool, glibc's heap)."""
    gc.collect()
    try:
        import pyarrow as pa

        pa.default_memory_pool().release_unused()
    except ImportError:
        pass
    if _LIBC is not None and hasattr(_LIBC, "malloc_trim"):
        _LIBC.malloc_trim(0)
    return rss_mb()


# --------------------------------------------------------------------------- baseline imports

LEVELS = ("python", "beam", "sdk_worker", "pipeline", "tf")


def import_level(level: str) -> None:
    """Import what a worker process of that level holds (cumulative)."""
    order = LEVELS.index(level)
    if order >= 1:
        import apache_beam  # noqa: F401
    if order >= 2:
        from apache_beam.runners.worker import sdk_worker_main  # noqa: F401
    if order >= 3:
        import faiss  # noqa: F401
        import pdqhash  # noqa: F401
        import pyarrow.parquet  # noqa: F401
        from PIL import Image  # noqa: F401

        import csadetect.indicators.index  # noqa: F401
        import csadetect.pipelines.detect  # noqa: F401
        import csadetect.transforms.classify  # noqa: F401
        import csadetect.transforms.embed  # noqa: F401
        import csadetect.transforms.grooming  # noqa: F401
        import csadetect.transforms.match  # noqa: F401
        import csadetect.transforms.report  # noqa: F401
        import csadetect.transforms.review  # noqa: F401
        import csadetect.transforms.sinks  # noqa: F401
        import csadetect.transforms.stats  # noqa: F401
    if order >= 4:
        import keras  # noqa: F401
        import tensorflow  # noqa: F401


def child_baseline(level: str) -> dict:
    import_level(level)
    return {"rss": settle(), "raw": rss_mb(), "peak": peak_mb(), "tf_in_pipeline": "tensorflow" in sys.modules}


# --------------------------------------------------------------------------- snapshots


def _hex(codes):
    """(n, k) uint8 -> Arrow string array of lowercase hex (vectorised, as bench_known does)."""
    import numpy as np
    import pyarrow as pa

    n, k = codes.shape
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    nibbles = np.empty((n, 2 * k), dtype=np.uint8)
    nibbles[:, 0::2], nibbles[:, 1::2] = codes >> 4, codes & 15
    return pa.array(digits[nibbles].view(f"S{2 * k}").ravel()).cast(pa.string())


def _ids(prefix: str, start: int, n: int):
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    numbers = pa.array(np.arange(start + 1, start + n + 1)).cast(pa.string())
    return pc.binary_join_element_wise(prefix, pc.utf8_lpad(numbers, 9, "0"), "")


def _chunk_table(ids, kind: str, values):
    import pyarrow as pa

    from csadetect.indicators.snapshot import SCHEMA

    n = len(ids)
    cols = {
        "indicator_id": ids,
        "kind": pa.repeat(pa.scalar(kind, pa.string()), n),
        "value": values,
        "category": pa.repeat(pa.scalar("unspecified", pa.string()), n),
        "source": pa.repeat(pa.scalar("eu-centre", pa.string()), n),
        "note": pa.repeat(pa.scalar("", pa.string()), n),
        "added_at": pa.repeat(pa.scalar(ADDED_AT, pa.string()), n),
        "disabled_at": pa.nulls(n, pa.string()),
    }
    return pa.table(cols, schema=SCHEMA)


def embedding_version() -> str:
    from csadetect.models.embedding import KIND

    return str(KIND.metadata().get("version", "embedding-ref"))


def generate_rows(n_items: int, n_embedding: int, seed: int) -> Iterator[tuple]:
    """(kind, Arrow table chunk, pdq codes of the chunk or None), in the snapshot's canonical
    order (kind pdq, md5, sha256, embedding; ids ascending within a kind)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    for kind, prefix, nbytes in (("pdq", "pdq-", 32), ("md5", "md5-", 16), ("sha256", "sha-", 32)):
        for start in range(0, n_items, CHUNK):
            n = min(CHUNK, n_items - start)
            codes = rng.integers(0, 256, (n, nbytes), dtype=np.uint8)
            yield kind, _chunk_table(_ids(prefix, start, n), kind, _hex(codes)), codes if kind == "pdq" else None
    if n_embedding:
        import pyarrow as pa

        version = embedding_version()
        for start in range(0, n_embedding, CHUNK):
            n = min(CHUNK, n_embedding - start)
            vecs = rng.standard_normal((n, EMBEDDING_DIM)).astype("<f4")
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            values = pa.array([f"{version}:{base64.b64encode(v.tobytes()).decode('ascii')}" for v in vecs], pa.string())
            yield "embedding", _chunk_table(_ids("emb-", start, n), "embedding", values), None


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 24), b""):
            h.update(block)
    return h.hexdigest()


def write_snapshot(db_dir: Path, private_key: Path, n_items: int, n_embedding: int, seed: int = SEED) -> dict:
    """Write and sign version 1 of a full snapshot, chunk by chunk (bounded memory). Same files,
    manifest fields and signature as ``csadetect.indicators.snapshot.build_snapshot``."""
    import numpy as np
    import pyarrow.parquet as pq

    from csadetect.indicators import snapshot as snap
    from csadetect.core.keys import key_id, load_private_key, sign
    from csadetect.signals import names

    final = db_dir / "versions" / "1"
    staging = db_dir / "versions" / ".staging-1"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    codes_out = np.lib.format.open_memmap(staging / snap.CODES_FILE, mode="w+", dtype=np.uint8, shape=(n_items, 32))
    counts: dict[str, int] = {}
    pdq_at = 0
    with pq.ParquetWriter(staging / snap.FULL_FILE, snap.SCHEMA, compression="zstd") as writer:
        for kind, table, codes in generate_rows(n_items, n_embedding, seed):
            writer.write_table(table)
            counts[kind] = counts.get(kind, 0) + table.num_rows
            if codes is not None:
                codes_out[pdq_at:pdq_at + len(codes)] = codes
                pdq_at += len(codes)
    codes_out.flush()
    del codes_out
    files = {name: {"sha256": _sha256_file(staging / name), "bytes": (staging / name).stat().st_size}
             for name in (snap.FULL_FILE, snap.CODES_FILE)}
    tally = {"rows": sum(counts.values()),
             "kinds": {k: {"active": counts[k], "disabled": 0} for k in names() if counts.get(k)}}
    manifest = {
        "format": snap.FORMAT, "version": 1, "type": "full", "parent": None, "created_at": ADDED_AT,
        "key_id": key_id(load_private_key(str(private_key))), "counts": tally, "totals": tally, "files": files,
    }
    manifest_bytes = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")
    (staging / snap.MANIFEST).write_bytes(manifest_bytes)
    (staging / snap.SIGNATURE).write_bytes(base64.b64encode(sign(str(private_key), manifest_bytes)) + b"\n")
    shutil.rmtree(final, ignore_errors=True)
    os.rename(staging, final)
    (db_dir / "CURRENT").write_text("1\n")
    return manifest


def snapshot(name: str, n_items: int, n_embedding: int) -> dict:
    """A cached signed snapshot: {"db", "public_key", "bytes"}."""
    from csadetect.core.keys import generate_keypair

    work = DATA / name
    params = {"items": n_items, "embedding": n_embedding, "seed": SEED, "dim": EMBEDDING_DIM, "v": 1}
    meta = work / "meta.json"
    if meta.exists() and json.loads(meta.read_text()).get("params") == params:
        return json.loads(meta.read_text())["data"]
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    generate_keypair(work / "keys", overwrite=True)
    t0 = time.time()
    manifest = write_snapshot(work / "db", work / "keys" / "private.pem", n_items, n_embedding)
    data = {"db": str(work / "db"), "public_key": str(work / "keys" / "public.pem"),
            "bytes": sum(f["bytes"] for f in manifest["files"].values()), "write_s": time.time() - t0}
    meta.write_text(json.dumps({"params": params, "data": data}))
    log(f"  wrote snapshot {name} ({data['bytes'] / MB:.0f} MB on disk) in {data['write_s']:.0f}s")
    return data


def check_writer() -> None:
    """The chunked writer and ``build_snapshot`` give the same verified snapshot."""
    import numpy as np
    import pyarrow as pa

    from csadetect.core.keys import generate_keypair
    from csadetect.indicators.snapshot import build_snapshot, load_snapshot

    global CHUNK
    saved, CHUNK = CHUNK, 700  # several chunks per kind
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            generate_keypair(tmp / "keys")
            key, pub = tmp / "keys" / "private.pem", tmp / "keys" / "public.pem"
            write_snapshot(tmp / "ours", key, 2000, 300, seed=7)
            rows = pa.concat_tables([t for _, t, _ in generate_rows(2000, 300, seed=7)])
            build_snapshot(rows, str(tmp / "ref"), str(key))
            ours, ref = load_snapshot(str(tmp / "ours"), pub), load_snapshot(str(tmp / "ref"), pub)
            cols = [c for c in ref.table.column_names if c != "added_at"]
            assert ours.table.select(cols).equals(ref.table.select(cols)), "writer: table differs from build_snapshot"
            assert np.array_equal(ours.pdq_codes, ref.pdq_codes), "writer: pdq codes differ from build_snapshot"
            assert ours.manifest["counts"] == ref.manifest["counts"], "writer: manifest counts differ"
    finally:
        CHUNK = saved
    log("  check: chunked snapshot writer == build_snapshot (2000 items + 300 embedding rows), verified by the loader")


# --------------------------------------------------------------------------- children


def child_index(db: str, public_key: str, mode: str, swap: bool, level: str = "pipeline") -> dict:
    import numpy as np

    from csadetect.config.settings import MatchSettings
    from csadetect.indicators.index import IndicatorIndex, load_index
    from csadetect.indicators.snapshot import load_snapshot

    import_level(level)
    settings = MatchSettings(pdq_index=mode)
    version = embedding_version()
    base = settle()
    reset_peak()
    t0 = time.perf_counter()
    index = load_index(db, public_key, settings)
    load_s = time.perf_counter() - t0
    out = {"base": base, "peak": peak_mb(), "raw": rss_mb(), "load_s": load_s, "n": len(index)}
    rng = np.random.default_rng(1)
    index.match_pdq([rng.integers(0, 256, 32, dtype=np.uint8).tobytes() for _ in range(8)])
    index.match_embeddings(rng.standard_normal((3, EMBEDDING_DIM)).astype(np.float32), version, 0.98)
    out["after_query"] = rss_mb()
    gc.collect()
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    out["arrow_released"] = rss_mb()
    out["pool"] = pa.default_memory_pool().backend_name
    out["rss"] = settle()
    out["stats"] = index.memory_stats()
    if swap:
        reset_peak()
        t0 = time.perf_counter()
        fresh = IndicatorIndex.from_snapshot(load_snapshot(db, public_key), settings)  # old index still alive
        out["swap_peak"] = peak_mb()
        out["swap_s"] = time.perf_counter() - t0
        out["swap_both"] = settle()
        index = fresh  # the old state is dropped here, as refresh() does
        out["swap_after"] = settle()
    del index
    return out


def _load_models(which: list[str]) -> None:
    import numpy as np

    keep = []
    for kind in which:
        if kind == "grooming":
            from csadetect.models.grooming import GroomingModel

            model = GroomingModel.load()
            model.score_conversations([[{"sender": "a", "text": "hi there", "participants_minor": True}]])
            model.score_encoded_windows([(model.encode(["hi there"]), ["a"])])
        elif kind == "embedding":
            from csadetect.models.embedding import EmbeddingModel

            model = EmbeddingModel.load()
            model.embed_arrays(np.zeros((256, model.input_size, model.input_size, 3), np.uint8), batch_size=256)
        elif kind == "classifier":
            from csadetect.models.classifier import NewMaterialClassifier

            model = NewMaterialClassifier.load()
            model.score(np.zeros((64, model.dim), np.float32))
        else:
            raise SystemExit(f"unknown model {kind}")
        keep.append(model)
    _load_models.keep = keep  # alive while measured


def child_models(which: list[str]) -> dict:
    import_level("tf")
    base = settle()
    reset_peak()
    t0 = time.perf_counter()
    _load_models(which)
    return {"base": base, "raw": rss_mb(), "peak": peak_mb(), "rss": settle(), "load_s": time.perf_counter() - t0}


def child_worker(db: str, public_key: str, mode: str) -> dict:
    from csadetect.config.settings import MatchSettings
    from csadetect.indicators.index import load_index

    import_level("tf")
    base = settle()
    reset_peak()
    index = load_index(db, public_key, MatchSettings(pdq_index=mode))
    _load_models(["grooming", "embedding", "classifier"])
    out = {"base": base, "raw": rss_mb(), "peak": peak_mb(), "rss": settle(), "n": len(index)}
    del index
    return out


def media_bytes(kind: str) -> bytes:
    import io

    import numpy as np
    from PIL import Image

    from csadetect.media.synth import jpeg_bytes, synthetic_image

    if kind == "jpeg3mp":
        return jpeg_bytes(synthetic_image(SEED, (2048, 1536)), 90)
    path = DATA / "media-49mp.png"
    if not path.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        n = 7000
        y, x = np.mgrid[0:n, 0:n]
        pixels = np.stack([x * 255 // n, y * 255 // n, (x + y) * 255 // (2 * n)], -1).astype(np.uint8)
        del x, y
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, "PNG")
        path.write_bytes(buf.getvalue())
    return path.read_bytes()


def child_media(kind: str) -> dict:
    from csadetect.media.hashing import hash_image_with_views
    from csadetect.media.preprocess import views
    from csadetect.config.settings import Limits
    from csadetect.models.embedding import model_inputs

    import_level("pipeline")
    data = media_bytes(kind)
    base = settle()
    reset_peak()
    hashes, pictures = hash_image_with_views(data, max_pixels=Limits().max_pixels, preprocess=views)
    model_inputs(pictures, 64, True)
    return {"base": base, "peak": peak_mb(), "bytes": len(data), "pixels": pictures[0][1].size if pictures else None}


def run_child(*args: str, timeout: int = 3600, env: Optional[dict] = None) -> dict:
    proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_sizing", "--child", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=timeout, env=None if env is None else {**os.environ, **env})
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["failed"])[-1][:300]
        raise RuntimeError(f"child {' '.join(args)} failed: {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def child_main(args: list[str]) -> int:
    what = args[0]
    if what == "baseline":
        out = child_baseline(args[1])
    elif what == "index":
        out = child_index(args[1], args[2], args[3], args[4] == "swap")
    elif what == "models":
        out = child_models(args[1].split(","))
    elif what == "worker":
        out = child_worker(args[1], args[2], args[3])
    elif what == "media":
        out = child_media(args[1])
    else:
        raise SystemExit(f"unknown child {what}")
    print(json.dumps(out))
    return 0


# --------------------------------------------------------------------------- parent


def mem_available_mb() -> float:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    return float("inf")


def human(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 and n % 1_000_000 == 0 else f"{n // 1000}k"


def fmt(x: Optional[float], digits: int = 0) -> str:
    return "" if x is None else f"{x:,.{digits}f}"


def machine() -> str:
    import apache_beam
    import faiss
    import numpy
    import pyarrow

    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    with open("/proc/meminfo") as fh:
        mem = int(fh.readline().split()[1]) / 2**20
    return (f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, Python {platform.python_version()}, "
            f"apache-beam {apache_beam.__version__}, faiss-cpu {faiss.__version__}, pyarrow {pyarrow.__version__} "
            f"(pool: {pyarrow.default_memory_pool().backend_name}), numpy {numpy.__version__}")


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


if __name__ == "__main__":
    sys.exit(main())
