"""What the sections of the model benchmark (``benchmarks.bench_models``) share: ``ROOT``, ``log``,
pinning to one core, TensorFlow on one thread, the interleaved timing rounds and the rate formats, and the
memory of a model measured in a fresh process (``python -m benchmarks.bench_models --load-probe KIND``:
``load_probe`` in the child, ``memory`` in the parent; ``embedding_dim`` gives the classifier's input size).
``bench_models`` re-exports every name.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.machine import log

ROOT = Path(__file__).resolve().parent.parent


def pin_one_core() -> str:
    try:
        core = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
        return f"pinned to core {core}"
    except (AttributeError, OSError):
        return "not pinned (no sched_setaffinity)"


def tf_one_thread():
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass
    return tf


def interleaved(variants: dict, rounds: int, units: dict) -> tuple[dict, dict]:
    """Run every variant once per round, in turn; units[name] items per run. Returns items per
    CPU-second of this process (all its threads; the process is pinned to one core, so this is
    per core and does not count time other processes took the core away) and items per
    wall-clock second, per round."""
    cpu = {name: [] for name in variants}
    wall = {name: [] for name in variants}
    for name, fn in variants.items():  # warm-up (tracing, caches)
        fn()
    for r in range(rounds):
        for name, fn in variants.items():
            c, t = time.process_time(), time.perf_counter()
            fn()
            cpu[name].append(units[name] / (time.process_time() - c))
            wall[name].append(units[name] / (time.perf_counter() - t))
        log(f"  round {r + 1}: " + ", ".join(f"{k}: {v[-1]:,.0f}/s" for k, v in cpu.items()))
    return cpu, wall


def med(values) -> float:
    return float(np.median(values))


def spread(values) -> str:
    """median (min-max)"""
    return f"{fmt_rate(med(values))} ({fmt_rate(min(values))}-{fmt_rate(max(values))})"


def fmt_rate(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:,.1f}"


def dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).glob("*") if f.is_file())


# ----------------------------------------------------------------------------- memory (child)
def _rss_now_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def load_probe(kind: str) -> dict:
    """In a fresh process: RSS after importing TensorFlow + Keras, after loading the model, and
    after its first inference (current RSS from /proc; peak from getrusage). The model's module is
    imported after ``base`` on purpose: its import is part of the load measured."""
    tf_one_thread()
    import keras  # noqa: F401

    base, t0 = _rss_now_mb(), time.perf_counter()
    if kind == "grooming":
        from csadetect.models.grooming import GroomingModel

        model = GroomingModel.load()
        load_s = time.perf_counter() - t0
        loaded = _rss_now_mb()
        model.score_conversations([[{"sender": "a", "text": "hi there", "participants_minor": True}]])
        model.score_encoded_windows([(model.encode(["hi there"]), ["a"])])
    elif kind == "embedding":
        from csadetect.models.embedding import EmbeddingModel

        model = EmbeddingModel.load()
        load_s = time.perf_counter() - t0
        loaded = _rss_now_mb()
        model.embed_arrays(np.zeros((64, model.input_size, model.input_size, 3), np.uint8))
    elif kind == "classifier":
        from csadetect.models.classifier import NewMaterialClassifier

        model = NewMaterialClassifier.load()
        load_s = time.perf_counter() - t0
        loaded = _rss_now_mb()
        model.score(np.zeros((64, embedding_dim(model)), np.float32))
    else:
        raise SystemExit(f"unknown kind {kind}")
    used = _rss_now_mb()
    return {"base_mb": base, "load_mb": loaded - base, "first_use_mb": used - base, "load_s": load_s,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def memory(kind: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "benchmarks.bench_models", "--load-probe", kind], capture_output=True,
                         text=True, cwd=ROOT, timeout=600)
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["failed"])[-1][:200]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def memory_line(m: dict) -> str:
    if "error" in m:
        return f"memory not measured ({m['error']})"
    return (f"load {m['load_s']:.1f} s; RSS +{m['load_mb']:.0f} MB on load, +{m['first_use_mb']:.0f} MB after "
            f"the first inference (over {m['base_mb']:.0f} MB for Python + TensorFlow + Keras imported; "
            f"process peak {m['peak_mb']:.0f} MB)")


# the classifier's input size: load_probe here and models_image.bench_classifier use it
def embedding_dim(classifier) -> int:
    """Input size of the classifier head: its ``dim`` if it says, else the embedding model's."""
    dim = getattr(classifier, "dim", None)
    if not dim:
        from csadetect.models.embedding import KIND

        dim = KIND.metadata().get("dim", 128)
    return int(dim)
