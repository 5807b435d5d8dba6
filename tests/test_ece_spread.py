"""``grooming_eval.ece_spread``: how far the expected calibration error moves by chance at a
given number of conversations (a bootstrap interval, and the ECE a perfectly calibrated model
would reach), so ``models evaluate --grooming`` can tell a miss from the bins' noise."""
from __future__ import annotations

import numpy as np
import pytest

from csadetect.models.grooming_eval import ece_spread, expected_calibration_error


def test_one_conversation_is_its_own_ece_in_every_resample():
    """Every resample of one conversation is that conversation: the interval is the ECE itself
    (the vectorised sums per bin are expected_calibration_error's), at either end of the scale."""
    for score, label in ((0.3, 1), (1.0, 0), (0.0, 1), (0.55, 0)):
        ece = expected_calibration_error([score], [label])
        got = ece_spread([score], [label], rounds=50)
        assert got["interval_95"] == [ece, ece]
        assert 0.0 <= got["calibrated_p95"] <= 1.0


def test_a_calibrated_model_stays_under_the_chance_line_and_a_miscalibrated_one_does_not():
    rng = np.random.default_rng(3)
    scores = rng.random(950)
    calibrated = (rng.random(950) < scores).astype(int)
    spread = ece_spread(scores, calibrated)
    assert expected_calibration_error(scores, calibrated) <= spread["calibrated_p95"] < 0.06
    lo, hi = spread["interval_95"]
    assert 0.0 < lo < hi < 0.1
    over = np.clip(scores + 0.15, 0.0, 1.0)  # over-confident by 0.15
    ece = expected_calibration_error(over, calibrated)
    spread = ece_spread(over, calibrated)
    assert spread["interval_95"][0] > spread["calibrated_p95"] and spread["interval_95"][0] <= ece + 0.02
    assert spread["interval_95"][0] > 0.09 and spread["interval_95"][1] < 0.2


def test_seeded_and_empty():
    rng = np.random.default_rng(4)
    scores, labels = rng.random(200), rng.integers(0, 2, 200)
    assert ece_spread(scores, labels) == ece_spread(scores, labels)
    assert ece_spread(scores, labels, seed=1) != ece_spread(scores, labels)
    assert ece_spread([], [])["interval_95"] is None and ece_spread([], [])["calibrated_p95"] is None


def test_the_resamples_are_binned_as_the_reliability_table_bins():
    """Two conversations in one bin of ten (0.41 and 0.49): a resample holds both, or one twice;
    its ECE is expected_calibration_error's for each, so the interval runs from the lowest to the
    highest of the three."""
    scores, labels = [0.41, 0.49], [1, 0]
    possible = [expected_calibration_error([scores[i], scores[j]], [labels[i], labels[j]])
                for i, j in ((0, 0), (1, 1), (0, 1))]
    assert ece_spread(scores, labels)["interval_95"] == pytest.approx([min(possible), max(possible)])
