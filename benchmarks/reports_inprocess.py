"""The in-process parts of the report-protection benchmark (``benchmarks.bench_reports``), each timed
in interleaved rounds on one pinned core beside the work it rides on: 1. sealing each upload vs hashing
it (``bench_seal``), 2. finalising a report and the Centre's side (``bench_report``), 3. the review store
on the local disk (``bench_store``). Each returns its markdown section. ``bench_reports`` re-exports
every name.
"""
from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

from benchmarks.reports_common import (SIZES, fmt, hit_reports, images, interleaved, log, ms, paired, pin_one_core,
                                       spread, table, unpin)
from csadetect.config.settings import Limits, MatchSettings
from csadetect.events.event import make_event, parse_event
from csadetect.media.hashing import hash_image_with_views
from csadetect.media.preprocess import views
from csadetect.reports import crypto
from csadetect.reports.crypto import ReportKeys, seal_content
from csadetect.reports.records import finalise_report
from csadetect.review.store import ReviewStore, review_item
from csadetect.transforms.hash import HashMediaFn


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
