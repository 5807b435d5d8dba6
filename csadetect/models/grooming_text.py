"""A message's text as the grooming model reads it: common obfuscations undone (issue 17).

Someone who grooms a child and expects a platform to scan the chat writes the words that would
give them away so that a reader still sees them and a model does not: letters from another script
that look the same (Cyrillic "а" for Latin "a"), fullwidth or mathematical letters ("ｓｎａｐ",
"𝐬𝐧𝐚𝐩"), invisible characters inside a word (zero-width space, soft hyphen), marks stacked on
letters, digits and signs for letters ("sn4pch@t"), a word spelled out ("s n a p", "s.n.a.p") or
stretched ("meeeeet"). The model reads character and word n-grams of the text as written, so
each of these turns a known word into n-grams it never saw. :func:`undo_obfuscation` maps them
back, before the model encodes a message and before the conversation's language is detected (an
obfuscated message must not pass as an unsupported language either). In order:

1. characters of Unicode category Cf (format: zero-width spaces and joiners, soft hyphens,
   direction marks, the byte-order mark) are removed, unless neither side is a letter or digit
   (the joiners of an emoji sequence stay);
2. NFKC normalisation (fullwidth, mathematical, circled and small-capital forms, ligatures);
3. combining marks left over after it are removed (text in the supported languages is
   precomposed by NFKC, so only marks stacked on for show remain);
4. a word of letters that look like Latin ones (Unicode's confusables, UTS #39, through the
   ``confusable_homoglyphs`` package's copy of ``confusables.txt``) is written in those Latin
   letters (before NFKC and after it), unless it has no plain Latin letter and either holds a
   letter of its own script with no Latin look-alike or stands in a text with more letters of
   another script than Latin ones (a real Cyrillic or Greek word stays as it is); where the word
   so read is not one the model knows, a look-alike that Unicode lists as ``I``, ``i`` or ``l``
   (drawn alike: "ӏ" is listed as an i) is read as ``l`` or ``i``, whichever makes a word it knows;
5. digits and signs for letters (``0 1 3 4 5 7 8 9 @ $ !``): a word of four or more characters,
   two or more of them letters, becomes the model's word it spells when there is one (``1`` read
   as ``i`` or ``l``); otherwise a run of ``0 1 3 4 5 7 @ $`` with a letter on both sides becomes
   ``o i e a s t a s``;
6. single letters spelled out (three or more): with a separator other than a space (``.``, ``-``,
   ``_``, ``*``, ``|``, ``/``, ``+``, ``~``, ``·``, ``•``, spaces around it allowed) joined into
   one word, a plain space between two letters ending one word and starting the next; with spaces
   alone, the letters spell a word the model knows, or are cut into the fewest words it knows
   ("m e e t m e" -> "meet me"), or else are joined when they are five or more ("y a à" stays);
7. a word with a letter three or more times in a row that the model does not know is written
   with the run cut to two letters, or to one, whichever is a word it knows ("meeeeet" ->
   "meet"; "merciii", a word of its training, stays).
8. a word with accented letters that the model does not know, and with two or more of them or one
   that none of its words holds (``ř``, ``ő``: not a letter of its languages), is written without
   the accents that make it unknown ("śécrèt" -> "secret"; "mèrë" -> "mère", where the model knows
   "mère"): all of them stripped when that is a word it knows, else the first spelling it knows
   keeping each accent or not (at most :data:`MAX_LEET_CHOICES` tried). A word with one accent its
   languages write stays ("regardé", though the model knows only "regarde"). An accent is what
   Unicode's canonical decomposition splits off, and the strokes it does not (:data:`_STROKED`: "ø",
   "ł", "đ", "ħ", "ŧ"); "ß", a letter of its own, stays. Accents typed precomposed are never "left
   over" for step 3, and they also moved py3langid: an English chat with "ř" or "ő" in it reads as
   Czech or Hungarian.

Steps 4-8 read the model's words (``known``: its word vocabulary); without them, step 4 reads
``I``, ``i`` and ``l`` look-alikes as Unicode lists them, step 5 keeps its fallback rule, step 6 its
letter count and steps 7 and 8 are skipped. Ordinary text is left alone:
the whole synthetic corpus, every split and language, comes back unchanged but for stretched
(and accented) words the model does not know (``tests/test_grooming_text.py``), so the shipped model needs no
retraining. Setting ``grooming.undo_obfuscation: false`` reads messages as written (the release
before this step). Plain Python; nothing here logs or keeps text.
"""
from __future__ import annotations

import itertools
import json
import re
import unicodedata
from functools import lru_cache
from typing import AbstractSet, Optional

__all__ = ["undo_obfuscation", "homoglyph_table", "pieces", "MAX_PIECE_WORDS", "MAX_PIECES"]

_L = r"[^\W\d_]"  # a letter
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"})
_LEET_CHOICES = {"0": "o", "1": "il", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g", "@": "a", "$": "s",
                 "!": "i"}
_LEET_RUN = re.compile(rf"(?<={_L})[013457@$]+(?={_L})")
# a word of letters, digits and signs, four or more long, two or more letters, one digit or sign,
# beginning with a letter, digit or ``$`` and ending with a letter, digit, ``@`` or ``$`` ("!" and
# "@" are punctuation and handles there: "merci!!", "@lisa")
_LEET_WORD = re.compile(rf"(?<![\w@$!])(?=[\w@$!]*{_L}[\w@$!]*{_L})(?=[\w@$!]*[0-9@$!])"
                        rf"[\w$][\w@$!]{{2,}}[\w@$](?![\w@$])")
MAX_LEET_CHOICES = 16  # spellings tried for one word (each ``1`` doubles them)
_SEP = r"(?: ?[.\-_*|/+~\u00b7\u2022] ?| )"
_SPELLED = re.compile(rf"(?<!{_L}){_L}(?:{_SEP}{_L}){{2,}}(?!{_L})")
_SEP_SPLIT = re.compile(rf"({_SEP})")
MAX_WORD = 24  # letters of the longest word a spelled-out run is cut into
SPACED_MIN = 5  # single letters with spaces alone: joined from this many (fewer: when they spell a known word)
_STRETCH = re.compile(rf"({_L})\1{{2,}}")
_STRETCHED_WORD = re.compile(rf"{_L}*({_L})\1{{2,}}{_L}*")
_WORD = re.compile(rf"{_L}+")
# what a match of steps 5 and 6 holds: a letter beside a digit or sign, or one letter alone, a
# separator and another letter alone (a quick test that most ASCII text fails)
_ASCII_CANDIDATE = re.compile(rf"{_L}[0-9@$!]|[0-9@$!]{_L}|(?<!{_L}){_L}{_SEP}{_L}(?!{_L})")


@lru_cache(maxsize=1)
def homoglyph_table() -> dict[str, str]:
    """Each non-ASCII letter that Unicode's confusables list as looking like one ASCII letter ->
    that letter (Cyrillic, Greek, Cherokee, Armenian, ... and Latin look-alikes such as ``ı``)."""
    from importlib.resources import files

    data = json.loads(files("confusable_homoglyphs").joinpath("confusables.json").read_text(encoding="utf-8"))
    table = {}
    for char, glyphs in data.items():
        if len(char) != 1 or char.isascii() or not char.isalpha():
            continue
        for glyph in glyphs:
            latin = glyph.get("c", "")
            if len(latin) == 1 and latin.isascii() and latin.isalpha():
                table[char] = latin
                break
    return table


def _latin(ch: str) -> bool:
    return ch.isascii() or "LATIN" in unicodedata.name(ch, "")


_I_OR_L = frozenset("Iil")  # drawn alike: a look-alike of one may be meant as another


def _homoglyphs(text: str, known: Optional[AbstractSet[str]] = None) -> str:
    table = homoglyph_table()
    if not any(ch in table for ch in text):
        return text  # ordinary text, accented or not: nothing to count or map
    latin = sum(ch.isalpha() and _latin(ch) for ch in text)
    foreign = sum(ch.isalpha() and not _latin(ch) and ch not in table for ch in text)

    def word(m: re.Match) -> str:
        w = m.group(0)
        if w.isascii() or not any(ch in table for ch in w):
            return w
        if not any(ch.isascii() for ch in w):  # no plain Latin letter: maybe a word of another script
            if any(ch not in table and not _latin(ch) for ch in w):
                return w  # it has letters with no Latin look-alike
            if latin < foreign:
                return w  # only look-alikes, in a text mostly of another script ("σου" in Greek)
        direct = "".join(table.get(ch, ch) for ch in w)
        if not known or direct.lower() in known:
            return direct
        choices = [("l", "i") if table.get(ch) in _I_OR_L else (table.get(ch, ch),) for ch in w]
        return _known_spelling(choices, known) or direct

    return _WORD.sub(word, text)


def _drop_format(text: str) -> str:
    """Format characters removed, but for a run of them with something other than a letter or digit
    on both sides (the joiners of an emoji sequence such as a family or a flag)."""
    if all(unicodedata.category(ch) != "Cf" for ch in text):
        return text
    out, i, n = [], 0, len(text)
    while i < n:
        if unicodedata.category(text[i]) != "Cf":
            out.append(text[i])
            i += 1
            continue
        j = i
        while j < n and unicodedata.category(text[j]) == "Cf":
            j += 1
        if 0 < i and j < n and not text[i - 1].isalnum() and not text[j].isalnum():
            out.append(text[i:j])
        i = j
    return "".join(out)


def _known_spelling(choices, known: AbstractSet[str]) -> Optional[str]:
    """The first spelling, one character from each of ``choices`` in turn, that is a known word (in
    lower case); None when none is, or when there are more than :data:`MAX_LEET_CHOICES` to try."""
    if 2 ** sum(len(c) > 1 for c in choices) > MAX_LEET_CHOICES:
        return None
    for spelling in itertools.product(*choices):
        cand = "".join(spelling)
        if cand.lower() in known:
            return cand
    return None


def _deleet(text: str, known: Optional[AbstractSet[str]]) -> str:
    def word(m: re.Match) -> str:
        w = m.group(0)
        return (_known_spelling([_LEET_CHOICES.get(ch, ch) for ch in w], known)
                or _LEET_RUN.sub(lambda r: r.group(0).translate(_LEET), w))

    if known:
        return _LEET_WORD.sub(word, text)
    return _LEET_RUN.sub(lambda r: r.group(0).translate(_LEET), text)


def _segment(letters: str, known: AbstractSet[str]) -> Optional[list[str]]:
    """``letters`` cut into the fewest known words, or None when they cannot all be."""
    n = len(letters)
    words: list[Optional[int]] = [0] + [None] * n  # fewest known words that spell letters[:end]
    cut_at = [0] * (n + 1)  # where the last of them starts (back-pointers: linear in the letters)
    for end in range(1, n + 1):
        for start in range(max(0, end - MAX_WORD), end):
            head = words[start]
            if (head is not None and (words[end] is None or head + 1 < words[end])
                    and letters[start:end].lower() in known):
                words[end], cut_at[end] = head + 1, start
    if words[n] is None:
        return None
    pieces, end = [], n
    while end:
        pieces.append(letters[cut_at[end]:end])
        end = cut_at[end]
    return pieces[::-1]


def _unspell(text: str, known: Optional[AbstractSet[str]]) -> str:
    def spelled(m: re.Match) -> str:
        run = m.group(0)
        parts = _SEP_SPLIT.split(run)
        if any(p.strip() for p in parts[1::2]):  # a separator other than spaces: spaces part words
            groups, current = [], ""
            for letter, sep in itertools.zip_longest(parts[::2], parts[1::2], fillvalue=""):
                current += letter
                if sep == " " or not sep:
                    groups.append(current)
                    current = ""
            return " ".join(groups)
        joined = "".join(parts[::2])  # spaces alone: one word, or several spelled one after another
        if known:
            if joined.lower() in known:
                return joined
            pieces = _segment(joined, known)
            if pieces:
                return " ".join(pieces)
        return joined if len(joined) >= SPACED_MIN else run

    return _SPELLED.sub(spelled, text)


def _unstretch(text: str, known: AbstractSet[str]) -> str:
    def word(m: re.Match) -> str:
        w = m.group(0)
        if w.lower() in known:
            return w
        for keep in (2, 1):
            cand = _STRETCH.sub(lambda r: r.group(1) * keep, w)
            if cand.lower() in known:
                return cand
        return w

    return _STRETCHED_WORD.sub(word, text)


# letters with a stroke, which Unicode does not decompose -> the letter under it
_STROKED = {"ø": "o", "Ø": "O", "ł": "l", "Ł": "L", "đ": "d", "Đ": "D", "ħ": "h", "Ħ": "H", "ŧ": "t", "Ŧ": "T"}
_ACCENTED_WORD = re.compile(rf"{_L}*[^\x00-\x7f\W\d_]{_L}*")  # a word with a letter beyond ASCII


@lru_cache(maxsize=4096)
def _bare(ch: str) -> str:
    """``ch`` without its accents (canonical decomposition, marks dropped; :data:`_STROKED`)."""
    if ch in _STROKED:
        return _STROKED[ch]
    base = "".join(c for c in unicodedata.normalize("NFD", ch) if not unicodedata.combining(c))
    return unicodedata.normalize("NFC", base) if base else ch


@lru_cache(maxsize=8)
def _alphabet(known: AbstractSet[str]) -> frozenset:
    """The accented letters (lower case) of the model's words: the ones its languages write."""
    return frozenset(ch for w in known for ch in w.lower() if not ch.isascii() and _bare(ch) != ch)


def _unaccent(text: str, known: AbstractSet[str]) -> str:
    try:
        alphabet = _alphabet(known)
    except TypeError:  # a set, not a frozenset: unhashable, so not cached
        alphabet = _alphabet.__wrapped__(known)

    def word(m: re.Match) -> str:
        w = m.group(0)
        if w.lower() in known:
            return w
        bare = "".join(_bare(ch) for ch in w)
        accented = [ch for ch, b in zip(w, bare) if ch != b]
        if not accented or (len(accented) < 2 and all(ch.lower() in alphabet for ch in accented)):
            return w  # one accent its languages write ("regardé"): a word, not a disguise
        if bare.lower() in known:
            return bare
        return _known_spelling([(ch, b) if b != ch else (ch,) for ch, b in zip(w, bare)], known) or w

    return _ACCENTED_WORD.sub(word, text)


def undo_obfuscation(text: str, known: Optional[AbstractSet[str]] = None) -> str:
    """``text`` with the obfuscations listed in the module docstring undone; ``known``: the model's
    words, in lower case (steps 4-8). Ordinary text comes back unchanged."""
    if not text:
        return text
    if not text.isascii():
        text = _homoglyphs(_drop_format(text), known)  # before NFKC too, which reads some look-alikes as other letters
        text = unicodedata.normalize("NFKC", text)
        if not text.isascii():
            text = "".join(ch for ch in text if not unicodedata.combining(ch))
            text = _homoglyphs(text, known)
            if known:
                text = _unaccent(text, known)
    if _ASCII_CANDIDATE.search(text):
        text = _unspell(_deleet(text, known), known)
    if known and _STRETCH.search(text):
        text = _unstretch(text, known)
    return text


MAX_PIECE_WORDS = 14  # a message read longer than this is read in pieces (the training messages have 1-17 words)
MAX_PIECES = 4  # at most this many pieces a message (longer pieces beyond): bounds the vectors a message keeps


def pieces(text: str) -> list[str]:
    """``text`` as the model reads a long message: itself when it has at most :data:`MAX_PIECE_WORDS`
    words, else cut at word boundaries into the fewest pieces of at most that many words (at most
    :data:`MAX_PIECES`), as even as they can be. The model learned from chat messages of 1-17
    words; the same words sent as one long message instead of several were read as one diluted
    message (issue 17: the groomer's consecutive lines joined, recall 0.563 -> 0.447)."""
    words = text.split()
    n = min(-(-len(words) // MAX_PIECE_WORDS), MAX_PIECES)
    if n <= 1:
        return [text]
    bounds = [round(i * len(words) / n) for i in range(n + 1)]
    return [" ".join(words[a:b]) for a, b in zip(bounds, bounds[1:])]
