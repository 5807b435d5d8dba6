"""Two edits at once: a change of tone, colour or orientation, then a crop or a text band (issue 17).

Each edit robustness.md measures is one edit at a time. An uploader who crops a known picture often
also runs a filter over it (brighter, more contrast, a gamma curve, greyscale, a hue turn) or turns
it a quarter; a copy edited both ways is this report's subject. The pairs were chosen as the commonest
one-click edits of each kind before the first run. The first run, on the development split, found 0% of
every pair with a crop; the turns (``match.embedding_query_turns``) were then written for the quarter
turns and checked on the development split's ``rotate_90 + crop75_tl`` (0 -> 36 of 36) and ``rotate_90 +
overlay_text`` (14 -> 36 of 36). The test split's pairs had been run once without them by then (the
"turns off" columns). A first rule (the two nearest of the five ways) lost mirrored copies under a text band
in the robustness benchmark, on both splits; the rule shipped adds a clearly nearer turn to the ways the
upload had before and takes none away. Later (2026-12-06, second stop) the turns gained a gate
(``match.embedding_query_turn_gate``: a turn must also lie near some row, set on the development split's turned
copies and distractors) and the mirror's turns (a transpose: the two transpose rows, added with them and
checked on the development split first, 0 -> 36 of 36 with a crop).

The robustness benchmark's originals (held-out test split, 42; development split, 36) are indexed as
``benchmarks/bench_robustness.py`` indexes them for this release: each picture's PDQ row and its value
row, and its embedding rows as ``indicators from-media`` makes them (the region, box and turned rows
included). Every original is then edited by each pair below, parameters drawn per copy (the first edit
first), saved as JPEG q85 and looked up as that benchmark's "this release" columns look a copy up
(:class:`benchmarks.bench_robustness.Query`: PDQ of the image, its views, sub-images and value hashes;
the embedding of the image, its views, its mirror and the query-side region views at the configured
threshold), once as the default does it and once with ``match.embedding_query_turns: false`` (the region
views cut from the upload or its mirror only: the release before the turns). ``found``: the copy matched
its own original; ``false``: it matched another original.

The single edits come first as controls (what each half of a pair finds alone, the same draws).

    python -m benchmarks.bench_combos        # ~10 min; writes benchmarks/combos.md
"""
from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_slideshow import written_by
from benchmarks.bench_stages import kept_notes

OUT = Path(__file__).resolve().parent / "combos.md"
SPLITS = ("test", "dev")
# (name, edits applied in turn): robustness.md's edits (training.robustness_set.TRANSFORMS) and its unseen
# ones (training.robustness_unseen.UNSEEN); the controls first
SINGLES = (("crop75_tl", ("crop75_tl",)), ("crop60_c", ("crop60_c",)), ("strip", ("strip",)),
           ("overlay_text", ("overlay_text",)), ("bright_contrast", ("bright_contrast",)), ("gamma", ("gamma",)),
           ("greyscale", ("greyscale",)), ("hue", ("hue",)), ("rotate_90", ("rotate_90",)),
           ("transpose (flip_h, rotate_90)", ("flip_h", "rotate_90")))
PAIRS = (("bright_contrast + crop75_tl", ("bright_contrast", "crop75_tl")),
         ("bright_contrast + strip", ("bright_contrast", "strip")),
         ("bright_contrast + overlay_text", ("bright_contrast", "overlay_text")),
         ("gamma + crop60_c", ("gamma", "crop60_c")),
         ("greyscale + crop75_c", ("greyscale", "crop75_c")),
         ("greyscale + crop60_tl", ("greyscale", "crop60_tl")),
         ("greyscale + overlay_text", ("greyscale", "overlay_text")),
         ("hue + crop75_tl", ("hue", "crop75_tl")),
         ("hue + overlay_text", ("hue", "overlay_text")),
         ("rotate_90 + crop75_tl", ("rotate_90", "crop75_tl")),
         ("rotate_90 + overlay_text", ("rotate_90", "overlay_text")),
         ("transpose + crop75_tl", ("flip_h", "rotate_90", "crop75_tl")),
         ("transpose + overlay_text", ("flip_h", "rotate_90", "overlay_text")),
         ("jpeg_q40 half size + crop75_tl (control)", ("resize_50", "crop75_tl")))


def chain(names):
    """The edits ``names`` applied in turn, each drawing from the same ``rng``."""
    from training.robustness_set import TRANSFORMS
    from training.robustness_unseen import UNSEEN

    fns = [(TRANSFORMS.get(n) or UNSEEN[n])[0] for n in names]

    def edit(img, rng):
        for fn in fns:
            img = fn(img, rng)
        return img

    return edit


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)

    from benchmarks import bench_robustness as br
    from training import robustness_set as rs

    started = time.monotonic()
    embedder = br.Embedder()
    before = copy.copy(embedder)  # the release before the turns: match.embedding_query_turns off
    before.match = embedder.match.model_copy(update={"embedding_query_turns": False})
    result = {split: {} for split in SPLITS}
    offenders = []
    for split in SPLITS:
        originals = rs.build_originals(split)
        encoded = [rs.encode(img, "png") for _, img in originals]
        index = br.pdq_rows(encoded)
        rows = np.stack([embedder.original(data)[1] for data in encoded])
        for name, edits in SINGLES + PAIRS:
            edit = chain(edits)
            cell = dict.fromkeys(("n", "pdq", "emb0", "comb0", "false0", "emb", "comb", "false"), 0)
            for i, (oname, img) in enumerate(originals):
                edited = edit(img, np.random.default_rng(rs.split_seed(split, "combo", "+".join(edits), oname)))
                data = rs.encode(edited, "jpeg40" if edits[0] == "resize_50" else "jpeg")
                cell["n"] += 1
                for suffix, who in (("0", before), ("", embedder)):
                    hits, _, _ = br._hits(br.Query(data, who, rows), index, None, rows, 1.0, who.threshold, who.gate)
                    cell["pdq"] += int(hits["pre2"][i]) if who is embedder else 0  # the same either way
                    cell["emb" + suffix] += int(hits["emb2"][i])
                    cell["comb" + suffix] += int(hits["comb2"][i])
                    wrong = [originals[j][0] for j in np.flatnonzero(hits["comb2"]) if j != i]
                    cell["false" + suffix] += int(bool(wrong))
                    if wrong:
                        how = "PDQ" if np.delete(hits["pre2"], i).any() else "embedding"
                        offenders.append(f"{split}: {name}: copy of {oname} -> {', '.join(wrong)} ({how}"
                                         f"{', turns off' if suffix else ''})")
            result[split][name] = cell
            print(split, name, cell, flush=True)
    text = render(result, embedder.threshold, offenders, kept_notes(Path(args.out)))
    Path(args.out).write_text(text)
    print(f"wrote {args.out} ({time.monotonic() - started:.0f} s)")
    return 0


def _pct(k: int, n: int) -> str:
    return f"{100 * k / max(n, 1):.0f}% ({k}/{n})"


def render(result: dict, threshold: float, offenders: list, notes: str) -> str:
    out = ["# Two edits at once: tone, colour or orientation, then a crop or a text band (issue 17)", "",
           written_by("benchmarks.bench_combos") +
           f"This release's matchers as robustness.md's \"this release\" columns run them (embedding threshold "
           f"{threshold}); \"turns off\": `match.embedding_query_turns: false` (the region views cut from the upload "
           "or its mirror only, the release before). Each cell: copies that matched their own original (share, "
           "count); `false`: copies that matched another original.", ""]
    keys = ("pdq", "emb0", "comb0", "false0", "emb", "comb", "false")
    for split in SPLITS:
        cells = result[split]
        n = next(iter(cells.values()))["n"]
        out += [f"**{split} split** ({n} originals):", "",
                "| edit | PDQ + views + sub-images | embedding, turns off | combined, turns off | false, turns off "
                "| embedding | **combined** | false |", "|---|" + "---:|" * len(keys)]
        pairs = [cells[name] for name, _ in PAIRS]
        total = {k: sum(c[k] for c in pairs) for k in keys + ("n",)}
        for name, c in [(name, cells[name]) for name, _ in SINGLES + PAIRS] + [("**all pairs**", total)]:
            out.append(f"| {name} | " + " | ".join(str(c[k]) if k.startswith("false") else
                                                   (f"**{_pct(c[k], c['n'])}**" if k == "comb" else _pct(c[k], c["n"]))
                                                   for k in keys) + " |")
        out.append("")
    out += ["False matches: " + ("; ".join(offenders) if offenders else "none") + ".", "", "## Notes", "", notes, ""]
    return "\n".join(out)


if __name__ == "__main__":
    raise SystemExit(main())
