"""Reference image embedding (copy-detection descriptor): preprocessing and inference.

    model = EmbeddingModel.load()            # csadetect/models/reference/embedding by default
    vecs = model.embed([pil_img, ...])       # (n, dim) float32, L2-normalised
    same = float(vecs[0] @ vecs[1]) >= model.threshold

The model is a small CNN trained contrastively on benign proxies (generated images and
scikit-image samples) by ``training/train_embedding.py``; see ``csadetect/models/cards/embedding.md``.
It is a stand-in for the EU Centre's models, not for production. Finding, copying and loading the
model (and its ``metadata.json``: ``threshold``, ``dim``, ``version``) is :data:`KIND`'s job, in
:mod:`csadetect.models.loader`.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PIL import Image

from csadetect.media.crops import region_crop
from csadetect.models.loader import ModelKind
from csadetect.signals.embedding import (MIRROR_SUFFIX, REGION_SOURCE_SIDE, TURN_SUFFIXES, oriented_region_names,
                                         parse_region_suffix, region_orientation, region_suffix, turned_names)

INPUT_SIZE = 64


def _check_metadata(metadata: dict) -> None:
    float(metadata["threshold"])


KIND = ModelKind("embedding", required=("threshold",), check=_check_metadata)


def preprocess(img: Image.Image, size: int = INPUT_SIZE) -> np.ndarray:
    """PIL image -> (size, size, 3) uint8 array: RGB, squashed to a square (aspect not kept)."""
    return np.asarray(rgb(img).resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)


def rgb(img: Image.Image) -> Image.Image:
    """``img`` in RGB, transparency flattened on white (``img`` itself when it is RGB already)."""
    if img.mode != "RGB":
        if img.mode in ("RGBA", "LA", "P"):
            img = img.convert("RGBA")
            bg = Image.new("RGBA", img.size, (255, 255, 255, 255))
            img = Image.alpha_composite(bg, img)
        img = img.convert("RGB")
    return img


@dataclasses.dataclass(frozen=True)
class EmbeddingSpec:
    """What the matcher needs to know about the configured embedding model."""

    path: str
    version: str
    threshold: float  # cosine similarity counted as a near-duplicate (inclusive)
    dim: int
    input_size: int = INPUT_SIZE

    @classmethod
    def resolve(cls, settings) -> "EmbeddingSpec":
        """From :class:`csadetect.config.settings.EmbeddingSettings` (its metadata only, no
        TensorFlow): the config's threshold, else the model's. Raises ModelError."""
        meta = KIND.metadata(settings.model)
        threshold = settings.threshold if settings.threshold is not None else float(meta["threshold"])
        return cls(
            path=KIND.worker_path(settings.model),
            version=str(meta.get("version", "unknown")),
            threshold=float(threshold),
            dim=int(meta.get("dim", 128)),
            input_size=int(meta.get("input_size", INPUT_SIZE)),
        )


def model_inputs(pictures: Sequence, size: int = INPUT_SIZE, flip: bool = False,
                 regions: tuple = ()) -> tuple[tuple[str, ...], np.ndarray]:
    """(name, PIL image) pairs -> names and a ``(k, size, size, 3)`` uint8 batch; with ``flip``
    the mirrored first picture is added as ``"image:flip"``; with ``regions`` (the query-side
    region views, :func:`csadetect.signals.embedding.query_regions`) the first picture's crops at
    its corners and centre, as ``"image-a80tl"`` ..., cut from :func:`region_source`
    (:func:`staged_model_inputs` gives the same inputs in two parts)."""
    names, batch, source = staged_model_inputs(pictures, size, flip, regions)
    if source is None:
        return names, batch
    k = len(batch)
    return names, np.concatenate([batch, region_view_inputs(source, names[k:], size)])


def staged_model_inputs(pictures: Sequence, size: int = INPUT_SIZE, flip: bool = False,
                        regions: tuple = ()) -> tuple[tuple[str, ...], np.ndarray, Optional[np.ndarray]]:
    """:func:`model_inputs` with the region views left uncut: (every name, the batch of the
    pictures and the mirror, the ``(h, w, 3)`` uint8 :func:`region_source` of the first picture or
    None without region views). :func:`region_view_inputs` cuts the rest from that source later:
    HashMedia hands EmbedImages one picture of at most 256 px a side instead of 50 model inputs
    (~170 KB instead of ~640 KB for a 4:3 upload)."""
    names = [name for name, _ in pictures]
    arrays = [preprocess(img, size) for _, img in pictures]
    if flip and arrays:
        names.append(f"{names[0]}{MIRROR_SUFFIX}")
        arrays.append(np.ascontiguousarray(arrays[0][:, ::-1]))
    if not arrays:
        return (), np.zeros((0, size, size, 3), np.uint8), None
    source = None
    if regions:
        names += [f"{names[0]}{region_suffix(area, place)}" for area, places in regions for place in places]
        source = np.asarray(rgb(region_source(pictures[0][1])), dtype=np.uint8)
    return tuple(names), np.stack(arrays), source


def oriented(source: np.ndarray, orientation: str) -> np.ndarray:
    """``source`` (``(h, w, 3)``) in ``orientation`` (:data:`csadetect.signals.embedding.ORIENTATIONS`): as it
    is, mirrored left to right (``":flip"``), turned counter-clockwise by 90, 180 or 270 degrees (``":r90"`` ...),
    or mirrored and then turned (``":flip:r90"`` ...)."""
    if not orientation:
        return source
    if orientation == MIRROR_SUFFIX:
        return np.ascontiguousarray(source[:, ::-1])
    if orientation in TURN_SUFFIXES:
        turn = orientation.rsplit(":", 1)[1]
        if orientation.startswith(MIRROR_SUFFIX):
            source = source[:, ::-1]
        return np.ascontiguousarray(np.rot90(source, int(turn[1:]) // 90))
    raise ValueError(f"not an orientation: {orientation!r}")


def region_view_inputs(source: np.ndarray, names: Sequence[str], size: int = INPUT_SIZE) -> np.ndarray:
    """The ``(k, size, size, 3)`` model inputs of the region views ``names`` (``"image-a80tl"`` ...,
    :func:`csadetect.signals.embedding.region_suffix`), cut from ``source`` (``(h, w, 3)`` uint8, as
    :func:`staged_model_inputs` gives it), or from it mirrored or turned for a name of
    :func:`csadetect.signals.embedding.oriented_region_names` (``"image:flip-a80tl"``,
    ``"image:r90-a80tl"``). Raises ValueError for a name that is no region view."""
    pictures: dict[str, Image.Image] = {}
    out = np.empty((len(names), size, size, 3), np.uint8)
    for i, name in enumerate(names):
        area, place = parse_region_suffix(name)
        way = region_orientation(name)
        if way not in pictures:
            pictures[way] = Image.fromarray(oriented(source, way), "RGB")
        out[i] = preprocess(region_crop(pictures[way], area, place), size)
    return out


def turned_view_inputs(source: np.ndarray, first: str = "image",
                       size: int = INPUT_SIZE) -> tuple[tuple[str, ...], np.ndarray]:
    """The names (``"image:r90"`` ..., ``"image:flip:r90"`` ...: :func:`csadetect.signals.embedding.turned_names`)
    and the ``(6, size, size, 3)`` model inputs of ``source`` turned a quarter, a half and three quarters
    counter-clockwise, and of its mirror turned likewise (``match.embedding_query_turns``: they choose which
    way the region views are cut, and are not looked up)."""
    return turned_names(first), np.stack([preprocess(Image.fromarray(oriented(source, way), "RGB"), size)
                                          for way in TURN_SUFFIXES])


def region_source(img: Image.Image, side: int = REGION_SOURCE_SIDE) -> Image.Image:
    """The picture the query-side region views are cut from: ``img`` reduced (antialiased, aspect
    kept) to at most ``side`` pixels a side, or ``img`` itself when it is no larger."""
    w, h = img.size
    scale = side / max(w, h)
    if scale >= 1.0:
        return img
    return img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BILINEAR)


class EmbeddingModel:
    """A loaded embedding model. Load once per worker process."""

    def __init__(self, keras_model, metadata: dict, path: Optional[Path] = None):
        self.model = keras_model
        self.metadata = metadata
        self.path = path
        self.input_size = int(metadata.get("input_size", INPUT_SIZE))
        self.dim = int(metadata.get("dim", 128))
        self.threshold = float(metadata["threshold"])
        self.version = str(metadata.get("version", "unknown"))
        self._fn = None  # compiled on first use: one graph for any batch size

    def _call(self, chunk: np.ndarray) -> np.ndarray:
        if self._fn is None:
            import tensorflow as tf

            model = self.model
            spec = tf.TensorSpec([None, self.input_size, self.input_size, 3], tf.float32)
            self._fn = tf.function(lambda x: model(x, training=False), input_signature=[spec])
        return self._fn(chunk).numpy()

    @classmethod
    def load(cls, path=None) -> "EmbeddingModel":
        """From a model spec (:class:`csadetect.models.loader.ModelKind`; None: the reference
        model). Raises ModelError with a one-line reason."""
        return cls(*KIND.load(path))

    def preprocess(self, img: Image.Image) -> np.ndarray:
        return preprocess(img, self.input_size)

    def embed_arrays(self, arr: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """(n, s, s, 3) uint8 -> (n, dim) float32, L2-normalised."""
        if len(arr) == 0:
            return np.zeros((0, self.dim), np.float32)
        out = []
        for i in range(0, len(arr), batch_size):
            chunk = np.asarray(arr[i : i + batch_size], dtype=np.float32)
            out.append(np.asarray(self._call(chunk), dtype=np.float32))
        v = np.concatenate(out)
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)

    def embed_region_views(self, source: np.ndarray, names: Sequence[str], orientation: str = "",
                           batch_size: int = 256) -> tuple[tuple[str, ...], np.ndarray]:
        """(names, vectors) of the query-side region views ``names`` cut from ``source`` (as
        :func:`staged_model_inputs` gives it), or from it mirrored or turned (``orientation``, one of
        :data:`csadetect.signals.embedding.ORIENTATIONS`; the names then
        :func:`csadetect.signals.embedding.oriented_region_names`)."""
        cut = oriented_region_names(names, orientation)
        return cut, self.embed_arrays(region_view_inputs(source, cut, self.input_size), batch_size)

    def embed_turned(self, source: np.ndarray, first: str = "image") -> tuple[tuple[str, ...], np.ndarray]:
        """(names, vectors) of ``source`` and its mirror turned a quarter, a half and three quarters (:func:`turned_view_inputs`)."""
        names, batch = turned_view_inputs(source, first, self.input_size)
        return names, self.embed_arrays(batch)

    def embed(self, images: Sequence[Image.Image], batch_size: int = 64) -> np.ndarray:
        arr = np.stack([self.preprocess(im) for im in images]) if len(images) else np.zeros(
            (0, self.input_size, self.input_size, 3), np.uint8
        )
        return self.embed_arrays(arr, batch_size)
