"""Train the reference "new-material" classifier: a calibrated head on the frozen image embedding.

    python -m training.train_classifier --out csadetect/models/reference/classifier \\
        [--embedding csadetect/models/reference/embedding] [--seed 3] [--n-train 16000]

Benign proxy task (``training/classifier_corpus.py``): does the image show the *marker emblem*, a
procedurally drawn badge? Stands in for the EU Centre's classifier; not for production.

Steps (CPU, fixed seeds, TensorFlow op determinism; progress on stderr):

1. Draw the train / calibration / eval splits (disjoint seed ranges; eval has its own
   backgrounds, a background family, emblem parameter ranges and look-alike kinds never seen in
   training), in ``--workers`` processes, and embed them with the frozen embedding model.
2. Train the head, 128 -> Dense 256 ReLU -> Dropout 0.3 -> Dense 1 (logit), with binary
   cross-entropy; keep the weights with the best calibration-split ROC AUC (checked every
   ``--check-every`` epochs).
3. Fit Platt scaling (``sigmoid(a * logit + b)``) on the calibration split and bake it into the
   model's last layer (``platt``, frozen), so the saved model outputs calibrated probabilities.
4. Thresholds on the calibration split (calibrated scores), with ``csadetect.tuning.tune``:
   ``review_threshold`` = most recall at precision >= 0.9; ``report_threshold`` = most recall at
   precision >= 0.99 (1.0, i.e. never, when unreachable).
5. Evaluate on the held-out eval split (plus small emblems, a diagnostic outside the task's
   scope) and measure scoring speed. Writes ``model.keras``, ``metadata.json``, ``metrics.json``.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import multiprocessing
import sys
import time
from pathlib import Path

import numpy as np

from csadetect.models.classifier import NewMaterialClassifier, evaluate, roc_auc
from csadetect.models.embedding import KIND as EMBEDDING, EmbeddingModel, preprocess
from csadetect.models.grooming import expected_calibration_error
from csadetect.tuning.tune import TuneError, choose_threshold
from training import classifier_corpus as corpus
from training.check_reproduction import machine

VERSION = "newmat-ref-0.2"
REVIEW_PRECISION = 0.9
REPORT_PRECISION = 0.99
HIDDEN = 256
DROPOUT = 0.3


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- data

_INPUT_SIZE = 64


def _render(job: tuple) -> tuple:
    """(example seed, kind) -> (preprocessed uint8 array, label, info). Runs in a worker."""
    seed, kind = job
    img, label, info = corpus.example(seed, kind)
    return preprocess(img, _INPUT_SIZE), label, info


def _init_worker(size: int) -> None:
    global _INPUT_SIZE
    _INPUT_SIZE = size


def render(jobs: list, workers: int, input_size: int, what: str) -> tuple:
    t0 = time.time()
    out = []
    if workers > 1:
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(workers, initializer=_init_worker, initargs=(input_size,)) as pool:
            for i, r in enumerate(pool.imap(_render, jobs, chunksize=64)):
                out.append(r)
                if (i + 1) % 2000 == 0:
                    log(f"  {what}: {i + 1}/{len(jobs)} images ({time.time() - t0:.0f}s)")
    else:
        _init_worker(input_size)
        for i, job in enumerate(jobs):
            out.append(_render(job))
            if (i + 1) % 2000 == 0:
                log(f"  {what}: {i + 1}/{len(jobs)} images ({time.time() - t0:.0f}s)")
    arr = np.stack([r[0] for r in out])
    return arr, np.array([r[1] for r in out], np.int64), [r[2] for r in out]


def group_of(info: dict) -> str:
    """A readable group name for per-group rates: positive[:held-out axis], easy, hard:<kind>."""
    kind = info["kind"]
    if kind == "positive":
        h = (info.get("emblem") or {}).get("heldout")
        return f"positive:heldout-{h}" if h else "positive:seen-params"
    if kind == "small":
        return "positive:small-diagnostic"
    if kind == "hard":
        return f"hard:{info['hard_kind']}" + (":emblem-colours" if info.get("emblem_colours") else "")
    return "easy"


# ---------------------------------------------------------------- model

def build_head(dim: int, hidden: int = HIDDEN, dropout: float = DROPOUT):
    import keras
    from keras import layers

    inp = keras.Input((dim,), name="embedding")
    x = layers.Dense(hidden, activation="relu", name="hidden")(inp)
    x = layers.Dropout(dropout, name="dropout")(x)
    logit = layers.Dense(1, name="logit")(x)
    return keras.Model(inp, logit, name="newmat_head")


def with_platt(head, a: float, b: float):
    """The head plus a frozen Platt layer: sigmoid(a * logit + b)."""
    import keras
    from keras import layers

    platt = layers.Dense(1, activation="sigmoid", name="platt", trainable=False)
    out = platt(head.output)
    platt.set_weights([np.array([[a]], np.float32), np.array([b], np.float32)])
    return keras.Model(head.input, out, name="newmat_classifier")


def fit_platt(logits: np.ndarray, labels: np.ndarray, iters: int = 100) -> tuple[float, float]:
    """Platt scaling by Newton's method on the log loss (with Platt's target smoothing)."""
    z = np.asarray(logits, np.float64)
    y = np.asarray(labels, np.float64)
    n1, n0 = y.sum(), len(y) - y.sum()
    t = np.where(y > 0, (n1 + 1) / (n1 + 2), 1 / (n0 + 2))
    a, b = 1.0, 0.0
    for _ in range(iters):
        p = 1 / (1 + np.exp(-(a * z + b)))
        g = np.array([np.sum((p - t) * z), np.sum(p - t)])
        w = p * (1 - p) + 1e-12
        H = np.array([[np.sum(w * z * z), np.sum(w * z)], [np.sum(w * z), np.sum(w)]]) + 1e-9 * np.eye(2)
        step = np.linalg.solve(H, g)
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-10:
            break
    return float(a), float(b)


def _range(split: str) -> str:
    lo, hi = corpus.SPLITS[split]
    return f"{lo}..{hi - 1}"


def log_loss(p, y) -> float:
    p = np.clip(np.asarray(p, np.float64), 1e-7, 1 - 1e-7)
    y = np.asarray(y, np.float64)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def choose(scores, labels, target: float) -> dict:
    try:
        r = choose_threshold(scores, labels, target_precision=target)
        return {"value": r["threshold"], "rule": f"lowest calibrated score with precision >= {target} "
                "on the calibration split (most recall)", "precision": r["precision"], "recall": r["recall"],
                "tp": r["tp"], "fp": r["fp"], "n": r["n"], "precision_ci95": r["precision_ci95"]}
    except TuneError as exc:
        return {"value": 1.0, "rule": f"precision >= {target} unreachable on the calibration split "
                f"({exc}); 1.0 means never", "precision": None, "recall": 0.0}


# ---------------------------------------------------------------- main

def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.train_classifier", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="csadetect/models/reference/classifier")
    p.add_argument("--embedding", default=None,
                   help="embedding model (default: the reference, csadetect/models/reference/embedding)")
    p.add_argument("--n-train", type=int, default=16000)
    p.add_argument("--n-calib", type=int, default=3000)
    p.add_argument("--n-eval", type=int, default=4000)
    p.add_argument("--n-small", type=int, default=400, help="diagnostic small-emblem positives (eval seeds)")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--check-every", type=int, default=4)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workers", type=int, default=2, help="processes drawing images")
    args = p.parse_args(argv)
    t_start = time.time()

    input_size = int(EMBEDDING.metadata(args.embedding).get("input_size", 64))

    # 1. data (drawn before TensorFlow starts, so the worker processes fork cleanly)
    jobs = {
        "train": corpus.dataset_seeds("train", args.n_train, args.seed),
        "calibration": corpus.dataset_seeds("calibration", args.n_calib, args.seed),
        "eval": corpus.dataset_seeds("eval", args.n_eval, args.seed),
    }
    used = {s for js in jobs.values() for s, _ in js}
    lo, hi = corpus.SPLITS["eval"]
    small_rng = np.random.default_rng([args.seed, 99])
    small = [int(s) for s in lo + small_rng.choice(hi - lo, args.n_small * 2, replace=False) if int(s) not in used]
    jobs["small"] = [(s, "small") for s in small[:args.n_small]]
    data = {}
    t0 = time.time()
    for split, js in jobs.items():
        data[split] = render(js, args.workers, input_size, split)
        log(f"drew {split}: {len(js)} images ({time.time() - t0:.0f}s)")
    t_draw = time.time() - t0

    import tensorflow as tf
    import keras

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    keras.utils.set_random_seed(args.seed)
    tf.config.experimental.enable_op_determinism()

    emb = EmbeddingModel.load(args.embedding)
    t0 = time.time()
    E = {split: emb.embed_arrays(arr) for split, (arr, _, _) in data.items()}
    t_embed = time.time() - t0
    n_imgs = sum(len(v) for v in E.values())
    log(f"embedded {n_imgs} images in {t_embed:.0f}s ({n_imgs / t_embed:.0f}/s)")
    Y = {split: y for split, (_, y, _) in data.items()}
    info = {split: i for split, (_, _, i) in data.items()}

    # 2. head
    head = build_head(emb.dim)
    head.compile(optimizer=keras.optimizers.Adam(args.lr),
                 loss=keras.losses.BinaryCrossentropy(from_logits=True))
    t0 = time.time()
    best = (-1.0, 0, None)
    for ep in range(args.check_every, args.epochs + 1, args.check_every):
        hist = head.fit(E["train"], Y["train"], epochs=ep, initial_epoch=ep - args.check_every,
                        batch_size=args.batch, shuffle=True, verbose=0)
        z_cal = np.asarray(head(E["calibration"], training=False)).reshape(-1)
        auc = roc_auc(z_cal, Y["calibration"])
        if auc > best[0]:
            best = (auc, ep, head.get_weights())
        log(f"epoch {ep}: loss {hist.history['loss'][-1]:.4f}, calibration AUC {auc:.4f} ({time.time() - t0:.0f}s)")
    head.set_weights(best[2])
    t_train = time.time() - t0
    log(f"kept epoch {best[1]} (calibration AUC {best[0]:.4f})")

    # 3. Platt scaling on the calibration split
    z_cal = np.asarray(head(E["calibration"], training=False), np.float64).reshape(-1)
    a, b = fit_platt(z_cal, Y["calibration"])
    ece_before = expected_calibration_error(1 / (1 + np.exp(-z_cal)), Y["calibration"])
    model = with_platt(head, a, b)

    # 4. thresholds
    meta = {"version": VERSION, "embedding_version": emb.version, "dim": emb.dim,
            "review_threshold": 0.5, "report_threshold": 1.0}
    clf = NewMaterialClassifier(model, meta)
    s_cal = clf.score(E["calibration"])
    ece_after = expected_calibration_error(s_cal, Y["calibration"])
    review = choose(s_cal, Y["calibration"], REVIEW_PRECISION)
    report = choose(s_cal, Y["calibration"], REPORT_PRECISION)
    clf.review_threshold, clf.report_threshold = review["value"], report["value"]
    log(f"Platt a={a:.4f} b={b:.4f}; calibration ECE {ece_before:.4f} -> {ece_after:.4f}; "
        f"review {review['value']:.4f}, report {report['value']:.4f}")

    # 5. evaluation and speed
    items_eval = [(e, y, group_of(i)) for e, y, i in zip(E["eval"], Y["eval"], info["eval"])]
    m_eval = evaluate(clf, None, items_eval)
    items_cal = [(e, y, group_of(i)) for e, y, i in zip(E["calibration"], Y["calibration"], info["calibration"])]
    m_cal = evaluate(clf, None, items_cal)
    s_small = clf.score(E["small"])
    bg = {}
    s_eval = clf.score(E["eval"])
    for fam in sorted({i["background"] for i in info["eval"]}):
        sel = np.array([i["background"] == fam for i in info["eval"]])
        bg[fam] = {"n": int(sel.sum()), "roc_auc": round(roc_auc(s_eval[sel], Y["eval"][sel]), 4)}
    hard_auc = {}
    pos = Y["eval"] == 1
    for g in sorted({group_of(i) for i in info["eval"] if i["kind"] != "positive"}):
        sel = pos | np.array([group_of(i) == g for i in info["eval"]])
        hard_auc[g] = round(roc_auc(s_eval[sel], Y["eval"][sel]), 4)

    big = np.tile(E["eval"], (max(1, 100_000 // len(E["eval"])), 1))
    clf.score(big[:1000])
    t0 = time.time()
    clf.score(big)
    batched_per_s = len(big) / (time.time() - t0)
    t0 = time.time()
    for k in range(2000):
        clf.score(E["eval"][k % len(E["eval"])][None, :])
    single_per_s = 2000 / (time.time() - t0)
    t0 = time.time()
    emb.embed_arrays(data["eval"][0][:512])
    embed_per_s = 512 / (time.time() - t0)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "model.keras")
    size = (out / "model.keras").stat().st_size
    date = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d")
    review["chosen_at"] = report["chosen_at"] = date
    metadata = {
        "version": VERSION,
        "embedding_version": emb.version,
        "dim": emb.dim,
        "review_threshold": round(review["value"], 6),
        "report_threshold": round(report["value"], 6),
        "thresholds": {"review": review, "report": report, "split": "calibration",
                       "calibration_prevalence": round(float(Y["calibration"].mean()), 4)},
        "output": "calibrated probability that the image shows the marker emblem (benign proxy task)",
        "calibration": {"method": "platt", "a": a, "b": b, "baked_into": "layer 'platt' (frozen)",
                        "n": int(len(s_cal)), "ece_calibration_split_before": round(ece_before, 4),
                        "ece_calibration_split_after": round(ece_after, 4),
                        "log_loss_calibration_split_before": round(
                            log_loss(1 / (1 + np.exp(-z_cal)), Y["calibration"]), 4),
                        "log_loss_calibration_split_after": round(log_loss(s_cal, Y["calibration"]), 4)},
        "model": {"input": f"({emb.dim},) L2-normalised embedding from {emb.version}",
                  "layers": f"Dense {HIDDEN} ReLU -> Dropout {DROPOUT} -> Dense 1 (logit) -> Platt sigmoid",
                  "parameters": int(model.count_params()), "model_file": "model.keras"},
        "task": "does the image show the marker emblem (gold centre, teal/gold rings, crimson petal crown) "
                "as its main subject; benign procedural proxy, training/classifier_corpus.py",
        "data": {
            "corpus": "training.classifier_corpus",
            "train": {"n": args.n_train, "seeds": _range("train"), "skimage": corpus.TRAIN_SKIMAGE},
            "calibration": {"n": args.n_calib, "seeds": _range("calibration"), "skimage": corpus.CALIB_SKIMAGE},
            "eval": {"n": args.n_eval, "seeds": _range("eval"), "skimage": corpus.EVAL_SKIMAGE,
                     "eval_only": {"backgrounds": corpus.EVAL_ONLY_BACKGROUNDS,
                                   "hard_kinds": corpus.EVAL_ONLY_HARD_KINDS,
                                   "emblem_axes": corpus.HELDOUT_AXES}},
            "mix": "50% positives, 25% easy negatives, 25% hard negatives (look-alikes)",
            "image_size": list(corpus.SIZE),
        },
        "training": {"seed": args.seed, "epochs": args.epochs, "kept_epoch": best[1], "batch": args.batch,
                     "lr": args.lr, "selection": "best calibration-split ROC AUC",
                     "date": date, "draw_s": round(t_draw, 1), "embed_s": round(t_embed, 1),
                     "train_s": round(t_train, 1), "total_s": round(time.time() - t_start, 1),
                     "tensorflow": tf.__version__, "keras": keras.__version__, "machine": machine()},
        "note": "reference model trained on a benign proxy task; a stand-in for the EU Centre's "
                "classifier, not for production",
    }
    metrics = {
        "version": VERSION,
        "eval": m_eval,
        "eval_roc_auc_by_background": bg,
        "eval_roc_auc_positives_vs_negative_group": hard_auc,
        "small_emblem_diagnostic": {
            "n": int(len(s_small)), "emblem_size": list(corpus.SMALL_SIZE),
            "recall_at_review": round(float(np.mean(s_small >= clf.review_threshold)), 4),
            "recall_at_report": round(float(np.mean(s_small >= clf.report_threshold)), 4),
            "median_score": round(float(np.median(s_small)), 4),
            "note": "emblems at 20-45% of the short side, below the task's scope (not in training)",
        },
        "calibration_split": {k: m_cal[k] for k in ("n", "roc_auc", "ece", "at_review", "at_report")},
        "speed": {"scores_per_s_batched": round(batched_per_s), "scores_per_s_one_at_a_time": round(single_per_s),
                  "embeddings_per_s_for_reference": round(embed_per_s), "threads": args.threads,
                  "note": "shared 2-core machine; indicative only"},
        "model_bytes": size,
    }
    (out / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    r, q = m_eval["at_review"], m_eval["at_report"]
    summary = {"eval_roc_auc": round(m_eval["roc_auc"], 4), "eval_ece": round(m_eval["ece"], 4),
               "review": {"threshold": clf.review_threshold, "precision": round(r["precision"], 4),
                          "recall": round(r["recall"], 4), "f0_5": round(r["f0_5"], 4)},
               "report": {"threshold": clf.report_threshold, "precision": round(q["precision"], 4),
                          "recall": round(q["recall"], 4), "f0_5": round(q["f0_5"], 4)},
               "model_bytes": size, "total_s": metadata["training"]["total_s"]}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
