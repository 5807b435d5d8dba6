"""Obfuscated versions of grooming conversations, for evaluation only (issue 17; not named by it).

Someone who expects a chat to be scanned hides the words that would give them away: letters of
another script that look alike, invisible characters, fullwidth or mathematical letters, marks
stacked on letters, digits and signs for letters, words spelled out letter by letter.
:func:`obfuscate` rewrites the messages of one writer per conversation with one of
:data:`ATTACKS`: in a grooming conversation the sender of its risk-pattern messages, in a benign
one the sender who opens it (so benign chats carry the same obfuscation, and false flags can be
counted). Each word of three or more letters of those messages is obfuscated with probability
``word_share``; which words, and every parameter of an attack, are drawn per word from a random
stream of its own (seeded by ``seed`` and the conversation), so the corpus's own splits stay the
same texts.

The attacks are written here from what such text looks like, independently of what
:mod:`csadetect.models.grooming_text` undoes: their look-alike letters are a hand-picked table,
not Unicode's confusables, and some of their forms are beyond it on purpose (a combining acute
or dot, which NFKC composes into an accented letter; a spelled-out word with spaces around each
dot; a short word spelled with spaces; ``doubled``, letters repeated, which nothing undoes; ``accents``,
added 2026-12-08 before the step that undoes them, precomposed accented letters of European alphabets,
"ø" and "ł" among them, which Unicode does not decompose). Used by
``csadetect models evaluate --grooming --obfuscate ATTACK`` and ``benchmarks/bench_obfuscation.py``.
"""
from __future__ import annotations

import random
import re
from dataclasses import replace

__all__ = ["ATTACKS", "obfuscate", "obfuscate_text"]

# hand-picked look-alikes (Cyrillic, Greek, Armenian, Cherokee, Latin small capitals / IPA)
LOOK_ALIKES = {
    "a": "аɑα", "c": "сϲ", "d": "ԁ", "e": "еҽ", "g": "ɡ", "h": "һ", "i": "іιɩ", "j": "ј", "k": "κ",
    "l": "ӏ", "n": "ո", "o": "оοօ", "p": "рρ", "q": "ԛ", "s": "ѕ", "u": "υս", "v": "ν", "w": "ԝ",
    "x": "хχ", "y": "уγ", "A": "АΑ", "B": "ВΒ", "C": "СϹ", "E": "ЕΕ", "H": "НΗ", "I": "ІΙ",
    "K": "КΚ", "M": "МΜ", "O": "ОΟ", "P": "РΡ", "S": "Ѕ", "T": "ТΤ", "X": "ХΧ", "Y": "ΥҮ",
}
INVISIBLE = "\u200b\u200c\u200d\u2060\u00ad\ufeff"
MARKS = "\u0336\u0335\u0332\u0338\u0301\u0307"  # strokes and lines, and two that NFKC composes away
LEET = {"a": "4@", "e": "3", "i": "1!", "o": "0", "s": "5$", "t": "7", "l": "1", "g": "9", "b": "8"}
SEPARATORS = (" ", ".", "-", "*", "_", " . ", "|")
# hand-picked accented letters of European alphabets, typed precomposed ("śécrét"); "ø" and "ł" have no
# decomposition in Unicode, so they are beyond stripping accents on purpose
ACCENTED = {"a": "áàâäãåāą", "c": "çćč", "d": "ď", "e": "éèêëēėę", "g": "ğ", "i": "íìîïī", "l": "ł", "n": "ñńň",
            "o": "óòôöõøő", "r": "ř", "s": "śšş", "t": "ť", "u": "úùûüūů", "y": "ýÿ", "z": "źżž"}
_WORD = re.compile(r"[^\W\d_]{3,}")


def _styled(word: str, rng: random.Random) -> str:
    """Fullwidth, mathematical bold, sans-serif bold or monospace letters."""
    lower, upper = rng.choice(((0xFF41, 0xFF21), (0x1D41A, 0x1D400), (0x1D5EE, 0x1D5D4), (0x1D68A, 0x1D670)))
    out = []
    for ch in word:
        if "a" <= ch <= "z":
            out.append(chr(lower + ord(ch) - 97))
        elif "A" <= ch <= "Z":
            out.append(chr(upper + ord(ch) - 65))
        else:
            out.append(ch)
    return "".join(out)


def _homoglyphs(word: str, rng: random.Random) -> str:
    return "".join(rng.choice(LOOK_ALIKES[ch]) if ch in LOOK_ALIKES and rng.random() < 0.6 else ch for ch in word)


def _invisible(word: str, rng: random.Random) -> str:
    chars = list(word)
    for _ in range(rng.randint(1, 3)):
        chars.insert(rng.randint(1, len(chars) - 1), rng.choice(INVISIBLE))
    return "".join(chars)


def _marks(word: str, rng: random.Random) -> str:
    mark = rng.choice(MARKS)
    return "".join(ch + mark for ch in word)


def _leet(word: str, rng: random.Random) -> str:
    out = [rng.choice(LEET[ch.lower()]) if ch.lower() in LEET and rng.random() < 0.7 else ch for ch in word]
    if out[0] != word[0] and out[-1] != word[-1] and len(word) > 3:
        out[0] = word[0]  # keep a letter at one end at least, as people do: "sn4pch4t", not "5n4pch47"
    return "".join(out)


def _accents(word: str, rng: random.Random) -> str:
    """About half the letters that have accented forms typed with one, at least one in each word."""
    able = [k for k, ch in enumerate(word) if ch.lower() in ACCENTED]
    if not able:
        return word
    chosen = {k for k in able if rng.random() < 0.5} or {rng.choice(able)}
    out = []
    for k, ch in enumerate(word):
        if k in chosen:
            accented = rng.choice(ACCENTED[ch.lower()])
            ch = accented.upper() if ch.isupper() else accented
        out.append(ch)
    return "".join(out)


def _spelled(word: str, rng: random.Random) -> str:
    return rng.choice(SEPARATORS).join(word)


def _doubled(word: str, rng: random.Random) -> str:
    k = rng.randrange(len(word))
    return word[:k] + word[k] * rng.randint(3, 5) + word[k + 1:]


_ONE = {"homoglyphs": _homoglyphs, "invisible": _invisible, "styled": _styled, "marks": _marks,
        "leet": _leet, "spelled": _spelled, "doubled": _doubled, "accents": _accents}
ATTACKS = (*_ONE, "mixed")  # "mixed": each word its own attack of the first six (unchanged by "accents", added after)


def obfuscate_text(text: str, attack: str, rng: random.Random, word_share: float = 0.5) -> str:
    """``text`` with about ``word_share`` of its words of three or more letters obfuscated by ``attack``."""
    if attack not in ATTACKS:
        raise ValueError(f"unknown attack {attack!r}: one of {', '.join(ATTACKS)}")

    def word(m: re.Match) -> str:
        if rng.random() >= word_share:
            return m.group(0)
        kind = rng.choice(ATTACKS[:6]) if attack == "mixed" else attack
        return _ONE[kind](m.group(0), rng)

    return _WORD.sub(word, text)


def writer(conv) -> str:
    """The writer a conversation's obfuscation or padding is given to: the groomer (the sender of most
    risk-pattern messages), or in a benign conversation its opener."""
    senders = [m["sender"] for m in conv.messages if m.get("pattern")]
    if senders:
        return max(set(senders), key=senders.count)
    return conv.messages[0]["sender"] if conv.messages else ""


def each_drawn(convs, form: str, forms, stream: str, seed: int, what: str = "form") -> list:
    """``(conversation, random stream)`` for each conversation of an evaluation rewrite in ``form``,
    the stream seeded by ``stream``, the form, ``seed`` and the conversation (so the corpus's own
    splits stay the same texts); a ``form`` not in ``forms`` raises ``ValueError``."""
    if form not in forms:
        raise ValueError(f"unknown {what} {form!r}: one of none, {', '.join(forms)}")
    return [(c, random.Random(f"{stream}/{form}/{seed}/{c.conversation_id}")) for c in convs]


def obfuscate(convs, attack: str, seed: int = 1, word_share: float = 0.5):
    """Conversations with the messages of one writer each obfuscated by ``attack`` (see the module
    docstring); ``"none"`` returns them as they are. Labels, patterns, senders and times stay."""
    if attack == "none":
        return list(convs)
    out = []
    for c, rng in each_drawn(convs, attack, ATTACKS, "csadetect-grooming-obfuscate", seed, "attack"):
        author = writer(c)
        messages = [{**m, "text": obfuscate_text(m["text"], attack, rng, word_share)} if m["sender"] == author else m
                    for m in c.messages]
        out.append(replace(c, messages=messages))
    return out
