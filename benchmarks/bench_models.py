"""Model inference speed, size and memory (issue 3 §6), on one pinned core.

* **grooming**: messages/s of the streaming path as ``csadetect.transforms.grooming`` runs it now — the
  real ``EncodeMessagesFn`` (micro-batches of one bundle) and ``ConversationStateFn`` (numpy
  window model), driven in-process with state kept through the DoFn's ``PickleCoder`` — against
  the per-message ``ConversationStateFn`` of commit ``BEFORE_COMMIT`` (read with ``git show``;
  one encoder call and one Keras window-model call per message) driven the same way, against
  ``GroomingModel.score_conversations`` (whole conversations, batched); plus the whole
  ``ClassifyGrooming`` transform, now and before, on Beam's FnApiRunner.
* **embedding**: ``EmbeddingModel.load().embed_arrays(...)`` images/s at batch sizes 1, 8, 32,
  64 on pre-decoded 64x64 uint8 arrays, and with the preprocessing from a decoded PIL image.
* **classifier**: ``NewMaterialClassifier.load().score(embeddings)`` embeddings/s, when
  ``csadetect/models/classifier.py`` exists.

Model size on disk; process RSS growth on load (each model in a fresh process).

    python -m benchmarks.bench_models                 # all; ~7 min; writes benchmarks/models.md
    python -m benchmarks.bench_models --quick         # a < 1 min smoke run (not for the tables)
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTEROP_THREADS",
             "TF_NUM_INTRAOP_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse
import datetime as dt
import json
import platform
import sys
import time
from pathlib import Path

from benchmarks.machine import cpu_model, memory_gib
from benchmarks.models_common import (ROOT, _rss_now_mb, dir_size, embedding_dim, fmt_rate, interleaved, load_probe,
                                      log, med, memory, memory_line, pin_one_core, spread, tf_one_thread)
from benchmarks.models_grooming import (BEFORE_COMMIT, STREAM_TARGET, _events, _old_module, _State, _Timer, beam_minor,
                                        bench_grooming, bench_grooming_beam)
from benchmarks.models_image import CLASSIFIER_PENDING, EMBED_TARGET, bench_classifier, bench_embedding

# ROOT, log, pinning, TensorFlow on one thread, the timing rounds, the formats and the memory probe (with
# embedding_dim) live in benchmarks.models_common, the grooming section (and beam_minor, quoted there) in
# benchmarks.models_grooming, the embedding and classifier sections in benchmarks.models_image; machine, main and
# the sections of models.md stay here. Every name is re-exported.
__all__ = [
    "ROOT", "BEFORE_COMMIT", "STREAM_TARGET", "EMBED_TARGET", "CLASSIFIER_PENDING", "log", "pin_one_core",
    "tf_one_thread", "interleaved", "med", "spread", "fmt_rate", "dir_size",
    "_rss_now_mb", "load_probe", "memory", "memory_line",
    "_State", "_Timer", "_old_module", "_events", "bench_grooming", "bench_grooming_beam",
    "bench_embedding", "embedding_dim", "bench_classifier",
    "beam_minor", "machine", "main", "SECTIONS", "previous_sections",
]


# ----------------------------------------------------------------------------- main
def machine() -> str:
    cpu = cpu_model("unknown CPU")
    gib = memory_gib()
    mem = f", {gib:.0f} GiB RAM" if gib is not None else ""
    versions = []
    for mod in ("tensorflow", "keras", "numpy", "apache_beam", "PIL"):
        try:
            versions.append(f"{mod} {__import__(mod).__version__}")
        except Exception:  # noqa: BLE001
            pass
    return (f"{cpu}, {os.cpu_count()} cores{mem}, Linux {platform.release()}, Python {platform.python_version()}; "
            + ", ".join(versions))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_models", description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", choices=("grooming", "embedding", "classifier"), action="append")
    ap.add_argument("--conversations", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--beam-rounds", type=int, default=3)
    ap.add_argument("--no-beam", action="store_true", help="skip the FnApiRunner rows")
    ap.add_argument("--encode-batches", type=int, nargs="+", default=[1, 8, 64])
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--embed-batches", type=int, nargs="+", default=[1, 8, 32, 64, 256])
    ap.add_argument("--embeddings", type=int, default=8192)
    ap.add_argument("--quick", action="store_true", help="small sizes, one round (a smoke run; writes nothing)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "models.md"))
    ap.add_argument("--load-probe", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    pinned = pin_one_core()
    if args.load_probe:
        print(json.dumps(load_probe(args.load_probe)))
        return 0
    if args.quick:
        args.conversations, args.rounds, args.beam_rounds, args.images, args.embeddings = 20, 1, 1, 64, 1024
    only = set(args.only or SECTIONS)
    header = [
        "# Model inference: speed, size, memory",
        "",
        "Reproduce: `python -m benchmarks.bench_models` (writes this file; `--only grooming|embedding|classifier` "
        "reruns one section and keeps the others). "
        f"Process {pinned}; TensorFlow intra/inter-op threads 1; OpenBLAS/OMP/MKL threads 1. Rates are medians of "
        "interleaved rounds on a shared VM: \"per core\" divides by the CPU seconds of the pinned process, which "
        "moves less with the other load than wall time does. Nothing is timed in unit tests.",
        "",
        f"Machine: {machine()}.",
        "",
    ]
    sections = previous_sections(Path(args.out)) if args.only else {}
    for name, fn in (("grooming", bench_grooming), ("embedding", bench_embedding), ("classifier", bench_classifier)):
        if name not in only:
            continue
        lines: list = []
        t0 = time.perf_counter()
        fn(args, lines)
        lines += [f"_{name}: run {dt.datetime.now(dt.timezone.utc):%Y-%m-%d}, {time.perf_counter() - t0:.0f} s._", ""]
        sections[name] = "\n".join(lines)
    text = "\n".join(header) + "\n" + "\n".join(sections[k] for k in SECTIONS if k in sections)
    print(text)
    if not args.quick:
        Path(args.out).write_text(text.rstrip("\n") + "\n")
    return 0


SECTIONS = {"grooming": "## Grooming model", "embedding": "## Image embedding model",
            "classifier": "## New-material classifier head"}


def previous_sections(path: Path) -> dict:
    """The sections of an earlier models.md, by name (kept by an --only run)."""
    if not path.is_file():
        return {}
    out, current = {}, None
    for line in path.read_text().splitlines():
        if line.startswith("## "):
            current = next((k for k, h in SECTIONS.items() if line.strip() == h), None)
            if current:
                out[current] = []
        if current:
            out[current].append(line)
    return {k: "\n".join(v).rstrip("\n") + "\n" for k, v in out.items()}


if __name__ == "__main__":
    sys.exit(main())
