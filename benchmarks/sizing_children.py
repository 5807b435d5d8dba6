"""The measuring children of the sizing benchmark (``python -m benchmarks.bench_sizing --child ...``): the
``/proc`` readings (RSS, peak, settled RSS), the imports of each baseline level, one child per row kind
(baseline, index, models, worker, media), ``run_child`` (the parent's side) and ``child_main``. Imports stay
inside the functions: a child holds exactly what its row imports. ``bench_sizing`` re-exports every name.
"""
from __future__ import annotations

import ctypes
import gc
import json
import os
import subprocess
import sys
import time
from typing import Optional

from benchmarks.sizing_snapshot import DATA, EMBEDDING_DIM, MB, ROOT, SEED, embedding_version


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
