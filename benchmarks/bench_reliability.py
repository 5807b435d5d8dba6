"""Reliability under hostile input (issue 12): fuzzed and poison events through the real batch
pipeline, counted for crashes, dead letters, counter balance and leaks.

    python -m benchmarks.bench_reliability [--fuzzed 2000] [--seed 12] [--write]

What it does, in one temporary folder:

* a signed indicator snapshot of a few generated pictures (benign), and report keys;
* an events file mixing valid uploads (known copies that must be reported, unrelated pictures and
  chats that must leave nothing) with ``--fuzzed`` hostile lines drawn by a seeded generator from
  the classes the independent probe used: bytes that are not UTF-8, not JSON, JSON that is not an
  object, missing and mistyped fields, lone surrogates and control characters in ids and text,
  out-of-range and zone-less times, huge numbers, bad base64, truncated and fake images, a PNG
  decompression bomb header, ``content_uri`` pointing at ``/proc/self/environ``, a private key, a
  FIFO, a folder, a cloud bucket the operator did not allow;
* one run of ``python -m csadetect.pipelines.detect`` on the FnApiRunner (the production graph).

It then counts: crashes (the run's exit code is not 0), the counters
(``received = hit + non_hit + dead_lettered``), dead letters written, reports written against the
known copies sent, and **leaks**: every non-hit and every hostile event carries a unique marker in
its account, text and content; any marker found in any output file (reports, review, stats, dead
letters) or in the run's stderr is a leak. Dead letters may carry the event id (by design), so
markers are never put in ids. Peak memory per hostile *media* class is measured by
``benchmarks/bench_hostile.py``. ``--write`` puts the table into ``benchmarks/README.md``.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from benchmarks.machine import log
from csadetect.config.settings import MatchSettings
from csadetect.core.keys import generate_keypair
from csadetect.events.event import make_event
from csadetect.indicators.rows import from_media
from csadetect.indicators.snapshot import build_snapshot
from csadetect.media import synth
from csadetect.reports.crypto import generate_centre_keypair
from csadetect.review.store import generate_provider_keys

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "benchmarks" / "README.md"
BEGIN, END = "<!-- bench_reliability:begin -->", "<!-- bench_reliability:end -->"
N_KNOWN = 4


def marker(rng: random.Random) -> str:
    return f"MRK{rng.getrandbits(64):016x}"


def _line(obj) -> bytes:
    return json.dumps(obj).encode("utf-8")


def hostile(rng: random.Random, i: int, work: Path, valid_jpeg: bytes) -> tuple[str, bytes, str]:
    """One hostile line: (class name, raw bytes of the line, its marker); its event id is ``fz-<i>``
    where the line has one that can be read."""
    m = marker(rng)
    base = make_event(f"fz-{i}", valid_jpeg + m.encode(), account=f"acct-{m}")
    cls = CLASSES[i % len(CLASSES)]  # every class equally often, in a shuffled stream
    return cls, cls_line(cls, rng, base, m, work), m


# lines whose event id cannot be read back from the dead letter (no JSON object, or an id that is
# made printable by escaping): their dead letters are counted under "(no readable id)"
NO_READABLE_ID = {"not_utf8", "not_json", "not_object", "huge_number", "control_id"}
CLASSES = ("not_utf8", "not_json", "not_object", "missing_field", "wrong_type", "surrogate_id", "surrogate_text",
           "control_id", "time_overflow", "time_no_zone", "huge_number", "bad_base64", "truncated_jpeg", "fake_image",
           "png_bomb", "uri_proc", "uri_key", "uri_fifo", "uri_dir", "uri_bucket", "huge_text", "unknown_kind",
           "nested_junk")


def cls_line(cls: str, rng: random.Random, base: dict, m: str, work: Path) -> bytes:
    e = dict(base)
    if cls == "not_utf8":
        return b'{"event_id": "x", "account": "' + m.encode() + b'\xff\xfe"}'
    if cls == "not_json":
        return f"{{oops {m}".encode()
    if cls == "not_object":
        return _line([m, 1, None])
    if cls == "missing_field":
        e.pop(rng.choice(["provider", "kind", "occurred_at", "account"]))
    elif cls == "wrong_type":
        e[rng.choice(["provider", "kind", "occurred_at", "account", "content_b64"])] = rng.choice([1, [], {}, None, True])
    elif cls == "surrogate_id":
        return _line(e)[:-1] + b', "conversation_id": "c\\ud800"}'
    elif cls == "surrogate_text":
        e.update(kind="text", mime="text/plain", conversation_id="c-" + m, sender="s", participants_minor=True)
        e.pop("content_b64")
        return _line(e)[:-1] + f', "text": "{m} \\udfff"'.encode() + b"}"
    elif cls == "control_id":
        e["event_id"] = "bad\x00id\x1b" + str(rng.getrandbits(16))
    elif cls == "time_overflow":
        e["occurred_at"] = rng.choice(["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
    elif cls == "time_no_zone":
        e["occurred_at"] = "2026-01-01T00:00:00"
    elif cls == "huge_number":
        return _line(e)[:-1] + b', "context": {"port": ' + b"9" * 5000 + b"}}"
    elif cls == "bad_base64":
        e["content_b64"] = "!!" + m + "**"
    elif cls == "truncated_jpeg":
        e["content_b64"] = base64.b64encode(base64.b64decode(e["content_b64"])[:200]).decode()
    elif cls == "fake_image":
        e["content_b64"] = base64.b64encode(b"GIF89a" + m.encode() + os.urandom(64)).decode()
    elif cls == "png_bomb":
        # a PNG header claiming 100000 x 100000 pixels: refused before any decode
        head = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + (100000).to_bytes(4, "big") * 2 + b"\x08\x02\x00\x00\x00"
        e["content_b64"] = base64.b64encode(head + m.encode()).decode()
    elif cls.startswith("uri_"):
        e.pop("content_b64")
        e["content_uri"] = {"uri_proc": "/proc/self/environ", "uri_key": str(work / "keys" / "private.pem"),
                            "uri_fifo": str(work / "fifo"), "uri_dir": str(work),
                            "uri_bucket": f"gs://not-allowed-{rng.getrandbits(20)}/x.jpg"}[cls]
    elif cls == "huge_text":
        e.update(kind="text", mime="text/plain", conversation_id="c-" + m, sender="s", participants_minor=True,
                 text=(m + " ") * 20000)
        e.pop("content_b64")
    elif cls == "unknown_kind":
        e["kind"] = "hologram-" + m
    elif cls == "nested_junk":
        e["context"] = {"ip": {"nested": [m] * 3}, "device": m}
    return _line(e)


def build_world(work: Path, rng: random.Random, n_fuzzed: int) -> dict:
    known = [synth.synthetic_image(70 + i) for i in range(N_KNOWN)]
    paths = []
    for i, img in enumerate(known):
        p = work / f"known-{i}.jpg"
        p.write_bytes(synth.jpeg_bytes(img))
        paths.append(str(p))
    generate_keypair(work / "keys")
    build_snapshot(from_media(paths, MatchSettings()), str(work / "db"), str(work / "keys" / "private.pem"))
    reports = generate_provider_keys(str(work / "provider"))
    _, centre_public = generate_centre_keypair(work / "centre")
    reports["centre_public_key"] = str(centre_public)
    os.mkfifo(work / "fifo")

    lines, markers, classes, class_of = [], [], {}, {}
    for i, p in enumerate(paths):  # known copies: must be reported
        lines.append(_line(make_event(f"known-{i}", Path(p).read_bytes(), account=f"acct-known-{i}")))
    valid = synth.jpeg_bytes(synth.synthetic_image(9000))
    for i in range(50):  # unrelated pictures: non-hits, nothing may remain
        m = marker(rng)
        lines.append(_line(make_event(f"other-{i}", synth.jpeg_bytes(synth.synthetic_image(9100 + i)),
                                      account=f"acct-{m}")))
        markers.append(m)
    for i in range(n_fuzzed):
        cls, raw, m = hostile(rng, i, work, valid)
        classes[cls] = classes.get(cls, 0) + 1
        class_of[f"fz-{i}"] = cls
        lines.append(raw)
        markers.append(m)
    rng.shuffle(lines)
    (work / "events.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    config = {
        "indicators": {"path": str(work / "db"), "public_key": str(work / "keys" / "public.pem")},
        "grooming": {"enabled": False}, "embedding": {"enabled": False}, "new_material": {"enabled": False},
        "reports": reports, "stores": {"stats_dir": str(work / "out" / "stats")},
        "sinks": {"report_dir": str(work / "out" / "reports"), "dead_letter_dir": str(work / "out" / "dead"),
                  "review_dir": str(work / "out" / "review")},
    }
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    return {"markers": markers, "classes": classes, "class_of": class_of, "lines": len(lines)}


def scan(folder: Path, text: str, markers: list[str]) -> int:
    """How many markers appear in any file under ``folder`` or in ``text``."""
    blobs = [text.encode("utf-8", "replace")]
    for path in folder.rglob("*"):
        if path.is_file():
            blobs.append(path.read_bytes())
    data = b"\n".join(blobs)
    return sum(1 for m in markers if m.encode() in data)


def run(n_fuzzed: int, seed: int) -> dict:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="bench-reliability-") as tmp:
        work = Path(tmp)
        world = build_world(work, rng, n_fuzzed)
        cmd = [sys.executable, "-m", "csadetect.pipelines.detect", "--input_glob", str(work / "events.jsonl"),
               "--config", str(work / "config.yaml"), "--runner", "FnApiRunner"]
        log(f"running the pipeline on {world['lines']} lines ({n_fuzzed} hostile) ...")
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=3600)
        seconds = time.perf_counter() - t0
        summary = {}
        for line in proc.stdout.splitlines():
            if line.startswith("{"):
                summary = json.loads(line)
        letters = [json.loads(line) for p in (work / "out" / "dead").rglob("*.jsonl") for line in p.open()]
        per_class = {cls: {"sent": n, "dead_lettered": 0, "stages": set()} for cls, n in world["classes"].items()}
        for d in letters:
            cls = world["class_of"].get(d.get("event_id") or "")
            row = per_class.setdefault(cls or "(no readable id)", {"sent": 0, "dead_lettered": 0, "stages": set()})
            row["dead_lettered"] += 1
            row["stages"].add(d.get("stage"))
        leaks = scan(work / "out", proc.stderr, world["markers"])
        return {
            "lines": world["lines"], "fuzzed": n_fuzzed, "classes": len(world["classes"]), "seconds": seconds,
            "exit_code": proc.returncode, "crashes": int(proc.returncode != 0), "summary": summary,
            "dead_letter_records": len(letters), "per_class": per_class, "leaks": leaks, "known_sent": N_KNOWN,
            "balanced": bool(summary) and summary.get("received") == sum(
                summary.get(k, 0) for k in ("hit", "non_hit", "dead_lettered")),
            "stderr_tail": proc.stderr[-2000:] if proc.returncode else "",
        }


def table(r: dict) -> str:
    s = r["summary"]
    rows = [
        ("lines sent (valid + hostile)", r["lines"]),
        ("hostile lines (fuzzed, seeded)", f"{r['fuzzed']} in {r['classes']} classes"),
        ("crashes (run exit code != 0)", r["crashes"]),
        ("received = hit + non_hit + dead_lettered", f"{s.get('received')} = {s.get('hit')} + {s.get('non_hit')} + "
                                                    f"{s.get('dead_lettered')} ({'balanced' if r['balanced'] else 'NOT balanced'})"),
        ("dead-letter records written", r["dead_letter_records"]),
        ("reports (known copies sent)", f"{s.get('report')} ({r['known_sent']})"),
        ("leaks (markers of non-hits/hostile events in any output or stderr)", r["leaks"]),
        ("run time, FnApiRunner, 2 cores", f"{r['seconds']:.0f} s"),
    ]
    out = ["| measure | value |", "|---|---|"] + [f"| {a} | {b} |" for a, b in rows]
    out += ["", "| hostile class | sent | dead-lettered | dropped as a non-hit | at stage |", "|---|---|---|---|---|"]
    for cls, row in sorted(r["per_class"].items()):
        stages = ", ".join(sorted(s for s in row["stages"] if s)) or "—"
        if cls in NO_READABLE_ID:
            out.append(f"| {cls} | {row['sent']} | under (no readable id) | — | parse |")
        elif cls == "(no readable id)":
            out.append(f"| {cls} | — | {row['dead_lettered']} | — | {stages} |")
        else:
            out.append(f"| {cls} | {row['sent']} | {row['dead_lettered']} | {row['sent'] - row['dead_lettered']} | {stages} |")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_reliability", description=__doc__.split("\n\n")[0])
    ap.add_argument("--fuzzed", type=int, default=2000, help="hostile lines to generate")
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--write", action="store_true", help="put the table into benchmarks/README.md")
    args = ap.parse_args(argv)
    r = run(args.fuzzed, args.seed)
    out = table(r)
    print(out)
    if r["stderr_tail"]:
        log(r["stderr_tail"])
    if args.write:
        text = README.read_text()
        block = f"{BEGIN}\n{out}\n{END}"
        if BEGIN in text:
            text = text[:text.index(BEGIN)] + block + text[text.index(END) + len(END):]
        else:
            text += "\n" + block + "\n"
        README.write_text(text)
    return 0 if not r["crashes"] and not r["leaks"] and r["balanced"] else 1


if __name__ == "__main__":
    sys.exit(main())
