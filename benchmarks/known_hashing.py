"""The hashing part of the known-material benchmark (``benchmarks.bench_known``, ``hashing``): images/s on
one pinned core from ~3 MP JPEG bytes, ours against pytx's ``PdqSignal.hash_from_bytes`` and the decodes
alone, and PDQ conformance to pytx and to Meta's reference hashes of the test vectors
(``reference_vectors``). ``bench_known`` re-exports every name.
"""
from __future__ import annotations

import csv
import io
import statistics

from PIL import Image

from benchmarks.known_common import DATA_DIR, SHARED, fmt, interleaved, log, pin_one_core, table
from benchmarks.known_data import image_set
from benchmarks.known_targets import RESULTS
from csadetect.media.hashing import DEFAULT_MAX_PIXELS, HASH_SIDE, hamming, hash_image, load_image
from csadetect.media.preprocess import views

__all__ = ["reference_vectors", "bench_hashing"]


# --------------------------------------------------------------------------- hashing


def reference_vectors() -> list[tuple[bytes, str]]:
    """(file bytes, Meta's C++ reference hash) of the PDQ test vectors, when present."""
    rows = []
    expected = SHARED / "expected"
    if not expected.is_dir():
        return rows
    with open(expected / "PDQMD5TestData.csv") as fh:
        for r in csv.DictReader(fh):
            path = SHARED / r["FilePath"].replace("../../../../data/", "")
            if len(r["Hash"]) == 64 and path.exists():
                rows.append((path.read_bytes(), r["Hash"]))
    with open(expected / "pdq-cpp-dih.csv") as fh:
        for r in csv.DictReader(fh):
            rows.append(((SHARED / r["path"]).read_bytes(), r["hash"]))
    return rows


def bench_hashing(args) -> str:
    from threatexchange.signal_type.pdq.pdq_hasher import pdq_from_bytes
    from threatexchange.signal_type.pdq.signal import PdqSignal

    n = 6 if args.quick else 24
    size = (2048, 1536)
    log(f"hashing: {n} JPEGs of {size[0]}x{size[1]} (generated once, cached in {DATA_DIR})")
    images = image_set(n, size)
    kb = statistics.mean(len(b) for b in images) / 1024
    pin_one_core(args.cpu)

    def over(fn, subset=None):
        batch = images if subset is None else images[:subset]

        def run():
            for b in batch:
                fn(b)
            return len(batch)

        return run

    def full_decode(b):
        with Image.open(io.BytesIO(b)) as img:
            img.convert("RGB")

    methods = {
        "decode full (PIL, RGB)": (over(full_decode), 1),
        f"decode reduced, RGB (ours: JPEG draft, long side {HASH_SIDE})": (
            over(lambda b: load_image(b, DEFAULT_MAX_PIXELS, HASH_SIDE)), 1),
        "hash_image (plain: PDQ + 8 dihedral + MD5 + SHA-256)": (over(hash_image), 2),
        "hash_image + preprocess views (pipeline configuration)": (over(lambda b: hash_image(b, preprocess=views)), 2),
        "pytx PdqSignal.hash_from_bytes": (over(PdqSignal.hash_from_bytes, None if args.quick else n // 2), 1),
    }
    rates = interleaved(methods, 2 if args.quick else 5)
    names = list(methods)
    full, pytx = rates[names[0]], rates[names[-1]]

    # conformance: our hashes against pytx's (full-resolution) hash, and against Meta's reference
    plain = [hash_image(b) for b in images]
    piped = [hash_image(b, preprocess=views) for b in images]
    ref = [bytes.fromhex(pdq_from_bytes(b)[0]) for b in images]
    d_plain = max(hamming(h.pdq, r) for h, r in zip(plain, ref))
    d_piped = max(hamming(h.pdq, r) for h, r in zip(piped, ref))
    vectors = reference_vectors()
    conf = ""
    if vectors:
        ours_v = [hamming(hash_image(b).pdq, bytes.fromhex(e)) for b, e in vectors]
        ours_pv = [hamming(hash_image(b, preprocess=views).pdq, bytes.fromhex(e)) for b, e in vectors]
        pytx_v = [hamming(bytes.fromhex(pdq_from_bytes(b)[0]), bytes.fromhex(e)) for b, e in vectors]
        conf = (
            f"Meta's PDQ test vectors ({len(vectors)} files with C++ reference hashes): max distance to the "
            f"reference {max(ours_v)} bits plain, {max(ours_pv)} with views (pytx itself: {max(pytx_v)}; "
            f"tolerance 10, `tests/test_hashing.py`)."
        )

    RESULTS["hashing"] = {
        "plain": rates["hash_image (plain: PDQ + 8 dihedral + MD5 + SHA-256)"],
        "pipeline": rates["hash_image + preprocess views (pipeline configuration)"], "full": full, "pytx": pytx,
        "conf_pytx": max(d_plain, d_piped), "conf_ref": max(ours_v + ours_pv) if vectors else None,
    }
    rows = []
    for name in names:
        r = rates[name]
        rows.append([name, fmt(r), fmt(1000 / r, 2), fmt(r / pytx, 1) + "x", fmt(r / full, 2) + "x"])
    text = [
        "### Hashing (one core)",
        "",
        f"{n} JPEGs of {size[0]}x{size[1]} px (3.1 MP), quality 90, mean {kb:.0f} KB "
        f"({kb * 8192 / (size[0] * size[1]):.2f} bits/pixel): half `csadetect.media.synth` pictures, half "
        "scikit-image sample photos scaled up with mild grain. Process pinned to one core "
        "(`sched_setaffinity`), OMP/OpenBLAS threads 1; median of interleaved rounds.",
        "",
        table(["", "images/s", "ms/image", "vs pytx", "vs full decode"], rows),
        "",
        f"Conformance at this speed: max Hamming distance to pytx's hash over the set {d_plain} bits "
        f"(plain) and {d_piped} bits (with views). {conf}",
    ]
    return "\n".join(text)
