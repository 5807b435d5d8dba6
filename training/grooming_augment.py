"""Training-only changes to the grooming corpus's conversations, for issue 17's seventh grooming
round (``training.train_grooming --novel-lines`` and ``--benign-replies``; neither is in the shipped
recipe, see the grooming model card). Each takes the training conversations and returns new ones:
labels, risk patterns, senders and times stay, only message texts change, drawn from a random stream
of its own, so the corpus's calibration and evaluation splits are the same texts with or without them.
"""
from __future__ import annotations

import random
from dataclasses import replace

__all__ = ["splice_novel_lines", "benign_replies"]


def splice_novel_lines(convs, share: float, seed: int):
    """Training conversations in which about ``share`` of the messages without a risk pattern are
    replaced by a *novel* benign line: the start of that message spliced onto the end of another
    pattern-free line of a benign conversation of the same language (cut at random word
    boundaries). The hypothesis it tests: small talk the model never saw should be neutral, and a
    model that knows only the training lines reads any unfamiliar line as risky (issue 17, seventh
    grooming round; not borne out, see the model card). Risk patterns, labels and window labels are
    unchanged; the corpus's own random stream is not used, so the calibration and evaluation splits
    stay identical."""
    rng = random.Random(f"csadetect-grooming-novel-lines/{seed}")
    pool: dict[str, list[list[str]]] = {}
    for c in convs:
        if c.label == "benign":
            pool.setdefault(c.language, []).extend(m["text"].split() for m in c.messages if not m["pattern"])
    out = []
    for c in convs:
        donors = pool.get(c.language)
        messages = []
        for m in c.messages:
            words = m["text"].split()
            if not m["pattern"] and donors and words and rng.random() < share:
                other = rng.choice(donors)
                if other:
                    novel = " ".join(words[:rng.randint(1, len(words))] + other[rng.randrange(len(other)):])
                    if novel != m["text"]:
                        m = {**m, "text": novel}
            messages.append(m)
        out.append(replace(c, messages=messages))
    return out


def benign_replies(convs, share: float, seed: int):
    """Training conversations in which about ``share`` of the pattern-free messages of *benign*
    conversations are replaced by a child's reply taken from a grooming training conversation of
    the same language (the message right after a risk-pattern message, from the other sender).
    Replies such as "why?", "maybe later" or "year 7" are everyday words; in the corpus they
    follow only a groomer's line, so a model can learn the replies instead of the risk patterns,
    and then any unfamiliar benign line that reads like a reply scores as grooming (issue 17,
    seventh grooming round). Labels and window labels are unchanged; the corpus's own random
    stream is not used, so the calibration and evaluation splits stay identical."""
    rng = random.Random(f"csadetect-grooming-benign-replies/{seed}")
    replies: dict[str, list[str]] = {}
    for c in convs:
        if c.label == "grooming":
            for prev, m in zip(c.messages, c.messages[1:]):
                if prev["pattern"] and not m["pattern"] and m["sender"] != prev["sender"]:
                    replies.setdefault(c.language, []).append(m["text"])
    out = []
    for c in convs:
        pool = replies.get(c.language)
        if c.label != "benign" or not pool:
            out.append(c)
            continue
        out.append(replace(c, messages=[{**m, "text": rng.choice(pool)} if not m["pattern"] and rng.random() < share
                                        else m for m in c.messages]))
    return out
