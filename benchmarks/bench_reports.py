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
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.reports_common import (BUSY, DATA_DIR, ROOT, SEED, SIZES, check_load, fmt, hit_reports, images,
                                       interleaved, load_now, log, machine, make_keys, ms, paired, pin_one_core,
                                       spread, table, unpin)
from benchmarks.reports_e2e import E2E_CONFIGS, bench_e2e, e2e_data, run_pipeline
from benchmarks.reports_inprocess import bench_report, bench_seal, bench_store
from csadetect.config.settings import ReportSettings
from csadetect.reports.crypto import ReportKeys

# The shared names (constants, log, machine and load, timing, formats, generated JPEGs, keys, hit reports) live in
# benchmarks.reports_common, parts 1-3 (seal, report, store) in benchmarks.reports_inprocess, part 4 (end to end) in
# benchmarks.reports_e2e; the README section (summary, markers, main) stays here. bench_stages imports make_keys from
# here, so every name is re-exported. BUSY is one list that check_load (in reports_common) appends to and main
# reads: rebinding bench_reports.BUSY would not reach check_load.
__all__ = [
    "ROOT", "SEED", "DATA_DIR", "README", "BEGIN", "END", "SIZES", "log",
    "machine", "load_now", "BUSY", "check_load", "pin_one_core", "unpin", "interleaved", "paired",
    "fmt", "ms", "spread", "table",
    "images", "make_keys", "hit_reports",
    "bench_seal", "bench_report", "bench_store",
    "E2E_CONFIGS", "e2e_data", "run_pipeline", "bench_e2e",
    "summary_paragraph", "write_readme", "main",
]

README = ROOT / "benchmarks" / "README.md"
BEGIN = "<!-- bench_reports:begin -->"
END = "<!-- bench_reports:end -->"


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
