"""Part 4 of the report-protection benchmark (``benchmarks.bench_reports``): the batch detection
pipeline end to end (``python -m csadetect.pipelines.detect``, FnApiRunner, one pinned child process) with
the protection on and off (``E2E_CONFIGS``), on generated events with a small signed snapshot
(``e2e_data``, cached); ``bench_e2e`` returns its markdown section. ``bench_reports`` re-exports every name.
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.cache import cached
from benchmarks.reports_common import DATA_DIR, ROOT, SEED, check_load, fmt, log, table
from csadetect.core.keys import generate_keypair
from csadetect.events.event import make_event
from csadetect.indicators.rows import from_media
from csadetect.indicators.snapshot import build_snapshot
from csadetect.media.synth import jpeg_bytes, synthetic_image
from csadetect.models.embedding import EmbeddingModel


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

    def build(work: Path) -> dict:
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
        return data

    return cached(work, params, build)


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
