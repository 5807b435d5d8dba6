"""Message granularity: the same words sent as more, shorter messages (bursts) or as fewer, longer
ones (issue 17, not named by it). People chat both ways, and a writer can choose either to move a
model that reads messages one by one and windows of 20 of them.

Two uses, kept apart (the benchmark's forms are not the training augmentation):

* :func:`regroup` rewrites a split in one of :data:`FORMS` for ``benchmarks/bench_bursts``:

  * ``pieces``: the writer's messages (the groomer, in a benign chat its opener; as in
    :mod:`training.grooming_obfuscate`) sent in pieces of one to three words;
  * ``halves``: the writer's messages of four words or more sent as two messages, cut at a word
    boundary near the middle;
  * ``joined``: each run of the writer's consecutive messages sent as one message;
  * ``everyone``: every sender's messages of four words or more sent as two (a bursty chat on both
    sides: what a benign chat between people who type this way looks like).

  A message's risk pattern stays with the last piece (``joined``: the run's first pattern), so a
  conversation keeps its label, its patterns and their count in all but ``joined``.
* :func:`augment` is the training-time change (``train_grooming --bursts SHARE``): in every
  training conversation, both labels and every sender alike, a message of four words or more is cut
  in two or three at random word boundaries with probability ``SHARE / 2``, and a message is joined
  to the one before it from the same sender, when at most one of them holds a pattern, with
  probability ``SHARE / 2``. Labels stay; it draws from a random stream of its own, so the corpus's
  own splits are the same texts with or without it.
* :func:`turns` joins every run of one sender's consecutive messages into one message
  (``train_grooming --turns`` reads every split so: a model of turns, which every form of
  :func:`regroup` reads the same).

None of these is in the shipped recipe (the grooming card's history, "Thirteenth round").
"""
from __future__ import annotations

import random
from dataclasses import replace

from training.grooming_obfuscate import each_drawn, writer

__all__ = ["FORMS", "regroup", "augment", "turns"]

FORMS = ("pieces", "halves", "joined", "everyone")


def _cut(words: list[str], cuts: list[int]) -> list[str]:
    bounds = [0, *sorted(set(cuts)), len(words)]
    return [" ".join(words[a:b]) for a, b in zip(bounds, bounds[1:]) if b > a]


def _as_pieces(m: dict, texts: list[str]) -> list[dict]:
    """``m`` sent as ``texts``: every piece keeps ``m``'s sender and time, the last its pattern."""
    if len(texts) <= 1:
        return [m]
    bare = {**m, "pattern": None}
    return [{**bare, "text": t} for t in texts[:-1]] + [{**m, "text": texts[-1]}]


def _joined(run: list[dict]) -> dict:
    pattern = next((m["pattern"] for m in run if m.get("pattern")), None)
    return {**run[-1], "text": " ".join(m["text"] for m in run), "pattern": pattern}


def _pieces(words: list[str], rng: random.Random) -> list[int]:
    cuts, at = [], 0
    while True:
        at += rng.randint(1, 3)
        if at >= len(words):
            return cuts
        cuts.append(at)


def _half(words: list[str], rng: random.Random) -> list[int]:
    mid = len(words) // 2
    return [min(max(1, mid + rng.choice((-1, 0, 1))), len(words) - 1)]


def regroup(convs, form: str, seed: int = 1):
    """Conversations rewritten in ``form`` (module docstring); ``"none"`` returns them as they are."""
    if form == "none":
        return list(convs)
    out = []
    for c, rng in each_drawn(convs, form, FORMS, "csadetect-grooming-bursts", seed):
        author = None if form == "everyone" else writer(c)
        messages: list[dict] = []
        for m in c.messages:
            mine = author is None or m["sender"] == author
            words = m["text"].split()
            if not mine:
                messages.append(m)
            elif form == "joined":  # the writer's message before this one, if any, was joined here too
                if messages and messages[-1]["sender"] == author:
                    messages[-1] = _joined([messages[-1], m])
                else:
                    messages.append(m)
            elif form == "pieces":
                messages += _as_pieces(m, _cut(words, _pieces(words, rng)))
            elif len(words) >= 4:
                messages += _as_pieces(m, _cut(words, _half(words, rng)))
            else:
                messages.append(m)
        out.append(replace(c, messages=messages))
    return out


def augment(convs, share: float, seed: int, cut: bool = True, join: bool = True,
            stream: str = "csadetect-grooming-bursts-train"):
    """Training conversations with messages cut and joined at random (module docstring); ``cut`` or
    ``join`` False leaves that change out (``training.grooming_granularity_check`` regroups the
    calibration split so, cuts alone and joins alone, from a ``stream`` of its own)."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must be between 0 and 1, got {share}")
    rng = random.Random(f"{stream}/{seed}")
    out = []
    for c in convs:
        messages: list[dict] = []
        for m in c.messages:
            words = m["text"].split()
            last = messages[-1] if messages else None
            if (join and last is not None and last["sender"] == m["sender"]
                    and not (last.get("pattern") and m.get("pattern")) and rng.random() < share / 2):
                messages[-1] = _joined([last, m])
            elif cut and len(words) >= 4 and rng.random() < share / 2:
                cuts = rng.sample(range(1, len(words)), min(rng.randint(1, 2), len(words) - 1))
                messages += _as_pieces(m, _cut(words, cuts))
            else:
                messages.append(m)
        out.append(replace(c, messages=messages))
    return out


def turns(convs):
    """Conversations with each run of one sender's consecutive messages joined into one message (a
    turn); a turn keeps its first pattern and its last message's time."""
    out = []
    for c in convs:
        messages: list[dict] = []
        for m in c.messages:
            if messages and messages[-1]["sender"] == m["sender"]:
                messages[-1] = _joined([messages[-1], m])
            else:
                messages.append(m)
        out.append(replace(c, messages=messages))
    return out
