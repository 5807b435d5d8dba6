"""The markdown of the per-stage benchmark (``benchmarks.bench_stages``): the marginal per-event cost by
stage, one section per image size (``section``), the computed summary, the hand-written notes kept between
their markers (``kept_notes``, which other benchmarks use for their own files too) and the machine line.
``bench_stages`` re-exports every name.
"""
from __future__ import annotations

import os
from pathlib import Path

from benchmarks.machine import cpu_model
from benchmarks.stages_runs import REST, STAGES, STARTUP
from benchmarks.stages_workload import SMALL


# --------------------------------------------------------------------------- report


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
    model = cpu_model()
    import platform
    from importlib.metadata import version

    return (f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}; apache-beam {version('apache-beam')}, "
            f"pillow {version('pillow')}, pdqhash {version('pdqhash')}, tensorflow {version('tensorflow')}, "
            f"cryptography {version('cryptography')}")
