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
"""
from __future__ import annotations

import logging
from typing import Any, Dict, Tuple

import apache_beam as beam
import numpy as np
from apache_beam.coders import PickleCoder
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.utils import shared
from apache_beam.utils.timestamp import Duration, Timestamp

from transforms.common import counter

LOG = logging.getLogger(__name__)


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


class ConversationStateFn(beam.DoFn):
    """Per-conversation state: a bounded window of recent messages, scored after each message."""

    WINDOW = ReadModifyWriteStateSpec("window", PickleCoder())  # list of message dicts (+ vector)
    INFO = ReadModifyWriteStateSpec("info", PickleCoder())  # {"count", "flagged"}
    EXPIRY = TimerSpec("expiry", TimeDomain.WATERMARK)

    def __init__(self, model_path, threshold, inactivity_seconds: int, shared_handle):
        self._model_path = model_path
        self._threshold = threshold
        self._inactivity = inactivity_seconds
        self._shared = shared_handle

    def setup(self):
        from models.grooming import GroomingModel

        path = self._model_path
        self._holder = self._shared.acquire(lambda: _ModelHolder(GroomingModel.load(path)), tag=f"grooming|{path}")
        self.model = self._holder.model
        self.threshold = self.model.threshold if self._threshold is None else float(self._threshold)

    def process(
        self,
        element,
        timestamp=beam.DoFn.TimestampParam,
        window_state=beam.DoFn.StateParam(WINDOW),
        info_state=beam.DoFn.StateParam(INFO),
        expiry=beam.DoFn.TimerParam(EXPIRY),
    ):
        conversation_id, event = element
        model = self.model
        info = info_state.read() or {"count": 0, "flagged": False, "last": None}
        last = timestamp if info["last"] is None else max(Timestamp.of(info["last"]), timestamp)
        window = window_state.read() or []
        vector = model.encode([event.text])[0]
        message = {
            "index": info["count"], "event_id": event.event_id, "sender": event.sender, "account": event.account,
            "sent_at": event.occurred_at, "text": event.text, "vector": vector,
            "provider": event.provider, "service": event.service,
        }
        window.append(message)
        window.sort(key=lambda m: (m["sent_at"], m["index"]))  # messages may arrive out of order
        window = window[-model.window:]
        info["count"] += 1
        info["last"] = float(last.micros) / 1e6
        window_state.write(window)
        expiry.set(last + Duration(seconds=self._inactivity))  # inactivity in element (event) time

        if info["flagged"]:
            info_state.write(info)
            counter("non_hit").inc()
            counter("text_after_flag").inc()
            return
        vectors = np.stack([m["vector"] for m in window])
        risk, _ = model.score_encoded_windows([(vectors, [m["sender"] for m in window])])
        score = float(risk[0])
        if score < self.threshold:
            info_state.write(info)
            counter("non_hit").inc()
            counter("non_hit_text").inc()
            return
        info["flagged"] = True
        info_state.write(info)
        counter("hit").inc()
        counter("hit_grooming").inc()
        patterns = model.patterns([{"text": m["text"], "sender": m["sender"]} for m in window])
        evidence = []
        for m, probs in zip(window, patterns):
            for name, p in probs.items():
                if p >= model.evidence_threshold:
                    evidence.append({"pattern": name, "message_index": m["index"], "score": round(p, 4)})
        yield {
            "conversation_id": conversation_id,
            "score": score,
            "threshold": self.threshold,
            "flagged_at_message": message["index"],
            "evidence": sorted(evidence, key=lambda e: (e["message_index"], -e["score"])),
            "model_version": model.version,
            "messages": [{k: m[k] for k in ("index", "event_id", "sender", "sent_at", "text")} for m in window],
            "accounts": sorted({m["account"] for m in window}),
            "provider": event.provider,
            "service": event.service,
            "event_id": event.event_id,
            "occurred_at": event.occurred_at,
        }

    @on_timer(EXPIRY)
    def expire(self, window_state=beam.DoFn.StateParam(WINDOW), info_state=beam.DoFn.StateParam(INFO)):
        window_state.clear()
        info_state.clear()
        counter("conversation_state_cleared").inc()


class ClassifyGrooming(beam.PTransform):
    """Text events in; flagged conversations (for human review) out."""

    def __init__(self, model_path=None, threshold=None, inactivity_seconds: int = 7 * 24 * 3600):
        super().__init__()
        self._model_path = model_path
        self._threshold = threshold
        self._inactivity = inactivity_seconds
        self._shared = shared.Shared()

    def expand(self, text_events):
        return (
            text_events
            | "KeyByConversation" >> KeyByConversation()
            | "ConversationState"
            >> beam.ParDo(ConversationStateFn(self._model_path, self._threshold, self._inactivity, self._shared))
        )
