"""Per-stage cost breakdown of the detection pipeline, from a profiler (issue 15, item 1).

What it measures: where the CPU time of one image event goes, end to end, with the default
detectors on (PDQ + preprocessing views + dihedral hashes, MD5/SHA-1/SHA-256, embedding,
new-material classifier, sealing of the upload, re-sealing and signing of reports), split into
stages: JPEG decode, view construction, PDQ, digests, embedding thumbnails, embedding model,
classifier, matching, sealing, signing, review store, report/stats writing, and the rest (Beam:
runner, coders, fusion, bundles; csadetect glue in the DoFns; libraries they call).

How: each measurement runs in a child process pinned to one core (``os.sched_setaffinity``),
under ``cProfile`` with a CPU-time clock (``time.process_time``: other load on the machine does not
count, and CPU spent in TensorFlow's threads is charged to the Python call that waits for it):

* ``beam``: ``python -m csadetect.pipelines.detect ... --runner FnApiRunner`` (the SDK worker runs
  in the same thread) on a JSON Lines file of image events;
* ``loop``: the same per-event work without Beam, in a plain loop over the same events (the DoFns'
  own functions: ``parse_event``, ``HashMediaFn.process``, the embedding and classifier handlers'
  ``run_inference`` in batches of 64, ``IndicatorIndex.match_image``, ``pending_report`` +
  ``finalise_report`` for known matches); Beam's overhead is the difference, side by side;

each once without the profiler (the real rates, and the profiler's inflation) and once with it.
Time is attributed to stages by function: a stage is a set of root functions (e.g.
``load_image`` = decode, ``pdq_from_array`` = PDQ, ``seal_content`` = sealing); every function's
own time is split over the stages of its callers in proportion to the time each caller spent in
it (gprof-style propagation over the profile's call graph), and what no stage reaches is the
rest, split by the file of the function that spent it. A separate direct timing (no profiler) in
the loop child gives each PDQ view and each digest on its own.

Workload: ``bench_known``'s end-to-end data (its ``e2e_data``: crops of generated pictures and
scikit-image photos, every 10th a crop of a known picture, a signed snapshot of 100,000 random +
the known PDQ indicators), a few hundred events at 3.1 MP and 1.0 MP, plus exact copies of the
known pictures so that reports are sealed and signed; report keys as ``bench_reports`` makes them.
Cached under ``benchmarks/.data/stages/``.

    python -m benchmarks.bench_stages                  # 250 events at 3 MP and 1 MP; writes benchmarks/stages.md
    python -m benchmarks.bench_stages --render         # format the saved measurement again (notes kept)
    python -m benchmarks.bench_stages --events 40 --sizes 1 --no-write   # smoke run (~3 min; per-event
                                                       # figures need >= ~200 events, the fixed cost is subtracted)
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
             "TF_NUM_INTEROP_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse
import base64
import cProfile
import json
import pstats
import resource
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / ".data" / "stages"
OUT_MD = ROOT / "benchmarks" / "stages.md"
SIZES = {"3": ("3.1 MP", (2048, 1536)), "1": ("1.0 MP", (1152, 864))}
N_RANDOM = 100_000
SMALL = 20  # the same runs on the first SMALL events give the fixed cost per run, subtracted stage by stage
BATCH = 64  # the default RunInference max batch size (config `embedding.batching`)


def log(*args) -> None:
    print(*args, file=sys.stderr, flush=True)


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


# --------------------------------------------------------------------------- children


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def child_beam(base: Path, out: Path, profile: bool, limit: int = 0) -> dict:
    from csadetect.pipelines import detect

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    argv = ["--input_glob", str(base / (f"events-{limit}.jsonl" if limit else "events.jsonl")), "--config", str(config_path(base, out)),
            "--runner", "FnApiRunner"]
    prof = cProfile.Profile(time.process_time) if profile else None
    started: dict = {}
    run_and_wait = detect.run_and_wait

    def timed_run_and_wait(*a, **kw):  # instrumentation in this child only: CPU s before the graph runs
        started["cpu"] = _cpu()
        return run_and_wait(*a, **kw)

    detect.run_and_wait = timed_run_and_wait
    c0, t0 = _cpu(), time.perf_counter()
    if prof:
        prof.enable()
    try:
        rc = detect.main(argv)
    finally:
        if prof:
            prof.disable()
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    if rc:
        raise SystemExit(f"pipeline exited {rc}")
    if prof:
        prof.dump_stats(str(out / "profile.prof"))
    reports = [json.loads(line) for f in (out / "reports").rglob("*.jsonl") for line in open(f)]
    return {"wall": wall, "cpu": cpu, "startup_cpu": started["cpu"] - c0, "reports": len(reports),
            "signed": sum(bool(r.get("signature")) for r in reports),
            "sealed": sum(bool(r.get("evidence_encrypted")) for r in reports)}


def child_loop(base: Path, out: Path, profile: bool, limit: int = 0) -> dict:
    """The pipeline's per-event work in a plain loop (no Beam), over the same events."""
    from csadetect.config.settings import Limits, MatchSettings, ProviderSettings, ReportSettings, Settings
    from csadetect.events.event import parse_event
    from csadetect.indicators.index import load_index
    from csadetect.pipelines.detect import resolve_models
    from csadetect.reports.crypto import ReportKeys
    from csadetect.reports.hits import HashedItem, MatchedItem
    from csadetect.reports.records import EVIDENCE, finalise_report, pending_report
    from csadetect.transforms.classify import NewMaterialHandler
    from csadetect.transforms.embed import ImageEmbeddingHandler
    from csadetect.transforms.hash import HashMediaFn

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    settings = Settings()
    reports_cfg = json.loads((base / "report-keys.json").read_text())
    models = resolve_models(settings)
    emb, pol = models.embedding, models.new_material
    lines = (base / "events.jsonl").read_bytes().splitlines()[:limit or None]

    prof = cProfile.Profile(time.process_time) if profile else None
    c0, t0 = _cpu(), time.perf_counter()
    if prof:
        prof.enable()
    # one-off loads (counted as start-up, as in the pipeline)
    index = load_index(str(base / "db"), str(base / "keys" / "public.pem"), MatchSettings())
    keys = ReportKeys.load(ReportSettings(**reports_cfg))
    hash_fn = HashMediaFn(Limits(), settings.match, emb.input_size, settings.embedding.flip, reports_cfg["evidence_key"])
    hash_fn.setup()
    emb_handler = ImageEmbeddingHandler(emb.path)
    emb_model = emb_handler.load_model()
    cls_handler = NewMaterialHandler(pol)
    cls_model = cls_handler.load_model()
    c1 = _cpu()
    hashed = []
    for line in lines:
        event = parse_event(line)
        hashed.extend(x for x in hash_fn.process(event) if isinstance(x, HashedItem))
    embedded = []
    for i in range(0, len(hashed), BATCH):
        embedded.extend(emb_handler.run_inference(hashed[i:i + BATCH], emb_model))
    matched = [MatchedItem(it, tuple(index.match_image(it.image, it.embeddings, emb.version, emb.threshold)),
                           index.version) for it in embedded]
    scored = []
    for i in range(0, len(matched), BATCH):
        scored.extend(cls_handler.run_inference(matched[i:i + BATCH], cls_model))
    reports = []
    for m in scored:
        if m.matches:
            pending = pending_report(m, ProviderSettings(), "bench")
            reports.append(finalise_report(pending, keys, pending.get(EVIDENCE)))
    if prof:
        prof.disable()
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    if prof:
        prof.dump_stats(str(out / "profile.prof"))
    res = {"wall": wall, "cpu": cpu, "startup_cpu": c1 - c0, "events": len(lines), "hashed": len(hashed),
           "known_matches": sum(bool(m.matches) for m in scored), "reports": len(reports),
           "signed": sum(bool(r.get("signature")) for r in reports)}
    if not profile and not limit:
        res["detail"] = hashing_detail(lines[:100], reports_cfg["evidence_key"], emb.input_size, settings.embedding.flip)
    return res


def hashing_detail(lines: list[bytes], evidence_key: str, embed_size: int, flip: bool) -> dict:
    """Direct CPU timing (no profiler) of each piece of hashing one image: decode, views, PDQ of the
    image and of each view by name, each digest, the embedding thumbnails, sealing the upload."""
    import hashlib

    import numpy as np

    from csadetect.events.event import parse_event
    from csadetect.media.hashing import load_image, pdq_from_image
    from csadetect.media.preprocess import views
    from csadetect.models.embedding import model_inputs
    from csadetect.reports.crypto import load_evidence_private_key, seal_content
    from csadetect.signals import digests

    seal_for = load_evidence_private_key(evidence_key).public_key()
    algos = tuple(digests())
    tot: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)

    def timed(name, fn, *a):
        t = time.process_time()
        r = fn(*a)
        tot[name] += time.process_time() - t
        calls[name] += 1
        return r

    for line in lines:
        ev = timed("parse_event (JSON + base64)", parse_event, line)
        data = ev.content
        for a in algos:
            timed(f"digest {a}", lambda d, a=a: hashlib.new(a, d).hexdigest(), data)
        img = timed("JPEG decode (load_image, reduced)", load_image, data)
        timed("PDQ image (8 dihedral)", pdq_from_image, img)
        vs = timed("views (preprocess, find boxes + crop)", views, img)
        for name, v in vs:
            timed(f"PDQ view `{name}` (8 dihedral)", pdq_from_image, v)
        timed("embedding thumbnails (model_inputs)", model_inputs, [("image", img), *vs], embed_size, flip)
        timed("seal_content (upload, X25519 + AES-256-GCM)", seal_content, data, ev.mime, seal_for, ev.event_id)
    n = len(lines)
    return {"n": n, "rows": [[name, tot[name] * 1000 / calls[name], calls[name] / n, tot[name] * 1000 / n]
                             for name in tot]}


# --------------------------------------------------------------------------- attribution

# stage -> predicate on a profile key (file, line, function name); order = table order
def _in(path_part: str, *names: str):
    return lambda f, fn: path_part in f and (not names or fn in names)


STAGES = [
    ("read + parse events (JSON, base64)", [_in("csadetect/events/event.py", "parse_event")]),
    ("JPEG decode (PIL, DCT-reduced)", [_in("csadetect/media/hashing.py", "load_image")]),
    ("view construction (preprocess.views)", [_in("csadetect/media/preprocess.py", "views")]),
    ("PDQ, image + views (8 dihedral each)", [_in("csadetect/media/hashing.py", "pdq_from_array")]),
    ("MD5 / SHA-1 / SHA-256 of the bytes", [_in("csadetect/media/hashing.py", "crypto_hashes")]),
    ("embedding thumbnails (model_inputs)", [_in("csadetect/models/embedding.py", "model_inputs")]),
    ("sealing the upload (seal_content: X25519 + AES-GCM)", [_in("csadetect/reports/crypto.py", "seal_content")]),
    ("embedding model (TensorFlow)", [_in("csadetect/models/embedding.py", "embed_arrays")]),
    ("new-material classifier", [_in("csadetect/models/classifier.py", "score")]),
    ("matching (IndicatorIndex.match*)", [lambda f, fn: "csadetect/indicators/index.py" in f and fn.startswith("match")]),
    ("report: re-seal evidence for the Centre", [_in("csadetect/reports/crypto.py", "reseal_for_centre")]),
    ("report: signing (canonical JSON + Ed25519)", [_in("csadetect/reports/crypto.py", "sign_report")]),
    ("review store (Parquet item per hit)", [_in("csadetect/review/")]),
    ("writing reports / dead letters / stats", [_in("csadetect/transforms/sinks.py"), _in("csadetect/transforms/stats.py")]),
]
STARTUP = "start-up and one-off loads (imports, models, snapshot, keys)"
STARTUP_ROOTS = [
    lambda f, fn: fn == "<module>",
    lambda f, fn: "csadetect/" in f and fn in ("setup", "load_model", "load_index", "check_head", "load"),
    lambda f, fn: "csadetect/pipelines/" in f and (fn.startswith("check_") or fn in ("launch", "resolve_models",
                                                                                     "print_effective")),
]
REST = {
    "apache_beam": "rest: Beam (runner, bundles, coders, fusion, pickling)",
    "csadetect": "rest: csadetect glue (DoFn bodies, records, decide, guards)",
    "other": "rest: other libraries outside a stage (json, pickle, dataclasses, ...)",
}


def _stage_of(key) -> str | None:
    f, _, fn = key
    f = f.replace(os.sep, "/")
    if any(p(f, fn) for p in STARTUP_ROOTS):
        return STARTUP
    for name, preds in STAGES:
        if any(p(f, fn) for p in preds):
            return name
    return None


def attribute(prof_path: Path) -> dict:
    """Stage -> CPU seconds; plus the top functions of the rest and call counts."""
    stats = pstats.Stats(str(prof_path)).stats  # key -> (cc, nc, tt, ct, callers{caller: (nc, cc, tt, ct)})
    roots = {k: _stage_of(k) for k in stats}
    share: dict = {k: ({roots[k]: 1.0} if roots[k] else {}) for k in stats}
    order = sorted(stats, key=lambda k: -stats[k][3])  # callers (larger cumulative time) first
    for _ in range(80):
        delta = 0.0
        for k in order:
            if roots[k]:
                continue
            callers = stats[k][4]
            total = sum(v[3] for v in callers.values())
            if total <= 0:
                continue
            new: dict = defaultdict(float)
            for c, v in callers.items():
                w = v[3] / total
                for s, x in share.get(c, {}).items():
                    new[s] += w * x
            old = share[k]
            delta = max(delta, max((abs(new.get(s, 0) - old.get(s, 0)) for s in set(new) | set(old)), default=0))
            share[k] = dict(new)
        if delta < 1e-6:
            break
    out: dict[str, float] = defaultdict(float)
    rest_top: dict = defaultdict(float)
    for k, v in stats.items():
        tt = v[2]
        s = share[k]
        for name, x in s.items():
            out[name] += tt * x
        left = tt * (1 - sum(s.values()))
        if left > 0:
            f = k[0].replace(os.sep, "/")
            cat = "apache_beam" if "apache_beam" in f else "csadetect" if "csadetect/" in f else "other"
            out[REST[cat]] += left
            short = f.split("site-packages/")[-1].split(str(ROOT) + "/")[-1]
            if "/lib/python3" in short:
                short = "python3" + short.split("/lib/python3", 1)[1]
            rest_top[(cat, short, k[2])] += left
    calls = {name: sum(v[1] for k, v in stats.items() if roots[k] == name) for name, _ in STAGES}
    pdq = [v[1] for k, v in stats.items() if k[2] == "pdq_from_array" and "csadetect/media" in k[0]]
    return {"stages": dict(out), "total": sum(v[2] for v in stats.values()), "calls": calls,
            "pdq_calls": sum(pdq), "rest": [[c, f, fn, t] for (c, f, fn), t in rest_top.items() if t > 0.005]}


# --------------------------------------------------------------------------- parent


def run_child(mode: str, base: Path, tag: str, profile: bool, cpu: int, limit: int) -> dict:
    out = WORK / "out" / f"{base.name}-{tag}"
    cmd = [sys.executable, "-m", "benchmarks.bench_stages", "--child", mode, "--base", str(base), "--out", str(out),
           "--limit", str(limit)]
    if profile:
        cmd.append("--profile")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))
    if proc.returncode != 0:
        raise RuntimeError(f"child {mode} ({tag}) failed:\n{proc.stderr[-3000:]}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["process_wall"] = time.perf_counter() - t0
    if profile:
        res["attr"] = attribute(out / "profile.prof")
    log(f"    {tag}: {res['wall']:.1f} s wall, {res['cpu']:.1f} CPU s")
    return res


def fmt(x: float, d: int = 2) -> str:
    return f"{x:,.{d}f}"


def table(headers, rows) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|"]
    return "\n".join(out + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows])


def marginal(big: dict, small: dict, n: int) -> tuple[dict, float, float]:
    """Per-event CPU seconds by stage ((N-run minus SMALL-run) / (N - SMALL)), per-event total, fixed cost per run."""
    k = n - SMALL
    stages = {name: (big["stages"].get(name, 0.0) - small["stages"].get(name, 0.0)) / k
              for name in set(big["stages"]) | set(small["stages"]) if name != STARTUP}
    # start-up (imports, TensorFlow, model and snapshot loads) is fixed by definition: it is left out of
    # the subtraction, where its run-to-run noise (seconds) would swamp the per-event figures
    per_event = sum(stages.values())
    return stages, per_event, small["total"] - SMALL * per_event


def section(label: str, size, n: int, data: dict, r: dict) -> tuple[str, dict]:
    """The markdown of one image size, and the numbers for the summary."""
    bp, lp = r["beam_prof"]["attr"], r["loop_prof"]["attr"]
    bs, b_tot, b_fixed = marginal(bp, r[f"beam_prof_{SMALL}"]["attr"], n)
    ls, l_tot, l_fixed = marginal(lp, r[f"loop_prof_{SMALL}"]["attr"], n)
    names = [s for s, _ in STAGES] + list(REST.values())
    rows = []
    for name in names:
        b, l = bs.get(name, 0.0), ls.get(name, 0.0)
        if abs(b) < 1e-5 and abs(l) < 1e-5:
            continue
        rows.append([name, fmt(b * 1000), fmt(100 * b / b_tot, 1) + "%", fmt(l * 1000), fmt(100 * l / l_tot, 1) + "%",
                     fmt((b - l) * 1000)])
    rows.append(["**per event (marginal)**", f"**{fmt(b_tot * 1000)}**", "100%", f"**{fmt(l_tot * 1000)}**",
                 "100%", f"**{fmt((b_tot - l_tot) * 1000)}**"])
    rows.append(["fixed cost per run, s (start-up, graph, model loads, first calls; under cProfile)", fmt(b_fixed, 1), "",
                 fmt(l_fixed, 1), "", ""])
    k = n - SMALL
    bu, lu, bu0, lu0 = r["beam"], r["loop"], r[f"beam_{SMALL}"], r[f"loop_{SMALL}"]

    def work(x):  # CPU s after start-up (imports, models, snapshot: measured in the child)
        return x["cpu"] - x["startup_cpu"]

    b_work = work(bu) - work(bu0)
    l_work = work(lu) - work(lu0)
    infl_b = (work(r["beam_prof"]) - work(r[f"beam_prof_{SMALL}"])) / max(b_work, 1e-9)
    infl_l = (work(r["loop_prof"]) - work(r[f"loop_prof_{SMALL}"])) / max(l_work, 1e-9)
    b_steady = k / max(b_work, 1e-9)
    l_steady = k / max(l_work, 1e-9)
    rates = [
        ["Beam, FnApiRunner (`csadetect.pipelines.detect`)", fmt(n / bu["wall"], 1), fmt(n / bu["cpu"], 1), fmt(b_steady, 1),
         fmt(1000 / b_steady), fmt(infl_b) + "x", f"{bu['reports']} ({bu['signed']} signed, {bu['sealed']} sealed)"],
        ["plain loop, same work (no Beam)", fmt(n / lu["wall"], 1), fmt(n / lu["cpu"], 1), fmt(l_steady, 1),
         fmt(1000 / l_steady), fmt(infl_l) + "x", f"{lu['reports']} ({lu['signed']} signed)"],
    ]
    det = lu["detail"]
    detail_rows = [[name, fmt(ms_call, 3), fmt(per_ev, 2), fmt(ms_ev, 3)] for name, ms_call, per_ev, ms_ev in det["rows"]]
    small_rest = {(c, f, fn): t for c, f, fn, t in r[f"beam_prof_{SMALL}"]["attr"]["rest"]}
    rest = sorted(((t - small_rest.get((c, f, fn), 0.0)) / k, c, f, fn) for c, f, fn, t in bp["rest"])[::-1][:12]
    views_per_event = bp["pdq_calls"] / n - 1
    w, h = size
    fr = data.get("framed", {})
    text = [
        f"### {label}: {n} events of {w}x{h} px JPEGs",
        "",
        f"{n} image events (mean JPEG {data['mean_kb']:.0f} KB, quality 90): crops of generated pictures and "
        f"scikit-image photos, {fr.get('letterbox', 0)} of them letterboxed and {fr.get('canvas', 0)} on a "
        f"screenshot-like canvas (work for the preprocessing views), {data['known']} crops of known pictures "
        f"and {data.get('exact', 0)} exact copies of known pictures (confirmed hits: reports sealed and signed); "
        f"snapshot of {data['indicators']:,} indicators ({data['random']:,} random PDQ). PDQ ran {bp['pdq_calls']} "
        f"times in the Beam run: {views_per_event:.2f} views per event besides the image.",
        "",
        f"Rates without the profiler, one pinned core. Per CPU s = events / CPU seconds of the process; steady "
        f"state = ({n} - {SMALL}) events / (CPU s of the {n}-event run - CPU s of the same run on its first "
        f"{SMALL} events), each counted from the end of start-up (Beam: when the graph starts to run, after the "
        "imports, TensorFlow, snapshot and model checks; loop: after index, keys and models are loaded), i.e. "
        "without the fixed cost of a run. Profiler inflation = the same difference under cProfile / without it.",
        "",
        table(["path", "events/s (wall)", "events/s per CPU s", "steady state, events/s per CPU s",
               "steady state, ms per event", "profiler inflation (CPU)", "reports"], rates),
        "",
        f"CPU time by stage under cProfile, marginal per event: (the {n}-event run - the {SMALL}-event run) / "
        f"{k}, stage by stage, so graph construction, bundle set-up and TensorFlow's first trace drop out "
        "(they are the fixed cost, last row, which also holds the start-up stage: imports, models, snapshot, "
        "keys, DoFn set-up). \"Beam - loop\" is what the pipeline spends on top of "
        "the plain loop. Small negative figures are noise of the subtraction.",
        "",
        table(["stage", "Beam ms/event", "Beam %", "loop ms/event", "loop %", "Beam - loop ms/event"], rows),
        "",
        f"Hashing in detail (direct CPU timing, no profiler, first {det['n']} events, loop process; \"calls per "
        "event\" below 1: only some events have that view):",
        "",
        table(["piece", "ms per call", "calls per event", "ms per event"], detail_rows),
        "",
        "Largest items of the rest in the Beam run (own time, marginal ms per event, under cProfile):",
        "",
        table(["where", "function", "ms/event"], [[f"`{f}`", f"`{fn}`", fmt(t * 1000, 2)] for t, _, f, fn in rest[:10]]),
    ]
    numbers = {"bs": bs, "ls": ls, "b_tot": b_tot, "l_tot": l_tot, "n": n, "beam_rate": n / bu["cpu"],
               "beam_steady": b_steady, "loop_steady": l_steady, "infl_b": infl_b, "infl_l": infl_l,
               "b_fixed": b_fixed, "l_fixed": l_fixed, "detail": det}
    return "\n".join(text), numbers


NOTES_BEGIN, NOTES_END = "<!-- notes:begin -->", "<!-- notes:end -->"


def summary(numbers: dict) -> str:
    """Computed bullet points: what dominates, per image size (the hand-written notes are kept apart)."""
    out = []
    for label, m in numbers.items():
        bs = m["bs"]
        top = sorted(((v, k) for k, v in bs.items()), reverse=True)[:4]
        rest = sum(v for k, v in bs.items() if k in REST.values()) + bs.get(STAGES[-1][0], 0.0)
        budget = 1000 / 100  # ms per event for 100 events/s per core
        out.append(
            f"- {label}: {m['beam_steady']:.1f} events/s per CPU s through Beam in steady state "
            f"({1000 / m['beam_steady']:.1f} ms per event; the target of 100/s leaves {budget:.0f} ms), the plain loop "
            f"{m['loop_steady']:.1f}/s ({1000 / m['loop_steady']:.1f} ms). Under the profiler the largest stages in Beam are "
            + "; ".join(f"{k} {v * 1000:.1f} ms ({100 * v / m['b_tot']:.0f}%)" for v, k in top)
            + f". Beam's rest plus the sinks: {rest * 1000:.1f} ms per event ({100 * rest / m['b_tot']:.0f}%); Beam - loop "
            f"in all: {(m['b_tot'] - m['l_tot']) * 1000:.1f} ms ({100 * (m['b_tot'] - m['l_tot']) / m['b_tot']:.0f}% of the "
            "Beam run's per-event time)."
        )
    return "\n".join(out)


def kept_notes(path: Path) -> str:
    """The hand-written notes block of an earlier stages.md (kept when it is regenerated)."""
    if path.exists():
        text = path.read_text()
        if NOTES_BEGIN in text and NOTES_END in text:
            return text[text.index(NOTES_BEGIN):text.index(NOTES_END) + len(NOTES_END)]
    return f"{NOTES_BEGIN}\n(no notes yet)\n{NOTES_END}"


def machine() -> str:
    model = "?"
    try:
        with open("/proc/cpuinfo") as fh:
            model = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import platform
    from importlib.metadata import version

    return (f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}; apache-beam {version('apache-beam')}, "
            f"pillow {version('pillow')}, pdqhash {version('pdqhash')}, tensorflow {version('tensorflow')}, "
            f"cryptography {version('cryptography')}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_stages", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=250, help="events per image size (default 250)")
    ap.add_argument("--sizes", default="3,1", help="image sizes: 3 (2048x1536) and/or 1 (1152x864) MP")
    ap.add_argument("--cpu", type=int, default=0, help="core the children are pinned to")
    ap.add_argument("--out", default=str(OUT_MD), help="markdown output (parent) / output dir (child)")
    ap.add_argument("--no-write", action="store_true", help="print only")
    ap.add_argument("--render", action="store_true", help="only format the last saved measurement again")
    ap.add_argument("--child", choices=["beam", "loop"], help=argparse.SUPPRESS)
    ap.add_argument("--base", help=argparse.SUPPRESS)
    ap.add_argument("--profile", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--limit", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        fn = child_beam if args.child == "beam" else child_loop
        res = fn(Path(args.base), Path(args.out), args.profile, args.limit)
        print(json.dumps(res))
        return 0

    started = time.time()
    load0 = os.getloadavg()[0]
    sections, numbers, meta = [], {}, {}
    for key in args.sizes.split(","):
        label, size = SIZES[key]
        log(f"{label}: workload ({args.events} events)")
        t_data = time.time()
        base = workload(label, size, args.events)
        started += time.time() - t_data  # the run time stated below leaves out generating the data
        data = json.loads((base / "stages.json").read_text())
        saved = WORK / f"results-{key}-{args.events}.json"
        if args.render:  # format the last measurement again (no runs)
            r = json.loads(saved.read_text())
        else:
            r = {}
            for profile in (False, True):
                for limit in (0, SMALL):
                    for mode in ("beam", "loop"):
                        tag = mode + ("_prof" if profile else "") + (f"_{limit}" if limit else "")
                        r[tag] = run_child(mode, base, tag, profile, args.cpu, limit)
            r["_meta"] = {"load_start": load0, "load_end": os.getloadavg()[0]}
            saved.write_text(json.dumps(r))
        meta = r.get("_meta", {})
        text, nums = section(label, size, args.events, data, r)
        sections.append(text)
        numbers[label] = nums
        log(text + "\n")
    elapsed = time.time() - started
    if args.render:  # the children's time of the saved measurement (data generation not included)
        elapsed = sum(x.get("process_wall", 0) for key in args.sizes.split(",")
                      for x in json.loads((WORK / f"results-{key}-{args.events}.json").read_text()).values())
    minutes = max(1, round(elapsed / 60))
    cmd = "nice -n 10 .venv/bin/python -m benchmarks.bench_stages" + (f" --events {args.events}" if args.events != 250 else "") \
        + (f" --sizes {args.sizes}" if args.sizes != "3,1" else "")
    head = [
        "# Per-stage cost of an image event (issue 15, item 1)",
        "",
        f"Regenerate: `{cmd}` (about {minutes} min here with the data cached under "
        "`benchmarks/.data/stages/`; generating it the first time adds about 2 min). "
        f"Machine: {machine()}. Load average when it started {meta.get('load_start', load0):.2f}, when it ended "
        f"{meta.get('load_end', os.getloadavg()[0]):.2f} "
        "(the machine was shared; CPU-time clocks keep other load out of the figures, not out of cache effects).",
        "",
        "Method: `benchmarks/bench_stages.py` docstring. Every run is a child process pinned to one core; cProfile with "
        "a CPU-time clock; a stage is a set of root functions and every function's own time is split over its "
        "callers' stages in proportion to the time each caller spent in it; \"rest\" is what no stage reaches. "
        "cProfile inflates Python-heavy code (Beam, glue) more than C-heavy code (decode, PDQ, TensorFlow): "
        "compare Beam with the loop stage by stage, and read the unprofiled rates for absolute speed.",
        "",
    ]
    notes = [
        "## What dominates (computed from the tables below)",
        "",
        summary(numbers),
        "",
        "## What to change first (hand-written from this run; kept between the markers when the file is regenerated)",
        "",
        kept_notes(Path(args.out)),
        "",
    ]
    text = "\n".join(head) + "\n" + "\n".join(notes) + "\n" + "\n\n".join(sections) + "\n"
    print(text)
    (WORK / "last-numbers.json").write_text(json.dumps(numbers, default=str))
    if not args.no_write:
        Path(args.out).write_text(text)
        log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
