"""benchmarks/bench_combos.py: its pairs apply both edits in order and draw the same copy for the same seed,
every name it lists is an edit of the robustness benchmark, and its report gives each pair's row and the
pairs' total."""
from __future__ import annotations

import numpy as np
from PIL import Image

from benchmarks import bench_combos as bc
from csadetect.media.synth import synthetic_image
from training.robustness_set import TRANSFORMS
from training.robustness_unseen import UNSEEN


def test_every_edit_named_exists_and_the_controls_are_the_pairs_halves():
    names = {n for _, edits in bc.SINGLES + bc.PAIRS for n in edits}
    assert names <= set(TRANSFORMS) | set(UNSEEN)
    controls = {edits for _, edits in bc.SINGLES}
    assert ("flip_h", "rotate_90") in controls  # the transpose, a control of two edits
    unmeasured_alone = {("resize_50",), ("crop75_c",), ("crop60_tl",)}
    for _, edits in bc.PAIRS:  # each pair: a control (or one of those), then a control's last edit
        assert edits[:-1] in controls | unmeasured_alone, edits
        assert edits[-1:] in controls | unmeasured_alone, edits


def test_a_pair_applies_both_edits_in_order_and_is_drawn_per_seed():
    img = synthetic_image(3, (200, 150))
    turned_then_cut = bc.chain(("rotate_90", "crop75_tl"))(img, np.random.default_rng(1))
    assert turned_then_cut.size == (round(150 * 0.75 ** 0.5), round(200 * 0.75 ** 0.5))  # turned, then 75% kept
    expected = TRANSFORMS["crop75_tl"][0](img.transpose(Image.Transpose.ROTATE_90), None)
    assert np.array_equal(np.asarray(turned_then_cut), np.asarray(expected))
    filtered = bc.chain(("gamma", "crop60_c"))
    a, b = filtered(img, np.random.default_rng(5)), filtered(img, np.random.default_rng(5))
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(filtered(img, np.random.default_rng(6))))


def test_the_report_has_a_row_per_edit_and_the_pairs_total():
    cell = {"n": 4, "pdq": 1, "emb0": 0, "comb0": 1, "false0": 0, "emb": 3, "comb": 4, "false": 0}
    result = {split: {name: dict(cell) for name, _ in bc.SINGLES + bc.PAIRS} for split in bc.SPLITS}
    text = bc.render(result, 0.9963, ["test: x: copy of a -> b (embedding)"], "<!-- notes:begin -->\n-\n<!-- notes:end -->")
    n_pairs = len(bc.PAIRS)
    assert text.count("| rotate_90 + crop75_tl | 25% (1/4) | 0% (0/4) | 25% (1/4) | 0 | 75% (3/4) | **100% (4/4)** | 0 |") == 2
    assert f"| **all pairs** | 25% ({n_pairs}/{4 * n_pairs}) |" in text
    assert "False matches: test: x: copy of a -> b (embedding)." in text
