"""The reference grooming model's architecture and training loop (DESIGN.md §5): the message
encoder and window model (:func:`build_model`), the window labels (:func:`window_label`,
:func:`make_windows`) and the training loop (:func:`train`), whose options one :class:`Recipe`
holds. ``python -m training.train_grooming`` is its command line: the corpus, the calibration,
the metadata and the held-out evaluation (its docstring describes the model and the recipe).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from training import grooming_corpus as corpus  # noqa: E402
from csadetect.models.grooming import speaker_ids  # noqa: E402

__all__ = ["WINDOW", "WORD_TOKENS", "CHAR_TOKENS", "EMBED", "CONV", "TOKEN_DROPOUT", "LABEL_SMOOTHING",
           "PATTERN_WEIGHT", "Recipe", "configure_tf", "build_model", "window_label", "make_windows", "train"]

WINDOW = 20
WORD_TOKENS = 24000
CHAR_TOKENS = 32000
EMBED = 48
CONV = 64
TOKEN_DROPOUT = 0.5  # 0.35 before issue 17's second round (calibration-split lw-F1 up in every language)
LABEL_SMOOTHING = 0.0
# Weight of the per-message pattern loss next to the window risk loss; 2.0 before issue 17's second
# round: with token dropout 0.5 the early checkpoint's pattern head was too unsure for evidence.
PATTERN_WEIGHT = 6.0


@dataclass(frozen=True)
class Recipe:
    """How :func:`train` trains: the optimiser, the losses, the window labels and the model's
    shape. The defaults are the shipped model's recipe (and the command line's defaults); every
    other value is one of issue 17's tried options (see the module docstring and the model card)."""
    token_dropout: float = TOKEN_DROPOUT
    label_smoothing: float = LABEL_SMOOTHING
    lr: float = 1e-3
    checks_per_epoch: int = 16  # model selection checks per epoch
    patience: int = 4  # stop after this many checks without a better selection score
    pattern_weight: float = PATTERN_WEIGHT
    warmup: int = 0  # steps of linear learning-rate warm-up (0: constant)
    ema: float = 0.0  # decay of an exponential moving average of the weights (0: none)
    hard_weight: float = 1.0  # risk-loss weight of a hard-negative window
    word_ngrams: int = 2  # see build_model
    weight_decay: float = 0.0  # decoupled (AdamW) weight decay (0: plain Adam)
    risk_input: str = "both"  # see build_model
    single_weight: float = 0.0  # see window_label
    early_labels: bool = False  # see window_label


def configure_tf(threads: int = 1):
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # already initialised: keep what it has
        pass
    tf.config.set_visible_devices([], "GPU")
    tf.get_logger().setLevel("ERROR")
    return tf


def build_model(train_texts, window: int = WINDOW, patterns=corpus.PATTERNS, word_ngrams: int = 2,
                risk_input: str = "both"):
    """Adapted vectorisers + encoder + window model + the full saved model. ``word_ngrams``: the
    longest word n-gram (2: unigrams and bigrams, the default; 1: unigrams only). ``risk_input``:
    what the risk head reads ("both": the pooled convolution features and pattern probabilities,
    the default; "patterns": the pooled pattern probabilities only; "counts": "both" and each
    pattern's summed probability over the window, its expected count, which a max cannot give:
    issue 17, tenth round)."""
    import keras
    from keras import layers

    tvw = layers.TextVectorization(max_tokens=WORD_TOKENS, ngrams=tuple(range(1, word_ngrams + 1)),
                                   output_mode="multi_hot", sparse=True, name="word_ngrams")
    tvc = layers.TextVectorization(max_tokens=CHAR_TOKENS, split="character", ngrams=(3, 4), output_mode="multi_hot",
                                   sparse=True, name="char_ngrams")
    tvw.adapt(train_texts, batch_size=4096)
    tvc.adapt(train_texts, batch_size=4096)

    text = keras.Input(shape=(), dtype="string", name="text")
    w = layers.Dense(EMBED, name="word_embed")(tvw(text))
    c = layers.Dense(EMBED, name="char_embed")(tvc(text))
    x = layers.Concatenate(name="message_concat")([w, c])
    x = layers.LayerNormalization(name="message_norm")(x)
    encoder = keras.Model(text, x, name="message_encoder")
    dim = 2 * EMBED

    vin = keras.Input(shape=(window, dim), name="vectors")
    spk = keras.Input(shape=(window,), dtype="int32", name="speakers")
    msk = keras.Input(shape=(window,), dtype="float32", name="mask")
    m3 = layers.Reshape((window, 1), name="mask3")(msk)
    h = layers.Multiply(name="mask_vectors")([vin, m3])
    h = layers.Add(name="add_speaker")([h, layers.Embedding(4, dim, name="speaker_embed")(spk)])
    h = layers.Dropout(0.2, name="dropout_in")(h)
    # Pattern head: per message, from the message itself (context in it overfitted the training
    # phrasings' neighbours); the risk head sees the sequence through two causal convolutions.
    ph = layers.Dense(CONV, activation="relu", name="pattern_hidden")(h)
    h = layers.Conv1D(CONV, 3, padding="causal", activation="relu", name="conv1")(h)
    h = layers.Conv1D(CONV, 3, padding="causal", activation="relu", name="conv2")(h)
    h = layers.Multiply(name="mask_features")([h, m3])
    pats = layers.Dense(len(patterns), activation="sigmoid", name="patterns_raw")(ph)
    pats = layers.Multiply(name="patterns")([pats, m3])
    pooled = layers.GlobalMaxPooling1D(name="pool_features")(h)
    pooled_p = layers.GlobalMaxPooling1D(name="pool_patterns")(pats)
    if risk_input == "patterns":
        z = layers.Identity(name="window_concat")(pooled_p)
    elif risk_input == "counts":  # the masked mean over the window x its length: each pattern's expected count
        counted_p = layers.Rescaling(float(window), name="count_patterns")(
            layers.GlobalAveragePooling1D(name="mean_patterns")(pats))
        z = layers.Concatenate(name="window_concat")([pooled, pooled_p, counted_p])
    else:
        z = layers.Concatenate(name="window_concat")([pooled, pooled_p])
    z = layers.Dropout(0.2, name="dropout_window")(z)
    z = layers.Dense(32, activation="relu", name="window_dense")(z)
    logit = layers.Dense(1, name="risk_logit")(z)
    calib = layers.Dense(1, activation="sigmoid", name="risk", trainable=False,
                         kernel_initializer="ones", bias_initializer="zeros")
    risk = calib(logit)
    window_model = keras.Model({"vectors": vin, "speakers": spk, "mask": msk},
                               {"risk": risk, "risk_logit": logit, "patterns": pats}, name="window_model")

    texts = keras.Input(shape=(window,), dtype="string", name="texts")
    spk2 = keras.Input(shape=(window,), dtype="int32", name="speakers")
    msk2 = keras.Input(shape=(window,), dtype="float32", name="mask")
    per = [layers.Reshape((1, dim), name=f"msg_{t}")(encoder(texts[:, t])) for t in range(window)]
    vecs = layers.Concatenate(axis=1, name="stack_messages")(per)
    out = window_model({"vectors": vecs, "speakers": spk2, "mask": msk2})
    full = keras.Model({"texts": texts, "speakers": spk2, "mask": msk2}, out, name="grooming")
    return full, encoder, window_model, tvw, tvc


def window_label(patterns_in_window, single_weight: float = 0.0, early: bool = False) -> tuple[float, float]:
    """(label, weight) of a grooming-conversation window from the risk patterns it holds. With
    ``early`` a window is positive from the first strong pattern on (early detection),
    otherwise from two patterns of which one is strong. A window with some pattern but not enough
    for a positive is left out (weight 0), or with ``single_weight`` > 0 (issue 17, ninth round) a
    negative of that weight: one risk-like line alone, as a benign chat may hold, is not grooming."""
    pats = [p for p in patterns_in_window if p]
    strong = sum(p in corpus.STRONG_PATTERNS for p in pats)
    if strong >= 2 or (strong >= 1 and len(pats) >= 2) or (early and (strong >= 1 or len(pats) >= 2)):
        return 1.0, 1.0
    if not pats:
        return 0.0, 1.0
    return 0.0, single_weight


def make_windows(convs, row_of: dict, window: int = WINDOW, hard_weight: float = 1.0, single_weight: float = 0.0,
                 early: bool = False):
    """Training windows over every message of every conversation; a window of a hard-negative
    conversation (:data:`corpus.HARD_NEGATIVE_FAMILIES`) weighs ``hard_weight`` in the risk loss;
    ``single_weight``, ``early``: see :func:`window_label`."""
    K = len(corpus.PATTERNS)
    pidx = {p: i for i, p in enumerate(corpus.PATTERNS)}
    idx, spk, msk, y, yw, yp = [], [], [], [], [], []
    for c in convs:
        rows = [row_of[m["text"]] for m in c.messages]
        senders = [m["sender"] for m in c.messages]
        pats = [m["pattern"] for m in c.messages]
        for end in range(len(rows)):
            start = max(0, end - window + 1)
            k = end - start + 1
            i_row = [-1] * (window - k) + rows[start:end + 1]
            s_row = [0] * (window - k) + speaker_ids(senders[start:end + 1])
            m_row = [0.0] * (window - k) + [1.0] * k
            p_row = np.zeros((window, K), np.float32)
            for j, p in enumerate(pats[start:end + 1]):
                if p:
                    p_row[window - k + j, pidx[p]] = 1.0
            if c.label == "grooming":
                lab, wt = window_label(pats[start:end + 1], single_weight, early)
            else:
                lab, wt = 0.0, (hard_weight if c.family in corpus.HARD_NEGATIVE_FAMILIES else 1.0)
            idx.append(i_row), spk.append(s_row), msk.append(m_row), y.append(lab), yw.append(wt), yp.append(p_row)
    return (np.asarray(idx, np.int32), np.asarray(spk, np.int32), np.asarray(msk, np.float32),
            np.asarray(y, np.float32), np.asarray(yw, np.float32), np.stack(yp))


def train(convs, epochs: int, seed: int, log=print, select=None, recipe: Recipe = Recipe()):
    """Train on ``convs`` the way ``recipe`` says; ``select(full_model) -> float`` (higher is
    better), when given, is called ``recipe.checks_per_epoch`` times an epoch and the best check's
    weights are kept (training stops after ``recipe.patience`` checks without a better score).

    ``recipe.warmup``: the learning rate rises linearly from ``lr / warmup`` to ``lr`` over the
    first ``warmup`` steps (0: constant ``lr``). ``recipe.ema``: when > 0, an exponential moving
    average of the trainable weights with this decay per step (bias-corrected as Adam's moments
    are, so early checks are not pulled towards the initial weights) is what each check evaluates
    and what is kept; training itself continues from the raw weights. ``recipe.weight_decay``:
    decoupled weight decay (AdamW) on every trainable weight (0: plain Adam)."""
    import keras
    import tensorflow as tf

    token_dropout, label_smoothing, pattern_weight = recipe.token_dropout, recipe.label_smoothing, recipe.pattern_weight
    ema, checks_per_epoch, patience = recipe.ema, recipe.checks_per_epoch, recipe.patience

    keras.utils.set_random_seed(seed)
    texts = sorted({m["text"] for c in convs for m in c.messages})
    row_of = {t: i for i, t in enumerate(texts)}
    t0 = time.time()
    full, encoder, window_model, tvw, tvc = build_model(texts, word_ngrams=recipe.word_ngrams,
                                                         risk_input=recipe.risk_input)
    log(f"vectorisers adapted on {len(texts)} distinct messages "
        f"({len(tvw.get_vocabulary())} word, {len(tvc.get_vocabulary())} char n-grams) in {time.time() - t0:.1f}s")

    def ragged(layer):
        sp = layer(tf.constant(texts))
        return tf.RaggedTensor.from_value_rowids(sp.indices[:, 1], sp.indices[:, 0], nrows=len(texts))

    rag_w, rag_c = ragged(tvw), ragged(tvc)
    vw, vc = len(tvw.get_vocabulary()), len(tvc.get_vocabulary())
    word_dense, char_dense = encoder.get_layer("word_embed"), encoder.get_layer("char_embed")
    concat, norm = encoder.get_layer("message_concat"), encoder.get_layer("message_norm")
    dim = 2 * EMBED

    idx, spk, msk, y, yw, yp = make_windows(convs, row_of, hard_weight=recipe.hard_weight,
                                            single_weight=recipe.single_weight, early=recipe.early_labels)
    log(f"{len(idx)} training windows: {int((y * yw).sum())} positive, {int(((1 - y) * yw).sum())} negative, "
        f"{int((yw == 0).sum())} left out")

    def multihot(rag, rows, vocab, training):
        sel = tf.gather(rag, rows)
        cols = sel.flat_values
        rid = sel.value_rowids()
        keep = cols > 0
        if training:  # token dropout: learn from partial phrasings, generalise to new ones
            keep &= tf.random.uniform(tf.shape(cols)) >= token_dropout
        cols, rid = tf.boolean_mask(cols, keep), tf.boolean_mask(rid, keep)
        sp = tf.SparseTensor(tf.stack([rid, cols], axis=1), tf.ones_like(cols, tf.float32),
                             [tf.shape(rows, out_type=tf.int64)[0], vocab])
        return tf.sparse.reorder(sp)

    # Index 0 is the out-of-vocabulary n-gram: it never trains (dropped below) and weighs zero, so
    # unseen words are neutral instead of whatever rare training n-grams happened to mean.
    for layer in (word_dense, char_dense):
        kernel, bias = layer.get_weights()
        kernel[0] = 0.0
        layer.set_weights([kernel, bias])
    variables = encoder.trainable_variables + window_model.trainable_variables
    schedule = _linear_warmup(recipe.lr, recipe.warmup) if recipe.warmup > 0 else recipe.lr
    opt = (keras.optimizers.AdamW(learning_rate=schedule, weight_decay=recipe.weight_decay) if recipe.weight_decay > 0
           else keras.optimizers.Adam(learning_rate=schedule))
    opt.build(variables)
    K = len(corpus.PATTERNS)
    # EMA of the trainable weights: tf Variables updated inside the (deterministic) training step.
    averages = [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables] if ema > 0 else []

    @tf.function(input_signature=[tf.TensorSpec([None, WINDOW], tf.int32), tf.TensorSpec([None, WINDOW], tf.int32),
                                  tf.TensorSpec([None, WINDOW], tf.float32), tf.TensorSpec([None], tf.float32),
                                  tf.TensorSpec([None], tf.float32), tf.TensorSpec([None, WINDOW, K], tf.float32)])
    def step(b_idx, b_spk, b_msk, b_y, b_yw, b_yp):
        rows = tf.cast(tf.maximum(tf.reshape(b_idx, [-1]), 0), tf.int64)
        sw = multihot(rag_w, rows, vw, True)
        sc = multihot(rag_c, rows, vc, True)
        with tf.GradientTape() as tape:
            vec = norm(concat([word_dense(sw), char_dense(sc)]), training=True)
            vec = tf.reshape(vec, [-1, WINDOW, dim])
            out = window_model({"vectors": vec, "speakers": b_spk, "mask": b_msk}, training=True)
            logit = out["risk_logit"][:, 0]
            target = b_y * (1 - label_smoothing) + 0.5 * label_smoothing
            l_risk = tf.reduce_sum(b_yw * tf.nn.sigmoid_cross_entropy_with_logits(target, logit)) / tf.maximum(
                tf.reduce_sum(b_yw), 1.0)
            p = tf.clip_by_value(out["patterns"], 1e-6, 1 - 1e-6)
            bce = -(b_yp * tf.math.log(p) * 3.0 + (1 - b_yp) * tf.math.log(1 - p))
            l_pat = tf.reduce_sum(bce * b_msk[:, :, None]) / tf.maximum(tf.reduce_sum(b_msk), 1.0) / K
            loss = l_risk + pattern_weight * l_pat
        grads = tape.gradient(loss, variables)
        opt.apply_gradients(zip(grads, variables))
        for a, v in zip(averages, variables):
            a.assign(ema * a + (1.0 - ema) * v)
        return l_risk, l_pat

    n_steps = 0

    def evaluate_check():
        """select(full) on the raw weights, or on the bias-corrected EMA (raw weights restored after)."""
        if not averages:
            return select(full), None
        raw = [v.numpy() for v in variables]
        correction = np.float32(1.0 - ema ** n_steps)
        for a, v in zip(averages, variables):
            v.assign(a.numpy() / correction)
        score, weights = select(full), full.get_weights()
        for r, v in zip(raw, variables):
            v.assign(r)
        return score, weights

    rng = np.random.default_rng(seed)
    bs = 256
    best = None
    stale = 0
    n_batches = (len(idx) + bs - 1) // bs
    checkpoints = {round(n_batches * (k + 1) / checks_per_epoch) for k in range(checks_per_epoch)}
    for epoch in range(epochs):
        t0 = time.time()
        order = rng.permutation(len(idx))
        lr_sum = lp_sum = 0.0
        nb = 0
        for i in range(0, len(order), bs):
            b = order[i:i + bs]
            loss_r, loss_p = step(idx[b], spk[b], msk[b], y[b], yw[b], yp[b])
            lr_sum += float(loss_r)
            lp_sum += float(loss_p)
            nb += 1
            n_steps += 1
            if nb in checkpoints:
                at = epoch + nb / n_batches
                msg = f"epoch {at:.2f}/{epochs}: risk loss {lr_sum / nb:.4f}, pattern loss {lp_sum / nb:.4f}"
                if select is not None:
                    score, weights = evaluate_check()
                    msg += f", calibration-split selection score {score:.4f}" + (" (EMA)" if averages else "")
                    if best is None or score > best[0]:
                        best = (score, at, weights if weights is not None else full.get_weights())
                        stale = 0
                    else:
                        stale += 1
                log(f"{msg} ({time.time() - t0:.1f}s)")
                if select is not None and stale >= patience:
                    log(f"no better for {patience} checks: stopping")
                    break
        if select is not None and stale >= patience:
            break
    if best is not None:
        full.set_weights(best[2])
        log(f"kept the {'EMA ' if averages else ''}weights after {best[1]:.3f} epochs "
            f"(step {round(best[1] * n_batches)})")
        full.selected_after_epochs = round(best[1], 3)
    return full


def _linear_warmup(lr: float, steps: int):
    """Learning-rate schedule ``lr * min(1, (step + 1) / steps)``: linear warm-up, then constant."""
    import keras

    class LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):
            return lr * keras.ops.minimum(1.0, (keras.ops.cast(step, "float32") + 1.0) / float(steps))

        def get_config(self):
            return {"lr": lr, "steps": steps}

    return LinearWarmup()
