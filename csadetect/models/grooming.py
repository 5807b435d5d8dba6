"""Grooming-risk scoring API (DESIGN.md §5, §6).

A conversation is replayed in ``sent_at`` order; at every message the model scores the bounded
window of the last ``window`` messages (speaker turns marked by order of first appearance in
the window). The conversation score is the maximum window score so far; ``flagged_at_message``
is the first message (0-based, in ``sent_at`` order) whose window score reached the threshold.
Evidence names risk patterns and message indices, never message text.

Conversations without a minor participant are not scanned (Art. 7(7) of the proposal): they
come back with ``"scanned": false``, no score and ``flagged: false``.

The model file is a Keras 3 ``.keras`` archive holding the text vectorisation, so
``keras.models.load_model(path / "model.keras")`` is all that is needed to use it; this module
calls its two parts directly: ``message_encoder`` (text -> vector, once per message) and
``window_model`` (vectors of a window -> calibrated risk and per-message pattern
probabilities), so each message is encoded once however many windows it falls in. Finding,
copying and loading it (and its ``metadata.json``: ``window``, ``patterns``, ``threshold``) is
:data:`KIND`'s job, in :mod:`csadetect.models.loader`.

The window model is small (two causal convolutions and a few dense layers over 20 x 96 numbers),
so for a handful of windows — the streaming case, one window per arriving message — a
TensorFlow call costs far more in fixed overhead than the arithmetic. :class:`NumpyWindowModel`
evaluates the same layers in numpy from the weights of the loaded Keras model (checked against
the Keras forward pass on load; any other architecture falls back to TensorFlow), and
:meth:`GroomingModel.score_encoded_windows` uses it for small batches. The message encoder
likewise: :class:`NumpyMessageEncoder` (the vectorisers' vocabularies and the projections, checked
against the Keras encoder on load) encodes the few messages of a streaming call,
:meth:`GroomingModel.encode` with ``engine="auto"``; large batches (replay, evaluation) stay on
TensorFlow, which is faster there.

Obfuscation (issue 17): every message is read through
:func:`csadetect.models.grooming_text.undo_obfuscation` before it is encoded and before its
conversation's language is detected (look-alike letters, invisible characters, styled letters,
stacked marks, digits for letters, spelled-out and stretched words; :meth:`GroomingModel.readable`),
unless the model is loaded with ``undo_obfuscation=False`` (setting ``grooming.undo_obfuscation``).
Ordinary text reads as written, so the weights and calibration need no retraining. With the same
setting a message of more than 14 words is read as up to 4 consecutive pieces
(:func:`csadetect.models.grooming_text.pieces`), each a row of the windows: the model learned from
messages of 1-17 words, and a writer's lines joined into one long message were read diluted.

Scores are calibrated (Platt scaling on a held-out calibration split, baked into the model's
last layer, then refined per language): a conversation score of 0.8 means about 80% of such
conversations in the calibration data were grooming conversations. The synthetic prevalence
(~35%) is far above any real one, so real-world precision at a threshold is lower than measured
here.

Languages (``metadata.json`` ``languages``: code -> ``{"threshold", "platt": [a, b]}``): the
conversation's language is detected from its first messages (:mod:`csadetect.models.language`,
re-decided at every message until the tenth, then kept). A supported language selects its own
calibration ``sigmoid(a * logit(risk) + b)`` and threshold. A conversation in a language the model
does not support is, by default (``unsupported="skip"``), **not scored**: it comes back with
``language: xx, language_supported: false``, no score, ``flagged: false``; with
``unsupported="score"`` it is scored with the global calibration and threshold and carries the
same marker. Never silently as English. A model without ``languages`` (earlier versions) supports
English only, with the global threshold.

Here: :class:`GroomingModel` (loading, languages, encoding, batched scoring) and :data:`KIND`. The
numpy window model and message encoder are in :mod:`csadetect.models.grooming_numpy`, the conversation-level evaluation
(:func:`evaluate` and its metrics) in :mod:`csadetect.models.grooming_eval`, the message helpers
(order, speakers, minor check) in :mod:`csadetect.models.grooming_messages`; all are importable
from here.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence

import numpy as np

from csadetect.models import ModelError
from csadetect.models import language as langid
from csadetect.models.grooming_messages import _sender, _text, chronological, involves_minor
from csadetect.models.grooming_numpy import NumpyMessageEncoder, NumpyWindowModel
from csadetect.models.grooming_text import pieces, undo_obfuscation
from csadetect.models.loader import ModelKind

# Moved to grooming_eval / grooming_messages / grooming_numpy; re-exported so callers' imports from here still work:
from csadetect.models.grooming_eval import (evaluate, expected_calibration_error, f_beta,  # noqa: F401
                                            latency_p, latency_penalty, latency_weighted_f1, reliability)
from csadetect.models.grooming_messages import speaker_ids  # noqa: F401
from csadetect.models.grooming_numpy import NUMPY_TOLERANCE  # noqa: F401

MAX_EVIDENCE = 50
_CHUNK = 4096
NUMPY_MAX_WINDOWS = 64  # engine="auto": up to this many windows per call in numpy, more in TensorFlow
NUMPY_MAX_MESSAGES = 32  # encode(engine="auto"): up to this many texts per call in numpy (~60-90 us a
# message on one core; a TensorFlow call ~0.9 ms for one, ~0.06 ms a message at 64, ~0.02 ms in large batches)


UNSUPPORTED_POLICIES = ("skip", "score")


def unsupported_policy(value: str) -> str:
    """``value`` when it is one of :data:`UNSUPPORTED_POLICIES` (what to do with a conversation in
    a language the model does not support), else ValueError in one line."""
    if value not in UNSUPPORTED_POLICIES:
        raise ValueError(f"unsupported languages: {value!r} is not one of {', '.join(UNSUPPORTED_POLICIES)}")
    return value


def _check_metadata(metadata: dict) -> None:
    int(metadata["window"]), float(metadata["threshold"]), list(metadata["patterns"])
    for code, entry in (metadata.get("languages") or {}).items():
        str(code), float(entry["threshold"]), [float(x) for x in entry.get("platt", (1.0, 0.0))][:2]


KIND = ModelKind("grooming", required=("window", "patterns", "threshold"), check=_check_metadata)


def set_threads(threads: Optional[int]) -> None:
    """Limit TensorFlow's CPU threads (before its first use; later calls change nothing)."""
    if not threads or threads < 1:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # TensorFlow already initialised: keep its settings
        pass


def _known_words(encoder) -> frozenset:
    """The single words of the encoder's word vocabulary (lower case; empty when it has none)."""
    try:
        vocab = encoder.get_layer("word_ngrams").get_vocabulary()
    except (AttributeError, ValueError):
        return frozenset()
    return frozenset(str(w) for w in vocab if w and " " not in str(w))


class GroomingModel:
    """A loaded grooming model. Thread-compatible for scoring; load once per worker process."""

    def __init__(self, keras_model, metadata: dict, path: Optional[Path] = None, undo_obfuscation: bool = True):
        import tensorflow as tf

        self.path = path
        self.undo_obfuscation = bool(undo_obfuscation)
        self.metadata = metadata
        self.keras_model = keras_model
        self.window = int(metadata["window"])
        self.pattern_names = tuple(metadata["patterns"])
        self.threshold = float(metadata["threshold"])
        self.evidence_threshold = float(metadata.get("evidence_threshold", 0.5))
        self.version = str(metadata.get("version", "unknown"))
        langs = metadata.get("languages") or {"en": {"threshold": self.threshold, "platt": [1.0, 0.0]}}
        self.languages = {str(code): (float(e["threshold"]), *(float(x) for x in e.get("platt", (1.0, 0.0))))
                          for code, e in langs.items()}  # code -> (threshold, a, b)
        self.supported_languages = tuple(self.languages)
        try:
            encoder = keras_model.get_layer("message_encoder")
            window_model = keras_model.get_layer("window_model")
        except ValueError:
            raise ModelError(f"model at {path} lacks the message_encoder/window_model parts") from None
        self._dim = int(encoder.output.shape[-1])
        self._known_words = _known_words(encoder)
        self._encode = tf.function(lambda t: encoder(t, training=False),
                                   input_signature=[tf.TensorSpec([None], tf.string)])
        W = self.window
        self._window = tf.function(
            lambda v, s, m: window_model({"vectors": v, "speakers": s, "mask": m}, training=False),
            input_signature=[tf.TensorSpec([None, W, self._dim], tf.float32), tf.TensorSpec([None, W], tf.int32),
                             tf.TensorSpec([None, W], tf.float32)])
        self._np_window: Optional[NumpyWindowModel] = NumpyWindowModel.from_keras(window_model, W, self._tf_window)
        self._np_encoder: Optional[NumpyMessageEncoder] = NumpyMessageEncoder.from_keras(
            encoder, lambda texts: self._encode_as_written(texts, engine="tf"))

    # ---------------------------------------------------------------- loading
    @classmethod
    def load(cls, path=None, undo_obfuscation: bool = True) -> "GroomingModel":
        """From a model spec (:class:`csadetect.models.loader.ModelKind`: a directory holding
        ``model.keras`` + ``metadata.json``, the .keras file itself, a URL; None: the reference
        model). ``undo_obfuscation``: read messages through
        :func:`csadetect.models.grooming_text.undo_obfuscation` (setting
        ``grooming.undo_obfuscation``). Raises :class:`ModelError` with a one-line reason."""
        return cls(*KIND.load(path), undo_obfuscation=undo_obfuscation)

    def readable(self, texts: Sequence[str]) -> list[str]:
        """The texts as the model reads them: obfuscations undone (unless ``undo_obfuscation`` is
        off, then as written)."""
        if not self.undo_obfuscation:
            return list(texts)
        known, supported = self._known_words, self.supported_languages
        return [langid.without_foreign_runs(undo_obfuscation(t, known), known, supported) for t in texts]

    def foreign_messages(self, texts: Sequence[str]) -> list[bool]:
        """Per message (``texts``: :meth:`readable`'s): whether it reads wholly as an unsupported
        language (:func:`csadetect.models.language.wholly_foreign`). In a conversation decided in a
        supported language such messages are padding sent as messages of their own between the real
        ones, and the windows scored leave them out (:meth:`_windows`), so they cannot thin a window
        out. None is when ``undo_obfuscation`` is off."""
        if not self.undo_obfuscation:
            return [False] * len(texts)
        return [self.reads_foreign(text) for text in texts]

    def reads_foreign(self, text: str) -> bool:
        """Whether a :meth:`readable` text reads wholly as a language the model does not support."""
        return langid.wholly_foreign(text, self._known_words, self.supported_languages)

    # ---------------------------------------------------------------- languages
    def language_of(self, texts: Sequence[str], readable: bool = False) -> langid.Language:
        """The language of a conversation from the texts of its first messages (oldest first),
        read as the model reads them (:meth:`readable`; ``readable``: they already are)."""
        first = list(texts)[:langid.DECIDE_AFTER]
        return langid.detect(first if readable else self.readable(first), self.supported_languages)

    def languages_per_message(self, texts: Sequence[str], readable: bool = False) -> list[langid.Language]:
        """The language decision in force at each message, as the streaming stage makes it:
        re-decided until the ``langid.DECIDE_AFTER``-th message, then kept while supported, and an
        unsupported one re-made from the latest ``DECIDE_AFTER`` messages when
        :func:`csadetect.models.language.redecide_due`. ``readable``: the texts are already
        :meth:`readable`'s."""
        read = list(texts) if readable else self.readable(texts)
        out: list[langid.Language] = []
        for seen in range(1, len(read) + 1):
            if seen <= langid.DECIDE_AFTER or langid.redecide_due(seen, out[-1]):
                out.append(langid.detect(read[max(0, seen - langid.DECIDE_AFTER):seen], self.supported_languages))
            else:
                out.append(out[-1])
        return out

    def calibrate(self, risk, language: Optional[str]) -> np.ndarray:
        """Per-language calibration of the model's (globally calibrated) risk; unchanged for a
        language without its own (an unsupported one scored under ``unsupported="score"``)."""
        risk = np.asarray(risk, np.float64)
        entry = self.languages.get(language) if language else None
        if entry is None or (entry[1] == 1.0 and entry[2] == 0.0):
            return risk.astype(np.float32)
        _, a, b = entry
        r = np.clip(risk, 1e-7, 1 - 1e-7)
        return (1.0 / (1.0 + np.exp(-(a * np.log(r / (1 - r)) + b)))).astype(np.float32)

    def threshold_for(self, language: Optional[str], override: Optional[float] = None) -> float:
        """``override`` when given, else the language's own threshold (the global one for a
        language without its own)."""
        if override is not None:
            return float(override)
        entry = self.languages.get(language) if language else None
        return self.threshold if entry is None else entry[0]

    # ---------------------------------------------------------------- low level
    def encode(self, texts: Sequence[str], engine: str = "auto") -> np.ndarray:
        """Message vectors, shape (n, dim), of the texts as the model reads them (:meth:`readable`).
        Each message is encoded once. ``engine``: ``"tf"`` (the Keras encoder), ``"numpy"``
        (:class:`NumpyMessageEncoder`, the same vectors to ~1e-6) or ``"auto"`` (numpy for up to
        ``NUMPY_MAX_MESSAGES`` texts when available: the streaming case, a few arriving messages per
        call; else TensorFlow)."""
        return self._encode_as_written(self.readable(texts), engine)

    def encode_read(self, texts: Sequence[str], engine: str = "auto") -> tuple[list[np.ndarray], list[bool], list[str]]:
        """Per text, the vectors of its pieces (:meth:`pieces`; shape (pieces, dim)), and
        :meth:`foreign_messages`' marks and the texts as read (:meth:`readable`), each text read once:
        what the streaming stage keeps of a message as it arrives (its language decision then reads
        the kept text, not the message again)."""
        read = self.readable(texts)
        vectors, counts = self._encode_pieces(read, engine)
        return np.split(vectors, np.cumsum(counts)[:-1]) if counts else [], self.foreign_messages(read), read

    def pieces(self, read: Sequence[str]) -> list[list[str]]:
        """How the model reads each of the (:meth:`readable`) texts: as pieces
        (:func:`csadetect.models.grooming_text.pieces`: more than 14 words, up to 4 pieces), or whole
        when ``undo_obfuscation`` is off (as written)."""
        if not self.undo_obfuscation:
            return [[t] for t in read]
        return [pieces(t) for t in read]

    def _encode_pieces(self, read: Sequence[str], engine: str = "auto") -> tuple[np.ndarray, list[int]]:
        """The vectors of the texts' pieces, all in one array, and how many pieces each text has."""
        split = self.pieces(read)
        return self._encode_as_written([p for ps in split for p in ps], engine), [len(ps) for ps in split]

    @property
    def dim(self) -> int:
        """The length of a message (piece) vector."""
        return self._dim

    def _encode_as_written(self, texts: Sequence[str], engine: str = "auto") -> np.ndarray:
        if engine not in ("tf", "numpy", "auto"):
            raise ValueError(f"unknown engine {engine!r}")
        if len(texts) == 0:
            return np.zeros((0, self._dim), np.float32)
        if engine != "tf" and self._np_encoder is not None and (engine == "numpy" or len(texts) <= NUMPY_MAX_MESSAGES):
            return self._np_encoder(texts)
        if engine == "numpy":
            raise ModelError("this model's message encoder has no numpy implementation")
        import tensorflow as tf

        parts = [self._encode(tf.constant(list(texts[i:i + _CHUNK]), dtype=tf.string)).numpy()
                 for i in range(0, len(texts), _CHUNK)]
        return np.concatenate(parts).astype(np.float32, copy=False)

    def _pack(self, windows: Sequence[tuple]):
        """(vectors, senders) windows -> left-padded arrays (vectors, speakers, mask)."""
        W = self.window
        v = np.zeros((len(windows), W, self._dim), np.float32)
        s = np.zeros((len(windows), W), np.int32)
        m = np.zeros((len(windows), W), np.float32)
        for row, (vecs, senders) in enumerate(windows):
            vecs, senders = np.asarray(vecs, np.float32)[-W:], list(senders)[-W:]
            if len(vecs) != len(senders):
                raise ValueError("vectors and senders differ in length")
            k = len(vecs)
            if k:
                v[row, W - k:] = vecs
                s[row, W - k:] = speaker_ids(senders)
                m[row, W - k:] = 1.0
        return v, s, m

    def _windows(self, vectors: np.ndarray, senders: Sequence[str], ends: Iterable[int],
                 left_out: Optional[Sequence[bool]] = None, where: Optional[Sequence[bool]] = None,
                 counts: Optional[Sequence[int]] = None):
        """Left-padded windows ending at each message index in ``ends`` (over one conversation): the
        ``window`` messages up to it, less those ``left_out`` marks (:meth:`foreign_messages`) in the
        windows ending where ``where`` is true (default: all; the message itself when that leaves
        none). ``counts``: the rows of ``vectors`` each message has, its pieces (default one each);
        a window then holds the last ``window`` rows of its messages."""
        W = self.window
        if counts is not None and all(c == 1 for c in counts):
            counts = None  # one row a message
        drop = left_out is not None and any(left_out)
        if counts is None and not drop:
            return self._pack([(vectors[max(0, e - W + 1):e + 1], senders[max(0, e - W + 1):e + 1]) for e in ends])
        starts = np.concatenate([[0], np.cumsum(counts)]).astype(int) if counts is not None else None
        windows = []
        for e in ends:
            span = range(max(0, e - W + 1), e + 1)
            if drop and (where is None or where[e]):
                span = [i for i in span if not left_out[i]] or [e]
            if starts is None:
                windows.append((vectors[list(span)], [senders[i] for i in span]))
            else:
                rows = [r for i in span for r in range(starts[i], starts[i + 1])]
                windows.append((vectors[rows], [senders[i] for i in span for _ in range(starts[i + 1] - starts[i])]))
        return self._pack(windows)

    @staticmethod
    def _by_group(vectors: np.ndarray, counts: Sequence[int], sizes: Iterable[int]):
        """For each group of ``sizes`` consecutive messages (a conversation, a window): its rows of
        ``vectors`` and its messages' piece ``counts``."""
        offset = row = 0
        for n in sizes:
            k = counts[offset:offset + n]
            yield vectors[row:row + sum(k)], k
            offset, row = offset + n, row + sum(k)

    def _own_patterns(self, pats: np.ndarray, counts: Sequence[int]) -> np.ndarray:
        """Per window, the pattern probabilities of the message that ends it: the largest over its
        pieces, the window's last ``counts[i]`` rows."""
        if len(pats) == 0:
            return np.zeros((0, len(self.pattern_names)), np.float32)
        if all(c == 1 for c in counts):
            return pats[:, -1, :]
        return np.stack([pats[i, -min(int(c), self.window):, :].max(axis=0) for i, c in enumerate(counts)])

    def _tf_window(self, vectors: np.ndarray, speakers: np.ndarray, mask: np.ndarray):
        """The Keras window model (compiled, fixed input signature) on one prepared batch."""
        import tensorflow as tf

        out = self._window(tf.constant(vectors), tf.constant(speakers), tf.constant(mask))
        return out["risk"].numpy().reshape(-1), out["patterns"].numpy()

    def score_encoded(self, vectors: np.ndarray, speakers: np.ndarray, mask: np.ndarray, engine: str = "tf"):
        """Window model on prepared windows: (risk (n,), patterns (n, window, K)).

        ``engine``: ``"tf"`` (the Keras model; the batched replay path), ``"numpy"`` (the same
        layers in numpy, see :class:`NumpyWindowModel`) or ``"auto"`` (numpy for up to
        ``NUMPY_MAX_WINDOWS`` windows when available, else TensorFlow)."""
        if engine not in ("tf", "numpy", "auto"):
            raise ValueError(f"unknown engine {engine!r}")
        if engine != "tf" and self._np_window is not None and (engine == "numpy" or len(vectors) <= NUMPY_MAX_WINDOWS):
            if len(vectors) == 0:
                return np.zeros((0,), np.float32), np.zeros((0, self.window, len(self.pattern_names)), np.float32)
            return self._np_window(vectors, speakers, mask)
        if engine == "numpy":
            raise ModelError("this model's window model has no numpy implementation")
        risks, pats = [], []
        for i in range(0, len(vectors), _CHUNK):
            r, p = self._tf_window(vectors[i:i + _CHUNK], speakers[i:i + _CHUNK], mask[i:i + _CHUNK])
            risks.append(r)
            pats.append(p)
        if not risks:
            return np.zeros((0,), np.float32), np.zeros((0, self.window, len(self.pattern_names)), np.float32)
        return np.concatenate(risks), np.concatenate(pats)

    def score_encoded_windows(self, windows: Sequence[tuple], engine: str = "auto") -> tuple[np.ndarray, np.ndarray]:
        """Streaming use: ``windows`` of ``(vectors, senders)`` (the last messages of each
        conversation, oldest first, vectors from :meth:`encode`) -> (risk (n,), pattern
        probabilities of each window's last message (n, K)). Lets per-conversation state keep
        message vectors and sender ids instead of message text. ``engine``: see
        :meth:`score_encoded` (``"auto"``: numpy for a few windows, no TensorFlow call)."""
        risk, pats = self.score_encoded(*self._pack(windows), engine=engine)
        return risk, pats[:, -1, :]

    @property
    def numpy_window(self) -> bool:
        """True when the window model runs in numpy for small batches (see NumpyWindowModel)."""
        return self._np_window is not None

    @property
    def numpy_encoder(self) -> bool:
        """True when messages are encoded in numpy for small batches (see NumpyMessageEncoder)."""
        return self._np_encoder is not None

    def _replay(self, messages: Sequence) -> tuple[np.ndarray, np.ndarray]:
        """Risk after each message and pattern probabilities of each message (given order)."""
        senders = [_sender(m) for m in messages]
        vecs, counts = self._encode_pieces(self.readable([_text(m) for m in messages]))
        risk, pats = self.score_encoded(*self._windows(vecs, senders, range(len(messages)), counts=counts))
        return risk, self._own_patterns(pats, counts)

    # ---------------------------------------------------------------- public scoring
    def score_window(self, messages: Sequence) -> float:
        """Calibrated risk of the last ``window`` messages (given order; dicts with text/sender)."""
        return float(self.score_windows([messages])[0])

    def score_windows(self, windows: Sequence[Sequence]) -> np.ndarray:
        """:meth:`score_window` of many windows in one batch."""
        windows = [list(w)[-self.window:] for w in windows]
        vecs, counts = self._encode_pieces(self.readable([_text(m) for w in windows for m in w]))
        prepared = [(rows, [_sender(m) for m, c in zip(w, k) for _ in range(c)])
                    for w, (rows, k) in zip(windows, self._by_group(vecs, counts, map(len, windows)))]
        return self.score_encoded_windows(prepared)[0]

    def patterns(self, messages: Sequence) -> list[dict]:
        """Per message (given order): {pattern: probability}, each read from the window ending at
        that message (the model is causal: a message's patterns depend on it and earlier ones)."""
        _, pats = self._replay(list(messages))
        return [{name: float(p) for name, p in zip(self.pattern_names, row)} for row in pats]

    def score_conversation(self, messages: Sequence[Mapping], threshold: Optional[float] = None,
                           unsupported: str = "skip") -> dict:
        """Replay one conversation; see the module docstring for the result."""
        return self.score_conversations([messages], threshold, unsupported)[0]

    def score_conversations(self, conversations: Sequence[Sequence[Mapping]],
                            threshold: Optional[float] = None, unsupported: str = "skip") -> list[dict]:
        """Batched :meth:`score_conversation`: all messages encoded in one pass, all windows scored
        in one pass; results equal one-by-one scoring. ``threshold``: one for every language
        (default: each language's own). ``unsupported``: see the module docstring."""
        unsupported_policy(unsupported)
        results: list[Optional[dict]] = [None] * len(conversations)
        todo = []
        for ci, msgs in enumerate(conversations):
            msgs = list(msgs)
            cid = next((m.get("conversation_id") for m in msgs if isinstance(m, Mapping)), None)
            if not involves_minor(msgs):
                results[ci] = {"conversation_id": cid, "scanned": False, "score": None, "flagged": False,
                               "flagged_at_message": None, "evidence": [], "language": None,
                               "language_supported": None}
                continue
            todo.append((ci, cid, chronological(msgs)))
        texts = self.readable([_text(m) for _, _, msgs in todo for m in msgs])
        vecs, counts = self._encode_pieces(texts)
        parts, languages, offset = [], [], 0
        sizes = [len(msgs) for _, _, msgs in todo]
        for (_, _, msgs), (rows, k) in zip(todo, self._by_group(vecs, counts, sizes)):
            n = len(msgs)
            langs = self.languages_per_message(texts[offset:offset + n], readable=True)
            foreign = self.foreign_messages(texts[offset:offset + n])
            parts.append(self._windows(rows, [_sender(m) for m in msgs], range(n), foreign,
                                       [lg.supported for lg in langs], k))
            languages.append((langs, [f and lg.supported for f, lg in zip(foreign, langs)]))
            offset += n
        if parts:
            risk, pats = self.score_encoded(*(np.concatenate(x) for x in zip(*parts)))
        offset = 0
        for (ci, cid, msgs), (langs, left_out) in zip(todo, languages):
            n = len(msgs)
            r, p = risk[offset:offset + n], self._own_patterns(pats[offset:offset + n], counts[offset:offset + n])
            if any(left_out):  # a message left out of its own window has no patterns of its own
                p = np.where(np.asarray(left_out)[:, None], 0.0, p)
            offset += n
            results[ci] = self._result(cid, r, p, langs, threshold, unsupported)
        return results  # type: ignore[return-value]

    def _result(self, cid, risk: np.ndarray, pats: np.ndarray, langs: Sequence[langid.Language],
                threshold: Optional[float], unsupported: str) -> dict:
        if len(risk) == 0:
            return {"conversation_id": cid, "scanned": True, "score": 0.0, "flagged": False,
                    "flagged_at_message": None, "evidence": [], "language": None, "language_supported": None}
        scored = np.asarray([lg.supported or unsupported == "score" for lg in langs])
        cal = np.zeros(len(risk), np.float32)
        thr = np.ones(len(risk), np.float64)
        for code in {lg.code for lg in langs}:
            sel = np.asarray([lg.code == code for lg in langs])
            cal[sel] = self.calibrate(risk[sel], code)
            thr[sel] = self.threshold_for(code, threshold)
        crossed = np.nonzero(scored & (cal >= thr))[0]
        flagged = bool(len(crossed))
        final = langs[int(crossed[0])] if flagged else langs[-1]
        score = float(cal[scored].max()) if scored.any() else None
        evidence = []
        if flagged:  # non-hits keep nothing (DESIGN §6)
            idx, k = np.nonzero(pats >= self.evidence_threshold)
            evidence = [{"pattern": self.pattern_names[j], "message_index": int(i), "score": float(pats[i, j])}
                        for i, j in zip(idx, k)]
            evidence.sort(key=lambda e: (-e["score"], e["message_index"]))
            evidence = sorted(evidence[:MAX_EVIDENCE], key=lambda e: (e["message_index"], -e["score"]))
        return {"conversation_id": cid, "scanned": True, "score": score, "flagged": flagged,
                "flagged_at_message": int(crossed[0]) if flagged else None, "evidence": evidence,
                "language": final.code, "language_supported": bool(final.supported)}
