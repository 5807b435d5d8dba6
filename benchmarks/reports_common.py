"""What every part of the report-protection benchmark (``benchmarks.bench_reports``) shares: the
constants, ``log``, the machine and load description, the timing (pinning to a core, interleaved rounds,
paired ratios; ``check_load`` notes other load in ``BUSY``), the number and table formats, the generated
JPEGs, the keys (``make_keys``, which ``bench_stages`` uses too) and the reports of known hits.
``bench_reports`` re-exports every name.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path
from typing import Callable

from benchmarks.machine import cpu_model, log
from csadetect.config.settings import ProviderSettings
from csadetect.events.event import make_event, parse_event
from csadetect.indicators.index import Match
from csadetect.media.hashing import hash_image
from csadetect.media.synth import jpeg_bytes, synthetic_image
from csadetect.reports import crypto
from csadetect.reports.crypto import generate_centre_keypair
from csadetect.reports.hits import HashedItem, MatchedItem
from csadetect.reports.records import pending_report
from csadetect.review.store import generate_provider_keys

ROOT = Path(__file__).resolve().parent.parent

SEED = 20260401
DATA_DIR = ROOT / "benchmarks" / ".data"
SIZES = ((640, 480), (1600, 1200))


# --------------------------------------------------------------------------- machine and timing


def machine() -> dict:
    model = cpu_model(platform.processor() or "?")
    from importlib.metadata import version

    import apache_beam

    return {
        "cpu": model,
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
        "versions": f"apache-beam {apache_beam.__version__}, cryptography {version('cryptography')}, "
                    f"pyarrow {version('pyarrow')}, pillow {version('pillow')}, pdqhash {version('pdqhash')}",
    }


def load_now() -> str:
    """The 1-minute load average and any running test suite, as one phrase."""
    try:
        load1 = os.getloadavg()[0]
    except OSError:
        return "?"
    busy = subprocess.run(["pgrep", "-f", "python -m pytest"], capture_output=True, text=True).stdout.split()
    return f"load average {load1:.2f}" + (f", pytest running ({len(busy)} processes)" if busy else "")


BUSY: list[str] = []  # where other load was seen while measuring


def check_load(where: str) -> None:
    """Note ``where`` when a test suite is running or the 1-minute load is above 1.2 (this
    benchmark itself keeps one core busy)."""
    busy = subprocess.run(["pgrep", "-f", "python -m pytest"], capture_output=True, text=True).stdout.split()
    load1 = os.getloadavg()[0]
    if busy or load1 > 1.2:
        BUSY.append(f"{where} (load {load1:.2f}{', pytest running' if busy else ''})")
        log(f"  note: other load during {BUSY[-1]}")


def pin_one_core(cpu: int) -> None:
    os.sched_setaffinity(0, {cpu})


def unpin() -> None:
    os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))


def interleaved(methods: dict[str, tuple[Callable[[], int], int]], rounds: int) -> dict[str, dict]:
    """Run every method once per round, in turn (after one warm-up call each).
    ``methods[name] = (run_once -> items, repeats per round)``. Returns per method the median
    over rounds of items per CPU-second of this process (``cpu``; the process is pinned, so
    that is per core and leaves out time other processes took the core away) and of items per
    wall-clock second (``wall``), with the per-round values."""
    for fn, _ in methods.values():
        fn()
    cpu: dict[str, list[float]] = {name: [] for name in methods}
    wall: dict[str, list[float]] = {name: [] for name in methods}
    for r in range(rounds):
        check_load(f"{next(iter(methods))[:40]}..., round {r + 1}")
        for name, (fn, reps) in methods.items():
            c, t = time.process_time(), time.perf_counter()
            items = sum(fn() for _ in range(reps))
            cpu[name].append(items / max(time.process_time() - c, 1e-9))
            wall[name].append(items / max(time.perf_counter() - t, 1e-9))
        log(f"  round {r + 1}/{rounds}: " + ", ".join(f"{n} {v[-1]:,.0f}/s" for n, v in cpu.items()))
    return {name: {"cpu": statistics.median(cpu[name]), "wall": statistics.median(wall[name]),
                   "cpu_all": cpu[name], "wall_all": wall[name]} for name in methods}


def paired(rates: dict, num: str, den: str, key: str = "cpu") -> float:
    """Median over rounds of (time per item of ``num``) / (time per item of ``den``), each
    round's pair measured back to back: robust to the machine's speed drifting between rounds."""
    return statistics.median(d / n for n, d in zip(rates[num][key + "_all"], rates[den][key + "_all"]))


def fmt(x: float) -> str:
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def ms(rate: float) -> str:
    v = 1000 / rate
    return f"{v:.3f}" if v < 1 else f"{v:.2f}"


def spread(values: list[float]) -> str:
    return f"{fmt(min(values))}-{fmt(max(values))}"


def table(headers: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


# --------------------------------------------------------------------------- data and keys


def images(n: int, size: tuple[int, int], quality: int = 90) -> list[bytes]:
    """``n`` generated JPEGs (``csadetect.media.synth``) of ``size``, fixed seeds, cached."""

    folder = DATA_DIR / f"reports-images-{size[0]}x{size[1]}-q{quality}"
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        path = folder / f"{i:04d}.jpg"
        if not path.exists():
            path.write_bytes(jpeg_bytes(synthetic_image(SEED + i, size), quality))
        out.append(path.read_bytes())
    return out


def make_keys(keydir: Path) -> dict:
    """Provider signing + evidence keys and the Centre's key pair (as tests/conftest.py makes
    them); returns the ``reports`` config section and the Centre's private key path."""

    reports = generate_provider_keys(str(keydir / "provider"))
    centre_private, centre_public = generate_centre_keypair(keydir / "centre")
    reports["centre_public_key"] = str(centre_public)
    return {"reports": reports, "centre_private": str(centre_private),
            "provider_public": str(keydir / "provider" / "public.pem")}


def hit_reports(blobs: list[bytes], keys, prefix: str) -> list[dict]:
    """Reports as ``BuildReports`` makes them for known hits on ``blobs`` (one PDQ match each),
    each with the content sealed for the provider's evidence key under ``_evidence``."""

    out = []
    for i, data in enumerate(blobs):
        event = parse_event(json.dumps(make_event(f"{prefix}-{i:04d}", data, account=f"acct-{i % 17}",
                                                  ip="203.0.113.7", country="DE")).encode())
        token = crypto.seal_content(data, event.mime, keys.evidence_public(), event.event_id)
        item = HashedItem(event.without_content(), image=hash_image(data), evidence=token)
        matched = MatchedItem(item, (Match(f"ind-{i:06d}", "pdq", 4, "benchmark"),), 7)
        out.append(pending_report(matched, ProviderSettings()))
    return out
