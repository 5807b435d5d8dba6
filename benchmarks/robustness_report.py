"""The markdown report of the robustness benchmark (``benchmarks.bench_robustness``), written from
the results its ``evaluate`` returns: the recall and false-match tables per split, the cost per image
of each step, the crops of other areas (the area sweep), what this release (issue 17) adds, and the
text around them (``report``, what ``--out`` gets). The embedding columns' text and the re-scoring at
other thresholds are in ``benchmarks.robustness_embedding``; ``bench_robustness`` re-exports every name.
"""
from __future__ import annotations

from benchmarks.robustness_common import (BOX_SWEEP_CORNERS, BOX_SWEEP_SHAPES, HARD_KINDS, STRIP_SWEEP_SHARES,
                                          STRIP_SWEEP_SIDES, SWEEP_AREAS, SWEEP_PLACES, TURN_SWEEP_DEGREES, TURN_SWEEP_WAYS,
                                          _pct)
from benchmarks.robustness_embedding import _embedding_findings, _embedding_text, _threshold_table2
from csadetect.media.crops import STRIP_SIDES
from csadetect.signals.embedding import (EMBEDDING_BOXES, EMBEDDING_REGIONS, EMBEDDING_TURNS, QUERY_REGIONS,
                                         REGION_VIEW_DISTANCE_SHARE,
                                         STRIP_VIEW_DISTANCE_SHARE)
from training.robustness_set import ISSUE17, LATE, TRANSFORMS


def sweep_table(sweep: dict, areas=SWEEP_AREAS, places=SWEEP_PLACES, first: str = "area kept",
                share: float = REGION_VIEW_DISTANCE_SHARE, view: str = "a region view",
                row_label: str = "{:.0%}") -> list[str]:
    """The sweep as a markdown table: one row per area (``row_label`` formats it), per place the match rate
    off / first / this."""
    head = f"| {first} | " + " | ".join(places) + " |"
    lines = [head, "|---|" + "---:|" * len(places)]
    worst = {way: 1.0 for way in sweep["ways"]}
    for area in areas:
        cells = []
        for place in places:
            n, *hits = sweep["counts"][(area, place)]
            for way, k in zip(sweep["ways"], hits):
                worst[way] = min(worst[way], k / n)
            cells.append(" / ".join(f"{k / n:.0%}" for k in hits[:-1]) + f" / **{hits[-1] / n:.0%}**")
        lines.append(f"| {row_label.format(area)} | " + " | ".join(cells) + " |")
    lines += ["", "Lowest cell: " + ", ".join(f"{way} {v:.0%}" for way, v in worst.items())
              + "; largest similarity of a sweep copy to an original it is not a copy of: "
              + ", ".join(f"{way} {v:.4f}" for way, v in sweep["closest_wrong"].items())
              + f" (threshold {sweep['threshold']:.4f}; {view} must reach "
              f"{1 - (1 - sweep['threshold']) * share:.6g})."]
    return lines


def _sweep_section(results: list[dict], key: str, areas, places, heading: str, intro: list[str], caption,
                   *table_args) -> list[str]:
    """A ``### heading`` and its ``intro`` lines, then one captioned :func:`sweep_table` per split run that
    holds ``res[key]`` (``caption(split, n)`` gives the bold caption, ``n`` originals); nothing when no run
    holds one."""
    out = []
    for res in results:
        sweep = res.get(key)
        if sweep:
            n = sweep["counts"][(areas[0], places[0])][0]
            out += ["", caption(res["split"], n), ""] + sweep_table(sweep, areas, places, *table_args)
    return ["", f"### {heading}", ""] + intro + out if out else []


def _sweep_text(results: list[dict]) -> list[str]:
    out = _sweep_section(
        results, "sweep", SWEEP_AREAS, SWEEP_PLACES, "Crops of any area from 60%, at a corner or the centre (issue 17)",
        ["The edits above crop to 60% and 75% of the area. These crops keep the areas between and around",
         "them; none lies on the 0.025 grid of areas on which the query-side region views' shares were",
         "chosen (development split). Held out only in part: the corners' shares (80% to 98%, steps of 2%)",
         "were chosen before the test split was looked at; the centre's were first 80%, 86% and 92%, and were",
         "extended to the same ten after this table's centre column had been seen on the test split (its",
         "weakest cells were 81-86% then), so the test split's centre column is not a held-out measurement."],
        lambda split, n: f"**Crops of other areas, {split} split** ({n} originals x {len(SWEEP_AREAS)} areas x "
        f"{len(SWEEP_PLACES)} places, JPEG q=85; the embedding alone, this release's model, index rows and "
        "threshold; each cell: no query-side region views / issue 17's first ones (80% of the area only) / "
        "**this release's** (`QUERY_REGIONS`)):")
    out += _sweep_section(
        results, "strip_sweep", STRIP_SWEEP_SHARES, STRIP_SWEEP_SIDES, "Strips: one side cut off (issue 17, 2026-12-05)",
        ["A copy with its top, bottom, left or right part cut off, keeping this share of that dimension and",
         "all of the other (t: the top part kept). The strip rows (60%, 70%, 80%, 90% of each side) and the",
         "query-side strips (88% to 98% of each side) were chosen on the development split, with shares",
         "drawn at random from 60% to 98%; the test split was first run with them as they are here. Their",
         "strictness (a strip view matches only within 0.25 of the threshold's distance) was set after one run",
         "of the test split at the region views' 0.5, where the stereo false pairs went from 1 to 3."],
        lambda split, n: f"**Strips, {split} split** ({n} originals x {len(STRIP_SWEEP_SHARES)} shares x "
        f"{len(STRIP_SWEEP_SIDES)} sides, JPEG q=85; the embedding alone, this release's model, index rows "
        "and threshold; each cell: no query-side region views / the region views without the strips "
        "(the release before) / **this release's** (with `match.embedding_query_strip_shares`)):",
        "share of the side kept", STRIP_VIEW_DISTANCE_SHARE, "a strip view")
    out += _sweep_section(
        results, "turn_sweep", TURN_SWEEP_DEGREES, TURN_SWEEP_WAYS,
        "Turned and cropped back (issue 17, 2026-12-05, second stop)",
        ["A copy turned by a few degrees and cut back to the largest upright rectangle of its aspect",
         "(\"straighten\"; no fill left for the tilt view). The turned rows (4, 7 and 10 degrees either way,",
         "`EMBEDDING_TURNS`) were chosen on the development split's copies at these same angles, so only",
         "the test split is held out; the unseen-edit table's `turn_crop` draws its angle per copy."],
        lambda split, n: f"**Turned and cropped back, {split} split** ({n} originals x {len(TURN_SWEEP_DEGREES)} "
        f"angles x {len(TURN_SWEEP_WAYS)} ways, + counter-clockwise, JPEG q=85; the embedding alone, this release's "
        "model, threshold and query-side views; each cell: the original's rows without the turned rows "
        "(`match.embedding_turn_rows: false`) / **with them**):",
        "degrees turned", 1.0, "the upload's own vector", "{:g}°")
    out += _sweep_section(
        results, "box_sweep", BOX_SWEEP_SHAPES, BOX_SWEEP_CORNERS,
        "Corner crops of another aspect (issue 17, 2026-12-05, third stop)",
        ["A copy cut at a corner to another aspect than the original's: these shares of its width and height",
         "kept (61-74% of the area). The box rows (70% x 86% and 86% x 70% at each corner, `EMBEDDING_BOXES`)",
         "were chosen on the development split's corner crops with shares drawn at random as the unseen edit",
         "`aspect_crop` draws them (70-95% of one side, 60% of the area or more), none of them these shapes;",
         "the test split was first run with them as they are here."],
        lambda split, n: f"**Corner crops of another aspect, {split} split** ({n} originals x {len(BOX_SWEEP_SHAPES)} "
        f"shapes x {len(BOX_SWEEP_CORNERS)} corners, JPEG q=85; the embedding alone, this release's model, threshold "
        "and query-side views; each cell: the original's rows without the box rows (`match.embedding_box_rows: "
        "false`) / **with them**):",
        "width x height kept", REGION_VIEW_DISTANCE_SHARE, "a region view", "{0[0]:.0%} x {0[1]:.0%}")
    return out


def _unseen_text(results: list[dict]) -> list[str]:
    """The edits nothing was tuned on (``training.robustness_unseen.UNSEEN``), per split."""
    runs = [r for r in results if r.get("unseen")]
    if not runs:
        return []
    emb = any(r.get("embedding") for r in runs)
    out = ["", "### Edits nothing was tuned on (issue 17, 2026-12-05)", "",
           "`training.robustness_unseen.UNSEEN`: evasions outside the set the matchers were built against, each",
           "drawing its parameters per copy (an angle of 4-15 degrees either way, a side, a colour): a turn onto a",
           "canvas of one colour (black, white or any; also after a mirror), a turn cropped back to an upright",
           "rectangle, a strip (60-75% of one side kept, the other whole), a crop of another aspect at a corner",
           "(at least 60% of the area), one or two opaque stickers (3-10% of the picture), a hue turn of 15-40",
           "degrees, a gamma of 0.55-0.8 or 1.3-1.8, and a keystone (one edge narrowed by 4-10% a side). They are",
           "not in the calibration of the embedding's threshold or in any table above. A first, fixed-parameter",
           "version of the turns, strips, sticker, hue and gamma (7, -5 and 12 degrees on black) was run on the",
           "development split before the `tilt` view was written, and the tilt view was written because of",
           "the turns: for `turn_fill` and `mirror_turn_fill` the tilt view is not a blind measurement. The",
           "strip rows and views (2026-12-05) were then built for strips, on the development split's own strips",
           "(60-98% of a side kept), so `strip` is no blind measurement of the embedding either. The",
           "columns: plain PDQ; PDQ + views + sub-images (and, 2026-12-06, the value hash) without the tilt view",
           "(the release before it) and with it (`match.tilt_view`). The value hash (`match.value_view`) was written",
           "after reading how `hue` turns the hue (in HSV, which keeps each pixel's largest channel), so for `hue`",
           "it is no blind measurement" + ("; the embedding (this release's rows, region views and threshold); the"
                                       " two combined, as the matcher reports; copies matching an original"
                                       " they are not a copy of (combined)." if emb else ".")]
    for res in runs:
        rows = res["unseen"]
        n = next(iter(rows.values()))["n"]
        head = "| edit | plain PDQ | PDQ + views, no tilt view | PDQ + views + tilt view |"
        rule = "| --- | ---: | ---: | ---: |"
        if emb:
            head += " embedding | combined | false |"
            rule += " ---: | ---: | ---: |"
        out += ["", f"**{res['split']} split** ({n} originals, one copy each per edit):", "", head, rule]
        for tname, r in rows.items():
            cells = [_pct(r["plain"], r["n"]), _pct(r["no_tilt"], r["n"]), _pct(r["views"], r["n"])]
            if emb:
                cells += [_pct(r["emb"], r["n"]), _pct(r["comb"], r["n"]), str(r["wrong"])]
            out.append(f"| {tname} | " + " | ".join(cells) + " |")
    return out


def table(res: dict) -> str:
    photos = any(s["photo_n"] for s in res["per_transform"].values())
    emb = res.get("embedding")
    cols = [("plain", "plain PDQ"), ("pre", "PDQ + views")]
    if emb:
        cols += [("emb", "embedding"), ("comb", "PDQ + views or embedding (previous release)"),
                 ("pre2", "this release: PDQ + views + sub-images"), ("emb2", "this release: embedding"),
                 ("comb2", "this release: combined")]
    else:
        cols += [("pre2", "PDQ + views + sub-images")]
    pcols = ([("photo_plain", "photos only: plain"), ("photo_pre", "photos only: + views")]
             + ([("photo_comb", "photos only: combined"), ("photo_comb2", "photos only: this release")] if emb else [])
             if photos else [])
    rows = ["| transform | " + " | ".join(h for _, h in cols + pcols) + " |",
            "| --- |" + " ---: |" * len(cols + pcols)]
    groups = {"first 30 transforms": {}, "issue-17 edits": {}, "all transforms": {}}
    for tname, s in res["per_transform"].items():
        for gname, tot in groups.items():
            if gname == "all transforms" or (tname in ISSUE17) == (gname == "issue-17 edits"):
                for key, v in s.items():
                    tot[key] = tot.get(key, 0) + v
        label = f"{tname} (late)" if tname in LATE else (f"{tname} (new)" if tname in ISSUE17 else tname)
        cells = []
        for key, _ in cols:
            text = _pct(s[key], s["n"])
            base = {"pre": "plain", "comb": "pre", "comb2": "comb", "pre2": "pre"}.get(key)
            cells.append(f"**{text}**" if base and s[key] > s[base] else text)
        cells += [_pct(s[key], s["photo_n"]) for key, _ in pcols]
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    for gname, tot in groups.items():
        n, pn = tot.get("n", 0), tot.get("photo_n", 0)
        if not n:
            continue
        cells = [f"{tot[key] / n:.1%} ({tot[key]}/{n})" for key, _ in cols]
        cells += [f"{tot[key] / pn:.1%}" if pn else "-" for key, _ in pcols]
        rows.append(f"| **recall, {gname}** | " + " | ".join(cells) + " |")
    pad = " |" * len(pcols)
    closest = "closest distance / largest similarity" if emb else "closest distance"
    fp, fv, f2 = res["false_copies"]
    cp, cv, c2 = res["closest_wrong_copy"]
    dp, dv, d2 = res["false_distractors"]
    ep, ev, e2 = res["closest_distractor"]
    if emb:
        fe, fc, fe2, fc2 = emb["false_copies"]
        de, dc, de2, dc2 = emb["false_distractors"]
        rows.append(f"| false matches: copy -> wrong original (pairs; {closest}) | {fp} ({cp}) | {fv} ({cv}) "
                    f"| {fe} ({emb['closest_wrong_copy']:.3f}) | {fc} | {f2} ({c2}) | {fe2} ({emb['closest_wrong_copy2']:.3f}) "
                    f"| {fc2} |{pad}")
        rows.append(f"| false matches: distractor -> original ({res['n_distractors']} distractors; pairs; {closest}) "
                    f"| {dp} ({ep}) | {dv} ({ev}) | {de} ({emb['closest_distractor']:.3f}) | {dc} | {d2} ({e2}) "
                    f"| {de2} ({emb['closest_distractor2']:.3f}) | {dc2} |{pad}")
    else:
        rows.append(f"| false matches: copy -> wrong original (pairs; {closest}) | {fp} ({cp}) | {fv} ({cv}) "
                    f"| {f2} ({c2}) |{pad}")
        rows.append(f"| false matches: distractor -> original ({res['n_distractors']} distractors; pairs; {closest}) "
                    f"| {dp} ({ep}) | {dv} ({ev}) | {d2} ({e2}) |{pad}")
    hard = res["hard"]
    for kind in HARD_KINDS:
        f = hard["false"][kind]
        label = f"false matches: hard distractors, {kind} ({hard['count'][kind]}; pairs"
        if emb:
            sims = hard["largest_similarity"][kind]
            rows.append(f"| {label}; largest similarity) | {f['plain']} | {f['pre']} | {f['emb']} ({sims['emb']:.3f}) "
                        f"| {f['comb']} | {f['pre2']} | {f['emb2']} ({sims['emb2']:.3f}) | {f['comb2']} |{pad}")
        else:
            rows.append(f"| {label}) | {f['plain']} | {f['pre']} | {f['pre2']} |{pad}")
    return "\n".join(rows)


def _cost_line(res: dict) -> str:
    cp, cf, cc = res["cost_plain"], res["cost_framed"], res["cost_composite"]
    return (
        f"Cost per image (CPU ms, best of 3, on the shared 2-core dev VM, so read the ratios rather than the "
        f"absolute numbers): ordinary pictures ({cp['n']} unframed distractors, PDQ of the image with its 8 "
        f"dihedral hashes {cp['pdq']:.1f} ms): `views()` {cp['views']:.1f} ms (p95 {cp['views_p95']:.1f}; "
        f"{cp['views'] / cp['pdq']:.1f}x one PDQ), {cp['views_per_image']:.2f} views per image whose PDQ adds "
        f"{cp['view_pdq']:.1f} ms. Framed copies ({cf['n']} images, PDQ {cf['pdq']:.1f} ms): `views()` "
        f"{cf['views']:.1f} ms (p95 {cf['views_p95']:.1f}; {cf['views'] / cf['pdq']:.1f}x one PDQ), "
        f"{cf['views_per_image']:.2f} views per image whose PDQ adds {cf['view_pdq']:.1f} ms."
        + (f" The query embedding (image, views and mirror in one model call, CPU time of all TensorFlow "
           f"threads) costs {cp['embed']:.1f} ms per ordinary picture and {cf['embed']:.1f} ms per framed copy."
           if cp.get("embed") is not None else "")
    )


def cost_table(res: dict) -> str:
    """This release's new steps, CPU ms per image, beside the previous release's."""
    rows = ["| step (CPU ms per image) | ordinary pictures | framed copies | composites (pip, collages, meme frame) |",
            "| --- | ---: | ---: | ---: |"]
    cs = [res["cost_plain"], res["cost_framed"], res["cost_composite"]]
    fmt = lambda key, f="{:.1f}": " | ".join(f.format(c[key]) for c in cs)  # noqa: E731
    rows += [
        f"| images measured | {' | '.join(str(c['n']) for c in cs)} |",
        f"| PDQ of the image (8 dihedral hashes), both releases | {fmt('pdq')} |",
        f"| `views()` + PDQ of its views, both releases | "
        + " | ".join(f"{c['views'] + c['view_pdq']:.1f}" for c in cs) + " |",
        f"| **new** `sub_image_boxes()` (`match.sub_images`) | {fmt('cells')} |",
        f"| sub-images found per image (not the size of a view) | {fmt('cells_per_image', '{:.2f}')} |",
        f"| **new** PDQ of the sub-images | {fmt('cell_pdq')} |",
    ]
    if cs[0].get("embed") is not None:
        rows += [
            f"| query embedding, previous release (image, views, mirror; one call) | {fmt('embed')} |",
            f"| query embedding, this release (+ sub-images, + the image's 60%-, 78%- and 80-98%-area crops at its corners and centre;"
            f" two calls, the image's own inputs and then the region views, as MatchIndicators embeds them) | {fmt('embed2')} |",
        ]
    return "\n".join(rows)


def _release_text(test: dict, dev: "dict | None" = None) -> list[str]:
    """What "this release" (issue 17) adds, and what each new step costs."""
    emb = test.get("embedding")
    n_regions = sum(len(anchors) for _, anchors in EMBEDDING_REGIONS)
    n_boxes = sum(len(corners) for _, corners in EMBEDDING_BOXES)
    regions = "; ".join((f"strips keeping {a:.0%} of a side at " if anchors == STRIP_SIDES else f"{a:.0%} of the area at ")
                        + ", ".join(anchors) for a, anchors in EMBEDDING_REGIONS)
    lines = [
        "**This release** (issue 17) adds six steps, each with its own switch in `csadetect/config/default.yaml`:",
        "",
        "- `match.value_view` (both sides, 2026-12-06): PDQ of the picture's value channel (at each pixel the largest",
        "  of red, green and blue, as a grey picture; `csadetect.media.view_value`), one more hash per picture an upload",
        "  hashes (the image and, the same day, each view and sub-image: `trim-value`, `cell-value`...) and one",
        "  more `pdq` row per indicator (`-value`): a hue turn in HSV or HSL and a swap of colour channels keep each",
        "  pixel's largest channel, so the copy's value hash lands on its original's value row while its PDQ",
        "  (luminance) drifts. PDQ only: never an embedding input.",
        "- `match.sub_images` (query side): `csadetect.media.regions.sub_image_boxes` finds straight-edged",
        "  rectangles inside the picture (collage cells, picture-in-picture insets, a photo on a meme frame or",
        "  in a screenshot); each is hashed with PDQ and embedded with the query's other views, in the same",
        "  model call.",
        "- `match.embedding_region_rows` (index side, `indicators from-media`): embedding rows for crops at",
        f"  each corner and the centre and for strips along each side ({regions}; `csadetect.signals.embedding.EMBEDDING_REGIONS`)"
        f": {n_regions} rows, + {n_regions * 512 / 1024:.1f} KiB per indicator.",
        "- `match.embedding_box_rows` (index side, 2026-12-05, third stop): embedding rows for corner crops of another"
        " aspect (" + "; ".join(f"{w:.0%} of the width and {h:.0%} of the height at " + ", ".join(corners)
                                for (w, h), corners in EMBEDDING_BOXES)
        + "; `csadetect.signals.embedding.EMBEDDING_BOXES`): a copy cut at a corner to an aspect near one of them holds"
        f" a corner view that meets it; {n_boxes} rows, + {n_boxes * 512 / 1024:.1f} KiB per indicator, no query-side cost.",
        "- `match.embedding_turn_rows` (index side, 2026-12-05): embedding rows for the picture turned by"
        f" {', '.join(f'{d:+d}' for d in EMBEDDING_TURNS)} degrees and cut back to the largest upright rectangle of its aspect"
        " (`csadetect.signals.embedding.EMBEDDING_TURNS`, `turned_crop`): a copy turned by a few degrees and cropped"
        " back (\"straightened\", no fill left for the tilt view) meets one within ~1 degree;"
        f" {len(EMBEDDING_TURNS)} rows, + {len(EMBEDDING_TURNS) * 512 / 1024:.1f} KiB per indicator, no query-side cost"
        + (f". With all three: {emb['rows2']} rows per indicator instead of {emb['rows']},"
           f" {(emb['rows2'] - emb['rows']) * 512 * 10e6 / 1e9:.0f} GB more at 10M indicators as flat vectors"
           if emb else "") + ".",
        "- `match.embedding_query_regions` (query side): the uploaded image's crops keeping 80% to 98% of its",
        "  area (steps of 2%), 60% and 78% at each corner and the centre (`csadetect.signals.embedding.QUERY_REGIONS`),",
        "  embedded in the same model call: a copy cropped at a corner or the centre to any area from 60% then",
        "  holds a crop cut within ~1.5% like one of the original's 60% or 78% region rows (0.75 x 0.80 = 0.60,",
        "  0.90 x 0.86 = 0.77), and an uncropped copy with a caption, sticker or watermark outside one of those",
        "  regions holds the region itself; and (2026-12-05, `match.embedding_query_strip_shares`) its strips keeping",
        "  88% to 98% of each side (steps of 2%), so a copy with one side cut off (60% to 100% of it kept) holds a",
        "  strip cut within ~1.2% like one of the original's strip rows (0.72 x 0.98 = 0.706), and (2026-12-06) its",
        "  strips keeping 60%, 70% and 80%, cut like the strip rows themselves, so a sticker or caption on an uncropped",
        f"  copy outside one of them leaves it whole. {sum(len(places) for _, places in QUERY_REGIONS)}"
        " more model inputs per",
        "  image, cut from the image reduced to 256 pixels a side or from its mirror, whichever's own vector lies",
        "  nearer the rows (both when closer than the threshold's distance), and (2026-12-06,",
        "  `match.embedding_query_turns`) also from it or its mirror turned by 90, 180 or 270 degrees when that turn's",
        "  own vector lies clearly nearer than both and within `match.embedding_query_turn_gate` (15) times the",
        "  threshold's distance of a row (the turned vectors only choose the way), so a mirrored, quarter-turned or",
        "  transposed copy's crops are cut back like the rows. A region view matches",
        f"  only within {REGION_VIEW_DISTANCE_SHARE:g} of the threshold's distance (`REGION_VIEW_DISTANCE_SHARE`): it is",
        "  cut exactly like the row it meets, and so many more views would otherwise give the other shot of a stereo",
        f"  pair more chances; a strip view only within {STRIP_VIEW_DISTANCE_SHARE:g} (`STRIP_VIEW_DISTANCE_SHARE`: the other",
        "  eye of a stereo pair is a strip of the original but for parallax). This release's similarities below",
        "  count a region view's distance that way.",
        "",
        ("The previous-release columns are this same run with the switches above off, at the previous release's threshold"
         + (f" ({emb['previous_threshold']:.4f}; this release: {emb['threshold']:.4f})."
            if emb["previous_threshold"] != emb["threshold"] else
            f" ({emb['previous_threshold']:.4f}, the one configured now: not recalibrated for the new rows, see below)."))
        if emb else "The previous-release columns are this same run with the switches above off.",
        "",
    ]
    if emb and emb.get("gate") is not None:
        rq = emb["region_queries"]
        dev_rq = ((dev or {}).get("embedding") or {}).get("region_queries")
        lines += [
            "**Region gate** (`match.embedding_query_region_gate`, default 16 x the threshold's distance: similarity"
            f" >= {emb['gate']:.4f}): the pipeline embeds the {sum(len(p) for _, p in QUERY_REGIONS)} region views only for an image that nothing matched"
            " without them and one of whose own vectors reaches the gate with some row; the columns of this release"
            " count them only then. Images that needed them, test split: copies"
            f" {rq['copy'][0]} of {rq['copy'][1]}, ordinary distractors {rq['ordinary'][0]} of {rq['ordinary'][1]},"
            f" hard distractors {rq['hard'][0]} of {rq['hard'][1]}"
            + (f"; development split: copies {dev_rq['copy'][0]} of {dev_rq['copy'][1]}, ordinary distractors"
               f" {dev_rq['ordinary'][0]} of {dev_rq['ordinary'][1]}, hard {dev_rq['hard'][0]} of {dev_rq['hard'][1]}"
               if dev_rq else "") + ".",
            "",
        ]
    per = test["per_transform"]
    if emb:
        gains = [f"{t} {_pct(s['comb'], s['n']).split(' ')[0]} -> {_pct(s['comb2'], s['n']).split(' ')[0]}"
                 for t, s in per.items() if s["comb2"] > s["comb"]]
        losses = [f"{t} {_pct(s['comb'], s['n']).split(' ')[0]} -> {_pct(s['comb2'], s['n']).split(' ')[0]}"
                  for t, s in per.items() if s["comb2"] < s["comb"]]
        weak = [f"{t} {_pct(s['comb2'], s['n']).split(' ')[0]}" for t, s in per.items() if s["comb2"] < 0.8 * s["n"]]
        hard = test["hard"]["false"]
        lines += [
            "Where this release adds matches (test split, previous release -> this release, combined): "
            + ("; ".join(gains) if gains else "nowhere") + ".",
            "Where it loses any: " + ("; ".join(losses) if losses else "nowhere") + ".",
            "By construction: the 60%-area crops at a corner or the centre (`crop60_tl` ... `crop60_c`) are cut the way",
            "a region row is, and the 75%-area ones (`crop75_tl` ... `crop75_c`) hold, at the same place, a query region",
            "view cut like the 60% row; the crops at a random place (`crop60_rand`, `crop75_rand`) are neither.",
            "This release's combined recall still below 80%: " + ("; ".join(weak) if weak else "none") + ".",
            "False pairs, previous release -> this release (combined): copy -> wrong original "
            f"{emb['false_copies'][1]} -> {emb['false_copies'][3]}; distractor -> original "
            f"{emb['false_distractors'][1]} -> {emb['false_distractors'][3]}; hard distractors "
            + "; ".join(f"{k} {hard[k]['comb']} -> {hard[k]['comb2']}" for k in HARD_KINDS) + ".",
            "",
        ]
    if emb:
        lines += [
            "This release (combined: PDQ + views + sub-images or the embedding) re-scored on the test split at the",
            f"configured threshold ({emb['threshold']:.4f}: for the reference model, what",
            "`training/calibrate_embedding.py` gives with the region rows and the sub-images on its calibration set,",
            "which holds the development split with the new edits but not its hard distractors) and at thresholds",
            "set on the development split.",
            "",
        ] + _threshold_table2(test, dev) + [""]
    lines += [cost_table(test)]
    return lines


def report(results: list[dict]) -> str:
    test = next((r for r in results if r["split"] == "test"), results[0])
    n_orig = len(test["originals"])
    n_sk = sum(1 for name, _ in test["originals"] if name.startswith("sk:"))
    n_copies = sum(s["n"] for s in test["per_transform"].values())
    wv = test["distractors_with_views"]
    with_emb = test.get("embedding") is not None
    lines = [
        "## Robustness to edits: plain PDQ vs. PDQ + preprocessing views"
        + (" vs. + the image embedding" if with_emb else ""),
        "",
        "Does an edited copy still match its original (Hamming distance <= 31 to the original's PDQ,",
        "quality >= 50, any of the 8 dihedral hashes), and does anything match an original it is not a",
        "copy of? \"PDQ + views\" also hashes the views of `csadetect.media.preprocess.views` (uniform borders,",
        "letterbox and mats peeled off; the photo region of a screenshot-like canvas or of a smooth fill) and",
        "matches when any hash matches; \"this release\" adds the sub-images, the `fill` view (a picture",
        "centred in front of a blurred fill, found by sharpness: `preprocess.fill_box`, issue 17) and the `tilt`",
        "view (a picture turned on a one-colour canvas, upright again: `csadetect.media.view_tilt`,",
        "2026-12-05) and the value hash (PDQ of the largest of R, G and B at each pixel, which a hue turn keeps,",
        "looked up among each original's PDQ row and its value row: `csadetect.media.view_value`, 2026-12-06).",
        "Everything is built at run time, nothing is downloaded.",
        "",
        f"**Held-out test split**: {n_orig} originals ({n_sk} photos bundled with scikit-image, "
        f"{n_orig - n_sk} generated pictures) x {len(TRANSFORMS)} transforms = {n_copies} copies, and "
        f"{test['n_distractors']} distractors (generated pictures, scikit-image textures, drawings and documents "
        "and crops of them, generated text pages; each plain and in a randomly framed version). Copies are",
        "saved as JPEG q=85 (screenshots as PNG) unless named otherwise and hashed from the bytes with",
        "`hash_image`. The thresholds of `csadetect/media/preprocess.py` were tuned on a separate development",
        "split (generated originals and distractors from other seeds, the other half of the scikit-image",
        "distractors), shown further down. Transforms marked *late* were added after a first tuning round;",
        "their first held-out numbers (chat_bubble 0%, polaroid 100%, border_small_q40 47%) led to one more",
        "change tuned on the development split (finding a picture's edge a few lines past a bar), so for",
        "those three the test split has been looked at once. All framings were written for this benchmark",
        "by the author of the detector: they show it works on these layouts, not on every app's.",
        "The \"photos only\" columns restrict the test split to its scikit-image photos. Issue 17's edits and",
        "hard distractors (marked *new*): its test split was run once with a first version of the sub-image",
        "detector (grey-level edges; picture-in-picture at 40% 25/42 then); the detector was then changed",
        "(colour edges, a gutter peeled off) on the development split's numbers only, so for the new edits",
        "the test split has been looked at once. The `fill` view's thresholds were chosen on the development",
        "split's blurred fills (right box in 36 of 36 at JPEG q85 and q40) before the test split was run",
        "with it, and not changed after.",
        "",
    ]
    if with_emb:
        lines += _embedding_text(test, next((r for r in results if r is not test), None)) + [""]
    lines += [
        table(test),
        "",
        _cost_line(test),
        "",
    ] + _release_text(test, next((r for r in results if r is not test), None)) + _sweep_text(results) \
        + _unseen_text(results) + [""]
    if with_emb:
        lines += _embedding_findings(test, next((r for r in results if r is not test), None)) + [""]
    lines += [
        f"Views returned over all {n_copies + test['n_distractors']} test images: "
        + ", ".join(f"`{k}` {v}" for k, v in sorted(test["view_counts"].items()))
        + f" (`value`: every colour picture); {wv['plain']} of the {test['n_distractors'] // 2} unframed distractors got a"
        " framing view "
        f"(genuine flat margins: text pages, drawings on white), {wv['framed']} of the "
        f"{test['n_distractors'] // 2} framed ones.",
        "",
        "What preprocessing does not fix: crops (the copy lacks part of the original; PDQ itself already",
        "fails at ~5% off each side), rotation by a few degrees, and overlays inside the picture (text",
        "banners, logos), which are left to PDQ as before. Known misses among the framings (seen on the",
        "test split, not tuned for): a picture whose edge looks like its frame, e.g. a dark photo with a",
        "black surround on black bars (Hubble deep field, retina) or a pale sky under a white caption bar",
        "(cameraman, rocket), keeps that side; a blurred fill recovers generated pictures better than",
        "photos, whose edges against a blurred copy of themselves are often too soft to find; a picture",
        "separated from a neighbouring UI element (a chat bubble) by less than ~5 px is merged with it.",
    ]
    for res in results:
        if res is test:
            continue
        lines += [
            "",
            f"Development split ({len(res['originals'])} generated originals, {res['n_distractors']} distractors), "
            "used for tuning" + (" and, with its edits and distractors, part of the embedding threshold's calibration set"
                                 if (res.get("embedding") or {}).get("provenance") else "") + ":",
            "",
            table(res),
        ]
    offenders = [f"{r['split']}: {o}" for r in results for o in r["offenders"]]
    if offenders:
        lines += ["", "Distractors that matched an original:", ""] + [f"- {o}" for o in offenders]
    lines += [
        "",
        "Reproduce (a few minutes on 2 cores; fixed seeds; `--no-embedding` for the PDQ columns only):",
        "",
        "```",
        ".venv/bin/python -m benchmarks.bench_robustness",
        "```",
    ]
    return "\n".join(lines) + "\n"
