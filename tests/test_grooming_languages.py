"""Grooming in several languages (issue 17, items 5-7): the Dutch, German and French corpora
(training/grooming_lang/), language detection per conversation (csadetect/models/language.py),
unsupported languages (never scored as English), the latency-weighted F1 of Vogt et al. (2021)
and per-language evaluation (csadetect/models/grooming.py, `models evaluate --grooming`).

Every conversation here is handwritten or generated and never sexual."""
from __future__ import annotations

import codecs
import itertools
import json
import math
import re
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from csadetect.cli.models import main
from csadetect.models import language as langid
from csadetect.models.grooming import (GroomingModel, latency_p, latency_penalty, latency_weighted_f1,
                                       evaluate)
from training import grooming_corpus as corpus

# ROT13 so this file does not spell them out: explicit terms in English, Dutch, German and French.
_BLOCKLIST = [codecs.decode(w, "rot13") for w in (
    "frk", "ahqr", "anxrq", "haqerff", "travgny", "jrnevat", "xvff",  # en
    "frxf", "annxg", "oybbg", "mbra", "hvgxyrr",  # nl
    "anpxg", "xüff", "nhfmvru",  # de
    "frkr", "qéfunovyy", "rzoenff", "gbhgr ahr",  # fr
)]
_BLOCK_RE = re.compile(r"\b(" + "|".join(map(re.escape, _BLOCKLIST)) + r")", re.IGNORECASE)
OTHER = ("nl", "de", "fr")
HARD_FAMILIES_REQUIRED = {"parent_child", "relative_gift", "school_peers", "tutor_teacher", "coach", "peers_gaming",
                          "adults_dating"}


def conversation(turns, minor=True, cid="c1", start=datetime(2025, 5, 1, 16, 0, tzinfo=timezone.utc)):
    return [{"conversation_id": cid, "sender": s, "sent_at": (start + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
             "text": t, "participants_minor": minor} for i, (s, t) in enumerate(turns)]


# Handwritten risk-pattern conversations (never sexual), one per language.
GROOMING = {
    "nl": [("a", "hoi, leuk je te spreken"), ("k", "hoi"), ("a", "hoe oud ben je eigenlijk?"), ("k", "12"),
           ("a", "je bent echt volwassen voor je leeftijd"), ("k", "haha dankje"),
           ("a", "zijn je ouders thuis of ben je alleen?"), ("k", "alleen"),
           ("a", "vertel niemand over ons, het is ons geheimpje"), ("a", "voeg me toe op snapchat, dat is privé"),
           ("a", "ik kan een cadeaubon voor je kopen"), ("a", "stuur eens een selfie"),
           ("a", "zullen we zaterdag afspreken bij het station? kom alleen")],
    "de": [("a", "hey, schön dass du schreibst"), ("k", "hi"), ("a", "wie alt bist du eigentlich?"), ("k", "12"),
           ("a", "du bist echt reif für dein alter"), ("k", "haha danke"),
           ("a", "sind deine eltern zuhause oder bist du allein?"), ("k", "allein"),
           ("a", "erzähl keinem von uns, das ist unser geheimnis"), ("a", "adde mich auf snapchat, da ist es privater"),
           ("a", "ich kann dir einen gutschein kaufen"), ("a", "schick mal ein selfie"),
           ("a", "lass uns samstag am bahnhof treffen, komm allein")],
    "fr": [("a", "salut, trop cool de te parler"), ("k", "slt"), ("a", "t'as quel âge en fait ?"), ("k", "12"),
           ("a", "t'es super mature pour ton âge"), ("k", "mdr merci"),
           ("a", "tes parents sont là ou t'es toute seule ?"), ("k", "seule"),
           ("a", "dis à personne qu'on se parle, c'est notre secret"), ("a", "ajoute-moi sur snapchat, c'est plus privé"),
           ("a", "je peux t'acheter une carte cadeau"), ("a", "envoie un selfie"),
           ("a", "on se retrouve samedi à la gare ? viens seule")],
}
# Handwritten hard negatives that share the vocabulary (family, school, coaching, gaming, dating adults).
HARD_NEGATIVES = {
    "nl": [("mam", "zet je camera aan, oma wil je even zien"), ("kind", "oke mam"),
           ("mam", "ben je alleen thuis? ik ben er om 5 uur"), ("kind", "ja ben thuis"),
           ("mam", "zeg niks tegen je zus over haar cadeautje"), ("kind", "ik zeg niks"),
           ("mam", "ik haal je om half 4 op van school"), ("kind", "oke tot zo")],
    "de": [("trainer", "training ist auf samstag verschoben, treffpunkt um 3 am platz"), ("kind", "ok trainer"),
           ("trainer", "du hast super gespielt, du bist ein naturtalent"), ("kind", "danke coach"),
           ("trainer", "schick ein mannschaftsfoto in die gruppe"), ("kind", "mach ich"),
           ("trainer", "sag deinen eltern das turnier ist sonntag")],
    "fr": [("p1", "gg c'était serré"), ("p2", "mdr ouais"), ("p1", "t'as quel âge ? moi j'ai 12 ans"),
           ("p2", "moi aussi 12"), ("p1", "ajoute-moi sur discord on joue plus tard"), ("p2", "ok demande envoyée"),
           ("p1", "mon micro marche pas"), ("p2", "pas grave")],
}
# A benign chat in a language the model does not support (Italian).
ITALIAN = [("a", "ciao, come stai oggi?"), ("b", "bene grazie, e tu?"), ("a", "tutto bene, hai finito i compiti di matematica?"),
           ("b", "quasi, mi manca solo un esercizio"), ("a", "domani abbiamo la verifica di storia"),
           ("b", "lo so, che ansia"), ("a", "ci vediamo a scuola allora"), ("b", "va bene, a domani")]


@pytest.fixture(scope="module")
def model():
    return GroomingModel.load()


# ------------------------------------------------------------------ corpora
@pytest.fixture(scope="module")
def splits():
    return corpus.generate_splits(120, seed=1, languages=corpus.LANGUAGE_CODES)


def test_each_language_has_its_own_banks_and_hard_negative_families():
    en = corpus.LANGUAGES["en"]
    en_lines = {t for bank in en.groomer.values() for lst in bank.values() for t in lst}
    for code in OTHER:
        lang = corpus.LANGUAGES[code]
        assert set(lang.groomer) == set(corpus.PATTERNS) == set(lang.child_reply)
        lines = {t for bank in lang.groomer.values() for lst in bank.values() for t in lst}
        assert len(lines) >= 150 and not lines & en_lines, code
        families = {f.name for f in lang.families}
        assert HARD_FAMILIES_REQUIRED <= families, (code, HARD_FAMILIES_REQUIRED - families)
        for f in lang.families:
            if f.name in lang.eval_only_families:
                assert f.splits == ("eval",) and not f.lines_a["train"]
            else:
                assert len(f.lines_a["train"]) >= 4, (code, f.name)


def test_splits_are_disjoint_per_language_and_hold_out_wording(splits):
    texts = {k: {corpus.conversation_text(c) for c in v} for k, v in splits.items()}
    for x, y in itertools.combinations(texts, 2):
        assert not texts[x] & texts[y]
    for code in corpus.LANGUAGE_CODES:
        lang = corpus.LANGUAGES[code]
        train = [c for c in splits["train"] if c.language == code]
        evals = [c for c in splits["eval"] if c.language == code]
        assert train and evals
        assert set(lang.eval_only_families).isdisjoint({c.family for c in train})
        assert set(lang.eval_only_families) & {c.family for c in evals}
        held = {p.lower() for bank in lang.groomer.values() for p in bank["eval"] if "{" not in p}
        train_msgs = {m["text"].lower() for c in train for m in c.messages}
        assert held and not held & train_msgs, code


def test_risk_patterns_start_early_so_a_flag_within_ten_messages_is_possible(splits):
    """Issue 17 asks for a median flag within the first 10 messages: the corpus must put the first
    risk pattern in the first few messages and the first window that counts as grooming (two
    pattern messages, one strong: grooming_model.window_label) before message 10, in every
    language and split (with 2.0's pacing they came at median message 5-6 and 11)."""
    from training.train_grooming import window_label

    for split in ("train", "eval"):
        for code in corpus.LANGUAGE_CODES:
            convs = [c for c in splits[split] if c.language == code and c.label == "grooming"]
            pats = [[m["pattern"] for m in c.messages] for c in convs]
            first = [next(i for i, p in enumerate(ps) if p) for ps in pats]
            positive = [next(i for i in range(len(ps)) if window_label(ps[max(0, i - 19):i + 1])[0] == 1)
                        for ps in pats]
            assert len(convs) >= 10 and np.median(first) <= 3, (split, code, np.median(first))
            assert np.median(positive) <= 8, (split, code, np.median(positive))


def test_corpora_contain_no_explicit_terms(splits):
    strings = []
    for lang in corpus.LANGUAGES.values():
        for bank in (lang.groomer, lang.child_reply, {"chitchat": lang.chitchat}, lang.slots):
            strings += [s for entry in bank.values() for lst in entry.values() for s in lst]
        strings += [s for f in lang.families for d in (f.lines_a, f.lines_b) for lst in d.values() for s in lst]
    strings += [m["text"] for convs in splits.values() for c in convs for m in c.messages]
    bad = sorted({s for s in strings if _BLOCK_RE.search(s)})
    assert not bad, f"{len(bad)} corpus strings hit the blocklist"
    assert _BLOCK_RE.search("x " + _BLOCKLIST[8] + " y")  # the check itself works (a Dutch term)


def test_language_detection_on_each_corpus(splits):
    """Each corpus reads as its own language: >= 99% of its evaluation conversations."""
    for code in corpus.LANGUAGE_CODES:
        convs = [c for c in splits["eval"] if c.language == code]
        right = sum(langid.detect([m["text"] for m in c.messages], corpus.LANGUAGE_CODES).code == code for c in convs)
        assert right >= 0.99 * len(convs), (code, right, len(convs))


# ------------------------------------------------------------------ language detection
def test_unsupported_language_is_detected_and_short_text_is_provisional():
    it = langid.detect([t for _, t in ITALIAN], ("en", "nl", "de", "fr"))
    assert it.code == "it" and not it.supported and it.confidence >= langid.UNSURE_BELOW
    short = langid.detect(["lol", "ok"], ("en", "nl", "de", "fr"))  # too little text to trust an unsupported guess
    assert short.supported and short.code in ("en", "nl", "de", "fr")
    assert langid.detect(["hoi, hoe gaat het met je?"], ("en", "nl")).code == "nl"
    # only the first DECIDE_AFTER messages count
    late = ["hello there how are you doing today"] * langid.DECIDE_AFTER + [t for _, t in ITALIAN] * 3
    assert langid.detect(late, ("en",)) == langid.detect(late[:langid.DECIDE_AFTER], ("en",))


# ------------------------------------------------------------------ latency-weighted F1
def test_latency_weighted_f1_follows_vogt_et_al():
    p = latency_p([5, 11, 21])  # median 11 -> p = ln 3 / 10
    assert p == pytest.approx(math.log(3) / 10)
    assert latency_penalty(1, p) == pytest.approx(0.0)
    assert latency_penalty(11, p) == pytest.approx(0.5)  # the penalty is 0.5 at the median length
    assert latency_penalty(1000, p) == pytest.approx(1.0, abs=1e-6)
    lw, speed = latency_weighted_f1(0.8, [1, 1, 11], p)  # median penalty of the true positives: 0
    assert speed == pytest.approx(1.0) and lw == pytest.approx(0.8)
    lw, speed = latency_weighted_f1(0.8, [11, 11, 1], p)
    assert speed == pytest.approx(0.5) and lw == pytest.approx(0.4)
    assert latency_weighted_f1(0.8, [], p) == (0.0, 0.0)


# ------------------------------------------------------------------ the model, per language
def test_model_supports_four_languages_with_own_thresholds(model):
    assert set(model.supported_languages) >= {"en", "nl", "de", "fr"}
    for code in ("nl", "de", "fr"):
        assert 0 < model.threshold_for(code) < 1
        assert model.threshold_for(code, 0.42) == 0.42
    assert model.threshold_for("it") == model.threshold


@pytest.mark.parametrize("code", OTHER)
def test_handwritten_grooming_is_flagged_and_hard_negative_is_not(model, code):
    g = model.score_conversation(conversation(GROOMING[code]))
    assert g["language"] == code and g["language_supported"] is True
    assert g["flagged"], (code, g["score"], model.threshold_for(code))
    assert g["evidence"] and g["flagged_at_message"] < len(GROOMING[code])
    h = model.score_conversation(conversation(HARD_NEGATIVES[code]))
    assert h["language"] == code and not h["flagged"], (code, h["score"])


def test_unsupported_language_is_not_scored_as_english(model):
    msgs = conversation(ITALIAN)
    skipped = model.score_conversation(msgs)
    assert skipped["language"] == "it" and skipped["language_supported"] is False
    assert skipped["scanned"] and not skipped["flagged"] and skipped["evidence"] == []
    # only the first, short messages were scored (a supported language provisionally), none after
    # the decision: once the text says Italian, nothing is scored as English
    langs = model.languages_per_message([t for _, t in ITALIAN])
    k = sum(lg.supported for lg in langs)  # the provisional prefix
    assert 0 < k < 4 and all(lg.supported for lg in langs[:k]) and not any(lg.supported for lg in langs[k:])
    assert skipped["score"] == pytest.approx(model.score_conversation(msgs[:k])["score"], abs=1e-6)
    scored = model.score_conversation(msgs, unsupported="score")
    assert scored["language"] == "it" and scored["language_supported"] is False
    assert scored["score"] is not None and not scored["flagged"]
    with pytest.raises(ValueError):
        model.score_conversation(msgs, unsupported="english")


def test_evaluate_reports_per_language_and_counts_unsupported(model):
    items = [(conversation(GROOMING[c], cid=f"g{c}"), True, "grooming", c) for c in OTHER]
    items += [(conversation(HARD_NEGATIVES[c], cid=f"h{c}"), False, "parent_child", c) for c in OTHER]
    items += [(conversation(ITALIAN, cid="it"), False, "chitchat", "it")]
    m = evaluate(model, items)
    assert set(m["by_language"]) == {"nl", "de", "fr", "it"}
    assert m["unsupported_language"] == 1 and m["unsupported_by_language"] == {"it": 1}
    assert m["by_language"]["it"]["supported"] is False and m["by_language"]["nl"]["supported"] is True
    for code in OTHER:
        lang = m["by_language"][code]
        assert lang["tp"] == 1 and lang["fp"] == 0 and lang["precision_hard_negatives"] == 1.0
        assert 0 < lang["latency_weighted_f1"] <= lang["f1"] == 1.0
        assert lang["latency_messages_until_flag"]["n"] == 1
    assert m["tp"] == 3 and m["precision"] == 1.0


def test_cli_evaluate_writes_a_table_and_reliability_plots(tmp_path, capsys):
    data = tmp_path / "corpus"
    assert corpus.main(["--out", str(data), "--n", "24", "--seed", "5", "--languages", "nl,fr"]) == 0
    plots = tmp_path / "plots"
    assert main(["models", "evaluate", "--grooming", "--data", str(data), "--out", str(plots)]) == 0
    out, err = capsys.readouterr()
    summary = json.loads(out)
    assert set(summary["by_language"]) == {"nl", "fr"}
    assert {"latency_weighted_f1", "ece", "precision_hard_negatives", "median_until_flag"} <= set(summary["by_language"]["nl"])
    assert "| language |" in err and "| nl |" in err
    for code in ("nl", "fr"):
        png = plots / f"reliability-grooming-{code}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert corpus.main(["--out", str(data), "--n", "2", "--languages", "xx"]) == 2


@pytest.mark.parametrize("level, codes", [(1, OTHER), (2, ("en",) + tuple(OTHER))])
def test_extra_phrasings_only_add_training_wording(level, codes):
    """Issue 17's fifth (``extra_phrasings=1``, training.grooming_lang.extra_*) and ninth
    (``extra_phrasings=2``, extra2_*, every language) rounds; not used by the shipped model: the
    default corpus is unchanged, each level's phrasings come after the banks' "train" phrasings of
    the level below (so the calibration split's reserved fourths stay), the evaluation split is
    identical, and no extra line is an evaluation phrasing, an earlier line or hits the blocklist."""
    for code in codes:
        base, more = corpus.language(code, extra_phrasings=level - 1), corpus.language(code, extra_phrasings=level)
        assert corpus.LANGUAGES[code] is corpus.language(code)
        for name in ("groomer", "child_reply"):
            for k, bank in getattr(base, name).items():
                extended = getattr(more, name)[k]
                assert extended["eval"] == bank["eval"]
                assert extended["train"][:len(bank["train"])] == bank["train"]
                assert len(extended["train"]) > len(bank["train"]), (code, name, k)
        held = {p.lower().lstrip("!") for bank in (*more.groomer.values(), *more.child_reply.values(), more.chitchat)
                for p in bank["eval"]}
        held |= {p.lower().lstrip("!") for f in more.families for d in (f.lines_a, f.lines_b) for p in d.get("eval", [])}
        pairs = [(getattr(base, n)[k], getattr(more, n)[k]) for n in ("groomer", "child_reply") for k in base.groomer]
        pairs += [(base.chitchat, more.chitchat)]
        pairs += [(d0, d1) for f0, f1 in zip(base.families, more.families)
                  for d0, d1 in ((f0.lines_a, f1.lines_a), (f0.lines_b, f1.lines_b))]
        extra = [s for b0, b1 in pairs for s in b1["train"][len(b0["train"]):]]
        assert len(extra) > 300, code
        assert not {s.lower().lstrip("!") for s in extra} & held, code
        earlier = {p.lower().lstrip("!") for b0, _ in pairs for p in b0["train"]}
        assert not {s.lower().lstrip("!") for s in extra} & earlier, code
        assert len({s.lower().lstrip("!") for s in extra}) == len(extra), code
        assert not [s for s in extra if _BLOCK_RE.search(s)], code
        evals = [corpus.conversation_text(c) for c in corpus.generate(60, seed=3, split="eval", language_code=code)]
        assert evals == [corpus.conversation_text(c) for c in
                         corpus.generate(60, seed=3, split="eval", language_code=code, extra_phrasings=level)]
        trains = [corpus.conversation_text(c) for c in corpus.generate(60, seed=3, split="train", language_code=code)]
        assert trains != [corpus.conversation_text(c) for c in
                          corpus.generate(60, seed=3, split="train", language_code=code, extra_phrasings=level)]
    assert corpus.language("en", extra_phrasings=1) is corpus.LANGUAGES["en"]
    with pytest.raises(ValueError, match="0, 1 or 2"):
        corpus.language("nl", extra_phrasings=3)


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
                                      "balanced_replies": False}
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
