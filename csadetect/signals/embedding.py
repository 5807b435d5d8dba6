"""Embeddings: vectors of the image embedding model, matched by cosine similarity.

The value is ``[model_version:]`` + canonical base64 of little-endian float32
(:func:`embedding_value`, :func:`split_embedding`). Embeddings are only comparable under the model
that made them, so ``from-media`` always writes the version; rows without one match any model of
the same dimension. A known image gives one row for itself and one per index-side view
(:func:`embedding_views`), so that a cropped or slightly rotated copy meets a row that looks like it.

The index is one FAISS index over the L2-normalised vectors per (model version, dimension): a
query made by model *v* is only compared with rows of version *v* (and rows without a version of
the same dimension). A row matches when the cosine similarity of any query view (the image, its
trimmed views, its mirror) is >= the model's calibrated threshold; ``similarity`` is the best one
and the distance ``1 - similarity``. Embedding matches go to review unless
``embedding.auto_confirm_similarity`` is set.

Which FAISS index (:class:`VectorIndex`, ``match.embedding_index``; numbers in
``benchmarks/embeddings.md``):

- ``flat``: ``IndexFlatIP``, exact inner product; 4 bytes per dimension per row (512 B at 128-d).
- ``ivf``: ``IndexIVFFlat`` (inner product), :func:`ivf_nlist` (~sqrt(n)) lists trained by k-means on the rows
  themselves at build (a seeded sample, so a build is repeatable), ``embedding_ivf_nprobe`` lists
  searched per query; range search, so every row at or above the threshold in the probed lists
  is found. + 8 bytes per row (its id in its list) and the centroids.
- ``hnsw``: ``IndexHNSWFlat`` (inner product, ``M`` = :data:`HNSW_M`), ``embedding_hnsw_ef_search``
  candidates per query. FAISS's HNSW has no range search: it is searched for the top *k* and the
  hits below the threshold are dropped; when the *k*-th is still a hit the query is searched
  again with twice *k*, so the number of matches per query vector is not capped, but each round
  is approximate. + ~2·M·4 bytes of graph links per row.
- ``auto``: ``flat`` below ``embedding_exact_below`` rows in a group, else :data:`AUTO_APPROXIMATE`.

Groups of fewer than :data:`APPROX_MIN_ROWS` rows (the overlay of deltas, small snapshots, most
tests) are always searched exactly, whatever the mode: an approximate index gains nothing there
and IVF cannot train its lists on so few rows.

The index-side rows of a known image are :mod:`csadetect.signals.embedding_rows`, the query-side views
of an upload :mod:`csadetect.signals.embedding_query`; their names are re-exported here.
"""
from __future__ import annotations

import binascii
import re
from typing import Optional

import faiss
import numpy as np
import pyarrow as pa
import pybase64

from csadetect.config.settings import MatchSettings
from csadetect.signals.base import Hit, Media, SignalError, SignalIndex, SignalType
# Re-exported: the index-side rows and query-side views keep their names here, so callers import them as before.
from csadetect.signals.embedding_query import (MIRROR_SUFFIX, ORIENTATIONS, QUERY_GRID_STEP, QUERY_REGION_PLACES,
                                               QUERY_REGIONS, REGION_SOURCE_SIDE, REGION_VIEW_DISTANCE_SHARE,
                                               STRIP_VIEW_DISTANCE_SHARE, TURN_GATE, TURN_SUFFIXES, gate_similarity,
                                               mirror_index, orientations, oriented_region_names, parse_region_suffix,
                                               query_grid, query_regions, region_gate_similarity, region_orientation,
                                               region_ways, turned_names, view_thresholds, view_weights,
                                               weigh_similarities)
from csadetect.signals.embedding_rows import (EMBEDDING_BOXES, EMBEDDING_CROPS, EMBEDDING_REGIONS, EMBEDDING_ROTATIONS,
                                              EMBEDDING_STRIPS, EMBEDDING_TURNS, box_crops, box_suffix, embedding_views,
                                              index_boxes, index_regions, index_turns, region_crops, region_suffix,
                                              turn_suffix)

_VERSION_RE = re.compile(r"[A-Za-z0-9._+-]{1,64}")


def split_embedding(value: str) -> tuple[Optional[str], np.ndarray]:
    """``"[model_version:]base64"`` -> (model_version or None, float32 vector). Raises SignalError."""
    text = value.strip()
    version = None
    if ":" in text:
        version, text = text.split(":", 1)
        if not _VERSION_RE.fullmatch(version):
            raise SignalError("embedding model version must be 1-64 characters of [A-Za-z0-9._+-]")
    try:
        raw = pybase64.b64decode(text, validate=True)
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
    encoded = pybase64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return f"{version}:{encoded}" if version else encoded


def _unit_rows(mat: np.ndarray) -> np.ndarray:
    return mat / np.maximum(np.linalg.norm(mat, axis=1, keepdims=True), 1e-12)


# An approximate index only for groups of at least this many rows (see the module docstring).
APPROX_MIN_ROWS = 1_000
# The approximate index ``auto`` picks at or above ``embedding_exact_below`` rows (benchmarks/embeddings.md).
AUTO_APPROXIMATE = "ivf"
HNSW_M = 32  # graph links per node (2·M on the bottom layer)
HNSW_EF_CONSTRUCTION = 64
HNSW_FIRST_K = 16  # top-k of the first HNSW search per query vector (doubled while the k-th still matches)
IVF_LISTS_PER_SQRT = 1.0  # lists = this * sqrt(rows) (benchmarks/embeddings.md compares 4)
IVF_TRAIN_PER_LIST = 40  # k-means sample: rows per list (FAISS asks for >= 39)
IVF_TRAIN_ITERATIONS = 10
IVF_SEED = 20240611


def ivf_nlist(n: int, per_sqrt: float = IVF_LISTS_PER_SQRT) -> int:
    """IVF lists for ``n`` rows: ``per_sqrt`` * sqrt(n), and no more than n / 39 so each list
    trains on enough rows. A near-duplicate query needs few lists probed (benchmarks/embeddings.md),
    and then sqrt(n) lists cost a query as much as 4·sqrt(n) do while building in a quarter of the
    time (every row is compared with every centroid)."""
    return max(1, min(round(per_sqrt * np.sqrt(n)), n // 39))


def index_kind(n: int, settings: MatchSettings) -> str:
    """The FAISS index ``settings.embedding_index`` gives a group of ``n`` rows: flat, ivf or hnsw."""
    mode = settings.embedding_index
    if n < APPROX_MIN_ROWS:
        return "flat"
    if mode == "auto":
        return "flat" if n < settings.embedding_exact_below else AUTO_APPROXIMATE
    return mode


class VectorIndex:
    """The FAISS index over one group's unit vectors (rows of ``mat`` are positions 0..n-1), of
    :func:`index_kind`; :meth:`search` gives (query number, position, similarity) at or above a
    threshold. Query-time parameters are fixed at build and passed per call, so concurrent
    queries are safe."""

    def __init__(self, mat: np.ndarray, settings: MatchSettings, kind: Optional[str] = None,
                 nlist: Optional[int] = None):
        mat = np.ascontiguousarray(mat, dtype=np.float32)
        n, dim = mat.shape
        self.kind = kind or index_kind(n, settings)
        self.dim = dim
        self.params = None
        if self.kind == "flat":
            self.index = faiss.IndexFlatIP(dim)
        elif self.kind == "ivf":
            nlist = nlist or ivf_nlist(n)
            quantizer = faiss.IndexFlatIP(dim)
            self.index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
            self.index.own_fields = True
            quantizer.this.disown()
            self.index.cp.niter = IVF_TRAIN_ITERATIONS
            self.index.cp.seed = IVF_SEED
            self.index.cp.max_points_per_centroid = IVF_TRAIN_PER_LIST + 1
            sample = np.random.default_rng(IVF_SEED).choice(n, min(n, IVF_TRAIN_PER_LIST * nlist), replace=False)
            self.index.train(mat[np.sort(sample)])
            self.params = faiss.SearchParametersIVF(nprobe=min(settings.embedding_ivf_nprobe, nlist))
        elif self.kind == "hnsw":
            self.index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            self.index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            self.ef_search = settings.embedding_hnsw_ef_search
        else:
            raise SignalError(f"unknown embedding index {self.kind!r} (flat, ivf or hnsw)")
        self.index.add(mat)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def nbytes(self) -> int:
        """Bytes of the vectors and the index structures (FAISS's own containers, by their sizes)."""
        vectors = self.index.ntotal * self.dim * 4
        if self.kind == "ivf":
            return vectors + self.index.ntotal * 8 + self.index.nlist * self.dim * 4  # + list ids, centroids
        if self.kind == "hnsw":
            h = self.index.hnsw
            return vectors + h.neighbors.size() * 4 + h.offsets.size() * 8 + h.levels.size() * 4
        return vectors

    def nearest(self, vectors: np.ndarray) -> float:
        """The largest similarity of any of the unit ``vectors`` ``(k, dim)`` to any row: one
        top-1 search (approximate for ivf and hnsw, like :meth:`search`), -1.0 without rows. Its
        cost does not grow with how many rows lie near the query, unlike a range search."""
        if not self.index.ntotal or not len(vectors):
            return -1.0
        params = faiss.SearchParametersHNSW(efSearch=self.ef_search) if self.kind == "hnsw" else self.params
        sims, pos = self.index.search(vectors, 1, params=params)
        found = sims[pos >= 0]
        return float(found.max()) if found.size else -1.0

    def search(self, vectors: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(query number, position, similarity) of every found row with similarity >= ``threshold``
        for unit ``vectors`` ``(k, dim)`` float32."""
        if self.kind == "hnsw":
            return self._search_top_k(vectors, threshold)
        radius = float(np.nextafter(np.float32(threshold), np.float32(-np.inf)))  # FAISS keeps sim > radius
        lims, sims, pos = self.index.range_search(vectors, radius, params=self.params)
        queries = np.repeat(np.arange(len(vectors)), np.diff(lims.astype(np.int64)))
        keep = sims >= threshold
        return queries[keep], pos[keep], sims[keep]

    def _search_top_k(self, vectors, threshold):
        out_q, out_p, out_s = [], [], []
        todo, k = np.arange(len(vectors)), HNSW_FIRST_K
        while len(todo):
            k = min(k, self.ntotal)
            params = faiss.SearchParametersHNSW(efSearch=max(self.ef_search, k))
            sims, pos = self.index.search(vectors[todo], k, params=params)
            full = (sims[:, -1] >= threshold) & (k < self.ntotal)  # the k-th still matches: search wider
            done = ~full
            keep = (sims >= threshold) & (pos >= 0) & done[:, None]
            out_q.append(np.broadcast_to(todo[:, None], sims.shape)[keep])
            out_p.append(pos[keep])
            out_s.append(sims[keep])
            todo, k = todo[full], 2 * k
        return np.concatenate(out_q), np.concatenate(out_p), np.concatenate(out_s)


class EmbeddingIndex(SignalIndex):
    """One :class:`VectorIndex` per (model version, dimension)."""

    def __init__(self, values: pa.ChunkedArray, rows: np.ndarray, settings: Optional[MatchSettings] = None):
        settings = settings or MatchSettings()
        groups: dict[tuple, tuple[list, list]] = {}
        for row, value in zip(rows, values.to_pylist()):
            version, vector = split_embedding(value)
            rows_, vecs = groups.setdefault((version, len(vector)), ([], []))
            rows_.append(row)
            vecs.append(vector)
        self.groups: dict[tuple, tuple[VectorIndex, np.ndarray]] = {}
        for (version, dim), (rows_, vecs) in groups.items():
            mat = _unit_rows(np.ascontiguousarray(np.stack(vecs), dtype=np.float32))
            self.groups[(version, dim)] = (VectorIndex(mat, settings), np.asarray(rows_, dtype=np.int32))

    @property
    def nbytes(self) -> int:
        return sum(ix.nbytes + rows.nbytes for ix, rows in self.groups.values())

    def nearest(self, vectors, version: Optional[str]) -> float:
        """The largest similarity of any of ``vectors`` (made by model ``version``) to any row it is
        compared with (rows of that version or of none; active or not), -1.0 without such rows."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or not len(vectors):
            return -1.0
        vectors = np.ascontiguousarray(_unit_rows(vectors))
        return max((index.nearest(vectors) for (row_version, dim), (index, _) in self.groups.items()
                    if dim == vectors.shape[1] and (row_version is None or row_version == version)), default=-1.0)

    def query(self, probe) -> list[Hit]:
        """``probe``: (query vectors ``(k, dim)``, the model version that made them, the threshold:
        one number, or one per vector as :func:`view_thresholds` gives)."""
        vectors, version, threshold = probe
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or not len(vectors):
            return []
        per_vector = np.asarray(threshold, dtype=np.float64)
        if per_vector.ndim and per_vector.shape != (len(vectors),):
            raise ValueError(f"{per_vector.shape[0]} thresholds for {len(vectors)} query vectors")
        threshold = float(per_vector.min()) if per_vector.ndim else float(per_vector)
        vectors = np.ascontiguousarray(_unit_rows(vectors))
        rows_out, sims_out = [], []
        for (row_version, dim), (index, rows) in self.groups.items():
            if dim != vectors.shape[1] or (row_version is not None and row_version != version):
                continue
            q, pos, sims = index.search(vectors, threshold)
            if per_vector.ndim:  # the lowest threshold was searched; each vector keeps its own
                keep = sims >= per_vector[q]
                pos, sims = pos[keep], sims[keep]
            rows_out.append(rows[pos])
            sims_out.append(sims)
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
        return EmbeddingIndex(values, rows, settings)

    def indicator_values(self, media: Media, settings: MatchSettings) -> list[tuple[str, str]]:
        """With an embedding model: the image and each of its :func:`embedding_views`."""
        if media.embedder is None or media.picture is None:
            return []
        views = embedding_views(media.picture, regions=index_regions(settings), boxes=index_boxes(settings),
                                 turns=index_turns(settings))
        vectors = media.embedder.embed([img for _, img in views])
        return [(suffix, embedding_value(vector, media.embedder.version)) for (suffix, _), vector in zip(views, vectors)]

    def auto_confirms(self, match, settings: MatchSettings, auto_confirm_similarity: Optional[float],
                      content: Optional[str] = None) -> bool:
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
