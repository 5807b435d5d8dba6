"""The embedded default: generated benign media, a demo key pair and indicator database, a mixed
event stream, and a DirectRunner run writing reports under ./out/. No cloud, no services.

Each demo starts from empty demo stores under ``--out`` (it removes the ones an earlier demo left)
and runs the pipeline under a new run id (:mod:`csadetect.core.runs`), printed in its summary;
every later stage (review, the Centre's verdicts, feedback) reads that run's directories."""
from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import sys
from datetime import timedelta
from pathlib import Path

from csadetect.compliance import transparency
from csadetect.config.profiles import arg_value
from csadetect.config.settings import ConfigError, ReportSettings, load_settings
from csadetect.core import parquet, runs
from csadetect.core.keys import generate_keypair
from csadetect.core.stats import write_stats
from csadetect.core.timeutil import utc_iso, utc_now
from csadetect.events.event import make_event
from csadetect.indicators.rows import from_media
from csadetect.indicators.snapshot import build_snapshot
from csadetect.media import synth
from csadetect.models.embedding import EmbeddingModel
from csadetect.models.loader import REFERENCE_DIR
from csadetect.pipelines.detect import outcome_counts, run
from csadetect.pipelines.feedback import run as feedback_run
from csadetect.pipelines.options import DetectOptions, check_flags
from csadetect.reports import crypto
from csadetect.reports.crypto import ReportKeys, generate_centre_keypair
from csadetect.review.store import (ReviewStore, apply_verdict, generate_provider_keys, parse_verdict,
                                    write_reports)

DEMO_CHATS = [
    ("conv-risk", True, [
        ("stranger", "hey you play minecraft too? your builds are amazing"),
        ("kid", "thanks! i play every day after school"),
        ("stranger", "how old are you btw? you seem really mature"),
        ("kid", "12"),
        ("stranger", "are your parents home? do they check your phone"),
        ("kid", "not really"),
        ("stranger", "cool. this is our secret ok, don't tell your mom about me"),
        ("stranger", "let's talk on another app, it's more private. delete these messages"),
        ("stranger", "i can send you a gift card for skins, you deserve it"),
        ("stranger", "we should meet up, i can come pick you up saturday"),
    ]),
    ("conv-family", True, [
        ("mom", "did you finish your homework?"),
        ("kid", "yes! can we keep dad's birthday surprise a secret"),
        ("mom", "of course, it's our secret. i'll buy the gift card tomorrow"),
        ("kid", "where do we meet after practice?"),
        ("mom", "at the gate, turn on your camera later for grandma's call"),
    ]),
    ("conv-adults", False, [
        ("a", "see you at the game tonight?"),
        ("b", "yes, meet at the entrance at 7"),
    ]),
]
N_KNOWN = 6
N_UNKNOWN = 8
# images of the benign proxy class the reference new-material classifier flags (csadetect/models/cards/classifier.md),
# and a look-alike it does not: drawn by training.classifier_corpus (not in the package), shipped as JPEGs
NEW_MATERIAL_SEEDS = (900001, 900005)
HARD_NEGATIVE_SEEDS = (910007,)
DEMO_PICTURES = REFERENCE_DIR / "demo"


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def prepare(workdir: str | Path = ".demo") -> dict:
    """Create media, keys, a signed indicator snapshot and events.jsonl under ``workdir``."""

    work = Path(workdir)
    if work.exists():
        shutil.rmtree(work)
    media = work / "media"
    media.mkdir(parents=True)
    _log(f"demo: generating benign media in {media}")
    known_imgs = {}
    for i in range(N_KNOWN):
        img = synth.synthetic_image(1000 + i)
        path = media / f"known-{i}.jpg"
        path.write_bytes(synth.jpeg_bytes(img))
        known_imgs[i] = img
    known_paths = [str(media / f"known-{i}.jpg") for i in range(N_KNOWN)]
    video = synth.synthetic_video(77, media / "known-video.mp4")
    if video is not None:
        known_paths.append(str(video))
    else:
        _log("demo: ffmpeg not found, skipping the video part")

    keys = work / "keys"
    generate_keypair(keys)
    # the provider's report keys (signatures, review evidence) and a stand-in EU Centre key pair

    report_keys = generate_provider_keys(str(work / "provider-keys"))
    centre_private, centre_public = generate_centre_keypair(work / "centre-keys")
    settings = load_settings()
    embedder = None
    if settings.embedding.enabled:

        embedder = EmbeddingModel.load(settings.embedding.model)
    rows = from_media(known_paths, settings.match, category="demo-known", embedder=embedder)
    manifest = build_snapshot(rows, work / "indicators", keys / "private.pem")
    _log(f"demo: indicator snapshot version {manifest['version']} with {len(rows)} indicators, signed")

    events = []
    expected_hits = []
    expected_review = []

    def add(eid, content, hit, review=False, **kw):
        events.append(make_event(eid, content, **kw))
        if hit:
            expected_hits.append(eid)
        if review:
            expected_review.append(eid)

    # exact re-uploads and altered copies of known material
    add("evt-known-0-exact", (media / "known-0.jpg").read_bytes(), True)
    add("evt-known-1-recompressed", synth.jpeg_bytes(known_imgs[1], quality=45), True)
    add("evt-known-2-resized", synth.jpeg_bytes(known_imgs[2].resize((320, 240))), True)
    add("evt-known-3-border", synth.jpeg_bytes(synth.add_border(known_imgs[3], 0.15)), True)
    add("evt-known-4-letterbox", synth.png_bytes(synth.letterbox(known_imgs[4])), True, mime="image/png")
    add("evt-known-5-mirrored", synth.jpeg_bytes(known_imgs[5].transpose(0)), True)
    add("evt-known-0-redelivered", (media / "known-0.jpg").read_bytes(), False)
    events[-1]["event_id"] = "evt-known-0-exact"  # Pub/Sub redelivery: same id, no second report
    if video is not None:
        add("evt-known-video", Path(video).read_bytes(), True, kind="video", mime="video/mp4", service="videos")
    # a heavy crop (60% of the area, top-left) PDQ cannot match: the index's region rows and the
    # embedding find it; embedding near-duplicates go to human review
    if settings.embedding.enabled:
        add("evt-known-0-cropped", synth.jpeg_bytes(synth.corner_crop(known_imgs[0])), False, review=True)
    # new material: images of the benign proxy class the reference classifier was trained to flag;
    # classifier hits wait for a reviewer (DESIGN 6). A hard negative (emblem parts) is not flagged.
    if settings.new_material.enabled:
        for seed in NEW_MATERIAL_SEEDS:
            add(f"evt-new-{seed}", (DEMO_PICTURES / f"new-{seed}.jpg").read_bytes(), False, review=True)
        for seed in HARD_NEGATIVE_SEEDS:
            add(f"evt-other-parts-{seed}", (DEMO_PICTURES / f"other-parts-{seed}.jpg").read_bytes(), False)
    # unrelated benign uploads: non-hits, nothing of them may remain
    for i in range(N_UNKNOWN):
        add(f"evt-other-{i}", synth.jpeg_bytes(synth.synthetic_image(5000 + i)), False, account=f"acct-{i + 10}")
    # chats: a synthetic grooming-risk conversation (never sexual) and benign ones with a minor
    for cid, minor, turns in DEMO_CHATS:
        for i, (sender, text) in enumerate(turns):
            events.append({
                "event_id": f"evt-{cid}-{i}", "provider": "demo-provider", "service": "chat", "kind": "text",
                "occurred_at": f"2026-11-28T10:{i:02d}:00Z", "account": f"acct-{sender}", "conversation_id": cid,
                "sender": sender, "text": text, "participants_minor": minor,
            })
    lines = [json.dumps(e) for e in events]
    # malformed input: every line below must be dead-lettered with a reason, none may crash the run
    lines += [
        "{not json",
        json.dumps({"event_id": "evt-bad-kind", "provider": "p", "service": "s", "kind": "audio",
                    "occurred_at": "2026-11-28T10:00:00Z", "account": "a"}),
        json.dumps(dict(make_event("evt-bad-b64", b"x"), content_b64="@@@not-base64@@@")),
        json.dumps(make_event("evt-truncated", synth.jpeg_bytes(known_imgs[0])[:600])),
        json.dumps(make_event("evt-not-an-image", b"plain text, not an image")),
        json.dumps(dict(make_event("evt-bad-mime", b"abc"), mime="application/x-msdownload")),
    ]
    events_path = work / "events.jsonl"
    events_path.write_text("\n".join(lines) + "\n")
    info = {
        "workdir": str(work),
        "events": str(events_path),
        "indicators": str(work / "indicators"),
        "public_key": str(keys / "public.pem"),
        "signing_key": report_keys["signing_key"],
        "provider_public_key": str(work / "provider-keys" / "public.pem"),
        "evidence_key": report_keys["evidence_key"],
        "centre_public_key": str(centre_public),
        "centre_private_key": str(centre_private),
        "expected_hits": expected_hits,
        "expected_review": expected_review,
        "n_events": len(lines),
        "n_malformed": 6,
    }
    (work / "demo.json").write_text(json.dumps(info, indent=2))
    return info


def summarise(out_dir: str, counts: dict, run_id: str) -> str:

    lines = ["", "=== csadetect demo summary ===", f"run id {run_id}"]
    received = counts.get("received", 0)
    hit, non_hit, dead = counts.get("hit", 0), counts.get("non_hit", 0), counts.get("dead_lettered", 0)
    check = "OK" if received == hit + non_hit + dead else "MISMATCH"
    lines.append(f"events received {received} = hits {hit} + non-hits {non_hit} + dead-lettered {dead}  [{check}]")
    lines.append(f"reports written: {counts.get('report', 0)} (duplicates collapsed: {counts.get('duplicate_report', 0)}); "
                 f"hits awaiting human review: {counts.get('hit_review', 0) + counts.get('hit_grooming', 0)}")
    tables = sorted(glob.glob(os.path.join(out_dir, "reports", run_id, "*.parquet")))
    jsonl = sorted(glob.glob(os.path.join(out_dir, "reports", run_id, "*.jsonl")))
    for path in tables:
        for r in parquet.read_table(path).to_pylist():
            ids = ",".join(r["indicator_ids"][:3])
            if r["detection_type"] == "new":
                what = f"new material, score {r['score']:.2f} (threshold {r['threshold']:.2f}, {r['detector_version']})"
            else:
                what = f"distance {r['distance']:>4.0f}  indicators {ids}"
            lines.append(f"  report {r['report_id'][:12]}  {r['event_id']:<28} {r['content_kind']:<5} {what}")
    for path in sorted(glob.glob(os.path.join(out_dir, "dead_letters", run_id, "*.jsonl"))):
        with open(path) as fh:
            for line in fh:
                d = json.loads(line)
                lines.append(f"  dead letter  {str(d['event_id']):<28} [{d['stage']}] {d['reason']}")

    for r in ReviewStore(os.path.join(out_dir, "review"), run_id).items():
        if r.get("detection_type") == "new":
            lines.append(f"  new material → human review: {r['event_id']} score {r['score']:.2f} "
                         f"(review threshold {r['threshold']:.2f}, model {r['detector_version']})")
        elif r.get("detector") == "known-embedding":
            sims = ", ".join(f"{m['indicator_id']} similarity {1 - m['distance']:.3f}" for m in r["matches"])
            lines.append(f"  known near-duplicate (embedding) → human review: {r['event_id']}: {sims}")
        elif r.get("detection_type") == "known":
            lines.append(f"  known (PDQ above auto-confirm distance) → human review: {r['event_id']}")
        elif r.get("detection_type") == "grooming":
            lines.append(f"  grooming → human review: {r['conversation_id']} score {r['score']:.2f} "
                         f"(threshold {r['threshold']:.2f}), risk patterns: {', '.join(r['risk_patterns'] or []) or '-'}"
                         f"; messages sealed for reviewers")
    lines.append(f"files: {', '.join(tables + jsonl) or 'none'}")
    lines.append("Non-hits left nothing behind: only the counters above.")
    return "\n".join(lines)


def main(argv=None) -> int:


    parser = argparse.ArgumentParser(prog="csadetect demo", description=__doc__)
    parser.add_argument("--workdir", default=".demo")
    parser.add_argument("--out", default="out")
    args, rest = parser.parse_known_args(argv)
    try:
        check_flags(rest, DetectOptions)  # a misspelt pipeline flag: refused before the media are made
        load_settings(arg_value(rest, "config"))  # so is a bad --config: before anything is made or removed
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    info = prepare(args.workdir)
    for sub in ("feedback", "notifications", "transparency"):  # the demo's own derived outputs, made anew;
        shutil.rmtree(os.path.join(args.out, sub), ignore_errors=True)  # every run's records stay (run ids)
    run_id = runs.new_run_id()
    info["run_id"] = run_id
    _log(f"demo: running the pipeline on {info['n_events']} events (DirectRunner), run id {run_id}")
    try:
        result = run([
            "--run_id", run_id,
            "--input_glob", info["events"], "--indicators", info["indicators"], "--public_key", info["public_key"],
            "--report_dir", os.path.join(args.out, "reports"), "--dead_letter_dir", os.path.join(args.out, "dead_letters"),
            "--review_dir", os.path.join(args.out, "review"), "--stats_dir", os.path.join(args.out, "stats"),
            "--signing_key", info["signing_key"], "--evidence_key", info["evidence_key"],
            "--centre_public_key", info["centre_public_key"],
            "--runner", "FnApiRunner", *rest,
        ])
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    counts = outcome_counts(result)
    print(summarise(args.out, counts, run_id))
    print(after_detection(info, args.out))
    return 0


# the demo's stand-in reviewers: which pending items the provider confirms, and which reports the
# EU Centre finds manifestly unfounded (the benign proxy picture the classifier flagged)
PROVIDER_REJECTS = (f"evt-new-{NEW_MATERIAL_SEEDS[1]}",)
CENTRE_UNFOUNDED = (f"evt-new-{NEW_MATERIAL_SEEDS[0]}",)


def provider_review(info: dict, out: str) -> tuple[list, list]:
    """Stage 2: the provider's reviewers open each pending item's evidence and decide."""

    keys = ReportKeys.load(ReportSettings(signing_key=info["signing_key"], evidence_key=info["evidence_key"],
                                          centre_public_key=info["centre_public_key"]))
    run_id = info["run_id"]
    store = ReviewStore(os.path.join(out, "review"), run_id)
    lines, reports, stats = [], [], []
    for item in list(store.items()):
        mime, content = crypto.open_content(item["review_evidence"], info["evidence_key"], item["event_id"])
        what = item.get("conversation_id") or item["event_id"]
        verdict = "reject" if item["event_id"] in PROVIDER_REJECTS else "confirm"
        report, s = apply_verdict(store, parse_verdict({"report_id": item["report_id"], "verdict": verdict,
                                                        "reviewer": "demo-reviewer"}), keys)
        stats += s
        if report is not None:
            reports.append(report)
        lines.append(f"  {item['detector']:<24} {what:<22} evidence opened ({mime}, {len(content)} bytes) → "
                     + ("confirmed: signed report, evidence re-sealed for the EU Centre" if report else
                        "rejected: item and evidence deleted, a counter remains"))
    write_reports(os.path.join(out, "reports"), reports, run_id=run_id)  # with the run that queued them
    write_stats(runs.run_dir(os.path.join(out, "stats"), run_id), stats)
    return lines, reports


def centre_verdicts(info: dict, out: str) -> tuple[list, str]:
    """Stage 3: the EU Centre verifies each report, opens its evidence and sends a verdict back."""

    lines, verdicts = [], []
    for path in sorted(glob.glob(os.path.join(out, "reports", info["run_id"], "*.jsonl"))):
        for line in open(path, encoding="utf-8"):
            report = json.loads(line)
            crypto.verify_report(report, info["provider_public_key"])
            mime, content = crypto.open_evidence(report, info["centre_private_key"])
            unfounded = report["event_id"] in CENTRE_UNFOUNDED
            verdicts.append({"report_id": report["report_id"],
                             "verdict": "manifestly_unfounded" if unfounded else "confirmed",
                             "reason": "benign proxy picture, not abuse material" if unfounded else "matches the indicator / pattern",
                             "decided_at": utc_iso(), "delay_notification": report["detection_type"] == "grooming"})
            lines.append(f"  {report['detector']:<24} {(report.get('conversation_id') or report['event_id']):<22} "
                         f"signature OK, evidence {len(content)} bytes → {verdicts[-1]['verdict']}")
    folder = os.path.join(out, "feedback", "verdicts")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "centre-verdicts.jsonl")
    with open(path, "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(v) + "\n" for v in verdicts)
    return lines, path


def after_detection(info: dict, out: str) -> str:
    """The rest of the path: provider review, the Centre's verdicts, the feedback pipeline
    (precision per detector, notifications) and the transparency report."""
    lines = ["", "=== human review (provider) ==="]
    review_lines, _ = provider_review(info, out)
    lines += review_lines or ["  nothing pending"]
    lines += ["", "=== EU Centre: verify, decrypt, verdict ==="]
    centre_lines, verdict_path = centre_verdicts(info, out)
    lines += centre_lines
    lines += ["", "=== feedback: precision per detector (Art. 83(1)(a)) ==="]
    lines += feedback_stage(info, out, verdict_path)
    lines += ["", "=== transparency report (Art. 83(4)) ==="]
    lines += transparency_stage(out, info["run_id"])
    return "\n".join(lines)


def feedback_stage(info: dict, out: str, verdict_path: str) -> list:
    """Stage 4: the feedback pipeline joins the Centre's verdicts to the reports (batch)."""

    feedback_run([  # under the detection run's id: out/feedback/<RUN_ID>/, out/notifications/<RUN_ID>/
        "--report_glob", runs.pattern(os.path.join(out, "reports"), ".jsonl", info["run_id"]), "--verdict_glob", verdict_path,
        "--out_dir", os.path.join(out, "feedback"), "--notifications_dir", os.path.join(out, "notifications"),
        "--run_id", info["run_id"], "--min_verdicts", "1", "--public_key", info["provider_public_key"],
        "--runner", "FnApiRunner",
    ])
    feedback_dir = runs.run_dir(os.path.join(out, "feedback"), info["run_id"])
    notifications_dir = runs.run_dir(os.path.join(out, "notifications"), info["run_id"])
    lines = []
    for path in sorted(glob.glob(os.path.join(feedback_dir, "precision-*.jsonl"))):
        for rec in map(json.loads, open(path, encoding="utf-8")):
            lines.append(f"  {rec['detector']:<24} {rec['detector_version']:<28} precision {rec['precision']:.2f} "
                         f"({rec['confirmed']} confirmed, {rec['manifestly_unfounded']} manifestly unfounded)")
    for path in sorted(glob.glob(os.path.join(feedback_dir, "alerts-*.jsonl"))):
        for rec in map(json.loads, open(path, encoding="utf-8")):
            lines.append(f"  ALERT {rec['detector']} {rec['detector_version']}: precision {rec['precision']:.2f} "
                         f"below the floor {rec['floor']:.2f}")
    notes = [json.loads(l) for p in glob.glob(os.path.join(notifications_dir, "*.jsonl")) for l in open(p)]
    by = {}
    for n in notes:
        by[(n["trigger"], n["status"])] = by.get((n["trigger"], n["status"]), 0) + 1
    lines.append("  user notifications (Art. 12(2)): " + (", ".join(
        f"{k[0]} {k[1]}: {v}" for k, v in sorted(by.items())) or "none"))
    lines.append(f"  labelled examples for `csadetect tune`: {feedback_dir}/examples-*.jsonl")
    return lines


def transparency_stage(out: str, run_id: str) -> list:
    """Stage 5: today's transparency report from this run's id-free stats and the Centre's verdicts
    (earlier runs in ``out`` are kept, and left out of the demo's report)."""

    today = utc_now().replace(hour=0, minute=0, second=0, microsecond=0)
    summary = transparency.collect({"stats_dir": runs.run_dir(os.path.join(out, "stats"), run_id),
                                    "feedback_dir": runs.run_dir(os.path.join(out, "feedback"), run_id),
                                    "complaints_dir": os.path.join(out, "complaints")}, today, today + timedelta(days=1))
    paths = transparency.render(summary, os.path.join(out, "transparency"))
    head = ", ".join(f"{k} {v}" for k, v in summary["headline"].items() if isinstance(v, (int, float)))
    return [f"  {head}", f"  {paths['html']}", f"  {paths['pdf']}"]
