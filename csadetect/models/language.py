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
never (a decoy opening would otherwise hide everything after it). Nothing here logs or keeps text;
the result is a language code and a flag.
"""
from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple, Sequence

DECIDE_AFTER = 10  # messages: the language is re-decided until then, and kept afterwards
UNSURE_BELOW = 0.5  # normalised py3langid probability below which an unsupported top language is not trusted
MIN_LETTERS = 40  # letters of text below which an unsupported top language is not trusted
REDECIDE_EVERY = 5  # messages: how often an unsupported decision is re-made, from the latest DECIDE_AFTER


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
    return Language(top, False, float(prob))


def redecide_due(seen: int, current: Language) -> bool:
    """Whether the decision in force (``current``, made before) is re-made at the ``seen``-th message
    (1-based), from the latest ``DECIDE_AFTER`` messages: only an unsupported one, every
    :data:`REDECIDE_EVERY` messages after the ``DECIDE_AFTER``-th."""
    return (not current.supported and seen > DECIDE_AFTER
            and (seen - DECIDE_AFTER) % REDECIDE_EVERY == 0)
