"""A long chat message read in pieces (csadetect/models/grooming_text.py ``pieces``; issue 17, message
granularity): the model learned from messages of 1-17 words, and a writer's lines joined into one
long message were read as one diluted message. With ``grooming.undo_obfuscation`` (the default) a
message of more than 14 words is read as up to 4 consecutive pieces, each a row of the windows, in
batch scoring and in the stream alike.

Every conversation here is handwritten and never sexual."""
from __future__ import annotations

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.util import assert_that, equal_to
from hypothesis import given, settings
from hypothesis import strategies as st

from csadetect.config.profiles import FN_API_RUNNER
from csadetect.models import grooming_text as gt
from csadetect.models.grooming import GroomingModel
from csadetect.transforms.grooming import ClassifyGrooming
from tests.test_grooming_pipeline import GROOMING, _events

pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def model():
    return GroomingModel.load()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet="abcdé'?!", min_size=1, max_size=6), max_size=90), st.sampled_from([" ", "  ", "\n"]))
def test_pieces_keep_every_word_in_order_and_cut_only_long_messages(words, sep):
    text = sep.join(words)
    got = gt.pieces(text)
    if len(text.split()) <= gt.MAX_PIECE_WORDS:
        assert got == [text]  # as written, spacing and all
        return
    assert " ".join(got).split() == text.split()
    sizes = [len(p.split()) for p in got]
    assert len(got) == min(-(-len(text.split()) // gt.MAX_PIECE_WORDS), gt.MAX_PIECES)
    assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1
    assert max(sizes) <= gt.MAX_PIECE_WORDS or len(got) == gt.MAX_PIECES


def test_a_message_at_the_event_limit_keeps_at_most_four_vectors(model):
    long = " ".join(["word"] * 2500)  # 10,000 characters
    vectors, _, _ = model.encode_read([long, "hi there"])
    assert [v.shape for v in vectors] == [(gt.MAX_PIECES, model.dim), (1, model.dim)]


JOINED = [GROOMING[0], GROOMING[1], GROOMING[2], GROOMING[3],
          ("adult", " ".join(t for _, t in GROOMING[6:9])), ("kid", "ok"),
          ("adult", " ".join(t for _, t in GROOMING[9:11]))]


def _as_messages(lines):
    return [{"sender": s, "text": t} for s, t in lines]


def test_a_long_message_scores_as_its_pieces_sent_one_after_another(model):
    head = _as_messages(JOINED[:4])
    long = JOINED[4]
    cut = [(long[0], p) for p in gt.pieces(long[1])]
    assert len(cut) == 3
    read = model.score_window(head + _as_messages([long]))
    assert read == pytest.approx(model.score_window(head + _as_messages(cut)), abs=1e-5)
    pats = model.patterns(head + _as_messages([long]))
    apart = model.patterns(head + _as_messages(cut))
    assert len(pats) == 5
    for name in model.pattern_names:  # a long message's patterns: the largest of its pieces'
        assert pats[-1][name] == pytest.approx(max(p[name] for p in apart[-3:]), abs=1e-5)
    as_written = GroomingModel.load(undo_obfuscation=False)
    assert as_written.pieces([long[1]]) == [[long[1]]]
    whole = as_written.score_window(head + _as_messages([long]))
    assert abs(whole - read) > 1e-3  # the release before read it whole


def test_joined_lines_are_flagged_at_the_original_message_with_evidence_in_range(model):
    lines = _as_messages(JOINED)
    msgs = [{**m, "sent_at": f"2026-11-28T10:0{i}:00Z", "participants_minor": True} for i, m in enumerate(lines)]
    got = model.score_conversation(msgs)
    assert got["flagged"] and 0 <= got["flagged_at_message"] < len(msgs)
    assert got["evidence"] and all(0 <= e["message_index"] < len(msgs) for e in got["evidence"])
    as_written = GroomingModel.load(undo_obfuscation=False).score_conversation(msgs)
    assert got["score"] > as_written["score"]


@pytest.mark.parametrize("undo", [True, False])
def test_the_stream_reads_long_messages_as_batch_scoring_does(undo):
    events = _events("joined", JOINED)
    batch = GroomingModel.load(undo_obfuscation=undo).score_conversation(
        [{"sender": e.sender, "sent_at": e.occurred_at, "text": e.text, "participants_minor": True} for e in events])
    assert batch["flagged"] is undo  # read whole (the release before), the joined lines were not flagged
    until = batch["flagged_at_message"]
    want = [("joined", until, round(batch["score"], 4),
             sorted({e["message_index"] for e in batch["evidence"] if e["message_index"] <= until}))]
    p = beam.Pipeline(runner=FN_API_RUNNER)
    flagged = p | beam.Create(events) | ClassifyGrooming(undo_obfuscation=undo)
    seen = flagged | beam.Map(lambda r: (r["conversation_id"], r["flagged_at_message"], round(r["score"], 4),
                                         sorted({e["message_index"] for e in r["evidence"]})))
    assert_that(seen, equal_to(want if undo else []))
    p.run().wait_until_finish()


def test_vectors_of_pieces_are_the_vectors_of_the_pieces_as_messages(model):
    long = JOINED[6][1]
    (vectors,), _, _ = model.encode_read([long])
    np.testing.assert_allclose(vectors, model.encode(gt.pieces(long)), atol=1e-5)
