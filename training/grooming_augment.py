"""Changes to the grooming corpus's conversations for issue 17's grooming rounds; none is in the
shipped recipe (see ``csadetect/models/cards/grooming-history.md``). Seventh round, training only: ``train_grooming
--novel-lines`` and ``--benign-replies``. Eighth round: :func:`balance_replies`, the *reply-balanced*
version of any split (``train_grooming --balanced-replies``, ``models evaluate --grooming
--balanced-replies``). Each takes conversations and returns new ones: labels, risk patterns, senders
and times stay, only message texts change, drawn from a random stream of its own, so the corpus's
own splits are the same texts with or without them.
"""
from __future__ import annotations

import random
from dataclasses import replace

__all__ = ["splice_novel_lines", "benign_replies", "child_replies", "reply_share", "balance_replies", "balanced_splits"]


def splice_novel_lines(convs, share: float, seed: int):
    """Training conversations in which about ``share`` of the messages without a risk pattern are
    replaced by a *novel* benign line: the start of that message spliced onto the end of another
    pattern-free line of a benign conversation of the same language (cut at random word
    boundaries). The hypothesis it tests: small talk the model never saw should be neutral, and a
    model that knows only the training lines reads any unfamiliar line as risky (issue 17, seventh
    grooming round; not borne out, see the grooming card's history). Risk patterns, labels and window labels are
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


def child_replies(convs) -> dict[str, list[str]]:
    """The children's replies of the grooming conversations, by language: the message right after a
    risk-pattern message, from the other sender, with no pattern of its own. The generator draws a
    reply after 70% of the groomer's lines; after the others this is the child's next small-talk line
    (the seventh round's ablation removed the same messages)."""
    replies: dict[str, list[str]] = {}
    for c in convs:
        if c.label == "grooming":
            for prev, m in zip(c.messages, c.messages[1:]):
                if prev["pattern"] and not m["pattern"] and m["sender"] != prev["sender"]:
                    replies.setdefault(c.language, []).append(m["text"])
    return replies


def reply_share(convs) -> dict[str, float]:
    """By language: the share of the grooming conversations' pattern-free messages that are
    children's replies (:func:`child_replies`). A benign conversation whose pattern-free messages
    are replies at this rate makes "this line is a reply" carry no information about the label."""
    replies = child_replies(convs)
    free: dict[str, int] = {}
    for c in convs:
        if c.label == "grooming":
            free[c.language] = free.get(c.language, 0) + sum(1 for m in c.messages if not m["pattern"])
    return {code: len(replies.get(code, [])) / n for code, n in free.items() if n}


def benign_replies(convs, share, seed: int, stream: str = "csadetect-grooming-benign-replies"):
    """Conversations in which about ``share`` of the pattern-free messages of *benign*
    conversations are replaced by a child's reply taken from a grooming conversation of the same
    language and the same list (:func:`child_replies`). ``share`` is a number, or a dict by language
    (:func:`reply_share`). Replies such as "why?", "maybe later" or "year 7" are everyday words; in
    the corpus they follow only a groomer's line, so a model can learn the replies instead of the
    risk patterns, and then any unfamiliar benign line that reads like a reply scores as grooming
    (issue 17, seventh grooming round). Labels and window labels are unchanged; the corpus's own
    random stream is not used, so the corpus's splits stay the same texts."""
    rng = random.Random(f"{stream}/{seed}")
    replies = child_replies(convs)
    out = []
    for c in convs:
        pool = replies.get(c.language)
        rate = share.get(c.language, 0.0) if isinstance(share, dict) else share
        if c.label != "benign" or not pool or rate <= 0:
            out.append(c)
            continue
        out.append(replace(c, messages=[{**m, "text": rng.choice(pool)} if not m["pattern"] and rng.random() < rate
                                        else m for m in c.messages]))
    return out


def balance_replies(convs, seed: int):
    """The *reply-balanced* version of a split (issue 17, eighth grooming round): its benign
    conversations' pattern-free messages become children's replies of the same split and language
    at the grooming conversations' own rate (:func:`reply_share`), so a reply alone no longer tells
    grooming from benign and only the other lines can. Evaluation on it measures what the model
    reads in the groomer's lines and their context; the plain split also rewards the generator's
    artefact (a reply follows only a groomer's line). Deterministic in (texts, seed)."""
    return benign_replies(convs, reply_share(convs), seed, stream="csadetect-grooming-balanced-replies")


def balanced_splits(splits: dict, seed: int) -> dict:
    """``generate_splits``' splits with the calibration and evaluation splits reply-balanced
    (:func:`balance_replies`, the corpus seed ``seed``) and the training split as it was: what
    ``train_grooming --balanced-replies`` selects, calibrates and reports on (and
    ``grooming_ensemble_check`` scores again)."""
    return {**splits, "calibration": balance_replies(splits["calibration"], seed),
            "eval": balance_replies(splits["eval"], seed)}
