"""The throughput benchmark's workload (``benchmarks.bench_throughput``): subsets of ``bench_stages``'
cached event set (``workload``), the events repeated and split into files for ``--input_glob``
(``event_glob``), their JPEG bytes (``contents``) and a fresh output folder with its config per pipeline
run (``_outdirs``). ``bench_throughput`` re-exports every name.
"""
from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

from benchmarks import bench_stages as stages
from benchmarks.bench_stages import SIZES, SMALL, config_path
from benchmarks.throughput_common import POOL, WORK

__all__ = ["workload", "event_glob", "contents", "_outdirs"]


# --------------------------------------------------------------------------- workload


def workload(key: str, n: int) -> Path:
    """A directory with the first ``n`` events of bench_stages' cached workload (``events.jsonl``), its
    first SMALL events (``events-20.jsonl``), and links to its snapshot, keys and report keys (so
    ``bench_stages.config_path`` works on it)."""
    if n <= SMALL:
        raise SystemExit(f"--events must be above {SMALL} (the start-up run uses the first {SMALL})")
    label, size = SIZES[key]
    pool = stages.workload(label, size, max(n, POOL))
    base = WORK / f"{size[0]}x{size[1]}-{n}"
    if (base / "ready").exists():
        return base
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    for name in ("db", "keys", "report-keys", "report-keys.json", "stages.json"):
        (base / name).symlink_to(pool / name)
    lines = (pool / "events.jsonl").read_bytes().splitlines(True)[:n]
    (base / "events.jsonl").write_bytes(b"".join(lines))
    (base / f"events-{SMALL}.jsonl").write_bytes(b"".join(lines[:SMALL]))
    (base / "ready").write_text("")
    return base


def event_glob(base: Path, files: int, repeat: int = 1) -> str:
    """The events, ``repeat`` times (copies get their own event ids: ``ev-00001-r2``), as ``files``
    files (round-robin; made on first use), as an ``--input_glob``."""
    if files == 1 and repeat == 1:
        return str(base / "events.jsonl")
    d = base / f"x{repeat}-files{files}"
    if not (d / "ready").exists():
        d.mkdir(exist_ok=True)
        lines = (base / "events.jsonl").read_bytes().splitlines(True)
        n = len(lines)
        for r in range(1, repeat):
            for line in lines[:n]:
                ev = json.loads(line)
                ev["event_id"] = f"{ev['event_id']}-r{r}"
                lines.append((json.dumps(ev) + "\n").encode())
        for i in range(files):
            (d / f"events-{i}.jsonl").write_bytes(b"".join(lines[i::files]))
        (d / "ready").write_text("")
    return str(d / "events-*.jsonl")


def contents(base: Path, n: int) -> list[bytes]:
    """The JPEG bytes of the first ``n`` events."""
    out = []
    with open(base / "events.jsonl", "rb") as fh:
        for line, _ in zip(fh, range(n)):
            out.append(base64.b64decode(json.loads(line)["content_b64"]))
    return out


def _outdirs(base: Path, tag: str) -> tuple[Path, Path]:
    out = WORK / "out" / f"{base.name}-{tag}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    return out, config_path(base, out)
