"""benchmarks/bench_robustness.py: its "previous release" columns use the previous release's own
embedding (benchmarks/previous-release/embedding, embedding-ref-0.1 at 0.9835), its "this release"
columns the configured one, side by side in one run."""
from __future__ import annotations

import pytest

pytest.importorskip("tensorflow")

from benchmarks import bench_robustness as br  # noqa: E402
from csadetect.media import synth  # noqa: E402


def test_previous_release_columns_use_the_previous_release_model():
    emb = br.Embedder()
    assert emb.previous_model.version == "embedding-ref-0.1"
    assert emb.model.version != emb.previous_model.version
    assert br.PREVIOUS_RELEASE_THRESHOLD == 0.9835
    data = synth.jpeg_bytes(synth.synthetic_image(4242))
    previous_rows, rows = emb.original(data)
    # this release adds the 9 region rows, the 16 strips, the 8 box rows and the 6 turned rows
    assert len(rows) == len(previous_rows) + 9 + 16 + 8 + 6
    query = br.Query(data, emb)
    # the picture itself: each release's model finds it against its own rows ...
    assert (query.vectors @ previous_rows.T).max() > 0.999
    assert (query.vectors2 @ rows.T).max() > 0.999
    # ... and the two releases' vectors come from different models
    assert (query.vectors2[:1] @ previous_rows[:1].T).max() < 0.99


def _unit(v):
    import numpy as np

    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def test_this_release_counts_region_views_only_where_the_gate_opens():
    """``_hits`` scores this release as MatchIndicators matches: the region views count only for a
    query that nothing matched without them and one of whose own vectors reaches the gate."""
    import types

    import numpy as np

    original = _unit([1.0, 0.0, 0.0])
    other = _unit([0.0, 1.0, 0.0])
    emb2 = np.stack([original[None, :], other[None, :]])  # (originals, rows, dim)
    own = _unit([1.0, 0.25, 0.0])  # similarity ~0.970 with the original: no match at 0.9963
    region = _unit([1.0, 0.005, 0.0])  # ~0.99999: a match as a region view (weight 2)
    empty = np.zeros((0, 4), dtype=np.uint64)
    q = types.SimpleNamespace(plain=empty, pre=empty, pre2=empty, vectors=np.stack([own]),
                              vectors2=np.stack([own, region]), weights2=np.array([1.0, 2.0]))
    index = np.zeros((2, 4), dtype=np.uint64)
    emb = emb2[:, :1]

    def hit(gate):
        hits, closest, _ = br._hits(q, index, emb, emb2, 0.9835, 0.9963, gate)
        return bool(hits["emb2"][0]), closest["regions"]

    assert hit(None) == (True, True)  # no gate: every query's region views count
    assert hit(0.94) == (True, True)  # its own vector (0.970) reaches the gate
    assert hit(0.98) == (False, False)  # ... and not this one: the region views are never embedded
    q.vectors2 = np.stack([_unit([1.0, 0.05, 0.0]), region])  # its own vector matches (0.9988) already
    assert hit(0.94) == (True, False)


def test_the_unseen_edits_are_scored_with_and_without_the_tilt_view():
    """``unseen_edits`` scores every edit of ``training.robustness_unseen.UNSEEN`` (parameters drawn
    per copy, the same each run) with the tilt view and without it (the release before it)."""
    import numpy as np

    from csadetect.media.hashing import hash_image
    from training.robustness_set import encode
    from training.robustness_unseen import UNSEEN

    originals = [("gen:a", synth.synthetic_image(11, (480, 360))), ("gen:b", synth.synthetic_image(12, (480, 360)))]
    index = np.array([br._words(hash_image(encode(img, "png")).pdq) for _, img in originals], dtype=np.uint64)
    rows = br.unseen_edits("dev", originals, index, None, None, log=lambda _: None)
    assert set(rows) == set(UNSEEN) and all(r["n"] == 2 for r in rows.values())
    assert rows["turn_fill"]["plain"] == rows["turn_fill"]["no_tilt"] == 0
    assert rows["turn_fill"]["views"] == rows["turn_fill"]["comb"] == 2
    assert rows["gamma"]["plain"] == 2 and all(r["wrong"] == 0 for r in rows.values())
    img = originals[0][1]
    for name, (fn, how) in UNSEEN.items():  # deterministic in the copy's seed, and an RGB picture
        a, b = fn(img, np.random.default_rng(5)), fn(img, np.random.default_rng(5))
        assert a.mode == "RGB" and encode(a, how) == encode(b, how), name


def _six_originals():
    """The benchmark's embedder, six generated pictures (the benchmark's own generators, seeds of neither
    split) and their rows as ``indicators from-media`` makes them: ``(embedder, originals, (6, rows, dim))``."""
    import numpy as np

    from training.robustness_set import GENERATORS, encode

    emb = br.Embedder()
    originals = [(f"gen:{g}", GENERATORS[g](np.random.default_rng(77 + i)))
                 for i, g in enumerate(("clouds", "landscape", "still", "shapes", "mosaic", "waves"))]
    return emb, originals, np.stack([emb.original(encode(img, "png"))[1] for _, img in originals])


def test_the_strip_sweep_finds_strips_only_with_the_query_side_strips(monkeypatch):
    """``strip_sweep`` crops each original along each side and scores three ways: no region views,
    the region views without the strips, and this release's. Strips keeping 74% of a side of six
    generated pictures (the benchmark's own generators, seeds of neither split): this release finds
    all of them (a view at 0.94-0.96 is the original's 70% strip row, cut within 1%); without the
    query-side strips, two or more of each six are missed."""
    from benchmarks import robustness_sweeps

    emb, originals, emb2 = _six_originals()
    monkeypatch.setattr(robustness_sweeps, "STRIP_SWEEP_SHARES", (0.74,))
    sweep = br.strip_sweep("dev", originals, emb2, emb, log=lambda _: None)
    assert sweep["ways"] == ("off", "no strips", "this")
    assert set(sweep["counts"]) == {(0.74, side) for side in ("t", "b", "l", "r")}
    for n, off, no_strips, this in sweep["counts"].values():
        assert n == 6 and this == 6 and off <= no_strips <= 4
    assert max(sweep["closest_wrong"].values()) < emb.threshold


def test_the_turn_sweep_finds_straightened_copies_only_with_the_turned_rows(monkeypatch):
    """``turn_sweep`` turns each original either way and cuts it back to an upright rectangle, then scores it
    against the original's rows without and with the turned rows (``-tc+4`` ...). Copies of six generated
    pictures (seeds of neither split) turned by 8.5 degrees, between the 7- and 10-degree rows: the turned rows
    find all of them; without them, half or more are missed (2 of 6 found either way when written). Rows that
    do not line up with ``embedding_views`` are refused."""
    from benchmarks import robustness_sweeps

    emb, originals, emb2 = _six_originals()
    monkeypatch.setattr(robustness_sweeps, "TURN_SWEEP_DEGREES", (8.5,))
    sweep = br.turn_sweep("dev", originals, emb2, emb, log=lambda _: None)
    assert sweep["ways"] == ("no turned rows", "this")
    assert set(sweep["counts"]) == {(8.5, "+"), (8.5, "-")}
    for n, without, this in sweep["counts"].values():
        assert n == 6 and this == 6 and without <= 3
    assert max(sweep["closest_wrong"].values()) < emb.threshold
    with pytest.raises(ValueError, match="rows per original"):
        br.turn_sweep("dev", originals, emb2[:, :-1], emb, log=lambda _: None)


def test_the_box_sweep_finds_corner_crops_of_another_aspect_only_with_the_box_rows(monkeypatch):
    """``box_sweep`` cuts each original at each corner to a (width, height) share and scores it against the
    original's rows without and with the box rows (``-w70h86tl`` ...). Copies of six generated pictures (seeds of
    neither split) keeping 72% x 88% and 88% x 72%, near the box rows' aspect but not their size: the box rows find
    all of them; without them, at most two of each six (0 or 1 when written). Rows that do not line up with
    ``embedding_views`` are refused."""
    from benchmarks import robustness_sweeps

    emb, originals, emb2 = _six_originals()
    monkeypatch.setattr(robustness_sweeps, "BOX_SWEEP_SHAPES", ((0.72, 0.88), (0.88, 0.72)))
    sweep = br.box_sweep("dev", originals, emb2, emb, log=lambda _: None)
    assert sweep["ways"] == ("no box rows", "this")
    assert set(sweep["counts"]) == {(shape, c) for shape in ((0.72, 0.88), (0.88, 0.72)) for c in ("tl", "tr", "bl", "br")}
    for n, without, this in sweep["counts"].values():
        assert n == 6 and this == 6 and without <= 2
    assert max(sweep["closest_wrong"].values()) < emb.threshold
    with pytest.raises(ValueError, match="rows per original"):
        br.box_sweep("dev", originals, emb2[:, :-1], emb, log=lambda _: None)


def test_this_release_looks_the_value_hash_up_among_both_rows():
    """``pdq_rows`` gives each original its PDQ row and its value channel's (``match.value_view``); this
    release's column (pre2) finds a copy with its colour channels swapped through them, the plain and
    previous-release columns, which have the PDQ row only, do not; ``min_distances`` takes either shape."""
    import numpy as np
    from PIL import Image

    from training.robustness_set import encode

    originals = [synth.synthetic_image(4, (320, 240)), synth.synthetic_image(5, (320, 240))]
    index = br.pdq_rows([encode(img, "png") for img in originals])
    assert index.shape == (2, 2, 4) and (index[:, 0] != index[:, 1]).any()
    swapped = Image.merge("RGB", originals[0].split()[::-1])
    q = br.Query(encode(swapped, "jpeg"))
    hits, closest, _ = br._hits(q, index, None, None, 1.0, 1.0)
    assert not hits["plain"][0] and not hits["pre"][0] and hits["pre2"][0] and not hits["pre2"][1]
    assert (br.min_distances(q.pre2, index[:, :1]) == br.min_distances(q.pre2, index[:, 0])).all()
    assert (closest["pre2"] == np.minimum(br.min_distances(q.pre2, index[:, 0]),
                                          br.min_distances(q.pre2, index[:, 1]))).all()
