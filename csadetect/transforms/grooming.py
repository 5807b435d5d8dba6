"""ClassifyGrooming: score conversations as their messages arrive (DESIGN §5, §6).

Text events are keyed by ``conversation_id`` and fed to a stateful DoFn that keeps a bounded
window of the most recent messages (their encoded vectors, sender roles and, for the reviewer,
their text), scores the window after each message, and clears everything when an event-time
timer fires after ``inactivity_seconds`` without a new message. Only conversations with a minor
participant are scanned (Art. 7(7)); the others are counted and dropped at once.

A conversation is flagged once, the first time its score crosses the threshold: the flag carries
the score, the message index at which it crossed, and evidence (risk-pattern names and message
indices, plus the window's messages for the human reviewer — grooming hits always go to human
review, Art. 10(4)(c)). Nothing of a conversation that is never flagged leaves this stage.

Languages: the conversation's language is detected from the text of its first messages
(``csadetect.models.language``: re-decided at every message until the tenth, then kept in state)
and selects the model's calibration and threshold for it. A conversation in a language the model
does not support is, with ``unsupported="skip"`` (the default, setting
``grooming.unsupported_languages``), not scored and never flagged: its messages are counted as
non-hits and the conversation once as ``grooming_unsupported_language`` and
``grooming_unsupported_language_<code>`` (the ISO 639-1 code: no id, no text). With ``"score"``
it is scored with the model's global calibration and threshold, counted the same way, and a flag
carries ``language_supported: false`` to the reviewer. Flags carry ``language`` and
``language_supported``.

Steps: ``KeyByConversation`` (minors only) -> ``EncodeMessages`` (message text -> vector, in
micro-batches of up to ``encode_batch_size`` messages of one bundle, across conversations: one
TensorFlow call per batch instead of one per message) -> ``ConversationState`` (the stateful step:
it only runs the small window model, in numpy, on the conversation's stored vectors). Batching
stays inside a bundle, so it adds no wall-clock wait in streaming (a bundle is closed when the
runner has no more input at hand; under load bundles, and so batches, grow) and needs no extra
shuffle; each message keeps its own timestamp, window and pane, so the event-time expiry timer
sees exactly what it saw before.
"""
from __future__ import annotations

import logging
from typing import Any, Optional, Tuple

import apache_beam as beam
import numpy as np
from apache_beam.coders import PickleCoder
from apache_beam.metrics import Metrics
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.utils import shared
from apache_beam.utils.timestamp import Duration, Timestamp
from apache_beam.utils.windowed_value import WindowedValue

from csadetect.models import language as langid
from csadetect.models.grooming import GroomingModel, unsupported_policy
from csadetect.transforms.common import NAMESPACE, counter, guarded, record_failure, spread_before_state

LOG = logging.getLogger(__name__)
ENCODE_BATCH_SIZE = 64  # messages per encoder call (at most; a bundle's last batch is smaller)
VECTOR_DTYPE = np.dtype("<f4")
_UNREAD = object()  # a message queued by a version that did not keep its read text: read again when needed
_COUNTERS = ("non_hit", "text_after_flag", "non_hit_text", "hit", "hit_grooming")


class _ModelHolder:
    def __init__(self, model):
        self.model = model


class KeyByConversation(beam.PTransform):
    """Text events -> (conversation_id, event); conversations without a minor participant are not
    scanned (counted as non-hits and dropped). Elements keep their timestamps (Pub/Sub publish
    time, or ``timestamp_attribute``): moving them back to ``occurred_at`` would break the
    watermark contract on Dataflow."""

    def expand(self, events):
        def key(event):
            if not event.participants_minor:
                counter("non_hit").inc()
                counter("non_hit_text").inc()
                counter("text_not_scanned_no_minor").inc()
                return []
            return [(event.conversation_id, event)]

        return events | "MinorsOnly" >> beam.FlatMap(key).with_output_types(Tuple[str, Any])


def _acquire_model(shared_handle, path, undo_obfuscation: bool = True) -> _ModelHolder:
    """The process's one grooming model (shared by both DoFns; keep the holder referenced), loaded
    from the setting ``grooming.model`` (None: the reference model), reading messages with
    obfuscations undone or not (``grooming.undo_obfuscation``)."""
    return shared_handle.acquire(lambda: _ModelHolder(GroomingModel.load(path, undo_obfuscation=undo_obfuscation)),
                                 tag=f"grooming|{path}|{bool(undo_obfuscation)}")


def _as_read(read: str, text: str) -> Optional[str]:
    """What the state keeps of a message's read text: None when it is the text as written (no second copy)."""
    return None if read == text else read


def _vector_bytes(vector) -> bytes:
    """A message vector as it is kept in state: raw little-endian float32 (pickles ~6x faster
    than an ndarray, and the window's vectors are read back with one ``frombuffer``)."""
    if isinstance(vector, bytes):
        return vector
    return np.asarray(vector, VECTOR_DTYPE).tobytes()


class EncodeMessagesFn(beam.DoFn):
    """``(conversation_id, event)`` -> ``(conversation_id, (event, vector, foreign, read))``, the vector
    as float32 bytes (a long message's pieces' vectors one after another), ``foreign`` whether the
    message reads wholly as an unsupported language and
    ``read`` its text as the model reads it, None when that is as written
    (:meth:`GroomingModel.encode_read`): message vectors computed in micro-batches of up to
    ``max_batch_size`` messages of one bundle (any conversations). Every element leaves with its own
    timestamp, window and pane; the last, smaller batch of a bundle is encoded in ``finish_bundle``."""

    def __init__(self, model_path, shared_handle, max_batch_size: int = ENCODE_BATCH_SIZE,
                 undo_obfuscation: bool = True):
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be >= 1")
        self._model_path = model_path
        self._undo = bool(undo_obfuscation)
        self._shared = shared_handle
        self._max = int(max_batch_size)

    def setup(self):
        self._holder = _acquire_model(self._shared, self._model_path, self._undo)
        self.model = self._holder.model
        self._batches = Metrics.distribution(NAMESPACE, "grooming_encode_batch_size")

    def start_bundle(self):
        self._buffer = []

    def process(self, element, timestamp=beam.DoFn.TimestampParam, window=beam.DoFn.WindowParam,
                pane=beam.DoFn.PaneInfoParam):
        self._buffer.append((element, timestamp, window, pane))
        if len(self._buffer) >= self._max:
            yield from self._flush()

    def finish_bundle(self):
        yield from self._flush()

    def _flush(self):
        batch, self._buffer = self._buffer, []
        if not batch:
            return
        try:
            encoded = self._encode([event.text for (_, event), _, _, _ in batch])
        except Exception:  # one bad message must not fail the others: encode them one at a time
            encoded = [self._encode_one(element) for element, _, _, _ in batch]
        self._batches.update(len(batch))
        for ((conversation_id, event), timestamp, window, pane), item in zip(batch, encoded):
            # a message that failed on its own travels on as (conversation_id, DeadLetter):
            # ConversationState hands it to QueueForReview, whose dead-letter output takes it
            value = (event, item[0].tobytes(), *item[1:]) if isinstance(item, tuple) else item
            yield WindowedValue((conversation_id, value), timestamp, (window,), pane)

    def _encode(self, texts) -> list[tuple[np.ndarray, bool, Optional[str]]]:
        vectors, foreign, read = self.model.encode_read(texts)
        return [(np.asarray(vector, VECTOR_DTYPE), mark, _as_read(r, t))
                for vector, mark, r, t in zip(vectors, foreign, read, texts)]

    def _encode_one(self, element):
        """One message's ``(vector, foreign, read)``, or its dead letter when encoding it fails."""
        try:
            return self._encode([element[1].text])[0]
        except Exception as exc:
            return record_failure("grooming_encode", exc, element)


class EncodeMessages(beam.PTransform):
    """Keyed text events -> keyed ``(event, vector, foreign, read)`` (see :class:`EncodeMessagesFn`)."""

    def __init__(self, model_path, shared_handle, max_batch_size: int = ENCODE_BATCH_SIZE,
                 undo_obfuscation: bool = True):
        super().__init__()
        self._fn = EncodeMessagesFn(model_path, shared_handle, max_batch_size, undo_obfuscation)

    def expand(self, keyed):
        return keyed | "Encode" >> beam.ParDo(self._fn).with_output_types(Tuple[str, Any])


class ConversationStateFn(beam.DoFn):
    """Per-conversation state: a bounded window of recent messages, scored after each message.

    Input: ``(conversation_id, (event, vector, foreign, read))`` from :class:`EncodeMessages`; what
    earlier versions of this pipeline queued is taken too: ``(event, vector, foreign)`` (its read
    text read again when the language is decided), ``(event, vector)`` (marked here) and a bare
    ``(conversation_id, event)`` (encoded here, one message at a time). The window keeps each
    message's read text beside it (``read``), so deciding the language does not read it again. The
    window model runs in numpy on the stored vectors (see ``csadetect.models.grooming.NumpyWindowModel``):
    no TensorFlow call per message."""

    # list of message dicts; "vector": float32 bytes (an ndarray in state written by earlier versions)
    WINDOW = ReadModifyWriteStateSpec("window", PickleCoder())
    INFO = ReadModifyWriteStateSpec("info", PickleCoder())  # {"count", "flagged"}
    EXPIRY = TimerSpec("expiry", TimeDomain.WATERMARK)

    def __init__(self, model_path, threshold, inactivity_seconds: int, shared_handle, unsupported: str = "skip",
                 undo_obfuscation: bool = True):
        self._unsupported = unsupported_policy(unsupported)
        self._model_path = model_path
        self._undo = bool(undo_obfuscation)
        self._threshold = threshold
        self._inactivity = inactivity_seconds
        self._shared = shared_handle

    def setup(self):
        self._holder = _acquire_model(self._shared, self._model_path, self._undo)
        self.model = self._holder.model
        self.threshold = None if self._threshold is None else float(self._threshold)  # None: the language's own
        self._count = {name: counter(name) for name in _COUNTERS}

    def _language(self, info: dict, window: list) -> langid.Language:
        """The conversation's language: kept in ``info`` once ``langid.DECIDE_AFTER`` messages have
        been seen, re-decided from the window's (= all) messages before that; an unsupported one is
        re-made from the window's latest ``DECIDE_AFTER`` messages when ``langid.redecide_due`` (a
        decoy opening in another language must not hide what follows). Counts an unsupported
        language once per conversation, by its code (no id, no text)."""
        if info.get("language") is not None:
            current = langid.Language(*info["language"])
            if not langid.redecide_due(info["count"], current):
                return current
            language = self.model.language_of(self._read(window[-langid.DECIDE_AFTER:]), readable=True)
            if language.supported:
                info["language"] = tuple(language)
                counter("grooming_language_redecided_supported").inc()
            return language if language.supported else current
        language = self.model.language_of(self._read(window[:langid.DECIDE_AFTER]), readable=True)
        if info["count"] >= langid.DECIDE_AFTER:
            info["language"] = tuple(language)
            if not language.supported:
                counter("grooming_unsupported_language").inc()
                counter(f"grooming_unsupported_language_{language.code}").inc()
        return language

    def _read(self, messages: list) -> list[str]:
        """The messages' texts as the model reads them: kept in the state as they arrived (``read``;
        None: as written), read again only for a message an earlier version queued without it."""
        unread = [m["text"] for m in messages if "read" not in m]
        again = iter(self.model.readable(unread) if unread else ())
        return [(m["read"] if m["read"] is not None else m["text"]) if "read" in m else next(again) for m in messages]

    @guarded("grooming", to_main=True)
    def process(
        self,
        element,
        timestamp=beam.DoFn.TimestampParam,
        window_state=beam.DoFn.StateParam(WINDOW),
        info_state=beam.DoFn.StateParam(INFO),
        expiry=beam.DoFn.TimerParam(EXPIRY),
    ):
        conversation_id, value = element
        model = self.model
        read = _UNREAD
        if isinstance(value, tuple) and len(value) == 4:
            event, vector, foreign, read = value
        elif isinstance(value, tuple) and len(value) == 3:  # encoded by a version before the read text was kept
            event, vector, foreign = value
        elif isinstance(value, tuple):  # (event, vector): encoded by a version before the foreign mark
            event, vector = value
            (text,) = model.readable([event.text])
            foreign, read = model.foreign_messages([text])[0], _as_read(text, event.text)
        else:  # not encoded upstream
            event = value
            vectors, marks, texts = model.encode_read([event.text])  # vectors[0]: its pieces' vectors
            vector, foreign, read = vectors[0], marks[0], _as_read(texts[0], event.text)
        vector = _vector_bytes(vector)
        info = info_state.read() or {"count": 0, "flagged": False, "last": None}
        last = timestamp if info["last"] is None else max(Timestamp.of(info["last"]), timestamp)
        window = window_state.read() or []
        message = {
            "index": info["count"], "event_id": event.event_id, "sender": event.sender, "account": event.account,
            "sent_at": event.occurred_at, "text": event.text, "vector": vector,
            "provider": event.provider, "service": event.service,
        }
        if read is not _UNREAD:
            message["read"] = read  # the text as the model read it; None: as written
        if foreign:
            message["foreign"] = True  # wholly another language: left out of the windows scored in a supported one
        window.append(message)
        window.sort(key=lambda m: (m["sent_at"], m["index"]))  # messages may arrive out of order
        window = window[-model.window:]
        info["count"] += 1
        info["last"] = float(last.micros) / 1e6
        window_state.write(window)
        expiry.set(last + Duration(seconds=self._inactivity))  # inactivity in element (event) time

        count = self._count
        if info["flagged"]:
            info_state.write(info)
            count["non_hit"].inc()
            count["text_after_flag"].inc()
            return
        language = self._language(info, window)
        if not language.supported and self._unsupported == "skip":
            info_state.write(info)
            count["non_hit"].inc()
            count["non_hit_text"].inc()
            return
        scored = ([m for m in window if not m.get("foreign")] or [message]) if language.supported else window
        blobs = [_vector_bytes(m["vector"]) for m in scored]  # a long message: one vector per piece
        vectors = np.frombuffer(b"".join(blobs), VECTOR_DTYPE).reshape(-1, model.dim)
        row_bytes = VECTOR_DTYPE.itemsize * model.dim
        senders = [m["sender"] for m, blob in zip(scored, blobs) for _ in range(len(blob) // row_bytes)]
        risk, _ = model.score_encoded_windows([(vectors, senders)])  # numpy, one window
        score = float(model.calibrate(risk, language.code)[0])
        threshold = model.threshold_for(language.code, self.threshold)
        if score < threshold:
            info_state.write(info)
            count["non_hit"].inc()
            count["non_hit_text"].inc()
            return
        info["flagged"] = True
        info_state.write(info)
        count["hit"].inc()
        count["hit_grooming"].inc()
        patterns = model.patterns([{"text": m["text"], "sender": m["sender"]} for m in scored])
        evidence = []
        for m, probs in zip(scored, patterns):
            for name, p in probs.items():
                if p >= model.evidence_threshold:
                    evidence.append({"pattern": name, "message_index": m["index"], "score": round(p, 4)})
        yield {
            "conversation_id": conversation_id,
            "score": score,
            "threshold": threshold,
            "language": language.code,
            "language_supported": bool(language.supported),
            "flagged_at_message": message["index"],
            "evidence": sorted(evidence, key=lambda e: (e["message_index"], -e["score"])),
            "model_version": model.version,
            "messages": [{k: m[k] for k in ("index", "event_id", "sender", "sent_at", "text")} for m in window],
            "accounts": sorted({m["account"] for m in window}),
            "sender_accounts": sorted({(m["sender"], m["account"]) for m in window}),
            "provider": event.provider,
            "service": event.service,
            "event_id": event.event_id,
            "occurred_at": event.occurred_at,
            "order": event.order_for("grooming"),  # (order_id, legal_basis) of the detection order
        }

    @on_timer(EXPIRY)
    def expire(self, window_state=beam.DoFn.StateParam(WINDOW), info_state=beam.DoFn.StateParam(INFO)):
        info = info_state.read()
        window = window_state.read() or []
        if info and info.get("language") is None and not info.get("flagged") and window:
            # shorter than langid.DECIDE_AFTER messages: its language is decided (and counted) now
            info["count"] = max(info["count"], langid.DECIDE_AFTER)
            self._language(info, window)
        window_state.clear()
        info_state.clear()
        counter("conversation_state_cleared").inc()


class ClassifyGrooming(beam.PTransform):
    """Text events in; flagged conversations (for human review) out. A message that fails in
    ``EncodeMessages`` or ``ConversationState`` leaves as a DeadLetter among them (these steps have
    no tagged outputs; ``QueueForReview`` splits the dead letters off)."""

    def __init__(self, model_path=None, threshold=None, inactivity_seconds: int = 7 * 24 * 3600,
                 encode_batch_size: int = ENCODE_BATCH_SIZE, unsupported_languages: str = "skip",
                 undo_obfuscation: bool = True):
        super().__init__()
        self._unsupported = unsupported_policy(unsupported_languages)
        self._undo = bool(undo_obfuscation)
        self._model_path = model_path
        self._threshold = threshold
        self._inactivity = inactivity_seconds
        self._batch = encode_batch_size
        self._shared = shared.Shared()

    def expand(self, text_events):
        encoded = (
            text_events
            | "KeyByConversation" >> KeyByConversation()
            | "EncodeMessages" >> EncodeMessages(self._model_path, self._shared, self._batch, self._undo)
        )
        return spread_before_state(encoded, "SpreadByConversation") | "ConversationState" >> beam.ParDo(
            ConversationStateFn(self._model_path, self._threshold, self._inactivity, self._shared, self._unsupported,
                                self._undo))
