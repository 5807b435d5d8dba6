"""The workload of the per-stage benchmark (``benchmarks.bench_stages``): ``bench_known``'s end-to-end
events changed so that every stage has work (exact copies of known pictures, framed copies; ``workload``,
``frame``), cached under ``benchmarks/.data/stages/``, and the pipeline config of a run (``config_path``,
``MATCH_ENV``); also the constants and ``log`` the other ``stages_*`` modules share. ``bench_stages``
re-exports every name (``bench_throughput`` and its ``throughput_*`` modules use them from there).
"""
from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path

from benchmarks.machine import log

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / ".data" / "stages"
OUT_MD = ROOT / "benchmarks" / "stages.md"
SIZES = {"3": ("3.1 MP", (2048, 1536)), "1": ("1.0 MP", (1152, 864))}
N_RANDOM = 100_000
SMALL = 20  # the same runs on the first SMALL events give the fixed cost per run, subtracted stage by stage
BATCH = 64  # the default RunInference max batch size (config `embedding.batching`)


# --------------------------------------------------------------------------- workload


def workload(label: str, size: tuple[int, int], n: int) -> Path:
    """bench_known's e2e data (cached; every 10th event a crop of a known picture whose PDQ is in
    the snapshot), changed so that every stage has work: every 25th event an exact copy of one of two
    known events (their PDQ and MD5 in the snapshot: confirmed hits, so reports are sealed and
    signed), 20% of events framed (letterbox, screenshot canvas: views to hash); plus report keys and
    the same first SMALL events in their own file."""
    from benchmarks import bench_known
    from benchmarks.bench_reports import make_keys
    from csadetect.events.event import make_event

    base = WORK / f"e2e-{size[0]}x{size[1]}-{n}"
    data = bench_known.e2e_data(base, n, size, N_RANDOM, shards=1)
    marker = base / "stages.json"
    if marker.exists():
        return base
    lines = (base / "events-0.jsonl").read_text().splitlines()
    known = [ev for ev in map(json.loads, lines) if int(ev["event_id"][3:]) % 10 == 0][:2]  # crops of known pictures
    # two known events' MD5s become indicators too; the snapshot is rebuilt with them
    from csadetect.indicators.rows import Indicator
    from csadetect.indicators.snapshot import build_snapshot
    from csadetect.media.hashing import hash_image

    import pyarrow.parquet as pq

    version = (base / "db" / "CURRENT").read_text().strip()
    table = pq.read_table(base / "db" / "versions" / version / "indicators.parquet",
                          columns=["indicator_id", "kind", "value"]).to_pylist()
    rows = [Indicator(r["indicator_id"], r["kind"], r["value"], category="benchmark") for r in table]
    for k, ev in enumerate(known):
        content = base64.b64decode(ev["content_b64"])
        h = hash_image(content)
        rows.append(Indicator(f"exact-{k}-md5", "md5", h.md5, category="benchmark"))
    shutil.rmtree(base / "db")
    build_snapshot(rows, str(base / "db"), str(base / "keys" / "private.pem"))
    out, framed = [], {"letterbox": 0, "canvas": 0}
    for i, line in enumerate(lines):
        if i % 25 == 5:
            ev = known[i % len(known)]
            line = json.dumps(make_event(f"ex-{i:05d}", base64.b64decode(ev["content_b64"]), account=f"acct-{i % 97}"))
        elif i % 10 in (3, 8):  # framed copies, so that the preprocessing views have work: 20% of events
            ev = json.loads(line)
            kind = "letterbox" if i % 10 == 3 else "canvas"
            content = frame(base64.b64decode(ev["content_b64"]), kind)
            line = json.dumps(make_event(ev["event_id"], content, account=f"acct-{i % 97}"))
            framed[kind] += 1
        out.append(line + "\n")
    (base / "events.jsonl").write_text("".join(out))
    (base / f"events-{SMALL}.jsonl").write_text("".join(out[:SMALL]))
    keys = make_keys(base / "report-keys")
    (base / "report-keys.json").write_text(json.dumps(keys["reports"]))
    data["indicators"] += len(known)
    data["framed"] = framed
    data["exact"] = sum(1 for i in range(len(lines)) if i % 25 == 5)
    data["known"] = sum(1 for i in range(len(lines)) if i % 10 == 0 and i % 25 != 5)  # crops left
    marker.write_text(json.dumps(data))
    log(f"  {label}: workload ready in {base}")
    return base


def frame(jpeg: bytes, kind: str) -> bytes:
    """The picture shrunk into a frame of the same size: black letterbox bars top and bottom, or a
    screenshot-like white canvas with a flat grey header bar (what the preprocessing views undo)."""
    import io

    from PIL import Image, ImageDraw

    from csadetect.media.synth import jpeg_bytes

    img = Image.open(io.BytesIO(jpeg)).convert("RGB")
    w, h = img.size
    if kind == "letterbox":
        inner = img.resize((w, h * 3 // 4))
        canvas = Image.new("RGB", (w, h), (0, 0, 0))
        canvas.paste(inner, (0, h // 8))
    else:
        inner = img.resize((w * 7 // 10, h * 7 // 10))
        canvas = Image.new("RGB", (w, h), (250, 250, 250))
        ImageDraw.Draw(canvas).rectangle((0, 0, w, h // 10), fill=(60, 60, 70))
        canvas.paste(inner, ((w - inner.size[0]) // 2, h // 10 + (h * 9 // 10 - inner.size[1]) // 2))
    return jpeg_bytes(canvas, 90)


# JSON of ``match`` settings merged into the pipeline's config for every run (``bench_throughput --match``):
# a setting's cost end to end, one run per setting.
MATCH_ENV = "CSADETECT_BENCH_MATCH"


def config_path(base: Path, out: Path) -> Path:
    import yaml

    config = {
        "indicators": {"path": str(base / "db"), "public_key": str(base / "keys" / "public.pem")},
        "grooming": {"enabled": False},  # image events only: there is no text
        "reports": json.loads((base / "report-keys.json").read_text()),
        "sinks": {"report_dir": str(out / "reports"), "review_dir": str(out / "review"),
                  "dead_letter_dir": str(out / "dead")},
        "stores": {"stats_dir": str(out / "stats")},
    }
    if os.environ.get(MATCH_ENV):
        config["match"] = json.loads(os.environ[MATCH_ENV])
    path = out / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path
