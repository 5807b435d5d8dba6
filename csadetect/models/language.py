"""Language of a conversation, for the grooming model (DESIGN §5; issue 17 item 6).

The grooming model supports a fixed set of languages (its ``metadata.json`` ``languages``), each
with its own calibration and threshold. Which one scores a conversation is decided here, from the
text of its first :data:`DECIDE_AFTER` messages, with py3langid (a naive Bayes classifier over
byte n-grams for 97 languages, bundled with the wheel: offline, numpy only):

* the text of the messages seen so far (at most the first ``DECIDE_AFTER``, joined) is ranked over
  all of py3langid's languages;
* the top language is the conversation's language when the model supports it;
* when the top language is not supported but py3langid is unsure (normalised probability below
  :data:`UNSURE_BELOW`) or the text is still short (under :data:`MIN_LETTERS` letters, typical of
  a few messages such as "hi", "gg" or "lol"), the best-ranked supported language is taken
  *provisionally*;
* otherwise the conversation is in an unsupported language (``supported`` False).

The decision is re-made at every message until ``DECIDE_AFTER`` messages have been seen, then
kept while the language is supported. An unsupported one is re-made every :data:`REDECIDE_EVERY`
messages from the latest ``DECIDE_AFTER`` (:func:`redecide_due`): a conversation that opens with
small talk in another language and turns to a supported one is scored from then on, instead of
never (a decoy opening would otherwise hide everything after it).

Padding is the other decoy: each message wrapped in everyday sentences of an unsupported language,
so that the text as a whole reads as that language and the conversation is never scored.
:func:`without_foreign_runs` cuts such sentences out of a message (the grooming model reads its
messages through it, with ``grooming.undo_obfuscation``), and a conversation still taken for an
unsupported language is taken for a supported one when :data:`SENTENCES_FOR_SUPPORTED` or more of its
sentences are each in it, read alone (:func:`detect`'s sentence vote). Nothing here logs or keeps
text; the result is a language code and a flag.
"""
from __future__ import annotations

import re
from functools import lru_cache
from itertools import islice
from typing import AbstractSet, NamedTuple, Sequence

DECIDE_AFTER = 10  # messages: the language is re-decided until then, and kept afterwards
UNSURE_BELOW = 0.5  # normalised py3langid probability below which an unsupported top language is not trusted
MIN_LETTERS = 40  # letters of text below which an unsupported top language is not trusted
REDECIDE_EVERY = 5  # messages: how often an unsupported decision is re-made, from the latest DECIDE_AFTER
SENTENCES_FOR_SUPPORTED = 3  # sentences each in one supported language that make it the conversation's
SENTENCE_LETTERS = 12  # letters a sentence needs before its language is read alone
SENTENCE_SURE = 0.5  # normalised py3langid probability a sentence's supported language needs
FOREIGN_RUN_WORDS = 4  # words the model does not know, in a row, before the run's language is read
SUPPORTED_AT_MOST = 0.02  # py3langid's probability of each supported language in a run that is cut
MAX_TRIM = 2  # unknown words a run that does not read so may lose at either end
REST_SUPPORTED = 0.1  # py3langid's probability of a supported language that what a cut leaves needs
MAX_RUNS = 16  # runs of unknown words looked at in one message (a bound on py3langid calls for long text)
MAX_SENTENCES = 64  # sentences the vote reads in one decision (the same bound)
GLUE_LETTERS = 3  # a word of at most this many letters may sit inside a run, known or not
_TOKEN = re.compile(r"\S+")
_LETTER_RUN = re.compile(r"[^\W\d_]+")
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|[\r\n]+")


class Language(NamedTuple):
    code: str  # ISO 639-1 (py3langid's codes)
    supported: bool
    confidence: float  # py3langid's normalised probability of ``code``


@lru_cache(maxsize=1)
def _identifier():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier  # lazy: ~0.3 s to load, only when scoring

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def detect(texts: Sequence[str], supported: Sequence[str]) -> Language:
    """The language of a conversation from its first messages' ``texts`` (oldest first; only
    the first :data:`DECIDE_AFTER` are read). ``supported``: language codes the model scores."""
    text = "\n".join(str(t) for t in list(texts)[:DECIDE_AFTER])
    supported = tuple(supported)
    if not text.strip():
        return Language(supported[0] if supported else "und", bool(supported), 0.0)
    ranked = _identifier().rank(text)
    top, prob = ranked[0]
    if top in supported:
        return Language(top, True, float(prob))
    if prob < UNSURE_BELOW or sum(ch.isalpha() for ch in text) < MIN_LETTERS:
        for code, p in ranked:
            if code in supported:
                return Language(code, True, float(p))
    voted = _sentence_vote(list(texts)[:DECIDE_AFTER], supported)
    return voted if voted is not None else Language(top, False, float(prob))


def without_foreign_runs(text: str, known: AbstractSet[str], supported: Sequence[str]) -> str:
    """``text`` without the runs of words in a language the model does not support, when the text as
    a whole reads as such a language (a message that reads as a supported one comes back whole):

    * a run is :data:`FOREIGN_RUN_WORDS` or more words the model does not know (``known``: its words,
      lower case), with words of at most :data:`GLUE_LETTERS` letters between them and a single known
      word between two unknown ones (a word two languages share, such as "film");
    * it is cut when py3langid ranks an unsupported language first and gives each of ``supported``
      at most :data:`SUPPORTED_AT_MOST`; one that does not read so is tried again without up to
      :data:`MAX_TRIM` unknown words at either end (a word of the message's own beside the padding);
    * and only when what it leaves holds a word the model knows, or reads as a supported language
      (:data:`REST_SUPPORTED`); the first :data:`MAX_RUNS` runs of a message are looked at.

    A message padded with sentences of another language reads as its own words again, but for the
    message's own words the model does not know next to the padding, which go with it. A message
    wholly in another language comes back as it is: its conversation's language is decided on it."""
    if not known or not supported:
        return text
    tokens = list(_TOKEN.finditer(text))
    if len(tokens) < FOREIGN_RUN_WORDS:
        return text
    kinds = _kinds(tokens, known)
    if kinds.count("u") < FOREIGN_RUN_WORDS or _identifier().classify(text)[0] in supported:
        return text  # a message that reads as a supported language is read whole
    inside = _bridged(kinds)
    cuts, runs = [], 0
    i = 0
    while i < len(tokens) and runs < MAX_RUNS:
        if kinds[i] != "u":
            i += 1
            continue
        j, unknown = i, []
        while j < len(tokens) and inside[j]:
            if kinds[j] == "u":
                unknown.append(j)
            j += 1
        runs += len(unknown) >= FOREIGN_RUN_WORDS
        known_left = "k" in kinds[:i] or "k" in kinds[j:]  # a word the model knows outside the run
        for a, b in _trimmed(unknown):
            start, end = tokens[a].start(), tokens[b].end()
            code = _foreign(text[start:end], supported)
            if code is None:
                continue
            if known_left or _reads_supported(text[:start] + " " + text[end:], supported):
                cuts.append((start, end))
                break
        i = j
    if not cuts:
        return text
    kept, at = [], 0
    for start, end in cuts:
        kept.append(text[at:start])
        at = end
    kept.append(text[at:])
    return " ".join(part.strip() for part in kept if part.strip())


def wholly_foreign(text: str, known: AbstractSet[str], supported: Sequence[str]) -> bool:
    """Whether ``text`` reads wholly as a language the model does not support: :data:`FOREIGN_RUN_WORDS`
    or more words it does not know (``known``), and py3langid ranks an unsupported language first and
    gives each of ``supported`` at most :data:`SUPPORTED_AT_MOST`. In a conversation in a supported
    language, such a message is padding sent as a message of its own; the grooming model leaves it out
    of the windows it scores (:meth:`csadetect.models.grooming.GroomingModel.foreign_messages`)."""
    if not known or not supported:
        return False
    unknown = _kinds(list(_TOKEN.finditer(text)), known).count("u")
    return unknown >= FOREIGN_RUN_WORDS and _foreign(text, supported) is not None


def _kinds(tokens: list[re.Match], known: AbstractSet[str]) -> list[str]:
    """Per word: ``g`` (at most :data:`GLUE_LETTERS` letters), ``k`` (one the model knows: its letters,
    lower case, in ``known``) or ``u`` (unknown)."""
    kinds = []
    for m in tokens:
        letters = "".join(_LETTER_RUN.findall(m.group().lower()))
        kinds.append("g" if len(letters) <= GLUE_LETTERS else ("k" if letters in known else "u"))
    return kinds


def _trimmed(unknown: list[int]) -> list[tuple[int, int]]:
    """A run's first and last word, from the whole run to the run less up to
    :data:`MAX_TRIM` unknown words at either end (a word of the message's own that the model does not
    know, beside the padding, may keep the whole from reading as one language), longest first,
    keeping at least :data:`FOREIGN_RUN_WORDS` unknown words."""
    n = len(unknown)
    pairs = [(left, right) for left in range(MAX_TRIM + 1) for right in range(MAX_TRIM + 1)
             if n - left - right >= FOREIGN_RUN_WORDS]
    return [(unknown[left], unknown[n - 1 - right]) for left, right in sorted(pairs, key=sum)]


def _bridged(kinds: list[str]) -> list[bool]:
    """Which words a run may hold: unknown ones (``u``), short ones (``g``), and a single known one
    (``k``) with an unknown word the nearest on either side (a word two languages share, such as
    "film", does not end a run)."""
    out = [kind != "k" for kind in kinds]
    for i, kind in enumerate(kinds):
        if kind != "k":
            continue
        before = next((kinds[j] for j in range(i - 1, -1, -1) if kinds[j] != "g"), None)
        after = next((kinds[j] for j in range(i + 1, len(kinds)) if kinds[j] != "g"), None)
        out[i] = before == "u" and after == "u"
    return out


def _reads_supported(rest: str, supported: Sequence[str]) -> bool:
    """Whether what a cut leaves has letters and reads as a supported language (py3langid gives one
    of them at least :data:`REST_SUPPORTED`)."""
    if not any(ch.isalpha() for ch in rest):
        return False
    return any(p >= REST_SUPPORTED for code, p in _identifier().rank(rest) if code in supported)


def _foreign(run: str, supported: Sequence[str]) -> str | None:
    """The unsupported language py3langid ranks first for ``run`` when it gives each supported one at
    most :data:`SUPPORTED_AT_MOST`, else None."""
    ranked = _identifier().rank(run)
    top = ranked[0][0]
    if top in supported:
        return None
    return top if all(p <= SUPPORTED_AT_MOST for code, p in ranked if code in supported) else None


def sentences(text: str) -> list[str]:
    """``text`` cut into sentences and lines (after ``.``, ``!``, ``?``, ``…`` and at line breaks)."""
    return [part for part in _SENTENCE_END.split(text) if part.strip()]


def _sentence_vote(texts: Sequence[str], supported: Sequence[str]) -> Language | None:
    """The supported language that :data:`SENTENCES_FOR_SUPPORTED` or more of the sentences of
    ``texts`` are each in, read alone (at least :data:`SENTENCE_LETTERS` letters, py3langid sure of
    it at :data:`SENTENCE_SURE`; the first :data:`MAX_SENTENCES` such sentences); the one with the
    most such sentences, or None. Text padded with
    another language everywhere is ranked as that language as a whole, while the sentences
    written in a supported one stay in it."""
    counts: dict[str, list[float]] = {}
    long_enough = (sentence for text in texts for sentence in sentences(str(text))
                   if sum(ch.isalpha() for ch in sentence) >= SENTENCE_LETTERS)
    for sentence in islice(long_enough, MAX_SENTENCES):
        code, p = _identifier().classify(sentence)
        if code in supported and p >= SENTENCE_SURE:
            counts.setdefault(code, []).append(float(p))
    if not counts:
        return None
    code, probs = max(counts.items(), key=lambda item: (len(item[1]), sum(item[1])))
    if len(probs) < SENTENCES_FOR_SUPPORTED:
        return None
    return Language(code, True, sum(probs) / len(probs))


def redecide_due(seen: int, current: Language) -> bool:
    """Whether the decision in force (``current``, made before) is re-made at the ``seen``-th message
    (1-based), from the latest ``DECIDE_AFTER`` messages: only an unsupported one, every
    :data:`REDECIDE_EVERY` messages after the ``DECIDE_AFTER``-th."""
    return (not current.supported and seen > DECIDE_AFTER
            and (seen - DECIDE_AFTER) % REDECIDE_EVERY == 0)
