"""Train the reference image embedding (copy-detection descriptor) on benign proxies.

    python -m training.train_embedding --out csadetect/models/reference/embedding [--steps 450] [--seed 7]

CPU, two threads, fixed seeds, a few minutes. Writes ``model.keras``, ``metadata.json`` and
``metrics.json`` (held-out evaluation, next to PDQ alone).

Data (all benign): generated images (``csadetect.media.synth.synthetic_image``) and the images bundled
with scikit-image (offline), split into training and held-out originals, calibration and
evaluation distractors as ``training.embedding_data`` says.

Model: 64x64 RGB -> 4 conv blocks (strided conv-BN-ReLU, then conv-BN-ReLU in blocks 2-4) -> global average + max pooling
-> dense 128 -> L2 normalisation. Training: NT-Xent (InfoNCE, in-batch negatives, temperature
0.1) on two augmented views of each original; views are precomputed with numpy/PIL
(crops up to 40%, resize, JPEG down to q25, colour/contrast jitter, flips, 90-degree and small
rotations, borders, text banners, pasting into a screenshot-like canvas).

Threshold: set after training by ``training.calibrate_embedding`` on a broad calibration set that is
disjoint from every evaluation set (the synth calibration distractors 200000.., calibration
originals 400000.. with edited copies, and the development split of the robustness benchmark's
set, ``training.robustness_set``): the largest false-pair similarity (copy -> wrong original,
distractor -> original, original -> original), with queries embedded as the pipeline does, plus a
margin. It is written to ``metadata.json`` with a ``threshold_provenance`` object. The evaluation
below then measures recall and false matches at that threshold on the held-out originals and the
evaluation distractors, which the threshold never saw.

    python -m training.train_embedding --out DIR --evaluate-only   # re-evaluate DIR at its threshold
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import time
from pathlib import Path

import numpy as np

from csadetect.media.hashing import hamming, hash_image
from csadetect.media.synth import jpeg_bytes
from csadetect.models.embedding import INPUT_SIZE, EmbeddingModel, preprocess
from training.check_reproduction import machine
from training.calibrate_embedding import MARGIN as CAL_MARGIN, calibrate, calibration_set, write_provenance
from training.embedding_data import (DISTRACTOR_SKIMAGE, EVAL_TRANSFORMS, HELDOUT_SKIMAGE, TRAIN_SKIMAGE,
                                     eval_transform, random_augment, skimage_image, synth)

VERSION = "embedding-ref-0.2"
DIM = 128
PDQ_MAX = 31
MARGIN = 0.02


# ---------------------------------------------------------------- model

def build_model(size: int = INPUT_SIZE, dim: int = DIM, standardise: float = 0.0):
    import keras
    from keras import layers

    inp = keras.Input((size, size, 3), name="image")
    x = layers.Rescaling(1 / 127.5, offset=-1.0)(inp)
    if standardise:
        # each picture to mean 0 and spread 1 over all its pixels and channels (no weights), dividing by
        # sqrt(variance + standardise): a change of brightness or contrast, which a copy often carries, no
        # longer moves the input; a larger value stretches a low-contrast picture less
        x = layers.LayerNormalization(axis=(1, 2, 3), center=False, scale=False, epsilon=standardise,
                                      name="standardise")(x)
    for i, f in enumerate([24, 48, 96, 160]):
        x = layers.Conv2D(f, 3, strides=2, padding="same", use_bias=False, name=f"b{i}_down")(x)
        x = layers.BatchNormalization(name=f"b{i}_bn1")(x)
        x = layers.ReLU()(x)
        if i > 0:
            x = layers.Conv2D(f, 3, padding="same", use_bias=False, name=f"b{i}_conv")(x)
            x = layers.BatchNormalization(name=f"b{i}_bn2")(x)
            x = layers.ReLU()(x)
    x = layers.Concatenate()([layers.GlobalAveragePooling2D()(x), layers.GlobalMaxPooling2D()(x)])
    x = layers.Dense(dim, name="proj")(x)
    out = layers.UnitNormalization(name="l2")(x)
    return keras.Model(inp, out, name="embedding")


def nt_xent(z1, z2, temperature: float = 0.1):
    import tensorflow as tf

    z = tf.concat([z1, z2], 0)
    n = tf.shape(z1)[0]
    sim = tf.matmul(z, z, transpose_b=True) / temperature
    sim = sim - 1e9 * tf.eye(2 * n)
    labels = tf.concat([tf.range(n, 2 * n), tf.range(0, n)], 0)
    return tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(labels, sim, from_logits=True))


# ---------------------------------------------------------------- train / evaluate

def _views(originals, k, rng, size):
    out = np.zeros((len(originals), k, size, size, 3), np.uint8)
    for i, img in enumerate(originals):
        for j in range(k):
            out[i, j] = preprocess(random_augment(img, rng), size)
    return out


def train(args) -> tuple:
    import tensorflow as tf
    import keras

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    keras.utils.set_random_seed(args.seed)
    tf.config.experimental.enable_op_determinism()
    rng = np.random.default_rng(args.seed)

    t0 = time.time()
    originals = [synth(s) for s in range(args.n_synth)] + [skimage_image(n) for n in TRAIN_SKIMAGE]
    views = _views(originals, args.views, rng, INPUT_SIZE)
    t_aug = time.time() - t0
    print(f"precomputed {views.shape[0]}x{views.shape[1]} views in {t_aug:.0f}s", flush=True)

    model = build_model(standardise=args.standardise)
    opt = keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(2e-3, args.steps, alpha=0.05))

    @tf.function(reduce_retracing=True)
    def step(a, b):
        with tf.GradientTape() as tape:
            loss = nt_xent(model(a, training=True), model(b, training=True), args.temperature)
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    t1 = time.time()
    n, k = views.shape[:2]
    args.batch = min(args.batch, n)
    for s in range(args.steps):
        idx = rng.choice(n, args.batch, replace=False)
        j1 = rng.integers(0, k, args.batch)
        j2 = (j1 + rng.integers(1, k, args.batch)) % k
        loss = step(tf.constant(views[idx, j1], tf.float32), tf.constant(views[idx, j2], tf.float32))
        if s % 100 == 0 or s == args.steps - 1:
            print(f"step {s} loss {float(loss):.3f} ({time.time() - t1:.0f}s)", flush=True)
    t_train = time.time() - t1
    return model, t_aug, t_train


def evaluate(model_obj, args, threshold: float | None = None) -> dict:
    """Held-out evaluation at ``threshold`` (default: the old synth-only calibration, the largest
    similarity of a calibration distractor to a held-out original + ``MARGIN``)."""
    emb = model_obj.embed
    held = [synth(100000 + i) for i in range(args.n_heldout)] + [skimage_image(n) for n in HELDOUT_SKIMAGE]
    calib = [synth(200000 + i) for i in range(args.n_distract)]
    dist = [synth(300000 + i) for i in range(args.n_distract)] + [skimage_image(n) for n in DISTRACTOR_SKIMAGE]
    rng = np.random.default_rng(args.seed + 1)

    def with_aug(imgs):
        return imgs + [random_augment(im, rng) for im in imgs]

    calib, dist = with_aug(calib), with_aug(dist)

    t0 = time.time()
    e_held = emb(held)
    dt = time.time() - t0
    e_cal, e_dist = emb(calib), emb(dist)
    max_cal = float((e_cal @ e_held.T).max())
    synth_only = threshold is None
    if synth_only:
        threshold = min(0.999, max_cal + MARGIN)
    sim_dist = e_dist @ e_held.T
    fm_emb = int((sim_dist >= threshold).sum())

    pdq_orig = [hash_image(jpeg_bytes(im, 95)).pdq for im in held]

    def pdq_match(copy, i):
        h = hash_image(jpeg_bytes(copy, 95))
        return min(hamming(d, pdq_orig[i]) for d in h.dihedral) <= PDQ_MAX

    # PDQ false matches: distractor vs any held-out original, dihedral, within 31 bits
    pdq_dist = [hash_image(jpeg_bytes(im, 95)).dihedral for im in dist]
    fm_pdq = sum(1 for dh in pdq_dist for po in pdq_orig if min(hamming(d, po) for d in dh) <= PDQ_MAX)

    recall = {}
    for t in EVAL_TRANSFORMS:
        copies = [eval_transform(t, im, 1000 + i) for i, im in enumerate(held)]
        e_c = emb(copies)
        own = np.sum(e_c * e_held, axis=1)
        # a copy counts if it matches its own original at the threshold
        r_emb = float(np.mean(own >= threshold))
        r_pdq = float(np.mean([pdq_match(c, i) for i, c in enumerate(copies)]))
        # and top-1 retrieval among held-out originals (informational)
        top1 = float(np.mean(np.argmax(e_c @ e_held.T, axis=1) == np.arange(len(held))))
        recall[t] = {"embedding": round(r_emb, 3), "pdq": round(r_pdq, 3), "embedding_top1": round(top1, 3),
                     "median_sim": round(float(np.median(own)), 3)}
        print(f"{t:11s} embedding {r_emb:.3f}  pdq {r_pdq:.3f}  top1 {top1:.3f}  median sim {np.median(own):.3f}",
              flush=True)
    return {
        "threshold": round(threshold, 4),
        "threshold_source": ("synth calibration distractors + margin" if synth_only
                             else "metadata.json threshold_provenance (training/calibrate_embedding.py)"),
        "calibration_max_distractor_similarity": round(max_cal, 4),
        "margin": MARGIN if synth_only else getattr(args, "calibration_margin", None),
        "n_heldout_originals": len(held),
        "n_calibration_distractors": len(calib),
        "n_eval_distractors": len(dist),
        "eval_max_distractor_similarity": round(float(sim_dist.max()), 4),
        "false_matches": {"embedding": fm_emb, "pdq": fm_pdq,
                          "pairs_compared": int(sim_dist.size)},
        "recall": recall,
        "embed_images_per_s": round(len(held) / dt, 1),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.train_embedding", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="csadetect/models/reference/embedding")
    p.add_argument("--steps", type=int, default=450)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--views", type=int, default=6)
    p.add_argument("--n-synth", type=int, default=400)
    p.add_argument("--n-heldout", type=int, default=100)
    p.add_argument("--n-distract", type=int, default=200)
    p.add_argument("--temperature", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--standardise", type=float, default=0.0, metavar="EPS",
                   help="standardise each input picture inside the network: subtract its mean, divide by "
                        "sqrt(variance + EPS) (inputs in [-1, 1]); 0 (default): no standardisation")
    p.add_argument("--evaluate-only", action="store_true",
                   help="do not train: re-evaluate the model in --out at its metadata threshold (rewrites metrics.json)")
    args = p.parse_args(argv)

    out = Path(args.out)
    if args.evaluate_only:
        obj = EmbeddingModel.load(out)
        args.calibration_margin = obj.metadata.get("threshold_provenance", {}).get("margin")
        metrics = evaluate(obj, args, threshold=obj.threshold)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        print(json.dumps({k: metrics[k] for k in ("threshold", "false_matches", "embed_images_per_s")}))
        return 0

    model, t_aug, t_train = train(args)
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "model.keras")
    meta = {"version": VERSION, "input_size": INPUT_SIZE, "dim": DIM, "threshold": 0.9,
            "similarity": "cosine (dot product of L2-normalised vectors)"}
    obj = EmbeddingModel(model, meta)
    # threshold: the broad calibration set of training/calibrate_embedding.py (disjoint from the
    # evaluation below); the evaluation then runs at it
    log = lambda msg: print(msg, flush=True)  # noqa: E731
    calibration = calibrate(obj, calibration_set(log=log), log=log)
    args.calibration_margin = CAL_MARGIN
    metrics = evaluate(obj, args, threshold=calibration["threshold"])
    meta.update({
        "threshold": calibration["threshold"],
        "training": {"seed": args.seed, "steps": args.steps, "batch": args.batch, "views": args.views,
                     "n_synth": args.n_synth, "skimage": TRAIN_SKIMAGE, "temperature": args.temperature,
                     "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d"),
                     "augment_s": round(t_aug, 1), "train_s": round(t_train, 1), "machine": machine(),
                     **({"standardise": args.standardise} if args.standardise else {})},
        "heldout_skimage": HELDOUT_SKIMAGE, "distractor_skimage": DISTRACTOR_SKIMAGE,
        "note": "reference model trained on benign proxies; a stand-in for the EU Centre's models, not for production",
    })
    (out / "metadata.json").write_text(json.dumps(meta, indent=2) + "\n")
    write_provenance(out, calibration)  # threshold + threshold_provenance
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    size = (out / "model.keras").stat().st_size
    print(json.dumps({k: metrics[k] for k in ("threshold", "false_matches", "embed_images_per_s")}))
    print(f"model.keras {size / 1e6:.2f} MB; augment {t_aug:.0f}s, train {t_train:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
