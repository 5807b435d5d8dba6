"""Grooming corpus, reference model, scoring API and CLI (training/grooming_corpus.py,
csadetect/models/grooming.py, csadetect/cli/models.py).

Every conversation here is handwritten and never sexual: only the risk patterns (age questions,
secrecy, private channels, gifts, meeting and selfie/camera requests) or ordinary chats that
share their words."""
from __future__ import annotations

import codecs
import itertools
import json
import os
import random
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from training import grooming_corpus as corpus
from csadetect.models import ModelError
from csadetect.core.timeutil import parse_time
from csadetect.cli.models import main
from csadetect.models.grooming import KIND, GroomingModel, NumpyWindowModel

DEFAULT_MODEL_DIR = KIND.reference
REPO = Path(__file__).resolve().parents[1]

# A minimal, clinical blocklist, stored ROT13-encoded so this file does not spell it out.
_BLOCKLIST = [codecs.decode(w, "rot13") for w in ("frk", "ahqr", "anxrq", "haqerff", "travgny", "jrnevat", "xvff")]
_BLOCK_RE = re.compile(r"\b(" + "|".join(_BLOCKLIST) + r")", re.IGNORECASE)


def conversation(turns, minor=True, cid="c1", start=datetime(2025, 5, 1, 16, 0, tzinfo=timezone.utc)):
    """Messages from (sender, text) turns, one minute apart."""
    return [{"conversation_id": cid, "sender": s, "sent_at": (start + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
             "text": t, "participants_minor": minor} for i, (s, t) in enumerate(turns)]


# Handwritten grooming-pattern conversation (never sexual). Expected (index, pattern) pairs.
GROOMING = [
    ("adult", "hey there"), ("kid", "hi"),
    ("adult", "how old are you?"),  # 2 age_check
    ("kid", "13"),
    ("adult", "you're really mature for your age"),  # 4 friendship
    ("kid", "lol thanks"),
    ("adult", "do your parents check your phone?"),  # 6 risk_assessment
    ("kid", "sometimes"),
    ("adult", "don't tell anyone we talk, it's our secret"),  # 8 secrecy
    ("kid", "ok"),
    ("adult", "add me on snapchat, it's more private there"),  # 10 private_channel
    ("adult", "i can send you a gift card if you want"),  # 11 gifts
    ("kid", "really?"),
    ("adult", "send me a selfie"),  # 13 photo_request
    ("adult", "we should meet up, just us. i can pick you up after school"),  # 14 meeting
]
GROOMING_EXPECTED = {(2, "age_check"), (4, "friendship"), (6, "risk_assessment"), (8, "secrecy"),
                     (10, "private_channel"), (11, "gifts"), (13, "photo_request"), (14, "meeting")}

# Handwritten hard negatives: ordinary chats using "secret", "meet", "camera", "gift card",
# "how old are you".
HARD_NEGATIVES = {
    "surprise_party": [
        ("ana", "are you coming to plan mom's party"), ("ben", "yes what time"),
        ("ana", "it's a secret so don't tell mom ok"), ("ben", "i won't"),
        ("ana", "we meet at aunt rosa's house at 4 to decorate"), ("ben", "cool i'll bring the banner"),
        ("ana", "dad got her a gift card for the bookstore"), ("ben", "she's going to love it"),
        ("ana", "shh keep it secret until sunday"), ("ben", "my lips are sealed"),
    ],
    "grandma_call": [
        ("mom", "hi sweetie, grandma wants to video call at 6"), ("kid", "ok"),
        ("mom", "please turn on your camera so she can see you"), ("kid", "ok mom"),
        ("mom", "did you finish your homework?"), ("kid", "almost"),
        ("mom", "i'll pick you up from practice at 5"), ("kid", "see you then"),
    ],
    "birthday_gift": [
        ("aunt", "happy birthday sweetheart!!"), ("kid", "thank you!!"),
        ("aunt", "i sent you a gift card, did it arrive?"), ("kid", "yes it came today"),
        ("aunt", "how old are you now, 12?"), ("kid", "yep 12"),
        ("aunt", "send us a picture with your cake"), ("kid", "here it is"),
        ("aunt", "tell your mom i said hi"),
    ],
    "gamers": [
        ("p1", "gg that round was close"), ("p2", "lol yeah"),
        ("p1", "how old are you btw"), ("p2", "12 u?"), ("p1", "same lol"),
        ("p1", "wanna play again after school"), ("p2", "yes"),
        ("p1", "my mic is broken so i'll type"), ("p2", "ok what's your username"),
    ],
    "mall": [
        ("jo", "wanna meet at the mall saturday?"), ("sam", "yes!!"),
        ("jo", "my mom can drive us, meet at the food court at 2"), ("sam", "ok i'll ask my dad"),
        ("jo", "don't tell mia, we're buying her birthday present"), ("sam", "lol i won't"),
    ],
    "online_class": [
        ("teacher", "good morning class"), ("student", "morning"),
        ("teacher", "please turn on your camera, the lesson is starting"), ("student", "ok sorry"),
        ("teacher", "send me a pic of your worksheet when you're done"), ("student", "sent it"),
        ("teacher", "great work today, remind your parents about the trip form"),
    ],
}


@pytest.fixture(scope="module")
def model():
    return GroomingModel.load(DEFAULT_MODEL_DIR)


# ------------------------------------------------------------------ corpus
def _records(convs):
    return [r for c in convs for r in c.records()]


def test_corpus_is_deterministic_by_seed():
    a = _records(corpus.generate(40, seed=7, split="train"))
    b = _records(corpus.generate(40, seed=7, split="train"))
    c = _records(corpus.generate(40, seed=8, split="train"))
    assert a == b
    assert a != c


def test_corpus_is_deterministic_across_processes():
    # String hashing differs between processes (PYTHONHASHSEED): the corpus must not depend on it.
    code = ("import hashlib, json; from training import grooming_corpus as c; "
            "s = c.generate_splits(60, 1); "
            "print(hashlib.sha256(json.dumps([r for k in s for x in s[k] for r in x.records()]).encode()).hexdigest())")
    digests = set()
    for hash_seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(REPO)}
        out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-500:]
        digests.add(out.stdout.strip())
    assert len(digests) == 1


def test_splits_share_no_conversation_text_and_hold_out_phrasings():
    splits = corpus.generate_splits(300, seed=1)
    texts = {k: {corpus.conversation_text(c) for c in v} for k, v in splits.items()}
    for x, y in itertools.combinations(texts, 2):
        assert not texts[x] & texts[y], f"{x} and {y} share a conversation"
    ids = [c.conversation_id for v in splits.values() for c in v]
    assert len(ids) == len(set(ids))
    # Evaluation-only families and risk phrasings never reach the training split.
    train_families = {c.family for c in splits["train"]}
    assert {"sleepover", "scout_troop"}.isdisjoint(train_families)
    assert {"sleepover", "scout_troop"} <= {c.family for c in splits["eval"]}
    held = {p.lower() for bank in corpus.GROOMER.values() for p in bank["eval"] if "{" not in p}
    train_msgs = {m["text"].lower() for c in splits["train"] for m in c.messages}
    assert held and not held & train_msgs


def test_corpus_contains_no_sexual_terms():
    banks = [corpus.GROOMER, corpus.CHILD_REPLY, {"chitchat": corpus.CHITCHAT}, corpus.SLOTS]
    strings = [s for bank in banks for entry in bank.values() for lst in entry.values() for s in lst]
    strings += [s for f in corpus.BENIGN_FAMILIES for d in (f.lines_a, f.lines_b) for lst in d.values() for s in lst]
    assert len(strings) > 300
    for split, convs in corpus.generate_splits(400, seed=3).items():
        strings += [m["text"] for c in convs for m in c.messages]
    bad = sorted({s for s in strings if _BLOCK_RE.search(s)})
    assert not bad, f"{len(bad)} corpus strings hit the blocklist"
    assert _BLOCK_RE.search("x " + _BLOCKLIST[0] + "ual y")  # the check itself works


def test_corpus_records_and_labels(tmp_path):
    assert corpus.main(["--out", str(tmp_path), "--n", "40", "--seed", "2"]) == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert set(manifest["splits"]) == {"train", "calibration", "eval"}
    rows = [json.loads(line) for line in (tmp_path / "train" / "messages.jsonl").read_text().splitlines()]
    labels = {json.loads(line)["conversation_id"]: json.loads(line)
              for line in (tmp_path / "train" / "conversations.jsonl").read_text().splitlines()}
    assert len(labels) == 40 and {lab["label"] for lab in labels.values()} == {"grooming", "benign"}
    for r in rows:
        assert set(r) == {"conversation_id", "sender", "sent_at", "text", "participants_minor", "pattern"}
        parse_time(r["sent_at"], field="sent_at")
        assert isinstance(r["participants_minor"], bool)
        assert r["pattern"] is None or r["pattern"] in corpus.PATTERNS
        if labels[r["conversation_id"]]["label"] == "benign":
            assert r["pattern"] is None
    for cid, lab in labels.items():
        pats = {r["pattern"] for r in rows if r["conversation_id"] == cid and r["pattern"]}
        assert bool(pats) == (lab["label"] == "grooming")
        assert sorted(pats) == sorted(lab["patterns"])
    # read back
    back = corpus.read_corpus(tmp_path, "train")
    assert len(back) == 40 and sum(len(c.messages) for c in back) == len(rows)


# ------------------------------------------------------------------ loading
def test_model_loads_from_path_and_with_keras_alone(model):
    import keras

    assert model.window >= 10 and len(model.pattern_names) == len(corpus.PATTERNS)
    assert 0.0 < model.threshold < 1.0
    meta = json.loads((DEFAULT_MODEL_DIR / "metadata.json").read_text())
    for key in ("version", "threshold", "window", "patterns", "date", "training"):
        assert key in meta
    assert meta["training"]["seed"] == 1
    raw = keras.models.load_model(DEFAULT_MODEL_DIR / "model.keras")
    W = meta["window"]
    texts = np.array([[""] * (W - 2) + ["hi", "how old are you"]], dtype=object)
    out = raw({"texts": texts, "speakers": np.array([[0] * (W - 2) + [1, 2]], np.int32),
               "mask": np.array([[0.0] * (W - 2) + [1.0, 1.0]], np.float32)})
    risk = float(np.asarray(out["risk"]).reshape(-1)[0])
    assert 0.0 <= risk <= 1.0
    assert np.asarray(out["patterns"]).shape == (1, W, len(meta["patterns"]))
    same = model.score_window([{"sender": "a", "text": "hi"}, {"sender": "b", "text": "how old are you"}])
    assert abs(same - risk) < 1e-5
    total = sum(p.stat().st_size for p in DEFAULT_MODEL_DIR.iterdir())
    assert total <= 20 * 1024 * 1024


def test_missing_model_gives_model_error(tmp_path):
    with pytest.raises(ModelError) as err:
        GroomingModel.load(tmp_path / "does-not-exist")
    assert "not found" in str(err.value) and "\n" not in str(err.value)


def test_corrupt_model_gives_one_line_model_error(tmp_path):
    (tmp_path / "metadata.json").write_text((DEFAULT_MODEL_DIR / "metadata.json").read_text())
    (tmp_path / "model.keras").write_bytes(b"PK\x03\x04 this is not a keras archive" * 10)
    with pytest.raises(ModelError) as err:
        GroomingModel.load(tmp_path)
    assert "\n" not in str(err.value) and "cannot load" in str(err.value)
    (tmp_path / "metadata.json").write_text("{not json")
    with pytest.raises(ModelError) as err:
        GroomingModel.load(tmp_path)
    assert "metadata" in str(err.value) and "\n" not in str(err.value)


# ------------------------------------------------------------------ scoring
def test_batched_scoring_equals_one_by_one(model):
    convs = [conversation(GROOMING, cid="g")] + [conversation(t, cid=k) for k, t in HARD_NEGATIVES.items()]
    convs += [[{**m, "conversation_id": c.conversation_id, "participants_minor": c.participants_minor}
               for m in c.messages] for c in corpus.generate(12, seed=5, split="eval")]
    batched = model.score_conversations(convs)
    for conv, b in zip(convs, batched):
        one = model.score_conversation(conv)
        assert one["conversation_id"] == b["conversation_id"]
        assert one["flagged"] == b["flagged"] and one["flagged_at_message"] == b["flagged_at_message"]
        assert one["score"] == pytest.approx(b["score"], abs=1e-6)
        assert [(e["pattern"], e["message_index"]) for e in one["evidence"]] == \
               [(e["pattern"], e["message_index"]) for e in b["evidence"]]
    windows = [conv[: k + 1] for conv in convs[:4] for k in range(0, len(conv), 3)]
    many = model.score_windows(windows)
    single = np.array([model.score_window(w) for w in windows])
    np.testing.assert_allclose(many, single, atol=1e-6)


def test_conversation_score_replays_windows(model):
    conv = conversation(GROOMING)
    res = model.score_conversation(conv)
    assert res["language"] == "en" and res["language_supported"] is True
    per_step = [model.score_window(conv[max(0, i - model.window + 1): i + 1]) for i in range(len(conv))]
    per_step = model.calibrate(per_step, "en")  # English's own calibration on top of the model's
    assert res["score"] == pytest.approx(float(max(per_step)), abs=1e-6)
    first = next(i for i, s in enumerate(per_step) if s >= model.threshold_for("en"))
    assert res["flagged_at_message"] == first


def test_handwritten_grooming_conversation_is_flagged_with_evidence(model):
    res = model.score_conversation(conversation(GROOMING))
    assert res["scanned"] is True and res["flagged"] is True
    assert res["score"] >= model.threshold_for(res["language"])
    assert 2 <= res["flagged_at_message"] < len(GROOMING)
    found = {(e["message_index"], e["pattern"]) for e in res["evidence"]}
    assert len(found & GROOMING_EXPECTED) >= 5, sorted(found)
    assert {(8, "secrecy"), (10, "private_channel"), (14, "meeting")} <= found
    assert len(found - GROOMING_EXPECTED) <= 2  # few patterns claimed on the wrong messages
    for e in res["evidence"]:  # pattern names and indices only, never text
        assert set(e) == {"pattern", "message_index", "score"}
        assert e["pattern"] in model.pattern_names and 0 <= e["message_index"] < len(GROOMING)
    assert "secret" not in json.dumps(res)


def test_message_order_does_not_matter(model):
    conv = conversation(GROOMING)
    shuffled = conv[:]
    random.Random(3).shuffle(shuffled)
    assert model.score_conversation(shuffled) == model.score_conversation(conv)


@pytest.mark.parametrize("name", sorted(HARD_NEGATIVES))
def test_hard_negatives_stay_unflagged(model, name):
    res = model.score_conversation(conversation(HARD_NEGATIVES[name], cid=name))
    assert res["scanned"] is True
    assert res["flagged"] is False, f"{name} flagged with score {res['score']:.3f}"
    assert res["flagged_at_message"] is None and res["evidence"] == []


def test_patterns_per_message(model):
    probs = model.patterns(conversation(GROOMING))
    assert len(probs) == len(GROOMING)
    assert set(probs[0]) == set(model.pattern_names)
    assert max(probs[10], key=probs[10].get) == "private_channel"
    assert max(probs[0].values()) < 0.5  # "hey there" shows no pattern


def test_conversation_without_minor_is_not_scanned(model):
    res = model.score_conversation(conversation(GROOMING, minor=False, cid="adults"))
    assert res == {"conversation_id": "adults", "scanned": False, "score": None, "flagged": False,
                   "flagged_at_message": None, "evidence": [], "language": None, "language_supported": None}


# ------------------------------------------------------------------ numpy window model (streaming)
def _random_windows(model, n, seed):
    """Prepared windows with every padding length, all speaker ids, random vectors."""
    rng = np.random.default_rng(seed)
    W, D = model.window, model._dim
    v = rng.normal(0, 1, (n, W, D)).astype(np.float32)
    s = rng.integers(1, 4, (n, W)).astype(np.int32)
    m = np.ones((n, W), np.float32)
    for i in range(n):
        pad = i % (W + 1)
        v[i, :pad], s[i, :pad], m[i, :pad] = 0.0, 0, 0.0
    return v, s, m


def test_numpy_window_model_equals_keras(model):
    """The numpy forward pass (weights read from the loaded model file) gives the Keras window
    model's risk and patterns within 1e-5, for one window and for many."""
    assert model.numpy_window, "the reference model's window model must run in numpy"
    for n, seed in ((1, 0), (3, 1), (50, 2)):
        v, s, m = _random_windows(model, n, seed)
        risk_tf, pats_tf = model.score_encoded(v, s, m, engine="tf")
        risk_np, pats_np = model.score_encoded(v, s, m, engine="numpy")
        assert risk_np.shape == risk_tf.shape == (n,) and pats_np.shape == pats_tf.shape
        np.testing.assert_allclose(risk_np, risk_tf, atol=1e-5, rtol=0)
        np.testing.assert_allclose(pats_np, pats_tf, atol=1e-5, rtol=0)
    # real message vectors, the streaming call (auto engine: numpy for a few windows)
    conv = conversation(GROOMING)
    vecs = model.encode([m["text"] for m in conv])
    senders = [m["sender"] for m in conv]
    windows = [(vecs[max(0, i - model.window + 1):i + 1], senders[max(0, i - model.window + 1):i + 1])
               for i in range(len(conv))]
    for w in windows:
        r_auto, p_auto = model.score_encoded_windows([w])
        r_tf, p_tf = model.score_encoded_windows([w], engine="tf")
        np.testing.assert_allclose(r_auto, r_tf, atol=1e-5, rtol=0)
        np.testing.assert_allclose(p_auto, p_tf, atol=1e-5, rtol=0)
    r_np, p_np = model.score_encoded_windows(windows, engine="numpy")
    r_replay, p_replay = model._replay(conv)  # the batched replay path (TensorFlow)
    np.testing.assert_allclose(r_np, r_replay, atol=1e-5, rtol=0)
    np.testing.assert_allclose(p_np, p_replay, atol=1e-5, rtol=0)


def test_numpy_window_model_reads_the_loaded_weights(model):
    """Changing a weight of the loaded Keras model changes the numpy model built from it: the
    numbers come from the model file, not from a copy."""
    window_model = model.keras_model.get_layer("window_model")
    layer = window_model.get_layer("risk_logit")
    saved = layer.get_weights()
    try:
        layer.set_weights([saved[0] * 0.5, saved[1] + 0.3])
        changed = NumpyWindowModel.from_keras(window_model, model.window, reference=None)
        v, s, m = _random_windows(model, 5, 3)
        out = window_model({"vectors": v, "speakers": s, "mask": m}, training=False)
        np.testing.assert_allclose(changed(v, s, m)[0], np.asarray(out["risk"]).reshape(-1), atol=1e-5, rtol=0)
        assert np.abs(changed(v, s, m)[0] - model._np_window(v, s, m)[0]).max() > 1e-3
    finally:
        layer.set_weights(saved)


def test_numpy_window_model_falls_back_to_tensorflow(model):
    # another architecture: no numpy implementation
    assert NumpyWindowModel.from_keras(model.keras_model.get_layer("message_encoder"), model.window) is None
    # a numpy pass that disagrees with the Keras one on the load-time check is not used
    window_model = model.keras_model.get_layer("window_model")

    def off_by_a_bit(v, s, m):
        risk, pats = model._tf_window(v, s, m)
        return risk + 1e-3, pats

    assert NumpyWindowModel.from_keras(window_model, model.window, reference=model._tf_window) is not None
    assert NumpyWindowModel.from_keras(window_model, model.window, reference=off_by_a_bit) is None
    # a model without it scores with TensorFlow, and refuses engine="numpy"
    v, s, m = _random_windows(model, 2, 4)
    saved = model._np_window
    try:
        model._np_window = None
        assert not model.numpy_window
        np.testing.assert_allclose(model.score_encoded(v, s, m, engine="auto")[0],
                                   model.score_encoded(v, s, m, engine="tf")[0], atol=0, rtol=0)
        with pytest.raises(ModelError):
            model.score_encoded(v, s, m, engine="numpy")
    finally:
        model._np_window = saved
    with pytest.raises(ValueError):
        model.score_encoded(v, s, m, engine="torch")


# ------------------------------------------------------------------ CLI
def _jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))


def test_cli_scores_one_line_per_conversation_and_reports_bad_lines(tmp_path, capsys):
    g = conversation(GROOMING, cid="conv-g")
    h = conversation(HARD_NEGATIVES["grandma_call"], cid="conv-h")
    a = conversation(HARD_NEGATIVES["mall"], cid="conv-a", minor=False)
    rows = g + h + a
    random.Random(1).shuffle(rows)  # any order
    bad = ["{this is not json TOPSECRETWORD", json.dumps({"conversation_id": "conv-g", "sender": "x"}),
           json.dumps({**g[0], "sent_at": "yesterday TOPSECRETWORD"}), json.dumps(["a", "list"])]
    rows[3:3] = bad  # lines 4-7
    _jsonl(tmp_path / "in.jsonl", rows)
    rc = main(["grooming", "score", str(tmp_path / "in.jsonl")])
    out, err = capsys.readouterr()
    assert rc == 1
    lines = [json.loads(x) for x in out.splitlines()]
    by_id = {x["conversation_id"]: x for x in lines}
    assert len(lines) == 3 and set(by_id) == {"conv-g", "conv-h", "conv-a"}
    assert by_id["conv-g"]["flagged"] is True and by_id["conv-g"]["evidence"]
    assert by_id["conv-h"]["flagged"] is False
    assert by_id["conv-a"]["scanned"] is False and by_id["conv-a"]["flagged"] is False
    for x in lines:
        assert {"conversation_id", "score", "flagged", "flagged_at_message", "evidence"} <= set(x)
    errors = [e for e in err.splitlines() if e.startswith("error:")]
    assert [re.match(r"error: line (\d+):", e).group(1) for e in errors] == ["4", "5", "6", "7"]
    assert "TOPSECRETWORD" not in err and "TOPSECRETWORD" not in out


def test_cli_clean_input_threshold_and_missing_model(tmp_path, capsys):
    _jsonl(tmp_path / "in.jsonl", conversation(HARD_NEGATIVES["gamers"], cid="x"))
    assert main(["grooming", "score", str(tmp_path / "in.jsonl"), "--threshold", "0.0"]) == 0
    out, _ = capsys.readouterr()
    (line,) = out.splitlines()
    assert json.loads(line)["flagged"] is True and json.loads(line)["flagged_at_message"] == 0
    assert main(["grooming", "score", str(tmp_path / "in.jsonl"), "--model", str(tmp_path / "none")]) == 1
    _, err = capsys.readouterr()
    assert err.startswith("error:") and len(err.strip().splitlines()) == 1
    assert main(["grooming", "score", str(tmp_path / "missing.jsonl")]) == 1


def test_cli_models_evaluate_on_corpus_dir(tmp_path, capsys):
    corpus.write_corpus(tmp_path, n=20, seed=4, n_eval=30)
    assert main(["models", "evaluate", "--grooming", "--data", str(tmp_path), "--out", str(tmp_path / "plots")]) == 0
    out, _ = capsys.readouterr()
    (line,) = out.splitlines()
    res = json.loads(line)
    for key in ("precision", "recall", "f0_5", "latency_messages_until_flag", "ece", "threshold"):
        assert key in res
    assert res["conversations"] == 30 and res["tp"] + res["fn"] > 0
    assert main(["models", "evaluate"]) == 2


def test_cli_models_train_without_the_training_tools_says_where_they_are(tmp_path):
    """From an installed package (no training/ on the path) `models train` and `models evaluate`
    exit with one line pointing at the source tree, not a traceback."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for argv in (["models", "train", "--grooming"], ["models", "evaluate", "--classifier"]):
        out = subprocess.run([sys.executable, "-m", "csadetect.cli.models", *argv], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 1 and out.stdout == ""
        (line,) = out.stderr.strip().splitlines()
        assert line.startswith("error: training.") and "python -m training.<tool> --help" in line
