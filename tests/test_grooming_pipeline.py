"""Per-conversation grooming state in Beam: flags once with evidence, scans only conversations with
a minor, and the event-time timer clears the state after inactivity; micro-batched encoding plus
the numpy window model give what the per-message path gave."""
from __future__ import annotations

import datetime as dt

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.test_stream import TestStream as BeamTestStream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.window import GlobalWindow, IntervalWindow
from apache_beam.utils.timestamp import Duration, Timestamp
from apache_beam.utils.windowed_value import PANE_INFO_UNKNOWN, PaneInfo, PaneInfoTiming, WindowedValue

from csadetect.config.profiles import FN_API_RUNNER
from csadetect.events.event import Event
from csadetect.transforms.grooming import ClassifyGrooming, ConversationStateFn, EncodeMessagesFn

pytest.importorskip("tensorflow")

GROOMING = [
    ("adult", "hey, saw your drawings online, you are really talented"),
    ("kid", "thanks!! i like drawing anime"),
    ("adult", "how old are you? you seem really mature for your age"),
    ("kid", "13"),
    ("adult", "are your parents around when you are online? is anyone watching"),
    ("kid", "no they are at work"),
    ("adult", "this is just between us ok, don't tell your mom about me, she wouldn't understand"),
    ("adult", "let's move to a private app, add me on snap, delete this chat"),
    ("adult", "i can buy you a gift card for your game, you deserve it"),
    ("adult", "we should meet up this weekend, i can pick you up, don't tell anyone"),
    ("adult", "send me a selfie so i know it's really you"),
]
BENIGN = [
    ("mom", "did you finish your homework?"),
    ("kid", "almost, just maths left"),
    ("mom", "ok, grandma wants a video call at 6, turn on your camera then"),
    ("kid", "ok! can we keep the surprise party a secret from dad"),
    ("mom", "yes it's our secret, don't tell him. i'll get the gift card for his present"),
    ("kid", "where do we meet after practice?"),
    ("mom", "at the school gate, coach said practice ends at 5"),
]


def _events(cid, lines, minor=True, start="2026-11-28T10:00:00"):
    t0 = dt.datetime.fromisoformat(start).replace(tzinfo=dt.timezone.utc)
    out = []
    for i, (sender, text) in enumerate(lines):
        when = (t0 + dt.timedelta(minutes=i)).isoformat().replace("+00:00", "Z")
        out.append(Event(event_id=f"{cid}-{i}", provider="p", service="chat", kind="text", occurred_at=when,
                         account=f"acct-{sender}", conversation_id=cid, sender=sender, text=text,
                         participants_minor=minor))
    return out


def test_flags_grooming_once_with_evidence_and_skips_adults_and_benign():
    events = _events("groom", GROOMING) + _events("family", BENIGN) + _events("adults", GROOMING, minor=False)
    with BeamTestPipeline(runner=FN_API_RUNNER) as p:
        flagged = p | beam.Create(events) | ClassifyGrooming()

        def check(results):
            assert [r["conversation_id"] for r in results] == ["groom"], [r["conversation_id"] for r in results]
            r = results[0]
            assert 0 <= r["flagged_at_message"] < len(GROOMING)
            assert r["score"] >= r["threshold"]
            assert r["evidence"], "a flag must carry evidence"
            assert all({"pattern", "message_index", "score"} <= set(e) for e in r["evidence"])
            assert {m["index"] for m in r["messages"]} >= {e["message_index"] for e in r["evidence"]}

        assert_that(flagged, check)


def test_state_is_cleared_after_inactivity():
    """Two bursts of the same conversation, 10 days apart: the timer clears the first burst's state,
    so the second burst starts again at message index 0 (and can be flagged again)."""
    first = _events("c1", GROOMING, start="2026-11-01T10:00:00")
    second = _events("c1", GROOMING, start="2026-11-11T10:00:00")
    stamp = lambda e: beam.window.TimestampedValue(e, dt.datetime.fromisoformat(e.occurred_at.replace("Z", "+00:00")).timestamp())  # noqa: E731
    stream = (
        BeamTestStream()
        .add_elements([stamp(e) for e in first])
        .advance_watermark_to(dt.datetime(2026, 11, 10, tzinfo=dt.timezone.utc).timestamp())
        .add_elements([stamp(e) for e in second])
        .advance_watermark_to_infinity()
    )
    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = True
    with BeamTestPipeline(runner="BundleBasedDirectRunner", options=options) as p:
        flagged = p | stream | ClassifyGrooming(inactivity_seconds=3 * 24 * 3600)
        assert_that(
            flagged | beam.Map(lambda r: (r["conversation_id"], r["event_id"].split("-")[0], r["flagged_at_message"] < len(GROOMING))),
            equal_to([("c1", "c1", True), ("c1", "c1", True)]),
        )


def test_without_inactivity_gap_a_conversation_is_flagged_once():
    events = _events("c2", GROOMING) + _events("c2", GROOMING, start="2026-11-28T11:00:00")
    with BeamTestPipeline(runner=FN_API_RUNNER) as p:
        flagged = p | beam.Create(events) | ClassifyGrooming()
        assert_that(flagged | beam.Map(lambda r: r["conversation_id"]), equal_to(["c2"]))


# ------------------------------------------------------------------ micro-batched encoding
INACTIVITY = 7 * 24 * 3600
SECRETS = [  # a second grooming-pattern conversation (never sexual)
    ("man", "hi, you play minecraft too?"),
    ("girl", "yes every day"),
    ("man", "cool, how old are you"),
    ("girl", "12"),
    ("man", "you seem older. do your parents check your messages?"),
    ("girl", "not really"),
    ("man", "good, keep our chats a secret, ok? don't tell your parents"),
    ("man", "i'll get you a gift card for skins if you add me on another app"),
    ("man", "send me a photo of yourself, just for me"),
    ("man", "we could meet at the park, i'll come alone, don't tell anyone"),
]


@pytest.fixture(scope="module")
def model():
    from csadetect.models.grooming import GroomingModel

    return GroomingModel.load()


class _State:
    """ReadModifyWriteState through the DoFn's PickleCoder, as a runner stores it."""

    def __init__(self):
        self.coder, self.raw = ConversationStateFn.WINDOW.coder, None

    def read(self):
        return None if self.raw is None else self.coder.decode(self.raw)

    def write(self, value):
        self.raw = self.coder.encode(value)

    def clear(self):
        self.raw = None


class _Timer:
    ts = None

    def set(self, ts):
        self.ts = ts


def _arrivals():
    """Three conversations interleaved; in two of them some messages arrive out of ``occurred_at``
    order (a later message before an earlier one). Element timestamps are arrival times."""
    groom, family, secrets = _events("groom", GROOMING), _events("family", BENIGN), _events("secrets", SECRETS)
    groom[3], groom[5] = groom[5], groom[3]  # 5 arrives before 3 and 4
    groom[8], groom[9] = groom[9], groom[8]
    secrets[0], secrets[1] = secrets[1], secrets[0]
    secrets[6], secrets[8] = secrets[8], secrets[6]
    order, queues = [], [list(groom), list(family), list(secrets)]
    k = 0
    while any(queues):
        q = queues[k % 3]
        if q:
            order.append(q.pop(0))
        k += 1
    t0 = Timestamp.of(dt.datetime(2026, 11, 28, 12, tzinfo=dt.timezone.utc).timestamp())
    return [(e, t0 + Duration(seconds=7 * i)) for i, e in enumerate(order)]


def _per_message_reference(model, arrivals, threshold=None):
    """ConversationStateFn before micro-batching, step by step: one encoder call and one Keras
    window-model call per arriving message, the language decided from the window's texts until the
    tenth message (then kept), its calibration and threshold applied. Returns (flags, state per
    conversation)."""
    from csadetect.models.language import DECIDE_AFTER, Language

    states, out = {}, []
    for event, ts in arrivals:
        st = states.setdefault(event.conversation_id,
                               {"window": [], "info": {"count": 0, "flagged": False, "last": None}, "timer": None})
        info = st["info"]
        last = ts if info["last"] is None else max(Timestamp.of(info["last"]), ts)
        vector = model.encode_read([event.text])[0][0]  # (pieces, dim): a message of 15+ words is read in pieces
        message = {"index": info["count"], "event_id": event.event_id, "sender": event.sender,
                   "account": event.account, "sent_at": event.occurred_at, "text": event.text, "vector": vector,
                   "provider": event.provider, "service": event.service}
        window = st["window"] + [message]
        window.sort(key=lambda m: (m["sent_at"], m["index"]))
        st["window"] = window = window[-model.window:]
        info["count"] += 1
        info["last"] = float(last.micros) / 1e6
        st["timer"] = last + Duration(seconds=INACTIVITY)
        if info["flagged"]:
            continue
        if info.get("language") is not None:
            language = Language(*info["language"])
        else:
            language = model.language_of([m["text"] for m in window])
            if info["count"] >= DECIDE_AFTER:
                info["language"] = tuple(language)
        risk, _ = model.score_encoded_windows([(np.concatenate([m["vector"] for m in window]),
                                                [m["sender"] for m in window for _ in m["vector"]])], engine="tf")
        score = float(model.calibrate(risk, language.code)[0])
        thr = model.threshold_for(language.code, threshold)
        if score < thr:
            continue
        info["flagged"] = True
        evidence = [{"pattern": name, "message_index": m["index"], "score": round(p, 4)}
                    for m, probs in zip(window, model.patterns([{"text": m["text"], "sender": m["sender"]}
                                                                for m in window]))
                    for name, p in probs.items() if p >= model.evidence_threshold]
        out.append({
            "conversation_id": event.conversation_id, "score": score, "threshold": thr,
            "language": language.code, "language_supported": language.supported,
            "flagged_at_message": message["index"],
            "evidence": sorted(evidence, key=lambda e: (e["message_index"], -e["score"])),
            "model_version": model.version,
            "messages": [{k: m[k] for k in ("index", "event_id", "sender", "sent_at", "text")} for m in window],
            "accounts": sorted({m["account"] for m in window}),
            "sender_accounts": sorted({(m["sender"], m["account"]) for m in window}), "provider": event.provider,
            "service": event.service, "event_id": event.event_id, "occurred_at": event.occurred_at,
            "order": event.order_for("grooming"),
        })
    return out, states


def _assert_same_flags(got, want):
    assert [f["conversation_id"] for f in got] == [f["conversation_id"] for f in want]
    for g, w in zip(got, want):
        assert g["score"] == pytest.approx(w["score"], abs=1e-5)
        assert [(e["pattern"], e["message_index"]) for e in g["evidence"]] == \
               [(e["pattern"], e["message_index"]) for e in w["evidence"]]
        for eg, ew in zip(g["evidence"], w["evidence"]):
            assert eg["score"] == pytest.approx(ew["score"], abs=2e-4)
        same = {k: v for k, v in g.items() if k not in ("score", "evidence")}
        assert same == {k: v for k, v in w.items() if k not in ("score", "evidence")}


def test_batched_encode_path_equals_per_message_path(model):
    """EncodeMessagesFn (micro-batches, flushed when full and at the end of a bundle) +
    ConversationStateFn (numpy window model) give the flags, scores, evidence, state and timers
    of the per-message path, with conversations interleaved and messages out of order."""
    from apache_beam.utils import shared

    arrivals = _arrivals()
    want, want_states = _per_message_reference(model, arrivals)
    assert {f["conversation_id"] for f in want} == {"groom", "secrets"}  # the test needs real flags

    handle = shared.Shared()
    encode = EncodeMessagesFn(None, handle, max_batch_size=4)
    state_fn = ConversationStateFn(None, None, INACTIVITY, handle)
    encode.setup()
    state_fn.setup()
    assert state_fn.model is encode.model  # one model per process
    encoded = []
    for start in range(0, len(arrivals), 7):  # bundles of 7 arrivals: batches of 4 and 3
        encode.start_bundle()
        for event, ts in arrivals[start:start + 7]:
            encoded += encode.process((event.conversation_id, event), timestamp=ts, window=GlobalWindow(),
                                      pane=PANE_INFO_UNKNOWN)
        encoded += encode.finish_bundle()
    assert [wv.value[1][0].event_id for wv in encoded] == [e.event_id for e, _ in arrivals]
    assert [wv.timestamp for wv in encoded] == [ts for _, ts in arrivals]

    states, got = {}, []
    for wv in encoded:
        cid = wv.value[0]
        st = states.setdefault(cid, (_State(), _State(), _Timer()))
        got += state_fn.process(wv.value, timestamp=wv.timestamp, window_state=st[0], info_state=st[1],
                                expiry=st[2])
    _assert_same_flags(got, want)
    for cid, (window_state, info_state, timer) in states.items():
        ref = want_states[cid]
        assert info_state.read() == ref["info"]
        assert timer.ts == ref["timer"]
        window = window_state.read()
        strip = lambda ms: [{k: v for k, v in m.items() if k not in ("vector", "read")} for m in ms]  # noqa: E731
        assert strip(window) == strip(ref["window"])
        # each message's text as the model read it is kept beside it (None: as written)
        assert [m["read"] if m["read"] is not None else m["text"] for m in window] == model.readable(
            [m["text"] for m in window])
        for m, r in zip(window, ref["window"]):
            np.testing.assert_allclose(np.frombuffer(m["vector"], "<f4"), r["vector"].ravel(), atol=1e-5, rtol=0)


def test_encode_keeps_each_elements_timestamp_window_and_pane(model):
    from apache_beam.utils import shared

    encode = EncodeMessagesFn(None, shared.Shared(), max_batch_size=3)
    encode.setup()
    events = _events("c", GROOMING[:5])
    windows = [IntervalWindow(0, 100), IntervalWindow(50, 150), GlobalWindow(), IntervalWindow(0, 100),
               IntervalWindow(7, 8)]
    panes = [PANE_INFO_UNKNOWN, PaneInfo(True, False, PaneInfoTiming.EARLY, 0, -1)] + [PANE_INFO_UNKNOWN] * 3
    stamps = [Timestamp(30), Timestamp(60), Timestamp(5), Timestamp(99), Timestamp(7)]
    encode.start_bundle()
    out = []
    for e, w, p, t in zip(events, windows, panes, stamps):
        out += encode.process(("c", e), timestamp=t, window=w, pane=p)
    assert len(out) == 3  # the first batch of 3, flushed when full
    out += encode.finish_bundle()
    assert all(isinstance(wv, WindowedValue) for wv in out)
    assert [wv.timestamp for wv in out] == stamps
    assert [tuple(wv.windows) for wv in out] == [(w,) for w in windows]
    assert [wv.pane_info for wv in out] == panes
    single = np.stack([model.encode([e.text])[0] for e in events])
    got = np.stack([np.frombuffer(wv.value[1][1], "<f4") for wv in out])
    np.testing.assert_allclose(got, single, atol=1e-5, rtol=0)
    assert [wv.value[1][0] for wv in out] == events
    encode.start_bundle()
    assert list(encode.finish_bundle()) == []  # an empty bundle emits nothing


def test_state_fn_reads_bare_events_and_earlier_state(model):
    """Elements queued by the per-message version (bare events) and state it wrote (ndarray
    vectors) are still handled, with the same result."""
    from apache_beam.utils import shared

    arrivals = [(e, t) for e, t in _arrivals() if e.conversation_id == "groom"]
    want, _ = _per_message_reference(model, arrivals)
    state_fn = ConversationStateFn(None, None, INACTIVITY, shared.Shared())
    state_fn.setup()
    window_state, info_state, timer = _State(), _State(), _Timer()
    got = []
    for i, (event, ts) in enumerate(arrivals):
        if i == 4:  # as written before: vectors as ndarrays
            window_state.write([{**m, "vector": np.frombuffer(m["vector"], "<f4").copy()}
                                for m in window_state.read()])
        got += state_fn.process(("groom", event), timestamp=ts, window_state=window_state, info_state=info_state,
                                expiry=timer)
    _assert_same_flags(got, want)


def test_pipeline_streaming_equals_per_message_path(model):
    """The whole transform in streaming mode (TestStream, several messages per bundle), messages
    out of order: the same flags as the per-message path."""
    arrivals = _arrivals()
    want, _ = _per_message_reference(model, arrivals)
    stream = BeamTestStream()
    for start in range(0, len(arrivals), 5):
        stream = stream.add_elements([beam.window.TimestampedValue(e, ts) for e, ts in arrivals[start:start + 5]])
    stream = stream.advance_watermark_to_infinity()
    options = PipelineOptions()
    options.view_as(StandardOptions).streaming = True
    with BeamTestPipeline(runner="BundleBasedDirectRunner", options=options) as p:
        flagged = p | stream | ClassifyGrooming(inactivity_seconds=INACTIVITY, encode_batch_size=3)

        def check(results):
            _assert_same_flags(sorted(results, key=lambda r: r["conversation_id"]),
                               sorted(want, key=lambda r: r["conversation_id"]))

        assert_that(flagged, check)


# ------------------------------------------------------------------ languages
ITALIAN = [  # a language the reference model does not support (benign)
    ("a", "ciao, come stai oggi?"), ("b", "bene grazie, e tu?"), ("a", "tutto bene, hai finito i compiti di matematica?"),
    ("b", "quasi, mi manca solo un esercizio"), ("a", "domani abbiamo la verifica di storia"), ("b", "lo so, che ansia"),
    ("a", "ci vediamo a scuola allora"), ("b", "va bene, a domani"), ("a", "ricordati il libro di inglese"),
    ("b", "certo, grazie"), ("a", "ciao ciao"),
]


def _counters(result, *names):
    from apache_beam.metrics.metric import MetricsFilter

    return {n: sum(c.committed for c in result.metrics().query(MetricsFilter().with_name(n))["counters"]) for n in names}


def test_flag_carries_language_and_unsupported_language_is_counted_not_scored():
    """English grooming is flagged with language en; an Italian conversation is neither scored as
    English nor flagged, and is counted once by its language code (no id, no text)."""
    events = _events("groom", GROOMING) + _events("ital", ITALIAN) + _events("short-it", ITALIAN[:4])
    p = beam.Pipeline(runner=FN_API_RUNNER)
    flagged = p | beam.Create(events) | ClassifyGrooming()
    assert_that(flagged | beam.Map(lambda r: (r["conversation_id"], r["language"], r["language_supported"])),
                equal_to([("groom", "en", True)]))
    result = p.run()
    result.wait_until_finish()
    counts = _counters(result, "grooming_unsupported_language", "grooming_unsupported_language_it")
    # "ital" is decided at its tenth message; "short-it" (4 messages) when its state expires
    assert counts == {"grooming_unsupported_language": 2, "grooming_unsupported_language_it": 2}, counts


def test_unsupported_policy_is_checked():
    with pytest.raises(ValueError):
        ClassifyGrooming(unsupported_languages="english")


def test_a_decoy_opening_in_another_language_does_not_hide_the_grooming_after_it():
    """Eleven Italian lines, then English grooming: the conversation is decided Italian at its tenth
    message, re-decided from its latest ten messages every five, and flagged in English at the
    message where batch scoring flags it; an Italian conversation stays unsupported."""
    from csadetect.models.grooming import GroomingModel

    decoy = ITALIAN + GROOMING
    want = GroomingModel.load().score_conversation(
        [{"sender": e.sender, "sent_at": e.occurred_at, "text": e.text, "participants_minor": True}
         for e in _events("decoy", decoy)])
    assert want["flagged"] and want["language"] == "en" and want["flagged_at_message"] >= len(ITALIAN)
    p = beam.Pipeline(runner=FN_API_RUNNER)
    flagged = p | beam.Create(_events("decoy", decoy) + _events("ital", ITALIAN * 3)) | ClassifyGrooming()
    assert_that(flagged | beam.Map(lambda r: (r["conversation_id"], r["language"], r["flagged_at_message"])),
                equal_to([("decoy", "en", want["flagged_at_message"])]))
    result = p.run()
    result.wait_until_finish()
    counts = _counters(result, "grooming_unsupported_language_it", "grooming_language_redecided_supported")
    assert counts == {"grooming_unsupported_language_it": 2, "grooming_language_redecided_supported": 1}, counts


def test_grooming_padded_with_another_language_is_flagged_in_the_pipeline(monkeypatch):
    """Each of the groomer's messages padded with two Polish sentences: the stream reads the messages
    without the padding (csadetect.models.language.without_foreign_runs) and flags the conversation
    in English where batch scoring does; read as written and without the sentence vote (the release
    before), it was taken for Polish and never scored."""
    from csadetect.models import language as langid
    from csadetect.models.grooming import GroomingModel
    from training.grooming_padding import FILLER

    polish = FILLER["pl"]
    padded = [(s, f"{t} {polish[i % 5]} {polish[(i + 2) % 5]}" if s == "adult" else t)
              for i, (s, t) in enumerate(GROOMING)]
    messages = [{"sender": e.sender, "sent_at": e.occurred_at, "text": e.text, "participants_minor": True}
                for e in _events("padded", padded)]
    want = GroomingModel.load().score_conversation(messages)
    assert want["flagged"] and want["language"] == "en"
    with monkeypatch.context() as m:
        m.setattr(langid, "_sentence_vote", lambda texts, supported: None)
        before = GroomingModel.load(undo_obfuscation=False).score_conversation(messages)
    assert before["language"] == "pl" and not before["flagged"]
    p = beam.Pipeline(runner=FN_API_RUNNER)
    flagged = p | beam.Create(_events("padded", padded)) | ClassifyGrooming()
    assert_that(flagged | beam.Map(lambda r: (r["conversation_id"], r["language"], r["flagged_at_message"])),
                equal_to([("padded", "en", want["flagged_at_message"])]))
    p.run().wait_until_finish()


def test_padding_sent_as_messages_of_their_own_is_read_as_empty_in_the_stream_as_in_batch():
    """Every groomer message followed by one of their own wholly in Polish: the stream reads those as
    empty messages once the conversation is decided in English, as batch scoring does, and flags it
    at the same message."""
    from csadetect.models.grooming import GroomingModel
    from training.grooming_padding import FILLER

    polish = FILLER["pl"]
    lines = []
    for i, (s, t) in enumerate(GROOMING):
        lines.append((s, t))
        if s == "adult":
            lines.append((s, f"{polish[i % 5]} {polish[(i + 3) % 5]}"))
    want = GroomingModel.load().score_conversation(
        [{"sender": e.sender, "sent_at": e.occurred_at, "text": e.text, "participants_minor": True}
         for e in _events("interleaved", lines)])
    assert want["flagged"] and want["language"] == "en"
    p = beam.Pipeline(runner=FN_API_RUNNER)
    flagged = p | beam.Create(_events("interleaved", lines)) | ClassifyGrooming()
    assert_that(flagged | beam.Map(lambda r: (r["conversation_id"], r["language"], r["flagged_at_message"])),
                equal_to([("interleaved", "en", want["flagged_at_message"])]))
    p.run().wait_until_finish()


def test_the_encoder_marks_messages_wholly_in_another_language_and_the_state_fn_reads_older_pairs(model):
    """EncodeMessagesFn reads each message once for its vector and its foreign mark (the state fn no
    longer reads it again); an (event, vector) pair queued by the version before the mark is still
    marked by the state fn, with the same flags."""
    from apache_beam.utils import shared
    from training.grooming_padding import FILLER

    handle = shared.Shared()
    encode = EncodeMessagesFn(None, handle, max_batch_size=8)
    encode.setup()
    polish = " ".join(FILLER["pl"][:2])
    lines = [(s, t) for s, t in GROOMING[:6]] + [("adult", polish)] + list(GROOMING[6:])
    events = _events("marked", lines)
    encode.start_bundle()
    out = [wv for e in events for wv in encode.process(("marked", e), timestamp=Timestamp(0), window=GlobalWindow(),
                                                       pane=PANE_INFO_UNKNOWN)]
    out += encode.finish_bundle()
    assert [wv.value[1][2] for wv in out] == [t == polish for _, t in lines]
    assert all(len(wv.value[1]) == 4 for wv in out)
    runs = []
    for values in ([wv.value[1] for wv in out], [wv.value[1][:3] for wv in out], [wv.value[1][:2] for wv in out]):
        state_fn = ConversationStateFn(None, None, INACTIVITY, handle)
        state_fn.setup()
        window_state, info_state, timer = _State(), _State(), _Timer()
        got = []
        for i, value in enumerate(values):
            got += state_fn.process(("marked", value), timestamp=Timestamp(i), window_state=window_state,
                                    info_state=info_state, expiry=timer)
        runs.append(([(f["flagged_at_message"], f["score"]) for f in got],
                     [bool(m.get("foreign")) for m in window_state.read()]))
    assert runs[0] == runs[1] == runs[2] and runs[0][0] and any(runs[0][1])


def test_the_state_fn_decides_the_language_from_the_read_text_it_keeps(model, monkeypatch):
    """The language decision reads each message's kept read text (EncodeMessagesFn's), not the message
    again: with the encoder's 4-tuples the state fn never calls readable on an unflagged conversation,
    and it decides as with the 3-tuples of the version before, which read each text again."""
    from apache_beam.utils import shared

    handle = shared.Shared()
    encode = EncodeMessagesFn(None, handle, max_batch_size=8)
    encode.setup()
    lines = [("a", "hey are you coming to pr4ctice on s a t u r d a y"), ("b", "yes coach, I will bring the ball"),
             ("a", "gr3at, see you at ten"), ("b", "ok")] * 4
    encode.start_bundle()
    out = [wv for e in _events("read", lines) for wv in encode.process(
        ("read", e), timestamp=Timestamp(0), window=GlobalWindow(), pane=PANE_INFO_UNKNOWN)]
    out += encode.finish_bundle()
    assert any(wv.value[1][3] is not None for wv in out) and any(wv.value[1][3] is None for wv in out)
    decided = []
    for width in (4, 3):
        state_fn = ConversationStateFn(None, None, INACTIVITY, handle)
        state_fn.setup()
        calls = []
        read = state_fn.model.readable
        monkeypatch.setattr(state_fn.model, "readable", lambda texts: calls.append(len(texts)) or read(texts))
        window_state, info_state, timer = _State(), _State(), _Timer()
        for i, wv in enumerate(out):
            assert not list(state_fn.process(("read", wv.value[1][:width]), timestamp=Timestamp(i),
                                             window_state=window_state, info_state=info_state, expiry=timer))
        monkeypatch.undo()
        decided.append((info_state.read()["language"], sum(calls)))
    assert decided[0][0] == decided[1][0] and decided[0][0][0] == "en"
    assert decided[0][1] == 0 and decided[1][1] > 0
