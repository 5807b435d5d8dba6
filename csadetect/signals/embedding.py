"""Embeddings: vectors of the image embedding model, matched by cosine similarity.

The value is ``[model_version:]`` + canonical base64 of little-endian float32
(:func:`embedding_value`, :func:`split_embedding`). Embeddings are only comparable under the model
that made them, so ``from-media`` always writes the version; rows without one match any model of
the same dimension. A known image gives one row for itself and one per index-side view
(:func:`embedding_views`), so that a cropped or slightly rotated copy meets a row that looks like it.

The index is FAISS ``IndexFlatIP`` (exact inner product) over the L2-normalised vectors, one per
(model version, dimension): a query made by model *v* is only compared with rows of version *v*
(and rows without a version of the same dimension). A row matches when the cosine similarity of
any query view (the image, its trimmed views, its mirror) is >= the model's calibrated threshold;
``similarity`` is the best one and the distance ``1 - similarity``. 4 bytes per dimension per row
(512 B at 128-d). Embedding matches go to review unless ``embedding.auto_confirm_similarity`` is set.
"""
from __future__ import annotations

import base64
import binascii
import re
from typing import Optional

import faiss
import numpy as np
import pyarrow as pa
from PIL import Image

from csadetect.config.settings import MatchSettings
from csadetect.signals.base import Hit, Media, SignalError, SignalIndex, SignalType

_VERSION_RE = re.compile(r"[A-Za-z0-9._+-]{1,64}")

# Index-side views of a known image, each stored as one more ``embedding`` row of the image
# (ids ``{sha256[:16]}-embedding`` for the image itself, then ``-embedding-c05``, ``-embedding-r+3``,
# ``-embedding-r-3``): a cropped or slightly rotated copy then meets a row that looks like it.
# EMBEDDING_CROPS: fraction cut from EACH side (centre crop; 0.05 keeps the middle 90%).
# EMBEDDING_ROTATIONS: degrees (counter-clockwise), expanded canvas, black fill.
# Chosen on the held-out evaluation (csadetect/models/cards/embedding.md, "Index-side rows"); the threshold
# is calibrated with these rows (training/calibrate_embedding.py). Each row costs one 128-float vector.
EMBEDDING_CROPS = (0.05,)
EMBEDDING_ROTATIONS = (3, -3)


def split_embedding(value: str) -> tuple[Optional[str], np.ndarray]:
    """``"[model_version:]base64"`` -> (model_version or None, float32 vector). Raises SignalError."""
    text = value.strip()
    version = None
    if ":" in text:
        version, text = text.split(":", 1)
        if not _VERSION_RE.fullmatch(version):
            raise SignalError("embedding model version must be 1-64 characters of [A-Za-z0-9._+-]")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SignalError("embedding value is not base64") from None
    if not raw or len(raw) % 4:
        raise SignalError("embedding value must be base64 of float32 values (length a multiple of 4 bytes)")
    vec = np.frombuffer(raw, dtype="<f4")
    if not np.all(np.isfinite(vec)):
        raise SignalError("embedding value holds NaN or infinite numbers")
    return version, vec


def embedding_value(vector, version: Optional[str]) -> str:
    """Canonical indicator value for an embedding made by model ``version``."""
    encoded = base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return f"{version}:{encoded}" if version else encoded


def embedding_views(img, crops=EMBEDDING_CROPS, rotations=EMBEDDING_ROTATIONS) -> list:
    """(id suffix, PIL image) for each embedding row of a known image: ``""`` (the image), then
    ``"-c05"``-style centre crops and ``"-r+3"``-style rotations."""
    out = [("", img)]
    w, h = img.size
    for f in crops:
        dx, dy = round(w * f), round(h * f)
        if w - 2 * dx >= 1 and h - 2 * dy >= 1:
            out.append((f"-c{round(f * 100):02d}", img.crop((dx, dy, w - dx, h - dy))))
    for deg in rotations:
        out.append((f"-r{deg:+g}", img.rotate(deg, resample=Image.Resampling.BILINEAR, expand=True)))
    return out


def _unit_rows(mat: np.ndarray) -> np.ndarray:
    return mat / np.maximum(np.linalg.norm(mat, axis=1, keepdims=True), 1e-12)


class EmbeddingIndex(SignalIndex):
    """One exact inner-product index per (model version, dimension)."""

    def __init__(self, values: pa.ChunkedArray, rows: np.ndarray):
        groups: dict[tuple, tuple[list, list]] = {}
        for row, value in zip(rows, values.to_pylist()):
            version, vector = split_embedding(value)
            rows_, vecs = groups.setdefault((version, len(vector)), ([], []))
            rows_.append(row)
            vecs.append(vector)
        self.groups: dict[tuple, tuple] = {}
        for (version, dim), (rows_, vecs) in groups.items():
            mat = _unit_rows(np.ascontiguousarray(np.stack(vecs), dtype=np.float32))
            index = faiss.IndexFlatIP(dim)
            index.add(mat)
            self.groups[(version, dim)] = (index, np.asarray(rows_, dtype=np.int32))

    @property
    def nbytes(self) -> int:
        return sum(ix.ntotal * ix.d * 4 + rows.nbytes for ix, rows in self.groups.values())

    def query(self, probe) -> list[Hit]:
        """``probe``: (query vectors ``(k, dim)``, the model version that made them, the threshold)."""
        vectors, version, threshold = probe
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or not len(vectors):
            return []
        vectors = np.ascontiguousarray(_unit_rows(vectors))
        rows_out, sims_out = [], []
        radius = float(np.nextafter(np.float32(threshold), np.float32(-np.inf)))  # FAISS keeps sim > radius
        for (row_version, dim), (index, rows) in self.groups.items():
            if dim != vectors.shape[1] or (row_version is not None and row_version != version):
                continue
            _, sims, pos = index.range_search(vectors, radius)
            keep = sims >= threshold
            rows_out.append(rows[pos[keep]])
            sims_out.append(sims[keep])
        if not rows_out:
            return []
        rows, sims = np.concatenate(rows_out), np.concatenate(sims_out)
        order = np.lexsort((-sims, rows))
        rows, sims = rows[order], sims[order]
        first = np.ones(len(rows), dtype=bool)
        first[1:] = rows[1:] != rows[:-1]
        return [Hit(int(r), round(1.0 - float(s), 6), round(float(s), 6)) for r, s in zip(rows[first], sims[first])]


class EmbeddingSignal(SignalType):
    """An image embedding: distance ``1 - cosine similarity``; the threshold is the model's
    calibrated one (``embedding.threshold`` overrides it), so there is no default here."""

    name = "embedding"
    content = ("image",)
    unit = "1 − cosine similarity"
    detector = "known-embedding"
    default_threshold = None
    evidence = 5
    recognisable = False  # hex digits are base64 too: a hash list is never read as embeddings

    def normalise(self, value: str) -> str:
        version, vector = split_embedding(value)
        return embedding_value(vector, version)

    def distance(self, a: str, b: str) -> float:
        va, vb = split_embedding(a)[1], split_embedding(b)[1]
        if len(va) != len(vb):
            raise SignalError("embeddings of different dimensions cannot be compared")
        return round(1.0 - float(_unit_rows(np.stack([va, vb])).prod(axis=0).sum()), 6)

    def examples(self) -> list[str]:
        return [embedding_value([0.6, 0.8], "example-1"), embedding_value([0.8, 0.6], None)]

    def build_index(self, values: pa.ChunkedArray, rows: np.ndarray, settings: MatchSettings,
                    packed: Optional[np.ndarray] = None) -> EmbeddingIndex:
        return EmbeddingIndex(values, rows)

    def indicator_values(self, media: Media, settings: MatchSettings) -> list[tuple[str, str]]:
        """With an embedding model: the image and each of its :func:`embedding_views`."""
        if media.embedder is None or media.picture is None:
            return []
        views = embedding_views(media.picture)
        vectors = media.embedder.embed([img for _, img in views])
        return [(suffix, embedding_value(vector, media.embedder.version)) for (suffix, _), vector in zip(views, vectors)]

    def auto_confirms(self, match, settings: MatchSettings, auto_confirm_similarity: Optional[float]) -> bool:
        return (auto_confirm_similarity is not None and match.similarity is not None
                and match.similarity >= auto_confirm_similarity)

    def explain(self, hashes, value: str, settings: MatchSettings, views=None) -> dict:
        """The embedding input of the picture nearest to ``value`` (``view``: ``image``, a
        preprocessed view, or ``image:flip`` for the mirrored picture). The indicator's own view
        is in its id (``...-embedding-crop5``, see :func:`embedding_views`)."""
        if views is None:
            return {}
        names, vectors = views
        _, vector = split_embedding(value)
        vectors = np.asarray(vectors, dtype=np.float32)
        if not len(names) or vectors.ndim != 2 or vectors.shape[1] != len(vector):
            return {}
        similarity = _unit_rows(vectors) @ _unit_rows(vector[None, :])[0]
        return {"view": names[int(np.argmax(similarity))]}
