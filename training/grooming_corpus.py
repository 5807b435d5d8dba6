"""Synthetic, never-sexual chat corpus for the reference grooming classifier (DESIGN.md §5).

What it is
    Conversations between two participants, JSON Lines, one message a line:
    ``{"conversation_id", "sender", "sent_at" (RFC 3339), "text", "participants_minor",
    "pattern"}`` where ``pattern`` is the risk pattern the message shows (one of
    :data:`PATTERNS`) or ``null``. A second file holds one label a conversation:
    ``{"conversation_id", "label": "grooming"|"benign", "family", "participants_minor",
    "messages", "patterns"}``.

What it is not
    Real data, or anything sexual. Grooming conversations show only the *risk patterns* of the
    grooming-stage literature (O'Connell 2003; Black et al. 2015; PAN 2012 annotations), in
    plain non-sexual wording: asking the child's age, flattery and "friendship forming",
    relationship forming, risk assessment (are you alone, who reads your phone), exclusivity
    and secrecy, isolation from parents and friends, moving to a private channel, gifts and
    favours, meeting requests, and photo / camera requests phrased only as "send a selfie",
    "turn on your camera". The sexual stage of the literature is deliberately absent.

Hard negatives
    Most benign conversations share the vocabulary of the risk patterns: children planning a
    surprise party ("it's a secret, don't tell mom"), gamers asking each other's age and
    adding each other on another app, parents asking for the camera to be turned on for a call
    with grandma, a parent asking "are you home alone?", relatives sending a gift card, friends
    meeting at the mall, tutors asking for a picture of the homework, coaches praising a player.

Splits: train / calibration / evaluation
    Every template bank (risk patterns, child replies, benign families, chit-chat, slot values,
    slang, affixes) has phrasings used only for training and phrasings held out for evaluation;
    two benign families exist only in the evaluation split; each split has its own random
    stream. So the evaluation measures generalisation to unseen wording, not memorisation.
    The calibration split (for score calibration and thresholds) uses every fourth training
    phrasing of the risk patterns, benign families (first role) and chit-chat, which the
    training split never uses. No two splits share a conversation text. A shared synonym table (the
    "language") varies words alike in every split and class.

Languages
    English (the banks of ``training.grooming_banks``, re-exported here) and, in
    ``training.grooming_lang``, Dutch, German and French, each written natively with its own
    phrasings, slang, school years, names, apps and hard-negative families (e.g. the Dutch
    Sinterklaas surprise, German Wichteln, the French fête des mères), not translated templates. Every language has the same split rules and its own
    random stream; :func:`generate_splits` takes ``languages`` and gives each conversation its
    ``language``. Hard negatives in every language include family, school, sport coaching,
    gaming friends and dating between adults (``adults_dating``: scanned, as when a provider
    cannot rule out a minor), see :data:`HARD_NEGATIVE_FAMILIES`.

Deterministic by seed (and independent of PYTHONHASHSEED):
``python -m training.grooming_corpus --out DIR --n 2000 --seed 1 [--languages en,nl,de,fr]`` writes
``DIR/{train,calibration,eval}/{messages,conversations}.jsonl`` and ``DIR/manifest.json``.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import random
import re
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence

from training.grooming_banks import (BENIGN_FAMILIES, CHILD_REPLY, CHITCHAT, ENGLISH, GROOMER,
                                     HARD_NEGATIVE_FAMILIES, LANGUAGE_CODES, LANGUAGES, PATTERNS, PREFIX, SLANG,
                                     SLOTS, STRONG_PATTERNS, SUFFIX, SYNONYMS, _STAGE, language)
from training.grooming_lang import SPLITS, Family, Language, from_module, with_calibration, with_extra

# The phrase banks and the language registry live in training.grooming_banks; importers use them
# from here (``corpus.PATTERNS``, ``corpus.LANGUAGES``, ``corpus.language``...), so they are re-exported.
__all__ = [
    "BENIGN_FAMILIES", "CHILD_REPLY", "CHITCHAT", "ENGLISH", "GROOMER", "HARD_NEGATIVE_FAMILIES", "LANGUAGE_CODES",
    "LANGUAGES", "PATTERNS", "PREFIX", "SLANG", "SLOTS", "STRONG_PATTERNS", "SUFFIX", "SYNONYMS", "language",
    "SPLITS", "Family", "Language", "from_module", "with_extra",
    "GAP", "GAP_SUBTLE", "PRELUDE", "Conversation", "conversation_text", "generate", "generate_splits", "main",
    "noisify", "read_corpus", "write_corpus", "write_jsonl",
]


def _bank(split: str) -> str:
    return "eval" if split == "eval" else "train"


_SLOT_RE = re.compile(r"\{(\w+)\}")


def _pool(bank: dict, split: str, reserve: bool = False) -> list:
    """Phrasings of a bank for a split. "eval" uses the held-out phrasings. With ``reserve``, every
    fourth training phrasing (of lists of four or more) is kept for the "calibration" split, so
    calibration also sees phrasings the model never trained on; otherwise calibration shares the
    training phrasings. A far calibration split (see :func:`generate`) reserves in every bank."""
    if split == "eval":
        return list(bank.get("eval", []))
    items = list(bank.get("train", []))
    if not reserve:
        return items
    held = [t for i, t in enumerate(items) if len(items) >= 4 and i % 4 == 3]
    if split == "calibration":
        return held or items
    return [t for t in items if t not in held]


def _apart(values: list, split: str, far: bool) -> list:
    """Training values for a split. In a far calibration split (see :func:`generate`) the last of
    three or more is kept from training and the calibration split uses it with the first, as the
    evaluation split uses its own values with the first training one."""
    if not far or split == "eval" or len(values) < 3:
        return values
    return values[:-1] if split == "train" else [values[-1], values[0]]


def _fill(template: str, rng: random.Random, split: str, lang: Language = ENGLISH, far: bool = False) -> str:
    def repl(m):
        values = lang.slots[m.group(1)]
        pool = values["eval"] + values["train"][:1] if split == "eval" else _apart(values["train"], split, far)
        return rng.choice(pool)

    return _SLOT_RE.sub(repl, template)


def _slangify(text: str, rng: random.Random, split: str, p: float, lang: Language = ENGLISH,
              far: bool = False) -> str:
    table = lang.slang[_bank(split)]
    for phrase in sorted(table, key=len, reverse=True):
        if " " in phrase and phrase in text and rng.random() < p:
            text = text.replace(phrase, rng.choice(_apart(table[phrase], split, far)))

    def repl(m):
        w = m.group(0)
        if w in table and rng.random() < p:
            return rng.choice(_apart(table[w], split, far))
        return w

    return lang.word_re.sub(repl, text)


def _paraphrase(text: str, rng: random.Random, p: float, lang: Language = ENGLISH) -> str:
    def repl(m):
        w = m.group(0)
        alts = lang.synonyms.get(w)
        return rng.choice(alts) if alts and rng.random() < p else w

    return lang.word_re.sub(repl, text)


def _typo(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    idx = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    if not idx:
        return text
    i = rng.choice(idx)
    w = words[i]
    j = rng.randrange(1, len(w) - 1)
    kind = rng.random()
    if kind < 0.35:
        w = w[:j] + w[j + 1] + w[j] + w[j + 2:]  # swap
    elif kind < 0.65:
        w = w[:j] + w[j + 1:]  # drop
    else:
        w = w[:j] + w[j] + w[j:]  # double
    words[i] = w
    return " ".join(words)


def noisify(text: str, rng: random.Random, split: str, style: dict, lang: Language = ENGLISH,
            far: bool = False) -> str:
    """Chat-style variation: case, apostrophes, slang, typos, affixes. ``style`` is per sender."""
    text = _paraphrase(text, rng, style["synonyms"], lang)
    if rng.random() < style["lower"]:
        text = text.lower()
    text = _slangify(text, rng, split, style["slang"], lang, far)
    if rng.random() < style["apostrophes"]:
        text = text.replace("'", "")
    if rng.random() < style["typo"]:
        text = _typo(text, rng)
    if rng.random() < 0.12:
        text = rng.choice(lang.prefix[_bank(split)]) + text
    if rng.random() < 0.15:
        text = text.rstrip("?!.") + rng.choice(lang.suffix[_bank(split)])
    if rng.random() < 0.05:
        text = text.upper() if split != "eval" else text.capitalize()
    return text


def _style(rng: random.Random) -> dict:
    return {"lower": rng.uniform(0.5, 1.0), "slang": rng.uniform(0.0, 0.8),
            "apostrophes": rng.uniform(0.0, 0.9), "typo": rng.uniform(0.0, 0.25), "synonyms": rng.uniform(0.1, 0.6)}


# --------------------------------------------------------------------------------------------
# Conversation assembly
# --------------------------------------------------------------------------------------------
@dataclass
class Conversation:
    conversation_id: str
    label: str  # "grooming" | "benign"
    family: str
    participants_minor: bool
    messages: list = field(default_factory=list)  # dicts: sender, sent_at, text, pattern
    language: str = "en"

    def records(self) -> Iterator[dict]:
        for m in self.messages:
            yield {"conversation_id": self.conversation_id, "sender": m["sender"], "sent_at": m["sent_at"],
                   "text": m["text"], "participants_minor": self.participants_minor, "pattern": m["pattern"]}

    def label_record(self) -> dict:
        pats = sorted({m["pattern"] for m in self.messages if m["pattern"]}, key=_STAGE.get)
        return {"conversation_id": self.conversation_id, "label": self.label, "family": self.family,
                "participants_minor": self.participants_minor, "messages": len(self.messages), "patterns": pats,
                "language": self.language}


class _Builder:
    """Accumulates (speaker, text, pattern) turns, then stamps ids and times."""

    def __init__(self, rng: random.Random, split: str, lang: Language = ENGLISH, far: bool = False):
        self.rng, self.split, self.lang, self.far = rng, split, lang, far
        self.turns: list[tuple[int, str, Optional[str]]] = []
        self.styles = (_style(rng), _style(rng))

    def say(self, speaker: int, template: str, pattern: Optional[str] = None) -> None:
        text = _fill(template.lstrip("!"), self.rng, self.split, self.lang, self.far)
        self.turns.append((speaker, noisify(text, self.rng, self.split, self.styles[speaker], self.lang, self.far),
                           pattern))

    def chitchat(self, k: int) -> None:
        pool = _pool(self.lang.chitchat, self.split, reserve=True)
        speaker = self.rng.randrange(2)
        for _ in range(k):
            self.say(speaker, self.rng.choice(pool))
            if self.rng.random() < 0.75:  # mostly alternating, sometimes double-texting
                speaker = 1 - speaker

    def finish(self, cid: str, label: str, family: str, minor: bool) -> Conversation:
        rng = self.rng
        senders = [f"u{rng.randrange(10**6, 10**7)}", f"u{rng.randrange(10**6, 10**7)}"]
        while senders[1] == senders[0]:
            senders[1] = f"u{rng.randrange(10**6, 10**7)}"
        t = datetime(2025, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=rng.randrange(0, 300 * 86400))
        conv = Conversation(cid, label, family, minor, language=self.lang.code)
        for speaker, text, pattern in self.turns:
            gap = rng.choice([rng.randint(2, 90), rng.randint(60, 1800), rng.randint(3600, 20 * 3600)]
                             if rng.random() < 0.1 else [rng.randint(2, 240)])
            t += timedelta(seconds=gap)
            conv.messages.append({"sender": senders[speaker], "sent_at": t.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                  "text": text, "pattern": pattern})
        return conv


# Pacing (issue 17): early-stage grooming shows risk patterns from the first messages (an age
# question or "add me on snapchat" right after hello), so a conversation opens with 0-4 small-talk
# messages and a few messages of small talk lie between patterns. The benign families use the
# same prelude and gaps, so the hard negatives (a coach asking ages for the team list, a surprise
# kept from a sister) come just as early.
CALIBRATION_ONLY_FAMILY = "club_leader"  # with far_calibration: in the calibration split only (every language has it)
PRELUDE = (0, 4)  # small-talk messages before the first family/pattern line (were 1-8)
GAP = 2  # at most this many small-talk messages between two lines (were 4)
GAP_SUBTLE = 5  # ... between two patterns of a subtle grooming conversation (were 7)


def _grooming(rng: random.Random, split: str, cid: str, lang: Language = ENGLISH, far: bool = False) -> Conversation:
    b = _Builder(rng, split, lang, far)
    adult = rng.randrange(2)
    child = 1 - adult
    subtle = rng.random() < 0.2
    k = rng.randint(2, 3) if subtle else rng.randint(3, 7)
    strong = [p for p in PATTERNS if p in STRONG_PATTERNS]
    chosen = [rng.choice(strong)]  # a list, not a set: set order would vary with PYTHONHASHSEED
    while len(chosen) < k:
        p = rng.choice(PATTERNS)
        if p not in chosen:
            chosen.append(p)
    steps = chosen + [p for p in chosen if rng.random() < 0.25]  # some patterns come back
    steps.sort(key=lambda p: _STAGE[p] + rng.uniform(-2.0, 2.0))
    b.chitchat(rng.randint(*PRELUDE))
    gap_hi = GAP_SUBTLE if subtle else GAP
    for step in steps:
        b.say(adult, rng.choice(_pool(lang.groomer[step], split, reserve=True)), step)
        if rng.random() < 0.7:
            b.say(child, rng.choice(_pool(lang.child_reply[step], split, reserve=far)))
        b.chitchat(rng.randint(0, gap_hi))
    b.chitchat(rng.randint(0, 6))
    return b.finish(cid, "grooming", "grooming_subtle" if subtle else "grooming", True)


def _benign(rng: random.Random, split: str, cid: str, families: list, lang: Language = ENGLISH,
            far: bool = False) -> Conversation:
    fam = rng.choice(families)
    b = _Builder(rng, split, lang, far)
    a_lines, b_lines = _pool(fam.lines_a, split, reserve=True), _pool(fam.lines_b, split, reserve=far)
    b.chitchat(rng.randint(*PRELUDE))
    for _ in range(rng.randint(2, 6)):
        b.say(0, rng.choice(a_lines))
        if rng.random() < 0.7:
            b.say(1, rng.choice(b_lines))
        b.chitchat(rng.randint(0, GAP))
    b.chitchat(rng.randint(0, 6))
    if rng.random() < 0.5:  # either side may open the conversation
        b.turns = [(1 - s, t, p) for s, t, p in b.turns]
    return b.finish(cid, "benign", fam.name, fam.minor)


def _ordinary(rng: random.Random, split: str, cid: str, lang: Language = ENGLISH, far: bool = False) -> Conversation:
    b = _Builder(rng, split, lang, far)
    b.chitchat(rng.randint(6, 40))
    return b.finish(cid, "benign", "chitchat", True)


def generate(n: int, seed: int = 1, split: str = "train", grooming_share: float = 0.35,
             language_code: str = "en", extra_phrasings: int = 0,
             far_calibration: bool = False, written_calibration: bool = False) -> list[Conversation]:
    """``n`` conversations of one split in one language, deterministic in (n, seed, split,
    language); each language has its own random stream (English keeps its original one).
    ``extra_phrasings``: see :func:`language`.

    ``far_calibration`` (issue 17, eighth grooming round; not the shipped recipe) moves the
    calibration split as far from training as the evaluation split is in kind: besides every
    fourth phrasing of the risk-pattern, family (first role) and chit-chat banks, it also reserves
    every fourth child reply and family second-role line, the last of three or more slot values and
    slang variants of each (used with the first, as eval does), and :data:`CALIBRATION_ONLY_FAMILY`,
    which training then never sees. The evaluation split is the same texts either way.

    ``written_calibration`` (issue 17, eleventh grooming round; not the shipped recipe) builds the
    calibration split from written calibration-only material (``training.grooming_lang.calib_<code>``:
    phrasings, replies, family lines, two calibration-only families, slot values, slang, affixes;
    :func:`training.grooming_lang.with_calibration`) the way the evaluation split is built from its
    held-out material, so it is as far from training as the evaluation split is and shares none of its
    wording. The training and evaluation splits are the same texts either way."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}")
    if far_calibration and written_calibration:
        raise ValueError("far_calibration and written_calibration are two kinds of calibration split; choose one")
    lang = language(language_code, extra_phrasings)
    bank, tag = split, split
    if written_calibration and split == "calibration":
        lang = with_calibration(lang, importlib.import_module(f"training.grooming_lang.calib_{lang.code}"))
        bank, tag = "eval", "calibration-written"
    stream = f"{tag}/{seed}" if lang.code == "en" else f"{lang.code}/{tag}/{seed}"
    rng = random.Random(f"csadetect-grooming-corpus/{stream}")
    families = [f for f in lang.families if bank in f.splits and _pool(f.lines_a, bank, reserve=True)
                and not (far_calibration and split == "train" and f.name == CALIBRATION_ONLY_FAMILY)]
    prefix = "" if lang.code == "en" else f"{lang.code}-"
    out = []
    for i in range(n):
        cid = f"{prefix}{split}-{seed}-{i:06d}"
        r = rng.random()
        if r < grooming_share:
            out.append(_grooming(rng, bank, cid, lang, far_calibration))
        elif r < grooming_share + 0.12:
            out.append(_ordinary(rng, bank, cid, lang, far_calibration))
        else:
            out.append(_benign(rng, bank, cid, families, lang, far_calibration))
    return out


def conversation_text(conv: Conversation) -> str:
    return "\n".join(m["text"] for m in conv.messages)


def write_jsonl(path: Path, rows: Iterable[dict]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def generate_splits(n: int, seed: int = 1, n_eval: Optional[int] = None,
                    n_calibration: Optional[int] = None,
                    languages: Sequence[str] = ("en",), extra_phrasings: int = 0,
                    far_calibration: bool = False, written_calibration: bool = False) -> dict[str, list[Conversation]]:
    """``{"train": n, "calibration": n_calibration (default n/4), "eval": n_eval (default n/2)}``
    conversations *per language* (``languages``: codes of :data:`LANGUAGES`), each language's
    after the other's. A calibration or evaluation conversation whose text also occurs in an
    earlier split is dropped, so the splits never share a conversation text. ``far_calibration``,
    ``written_calibration``: see :func:`generate`."""
    sizes = {"train": n, "calibration": max(1, n // 4) if n_calibration is None else n_calibration,
             "eval": max(1, n // 2) if n_eval is None else n_eval}
    seen: set = set()
    out: dict[str, list[Conversation]] = {split: [] for split in SPLITS}
    for split in SPLITS:
        for code in languages:
            convs = [c for c in generate(sizes[split], seed, split, language_code=code, extra_phrasings=extra_phrasings,
                                         far_calibration=far_calibration, written_calibration=written_calibration)
                     if conversation_text(c) not in seen]
            seen |= {conversation_text(c) for c in convs}
            out[split] += convs
    return out


def write_corpus(out: Path, n: int, seed: int = 1, n_eval: Optional[int] = None,
                 n_calibration: Optional[int] = None, languages: Sequence[str] = ("en",)) -> dict:
    """Write the train, calibration and eval splits; returns the manifest (also manifest.json)."""
    out = Path(out)
    manifest = {"generator": "training.grooming_corpus", "seed": seed, "patterns": list(PATTERNS),
                "languages": list(languages), "splits": {}}
    for split, convs in generate_splits(n, seed, n_eval, n_calibration, languages).items():
        msgs = write_jsonl(out / split / "messages.jsonl", (r for c in convs for r in c.records()))
        write_jsonl(out / split / "conversations.jsonl", (c.label_record() for c in convs))
        digest = hashlib.sha256((out / split / "messages.jsonl").read_bytes()).hexdigest()
        manifest["splits"][split] = {
            "conversations": len(convs), "messages": msgs,
            "grooming": sum(c.label == "grooming" for c in convs),
            "families": sorted({c.family for c in convs}), "messages_sha256": digest}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def read_corpus(directory: Path, split: str) -> list[Conversation]:
    """Read a split written by :func:`write_corpus` back into conversations (sent_at order)."""
    directory = Path(directory) / split
    labels = {}
    with open(directory / "conversations.jsonl", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            labels[row["conversation_id"]] = row
    convs: dict[str, Conversation] = {}
    with open(directory / "messages.jsonl", encoding="utf-8") as fh:
        for line in fh:
            m = json.loads(line)
            lab = labels[m["conversation_id"]]
            c = convs.setdefault(m["conversation_id"], Conversation(
                m["conversation_id"], lab["label"], lab["family"], bool(lab["participants_minor"]),
                language=str(lab.get("language", "en"))))
            c.messages.append({"sender": m["sender"], "sent_at": m["sent_at"], "text": m["text"],
                               "pattern": m.get("pattern")})
    for c in convs.values():
        c.messages.sort(key=lambda m: m["sent_at"])
    return [convs[k] for k in labels if k in convs]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.grooming_corpus", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--n", type=int, default=2000, help="training conversations (default 2000)")
    p.add_argument("--n-eval", type=int, default=None, help="evaluation conversations (default n/2)")
    p.add_argument("--n-calibration", type=int, default=None, help="calibration conversations (default n/4)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--languages", default="en", help=f"comma-separated language codes (of {','.join(LANGUAGE_CODES)}; "
                                                     "default en)")
    args = p.parse_args(argv)
    languages = [code.strip() for code in args.languages.split(",") if code.strip()]
    unknown = [code for code in languages if code not in LANGUAGES]
    if unknown or not languages:
        print(f"error: --languages: unknown language {(unknown or [''])[0]!r}; one of {', '.join(LANGUAGE_CODES)}",
              file=sys.stderr)
        return 2
    if args.n < 1 or any(v is not None and v < 1 for v in (args.n_eval, args.n_calibration)):
        print("error: --n, --n-eval and --n-calibration must be positive", file=sys.stderr)
        return 2
    manifest = write_corpus(Path(args.out), args.n, args.seed, args.n_eval, args.n_calibration, languages)
    for split, info in manifest["splits"].items():
        print(f"{split}: {info['conversations']} conversations ({info['grooming']} grooming), "
              f"{info['messages']} messages -> {Path(args.out) / split}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
