"""Conversation-level evaluation of a grooming model (``models evaluate --grooming``).

:func:`evaluate` scores labelled conversations with a
:class:`~csadetect.models.grooming.GroomingModel` and reports, overall and per language:
precision, recall, F1/F0.5, latency-weighted F1 (Vogt et al. 2021), the expected calibration
error with how far it moves by chance at that size (:func:`ece_spread`) and a reliability table,
message-level evidence precision/recall and the flag rate of each conversation family. The
metric helpers (:func:`f_beta`, :func:`expected_calibration_error`, :func:`latency_p`, ...) are
also used by the classifier's evaluation and the training tools.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Optional, Sequence

import numpy as np

from csadetect.models.grooming_messages import chronological

if TYPE_CHECKING:  # only for annotations: csadetect.models.grooming imports this module
    from csadetect.models.grooming import GroomingModel


def f_beta(precision: float, recall: float, beta: float = 0.5) -> float:
    if precision <= 0 and recall <= 0:
        return 0.0
    b2 = beta * beta
    return (1 + b2) * precision * recall / (b2 * precision + recall)


def expected_calibration_error(scores: Sequence[float], labels: Sequence[int], bins: int = 10) -> float:
    """Equal-width-bin ECE: sum over bins of |mean score - positive rate| weighted by bin size."""
    if len(scores) == 0:
        return float("nan")
    n = len(scores)
    return float(sum(b["n"] / n * abs(b["mean_score"] - b["positive_rate"])
                     for b in reliability(scores, labels, bins) if b["n"]))


def ece_spread(scores: Sequence[float], labels: Sequence[int], bins: int = 10, rounds: int = 1000,
               seed: int = 0) -> dict:
    """How far the ECE of these scores moves by chance at their number: ``interval_95``, the 2.5th
    and 97.5th percentiles of the ECE over ``rounds`` bootstrap resamples of the conversations, and
    ``calibrated_p95``, the 95th percentile of the ECE that perfectly calibrated scores would show
    (the same scores, each label drawn with its score's probability). An ECE above
    ``calibrated_p95`` is more than the bins' noise at this size. Seeded: the same answer each run."""
    s = np.asarray(scores, np.float64)
    y = np.asarray(labels, np.float64)
    n = len(s)
    if n == 0:
        return {"interval_95": None, "calibrated_p95": None, "rounds": rounds}
    which = _bins(s, bins)
    rng = np.random.default_rng(seed)
    offsets = (np.arange(rounds) * bins)[:, None]

    def ece_rows(cells: np.ndarray, score: np.ndarray, label: np.ndarray) -> np.ndarray:
        # per round, sum over bins of |sum of scores - sum of labels| / n: n_b / n * |mean - rate|
        gap = (np.bincount(cells.ravel(), score.ravel(), rounds * bins)
               - np.bincount(cells.ravel(), label.ravel(), rounds * bins))
        return np.abs(gap.reshape(rounds, bins)).sum(axis=1) / n

    picked = rng.integers(0, n, (rounds, n))
    boot = ece_rows(offsets + which[picked], s[picked], y[picked])
    drawn = (rng.random((rounds, n)) < s).astype(np.float64)
    chance = ece_rows(offsets + which[None, :], np.broadcast_to(s, (rounds, n)), drawn)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return {"interval_95": [float(lo), float(hi)], "calibrated_p95": float(np.percentile(chance, 95)),
            "rounds": rounds}


def _pct(values: Sequence[float], q: float) -> Optional[float]:
    return float(np.percentile(np.asarray(values, np.float64), q)) if len(values) else None


def latency_penalty(k, p: float) -> np.ndarray:
    """Vogt et al. (ACL 2021), after Losada & Crestani's F_latency (eRisk): the penalty of a
    warning after ``k`` messages (1-based), ``-1 + 2 / (1 + exp(-p (k - 1)))``; 0 at the first
    message, rising towards 1."""
    k = np.asarray(k, np.float64)
    return -1.0 + 2.0 / (1.0 + np.exp(-p * (k - 1.0)))


def latency_p(positive_lengths: Sequence[int]) -> float:
    """``p = ln 3 / (median - 1)``, so that the penalty is 0.5 at the median number of messages
    of the positive conversations (Vogt et al. 2021)."""
    median = float(np.median(positive_lengths)) if len(positive_lengths) else 2.0
    return float(np.log(3.0) / max(median - 1.0, 1.0))


def latency_weighted_f1(f1: float, messages_until_flag: Sequence[int], p: float) -> tuple[float, float]:
    """(latency-weighted F1, speed): ``speed = 1 - median(penalty(k))`` over the true positives'
    messages until the warning ``k``; latency-weighted F1 = F1 x speed (0 without a true positive)."""
    if not len(messages_until_flag):
        return 0.0, 0.0
    speed = 1.0 - float(np.median(latency_penalty(messages_until_flag, p)))
    return f1 * speed, speed


def _bins(scores: np.ndarray, bins: int) -> np.ndarray:
    """The equal-width bin of each score (1.0 in the last)."""
    return np.minimum((scores * bins).astype(int), bins - 1)


def reliability(scores: Sequence[float], labels: Sequence[int], bins: int = 10) -> list[dict]:
    """Equal-width bins: ``{"lo", "hi", "n", "mean_score", "positive_rate"}`` (the reliability plot)."""
    s = np.asarray(scores, np.float64)
    y = np.asarray(labels, np.float64)
    b = _bins(s, bins)
    out = []
    for k in range(bins):
        sel = b == k
        out.append({"lo": k / bins, "hi": (k + 1) / bins, "n": int(sel.sum()),
                    "mean_score": float(s[sel].mean()) if sel.any() else None,
                    "positive_rate": float(y[sel].mean()) if sel.any() else None})
    return out


def evaluate(model: GroomingModel, items: Iterable[tuple], threshold: Optional[float] = None,
             batch: int = 256, hard_negative_families: Optional[Iterable[str]] = None,
             unsupported: str = "skip") -> dict:
    """Conversation-level metrics, overall and per language (``by_language``, keyed by the
    conversation's true language when the items give one, else the detected one).

    ``items``: ``(messages, is_grooming, family[, language])`` with messages as dicts
    (``pattern`` on a message, when present, is the true risk pattern and is used for the latency
    after the first risk message and for message-level evidence precision/recall).
    ``hard_negative_families``: the benign families whose precision is reported as
    ``precision_hard_negatives`` (grooming conversations against these benign ones only; default:
    every benign family but ``chitchat``)."""
    items = list(items)
    rows = []
    for i in range(0, len(items), batch):
        chunk = items[i:i + batch]
        results = model.score_conversations([c[0] for c in chunk], threshold, unsupported)
        for item, res in zip(chunk, results):
            msgs, is_grooming, family = item[0], bool(item[1]), item[2]
            true_lang = item[3] if len(item) > 3 else None
            ordered = chronological(msgs)
            row = {"grooming": is_grooming, "family": family, "res": res, "n": len(ordered),
                   "language": true_lang or res.get("language") or "und", "detected": res.get("language")}
            if is_grooming and res["flagged"]:
                first = next((k for k, m in enumerate(ordered) if m.get("pattern")), None)
                row["after_first"] = None if first is None else res["flagged_at_message"] - first
                truth = {(k, m["pattern"]) for k, m in enumerate(ordered) if m.get("pattern")}
                found = {(e["message_index"], e["pattern"]) for e in res["evidence"]}
                row["ev"] = (len(truth & found), len(found - truth), len(truth - found))
            rows.append(row)
    hard = None if hard_negative_families is None else set(hard_negative_families)
    metrics = _aggregate(rows, hard)
    metrics["threshold"] = model.threshold if threshold is None else float(threshold)
    metrics["thresholds_by_language"] = {code: model.threshold_for(code, threshold)
                                         for code in model.supported_languages}
    langs = sorted({r["language"] for r in rows})
    metrics["by_language"] = {code: _aggregate([r for r in rows if r["language"] == code], hard) for code in langs}
    for code in langs:
        metrics["by_language"][code]["supported"] = code in model.languages
        metrics["by_language"][code]["threshold"] = model.threshold_for(code, threshold)
    return metrics


def _aggregate(rows: list[dict], hard: Optional[set]) -> dict:
    tp = fp = fn = tn = 0
    fp_hard = 0
    not_scanned = unsupported = 0
    unsupported_by: dict[str, int] = {}
    scores, labels, until, after_first, pos_lengths = [], [], [], [], []
    fams: dict[str, list[int]] = {}
    ev_tp = ev_fp = ev_fn = 0
    detected_right = detected_n = 0
    for row in rows:
        res, is_grooming, family = row["res"], row["grooming"], row["family"]
        flagged = res["flagged"]
        fam = fams.setdefault(family, [0, 0])
        fam[0] += 1
        fam[1] += int(flagged)
        if is_grooming:
            pos_lengths.append(row["n"])
        if not res["scanned"]:
            not_scanned += 1
        else:
            if res.get("language") is not None:
                detected_n += 1
                detected_right += int(res["language"] == row["language"])
            if res.get("language_supported") is False:
                unsupported += 1
                unsupported_by[res["language"]] = unsupported_by.get(res["language"], 0) + 1
            if res["score"] is not None:
                scores.append(res["score"])
                labels.append(int(is_grooming))
        if is_grooming and flagged:
            tp += 1
            until.append(res["flagged_at_message"] + 1)
            if row.get("after_first") is not None:
                after_first.append(row["after_first"])
            a, b, c = row["ev"]
            ev_tp, ev_fp, ev_fn = ev_tp + a, ev_fp + b, ev_fn + c
        elif is_grooming:
            fn += 1
        elif flagged:
            fp += 1
            if (family != "chitchat") if hard is None else (family in hard):
                fp_hard += 1
        elif res["scanned"]:
            tn += 1
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = f_beta(precision, recall, 1.0)
    p = latency_p(pos_lengths)
    lw_f1, speed = latency_weighted_f1(f1, until, p)
    ev_p = ev_tp / (ev_tp + ev_fp) if ev_tp + ev_fp else 0.0
    ev_r = ev_tp / (ev_tp + ev_fn) if ev_tp + ev_fn else 0.0
    hard_n = sum(v[0] for k, v in fams.items() if ((k != "chitchat") if hard is None else (k in hard)))
    return {
        "conversations": len(rows), "not_scanned": not_scanned,
        "unsupported_language": unsupported, "unsupported_by_language": dict(sorted(unsupported_by.items())),
        "language_detection_accuracy": detected_right / detected_n if detected_n else None,
        "tp": tp, "fp": fp, "fn": fn, "tn": tn,
        "precision": precision, "recall": recall, "f1": f1, "f0_5": f_beta(precision, recall, 0.5),
        "latency_weighted_f1": lw_f1, "speed": speed, "latency_p": p,
        "median_positive_length": float(np.median(pos_lengths)) if pos_lengths else None,
        "precision_hard_negatives": tp / (tp + fp_hard) if tp + fp_hard else 0.0,
        "hard_negative_conversations": hard_n, "hard_negative_false_positives": fp_hard,
        "false_positive_rate": fp / (fp + tn) if fp + tn else 0.0,
        "ece": expected_calibration_error(scores, labels),
        "ece_spread": ece_spread(scores, labels),
        "reliability": reliability(scores, labels),
        "latency_messages_until_flag": {"median": _pct(until, 50), "p90": _pct(until, 90), "n": len(until)},
        "latency_messages_after_first_pattern": {"median": _pct(after_first, 50), "p90": _pct(after_first, 90)},
        "evidence_message_level": {"precision": ev_p, "recall": ev_r},
        "flag_rate_by_family": {k: {"conversations": v[0], "flagged": v[1]} for k, v in sorted(fams.items())},
    }
