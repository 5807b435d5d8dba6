"""Grooming chats padded with another language (issue 17, not named by it): each message wrapped in
everyday sentences of a language the model does not support, so that the conversation is taken for
that language and never scored. ``csadetect.models.language.without_foreign_runs`` cuts the padding
out of a message (read through ``GroomingModel.readable``) and ``detect``'s sentence vote scores a
conversation whose sentences are in a supported language. The real shipped model and py3langid
throughout; every conversation is handwritten or generated and never sexual."""
from __future__ import annotations

import random

import pytest

from csadetect.models import language as langid
from csadetect.models.grooming import GroomingModel
from csadetect.models.grooming_text import undo_obfuscation
from training import grooming_corpus as corpus
from training import grooming_padding as gp
from tests.test_grooming_languages import GROOMING, ITALIAN, OTHER, conversation

POLISH = gp.FILLER["pl"]
SPANISH = gp.FILLER["es"]


@pytest.fixture(scope="module")
def model():
    return GroomingModel.load()


def _cut(model, text: str) -> str:
    return langid.without_foreign_runs(text, model._known_words, model.supported_languages)


@pytest.mark.parametrize("own", ["dont tell your mum we talk ok", "zijn je ouders thuis of ben je alleen?",
                                 "erzähl keinem von uns, das ist unser geheimnis"])
@pytest.mark.parametrize("form", ["append", "prepend", "wrap", "run-on"])
def test_padding_is_cut_and_the_message_reads_as_its_own_words(model, own, form):
    padded = gp._padded(own, form, POLISH, random.Random(3))
    assert langid.detect([padded], model.supported_languages).supported is False  # the premise: the decoy works
    cut = _cut(model, padded)
    assert own in cut and len(cut.split()) <= len(own.split()) + 1  # a short word of the padding may stay
    assert len(cut) - len(own) <= 4


def test_a_word_two_languages_share_does_not_end_the_run(model):
    assert "film" in model._known_words  # the premise
    padded = "are you home alone Wieczorem oglądaliśmy film z całą rodziną."
    assert _cut(model, padded) == "are you home alone"


@pytest.mark.parametrize("text", [
    *POLISH, " ".join(POLISH[:3]), *(t for _, t in ITALIAN),
    "Je te débloque tous les persos de mario kart, tauras rien à payer",  # French the model half knows
    "photosynthesis assignment tomorrow biology revision chemistry",  # English words it does not know
    "is je mama thuis? ik kon haar nie bereikne",  # Dutch read as Afrikaans in part
    "ok", "",
])
def test_text_in_one_language_comes_back_whole(model, text):
    assert _cut(model, text) == text


def test_nothing_is_cut_without_the_models_words_or_languages(model):
    padded = "dont tell your mum " + " ".join(POLISH[:2])
    assert langid.without_foreign_runs(padded, frozenset(), model.supported_languages) == padded
    assert langid.without_foreign_runs(padded, model._known_words, ()) == padded


def test_the_corpus_reads_the_same(model):
    """Ordinary text is never cut: a sample of every split and language (the whole corpus, 147,496
    distinct messages over three seeds, was checked once: none changed)."""
    known, supported = model._known_words, model.supported_languages
    splits = corpus.generate_splits(80, seed=2, languages=corpus.LANGUAGE_CODES)
    texts = {m["text"] for convs in splits.values() for c in convs for m in c.messages}
    assert len(texts) > 2000
    changed = [t for t in texts if langid.without_foreign_runs(undo_obfuscation(t, known), known, supported)
               != undo_obfuscation(t, known)]
    assert changed == []


def test_three_sentences_in_a_supported_language_make_it_the_conversations():
    english = ["are your parents home tonight?", "dont tell anyone we talk ok.", "add me on snapchat its private!"]
    supported = ("en", "nl", "de", "fr")
    padded = [f"{t} {POLISH[i]} {POLISH[i + 1]}" for i, t in enumerate(english)]
    voted = langid.detect(padded, supported)
    assert voted.code == "en" and voted.supported and langid.SENTENCE_SURE <= voted.confidence <= 1
    assert langid.detect(padded[:2] + POLISH, supported).supported is False  # two are not enough
    assert langid.detect(POLISH + SPANISH, supported).supported is False  # wholly foreign stays so
    italian = [t for _, t in ITALIAN]
    assert langid.detect(italian, supported).code == "it"


@pytest.mark.parametrize("code", OTHER)
@pytest.mark.parametrize("form", ["append", "wrap", "run-on"])
def test_a_padded_grooming_conversation_is_scored_and_flagged(model, code, form):
    rng = random.Random(f"{code}/{form}")
    turns = [(s, gp._padded(t, form, SPANISH, rng) if s == "a" else t) for s, t in GROOMING[code]]
    msgs = conversation(turns)
    as_before = GroomingModel.load(undo_obfuscation=False)
    assert as_before.readable([turns[0][1]]) == [turns[0][1]]  # the switch reads messages as written
    result = model.score_conversation(msgs)
    assert result["language"] == code and result["language_supported"] is True
    assert result["flagged"], (code, form, result["score"])


def test_a_conversation_wholly_in_another_language_is_still_not_scored(model):
    msgs = conversation([("a" if i % 2 else "b", t) for i, t in enumerate(POLISH + SPANISH)])
    result = model.score_conversation(msgs)
    assert result["language_supported"] is False and not result["flagged"]
    assert model.readable([m["text"] for m in msgs]) == [m["text"] for m in msgs]


@pytest.mark.parametrize("code", OTHER)
def test_padding_sent_as_messages_of_their_own_does_not_thin_the_window(model, code):
    """The groomer's messages each followed by one of their own wholly in Spanish: in a conversation
    decided in a supported language those are left out of the windows scored, so the conversation
    scores as it does without them; with the switch off they were kept (the release before)."""
    turns, plain = [], conversation(GROOMING[code])
    for i, (s, t) in enumerate(GROOMING[code]):
        turns.append((s, t))
        if s == "a":
            turns.append(("a", f"{SPANISH[i % 6]} {SPANISH[(i + 1) % 6]}"))
    msgs = conversation(turns)
    texts = model.readable([m["text"] for m in msgs])
    foreign = model.foreign_messages(texts)
    spanish = [i for i, (_, t) in enumerate(turns) if t.startswith(tuple(SPANISH))]
    assert [i for i, f in enumerate(foreign) if f] == spanish
    result = model.score_conversation(msgs)
    assert result["language"] == code and result["flagged"], (code, result["score"])
    assert result["score"] == pytest.approx(model.score_conversation(plain)["score"], abs=0.01)
    as_written = GroomingModel.load(undo_obfuscation=False)
    assert not any(as_written.foreign_messages(texts))


def test_no_message_of_the_corpus_reads_wholly_foreign(model):
    splits = corpus.generate_splits(60, seed=3, languages=corpus.LANGUAGE_CODES)
    texts = {m["text"] for convs in splits.values() for c in convs for m in c.messages}
    assert not [t for t in model.readable(sorted(texts)) if model.reads_foreign(t)]


def test_long_text_costs_a_bounded_number_of_language_calls(model, monkeypatch):
    """Untrusted text cannot make the cut or the vote call py3langid without bound: at most
    MAX_RUNS runs a message (each its trims, and what a cut leaves) and MAX_SENTENCES sentences a vote."""
    real, calls = langid._identifier(), {"n": 0}

    class Counted:
        def rank(self, text):
            calls["n"] += 1
            return real.rank(text)

        def classify(self, text):
            calls["n"] += 1
            return real.classify(text)

    monkeypatch.setattr(langid, "_identifier", Counted)
    long = " home alone ".join(f"{POLISH[i % 5]} {SPANISH[i % 6]}" for i in range(400))
    _cut(model, "are you home alone " + long)  # 400 runs, each cut at its first try
    assert langid.MAX_RUNS < calls["n"] < 100
    calls["n"] = 0
    langid._sentence_vote([long] * 10, model.supported_languages)  # 8,000 sentences
    assert calls["n"] == langid.MAX_SENTENCES < 100


def test_cli_evaluate_pad_says_so_and_refuses_an_unknown_form(tmp_path, capsys):
    """``models evaluate --grooming --pad FORM`` scores the split padded by one of the benchmark's forms."""
    from tests.grooming_cli import evaluate_rewritten

    plain, padded, err, refused = evaluate_rewritten(tmp_path, capsys, "en", "pad", "interleaved")
    assert "padded: one writer per conversation pads every message" in err and "(interleaved)" in err
    assert padded["data"].endswith("padded (interleaved)")
    assert padded["conversations"] == plain["conversations"] and padded["messages"] > plain["messages"]
    assert refused == "error: --pad 'nonsense' is not one of append, prepend, wrap, run-on, one, interleaved"
