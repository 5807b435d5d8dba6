"""benchmarks/bench_random_place.py: its random-place crops keep a drawn share of the area inside the picture,
the same for the same seed; it tells the grid views' vectors from the others by name; its report has a row
per measure and a column pair per split."""
from __future__ import annotations

import numpy as np

from benchmarks import bench_random_place as brp
from csadetect.config.settings import MatchSettings
from csadetect.media.synth import synthetic_image
from csadetect.signals.embedding import oriented_region_names, query_regions, region_suffix


def test_a_random_place_crop_keeps_a_drawn_share_inside_the_picture():
    img = synthetic_image(3, (400, 300))
    areas, corners = [], set()
    for seed in range(40):
        crop, area = brp.random_place_crop(img, np.random.default_rng(seed))
        assert brp.SWEEP_AREAS[0] <= area <= brp.SWEEP_AREAS[1]
        assert abs(crop.size[0] * crop.size[1] / (400 * 300) - area) < 0.01
        again, _ = brp.random_place_crop(img, np.random.default_rng(seed))
        assert np.array_equal(np.asarray(crop), np.asarray(again))
        areas.append(area)
        corners.add(tuple(np.asarray(crop)[0, 0]))
    assert max(areas) - min(areas) > 0.15 and len(corners) > 30  # drawn, not fixed


def test_the_grid_views_are_told_by_name():
    regions = query_regions(MatchSettings(embedding_query_grid_shares=brp.GRID_SHARES))
    names = ["image", "image:flip", "trim"] + [f"image{region_suffix(q, p)}" for q, places in regions for p in places]
    names += list(oriented_region_names(["image-a80g512", "image-a80tl"], ":flip"))
    mask = brp.grid_mask(names)
    assert mask.sum() == 20 + 12 + 1  # 5 x 5 at 0.80 and 4 x 4 at 0.86 beyond the corners and centre; the mirror's
    assert not mask[:3].any() and mask[-2] and not mask[-1]


def test_the_report_has_a_row_per_measure_and_a_column_pair_per_split():
    one = {"crop75_rand": [42, 22, 26], "sweep": [126, 56, 60], "false_pairs": [0, 1],
           "distractors": {"stereo": [7, 1, 3], "ordinary": [234, 0, 0]}}
    text = brp.render({"test": one, "dev": one}, 0.9963)
    assert "| `crop75_rand` found | 22/42 (52%) | 26/42 (62%) | 22/42 (52%) | 26/42 (62%) |" in text
    assert "test: off | test: grids | dev: off | dev: grids" in text
    assert "| distractors over the threshold: stereo | 1/7 (14%) | 3/7 (43%)" in text
    assert "| copies meeting another original | 0 | 1 | 0 | 1 |" in text
