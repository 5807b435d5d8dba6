"""The measured runs of the per-stage benchmark (``benchmarks.bench_stages``): the children (``python -m
benchmarks.bench_stages --child beam|loop ...``: the pipeline on the FnApiRunner, or the same work in a plain
loop, optionally under cProfile; the direct timing of hashing's pieces), the attribution of a profile's CPU
time to stages (``STAGES``, ``attribute``) and ``run_child``, the parent's side of a child pinned to one
core. ``bench_stages`` re-exports every name.
"""
from __future__ import annotations

import cProfile
import json
import os
import pstats
import resource
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from benchmarks.stages_workload import BATCH, ROOT, WORK, config_path, log


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
    ("PDQ, image + views (8 dihedral each)", [_in("csadetect/media/pdq.py", "pdq_from_array")]),
    ("MD5 / SHA-1 / SHA-256 of the bytes", [_in("csadetect/media/hash_results.py", "crypto_hashes")]),
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
