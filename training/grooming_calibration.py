"""Calibration-split scoring and fitting for the reference grooming model (``training.train_grooming``):
per-message window logits of a model over conversations, Platt scaling, the expected calibration
error after it, the threshold rule (max latency-weighted F1 subject to hard-negative precision), the
evidence threshold, the F-beta threshold of checkpoint selection, and the ``--select worst``
checkpoint score. No training here: ``train_grooming`` (which re-exports every name) and
``grooming_ensemble_check`` call these on the calibration split.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from training import grooming_corpus as corpus  # noqa: E402
from csadetect.models.grooming import (GroomingModel, expected_calibration_error, f_beta, latency_p,  # noqa: E402
                                       latency_weighted_f1)

# Threshold rule: precision on grooming vs hard negatives on the calibration split. 0.95 -> 0.98 in
# issue 17's second round, chosen after seeing that precision on the eval split came out below the
# calibration split's (eval's wording and two of its families are unseen).
MIN_PRECISION_HARD = 0.98


def message_logits(model: GroomingModel, convs) -> list[np.ndarray]:
    """Raw (uncalibrated) window logit after each message of each conversation (batched), each message
    read as the model scores it (:meth:`GroomingModel.pieces`; whole in training, which reads as written)."""
    import tensorflow as tf

    vecs, counts = model._encode_pieces(model.readable([m["text"] for c in convs for m in c.messages]))
    parts = [model._windows(rows, [m["sender"] for m in c.messages], range(len(c.messages)), counts=k)
             for c, (rows, k) in zip(convs, model._by_group(vecs, counts, [len(c.messages) for c in convs]))]
    v, s, m = (np.concatenate(x) for x in zip(*parts))
    logits = np.concatenate([model._window(tf.constant(v[i:i + 4096]), tf.constant(s[i:i + 4096]),
                                           tf.constant(m[i:i + 4096]))["risk_logit"].numpy().reshape(-1)
                             for i in range(0, len(v), 4096)])
    out, offset = [], 0
    for c in convs:
        n = len(c.messages)
        out.append(logits[offset:offset + n].astype(np.float64))
        offset += n
    return out


def conversation_logits(model: GroomingModel, convs) -> np.ndarray:
    """Max raw (uncalibrated) window logit of each conversation (batched)."""
    return np.asarray([float(z.max()) if len(z) else -1e9 for z in message_logits(model, convs)], np.float64)


def choose_early_threshold(per_message: list[np.ndarray], convs, min_precision: float = MIN_PRECISION_HARD):
    """Threshold on per-message scores (flag at the first message whose score reaches it) that
    maximises the latency-weighted F1 (Vogt et al. 2021) subject to precision >= ``min_precision``
    on grooming against the hard negatives; placed midway below the chosen cut. Returns
    (threshold, {metrics at it}); without a cut meeting the precision, the one with the best
    hard-negative precision."""
    runmax = [np.maximum.accumulate(z) if len(z) else np.asarray([-np.inf]) for z in per_message]
    peaks = np.asarray([r[-1] for r in runmax])
    pos = np.asarray([c.label == "grooming" for c in convs])
    hard = np.asarray([c.family in corpus.HARD_NEGATIVE_FAMILIES for c in convs])
    p = latency_p([len(c.messages) for c in convs if c.label == "grooming"])
    order = np.unique(peaks)[::-1]
    best, fallback = None, None
    for i, t in enumerate(order):
        flagged = peaks >= t
        tp = int((flagged & pos).sum())
        fp = int((flagged & ~pos).sum())
        fp_hard = int((flagged & ~pos & hard).sum())
        if tp == 0:
            continue
        prec, rec = tp / (tp + fp), tp / int(pos.sum())
        prec_hard = tp / (tp + fp_hard)
        until = [int(np.searchsorted(r, t)) + 1 for r, f, y in zip(runmax, flagged, pos) if f and y]
        lw, speed = latency_weighted_f1(f_beta(prec, rec, 1.0), until, p)
        row = {"threshold_cut": float(t), "precision": prec, "recall": rec, "precision_hard_negatives": prec_hard,
               "latency_weighted_f1": lw, "speed": speed, "median_messages_until_flag": float(np.median(until)), "i": i}
        if prec_hard >= min_precision and (best is None or lw > best["latency_weighted_f1"] + 1e-12):
            best = row
        if fallback is None or prec_hard > fallback["precision_hard_negatives"]:
            fallback = row
    chosen = best or fallback
    i = chosen.pop("i")
    lower = order[i + 1] if i + 1 < len(order) else order[i] - 1.0
    return float((order[i] + lower) / 2), chosen


ECE_TARGET = 0.05  # issue 17's targets, per language, as --select worst applies them on the calibration split
MEDIAN_FLAG_TARGET = 10


def worst_language_score(per_message: list[np.ndarray], convs, min_precision: float = MIN_PRECISION_HARD) -> float:
    """Checkpoint score for ``--select worst``: the lowest per-language latency-weighted F1 at the
    threshold rule (raw logits; Platt scaling is monotone), minus 1 unless in every language a cut
    meets the rule's hard-negative precision, the ECE after its own Platt scaling is <= ``ECE_TARGET``
    and the median flag <= ``MEDIAN_FLAG_TARGET`` (so any check meeting all three ranks above every
    check that does not; without the first, a barely trained model that flags a handful of
    conversations at message 1 would count as early and calibrated)."""
    worst, feasible = np.inf, True
    for code in sorted({c.language for c in convs}):
        idx = [i for i, c in enumerate(convs) if c.language == code]
        z = np.asarray([float(per_message[i].max()) for i in idx])
        y = np.asarray([convs[i].label == "grooming" for i in idx], np.float64)
        la, lb = fit_platt(z, y)
        ece = expected_calibration_error(_sigmoid(la * z + lb), y)
        _, at = choose_early_threshold([per_message[i] for i in idx], [convs[i] for i in idx], min_precision)
        worst = min(worst, at["latency_weighted_f1"])
        feasible &= (at["precision_hard_negatives"] >= min_precision and ece <= ECE_TARGET
                     and at["median_messages_until_flag"] <= MEDIAN_FLAG_TARGET)
    return float(worst if feasible else worst - 1.0)


def fit_language(per_message: list[np.ndarray], convs, min_precision: float = MIN_PRECISION_HARD):
    """One language's calibration from its calibration-split conversations ``convs`` and their
    per-message logits: Platt scaling of the conversations' peak logits, the threshold rule
    (:func:`choose_early_threshold`) on the scaled scores, and the ECE after scaling. Returns
    (a, b, threshold, {metrics at it}, ece)."""
    g = np.asarray([float(m.max()) for m in per_message])
    y = np.asarray([c.label == "grooming" for c in convs], np.float64)
    a, b = fit_platt(g, y)
    threshold, at = choose_early_threshold([_sigmoid(a * m + b) for m in per_message], convs, min_precision)
    return a, b, threshold, at, expected_calibration_error(_sigmoid(a * g + b), y)


def fit_platt(z: np.ndarray, y: np.ndarray, iters: int = 200) -> tuple[float, float]:
    """Platt scaling sigmoid(a z + b) with Platt's smoothed targets; Newton steps with
    backtracking, so separable data cannot push the slope to infinity."""
    n_pos, n_neg = float(y.sum()), float(len(y) - y.sum())
    t = np.where(y > 0, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))

    def loss(a, b):
        s = a * z + b
        return float(np.sum(np.logaddexp(0, s) - t * s))

    a, b = 1.0, 0.0
    cur = loss(a, b)
    for _ in range(iters):
        p = 0.5 * (1 + np.tanh(0.5 * (a * z + b)))
        g = np.array([np.sum((p - t) * z), np.sum(p - t)])
        w = p * (1 - p) + 1e-12
        H = np.array([[np.sum(w * z * z), np.sum(w * z)], [np.sum(w * z), np.sum(w)]]) + 1e-6 * np.eye(2)
        step = np.linalg.solve(H, g)
        lam = 1.0
        while lam > 1e-8:
            na, nb = a - lam * step[0], b - lam * step[1]
            new = loss(na, nb)
            if new <= cur:
                break
            lam /= 2
        if lam <= 1e-8 or cur - new < 1e-12:
            break
        a, b, cur = na, nb, new
    return float(a), float(b)


def choose_evidence_threshold(model: GroomingModel, convs) -> tuple[float, float]:
    """Pattern-probability cut maximising message-level F0.5 of (message, pattern) evidence on the
    grooming conversations of the calibration split (F0.5: a reviewer is misled more by a
    pattern named on the wrong message than helped by one more right one)."""
    truth, probs = set(), []
    for ci, c in enumerate(convs):
        if c.label != "grooming":
            continue
        for i, (m, p) in enumerate(zip(c.messages, model.patterns(c.messages))):
            if m["pattern"]:
                truth.add((ci, i, m["pattern"]))
            probs += [(v, (ci, i, k)) for k, v in p.items() if v >= 0.02]
    best = (0.0, 0.5)
    for t in np.arange(0.05, 0.96, 0.05):
        found = {key for v, key in probs if v >= t}
        tp = len(found & truth)
        score = f_beta(tp / len(found), tp / len(truth), 0.5) if found and truth else 0.0
        if score > best[0] + 1e-9:
            best = (score, float(round(t, 2)))
    return best[1], best[0]


def choose_threshold(scores: np.ndarray, labels: np.ndarray, beta: float = 0.5) -> tuple[float, float]:
    """Threshold maximising F-beta (flag when score >= threshold); placed midway in the gap
    below the best cut so that small score shifts don't change decisions."""
    order = np.unique(scores)[::-1]
    best = (-1.0, 1.0, 0)
    for i, t in enumerate(order):
        pred = scores >= t
        tp = float((pred & (labels > 0)).sum())
        p = tp / max(pred.sum(), 1)
        r = tp / max((labels > 0).sum(), 1)
        f = f_beta(p, r, beta)
        if f > best[0] + 1e-12:
            best = (f, t, i)
    f, t, i = best
    lower = order[i + 1] if i + 1 < len(order) else t - 1.0
    return float((t + lower) / 2), float(f)


def _sigmoid(x):
    return 0.5 * (1 + np.tanh(0.5 * np.asarray(x, np.float64)))
