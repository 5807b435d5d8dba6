"""Issue 17's grooming training options and tools (its fifth to tenth grooming rounds; none is in the
shipped recipe): the window labels and loss weights of ``training/grooming_model.py``, the corpus
changes of ``training/grooming_augment.py`` (novel lines, benign and balanced replies), the far
calibration split, ``train_grooming``'s command line and ``grooming_ensemble_check``. The corpora,
language detection and per-language evaluation are in ``tests/test_grooming_languages.py``.

Every conversation here is generated and never sexual."""
from __future__ import annotations

import json

import numpy as np
import pytest

from csadetect.cli.models import main
from training import grooming_corpus as corpus


def test_single_pattern_weight_makes_one_pattern_windows_negatives():
    """train_grooming --single-pattern-weight (issue 17, ninth round; 0, the default, is 2.2's recipe):
    a grooming window with a pattern but not enough for a positive becomes a negative of that weight;
    positives and pattern-free windows are unchanged."""
    from training.train_grooming import make_windows, window_label

    assert window_label(["age_check", None]) == (0.0, 0.0)
    assert window_label(["age_check", None], single_weight=0.5) == (0.0, 0.5)
    assert window_label(["meeting"], single_weight=0.5) == (0.0, 0.5)
    assert window_label(["age_check", "secrecy"], single_weight=0.5) == (1.0, 1.0)
    assert window_label([None, None], single_weight=0.5) == (0.0, 1.0)
    convs = corpus.generate(30, seed=4, split="train", language_code="de")
    row_of = {t: i for i, t in enumerate(sorted({m["text"] for c in convs for m in c.messages}))}
    _, _, _, y0, w0, _ = make_windows(convs, row_of)
    _, _, _, y1, w1, _ = make_windows(convs, row_of, single_weight=0.5)
    assert np.array_equal(y0, y1)
    moved = w0 != w1
    assert moved.any() and np.all(w0[moved] == 0.0) and np.all(w1[moved] == 0.5) and not y1[moved].any()


def test_hard_negative_weight_weighs_only_hard_negative_windows():
    """train_grooming --hard-weight (issue 17's fifth round; 1.0, the default, is 2.2's recipe)."""
    from training.train_grooming import make_windows

    convs = corpus.generate(40, seed=5, split="train", language_code="nl")
    row_of = {t: i for i, t in enumerate(sorted({m["text"] for c in convs for m in c.messages}))}
    _, _, _, y1, w1, _ = make_windows(convs, row_of)
    _, _, _, y3, w3, _ = make_windows(convs, row_of, hard_weight=3.0)
    kinds = [("hard" if c.family in corpus.HARD_NEGATIVE_FAMILIES else "grooming" if c.label == "grooming" else "other")
             for c in convs for _ in c.messages]
    kinds = np.asarray(kinds)
    assert (kinds == "hard").any() and (kinds == "other").any() and (kinds == "grooming").any()
    np.testing.assert_array_equal(y1, y3)
    np.testing.assert_array_equal(w3[kinds == "hard"], 3.0)
    np.testing.assert_array_equal(w3[kinds != "hard"], w1[kinds != "hard"])
    np.testing.assert_array_equal(w1[kinds == "hard"], 1.0)


def test_ensemble_check_scores_the_reply_balanced_splits_when_asked():
    """grooming_ensemble_check --balanced-replies (issue 17, ninth round) scores the splits train_grooming
    --balanced-replies scores: the same grooming conversations, benign ones with children's replies."""
    from training.grooming_ensemble_check import scored_splits

    plain_cal, plain_ev = scored_splits(40, seed=2)
    bal_cal, bal_ev = scored_splits(40, seed=2, balanced_replies=True)
    for plain, bal in ((plain_cal, bal_cal), (plain_ev, bal_ev)):
        assert [c.conversation_id for c in plain] == [c.conversation_id for c in bal]
        assert all(c.participants_minor for c in bal)
        changed = [b for p, b in zip(plain, bal) if p.messages != b.messages]
        assert changed and all(c.label == "benign" for c in changed)


def test_ensemble_check_reads_the_corpus_from_the_models_and_refuses_a_mix(monkeypatch, capsys):
    """grooming_ensemble_check takes the corpus each model was trained on from its metadata (nothing to repeat
    by hand, so nothing to get wrong); models trained on different corpora stop it with one line."""
    import training.grooming_ensemble_check as gec
    from csadetect.models.grooming import KIND

    shipped = json.loads((KIND.reference / "metadata.json").read_text())
    assert gec.corpus_of(shipped) == {"n": 2000, "seed": 1, "languages": ("en", "nl", "de", "fr"),
                                      "n_calibration": 500, "extra_phrasings": 0, "far_calibration": False,
                                      "written_calibration": False, "balanced_replies": False}
    ninth = {"training": {**shipped["training"], "extra_phrasings": 2, "balanced_replies": "all"}}
    assert gec.corpus_of(ninth)["extra_phrasings"] == 2 and gec.corpus_of(ninth)["balanced_replies"] is True
    cal, ev = gec.scored_splits(40, seed=2, languages=("nl",), n_calibration=12)
    assert {c.language for c in cal + ev} == {"nl"} and len(cal) <= 12

    class Loaded:  # what GroomingModel.load gives the check before any scoring: its metadata
        def __init__(self, metadata):
            self.metadata = metadata

    by_dir = {"a": Loaded(shipped), "b": Loaded(ninth), "c": Loaded({"version": "x"})}
    monkeypatch.setattr("csadetect.models.grooming.GroomingModel.load", by_dir.__getitem__)
    for dirs, says in ((["a", "b"], "b was trained on another corpus than a: extra_phrasings 2 vs 0"),
                       (["a", "c"], "records no training corpus")):
        with pytest.raises(SystemExit) as stop:
            gec.main(dirs)
        assert stop.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert says in err, err


def test_ensemble_check_refits_per_language_and_averages_logits():
    """training.grooming_ensemble_check (issue 17's fifth round): on logits that separate grooming
    from benign from the third message on, every language's refitted cut flags all grooming at
    message 3 and nothing benign; the mean of two models' logits is their element-wise mean."""
    from training.grooming_ensemble_check import language_rows, mean_logits

    def logits(convs, shift=0.0):
        return [np.asarray([(4.0 if c.label == "grooming" and i >= 2 else -4.0) + shift
                            for i in range(len(c.messages))]) for c in convs]

    cal = [c for code in ("en", "nl") for c in corpus.generate(80, seed=2, split="calibration", language_code=code)
           if c.participants_minor]
    ev = [c for code in ("en", "nl") for c in corpus.generate(80, seed=2, split="eval", language_code=code)
          if c.participants_minor]
    rows = language_rows(cal, logits(cal), ev, logits(ev))
    assert set(rows) == {"en", "nl"}
    for r in rows.values():
        assert r["precision"] == r["recall"] == r["precision_hard"] == 1.0
        assert r["median_flag"] == 3.0 and r["cal_median_flag"] == 3.0
    z = mean_logits([logits(ev, 1.0), logits(ev, -3.0)])
    np.testing.assert_allclose(z[0], logits(ev, -1.0)[0])


@pytest.mark.parametrize("flag, value, message", [
    *(("--hard-weight", v, "--hard-weight must be > 0") for v in ("0", "-1", "nan")),
    *(("--single-pattern-weight", v, "--single-pattern-weight must be a finite weight >= 0")
      for v in ("-1", "nan", "inf")),
])
def test_loss_weights_out_of_range_stop_with_one_line(flag, value, message, capsys):
    """train_grooming --hard-weight (not > 0) and --single-pattern-weight (negative, NaN or infinite):
    a weight out of range stops at once with one line."""
    from training.train_grooming import main as train_main

    with pytest.raises(SystemExit) as stop:
        train_main(["--out", "/nonexistent/never-written", flag, value])
    assert stop.value.code == 2
    assert message in capsys.readouterr().err


def _same_but_text(a, b):
    return ([(m["sender"], m["sent_at"], m["pattern"]) for m in a.messages]
            == [(m["sender"], m["sent_at"], m["pattern"]) for m in b.messages]
            and (a.label, a.family, a.language, a.participants_minor)
            == (b.label, b.family, b.language, b.participants_minor))


def test_novel_lines_change_only_pattern_free_messages():
    """train_grooming --novel-lines (issue 17's seventh round): about the share of the messages
    without a risk pattern become a splice of two lines of the same language; risk-pattern
    messages, senders, times and labels stay; the input is not changed; deterministic by seed."""
    from training.grooming_augment import splice_novel_lines

    convs = [c for code in ("nl", "fr") for c in corpus.generate(60, seed=5, split="train", language_code=code)]
    before = [[m["text"] for m in c.messages] for c in convs]
    out = splice_novel_lines(convs, 0.3, seed=1)
    assert [[m["text"] for m in c.messages] for c in convs] == before
    assert out == splice_novel_lines(convs, 0.3, seed=1) and out != splice_novel_lines(convs, 0.3, seed=2)
    free = changed = 0
    words = {code: {w for c in convs if c.language == code for m in c.messages for w in m["text"].split()}
             for code in ("nl", "fr")}
    for a, b in zip(convs, out):
        assert _same_but_text(a, b)
        for m, n in zip(a.messages, b.messages):
            if m["pattern"]:
                assert n["text"] == m["text"]
                continue
            free += 1
            if n["text"] != m["text"]:
                changed += 1
                assert set(n["text"].split()) <= words[a.language]
                assert n["text"].split()[0] == m["text"].split()[0]
    assert 0.2 < changed / free < 0.35
    assert splice_novel_lines(convs, 0.0, seed=1) == convs


def _benign_lines_moved(convs, out, replies):
    """Asserts that only benign conversations' pattern-free lines changed, each into a child's reply of
    its language (``replies``), and nothing else; returns benign messages and changed ones by language."""
    free: dict = {}
    moved: dict = {}
    for a, b in zip(convs, out):
        assert _same_but_text(a, b)
        if a.label == "grooming":
            assert b == a
            continue
        for m, n in zip(a.messages, b.messages):
            free[a.language] = free.get(a.language, 0) + 1
            if n["text"] != m["text"]:
                moved[a.language] = moved.get(a.language, 0) + 1
                assert not m["pattern"] and n["text"] in replies[a.language]
    return free, moved


def test_benign_replies_change_only_benign_conversations():
    """train_grooming --benign-replies (issue 17's seventh round): pattern-free messages of benign
    conversations become children's replies to risk patterns from grooming conversations of the
    same language; grooming conversations stay as they are."""
    from training.grooming_augment import benign_replies, child_replies

    convs = [c for code in ("nl", "de") for c in corpus.generate(80, seed=5, split="train", language_code=code)]
    replies = {code: {n["text"] for c in convs if c.language == code and c.label == "grooming"
                      for m, n in zip(c.messages, c.messages[1:])
                      if m["pattern"] and not n["pattern"] and n["sender"] != m["sender"]} for code in ("nl", "de")}
    assert replies == {code: set(texts) for code, texts in child_replies(convs).items()}
    _, moved = _benign_lines_moved(convs, benign_replies(convs, 0.5, seed=1), replies)
    assert sum(moved.values()) > 50


def test_balanced_replies_make_a_reply_as_likely_in_benign_as_in_grooming_conversations():
    """``models evaluate --grooming --balanced-replies`` and ``train_grooming --balanced-replies``
    (issue 17, eighth round): the benign conversations' pattern-free messages become that list's own
    children's replies at the grooming conversations' rate, per language, so a reply alone tells
    nothing; grooming conversations, labels, senders and times stay; deterministic by seed."""
    from training.grooming_augment import balance_replies, child_replies, reply_share

    convs = [c for code in ("nl", "de") for c in corpus.generate(120, seed=5, split="eval", language_code=code)]
    share = reply_share(convs)
    assert set(share) == {"nl", "de"} and all(0.15 < v < 0.45 for v in share.values())
    replies = child_replies(convs)
    out = balance_replies(convs, seed=1)
    assert out == balance_replies(convs, seed=1) and out != balance_replies(convs, seed=2)
    free, moved = _benign_lines_moved(convs, out, replies)
    for code in share:  # the benign rate follows the grooming one (binomial spread on a few hundred messages)
        assert abs(moved[code] / free[code] - share[code]) < 0.06, (code, moved[code] / free[code], share[code])
    assert sum(moved.values()) > 300


def test_train_with_balanced_replies_records_it_and_reports_the_balanced_split(tmp_path):
    """train_grooming --balanced-replies all: a (tiny) run trains, calibrates and evaluates on
    reply-balanced conversations, records the option in metadata.json and names the split it scored."""
    from training.train_grooming import main as train_main

    out = tmp_path / "m"
    assert train_main(["--out", str(out), "--n", "48", "--languages", "nl", "--epochs", "1",
                       "--checks-per-epoch", "2", "--balanced-replies", "all", "--single-pattern-weight", "0.5"]) == 0
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["training"]["balanced_replies"] == "all"
    assert meta["training"]["single_pattern_weight"] == 0.5  # tried options are recorded when not at their defaults
    assert not {"patience", "hard_negative_weight", "extra_phrasings", "far_calibration"} & set(meta["training"])
    assert json.loads((out / "metrics.json").read_text())["data"].endswith("reply-balanced")


def test_far_calibration_keeps_more_wording_from_training_and_leaves_eval_alone():
    """``generate_splits(..., far_calibration=True)`` / ``train_grooming --far-calibration`` (issue 17,
    eighth round): the calibration split also gets reserved child replies, second-role lines, slot
    values, slang and a family of its own, so fewer of its messages occur in training; the
    evaluation split is the same texts; the default corpus is unchanged."""
    from training.grooming_corpus import CALIBRATION_ONLY_FAMILY, _apart

    assert _apart(["a", "b", "c", "d"], "train", True) == ["a", "b", "c"]
    assert _apart(["a", "b", "c", "d"], "calibration", True) == ["d", "a"]
    assert _apart(["a", "b"], "calibration", True) == ["a", "b"] == _apart(["a", "b"], "train", True)
    assert _apart(["a", "b", "c"], "calibration", False) == ["a", "b", "c"]
    plain = corpus.generate_splits(240, seed=4, languages=("nl", "fr"))
    far = corpus.generate_splits(240, seed=4, languages=("nl", "fr"), far_calibration=True)
    text = corpus.conversation_text
    assert [text(c) for c in far["eval"]] == [text(c) for c in plain["eval"]]
    assert [text(c) for c in corpus.generate(50, seed=4, split="train", language_code="nl")] == \
        [text(c) for c in plain["train"][:50]]
    assert CALIBRATION_ONLY_FAMILY not in {c.family for c in far["train"]}
    assert CALIBRATION_ONLY_FAMILY in {c.family for c in plain["train"]}
    assert CALIBRATION_ONLY_FAMILY in {c.family for c in far["calibration"]}

    def seen_in_training(splits):
        trained = {m["text"] for c in splits["train"] for m in c.messages}
        msgs = [m["text"] for c in splits["calibration"] for m in c.messages]
        return sum(t in trained for t in msgs) / len(msgs)

    assert seen_in_training(far) < 0.7 * seen_in_training(plain)
    assert not {text(c) for c in far["calibration"]} & {text(c) for c in far["train"]}


def test_cli_evaluate_balanced_replies_says_so_and_scores_the_balanced_split(tmp_path, capsys):
    data = tmp_path / "corpus"
    assert corpus.main(["--out", str(data), "--n", "40", "--seed", "5", "--languages", "nl"]) == 0
    assert main(["models", "evaluate", "--grooming", "--data", str(data), "--out", str(tmp_path / "p")]) == 0
    plain = json.loads(capsys.readouterr()[0])
    assert main(["models", "evaluate", "--grooming", "--balanced-replies", "--data", str(data),
                 "--out", str(tmp_path / "p"), "--full"]) == 0
    out, err = capsys.readouterr()
    balanced = json.loads(out)
    assert "reply-balanced" in err and balanced["data"].endswith("reply-balanced")
    assert balanced["conversations"] == plain["conversations"]
    assert (balanced["tp"], balanced["fn"]) == (plain["tp"], plain["fn"])  # grooming conversations untouched


def test_unigram_encoder_has_no_word_bigrams():
    """train_grooming --word-ngrams 1 (issue 17's seventh round): the word vocabulary holds single words only."""
    from training.train_grooming import build_model

    texts = ["ben je alleen thuis", "heb je het huiswerk al af", "kom je ook naar het feestje"]
    *_, tvw1, _ = build_model(texts, word_ngrams=1)
    *_, tvw2, _ = build_model(texts)
    assert not any(" " in t for t in tvw1.get_vocabulary())
    assert any(" " in t for t in tvw2.get_vocabulary())


@pytest.mark.parametrize("flag,value,says", [("--novel-lines", "1.5", "between 0 and 1"),
                                             ("--benign-replies", "-0.1", "between 0 and 1"),
                                             ("--novel-lines", "nan", "between 0 and 1"),
                                             ("--weight-decay", "-1", "must be >= 0"),
                                             ("--weight-decay", "inf", "must be >= 0")])
def test_seventh_round_options_are_checked(flag, value, says, capsys):
    """train_grooming: a share outside [0, 1] or a negative weight decay stops at once with one line."""
    from training.train_grooming import main as train_main

    with pytest.raises(SystemExit) as stop:
        train_main(["--out", "/nonexistent/never-written", flag, value])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert f"{flag} must" in err and says in err


def test_pattern_only_risk_head_reads_the_patterns_alone():
    """train_grooming --risk-input patterns (issue 17's seventh round): the window's dense layer
    reads the pooled pattern probabilities only; the default reads the convolution features too."""
    import training.train_grooming as tg

    texts = ["ben je alleen thuis", "heb je het huiswerk al af", "kom je ook naar het feestje"]
    _, _, both, _, _ = tg.build_model(texts)
    _, _, only, _, _ = tg.build_model(texts, risk_input="patterns")
    k = len(corpus.PATTERNS)
    assert only.get_layer("window_dense").kernel.shape[0] == k
    assert both.get_layer("window_dense").kernel.shape[0] == k + tg.CONV


def test_counts_risk_head_reads_each_patterns_expected_count():
    """train_grooming --risk-input counts (issue 17's tenth round): the window's dense layer also
    reads each pattern's summed probability over the unmasked messages (its expected count, which
    the max cannot give: two flattering lines look like one to a max)."""
    import keras
    import numpy as np

    import training.train_grooming as tg

    texts = ["ben je alleen thuis", "heb je het huiswerk al af", "kom je ook naar het feestje"]
    _, _, counts, _, _ = tg.build_model(texts, risk_input="counts")
    k = len(corpus.PATTERNS)
    assert counts.get_layer("window_dense").kernel.shape[0] == tg.CONV + 2 * k
    probe = keras.Model(counts.inputs, [counts.get_layer("count_patterns").output, counts.output["patterns"]])
    rng = np.random.default_rng(0)
    W, dim = tg.WINDOW, counts.input["vectors"].shape[-1]
    mask = np.ones((2, W), np.float32)
    mask[1, :W - 3] = 0.0  # three messages only
    got, pats = probe({"vectors": rng.normal(0, 1, (2, W, dim)).astype(np.float32),
                       "speakers": rng.integers(1, 3, (2, W)).astype(np.int32), "mask": mask})
    got, pats = np.asarray(got), np.asarray(pats)
    assert np.allclose(got, pats.sum(axis=1), atol=1e-4)
    assert np.allclose(pats[1, :W - 3], 0.0) and got[1].max() <= 3.0 + 1e-4


def test_the_command_lines_defaults_are_the_shipped_recipe():
    """train_grooming's command line with no option asks for ``Recipe()``, the shipped model's recipe (what
    ``make models`` trains), and each recipe option reaches the Recipe."""
    import training.train_grooming as tg

    assert tg.recipe_of(tg.parse_args([])) == tg.Recipe()
    changed = tg.recipe_of(tg.parse_args(["--hard-weight", "3", "--single-pattern-weight", "0.3", "--early-labels",
                                          "--risk-input", "counts", "--lr", "0.002", "--ema", "0.99"]))
    assert (changed.hard_weight, changed.single_weight, changed.early_labels, changed.risk_input, changed.lr,
            changed.ema) == (3.0, 0.3, True, "counts", 0.002, 0.99)
    assert tg.parse_args(["--written-calibration"]).written_calibration is True
    with pytest.raises(SystemExit) as stop:
        tg.parse_args(["--written-calibration", "--far-calibration"])
    assert stop.value.code == 2
