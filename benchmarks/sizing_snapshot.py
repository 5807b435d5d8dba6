"""The signed snapshots the sizing benchmark loads (``benchmarks.bench_sizing``): N random PDQ + MD5 +
SHA-256 rows and N embedding rows written chunk by chunk (``write_snapshot``), cached under
``benchmarks/.data/sizing/`` (``snapshot``), and checked against ``build_snapshot`` (``check_writer``); also
the constants and ``log`` the other ``sizing_*`` modules share. ``bench_sizing`` re-exports every name.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Iterator

from benchmarks.cache import cached
from benchmarks.machine import log

ROOT = Path(__file__).resolve().parent.parent

DATA = ROOT / "benchmarks" / ".data" / "sizing"
SEED = 20261128
CHUNK = 1_000_000
ADDED_AT = "2026-11-28T00:00:00Z"
EMBEDDING_DIM = 128
MB = 2**20


# --------------------------------------------------------------------------- snapshots
# check_writer rebinds CHUNK (``global``) while it checks and generate_rows reads it: both stay in this module.


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


def publish_first_version(db_dir: Path, staging: Path, manifest: dict, private_key: Path) -> None:
    """Sign ``manifest`` into ``staging`` and publish it as version 1 of ``db_dir`` (``CURRENT`` -> 1), as
    ``build_snapshot`` ends: the last step of this module's own chunked writer."""
    from csadetect.core.keys import sign
    from csadetect.indicators import snapshot as snap

    raw = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")
    (staging / snap.MANIFEST).write_bytes(raw)
    (staging / snap.SIGNATURE).write_bytes(base64.b64encode(sign(str(private_key), raw)) + b"\n")
    final = db_dir / "versions" / "1"
    shutil.rmtree(final, ignore_errors=True)
    os.rename(staging, final)
    (db_dir / "CURRENT").write_text("1\n")


def write_snapshot(db_dir: Path, private_key: Path, n_items: int, n_embedding: int, seed: int = SEED) -> dict:
    """Write and sign version 1 of a full snapshot, chunk by chunk (bounded memory). Same files,
    manifest fields and signature as ``csadetect.indicators.snapshot.build_snapshot``."""
    import numpy as np
    import pyarrow.parquet as pq

    from csadetect.core import fs
    from csadetect.indicators import snapshot as snap
    from csadetect.core.keys import key_id, load_private_key
    from csadetect.signals import names

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
    files = {name: {"sha256": fs.sha256_file(str(staging / name)), "bytes": (staging / name).stat().st_size}
             for name in (snap.FULL_FILE, snap.CODES_FILE)}
    tally = {"rows": sum(counts.values()),
             "kinds": {k: {"active": counts[k], "disabled": 0} for k in names() if counts.get(k)}}
    manifest = {
        "format": snap.FORMAT, "version": 1, "type": "full", "parent": None, "created_at": ADDED_AT,
        "key_id": key_id(load_private_key(str(private_key))), "counts": tally, "totals": tally, "files": files,
    }
    publish_first_version(db_dir, staging, manifest, private_key)
    return manifest


def snapshot(name: str, n_items: int, n_embedding: int) -> dict:
    """A cached signed snapshot: {"db", "public_key", "bytes"}."""
    from csadetect.core.keys import generate_keypair

    def build(work: Path) -> dict:
        generate_keypair(work / "keys", overwrite=True)
        t0 = time.time()
        manifest = write_snapshot(work / "db", work / "keys" / "private.pem", n_items, n_embedding)
        data = {"db": str(work / "db"), "public_key": str(work / "keys" / "public.pem"),
                "bytes": sum(f["bytes"] for f in manifest["files"].values()), "write_s": time.time() - t0}
        log(f"  wrote snapshot {name} ({data['bytes'] / MB:.0f} MB on disk) in {data['write_s']:.0f}s")
        return data

    params = {"items": n_items, "embedding": n_embedding, "seed": SEED, "dim": EMBEDDING_DIM, "v": 1}
    return cached(DATA / name, params, build)


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
