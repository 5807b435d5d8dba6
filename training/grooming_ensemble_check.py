"""Would averaging several trained grooming models make the reference model stable? (issue 17,
fifth grooming round; an experiment, not part of ``make models``)

    python -m training.grooming_ensemble_check DIR [DIR ...] [--balanced-replies]

Each DIR holds a model written by ``python -m training.train_grooming --out DIR --model-seed S``. The
corpus they were trained on (its seed, size, languages, extra phrasings, far calibration and reply
balance) is read from their ``metadata.json``; models trained on different corpora stop the check with
one line. For every model alone, and for the mean of their raw window
logits, this refits the per-language Platt scaling and the threshold rule as
``training.train_grooming`` does (``training.grooming_calibration.fit_language``: max latency-weighted F1 subject to
precision >= 0.98 against the hard negatives) on the calibration split and prints, per language, the calibration split's ECE,
median flag and hard-negative precision beside the held-out evaluation split's precision,
hard-negative precision, recall, latency-weighted F1, median flag and ECE. A model alone gives
the numbers ``train_grooming`` logged for it, so the ensemble line differs only by the averaging.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

import numpy as np

from training import grooming_corpus as corpus
from training.grooming_augment import balanced_splits
from training.grooming_calibration import _sigmoid, fit_language, message_logits
from csadetect.models.grooming import expected_calibration_error, f_beta, latency_p, latency_weighted_f1


def mean_logits(members: Sequence[list[np.ndarray]]) -> list[np.ndarray]:
    """Per conversation, the mean over models of each message's raw window logit."""
    return [np.mean([m[i] for m in members], axis=0) for i in range(len(members[0]))]


def language_rows(cal, z_cal: list[np.ndarray], ev, z_ev: list[np.ndarray]) -> dict[str, dict]:
    """Per language: Platt and threshold fitted on (cal, z_cal), then applied to (ev, z_ev)."""
    rows = {}
    for code in sorted({c.language for c in cal}):
        ic = [i for i, c in enumerate(cal) if c.language == code]
        ie = [i for i, c in enumerate(ev) if c.language == code]
        a, b, thr, at, cal_ece = fit_language([z_cal[i] for i in ic], [cal[i] for i in ic])
        scores = [_sigmoid(a * z_ev[i] + b) for i in ie]
        convs = [ev[i] for i in ie]
        peaks = np.asarray([s.max() for s in scores])
        y = np.asarray([c.label == "grooming" for c in convs])
        hard = np.asarray([c.family in corpus.HARD_NEGATIVE_FAMILIES for c in convs])
        flagged = peaks >= thr
        tp, fp, fp_hard = int((flagged & y).sum()), int((flagged & ~y).sum()), int((flagged & ~y & hard).sum())
        precision, recall = tp / max(1, tp + fp), tp / max(1, int(y.sum()))
        until = [int(np.argmax(s >= thr)) + 1 for s, f, yy in zip(scores, flagged, y) if f and yy]
        lw, _ = latency_weighted_f1(f_beta(precision, recall, 1.0), until,
                                    latency_p([len(c.messages) for c in convs if c.label == "grooming"]))
        rows[code] = {
            "cal_ece": cal_ece,
            "cal_median_flag": at["median_messages_until_flag"],
            "cal_precision_hard": at["precision_hard_negatives"],
            "precision": precision, "precision_hard": tp / max(1, tp + fp_hard), "recall": recall,
            "latency_weighted_f1": lw, "median_flag": float(np.median(until)) if until else float("nan"),
            "ece": expected_calibration_error(peaks, y.astype(np.float64)),
        }
    return rows


def corpus_of(metadata: dict) -> dict:
    """The corpus options (:func:`scored_splits`' keywords) a model was trained on, from its metadata's
    ``training`` entry (an option it does not record was at ``train_grooming``'s default). Raises
    KeyError when the metadata records no corpus (not a model of ``train_grooming``)."""
    t = metadata["training"]
    languages = tuple(t.get("languages") or corpus.LANGUAGE_CODES)
    return {"n": int(t["conversations_per_language"]), "seed": int(t["seed"]), "languages": languages,
            "n_calibration": int(t["calibration_conversations"]) // len(languages),
            "extra_phrasings": int(t.get("extra_phrasings", 0)), "far_calibration": bool(t.get("far_calibration")),
            "written_calibration": bool(t.get("written_calibration")),
            "balanced_replies": t.get("balanced_replies", "none") != "none"}


def scored_splits(n: int, seed: int = 1, extra_phrasings: int = 0, balanced_replies: bool = False,
                  languages=corpus.LANGUAGE_CODES, n_calibration=None, far_calibration: bool = False,
                  written_calibration: bool = False):
    """The calibration and evaluation conversations with a minor, as ``train_grooming`` scores them:
    with ``balanced_replies``, their reply-balanced versions (``grooming_augment.balanced_splits``)."""
    splits = corpus.generate_splits(n, seed, None, n_calibration, list(languages), extra_phrasings=extra_phrasings,
                                    far_calibration=far_calibration, written_calibration=written_calibration)
    if balanced_replies:
        splits = balanced_splits(splits, seed)
    return ([c for c in splits["calibration"] if c.participants_minor],
            [c for c in splits["eval"] if c.participants_minor])


def format_rows(name: str, rows: dict[str, dict]) -> str:
    lines = [f"== {name}"]
    for code, r in rows.items():
        lines.append(f"{code}: calibration ECE {r['cal_ece']:.3f} median flag {r['cal_median_flag']:.1f} "
                     f"precision(hard) {r['cal_precision_hard']:.3f} | eval precision {r['precision']:.3f} "
                     f"(hard {r['precision_hard']:.3f}) recall {r['recall']:.3f} lw-F1 {r['latency_weighted_f1']:.3f} "
                     f"median flag {r['median_flag']:.1f} ECE {r['ece']:.3f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    from csadetect.models.grooming import GroomingModel

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", help="folders written by training.train_grooming --out")
    ap.add_argument("--balanced-replies", action="store_true",
                    help="score the reply-balanced calibration and evaluation splits even for models trained "
                         "without them (train_grooming --balanced-replies calibration|all: always)")
    args = ap.parse_args(argv)
    models = [GroomingModel.load(d) for d in args.models]
    try:
        corpora = [corpus_of(m.metadata) for m in models]
    except KeyError as missing:
        ap.error(f"a model's metadata.json records no training corpus ({missing}): not one of train_grooming's")
    for d, options in zip(args.models[1:], corpora[1:]):
        differs = [k for k in options if options[k] != corpora[0][k]]
        if differs:
            ap.error(f"{d} was trained on another corpus than {args.models[0]}: "
                     + ", ".join(f"{k} {options[k]} vs {corpora[0][k]}" for k in differs))
    options = dict(corpora[0], balanced_replies=corpora[0]["balanced_replies"] or args.balanced_replies)
    cal, ev = scored_splits(**options)
    members = []
    for d, model in zip(args.models, models):
        members.append((message_logits(model, cal), message_logits(model, ev)))
        print(format_rows(d, language_rows(cal, members[-1][0], ev, members[-1][1])), flush=True)
    if len(members) > 1:
        rows = language_rows(cal, mean_logits([m[0] for m in members]), ev, mean_logits([m[1] for m in members]))
        print(format_rows("mean of " + " ".join(args.models), rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
