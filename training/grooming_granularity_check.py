"""Would a words-per-message term in the calibration make the grooming model hold its calibration when
the same words are cut into other messages? (issue 17, thirteenth grooming round; an experiment, not
part of ``make models`` and not in the shipped scoring)

    python -m training.grooming_granularity_check [DIR]

The model (DIR, or the shipped reference model) reads messages one by one and windows of its last 20;
``benchmarks/bursts.md`` shows its scores rise when a writer's messages are cut into pieces and fall
when their lines are joined. The term tried here adds ``c x (g - g0)`` to each window's raw logit,
``g`` the log of the window's mean words per message and ``g0`` its median over the calibration
split's conversations at their last message. ``c`` is chosen on the **calibration split only**:
the split as it is and two regroupings of it that are not the benchmark's forms (any sender's
message of four or more words cut at one or two random points with probability 0.5; any message
joined to the same sender's one before it with probability 0.5: :func:`training.grooming_bursts.augment`
with ``cut`` or ``join`` alone), as the ``c`` of a grid over 0-4 whose mean ECE over the three,
under one Platt scaling, is lowest. Then, for ``c = 0`` (the shipped scoring) and the chosen ``c``,
each language's Platt scaling and threshold are refitted on the calibration split as it is, as
``train_grooming`` fits them (``training.grooming_ensemble_check.language_rows``), and the evaluation
split is scored as it is and in each of ``benchmarks/bench_bursts``' forms.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from training import grooming_bursts as gb
from training.grooming_calibration import _sigmoid, fit_platt, message_logits
from training.grooming_ensemble_check import corpus_of, language_rows, scored_splits
from csadetect.models.grooming import expected_calibration_error

GRID = tuple(np.round(np.arange(0.0, 4.01, 0.25), 2))
SEED = 11  # the calibration regroupings' own random stream


def log_words_per_message(conv, window: int) -> np.ndarray:
    """After each message of ``conv``: the log of the mean words per message of the window ending there."""
    n = np.asarray([max(1, len(m["text"].split())) for m in conv.messages], np.float64)
    total = np.concatenate([[0.0], np.cumsum(n)])
    end = np.arange(len(n))
    start = np.maximum(0, end - window + 1)
    return np.log((total[end + 1] - total[start]) / (end + 1 - start))


def shifted(z: list[np.ndarray], g: list[np.ndarray], c: float, g0: float) -> list[np.ndarray]:
    return [zi + c * (gi - g0) for zi, gi in zip(z, g)]


def scored(model, convs) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """(raw window logits, log words per message, labels) of each conversation."""
    g = [log_words_per_message(c, model.window) for c in convs]
    return message_logits(model, convs), g, np.asarray([c.label == "grooming" for c in convs], np.float64)


def choose_c(versions, g0: float) -> tuple[float, list[tuple[float, list[float]]]]:
    """The grid's ``c`` with the lowest mean ECE over ``versions`` under one Platt scaling, and each
    ``c``'s ECEs."""
    table = []
    for c in GRID:
        peaks = [np.asarray([float(s.max()) for s in shifted(z, g, c, g0)]) for z, g, _ in versions]
        a, b = fit_platt(np.concatenate(peaks), np.concatenate([y for *_, y in versions]))
        table.append((float(c), [expected_calibration_error(_sigmoid(a * p + b), y)
                                 for p, (*_, y) in zip(peaks, versions)]))
    best = min(table, key=lambda row: (float(np.mean(row[1])), row[0]))
    return best[0], table


def main(argv=None) -> int:
    from csadetect.models.grooming import GroomingModel

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", nargs="?", default=None, help="a folder written by train_grooming --out (default: the "
                                                           "shipped reference model)")
    args = ap.parse_args(argv)
    model = GroomingModel.load(args.model, undo_obfuscation=False)  # as training reads the corpus
    try:
        cal, ev = scored_splits(**corpus_of(model.metadata))
    except KeyError as missing:
        ap.error(f"the model's metadata.json records no training corpus ({missing}): not one of train_grooming's")
    versions = [scored(model, v) for v in (cal, gb.augment(cal, 1.0, SEED, join=False, stream="granularity-check"),
                                           gb.augment(cal, 1.0, SEED, cut=False, stream="granularity-check"))]
    g0 = float(np.median([g[-1] for g in versions[0][1]]))
    c, table = choose_c(versions, g0)
    print(f"g0 {g0:.3f}; calibration split, ECE under one Platt scaling (as it is / cut / joined):")
    for value, eces in table:
        print(f"  c {value:.2f}: " + " / ".join(f"{e:.4f}" for e in eces) + ("   <- chosen" if value == c else ""))
    z_cal, g_cal, _ = versions[0]
    for form in ("none", *gb.FORMS):
        version = gb.regroup(ev, form, 1)
        z_ev, g_ev, _ = scored(model, version)
        for value in (0.0, c):
            rows = language_rows(cal, shifted(z_cal, g_cal, value, g0), version, shifted(z_ev, g_ev, value, g0))
            print(f"{form:9} c {value:.2f}: " + "; ".join(
                f"{code} recall {r['recall']:.3f} precision(hard) {r['precision_hard']:.3f} ECE {r['ece']:.3f} "
                f"median flag {r['median_flag']:.1f}" for code, r in rows.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
