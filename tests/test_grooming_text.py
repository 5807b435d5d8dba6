"""Obfuscated chat text read as the grooming model knows it (csadetect/models/grooming_text.py) and the
obfuscation attacks the evaluation applies (training/grooming_obfuscate.py): look-alike letters,
invisible characters, fullwidth and mathematical letters, stacked marks, digits for letters, words
spelled out or stretched. Ordinary text, the whole synthetic corpus included, is left alone.

Every conversation here is handwritten or generated and never sexual."""
from __future__ import annotations

import random
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csadetect.config.settings import Settings
from csadetect.models import grooming_text as gt
from csadetect.models.grooming import GroomingModel
from csadetect.models.grooming_text import homoglyph_table, undo_obfuscation
from tests.test_grooming_languages import GROOMING, HARD_NEGATIVES, conversation
from training import grooming_corpus as corpus
from training import grooming_obfuscate as ob

KNOWN = frozenset({"snapchat", "secret", "meet", "hello", "cool", "kill", "photo", "alone", "whatsapp", "be"})


@pytest.fixture(scope="module")
def model():
    return GroomingModel.load()


@pytest.mark.parametrize("text, want", [
    ("ѕnарсhаt", "snapchat"),  # Cyrillic dze, a, er, es, a
    ("ϲооІ ѕесrеt", "cool secret"),  # Greek lunate sigma (NFKC makes it a final sigma), Cyrillic capital I as an l
    ("kiӏӏ", "kill"), ("𝐛𝐞", "be"),  # Cyrillic palochka (listed as an i) as an l; a known word read as listed
    ("bօoκ", "book" if "κ" in homoglyph_table() else "booκ"),  # a plain Latin letter: a mixed word, mapped
    ("ΑLΟΝΕ", "ALONE"),  # Greek capitals
    ("ｓｎａｐｃｈａｔ", "snapchat"),  # fullwidth
    ("𝐬𝐞𝐜𝐫𝐞𝐭 𝚖𝚎𝚎𝚝", "secret meet"),  # mathematical bold, monospace
    ("Ⓢⓔⓒⓡⓔⓣ", "Secret"),  # circled
    ("sn\u200bap\u00adchat\u2060", "snapchat"),  # zero-width space, soft hyphen, word joiner
    ("s\u0336e\u0336c\u0336r\u0336e\u0336t\u0336", "secret"),  # struck through
    ("sn4pch@t", "snapchat"), ("5ecret", "secret"), ("c00l", "cool"), ("k1ll", "kill"), ("m33t!!", "meet!!"),
    ("s.n.a.p.c.h.a.t", "snapchat"), ("s-e-c-r-e-t", "secret"), ("s . e . c . r . e . t", "secret"),
    ("p h o t o", "photo"), ("m e e t me", "meet me"),  # spaces: five letters, or a known word
    ("m e e t b e", "meet be"), ("s.e.c.r.e.t m.e.e.t", "secret meet"),  # spelled words one after another
    ("meeeeet", "meet"), ("helllllo", "hello"), ("seeeecret", "secret"),
])
def test_each_obfuscation_is_undone(text, want):
    assert undo_obfuscation(text, KNOWN) == want


@pytest.mark.parametrize("text", [
    "il y a à la maison", "j'ai 12 ans", "b4 u go", "gr8 2day", "@lisa hi", "merci!!", "U2 concert at 8pm",
    "École, Straße, één, garçon", "привет как дела", "γεια σου τι κάνεις", "😅 ❤️ 👨‍👩‍👧", "a b c", "x y z w",
])
def test_ordinary_text_is_left_alone(text):
    assert undo_obfuscation(text, KNOWN) == text
    assert undo_obfuscation(text) == text


def test_a_word_of_another_script_stays_and_a_mixed_one_is_read_as_latin():
    assert undo_obfuscation("дом рано") == "дом рано"  # д has no Latin look-alike: both are Russian words
    assert undo_obfuscation("meet me аt the раrk") == "meet me at the park"


def test_stretched_words_the_model_knows_stay():
    assert undo_obfuscation("merciii", frozenset({"merciii", "merci"})) == "merciii"
    assert undo_obfuscation("merciiii", frozenset({"merciii", "merci"})) == "merci"
    assert undo_obfuscation("zzzzz", KNOWN) == "zzzzz"  # no known spelling: as written
    assert undo_obfuscation("meeeeet") == "meeeeet"  # without the model's words: as written


_ATTACKS_UNDONE = ("homoglyphs_confusable", "invisible", "styled", "strike")


def _attack(word: str, kind: str, rng: random.Random) -> str:
    if kind == "homoglyphs_confusable":  # any look-alike Unicode lists, not the benchmark's hand-picked table
        inverse: dict[str, list[str]] = {}
        for char, latin in homoglyph_table().items():
            if unicodedata.normalize("NFKC", char) == char:  # NFKC may read "ℐ" (drawn like an l) as "I"
                inverse.setdefault(latin, []).append(char)
        return "".join(rng.choice(inverse[ch]) if ch in inverse and rng.random() < 0.7 else ch for ch in word)
    if kind == "invisible":
        return ob._invisible(word, rng)
    if kind == "styled":
        return ob._styled(word, rng)
    return "".join(ch + rng.choice("\u0336\u0335\u0332\u0338") for ch in word)


@settings(max_examples=200, deadline=None)
@given(words=st.lists(st.sampled_from(sorted(KNOWN)), min_size=1, max_size=6),
       kind=st.sampled_from(_ATTACKS_UNDONE), seed=st.integers(0, 10_000))
def test_any_known_phrase_under_a_character_attack_reads_as_written(words, kind, seed):
    rng = random.Random(seed)
    text = " ".join(words)
    hidden = " ".join(_attack(w, kind, rng) for w in words)
    assert undo_obfuscation(hidden, KNOWN) == text


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_any_text_comes_back_as_text_and_a_second_pass_changes_nothing_more(text):
    once = undo_obfuscation(text, KNOWN)
    assert isinstance(once, str)
    assert undo_obfuscation(once, KNOWN) == once
    for i, ch in enumerate(once):  # a format character is left only between two things that are not letters or digits
        if unicodedata.category(ch) == "Cf":
            assert 0 < i < len(once) - 1
            assert not (once[i - 1].isalnum() or once[i + 1].isalnum())


def test_the_corpus_is_read_as_written_but_for_stretched_words_the_model_does_not_know(model):
    known = model._known_words
    assert len(known) > 1000 and "merciii" in known
    texts = {m["text"] for split in (corpus.generate_splits(120, 1, None, languages=list(corpus.LANGUAGE_CODES)),
                                     corpus.generate_splits(120, 2, None, languages=list(corpus.LANGUAGE_CODES),
                                                            written_calibration=True))
             for convs in split.values() for c in convs for m in c.messages}
    assert len(texts) > 5000 and sum(not t.isascii() for t in texts) > 300
    assert [t for t in texts if undo_obfuscation(t) != t] == []
    changed = {t: undo_obfuscation(t, known) for t in texts if undo_obfuscation(t, known) != t}
    assert changed, "the corpus stretches words; some are not among the model's words"
    assert all(v == gt._unstretch(t, known) for t, v in changed.items())


def _accented_forms() -> dict[str, list[str]]:
    """Every precomposed letter of the Latin blocks whose canonical decomposition is an ASCII letter and
    marks (not the benchmark's hand-picked table) -> by that letter."""
    forms: dict[str, list[str]] = {}
    for code in (*range(0xC0, 0x250), *range(0x1E00, 0x1F00)):
        ch = chr(code)
        nfd = unicodedata.normalize("NFD", ch)
        if (ch.isalpha() and len(nfd) > 1 and nfd[0].isascii() and nfd[0].isalpha()
                and all(unicodedata.combining(c) for c in nfd[1:]) and unicodedata.normalize("NFKC", ch) == ch):
            forms.setdefault(nfd[0], []).append(ch)
    return forms


_ACCENTED = _accented_forms()


@pytest.mark.parametrize("text, known, want", [
    ("śécrèt", KNOWN, "secret"), ("ḿééṭ", KNOWN, "meet"), ("phøtø ałone", KNOWN, "photo alone"),
    ("SÉCRET", KNOWN, "SECRET"), ("śnápçhat", KNOWN, "snapchat"),
    ("mèrë", frozenset({"mère", "regarde"}), "mère"),  # the accents that make it unknown, not the word's own
    ("sěcret", frozenset({"secret", "regardé"}), "secret"),  # one accent, but none of the model's words has "ě"
])
def test_accented_letters_that_disguise_a_word_are_stripped(text, known, want):
    assert undo_obfuscation(text, known) == want


@pytest.mark.parametrize("text", ["regardé", "t'as regardé la série", "Zoë", "naïve café", "Straße", "tôt"])
def test_a_word_with_one_accent_its_languages_write_stays(text):
    # the model knows the bare words, and é, è, ë, ï, ô as letters of other words of its
    known = frozenset({"regarde", "serie", "zoe", "naive", "cafe", "strasse", "tot", "mère", "été", "noël", "naïf",
                       "hôtel"})
    assert undo_obfuscation(text, known) == text
    assert undo_obfuscation(text) == text  # without the model's words: as written
    assert undo_obfuscation(text, set(known)) == text  # a plain set of words works too (not cached)


@settings(max_examples=200, deadline=None)
@given(words=st.lists(st.sampled_from(sorted(KNOWN)), min_size=1, max_size=6), seed=st.integers(0, 10_000))
def test_any_known_phrase_with_accents_on_two_or_more_letters_reads_as_written(words, seed):
    rng = random.Random(seed)
    hidden = []
    for w in words:
        able = [k for k, ch in enumerate(w) if ch in _ACCENTED]
        chosen = set(rng.sample(able, k=rng.randint(min(2, len(able)), len(able))))
        hidden.append("".join(rng.choice(_ACCENTED[ch]) if k in chosen else ch for k, ch in enumerate(w)))
    known = KNOWN | {"regardé", "mère"}  # é and è are letters of the model's words: two or more are needed
    assert undo_obfuscation(" ".join(hidden), known) == " ".join(words)


@pytest.mark.parametrize("code", ["nl", "de"])
def test_a_chat_with_accents_is_read_in_its_language_and_flagged_as_written(model, code):
    plain = conversation(GROOMING[code])
    rng = random.Random(5)
    hidden = [{**m, "text": ob.obfuscate_text(m["text"], "accents", rng, 1.0)} if m["sender"] == "a" else m
              for m in plain]
    assert [m["text"] for m in hidden] != [m["text"] for m in plain]
    got, want = model.score_conversation(hidden), model.score_conversation(plain)
    assert want["flagged"] and got["flagged"] and got["language"] == code
    assert got["flagged_at_message"] <= want["flagged_at_message"] + 1


@pytest.mark.parametrize("code", ["nl", "fr"])
def test_a_groomers_styled_or_invisible_words_score_as_plain_ones(model, code):
    plain = conversation(GROOMING[code])
    rng = random.Random(3)
    for kind in ("styled", "invisible"):
        hidden = [{**m, "text": ob.obfuscate_text(m["text"], kind, rng, 1.0)} if m["sender"] == "a" else m
                  for m in plain]
        assert [m["text"] for m in hidden] != [m["text"] for m in plain]
        got, want = model.score_conversation(hidden), model.score_conversation(plain)
        assert got["flagged"] and got["language"] == code
        assert got["score"] == pytest.approx(want["score"], abs=1e-5)
        assert got["flagged_at_message"] == want["flagged_at_message"]


def test_as_written_the_styled_words_are_another_language_or_another_score():
    as_written = GroomingModel.load(undo_obfuscation=False)
    assert as_written.undo_obfuscation is False and as_written.readable(["ｓｎａｐ"]) == ["ｓｎａｐ"]
    plain = conversation(GROOMING["nl"])
    rng = random.Random(3)
    hidden = [{**m, "text": ob.obfuscate_text(m["text"], "styled", rng, 1.0)} for m in plain]
    got, want = as_written.score_conversation(hidden), as_written.score_conversation(plain)
    assert (got["language"], got["score"]) != (want["language"], want["score"])


def test_language_is_detected_from_the_readable_text(model):
    hidden = [ob._styled(t, random.Random(1)) for _, t in HARD_NEGATIVES["de"]]
    assert model.language_of(hidden).code == "de"
    assert [lg.code for lg in model.languages_per_message(hidden)][-1] == "de"


def test_the_setting_defaults_on_and_can_be_turned_off():
    assert Settings().grooming.undo_obfuscation is True
    assert Settings.model_validate({"grooming": {"undo_obfuscation": False}}).grooming.undo_obfuscation is False


def test_attacks_change_only_one_writers_messages_and_are_repeatable():
    convs = corpus.generate(60, seed=4, split="eval", language_code="en")
    for attack in ob.ATTACKS:
        a, b = ob.obfuscate(convs, attack, 1), ob.obfuscate(convs, attack, 1)
        assert [m["text"] for c in a for m in c.messages] == [m["text"] for c in b for m in c.messages]
        changed = 0
        for before, after in zip(convs, a):
            assert (after.label, after.family, after.conversation_id) == (before.label, before.family,
                                                                          before.conversation_id)
            writers = {m["sender"] for m, n in zip(before.messages, after.messages) if m["text"] != n["text"]}
            assert len(writers) <= 1
            assert [(m["sender"], m["pattern"]) for m in before.messages] == [(m["sender"], m["pattern"])
                                                                              for m in after.messages]
            changed += bool(writers)
        assert changed > len(convs) // 2, attack
    assert ob.obfuscate(convs, "none", 1) == list(convs)
    with pytest.raises(ValueError, match="unknown attack"):
        ob.obfuscate(convs, "rot13", 1)


@pytest.mark.parametrize("undo", [True, False])
def test_the_streaming_steps_load_the_model_with_the_setting(undo):
    from apache_beam.utils import shared

    from csadetect.transforms.grooming import ClassifyGrooming, ConversationStateFn, EncodeMessagesFn

    handle = shared.Shared()
    encode = EncodeMessagesFn(None, handle, undo_obfuscation=undo)
    state = ConversationStateFn(None, None, 3600, handle, undo_obfuscation=undo)
    encode.setup()
    state.setup()
    assert encode.model is state.model and encode.model.undo_obfuscation is undo
    other = EncodeMessagesFn(None, handle, undo_obfuscation=not undo)
    other.setup()
    assert other.model is not encode.model and other.model.undo_obfuscation is (not undo)
    assert ClassifyGrooming(undo_obfuscation=undo)._undo is undo


def test_cli_evaluate_obfuscate_says_so_and_refuses_an_unknown_attack(tmp_path, capsys):
    """``models evaluate --grooming --obfuscate ATTACK`` scores the split obfuscated by one writer per conversation."""
    from tests.grooming_cli import evaluate_rewritten

    plain, leet, err, refused = evaluate_rewritten(tmp_path, capsys, "fr", "obfuscate", "leet")
    assert "obfuscated: half the words of one writer per conversation, by leet" in err
    assert leet["data"].endswith("obfuscated (leet)") and leet["messages"] == plain["messages"]
    assert refused.startswith("error: --obfuscate 'nonsense' is not one of homoglyphs, invisible")


def _segment_reference(letters, known, max_word):
    """The first version of ``_segment``: each best cut kept as a list, copied at every step (quadratic)."""
    best = [[]] + [None] * len(letters)
    for end in range(1, len(letters) + 1):
        for start in range(max(0, end - max_word), end):
            head, piece = best[start], letters[start:end]
            if head is not None and piece.lower() in known and (best[end] is None or len(head) + 1 < len(best[end])):
                best[end] = head + [piece]
    return best[len(letters)]


@settings(max_examples=300, deadline=None)
@given(letters=st.text(alphabet="abIİ", max_size=40),
       known=st.sets(st.text(alphabet="abi", min_size=1, max_size=4), max_size=12))
def test_segment_cuts_as_the_first_version_did(letters, known):
    """Spelled-out letters cut into the fewest known words: the back-pointer version gives exactly the cut of the
    first version (the same words, the same tie broken the same way), in time linear in the letters."""
    from csadetect.models.grooming_text import MAX_WORD, _segment

    assert _segment(letters, known) == _segment_reference(letters, known, MAX_WORD)
    assert _segment(letters, known | {"a", "i"}) == _segment_reference(letters, known | {"a", "i"}, MAX_WORD)


def test_a_long_spelled_run_is_cut_as_before():
    from csadetect.models.grooming_text import MAX_WORD, _segment

    known = {"a", "aa", "ab", "ba", "meet", "me"}
    letters = "ab" * 300 + "meetme" + "a" * 301
    assert _segment(letters, known) == _segment_reference(letters, known, MAX_WORD)
    assert _segment(letters + "z", known) is None
    # ties: of two cuts into as few words, the one whose last word is longest (the first found)
    assert _segment("aab", {"a", "aa", "ab", "b"}) == ["a", "ab"]
    assert _segment("meetme", {"me", "et", "meet", "e", "t"}) == ["meet", "me"]
