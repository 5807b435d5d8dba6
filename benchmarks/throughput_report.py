"""The markdown report of the throughput benchmark (``benchmarks.bench_throughput``), written from the
results its parts return: one image size's sections and its rows of the targets table (``render_size``),
and the whole file with its head, the targets and the hand-written notes kept (``render``, what ``--out``
gets). ``bench_throughput`` re-exports every name.
"""
from __future__ import annotations

import json
from pathlib import Path

from benchmarks import bench_stages as stages
from benchmarks.bench_stages import SIZES, SMALL, kept_notes, table
from benchmarks.throughput_common import BUSY, IDLE_LINES, PARTS, POOL, TARGETS, f1
from benchmarks.throughput_scaling import MIN_DELTA
from benchmarks.throughput_stream import SAMPLE_EVERY
from benchmarks.throughput_workload import workload

__all__ = ["running_at_once", "verdict", "render_size", "render"]


# --------------------------------------------------------------------------- markdown


def running_at_once(timeline: list, columns: list[int]) -> dict[int, float]:
    """From ``TreeSampler.compact()``: seconds during which 0, 1, 2 ... of the processes in ``columns``
    each used more than BUSY of a core."""
    out: dict[int, float] = {}
    for (t0, a), (t1, b) in zip(timeline, timeline[1:]):
        dt = t1 - t0
        if dt > 0:
            k = sum(1 for i in columns if (b[i] - a[i]) / dt > BUSY)
            out[k] = out.get(k, 0.0) + dt
    return out


def verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def render_size(label: str, n: int, data: dict, r: dict) -> tuple[str, list[list[str]]]:
    """One image size's sections, and its rows of the targets table."""
    text, targets = [f"## {label}: {n} events", ""], []
    fr = data.get("framed", {})
    text += [f"Events: the first {n} of `bench_stages`' {label} workload (mean JPEG {data['mean_kb']:.0f} KB, quality 90; "
             f"of its {data['n']}: {fr.get('letterbox', 0)} letterboxed, {fr.get('canvas', 0)} on a screenshot-like canvas, "
             f"{data['known']} crops of known pictures, {data.get('exact', 0)} exact copies of known pictures); snapshot of "
             f"{data['indicators']:,} indicators ({data['random']:,} random PDQ).", ""]
    h = r.get("hashing")
    if h:
        rows = h["rows"]
        dec, pipe, plain = rows["decode"]["rate"], rows["pipeline"]["rate"], rows["plain"]["rate"]
        text += ["### Hashing, one core", "",
                 f"{h['n']} event pictures (pytx: the first {rows['pytx']['images']}), median of {h['rounds']} interleaved "
                 "rounds, images per CPU second of the pinned child.", "",
                 table(["", "images/s per CPU s", "ms per image", "x reduced decode", "x pytx"],
                       [[v["name"], f1(v["rate"]), f"{1000 / v['rate']:.2f}", f"{v['rate'] / dec:.2f}x",
                         f"{v['rate'] / rows['pytx']['rate']:.1f}x"] for v in rows.values()]), ""]
        targets.append([f"{label}: hashing >= {TARGETS['hashing']:.0f} images/s per core (pipeline configuration)",
                        f"{pipe:.0f}/s (plain {plain:.0f}/s; pytx {rows['pytx']['rate']:.1f}/s)",
                        verdict(pipe >= TARGETS["hashing"])])
        targets.append([f"{label}: hashing >= {TARGETS['hashing_vs_decode']}x the reduced decode, same run",
                        f"{pipe / dec:.2f}x (plain {plain / dec:.2f}x; decode {dec:.0f}/s)",
                        verdict(pipe / dec >= TARGETS["hashing_vs_decode"])])
    b = r.get("batch")
    loops = b.get("loops") if b else None
    if b:
        full, small = b["full"], b["small"]
        work = (full["cpu"] - full["startup_cpu"]) - (small["cpu"] - small["startup_cpu"])
        steady = (n - SMALL) / work if work >= MIN_DELTA / 2 else None  # else: noise (too few events)
        b["steady"] = steady
        text += ["### End to end, batch (FnApiRunner, one pinned core)", "",
                 "`python -m csadetect.pipelines.detect --input_glob events.jsonl --config ... --runner FnApiRunner` "
                 "(bench_stages' child: default detectors, reports sealed and signed, review store and stats written). "
                 f"Steady state = ({n} - {SMALL}) / (CPU s after start-up of the {n}-event run - the same of the "
                 f"{SMALL}-event run). Loops: the same events in a plain loop, indexes loaded beforehand, CPU time.", "",
                 table(["path", "events/s (wall, whole run)", "events/s per CPU s (whole run)",
                        "steady state, events/s per CPU s", "ms per event", "vs pytx loop", "reports"],
                       [["Beam, FnApiRunner", f1(n / full["wall"]), f1(n / full["cpu"]),
                         f1(steady) if steady else "n/a (too few events)", f"{1000 / steady:.1f}" if steady else "",
                         f"{steady / loops['pytx']:.1f}x" if loops and steady else "",
                         f"{full['reports']} ({full['signed']} signed, {full['sealed']} sealed)"]]
                       + ([["plain loop, ours (`hash_image` + views, `match_image`)", "", f1(loops["ours"]), f1(loops["ours"]),
                            f"{1000 / loops['ours']:.1f}", f"{loops['ours'] / loops['pytx']:.1f}x",
                            f"{loops['hits_ours']} of {loops['n']} match"],
                           ["plain loop, pytx (`hash_from_bytes`, `PDQIndex.query`)", "", f1(loops["pytx"]), f1(loops["pytx"]),
                            f"{1000 / loops['pytx']:.1f}", "1.0x", f"{loops['hits_pytx']} of {loops['n']} match"]] if loops else [])),
                 "",
                 f"Start-up (imports, TensorFlow, snapshot and model checks, before the graph runs): "
                 f"{full['startup_cpu']:.1f} CPU s; the {SMALL}-event run took {small['cpu']:.1f} CPU s in all.", ""]
        targets.append([f"{label}: end to end, batch (FnApiRunner) >= {TARGETS['e2e']:.0f} events/s per core",
                        (f"{steady:.1f}/s steady" if steady else "steady state n/a (too few events)")
                        + f" ({n / full['cpu']:.1f}/s with start-up)"
                        + (f"; pytx loop {loops['pytx']:.1f}/s, our loop {loops['ours']:.1f}/s" if loops else ""),
                        verdict(bool(steady and steady >= TARGETS["e2e"]))])
    s = r.get("stream")
    if s:
        text += ["### End to end, streaming (DirectRunner against the Pub/Sub emulator, one pinned core)", ""]
        if "skipped" in s:
            text += [f"Not measured: {s['skipped']}.", ""]
            targets.append([f"{label}: end to end, streaming >= 100 events/s per core", "not measured", s["skipped"]])
        elif "incomplete" in s:
            text += [f"Incomplete: {s['incomplete']}. Last lines:", "", "```", *s["tail"], "```", ""]
            targets.append([f"{label}: end to end, streaming >= 100 events/s per core", s["incomplete"], "**not met**"])
        else:
            c = s["counts"]
            how = ("inline (`content_b64`; the DirectRunner pulls 10 at once, more than the 4 MiB the Pub/Sub "
                   "library's emulator channel took before `csadetect.core.pubsub.subscriber` lifted it)")
            text += [f"{n} events published onto the emulator first ({s['publish_s']:.0f} s), {how}; then "
                     "`python -m csadetect.pipelines.detect --streaming --runner DirectRunner --input_subscription ... "
                     "--progress_seconds 1`. CPU s = the pipeline process and its children, from /proc, sampled at each "
                     f"progress line; steady state from the line where {s['first_line_done']} events were done "
                     f"({s['startup_wall']:.0f} s, {s['startup_cpu']:.1f} CPU s after the start) to the line where all "
                     f"{n} were.", "",
                     table(["path", "events/s (wall, whole run)", "events/s per CPU s (whole run)",
                            "steady state, events/s (wall)", "steady state, events/s per CPU s", "vs pytx loop",
                            "hits / non-hits / dead / reports"],
                           [["Beam, DirectRunner --streaming", f1(n / s["wall"]), f1(n / s["cpu"]), f1(s["steady_wall"]),
                             f1(s["steady"]), f"{s['steady'] / loops['pytx']:.1f}x" if loops else "",
                             f"{c.get('hits', 0)} / {c.get('non-hits', 0)} / {c.get('dead letters', 0)} / {c.get('reports', 0)}"]]),
                     "",
                     f"With nothing left to do the runner used {s['idle_cores'] or 0:.2f} cores (the {IDLE_LINES} progress "
                     "lines after the last event). Busiest threads of the pipeline process, CPU s, at the last event: "
                     + ", ".join(f"{name} {cpu:.1f}" for name, cpu in s["threads"]) + ".",
                     ""]
            if s.get("profile"):
                pr = s["profile"]
                k = max(pr["samples"], 1)
                text += [f"Where the pipeline's threads were (`--profile-stream`: {pr['samples']} stack samples every "
                         f"{SAMPLE_EVERY * 1000:.0f} ms from the graph's start, threads parked in a wait left out; the "
                         "rates above are from the same, slightly slowed run). Share of samples, leaf function (own) "
                         "and anywhere on the stack (inclusive):", "",
                         table(["own: function", "%"], [[f"`{f}`", f"{100 * c / k:.1f}"] for f, c in pr["own"][:15]]), "",
                         table(["inclusive: function", "%"], [[f"`{f}`", f"{100 * c / k:.1f}"] for f, c in pr["incl"][:30]]),
                         "", "Models loaded while the graph ran (`ModelKind.load` calls after start-up): "
                         + (", ".join(f"{kind} {c}" for kind, c in pr.get("model_loads", {}).items()) or "none") + ".", ""]
            targets.append([f"{label}: end to end, streaming (DirectRunner, emulator) >= {TARGETS['e2e']:.0f} events/s per core",
                            f"{s['steady']:.1f}/s steady ({n / s['cpu']:.1f}/s with start-up)",
                            verdict(s["steady"] >= TARGETS["e2e"])])
    sc = r.get("scaling")
    if sc:
        n = n * sc.get("repeat", 1)  # the scaling runs' event count
        runs = sc["runs"]
        keys = list(runs)
        ref, ref_mp = runs[keys[0]]["steady_wall"], runs[keys[1]]["steady_wall"]
        rows = []
        for key, x in runs.items():
            full = x["full"]
            procs = "; ".join(f"{p['role']} {p['cpu']:.1f}" for p in full["per_process"] if p["cpu"] >= 0.3)
            workers = [i for i, p in enumerate(full["per_process"]) if p["role"] == "SDK worker" and p["cpu"] >= 0.3]
            ov = running_at_once(full.get("timeline") or [], workers)
            both = f"{ov.get(2, 0.0):.0f} of {sum(ov.values()):.0f} s" if len(workers) >= 2 else ""
            sw = x["steady_wall"]
            rows.append([key, f1(n / full["wall"]), f1(sw) if sw else "n/a (too few events)",
                         f"{sw / ref:.2f}x" if sw and ref else "", f"{sw / ref_mp:.2f}x" if sw and ref_mp else "",
                         f"{full['cpu'] / full['wall']:.2f}", procs, both])
        plain2 = max((x["steady_wall"] or 0.0 for k, x in runs.items() if "2 workers" in k), default=0.0)
        la0, la1 = sc["load_start"], sc["load_end"]
        text += ["### Scaling: 2 worker processes against 1 (item 4), both cores free", "",
                 "`python -m csadetect.pipelines.detect --runner DirectRunner ...` unpinned, on the events "
                 f"{sc.get('repeat', 1)} times over ({n} events; copies with their own event ids), in 1 file or "
                 f"split round-robin into 2. Steady state on wall time: ({n} - {SMALL}) / (wall s of the {n}-event run "
                 f"- wall s of a {SMALL}-event run with the same runner options; the 2-file row reuses that "
                 "run of the 1-file row). With several workers the pipeline puts a `Reshuffle` before its stateful "
                 "steps (`csadetect.transforms.common.spread_before_state`), which the FnApiRunner otherwise fused into "
                 "the stage that hashes and ran on one worker only. CPU s per process from /proc, sampled every 0.2 s, start-up included (each "
                 "SDK worker imports TensorFlow and loads the models and the snapshot itself, about 8 CPU s); \"both "
                 f"running\": time during which each of the 2 SDK workers used more than {BUSY:g} of a core (with "
                 "another job on the second core, two workers running at once get about half a core each). Load average (1 min) "
                 f"{la0[0]:.2f} at the start, {la1[0]:.2f} at the end.", "",
                 table(["configuration", "events/s (wall, whole run)", "steady state, events/s (wall)",
                        "x 1 process", "x multi_processing 1 worker", "cores used", "CPU s per process",
                        "both workers running"], rows), ""]
        measured = f"{plain2 / ref:.2f}x" if plain2 and ref else "n/a (too few events)"
        targets.append([f"{label}: 2 worker processes >= {TARGETS['scaling']}x one process (DirectRunner multi_processing)",
                        measured + " (steady state, wall, against 1 process in_memory)",
                        verdict(bool(plain2 and ref and plain2 / ref >= TARGETS["scaling"]))])
    return "\n".join(text), targets


def render(results: dict, args) -> str:
    sections, targets = [], []
    for key, r in results["sizes"].items():
        label, _ = SIZES[key]
        data = json.loads((workload(key, results["events"]) / "stages.json").read_text())
        text, rows = render_size(label, results["events"], data, r)
        sections.append(text)
        targets += rows
    cmd = "nice -n 10 .venv/bin/python -m benchmarks.bench_throughput" + (
        f" --events {results['events']}" if results["events"] != POOL else "") + (
        f" --only {','.join(results['parts'])}" if tuple(results["parts"]) != PARTS else "") + (
        f" --sizes {','.join(results['sizes'])}" if list(results["sizes"]) != ["3", "1"] else "")
    la = results["load"]
    head = [
        "# Throughput of image events, end to end, side by side with pytx (issue 15, items 2-4)",
        "",
        f"Regenerate: `{cmd}` (about {max(1, round(results['elapsed'] / 60))} min here with the workload cached; "
        f"measured {results['when']}). Machine: {stages.machine()}. Load average (1 min) {la[0]:.2f} when it started, "
        f"{la[1]:.2f} when it ended: the per-core figures count CPU time, the scaling figures wall time, which other "
        "load on the machine slows. Method: the docstring of `benchmarks/bench_throughput.py`.",
        "",
        "## Targets",
        "",
        table(["target", "measured", ""], targets),
        "",
        "## Notes (hand-written; kept between the markers when the file is regenerated)",
        "",
        kept_notes(Path(args.out)),
        "",
    ]
    return "\n".join(head) + "\n" + "\n\n".join(sections) + "\n"
