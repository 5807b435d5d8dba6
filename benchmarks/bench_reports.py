"""What issue 4's report protection costs, as ratios against the work it rides on (one run).

Four parts, each measured side by side with the work it is added to, in the same process on the
same data, in interleaved rounds (other load on the machine hits both sides alike; the ratios are
the result, absolute rates move with the machine):

* ``seal``: per uploaded image, ``crypto.seal_content`` (the upload sealed for the provider's X25519
  evidence key; ``HashMedia`` does it for every image when ``reports.include_evidence`` is on)
  against ``hashing.hash_image_with_views`` on the same JPEG bytes (``HashMedia``'s hashing, with
  the preprocessing views), and the whole ``HashMediaFn.process`` with the evidence key and
  without it; generated JPEGs (``csadetect.media.synth``) of 640x480 and 1600x1200 px.
* ``report``: per report, ``reports.records.finalise_report`` (open the provider token, re-seal for the EU
  Centre, Ed25519 signature), and the Centre side, ``crypto.verify_report`` + ``open_evidence``.
* ``store``: ``review.ReviewStore.put`` / ``get`` / ``delete`` per item on the local disk, items
  with the sealed evidence and without it.
* ``e2e``: events/s of the batch detection pipeline (``python -m csadetect.pipelines.detect``, FnApiRunner,
  one pinned process) on the same events with the protection on and off (``reports.include_evidence``
  true / false, ``reports.signing_key`` set / null); start-up excluded by subtracting a run of the
  same configuration on 20 events, and included.

Everything is generated (benign synthetic pictures, fixed seeds, fresh keys per run) and the
events are cached under ``benchmarks/.data/``.

    python -m benchmarks.bench_reports            # all parts, ~12 min on 2 cores; prints markdown
    python -m benchmarks.bench_reports --quick    # a < 1 min smoke run (not for the tables)
    python -m benchmarks.bench_reports --readme   # also write the tables into benchmarks/README.md
    python -m benchmarks.bench_reports --only seal --only report
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTEROP_THREADS",
             "TF_NUM_INTRAOP_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy / TensorFlow start their thread pools
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse
import json
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from csadetect.config.settings import Limits, MatchSettings, ProviderSettings, ReportSettings
from csadetect.core.keys import generate_keypair
from csadetect.events.event import make_event, parse_event
from csadetect.indicators.index import Match
from csadetect.indicators.rows import from_media
from csadetect.indicators.snapshot import build_snapshot
from csadetect.media.hashing import hash_image, hash_image_with_views
from csadetect.media.preprocess import views
from csadetect.media.synth import jpeg_bytes, synthetic_image
from csadetect.models.embedding import EmbeddingModel
from csadetect.reports import crypto
from csadetect.reports.crypto import ReportKeys, generate_centre_keypair, seal_content
from csadetect.reports.hits import HashedItem, MatchedItem
from csadetect.reports.records import finalise_report, pending_report
from csadetect.review.store import ReviewStore, generate_provider_keys, review_item
from csadetect.transforms.hash import HashMediaFn

ROOT = Path(__file__).resolve().parent.parent

SEED = 20260401
DATA_DIR = ROOT / "benchmarks" / ".data"
README = ROOT / "benchmarks" / "README.md"
BEGIN = "<!-- bench_reports:begin -->"
END = "<!-- bench_reports:end -->"
SIZES = ((640, 480), (1600, 1200))


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- machine and timing


def machine() -> dict:
    model = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
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


# --------------------------------------------------------------------------- 1. sealing per image


def bench_seal(args, keys, key_paths, res: dict) -> str:

    n = 4 if args.quick else 24
    rounds = 1 if args.quick else args.rounds
    pin_one_core(args.cpu)
    limits, match = Limits(), MatchSettings()
    public = keys.evidence_public()
    rows, notes = [], []
    res["seal"] = {}
    for size in SIZES:
        blobs = images(n, size)
        kb = statistics.mean(len(b) for b in blobs) / 1024
        events = [parse_event(json.dumps(make_event(f"seal-{i:04d}", b)).encode()) for i, b in enumerate(blobs)]
        tokens = [seal_content(b, "image/jpeg", public, e.event_id) for b, e in zip(blobs, events)]
        growth = statistics.mean(len(t) / len(b) for t, b in zip(tokens, blobs))
        log(f"seal: {n} JPEGs of {size[0]}x{size[1]} (mean {kb:.0f} KB)")

        fn_plain = HashMediaFn(limits, match, 64, True, None)
        fn_sealed = HashMediaFn(limits, match, 64, True, key_paths["reports"]["evidence_key"])
        fn_plain.setup()
        fn_sealed.setup()

        def hashing():
            for b in blobs:
                hash_image_with_views(b, max_pixels=limits.max_pixels, preprocess=views)
            return n

        def sealing():
            for b, e in zip(blobs, events):
                seal_content(b, e.mime, public, e.event_id)
            return n

        def stage(fn):
            def run():
                for e in events:
                    for _ in fn.process(e):
                        pass
                return n
            return run

        names = {
            "hash": "`hash_image_with_views` (PDQ + 8 dihedral + MD5 + SHA-256, preprocessing views)",
            "seal": "`seal_content` (envelope, X25519 + HKDF + AES-256-GCM, base64)",
            "stage_off": "`HashMediaFn.process`, no evidence key (hashing + embedding thumbnails)",
            "stage_on": "`HashMediaFn.process`, evidence key (the above + `seal_content`)",
        }
        rates = interleaved({
            names["hash"]: (hashing, 1),
            names["seal"]: (sealing, 20 if size[0] < 1000 else 8),
            names["stage_off"]: (stage(fn_plain), 1),
            names["stage_on"]: (stage(fn_sealed), 1),
        }, rounds)
        h, s = rates[names["hash"]]["cpu"], rates[names["seal"]]["cpu"]
        label = f"{size[0]}x{size[1]}"
        vs = {key: paired(rates, names[key], names["hash"]) for key in names}
        stage_added = paired(rates, names["stage_on"], names["stage_off"]) - 1
        res["seal"][label] = {"seal_over_hash": vs["seal"], "stage_added": stage_added, "seal_ms": 1000 / s,
                              "hash_ms": 1000 / h, "growth": growth, "kb": kb}
        for key in ("hash", "seal", "stage_off", "stage_on"):
            r = rates[names[key]]
            rows.append([label, names[key], ms(r["cpu"]), fmt(r["cpu"]), spread(r["cpu_all"]), fmt(r["wall"]),
                         f"{vs[key]:.3f}"])
        notes.append(f"{label}: {n} JPEGs, quality 90, mean {kb:.0f} KB; the sealed token is {growth:.2f}x the JPEG "
                     f"(base64 envelope inside, base64 outside); sealing = {100 * vs['seal']:.1f}% of the hashing time, "
                     f"the whole stage {100 * stage_added:+.1f}% with the evidence key (median of the per-round ratios).")
    unpin()
    text = [
        "### 1. Sealing each upload vs hashing it (per image, one core)",
        "",
        "Generated JPEGs (`csadetect.media.synth.synthetic_image`, fixed seeds). Process pinned to one core, "
        f"threads 1; median of {rounds} interleaved rounds (min-max per core alongside); per core = items per "
        "CPU-second of the process, wall = per elapsed second. \"x hashing\" = time per image / "
        "`hash_image_with_views`'s time per image in the same round (CPU), median over rounds. `HashMediaFn` as the "
        "pipeline configures it "
        "(views, embedding thumbnails 64 px + mirrored).",
        "",
        table(["image", "step", "ms/image (CPU)", "images/s per core", "min-max", "wall images/s", "x hashing"], rows),
        "",
        *[f"- {note}" for note in notes],
    ]
    return "\n".join(text)


# --------------------------------------------------------------------------- 2. per report


def bench_report(args, keys, key_paths, res: dict) -> str:

    n = 4 if args.quick else 24
    rounds = 1 if args.quick else args.rounds
    pin_one_core(args.cpu)
    sign_only = ReportKeys(keys.signing, None, None)
    no_keys = ReportKeys(None, None, None)
    centre_private = crypto.load_centre_private_key(key_paths["centre_private"])
    provider_public = crypto.signing.load_public_key(key_paths["provider_public"])
    rows, notes = [], []
    res["report"] = {}
    for size in SIZES:
        label = f"{size[0]}x{size[1]}"
        reports = hit_reports(images(n, size), keys, f"rep-{size[0]}")
        finals = [finalise_report(r, keys, r["_evidence"]) for r in reports]
        unsealed = [finalise_report(r, sign_only, None) for r in reports]
        for f in finals:  # the Centre side works on what finalise_report made
            crypto.verify_report(f, provider_public)
            crypto.open_evidence(f, centre_private)
        json_kb = statistics.mean(len(json.dumps(f)) for f in finals) / 1024
        json_plain_kb = statistics.mean(len(json.dumps(f)) for f in unsealed) / 1024
        log(f"report: {n} reports with {label} evidence")

        def finalise(k, with_token=True):
            def run():
                for r in reports:
                    finalise_report(r, k, r["_evidence"] if with_token else None)
                return n
            return run

        def centre(open_it=True, items=finals):
            def run():
                for f in items:
                    crypto.verify_report(f, provider_public)
                    if open_it:
                        crypto.open_evidence(f, centre_private)
                return n
            return run

        names = {
            "full": "provider: `finalise_report`, re-seal for the Centre + sign",
            "sign": "provider: `finalise_report`, sign only (`include_evidence: false`)",
            "none": "provider: `finalise_report`, no keys (field copy only)",
            "centre_full": "Centre: `verify_report` + `open_evidence`",
            "centre_verify": "Centre: `verify_report` only (report without evidence)",
        }
        big = 6 if size[0] < 1000 else 2
        rates = interleaved({
            names["full"]: (finalise(keys), big),
            names["sign"]: (finalise(sign_only, False), 25),
            names["none"]: (finalise(no_keys, False), 50),
            names["centre_full"]: (centre(True), big),
            names["centre_verify"]: (centre(False, unsealed), 25),
        }, rounds)
        res["report"][label] = {k: rates[v]["cpu"] for k, v in names.items()}
        for key, name in names.items():
            r = rates[name]
            rows.append([label if key in ("full", "centre_full") else "(none)", name, fmt(r["cpu"]), spread(r["cpu_all"]),
                         ms(r["cpu"]), fmt(r["wall"])])
        share = ""
        if label in res.get("seal", {}):
            share = (f"; finalising one report = {100 * (1000 / rates[names['full']]['cpu']) / res['seal'][label]['hash_ms']:.0f}%"
                     " of hashing one image")
        notes.append(f"{label} evidence: report JSON {json_kb:.0f} KB with the sealed evidence, {json_plain_kb:.1f} KB "
                     f"without{share}.")
    unpin()
    # rows whose time does not depend on the evidence size: keep one copy (the first size's)
    seen, dedup = set(), []
    for row in rows:
        if row[0] == "(none)":
            if row[1] in seen:
                continue
            seen.add(row[1])
        dedup.append(row)
    text = [
        "### 2. Per report (one core)",
        "",
        "Reports as `BuildReports` makes them for known hits (one PDQ match, the upload sealed for the provider's "
        "evidence key under `_evidence`), on the generated JPEGs of part 1. Provider side: `finalise_report` with the "
        "keys `ReportKeys.load` gives (opens the provider token, re-seals for the Centre with the report id bound, "
        "signs the canonical JSON that includes the ciphertext). Centre side: the key objects loaded once. "
        f"Pinned core; median of {rounds} interleaved rounds; rates per CPU-second.",
        "",
        table(["evidence", "step", "reports/s per core", "min-max", "ms/report (CPU)", "wall reports/s"], dedup),
        "",
        *[f"- {note}" for note in notes],
    ]
    return "\n".join(text)


# --------------------------------------------------------------------------- 3. review store


def bench_store(args, keys, res: dict) -> str:

    n = 10 if args.quick else 100
    rounds = 1 if args.quick else args.rounds
    pin_one_core(args.cpu)
    variants = {}
    for size in SIZES:
        reports = hit_reports(images(min(n, 24), size), keys, f"store-{size[0]}")
        variants[f"{size[0]}x{size[1]} evidence"] = [review_item({**reports[i % len(reports)], "report_id": f"{size[0]:04d}{i:028x}"},
                                                                 reports[i % len(reports)]["_evidence"], 1209600)
                                                     for i in range(n)]
    reports = hit_reports(images(min(n, 24), SIZES[0]), keys, "store-none")
    variants["no evidence"] = [review_item({**reports[i % len(reports)], "report_id": f"{9999:04d}{i:028x}"}, None, 1209600)
                               for i in range(n)]
    root = Path(tempfile.mkdtemp(prefix="bench-review-", dir=args.store_dir))
    log(f"store: {n} items per variant in {root}")
    stores = {name: ReviewStore(str(root / name.replace(" ", "-"))) for name in variants}

    def op(name, what):
        store, items = stores[name], variants[name]

        def run():
            if what == "put":
                for it in items:
                    store.put(it)
            elif what == "get":
                for it in items:
                    assert store.get(it["report_id"]) is not None
            else:
                for it in items:
                    assert store.delete(it["report_id"])
            return n
        return run

    methods = {}
    for name in variants:
        for what in ("put", "get", "delete"):
            methods[f"{name}: {what}"] = (op(name, what), 1)
    rates = interleaved(methods, rounds)  # warm-up call and each round run put, get, delete in order
    shutil.rmtree(root, ignore_errors=True)
    unpin()
    rows = []
    res["store"] = {}
    for name in variants:
        kb = statistics.mean(len(it["review_evidence"] or "") for it in variants[name]) / 1024
        r = {what: rates[f"{name}: {what}"] for what in ("put", "get", "delete")}
        res["store"][name] = {what: v["wall"] for what, v in r.items()}
        rows.append([name, f"{kb:.0f}", *(f"{fmt(r[w]['wall'])} ({fmt(r[w]['cpu'])})" for w in ("put", "get", "delete"))])
    fs = subprocess.run(["df", "-T", str(Path(args.store_dir or tempfile.gettempdir()))], capture_output=True,
                        text=True).stdout.splitlines()[-1].split()
    text = [
        "### 3. Review store (local disk)",
        "",
        f"`ReviewStore.put` / `get` / `delete` of {n} review items (`review_item` of the reports of part 2) per "
        f"variant, one Parquet file (zstd) per item, local {fs[1] if len(fs) > 1 else '?'} file system under "
        f"{args.store_dir or tempfile.gettempdir()}; pinned core; median of {rounds} interleaved rounds. "
        "Items/s per wall second (per CPU-second in brackets; the difference is waiting for the disk).",
        "",
        table(["item", "sealed evidence KB", "put items/s", "get items/s", "delete items/s"], rows),
    ]
    return "\n".join(text)


# --------------------------------------------------------------------------- 4. end to end


E2E_CONFIGS = (
    ("all on: evidence sealed + signed (default)", {}),
    ("evidence off (`include_evidence: false`), signed", {"include_evidence": False}),
    ("evidence on, unsigned (`signing_key: null`)", {"signing_key": None}),
    ("all off: no evidence, unsigned", {"include_evidence": False, "signing_key": None}),
)


def e2e_data(work: Path, n: int, size: tuple[int, int], known_every: int) -> dict:
    """``n`` image events (JSON Lines, base64 JPEGs of generated pictures); every
    ``known_every``-th is an exact copy of one of 3 known pictures, whose rows (PDQ, MD5, SHA-256,
    embedding, as ``indicators from-media`` makes them) form a small signed snapshot. Cached."""

    params = {"n": n, "size": list(size), "known_every": known_every, "seed": SEED, "v": 1}
    meta = work / "meta.json"
    if meta.exists() and json.loads(meta.read_text()).get("params") == params:
        return json.loads(meta.read_text())["data"]

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    known = []
    for k in range(3):
        path = work / f"known-{k}.jpg"
        path.write_bytes(jpeg_bytes(synthetic_image(SEED + 500 + k, size), 90))
        known.append(path)
    generate_keypair(work / "keys")
    rows = from_media([str(p) for p in known], embedder=EmbeddingModel.load())
    build_snapshot(rows, str(work / "db"), str(work / "keys" / "private.pem"))
    total, n_known = 0, 0
    with open(work / "events.jsonl", "w") as full, open(work / "events-20.jsonl", "w") as small:
        for i in range(n):
            if i % known_every == known_every // 2:
                data = known[n_known % 3].read_bytes()
                n_known += 1
            else:
                data = jpeg_bytes(synthetic_image(SEED + 1000 + i, size), 90)
            total += len(data)
            line = json.dumps(make_event(f"ev-{i:05d}", data, account=f"acct-{i % 37}")) + "\n"
            full.write(line)
            if i < 20:
                small.write(line)
    data = {"n": n, "known": n_known, "indicators": len(rows), "mean_kb": total / n / 1024,
            "jsonl_mb": (work / "events.jsonl").stat().st_size / 2**20}
    meta.write_text(json.dumps({"params": params, "data": data}))
    return data


def run_pipeline(work: Path, events: str, reports: dict, cpu: int, tag: str) -> dict:
    """``python -m csadetect.pipelines.detect`` in a child process pinned to ``cpu``: wall, CPU, counts."""
    import yaml

    out = work / "out" / tag
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    config = {
        "indicators": {"path": str(work / "db"), "public_key": str(work / "keys" / "public.pem")},
        "grooming": {"enabled": False},  # image events only
        "reports": reports,
        "sinks": {"report_dir": str(out / "reports"), "review_dir": str(out / "review"),
                  "dead_letter_dir": str(out / "dead")},
        "stores": {"stats_dir": str(out / "stats")},
    }
    (out / "config.yaml").write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "csadetect.pipelines.detect", "--input_glob", str(work / events), "--config",
           str(out / "config.yaml"), "--runner", "FnApiRunner"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"pipeline failed ({tag}):\n{proc.stderr[-3000:]}")
    counts = json.loads(proc.stdout.strip().splitlines()[-1])
    reports_out = [json.loads(line) for f in (out / "reports").glob("*.jsonl") for line in open(f)]
    review = list((out / "review").glob("*.parquet")) if (out / "review").exists() else []
    return {"wall": wall, "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            "counts": counts, "signed": sum(bool(r.get("signature")) for r in reports_out),
            "sealed": sum(bool(r.get("evidence_encrypted")) for r in reports_out), "reports": len(reports_out),
            "review": len(review)}


def bench_e2e(args, key_paths, res: dict) -> str:
    size = tuple(int(x) for x in args.e2e_size.split("x"))
    n = 30 if args.quick else args.events
    rounds = 1 if args.quick else args.e2e_rounds
    configs = [E2E_CONFIGS[0], E2E_CONFIGS[-1]] if args.quick else list(E2E_CONFIGS)
    work = DATA_DIR / f"reports-e2e-{size[0]}x{size[1]}-{n}"
    log(f"e2e: {n} events of {size[0]}x{size[1]} in {work} (generated once)")
    data = e2e_data(work, n, size, 20)
    small_n = min(20, n)
    full: dict[str, list[dict]] = {name: [] for name, _ in configs}
    small: list[dict] = []
    for r in range(rounds):
        order = configs[r % len(configs):] + configs[:r % len(configs)]  # rotate: no config always first
        check_load(f"e2e round {r + 1}")
        if not args.quick:  # start-up: one configuration per round, in turn (it does not depend on `reports`)
            name, over = configs[r % len(configs)]
            small.append(run_pipeline(work, "events-20.jsonl", dict(key_paths["reports"], **over), args.cpu, "small"))
            log(f"  round {r + 1}/{rounds} start-up ({name}, {small_n} events): {small[-1]['wall']:.1f} s wall, "
                f"{small[-1]['cpu']:.1f} CPU s")
        for name, over in order:
            i = [c for c, _ in configs].index(name)
            full[name].append(run_pipeline(work, "events.jsonl", dict(key_paths["reports"], **over), args.cpu, f"c{i}"))
            f = full[name][-1]
            log(f"  round {r + 1}/{rounds} {name}: {n / f['wall']:.1f} events/s, {n / f['cpu']:.1f}/CPU s, "
                f"counts {f['counts']}, {f['reports']} reports ({f['signed']} signed, {f['sealed']} sealed), "
                f"{f['review']} review items")
    base = configs[-1][0]
    fixed_cpu = statistics.median(x["cpu"] for x in small) if small else None
    fixed_wall = statistics.median(x["wall"] for x in small) if small else None

    def med(name, key):
        return statistics.median(x[key] for x in full[name])

    def ratio(name, fixed=None):
        """Median over rounds of CPU time per event of ``name`` / that of "all off" in the same round."""
        f = fixed or 0.0
        return statistics.median((x["cpu"] - f) / (y["cpu"] - f) for x, y in zip(full[name], full[base]))

    rows = []
    res["e2e"] = {}
    for name, _ in configs:
        cpu, wall = med(name, "cpu"), med(name, "wall")
        last = full[name][-1]
        c = last["counts"]
        steady = None
        if fixed_cpu is not None:
            steady = ((n - small_n) / (wall - fixed_wall), (n - small_n) / (cpu - fixed_cpu))
        res["e2e"][name] = {"ratio": ratio(name), "ratio_steady": ratio(name, fixed_cpu) if fixed_cpu else None,
                            "ms_steady": 1000 / steady[1] if steady else None}
        rows.append([
            name, fmt(n / wall), fmt(n / cpu), f"{fmt(steady[0])} / {fmt(steady[1])}" if steady else "n/a",
            f"{res['e2e'][name]['ratio']:.3f}",
            f"{res['e2e'][name]['ratio_steady']:.3f}" if fixed_cpu else "n/a",
            f"{c.get('hit', 0)} / {c.get('report', 0)} / {c.get('hit_review', 0)} / {c.get('non_hit', 0)}",
            f"{last['signed']} / {last['sealed']}",
        ])
    per_round = "; ".join(
        f"{name.split(':')[0].split(' (')[0]}: " + ", ".join(f"{x['cpu']:.1f}" for x in full[name]) for name, _ in configs)
    text = [
        "### 4. End to end (Beam batch pipeline, FnApiRunner, one pinned process)",
        "",
        f"`python -m csadetect.pipelines.detect --input_glob events.jsonl --config C --runner FnApiRunner` in a child process "
        f"pinned to one core (the FnApiRunner runs its SDK worker in the same process), the default configuration "
        f"(preprocess views, embedding + new-material classifier, quality gate 50; reports as Parquet + JSON Lines, "
        f"review store, stats; the text grooming classifier off: there is no text) with only `reports` changed. "
        f"{n} events of generated {size[0]}x{size[1]} JPEGs (quality 90, mean {data['mean_kb']:.0f} KB, "
        f"{data['jsonl_mb']:.0f} MB of JSON Lines); {data['known']} are exact copies of 3 known pictures "
        f"(snapshot of {data['indicators']} indicators: their PDQ, MD5, SHA-256 and 4 embedding rows each). "
        f"{rounds} rounds, the configurations in turn (order rotated each round); rates are medians over rounds. "
        f"\"x CPU time\" = CPU seconds of the run / those of \"all off\" in the same round, median over rounds. "
        + (f"Start-up: the same command on the first {small_n} events, once per round (configurations in turn; "
         f"median {fixed_wall:.1f} s wall, {fixed_cpu:.1f} CPU s: imports, TensorFlow and the models, snapshot "
         f"verification); \"excl. start-up\" subtracts it: (N - {small_n}) / (time N - start-up), and the ratio "
         "(CPU s - start-up) / (CPU s of all off - start-up)." if small else "Start-up not measured (--quick)."),
        "",
        table(["reports", "events/s (wall)", "events/s per CPU s", "excl. start-up: events/s wall / per CPU s",
               "x CPU time vs all off", "x CPU time vs all off, excl. start-up",
               "hit / report / review / non-hit", "reports signed / sealed"], rows),
        "",
        f"CPU seconds per run, by round: {per_round}.",
    ]
    return "\n".join(text)


# --------------------------------------------------------------------------- main


def summary_paragraph(res: dict) -> str:
    parts = []
    s = res.get("seal", {})
    if s:
        parts.append("Sealing each upload for the provider's evidence key costs "
                     + ", ".join(f"{v['seal_ms']:.2f} ms at {k} ({100 * v['seal_over_hash']:.1f}% of "
                                 f"`hash_image_with_views`' {v['hash_ms']:.1f} ms)" for k, v in s.items())
                     + "; the whole HashMedia step takes "
                     + ", ".join(f"{100 * v['stage_added']:+.1f}% at {k}" for k, v in s.items()) + " with it.")
    rp = res.get("report", {})
    if rp:
        parts.append("Per report, the provider finalises "
                     + ", ".join(f"{v['full']:,.0f}/s at {k}" for k, v in rp.items())
                     + " (sign only: {:,.0f}/s) and the Centre verifies and opens ".format(next(iter(rp.values()))["sign"])
                     + ", ".join(f"{v['centre_full']:,.0f}/s" for v in rp.values()) + ".")
    e = res.get("e2e", {})
    if e:
        bits = []
        for name, v in list(e.items())[:-1]:
            st = f" ({100 * (v['ratio_steady'] - 1):+.1f}% excluding start-up)" if v.get("ratio_steady") else ""
            bits.append(f"{name.split(' (')[0].split(':')[0]} {100 * (v['ratio'] - 1):+.1f}%{st}")
        parts.append("End to end, CPU time per event against all protection off: " + "; ".join(bits) + ".")
    return " ".join(parts)


def write_readme(section: str) -> None:
    text = README.read_text()
    block = f"{BEGIN}\n{section.rstrip()}\n{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    README.write_text(text)
    log(f"wrote the tables into {README} (between the bench_reports markers)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_reports", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small smoke run (< 1 min); never writes the README")
    ap.add_argument("--only", choices=["seal", "report", "store", "e2e"], action="append", help="run only this part (repeatable)")
    ap.add_argument("--rounds", type=int, default=7, help="interleaved rounds per in-process measurement (median)")
    ap.add_argument("--e2e-rounds", type=int, default=5, help="rounds of the end-to-end runs")
    ap.add_argument("--events", type=int, default=1000, help="events per end-to-end run")
    ap.add_argument("--e2e-size", default="1024x768", help="image size of the end-to-end events, WxH")
    ap.add_argument("--cpu", type=int, default=0, help="core to pin to")
    ap.add_argument("--store-dir", default=None, help="where the review store is measured (default: the temp dir)")
    ap.add_argument("--readme", action="store_true", help="write the tables into benchmarks/README.md (between markers)")
    args = ap.parse_args(argv)
    parts = args.only or ["seal", "report", "store", "e2e"]
    started = time.time()
    mach = machine()
    load_before = load_now()

    res: dict = {}
    sections = []
    with tempfile.TemporaryDirectory(prefix="bench-reports-keys-") as keydir:
        key_paths = make_keys(Path(keydir))
        keys = ReportKeys.load(ReportSettings(**key_paths["reports"]))
        for part in parts:
            t0 = time.time()
            if part == "seal":
                sections.append(bench_seal(args, keys, key_paths, res))
            elif part == "report":
                sections.append(bench_report(args, keys, key_paths, res))
            elif part == "store":
                sections.append(bench_store(args, keys, res))
            else:
                sections.append(bench_e2e(args, key_paths, res))
            log(sections[-1] + "\n")
            log(f"{part} done in {time.time() - t0:.0f}s")
    cmd = ".venv/bin/python -m benchmarks.bench_reports" + "".join(f" --only {p}" for p in args.only or [])
    cmd += " --quick" if args.quick else " --readme"
    load_after = load_now()
    head = [
        "## Issue 4: report protection costs",
        "",
        f"Reproduce: `{cmd}` ({'a smoke run, not for the tables' if args.quick else 'writes this section between its markers'}; "
        f"about {max(1, round((time.time() - started) / 60))} min here; `--quick` for a < 1 min smoke run that writes nothing). "
        f"Machine: {mach['cpu']}, {mach['cores']} cores (`nproc`), Python {mach['python']}; {mach['versions']}. "
        f"Load when it started: {load_before}; when it ended: {load_after}; "
        + (f"other load seen during: {'; '.join(BUSY)}." if BUSY else "no other load seen at any round's start "
           "(no pytest running, 1-minute load <= 1.2)."),
        "",
        summary_paragraph(res),
    ]
    section = "\n".join(head) + "\n\n" + "\n\n".join(sections) + "\n"
    print(section)
    if args.readme and not args.quick:
        write_readme(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
