"""Message granularity (issue 17's thirteenth grooming round; nothing of it is in the shipped recipe):
the benchmark's regroupings (``training.grooming_bursts.regroup``), the training change
(``augment``, ``train_grooming --bursts``) and turns (``turns``, ``train_grooming --turns``). Each
must keep a conversation's words, in order, its label and its risk patterns, so that only how the
words are cut into messages changes.

Every conversation here is generated and never sexual."""
from __future__ import annotations

import pytest

from training import grooming_bursts as gb
from training import grooming_corpus as corpus
from training.grooming_obfuscate import writer


@pytest.fixture(scope="module")
def convs():
    return [c for code in ("en", "nl") for c in corpus.generate(40, seed=3, split="train", language_code=code)]


def _words(c, sender=None):
    return [w for m in c.messages if sender is None or m["sender"] == sender for w in m["text"].split()]


def _patterns(c):
    return sorted(m["pattern"] for m in c.messages if m.get("pattern"))


def _same_conversation(a, b):
    assert (a.conversation_id, a.label, a.family, a.language, a.participants_minor) == \
           (b.conversation_id, b.label, b.family, b.language, b.participants_minor)
    assert _words(a) == _words(b)


@pytest.mark.parametrize("form", gb.FORMS)
def test_a_regrouping_keeps_the_words_label_and_patterns(convs, form):
    out = gb.regroup(convs, form, seed=1)
    assert out == gb.regroup(convs, form, seed=1)
    assert sum(len(c.messages) for c in out) != sum(len(c.messages) for c in convs)
    for a, b in zip(convs, out):
        _same_conversation(a, b)
        if form != "joined":
            assert _patterns(a) == _patterns(b)
        else:  # a run's first pattern: never one that was not there, never more
            assert set(_patterns(b)) <= set(_patterns(a)) and len(_patterns(b)) <= len(_patterns(a))
        assert all(m["text"] and "_run" not in m for m in b.messages)
        assert all(set(m) == set(a.messages[0]) for m in b.messages)


@pytest.mark.parametrize("form", ("pieces", "halves", "joined"))
def test_only_the_writers_messages_are_regrouped(convs, form):
    for a, b in zip(convs, gb.regroup(convs, form, seed=1)):
        author = writer(a)
        assert [m for m in a.messages if m["sender"] != author] == [m for m in b.messages if m["sender"] != author]


def test_the_forms_cut_and_join_as_they_say(convs):
    for a, pieces, halves, joined, everyone in zip(convs, *(gb.regroup(convs, f, seed=1) for f in gb.FORMS)):
        author = writer(a)
        assert all(len(m["text"].split()) <= 3 for m in pieces.messages if m["sender"] == author)
        long_ = sum(len(m["text"].split()) >= 4 for m in a.messages if m["sender"] == author)
        assert len(halves.messages) == len(a.messages) + long_
        assert len(everyone.messages) == len(a.messages) + sum(len(m["text"].split()) >= 4 for m in a.messages)
        assert not any(x["sender"] == y["sender"] == author for x, y in zip(joined.messages, joined.messages[1:]))
        # a pattern stays on the message that ends its line
        for form in (pieces, halves):
            mine = [m for m in form.messages if m["sender"] == author]
            ends = [m for m in a.messages if m["sender"] == author]
            assert [m["pattern"] for m in mine if m["pattern"]] == [m["pattern"] for m in ends if m["pattern"]]
            assert all(m["text"].split()[-1] == n["text"].split()[-1] for m, n in
                       zip([m for m in mine if m["pattern"]], [m for m in ends if m["pattern"]]))


def test_an_unknown_form_is_refused(convs):
    assert gb.regroup(convs, "none") == convs
    with pytest.raises(ValueError, match="unknown form"):
        gb.regroup(convs, "sentences")


def test_augment_cuts_and_joins_without_changing_words_labels_or_patterns(convs):
    out = gb.augment(convs, 0.6, seed=1)
    assert out == gb.augment(convs, 0.6, seed=1) and out != gb.augment(convs, 0.6, seed=2)
    assert gb.augment(convs, 0.0, seed=1) == convs
    longer = shorter = 0
    for a, b in zip(convs, out):
        _same_conversation(a, b)
        assert _patterns(a) == _patterns(b)  # never two patterns joined, a cut keeps its pattern once
        longer += len(b.messages) > len(a.messages)
        shorter += len(b.messages) < len(a.messages)
    assert longer and shorter
    with pytest.raises(ValueError, match="between 0 and 1"):
        gb.augment(convs, 1.5, seed=1)


def test_turns_join_every_run_of_one_sender(convs):
    for a, b in zip(convs, gb.turns(convs)):
        _same_conversation(a, b)
        assert not any(x["sender"] == y["sender"] for x, y in zip(b.messages, b.messages[1:]))
        assert len(b.messages) == 1 + sum(x["sender"] != y["sender"] for x, y in zip(a.messages, a.messages[1:]))
    # every regrouping of one writer's messages reads as the same turns
    base = [[m["text"] for m in c.messages] for c in gb.turns(convs)]
    for form in gb.FORMS:
        assert [[m["text"] for m in c.messages] for c in gb.turns(gb.regroup(convs, form, seed=1))] == base


def test_train_grooming_takes_bursts_and_turns():
    import training.train_grooming as tg

    assert tg.parse_args([]).bursts == 0.0 and tg.parse_args([]).turns is False
    assert tg.parse_args(["--bursts", "0.3", "--turns"]).bursts == 0.3
    with pytest.raises(SystemExit) as stop:
        tg.parse_args(["--bursts", "1.5"])
    assert stop.value.code == 2
    args = tg.parse_args(["--n", "10", "--n-eval", "6", "--n-calibration", "6", "--languages", "en", "--turns",
                          "--bursts", "0.5"])
    splits = tg.splits_for(args, ["en"], 1, lambda *_: None)
    for name in ("train", "calibration", "eval"):
        assert not any(x["sender"] == y["sender"] for c in splits[name] for x, y in zip(c.messages, c.messages[1:]))


def test_cli_evaluate_regroup_says_so_and_scores_the_regrouped_split(tmp_path, capsys):
    from csadetect.cli.models import REWRITES
    from tests.grooming_cli import evaluate_rewritten

    assert set(REWRITES["regroup"][-1]) == set(gb.FORMS)
    plain, pieces, err, refused = evaluate_rewritten(tmp_path, capsys, "de", "regroup", "pieces")
    assert "regrouped: the same words sent as pieces of 1-3 words" in err
    assert pieces["data"].endswith("regrouped (pieces)")
    assert pieces["conversations"] == plain["conversations"] and pieces["messages"] > plain["messages"]
    assert refused == "error: --regroup 'nonsense' is not one of pieces, halves, joined, everyone"


def test_granularity_check_reads_each_windows_words_per_message_and_chooses_by_mean_ece():
    """``training.grooming_granularity_check`` (thirteenth round, not shipped): ``g`` after each message is
    the log of the mean words per message of the window ending there, and ``c`` the grid's value with the
    lowest mean ECE over the versions it is given."""
    import numpy as np

    from training import grooming_granularity_check as gc

    conv = corpus.generate(1, seed=3, split="train", language_code="en")[0]
    conv = type(conv)(**{**conv.__dict__, "messages": [{**conv.messages[0], "text": t}
                                                         for t in ("a b c d", "e f", "g", "h i j k l m")]})
    assert np.allclose(gc.log_words_per_message(conv, 2), np.log([4, 3, 1.5, 3.5]))
    assert np.allclose(gc.log_words_per_message(conv, 20), np.log([4, 3, 7 / 3, 13 / 4]))
    z = [np.array([0.0, 1.0])]
    assert np.allclose(gc.shifted(z, [np.array([1.0, 2.0])], 2.0, 1.5)[0], [-1.0, 2.0])
    # two versions of one split whose scores granularity moves apart (+1.5 and -1.5 with g = -1 and +1): one Platt
    # scaling fits both only once c takes the move away, at c = 1.5
    rng = np.random.default_rng(0)
    y = rng.random(3000) < 0.4
    true = np.where(y, 2.0, -2.0) + rng.normal(0, 1.0, 3000)

    def version(move):
        return [np.array([t + move]) for t in true], [np.array([-move / 1.5])] * len(true), y.astype(float)

    c, table = gc.choose_c([version(1.5), version(-1.5)], 0.0)
    assert c == 1.5 and len(table) == len(gc.GRID)
    assert np.mean(dict(table)[0.0]) > 2 * np.mean(dict(table)[1.5])
