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
    nl = summary["by_language"]["nl"]  # the ECE's spread at this size: its bootstrap interval, a calibrated model's p95
    lo, hi = nl["ece_interval_95"]
    assert 0 <= lo <= hi <= 1 and 0 <= nl["ece_calibrated_p95"] <= 1
    assert f"{nl['ece']:.3f} ({lo:.3f}-{hi:.3f}; {nl['ece_calibrated_p95']:.3f})" in err
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


@pytest.mark.parametrize("code", ("en",) + tuple(OTHER))
def test_written_calibration_split_shares_no_wording_with_training_or_evaluation(code):
    """Issue 17's eleventh grooming round (``written_calibration``, training.grooming_lang.calib_*; not
    used by the shipped model): the training and evaluation splits are the same texts with it, the
    calibration split differs, and no calibration-only line, family or slot value is a training or an
    evaluation one (extra phrasings included), repeats, or hits the blocklist."""
    import importlib

    calib = importlib.import_module(f"training.grooming_lang.calib_{code}")
    lang = corpus.language(code, extra_phrasings=2)
    known = {p.lower().lstrip("!") for name in ("groomer", "child_reply") for bank in getattr(lang, name).values()
             for split in ("train", "eval") for p in bank[split]}
    known |= {p.lower().lstrip("!") for split in ("train", "eval") for p in lang.chitchat[split]}
    known |= {p.lower().lstrip("!") for f in lang.families for d in (f.lines_a, f.lines_b)
              for split in ("train", "eval") for p in d.get(split, [])}
    lines = [s for bank in (*calib.GROOMER.values(), *calib.CHILD_REPLY.values(), calib.CHITCHAT) for s in bank]
    lines += [s for fams in (calib.FAMILIES, calib.CALIBRATION_ONLY_FAMILIES) for d in fams.values()
              for role in ("a", "b") for s in d[role]]
    assert len(lines) > 300
    assert not {s.lower().lstrip("!") for s in lines} & known
    assert len({s.lower().lstrip("!") for s in lines}) == len(lines)
    assert not [s for s in lines if _BLOCK_RE.search(s)]
    for slot, values in calib.SLOTS.items():
        if slot != "age":
            assert not set(values) & set(lang.slots[slot]["train"] + lang.slots[slot]["eval"]), (code, slot)
    assert not set(calib.CALIBRATION_ONLY_FAMILIES) & {f.name for f in lang.families}

    def texts(split, **kw):
        return [corpus.conversation_text(c) for c in corpus.generate(60, seed=3, split=split, language_code=code, **kw)]

    for split in ("train", "eval"):
        assert texts(split) == texts(split, written_calibration=True)
    written = corpus.generate(80, seed=3, split="calibration", language_code=code, written_calibration=True)
    assert [corpus.conversation_text(c) for c in written] != texts("calibration")
    assert {c.family for c in written} & set(calib.CALIBRATION_ONLY_FAMILIES)
    assert not {c.family for c in written} & set(lang.eval_only_families)
    with pytest.raises(ValueError, match="choose one"):
        corpus.generate(2, split="calibration", language_code=code, far_calibration=True, written_calibration=True)


def test_an_unsupported_decision_is_re_made_so_a_decoy_opening_hides_nothing(model):
    assert not langid.redecide_due(10, langid.Language("it", False, 0.9))
    it_decided = langid.Language("it", False, 0.9)
    assert [s for s in range(1, 40) if langid.redecide_due(s, it_decided)] == [15, 20, 25, 30, 35]
    assert not any(langid.redecide_due(s, langid.Language("nl", True, 0.9)) for s in range(1, 40))
    for code in OTHER:
        msgs = conversation(ITALIAN + GROOMING[code])
        langs = model.languages_per_message([m["text"] for m in msgs])
        switch = next(k for k, lg in enumerate(langs) if lg.supported and k >= langid.DECIDE_AFTER)
        assert {lg.code for lg in langs[langid.DECIDE_AFTER - 1:switch]} == {"it"} and langs[-1].code == code
        assert (switch + 1 - langid.DECIDE_AFTER) % langid.REDECIDE_EVERY == 0
        result = model.score_conversation(msgs)
        assert result["flagged"] and result["language"] == code and result["flagged_at_message"] >= switch
    italian = model.score_conversation(conversation(ITALIAN * 4))
    assert not italian["flagged"] and italian["language_supported"] is False
