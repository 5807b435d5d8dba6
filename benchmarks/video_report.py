"""The markdown report of ``python -m benchmarks.bench_video`` (``benchmarks/video.md``): the targets,
the speed table, recall on Meta's test videos and the letterbox / overlay edits, from the saved
measurement; the hand-written notes between the markers are kept."""
from __future__ import annotations

from pathlib import Path

from benchmarks.bench_stages import kept_notes

TARGETS = {"360p": 50.0, "720p": 15.0}  # real-time factor per core, issue 15
RULES = ("previous release", "bars only", "now")  # the columns of the bars table, oldest first


def render(result: dict, report: Path) -> str:
    """``benchmarks/video.md`` from a measurement; the hand-written notes are kept from ``report``."""
    speed, recall = result["speed"], result.get("recall") or []
    conformance = recall[0]["conformance"] if recall else []
    recall = recall[1:]
    out = [
        "# vPDQ: speed per core, recall by frame sampling and across letterbox and pillarbox bars",
        "",
        "Written by `python -m benchmarks.bench_video` (issue 15, item 5; issue 17, item 2); how it measures is in the "
        "script's docstring.",
        f"Machine: {result['machine']}. Load average before / after: {result['load_before']} / {result['load_after']} "
        "(shared with other work: costs are CPU seconds of the pinned process and its children, not wall time).",
        "",
        "Frame sampling: `match.video_seconds_per_hash` (default 1.0 s). The pipeline's decoder (`vpdq_worker`, mode "
        "`auto`) hashes one key frame per sampling interval, decoding key frames only, when the video's key frames are "
        f"no more than {result['max_gap_factor']:g} x the interval apart; otherwise it decodes every frame and hashes "
        "one per interval (vpdq, as before). Indicators from media files (`indicators from-media`) still hash every "
        "interval of every frame decoded.",
        "",
        "## Targets",
        "",
        "`pipeline` is the default (bar removal on, `match.video_bars`; static overlays painted out, "
        "`match.video_overlays`); `bars off` the same without bar removal (the release before it); `before` the "
        "decoder as it was before issue 15 (`all`). Bar removal's cost: the difference of the first two; the "
        "overlays' cost: `pipeline` less the same with `match.video_overlays: false` (CPU ms per video; within "
        "the run-to-run noise of 10-20% where they are small). `-bars` clips are 4:3 content pillarboxed to 16:9.",
        "",
        "| clip | target | pipeline (`hash_video`, 1 s) | bars off | bar removal, CPU ms | overlays, CPU ms | "
        "before (`all`, 1 s) | |",
        "|---|---|---|---|---|---|---|---|",
    ]
    by = {(r["clip"], r["config"]): r for r in speed}
    for clip in dict.fromkeys(r["clip"] for r in speed):
        size = next(s for s in TARGETS if s in clip)
        now, before = by[(clip, "pipeline (hash_video) 1 s")], by[(clip, "worker all 1 s")]
        off = by.get((clip, "pipeline (hash_video) 1 s, bars off"))
        kept = by.get((clip, "pipeline (hash_video) 1 s, overlays off"))
        met = "met" if now["x"] >= TARGETS[size] else "**not met**"
        off_cells = f"{off['x']:.1f}x | {1000 * (now['cpu'] - off['cpu']):+.0f}" if off else " | "
        overlay_cell = f"{1000 * (now['cpu'] - kept['cpu']):+.0f}" if kept else ""
        out.append(f"| {clip} | >= {TARGETS[size]:g}x | {now['x']:.1f}x ({now['cpu']:.2f} s CPU for {now['seconds']:.1f} s) "
                   f"| {off_cells} | {overlay_cell} | {before['x']:.1f}x | {met} |")
    out += ["", "## Speed: real-time factor per core (video seconds / CPU seconds; hashed frames)", ""]
    clips = list(dict.fromkeys(r["clip"] for r in speed))
    out.append("| configuration | " + " | ".join(clips) + " |")
    out.append("|---" * (len(clips) + 1) + "|")
    for label in dict.fromkeys(r["config"] for r in speed):
        cells = []
        for clip in clips:
            r = by.get((clip, label))
            cells.append("" if r is None else f"{r['x']:.1f}x" + ("" if r["frames"] is None else f" ({r['frames']})"))
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    if recall:
        out += [
            "",
            "## Recall on Meta's vPDQ test videos",
            "",
            "Matches under the pipeline's rule (default settings), counted over ordered (query, indicator) pairs of the six "
            "videos: `self` = a video against its own indicator (6), `family` = against the other videos of its family "
            "(8), `false` = against other families (22). Shares: the lowest share of a `self` pair, the highest of a "
            "different-family pair (a match needs >= 0.8). `frames`: query frames with quality >= 50, all six videos. "
            "Queries `as published`: the six files; `time-shifted re-encode`: each with its first 0.5 s cut, re-encoded "
            "with a key frame every 1.5 s.",
            "",
            "Key-frame hashes (mode `keyframes`: FFmpeg CLI + the compiled PDQ) against vpdq's hash of the same frame "
            f"(mode `all`, same FFmpeg): {len(conformance['vpdq'])} frames, {sum(c == 0 for c in conformance['vpdq'])} identical, "
            f"at most {max(conformance['vpdq'], default=0)} bits apart; against Meta's published hash of the same frame "
            f"(quality >= 80; Meta's FFmpeg differs): {len(conformance['meta'])} frames, at most "
            f"{max(conformance['meta'], default=0)} bits apart.",
            "",
            "| query configuration | queries | indicators | self | family | false matches | lowest share, self | highest share, other | frames |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in recall:
            out.append(f"| {r['config']} | {r['queries']} | {r['indicators']} | {r['self'][0]}/{r['self'][1]} | "
                       f"{r['family'][0]}/{r['family'][1]} | {r['false'][0]}/{r['false'][1]} | {r['min_share_self']:.2f} | "
                       f"{r['max_share_neg']:.2f} | {r['frames']} |")
    out += render_bars(result.get("bars"))
    out += ["", "## Notes", "", kept_notes(report), ""]
    return "\n".join(out)


def render_bars(bars: dict | None) -> list[str]:
    if not bars:
        return []
    out = [
        "",
        "## Letterboxed, pillarboxed, greyscale and logo re-encodes (issue 17)",
        "",
        f"Each of {bars['sources']} sources (Meta's `pattern-hd-no-bar` and `doorknob-hd-no-bar`, four generated "
        "pans) re-encoded with each edit (x264, a key frame each second), hashed as an upload (`hash_video`, 1 s) and "
        f"matched against {bars['indicators']} indicators made from media (the sources and Meta's two chair videos). "
        "`found`: the edit matched its own source; `false`: it matched another indicator. `previous release`: whole "
        "frames, the query share alone (>= 0.8); `bars`: bar removal on both sides (`match.video_bars`), query share "
        ">= 0.8 and indicator share >= the default, static overlays left alone (`match.video_overlays: false`); `now`: "
        "the defaults, which also hash an upload's key frames with static overlays painted out "
        "(`csadetect.media.overlay`). `bars found` / `overlays found`: uploads in which the decoder found bars / "
        "static overlays (now). Shares (now): the lowest query / indicator share of an edit against its own source, "
        "the highest against any other indicator. No threshold was tuned on these clips (the overlay finder's were "
        "set on other generated pans, seeds 21-24, with other logos: `tests/test_video_overlay.py`). Indicators are "
        "made from media at every frame (`match.video_indicator_seconds_per_hash: 0`, the default since 2026-12-05) "
        "or at 1 s (the release before). The edits `first ... s cut` start that much later than their source "
        "(`-ss`), as most re-uploads do: their key frames fall between the frames a 1 s indicator kept. "
        "`all edits` sums the ten edits without a cut (as in earlier runs), `time-shifted` the cut ones.",
        "",
        "| edit | indicators | found: previous / bars / now | false: previous / bars / now | bars found | "
        "overlays found | lowest shares, own source | highest shares, other |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rows = {(r["edit"], r["indicators"], r["rule"]): r for r in bars["rows"]}
    rules = [r for r in RULES if any(x["rule"] == r for x in bars["rows"])]
    for edit, ilabel, _ in dict.fromkeys((r["edit"], r["indicators"], 0) for r in bars["rows"]):
        by = [rows[(edit, ilabel, rule)] for rule in rules]
        n = by[-1]
        lo = [min(x[i] for x in n["true_shares"]) for i in (0, 1)]
        found = " / ".join(f"{r['found'][0]}/{r['found'][1]}" for r in by)
        false = " / ".join(f"{r['false'][0]}/{r['false'][1]}" for r in by)
        out.append(f"| {edit} | {ilabel} | {found} | {false} | {n['bars']}/{n['found'][1]} | "
                   f"{n.get('overlays', 0)}/{n['found'][1]} | "
                   f"{lo[0]:.2f} / {lo[1]:.2f} | {n['false_max'][0]:.2f} / {n['false_max'][1]:.2f} |")
    shifted = set(bars.get("shifted", ()))
    for title, keep in (("all edits", lambda e: e not in shifted), ("time-shifted", lambda e: e in shifted)):
        for rule in rules:
            for ilabel in dict.fromkeys(r["indicators"] for r in bars["rows"]):
                sel = [r for r in bars["rows"] if r["rule"] == rule and r["indicators"] == ilabel and keep(r["edit"])]
                if not sel:
                    continue
                found = sum(r["found"][0] for r in sel), sum(r["found"][1] for r in sel)
                false = sum(r["false"][0] for r in sel), sum(r["false"][1] for r in sel)
                out.append(f"| **{title}** ({rule}) | {ilabel} | {found[0]}/{found[1]} found | "
                           f"{false[0]}/{false[1]} false | | | | |")
    return out + render_excerpts(bars.get("excerpts"))


def render_excerpts(ex: dict | None) -> list[str]:
    if not ex:
        return []
    out = [
        "",
        "## Excerpts of a long video",
        "",
        f"The eight indicator videos above back to back ({ex['seconds']:.0f} s, 640x360), made an indicator from "
        f"media at 1 s ({ex['indicator_frames']['1 s']} frames) and at every frame "
        f"({ex['indicator_frames']['every frame']} distinct frames, the default); excerpts of it re-encoded at SD "
        "with a key frame each second and hashed as uploads (defaults). `found` under the default rule (query share "
        ">= 0.8, indicator share >= 0.01); shares: query / indicator.",
        "",
        "| excerpt (start + length) | found, 1 s indicator | shares | found, every-frame indicator | shares |",
        "|---|---|---|---|---|",
    ]
    for r in ex["rows"]:
        cells = [f"{'yes' if r[k]['found'] else 'no'} | {r[k]['shares'][0]:.2f} / {r[k]['shares'][1]:.3f}"
                 for k in ("1 s", "every frame")]
        out.append(f"| {r['start']} s + {r['seconds']} s | {cells[0]} | {cells[1]} |")
    n = len(ex["rows"])
    out.append(f"| **found** | {sum(r['1 s']['found'] for r in ex['rows'])}/{n} | | "
               f"{sum(r['every frame']['found'] for r in ex['rows'])}/{n} | |")
    return out
